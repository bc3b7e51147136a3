//! Real `warren hub`s and agents: agent A (the client: a tunnel to
//! `echo.demo:7` and a SOCKS5 proxy) and agent B (exports `echo.demo:7`
//! and `web.demo:80`) listen for HBONE nowhere and meet through one or more
//! hubs; agent C exports the same echo service as B, for registry churn.
//!
//! The hubs' identities are `spiffe://test.warren/ns/mesh/sa/hubN`, which
//! the agents accept with the pattern [`HUB_IDENTITIES`].

use std::collections::BTreeSet;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::two_agents::{echo_server, http_server, pattern};
use super::{curl, free_port, identity_toml, issue_pki, warren, Running, TempDir, WAIT};

/// Agent A's identity.
pub const CLIENT: &str = "spiffe://test.warren/ns/web/sa/client";
/// Agent B's identity.
pub const SERVER: &str = "spiffe://test.warren/ns/demo/sa/server";
/// Agent C's identity: a second server of `echo.demo` in B's namespace.
pub const REPLICA: &str = "spiffe://test.warren/ns/demo/sa/replica";
/// What an agent requires of a hub's certificate.
pub const HUB_IDENTITIES: &str = "spiffe://test.warren/ns/mesh/sa/hub*";

/// Hub `i`'s identity (counting from 1, as its folder `hubN`).
pub fn hub_id(i: usize) -> String {
    format!("spiffe://test.warren/ns/mesh/sa/hub{}", i + 1)
}

/// The local services behind agents B and C.
#[derive(Clone, Copy, Debug)]
pub struct Backends {
    /// B's HTTP server (`web.demo:80`): `GET /bytes/N` or `NAME: METHOD PATH`.
    pub web: u16,
    /// B's echo server (`echo.demo:7`).
    pub echo: u16,
    /// C's echo server (`echo.demo:7` too).
    pub replica_echo: u16,
}

impl Backends {
    /// Servers on 127.0.0.1 of this test process.
    pub fn loopback() -> Backends {
        Backends {
            web: http_server("B"),
            echo: echo_server(),
            replica_echo: echo_server(),
        }
    }
}

/// The files and ports of one hub mesh.
pub struct HubMesh {
    /// Certificates and configuration files.
    pub dir: TempDir,
    /// `tokio` or `smol`.
    pub runtime: String,
    /// Each hub's HBONE port and admin port.
    pub hubs: Vec<(u16, u16)>,
    /// A's admin port.
    pub a_admin: u16,
    /// A's SOCKS5 proxy.
    pub socks: u16,
    /// A's tunnel to `echo.demo:7`.
    pub echo_tunnel: u16,
    /// B's admin port.
    pub b_admin: u16,
    /// C's admin port.
    pub c_admin: u16,
    /// The services behind B and C.
    pub backends: Backends,
}

impl HubMesh {
    /// Certificates for `hubs` hubs and the three agents; writes no
    /// configuration.
    pub fn new(name: &str, runtime: &str, hubs: usize, backends: Backends) -> HubMesh {
        let dir = TempDir::new(&format!("{name}-{runtime}"));
        let hub_ids: Vec<String> = (0..hubs).map(hub_id).collect();
        let folders: Vec<String> = (0..hubs).map(|i| format!("hub{}", i + 1)).collect();
        let mut issued: Vec<(&str, &str)> = vec![(CLIENT, "a"), (SERVER, "b"), (REPLICA, "c")];
        issued.extend(
            hub_ids
                .iter()
                .map(String::as_str)
                .zip(folders.iter().map(String::as_str)),
        );
        issue_pki(dir.path(), "ca", &issued);
        HubMesh {
            dir,
            runtime: runtime.to_owned(),
            hubs: (0..hubs).map(|_| (free_port(), free_port())).collect(),
            a_admin: free_port(),
            socks: free_port(),
            echo_tunnel: free_port(),
            b_admin: free_port(),
            c_admin: free_port(),
            backends,
        }
    }

    /// A mesh on 127.0.0.1 with its configuration files written.
    pub fn loopback(name: &str, runtime: &str, hubs: usize) -> HubMesh {
        let mesh = HubMesh::new(name, runtime, hubs, Backends::loopback());
        let dial = mesh.hub_addrs("127.0.0.1");
        mesh.write_configs("127.0.0.1", &dial, &dial);
        mesh
    }

