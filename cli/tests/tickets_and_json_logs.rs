//! Two agents that join with tickets (`[identity] ticket` and `--ticket`),
//! logging JSON: every stderr line is one JSON object, and the access and
//! denial lines carry their facts as separate keys. `warren status` shows
//! each agent's identity, listeners, peer, open flow and denials. Tickets
//! that are exposed, or given twice, are refused before anything starts.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::{echo_server, free_port, issue_pki, ok, warren, Running, TempDir, WAIT};

const CLIENT: &str = "spiffe://test.warren/ns/web/sa/client";
const SERVER: &str = "spiffe://test.warren/ns/app/sa/server";
const HUB: &str = "hub.example.org:15008";

/// Every line of `stderr` as JSON; panics naming a line that is not.
fn json_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The first line whose `message` is `message`.
fn line<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
}

/// Sends `data` through `port`, half-closes, returns what came back (empty
/// when the flow was refused).
fn through(port: u16, data: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    // A refused flow may close before the write: not this helper's business.
    let _ = conn.write_all(data);
    let _ = conn.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    let _ = conn.read_to_end(&mut got);
    got
}

#[test]
fn agents_join_with_tickets_log_json_fields_and_show_status() {
    let dir = TempDir::new("tickets-json");
    let d = |p: &str| dir.path().join(p).to_str().unwrap().to_owned();
    issue_pki(dir.path(), "ca", &[]);
    for (id, out) in [(CLIENT, "a.ticket"), (SERVER, "b.ticket")] {
        ok(&[
            "ca",
            "ticket",
            "--ca",
            &d("ca"),
            "--id",
            id,
            "--out",
            &d(out),
            "--hub",
            HUB,
        ]);
    }
    let (echo, secret) = (echo_server(), echo_server());
    let (a_hbone, a_admin, tunnel, secret_tunnel) =
        (free_port(), free_port(), free_port(), free_port());
    let (b_hbone, b_admin) = (free_port(), free_port());
    // B has no [identity]: it comes from --ticket.
    std::fs::write(
        d("b.toml"),
        format!(
            r#"hbone_listen = "127.0.0.1:{b_hbone}"
admin = "127.0.0.1:{b_admin}"
[[export]]
service = "echo.test"
port = 7
target = "127.0.0.1:{echo}"
[[export]]
service = "secret.test"
port = 7
target = "127.0.0.1:{secret}"
[[authz.rule]]
name = "nobody-reaches-secret"
action = "deny"
service = "secret.test"
principals = ["*"]
"#
        ),
    )
    .unwrap();
    let a_toml = format!(
        r#"hbone_listen = "127.0.0.1:{a_hbone}"
admin = "127.0.0.1:{a_admin}"
[identity]
ticket = "a.ticket"
[[tunnel]]
listen = "127.0.0.1:{tunnel}"
to = "echo.test:7"
[[tunnel]]
listen = "127.0.0.1:{secret_tunnel}"
to = "secret.test:7"
[[service]]
name = "echo.test"
endpoints = [{{ addr = "127.0.0.1:{b_hbone}", identity = "{SERVER}" }}]
[[service]]
name = "secret.test"
endpoints = [{{ addr = "127.0.0.1:{b_hbone}", identity = "{SERVER}" }}]
"#
    );
    std::fs::write(d("a.toml"), &a_toml).unwrap();

    let start = |args: &[&str]| {
        let mut cmd = warren();
        cmd.args(["agent", "--log-format", "json"]).args(args);
        let agent = Running::start(cmd);
        agent.wait_stderr("\"message\":\"ready\"");
        agent
    };
    let b = start(&["--config", &d("b.toml"), "--ticket", &d("b.ticket")]);
    let a = start(&["--config", &d("a.toml")]);

    let payload = vec![b'x'; 10_000];
    assert_eq!(through(tunnel, &payload), payload);
    assert!(through(secret_tunnel, b"let me in").is_empty());
    a.wait_stderr("secret.test");
    b.wait_stderr("nobody-reaches-secret");
    // A logs both flows' access lines (the echo one and the refused one).
    let deadline = std::time::Instant::now() + WAIT;
    while a.stderr().matches("access flow closed").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", a.stderr());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let a_lines = json_lines(&a.stderr());
    let ready = line(&a_lines, "ready");
    assert_eq!(ready["id"], CLIENT, "{ready}");
    assert!(ready["hubs"].as_str().unwrap().contains(HUB), "{ready}");
    let access = a_lines
        .iter()
        .find(|l| l["message"] == "access flow closed" && l["bytes_sent"] == 10_000)
        .unwrap_or_else(|| panic!("no access line with 10000 bytes sent: {a_lines:#?}"));
    assert_eq!(access["direction"], "outbound", "{access}");
    assert_eq!(access["source"], CLIENT, "{access}");
    assert_eq!(access["destination"], SERVER, "{access}");
    assert!(
        access["service"].as_str().unwrap().contains("echo.test"),
        "{access}"
    );
    assert_eq!(access["bytes_received"], 10_000, "{access}");
    assert!(access["duration_ms"].is_u64(), "{access}");
    assert_eq!(access["reason"], "done", "{access}");
    assert_eq!(access["rule"], "-", "{access}");

    let b_lines = json_lines(&b.stderr());
    let denied = line(&b_lines, "policy denied");
    assert_eq!(denied["level"], "WARN", "{denied}");
    assert_eq!(denied["direction"], "inbound", "{denied}");
    assert_eq!(denied["source"], CLIENT, "{denied}");
    assert!(
        denied["destination"]
            .as_str()
            .unwrap()
            .contains("secret.test"),
        "{denied}"
    );
    assert_eq!(denied["reason"], "deny-rule", "{denied}");
    assert_eq!(denied["rule"], "nobody-reaches-secret", "{denied}");

    // A flow held open while `warren status` looks.
    let mut open = TcpStream::connect(("127.0.0.1", tunnel)).unwrap();
    open.set_read_timeout(Some(WAIT)).unwrap();
    open.write_all(b"hold").unwrap();
    let mut echoed = [0u8; 4];
    open.read_exact(&mut echoed).unwrap();
    let status = |admin: u16| {
        let out = warren()
            .args(["status", "--admin", &format!("127.0.0.1:{admin}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let shown = status(a_admin);
    for want in [
        format!("agent      {CLIENT} (trust domain test.warren)"),
        // Issued for 30 days a moment ago.
        ", expires in ".to_owned(),
        format!("  tunnel        127.0.0.1:{tunnel} -> echo.test:7"),
        format!("  dialled   127.0.0.1:{b_hbone}"),
        format!("{SERVER}  1 connection, 1 stream, up "),
        "1 open (0 inbound, 1 outbound); since start 2 opened, 10.0 kB sent".to_owned(),
        "sent 4 B, received 4 B".to_owned(),
        "recent denials\n  none".to_owned(),
        "hubs       none configured".to_owned(),
    ] {
        assert!(shown.contains(&want), "no {want:?} in\n{shown}");
    }
    let shown = status(b_admin);
    assert!(
        shown.contains(&format!("  hbone         127.0.0.1:{b_hbone}")),
        "{shown}"
    );
    assert!(shown.contains("  accepted  127.0.0.1:"), "{shown}");
    assert!(shown.contains("1 open (1 inbound, 0 outbound)"), "{shown}");
    assert!(
        shown.contains(&format!(
            "ago  {CLIENT} -> secret.test  rule nobody-reaches-secret (deny-rule)"
        )),
        "{shown}"
    );
    drop(open);
    drop((a, b));

    // Both ways of giving the identity at once: refused, nothing started.
    let twice = warren()
        .args([
            "agent",
            "--config",
            &d("a.toml"),
            "--ticket",
            &d("b.ticket"),
        ])
        .output()
        .unwrap();
    assert_eq!(twice.status.code(), Some(1));
    let err = String::from_utf8_lossy(&twice.stderr);
    assert!(
        err.contains("a.toml:3:") && err.contains("given twice"),
        "{err}"
    );

    // A ticket others may read holds a key in the open: refused with the fix.
    std::fs::set_permissions(d("a.ticket"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = warren()
        .args(["agent", "--config", &d("a.toml")])
        .output()
        .unwrap();
    assert_eq!(exposed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&exposed.stderr);
    assert!(err.contains("chmod 600"), "{err}");
    assert!(err.contains("a.ticket"), "{err}");
}
