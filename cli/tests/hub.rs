//! Real processes on loopback: a `warren hub`, agent B that serves an HTTP
//! service but listens on nothing except its admin port, and agent A whose
//! SOCKS5 proxy reaches B's service through the hub, with curl.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{free_port, issue_pki, ok, warren, Running, TempDir, WAIT};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

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

/// TCP ports process `pid` listens on, from procfs: its socket inodes
/// matched against the LISTEN rows of /proc/net/tcp and tcp6.
fn listening_ports(pid: u32) -> BTreeSet<u16> {
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
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
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

/// curl through A's SOCKS5 proxy until it answers (agents need a moment
/// to reach the hub and announce) or the wait runs out.
fn curl_until_ok(socks: u16, url: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                "--socks5-hostname",
                &format!("127.0.0.1:{socks}"),
                url,
            ])
            .output()
            .unwrap();
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "curl never succeeded: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn agent_b_with_no_port_serves_through_the_hub(runtime: &str) {
    let dir = TempDir::new(&format!("hub-{runtime}"));
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
[identity]
cert = "h/cert.pem"
key = "h/key.pem"
ca = "h/ca.pem"
[hub]
[[hub.announce]]
principals = ["*"]
services = ["own-namespace"]
[[authz.rule]]
name = "web-may-use-demo"
action = "allow"
service = "echo.demo"
principals = ["{client}"]
"#
        ),
    );
    let links = format!("hubs = [\"127.0.0.1:{hub_port}\"]\nhub_identities = [\"{hub_id}\"]\n");
    write(
        &dir.path().join("b.toml"),
        &format!(
            r#"admin = "127.0.0.1:{b_admin}"
{links}[identity]
cert = "b/cert.pem"
key = "b/key.pem"
ca = "b/ca.pem"
[[export]]
service = "echo.demo"
port = 8080
target = "127.0.0.1:{service}"
"#
        ),
    );
    write(
        &dir.path().join("a.toml"),
        &format!(
            r#"admin = "127.0.0.1:{a_admin}"
{links}[identity]
cert = "a/cert.pem"
key = "a/key.pem"
ca = "a/ca.pem"
[socks5]
listen = "127.0.0.1:{socks}"
"#
        ),
    );
    let start = |command: &str, file: &str| {
        let mut cmd = warren();
        cmd.args([command, "--config", &d(file), "--runtime", runtime]);
        let process = Running::start(cmd);
        process.wait_stderr("ready");
        process
    };
    let hub = start("hub", "hub.toml");
    let b = start("agent", "b.toml");
    let a = start("agent", "a.toml");

    let answer = curl_until_ok(socks, "http://echo.demo:8080/through-the-hub");
    assert_eq!(answer, "B says: GET /through-the-hub\n");
    hub.wait_stderr("direction=relayed");
    b.wait_stderr("source=spiffe://test.warren/ns/web/sa/client");

    // B listens on its admin port and nothing else.
    assert_eq!(listening_ports(b.pid()), BTreeSet::from([b_admin]));
    // A service nobody announced: the hub answers 503 at once, curl fails.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "--socks5-hostname",
            &format!("127.0.0.1:{socks}"),
            "http://nope.demo:8080/",
        ])
        .output()
        .unwrap();
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
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "--socks5-hostname",
            &format!("127.0.0.1:{socks}"),
            "http://echo.demo:8080/after",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a revoked agent got through");
    drop(a);
}

#[test]
fn hub_relays_to_an_agent_with_no_open_port_on_tokio() {
    agent_b_with_no_port_serves_through_the_hub("tokio");
}

#[test]
fn hub_relays_to_an_agent_with_no_open_port_on_smol() {
    agent_b_with_no_port_serves_through_the_hub("smol");
}
