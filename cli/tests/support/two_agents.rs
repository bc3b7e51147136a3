//! Two real `warren agent` processes on loopback, certificates from
//! `warren ca`: agent A ("web/client") has tunnels, a SOCKS5 and an HTTP
//! CONNECT proxy; agent B ("app/server") exports an HTTP server, a TCP echo
//! server and a secret HTTP service only `ops` may use.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;

pub use super::echo_server;
use super::{free_port, identity_toml, issue_pki, start_ready, Running, TempDir, WAIT};

/// Agent A's identity.
pub const CLIENT: &str = "spiffe://test.warren/ns/web/sa/client";
/// Agent B's identity.
pub const SERVER: &str = "spiffe://test.warren/ns/app/sa/server";
/// The rule of B that denies A the secret service.
pub const SECRET_RULE: &str = "only-ops-may-use-secret";

/// Seeded pseudo-random bytes, so a shifted or repeated chunk shows.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The body `http_server` sends for `GET /bytes/N`: N bytes of [`pattern`].
pub fn body_of(n: usize) -> Vec<u8> {
    pattern(n)
}

/// A minimal HTTP/1.1 server: `GET /bytes/N` answers N bytes of
/// [`pattern`], any other request `NAME: METHOD PATH\n`; one request per
/// connection, then close.
pub fn http_server(name: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    return;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line.trim() != "" {
                    line.clear();
                }
                let mut words = request.split_whitespace();
                let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let body = match path.strip_prefix("/bytes/").and_then(|n| n.parse().ok()) {
                    Some(n) => body_of(n),
                    None => format!("{name}: {method} {path}\n").into_bytes(),
                };
                let mut stream = stream;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// The ports and files of one agent pair.
pub struct TwoAgents {
    /// Holds the certificates and configuration files.
    pub dir: TempDir,
    /// `tokio` or `smol`.
    pub runtime: String,
    /// B's HBONE port.
    pub b_hbone: u16,
    /// B's admin port.
    pub b_admin: u16,
    /// A's admin port.
    pub a_admin: u16,
    /// A's tunnel to `web.test:80` (the HTTP server).
    pub web_tunnel: u16,
    /// A's tunnel to `echo.test:7` (the TCP echo server).
    pub echo_tunnel: u16,
    /// A's SOCKS5 proxy.
    pub socks: u16,
    /// A's HTTP CONNECT proxy.
    pub proxy: u16,
    /// B's HTTP server (`web.test:80`).
    pub web: u16,
    /// B's echo server (`echo.test:7`).
    pub echo: u16,
    /// A's tunnel to `echo2.test:7` (a second echo server).
    pub echo2_tunnel: u16,
    /// B's second echo server (`echo2.test:7`).
    pub echo2: u16,
    /// B's secret HTTP server (`secret.test:80`).
    pub secret: u16,
}

impl TwoAgents {
    /// Makes the certificates and both configuration files; starts nothing.
    pub fn new(name: &str, runtime: &str) -> TwoAgents {
        let dir = TempDir::new(&format!("{name}-{runtime}"));
        issue_pki(dir.path(), "ca", &[(CLIENT, "a"), (SERVER, "b")]);
        let pair = TwoAgents {
            dir,
            runtime: runtime.to_owned(),
            b_hbone: free_port(),
            b_admin: free_port(),
            a_admin: free_port(),
            web_tunnel: free_port(),
            echo_tunnel: free_port(),
            socks: free_port(),
            proxy: free_port(),
            web: http_server("web"),
            echo: echo_server(),
            echo2_tunnel: free_port(),
            echo2: echo_server(),
            secret: http_server("secret"),
        };
        pair.write_b("");
        pair.write_a("");
        pair
    }

    /// A file in the pair's folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes B's configuration with `extra` (TOML: rules, exports)
    /// appended.
    pub fn write_b(&self, extra: &str) {
        let text = format!(
            r#"hbone_listen = "127.0.0.1:{b_hbone}"
admin = "127.0.0.1:{b_admin}"
{identity}[[export]]
service = "web.test"
port = 80
target = "127.0.0.1:{web}"
[[export]]
service = "echo.test"
port = 7
target = "127.0.0.1:{echo}"
[[export]]
service = "echo2.test"
port = 7
target = "127.0.0.1:{echo2}"
[[export]]
service = "secret.test"
port = 80
target = "127.0.0.1:{secret}"
[[authz.rule]]
name = "{SECRET_RULE}"
action = "deny"
service = "secret.test"
not_namespaces = ["ops"]
{extra}"#,
            identity = identity_toml("b"),
            b_hbone = self.b_hbone,
            b_admin = self.b_admin,
            web = self.web,
            echo = self.echo,
            echo2 = self.echo2,
            secret = self.secret,
        );
        std::fs::write(self.file("b.toml"), text).unwrap();
    }

    /// B's HBONE endpoint as a `[[service]]` entry's `endpoints`.
    pub fn endpoints(&self) -> String {
        format!(
            r#"[{{ addr = "127.0.0.1:{}", identity = "{SERVER}" }}]"#,
            self.b_hbone
        )
    }

    /// Writes A's configuration with `extra` (TOML: tunnels, services)
    /// appended.
    pub fn write_a(&self, extra: &str) {
        let endpoints = self.endpoints();
        let text = format!(
            r#"hbone_listen = "127.0.0.1:{a_hbone}"
admin = "127.0.0.1:{a_admin}"
{identity}[[tunnel]]
listen = "127.0.0.1:{web_tunnel}"
to = "web.test:80"
[[tunnel]]
listen = "127.0.0.1:{echo_tunnel}"
to = "echo.test:7"
[[tunnel]]
listen = "127.0.0.1:{echo2_tunnel}"
to = "echo2.test:7"
[socks5]
listen = "127.0.0.1:{socks}"
[http_proxy]
listen = "127.0.0.1:{proxy}"
[[service]]
name = "web.test"
endpoints = {endpoints}
[[service]]
name = "echo.test"
endpoints = {endpoints}
[[service]]
name = "echo2.test"
endpoints = {endpoints}
[[service]]
name = "secret.test"
endpoints = {endpoints}
{extra}"#,
            identity = identity_toml("a"),
            a_hbone = free_port(),
            a_admin = self.a_admin,
            web_tunnel = self.web_tunnel,
            echo_tunnel = self.echo_tunnel,
            echo2_tunnel = self.echo2_tunnel,
            socks = self.socks,
            proxy = self.proxy,
        );
        std::fs::write(self.file("a.toml"), text).unwrap();
    }

    /// Starts `warren agent` with `file` (in the pair's folder); waits
    /// until it is ready.
    pub fn start(&self, file: &str) -> Running {
        let config = self.file(file);
        start_ready(&[
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--runtime",
            &self.runtime,
        ])
    }

    /// Starts B, then A.
    pub fn start_both(&self) -> (Running, Running) {
        let b = self.start("b.toml");
        let a = self.start("a.toml");
        (a, b)
    }
}

/// Sends `kill -NAME` to `agent`.
pub fn signal(agent: &Running, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &agent.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// GETs `path` from the admin endpoint on `port`; returns the body of a
/// 200 answer (panics on any other).
pub fn admin_get(port: u16, path: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    body.to_owned()
}

/// Connects to `port` and runs [`exchange_on`] on the connection.
pub fn exchange(port: u16, data: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    exchange_on(&mut conn, data)
}

/// Sends `data` and a half-close on `conn` from a thread while reading
/// everything back; a reset counts as the end of input.
pub fn exchange_on(conn: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let sent = data.to_vec();
    let sender = std::thread::spawn(move || {
        // A refused flow may be closed before everything is written.
        let _ = writer.write_all(&sent);
        let _ = writer.shutdown(Shutdown::Write);
    });
    let mut got = Vec::new();
    match conn.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("reading the flow: {e}"),
    }
    sender.join().unwrap();
    got
}