    /// Every hub's address when reached at `ip`.
    pub fn hub_addrs(&self, ip: &str) -> Vec<String> {
        self.hubs
            .iter()
            .map(|(port, _)| format!("{ip}:{port}"))
            .collect()
    }

    /// A file in the mesh's folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `hubN.toml` (listening on `hub_ip`), `a.toml` dialling
    /// `a_dials` and `b.toml`, `c.toml` dialling `b_dials`.
    pub fn write_configs(&self, hub_ip: &str, a_dials: &[String], b_dials: &[String]) {
        for (i, (port, admin)) in self.hubs.iter().enumerate() {
            let text = format!(
                r#"hbone_listen = "{hub_ip}:{port}"
admin = "127.0.0.1:{admin}"
[identity]
cert = "hub{n}/cert.pem"
key = "hub{n}/key.pem"
ca = "hub{n}/ca.pem"
[hub]
[[hub.announce]]
principals = ["*"]
services = ["own-namespace"]
[[authz.rule]]
name = "web-may-use-demo"
action = "allow"
principals = ["spiffe://test.warren/ns/web/sa/*"]
"#,
                n = i + 1
            );
            self.write(&format!("hub{}.toml", i + 1), &text);
        }
        let links = |dials: &[String]| {
            let hubs: Vec<String> = dials.iter().map(|d| format!("\"{d}\"")).collect();
            format!(
                "hubs = [{}]\nhub_identities = [\"{HUB_IDENTITIES}\"]\n",
                hubs.join(", ")
            )
        };
        self.write(
            "a.toml",
            &format!(
                "admin = \"127.0.0.1:{}\"\n{}{}[socks5]\nlisten = \"127.0.0.1:{}\"\n\
                 [[tunnel]]\nlisten = \"127.0.0.1:{}\"\nto = \"echo.demo:7\"\n",
                self.a_admin,
                links(a_dials),
                identity_toml("a"),
                self.socks,
                self.echo_tunnel
            ),
        );
        let export = |service: &str, port: u16, target: u16| {
            format!(
                "[[export]]\nservice = \"{service}\"\nport = {port}\ntarget = \"127.0.0.1:{target}\"\n"
            )
        };
        self.write(
            "b.toml",
            &format!(
                "admin = \"127.0.0.1:{}\"\n{}{}{}{}",
                self.b_admin,
                links(b_dials),
                identity_toml("b"),
                export("echo.demo", 7, self.backends.echo),
                export("web.demo", 80, self.backends.web),
            ),
        );
        self.write(
            "c.toml",
            &format!(
                "admin = \"127.0.0.1:{}\"\n{}{}{}",
                self.c_admin,
                links(b_dials),
                identity_toml("c"),
                export("echo.demo", 7, self.backends.replica_echo),
            ),
        );
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.file(name), text).unwrap();
    }

    /// Runs `warren COMMAND --config FILE` (inside network namespace
    /// `netns` when given) and waits for its `ready` line.
    pub fn start_in(&self, command: &str, file: &str, netns: Option<&str>) -> Running {
        let config = self.file(file);
        let args = [
            command,
            "--config",
            config.to_str().unwrap(),
            "--runtime",
            &self.runtime,
        ];
        let cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_warren")])
                    .args(args);
                cmd
            }
            None => {
                let mut cmd = warren();
                cmd.args(args);
                cmd
            }
        };
        let process = Running::start(cmd);
        // " ready ": "Address already in use" contains "ready".
        process.wait_stderr(" ready ");
        process
    }

    /// Starts hub `i` (from 0) on loopback.
    pub fn start_hub(&self, i: usize) -> Running {
        self.start_in("hub", &format!("hub{}.toml", i + 1), None)
    }

    /// Starts agent `name` (`a`, `b` or `c`) on loopback.
    pub fn start_agent(&self, name: &str) -> Running {
        self.start_in("agent", &format!("{name}.toml"), None)
    }

    /// Waits until hub `i` can relay A's flows to `server` (which
    /// announced there and has its reverse connection up), A's forward
    /// connection to it is up for the `a_links`-th time (1, or more after
    /// restarts), and A holds a registry from it since then that lists
    /// services (end-to-end routing needs it).
    pub fn wait_relay_ready(
        &self,
        i: usize,
        hub: &Running,
        a: &Running,
        a_links: usize,
        server: &str,
    ) {
        hub.wait_stderr(&format!("announced {server} "));
        let connected = format!("agent connected {server} ");
        hub.wait_until(|err| {
            err.lines()
                .any(|l| l.contains(&connected) && l.contains("kind=reverse"))
        });
        let (port, _) = self.hubs[i];
        let up = format!(":{port} kind=forward peer=");
        let registry = format!(":{port} epoch=");
        a.wait_until(|err| {
            let Some((at, _)) = err.match_indices(&up).nth(a_links - 1) else {
                return false;
            };
            err[at..]
                .lines()
                .any(|l| l.contains(&registry) && !l.contains(" entries=0"))
        });
    }
}

