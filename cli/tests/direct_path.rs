//! Real processes on loopback: a `warren hub`, agent B that listens for
//! HBONE on a loopback address and so announces it, and agent A that knows
//! B's service only from the hub's registry. With `route = "direct-first"`
//! A's flows go straight to B (the hub relays nothing); with `"hub-only"`
//! they go through the hub. A's access log says which.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use support::{
    echo_server, free_port, hub_links_toml, identity_toml, issue_pki, start_hub_b_a, write,
    TempDir, WAIT,
};

/// One SOCKS5 flow through A's proxy to echo.demo:8080: sends `payload`,
/// half-closes, and returns what came back (empty when refused).
fn socks_echo(socks: u16, payload: &[u8]) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", socks)) else {
        return Vec::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = b"echo.demo";
    let mut req = vec![5, 1, 0, 5, 1, 0, 3, name.len() as u8];
    req.extend_from_slice(name);
    req.extend_from_slice(&8080u16.to_be_bytes());
    let mut reply = [0u8; 12];
    let granted =
        s.write_all(&req).is_ok() && s.read_exact(&mut reply).is_ok() && reply[..4] == [5, 0, 5, 0];
    if !granted {
        return Vec::new();
    }
    let mut back = Vec::new();
    let _ = s.write_all(payload);
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.read_to_end(&mut back);
    back
}

/// Flows until one echoes (agents need a moment to reach the hub and
/// learn the registry) or the wait runs out.
fn echo_until_ok(socks: u16, payload: &[u8]) {
    let deadline = Instant::now() + WAIT;
    while socks_echo(socks, payload) != payload {
        assert!(Instant::now() < deadline, "never echoed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn flows_take_the_configured_path(route: &str, runtime: &str, path: &str) {
    let dir = TempDir::new(&format!("direct-{route}-{runtime}"));
    let hub_id = "spiffe://test.warren/ns/mesh/sa/hub";
    let client = "spiffe://test.warren/ns/web/sa/client";
    let server = "spiffe://test.warren/ns/demo/sa/server";
    issue_pki(
        dir.path(),
        "ca",
        &[(hub_id, "h"), (client, "a"), (server, "b")],
    );
    let service = echo_server();
    let (hub_port, hub_admin) = (free_port(), free_port());
    let (a_admin, socks) = (free_port(), free_port());
    let (b_admin, b_hbone) = (free_port(), free_port());
    write(
        &dir.path().join("hub.toml"),
        &format!(
            r#"hbone_listen = "127.0.0.1:{hub_port}"
admin = "127.0.0.1:{hub_admin}"
{identity}[hub]
[[hub.announce]]
principals = ["*"]
services = ["own-namespace"]
"#,
            identity = identity_toml("h")
        ),
    );
    let links = hub_links_toml(hub_port, hub_id);
    write(
        &dir.path().join("b.toml"),
        &format!(
            r#"admin = "127.0.0.1:{b_admin}"
hbone_listen = "127.0.0.1:{b_hbone}"
{links}{identity}[[export]]
service = "echo.demo"
port = 8080
target = "127.0.0.1:{service}"
"#,
            identity = identity_toml("b")
        ),
    );
    write(
        &dir.path().join("a.toml"),
        &format!(
            r#"admin = "127.0.0.1:{a_admin}"
route = "{route}"
{links}{identity}[socks5]
listen = "127.0.0.1:{socks}"
"#,
            identity = identity_toml("a")
        ),
    );
    let (hub, b, a) = start_hub_b_a(dir.path(), runtime);

    echo_until_ok(socks, b"over-the-mesh");
    a.wait_stderr(&format!("path={path}"));
    b.wait_stderr(&format!("path={path}"));
    // Via the hub the flow goes end to end (the export's default): A and B
    // open their own session through the hub, which logs the pair stream
    // only when it closes, so A's log is where the relay shows.
    let a_log = a.stderr();
    let relayed = hub.stderr().contains("direction=relayed")
        || a_log.contains(&format!("end-to-end up peer={server}"));
    assert_eq!(
        relayed,
        path == "hub",
        "hub log:\n{}\nA's log:\n{a_log}",
        hub.stderr()
    );
    let other = if path == "hub" { "direct" } else { "hub" };
    assert!(!a_log.contains(&format!("path={other}")), "{a_log}");
}

#[test]
fn direct_first_goes_straight_to_the_announced_address_on_tokio() {
    flows_take_the_configured_path("direct-first", "tokio", "direct");
}

#[test]
fn hub_only_relays_even_when_an_address_is_announced_on_smol() {
    flows_take_the_configured_path("hub-only", "smol", "hub");
}
