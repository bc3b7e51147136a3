//! Two `warren agent` processes with certificates from `warren ca`: a
//! client through A's tunnel reaches a std echo server behind B, byte for
//! byte, on tokio and on smol; SIGTERM drains and exits.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};

use support::two_agents::signal;
use support::{
    echo_server, free_port, identity_toml, issue_pki, start_ready, warren, write, TempDir, WAIT,
};

fn agents_tunnel_bytes_exactly(runtime: &str) {
    let dir = TempDir::new(&format!("agents-{runtime}"));
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let client = "spiffe://test.warren/ns/web/sa/client";
    let server = "spiffe://test.warren/ns/app/sa/server";
    issue_pki(dir.path(), "ca", &[(client, "a"), (server, "b")]);

    let echo = echo_server();
    let (a_hbone, a_admin, tunnel) = (free_port(), free_port(), free_port());
    let (b_hbone, b_admin) = (free_port(), free_port());
    write(
        &dir.path().join("b.toml"),
        &format!(
            r#"hbone_listen = "127.0.0.1:{b_hbone}"
admin = "127.0.0.1:{b_admin}"
{identity}[[export]]
service = "echo.test"
port = 7
target = "127.0.0.1:{echo}"
[[authz.rule]]
name = "web-may-echo"
action = "allow"
service = "echo.test"
principals = ["{client}"]
"#,
            identity = identity_toml("b")
        ),
    );
    write(
        &dir.path().join("a.toml"),
        &format!(
            r#"hbone_listen = "127.0.0.1:{a_hbone}"
admin = "127.0.0.1:{a_admin}"
{identity}[[tunnel]]
listen = "127.0.0.1:{tunnel}"
to = "echo.test:7"
[[service]]
name = "echo.test"
endpoints = [{{ addr = "127.0.0.1:{b_hbone}", identity = "{server}" }}]
"#,
            identity = identity_toml("a")
        ),
    );
    let start = |file: &str| start_ready(&["agent", "--config", &d(file), "--runtime", runtime]);
    let b = start("b.toml");
    let a = start("a.toml");

    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut conn = TcpStream::connect(("127.0.0.1", tunnel)).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut writer = conn.try_clone().unwrap();
    let sent = payload.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    sender.join().unwrap();
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "echoed bytes differ");
    a.wait_stderr("access flow closed");
    b.wait_stderr("service=echo.test");

    // The admin endpoint counts the flow that just closed.
    let metrics = admin_get(a_admin, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("warren_tcp_sent_bytes_total{")
            && metrics.contains("direction=\"outbound\"} 300000"),
        "{metrics}"
    );
    let health = admin_get(b_admin, "/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") && health.trim_end().ends_with("ok"),
        "{health}"
    );

    // SIGHUP reloads; a flow open across the reload keeps going.
    let mut open = TcpStream::connect(("127.0.0.1", tunnel)).unwrap();
    open.set_read_timeout(Some(WAIT)).unwrap();
    let mut first = [0u8; 6];
    open.write_all(b"before").unwrap();
    open.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"before");
    signal(&a, "HUP");
    a.wait_stderr("configuration reloaded");
    signal(&b, "HUP");
    b.wait_stderr("configuration reloaded");
    open.write_all(b"after").unwrap();
    open.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    open.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"after");
    signal(&a, "TERM");
    a.wait_stderr("draining");
    let mut a = a;
    assert!(a.wait_exit().success(), "{}", a.stderr());
    drop(b);
}

#[test]
fn config_errors_name_file_line_and_key() {
    let dir = TempDir::new("bad-config");
    let file = dir.path().join("bad.toml");
    write(
        &file,
        "hbone_listen = \"127.0.0.1:1\"\n[socks5]\nlisten = \"nowhere\"\n",
    );
    let out = warren()
        .args(["agent", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:"), "{err}");
    assert!(err.contains("socks5.listen"), "{err}");
}

#[test]
fn agents_on_tokio_tunnel_bytes_exactly() {
    agents_tunnel_bytes_exactly("tokio");
}

#[test]
fn agents_on_smol_tunnel_bytes_exactly() {
    agents_tunnel_bytes_exactly("smol");
}

/// GETs `path` from the admin endpoint on `port`; returns the whole answer.
fn admin_get(port: u16, path: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    answer
}