/// A long-lived flow to an echo service through a local port: each round
/// sends one chunk and reads it back, so corruption, loss or a stall shows
/// on the round it happens. An `Err` is a clean failure (closed or reset);
/// other bytes coming back, or none for [`WAIT`], panic.
pub struct EchoFlow {
    conn: TcpStream,
    /// The flow's bytes repeat this.
    data: Vec<u8>,
    sent: usize,
}

impl EchoFlow {
    /// Connects to `port` and does a first round of `chunk` bytes: the
    /// flow reached the echo server. The bytes are [`pattern`] mixed with
    /// `salt`, so two flows never carry the same bytes.
    pub fn open(port: u16, salt: u8, chunk: usize) -> io::Result<EchoFlow> {
        let conn = TcpStream::connect(("127.0.0.1", port))?;
        conn.set_read_timeout(Some(WAIT)).unwrap();
        let data = pattern(64 * 1024 + 7)
            .into_iter()
            .map(|b| b ^ salt)
            .collect();
        let mut flow = EchoFlow {
            conn,
            data,
            sent: 0,
        };
        flow.round(chunk)?;
        Ok(flow)
    }

    /// Sends the next `n` bytes and reads them back.
    pub fn round(&mut self, n: usize) -> io::Result<()> {
        let chunk: Vec<u8> = (self.sent..self.sent + n)
            .map(|k| self.data[k % self.data.len()])
            .collect();
        self.conn.write_all(&chunk)?;
        let mut back = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match self.conn.read(&mut back[got..]) {
                Ok(0) => {
                    assert_eq!(back[..got], chunk[..got], "bytes changed before a close");
                    return Err(ErrorKind::UnexpectedEof.into());
                }
                Ok(k) => got += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                    panic!(
                        "the flow stalled for {WAIT:?} after {} bytes",
                        self.sent + got
                    )
                }
                Err(e) => return Err(e),
            }
        }
        assert!(
            back == chunk,
            "the echo differs in bytes {}..{}",
            self.sent,
            self.sent + n
        );
        self.sent += n;
        Ok(())
    }

    /// Half-closes and expects the echo server's close with nothing more:
    /// the flow was byte-exact end to end. Returns the bytes echoed.
    pub fn finish(mut self) -> io::Result<usize> {
        self.conn.shutdown(Shutdown::Write)?;
        let mut rest = Vec::new();
        self.conn.read_to_end(&mut rest)?;
        assert!(rest.is_empty(), "{} bytes after the echo", rest.len());
        Ok(self.sent)
    }
}

/// One new short flow through the echo tunnel on `port`: true when 1 KiB
/// came back intact, false when the flow was refused or closed.
pub fn echo_once(port: u16) -> bool {
    match EchoFlow::open(port, 0x5a, 1024) {
        Ok(flow) => flow.finish().is_ok(),
        Err(_) => false,
    }
}

/// Tries new flows through the echo tunnel on `port` until one works;
/// returns how long that took. Panics after [`WAIT`].
pub fn echo_until_ok(port: u16) -> Duration {
    let start = Instant::now();
    while !echo_once(port) {
        assert!(
            start.elapsed() < WAIT,
            "no new flow through port {port} worked"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// GET `url` through the SOCKS5 proxy on `socks` until curl succeeds;
/// returns the body. Panics after [`WAIT`] with curl's last error.
pub fn curl_until_ok(socks: u16, url: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = curl(&["--socks5-hostname", &format!("127.0.0.1:{socks}"), url]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "curl never succeeded: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// TCP ports process `pid` listens on, from procfs: its socket inodes
/// matched against the LISTEN rows of its network namespace's tcp and
/// tcp6 tables.
pub fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for row in text.lines().skip(1) {
            let f: Vec<&str> = row.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().unwrap();
                ports.insert(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports
}
