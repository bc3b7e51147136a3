//! Real processes on loopback: a `warren hub`, agent B that serves an HTTP
//! service but listens on nothing except its admin port, and agent A whose
//! SOCKS5 proxy reaches B's service through the hub, with curl.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener};
use std::process::{Command, Output};

use support::hub_mesh::{curl_until_ok, listening_ports};
use support::{
    free_port, hub_links_toml, identity_toml, issue_pki, ok, start_hub_b_a, write, TempDir,
};

/// A one-line HTTP service: answers every request with its method and path.
fn http_service() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut line = String::new();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => {}
                    }
                }
                let words: Vec<&str> = first.split_whitespace().collect();
                let body = format!("B says: {} {}\n", words[0], words[1]);
                let mut out = stream;
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = out.shutdown(Shutdown::Write);
            });
        }
    });
    port
}

/// curl through A's SOCKS5 proxy at `socks`, giving up after 5 s.
fn curl_via_socks(socks: u16, url: &str) -> Output {
    Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "--socks5-hostname",
            &format!("127.0.0.1:{socks}"),
            url,
        ])
        .output()
        .unwrap()
}

/// `end_to_end`: B's export keeps the default (end-to-end mode on), or
/// says `end_to_end = false` (the hub relays plaintext).
fn agent_b_with_no_port_serves_through_the_hub(runtime: &str, end_to_end: bool) {
    let dir = TempDir::new(&format!("hub-{runtime}-{end_to_end}"));
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    let hub_id = "spiffe://test.warren/ns/mesh/sa/hub";
    let client = "spiffe://test.warren/ns/web/sa/client";
    let server = "spiffe://test.warren/ns/demo/sa/server";
    issue_pki(
        dir.path(),
        "ca",
        &[(hub_id, "h"), (client, "a"), (server, "b")],
    );
    write(&dir.path().join("revoked.txt"), "# nobody yet\n");
    let service = http_service();
    let (hub_port, hub_admin) = (free_port(), free_port());
    let (a_admin, socks) = (free_port(), free_port());
    let b_admin = free_port();
    write(
        &dir.path().join("hub.toml"),
        &format!(
            r#"hbone_listen = "127.0.0.1:{hub_port}"
admin = "127.0.0.1:{hub_admin}"
revocation = "revoked.txt"
{identity}[hub]
[[hub.announce]]
principals = ["*"]
services = ["own-namespace"]
[[authz.rule]]
name = "web-may-use-demo"
action = "allow"
service = "echo.demo"
principals = ["{client}"]
"#,
            identity = identity_toml("h")
        ),
    );
    let links = hub_links_toml(hub_port, hub_id);
    let mode = if end_to_end {
        ""
    } else {
        "end_to_end = false\n"
    };
    write(
        &dir.path().join("b.toml"),
        &format!(
            r#"admin = "127.0.0.1:{b_admin}"
{links}{identity}[[export]]
service = "echo.demo"
port = 8080
target = "127.0.0.1:{service}"
{mode}"#,
            identity = identity_toml("b")
        ),
    );
    write(
        &dir.path().join("a.toml"),
        &format!(
            r#"admin = "127.0.0.1:{a_admin}"
{links}{identity}[socks5]
listen = "127.0.0.1:{socks}"
"#,
            identity = identity_toml("a")
        ),
    );
    let (hub, b, a) = start_hub_b_a(dir.path(), runtime);

    let answer = curl_until_ok(socks, "http://echo.demo:8080/through-the-hub");
    assert_eq!(answer, "B says: GET /through-the-hub\n");
    b.wait_stderr("source=spiffe://test.warren/ns/web/sa/client");
    if end_to_end {
        // One inner mTLS session between A and B, inside one relayed
        // stream (pooled: the hub logs it when it closes, below).
        a.wait_stderr("end-to-end up peer=spiffe://test.warren/ns/demo/sa/server");
        b.wait_stderr("end-to-end up peer=spiffe://test.warren/ns/web/sa/client");
    } else {
        hub.wait_stderr("direction=relayed");
        hub.wait_stderr("service=echo.demo:8080");
        assert!(!a.stderr().contains("end-to-end up"));
    }

    // B listens on its admin port and nothing else.
    assert_eq!(listening_ports(b.pid()), BTreeSet::from([b_admin]));
    // A service nobody announced: the hub answers 503 at once, curl fails.
    let out = curl_via_socks(socks, "http://nope.demo:8080/");
    assert!(!out.status.success());
    hub.wait_stderr("service=nope.demo:8080");

    // Revoking A: the hub notices the list changed, closes A's connections
    // with the reason, and refuses A's redials; A's flows stop working.
    ok(&[
        "ca",
        "revoke",
        "--list",
        &d("revoked.txt"),
        "--id",
        client,
        "--reason",
        "laptop stolen",
    ]);
    hub.wait_stderr("revoked peer=spiffe://test.warren/ns/web/sa/client");
    hub.wait_stderr("laptop stolen");
    let out = curl_via_socks(socks, "http://echo.demo:8080/after");
    assert!(!out.status.success(), "a revoked agent got through");
    if end_to_end {
        // A's connections closed, and with them the pair stream: the hub
        // logs it under its own label, never under the service's name.
        hub.wait_stderr("service=end-to-end");
        assert!(!hub.stderr().contains("service=echo.demo"));
    }
    drop(a);
}

#[test]
fn hub_relays_to_an_agent_with_no_open_port_on_tokio() {
    agent_b_with_no_port_serves_through_the_hub("tokio", true);
}

#[test]
fn hub_relays_plaintext_when_the_export_says_so_on_tokio() {
    agent_b_with_no_port_serves_through_the_hub("tokio", false);
}

#[test]
fn hub_relays_to_an_agent_with_no_open_port_on_smol() {
    agent_b_with_no_port_serves_through_the_hub("smol", true);
}
