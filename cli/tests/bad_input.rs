//! Issue 6's "Bad input" list against the real binary: a bad config file,
//! missing or wrong certificates, ports in use and unreachable targets each
//! give one clear line that says what and where, a non-zero exit where the
//! agent cannot run, and nothing half-started (the process exits, having
//! never said "ready", instead of running without a listener). Unreachable targets at run time are answered on the flow and
//! logged, and the agent keeps serving.

mod support;

use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

use support::two_agents::{exchange, TwoAgents, CLIENT};
use support::{curl, free_port, issue_pki, warren, Running, WAIT};

/// Runs `warren agent` on `pair`'s file `name` until it exits; an agent
/// that keeps running fails the test after [`WAIT`].
fn agent_output(pair: &TwoAgents, name: &str) -> Output {
    let mut cmd = warren();
    cmd.args([
        "agent",
        "--config",
        pair.file(name).to_str().unwrap(),
        "--runtime",
        &pair.runtime,
    ]);
    let mut agent = Running::start(cmd);
    let status = agent.wait_exit();
    // The process is gone; its last line is on the way from the pipe.
    let deadline = Instant::now() + WAIT;
    while !agent.stderr().ends_with('\n') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Output {
        status,
        stdout: Vec::new(),
        stderr: agent.stderr().into_bytes(),
    }
}

/// The agent failed to start: exit code 1, stderr exactly one line
/// `warren: ...` containing every one of `needles`, never "ready".
fn fails_with_one_line(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "not one line:\n{stderr}");
    assert!(stderr.starts_with("warren: "), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "no {needle:?} in {stderr}");
    }
    assert!(!stderr.contains(" ready "), "{stderr}");
    stderr
}

#[test]
fn a_bad_value_names_file_line_and_key() {
    let pair = TwoAgents::new("bad-value", "tokio");
    let text = std::fs::read_to_string(pair.file("a.toml")).unwrap();
    let text = text.replacen("to = \"web.test:80\"", "to = \"web.test\"", 1);
    let bad_line = 1 + text.lines().position(|l| l == "to = \"web.test\"").unwrap();
    std::fs::write(pair.file("a.toml"), text).unwrap();
    let line = fails_with_one_line(&agent_output(&pair, "a.toml"), &["a.toml:", "tunnel"]);
    let at = line.split("a.toml:").nth(1).unwrap();
    assert!(
        at.starts_with(&format!("{bad_line}:")),
        "not line {bad_line}: {line}"
    );
}

#[test]
fn a_missing_certificate_is_named() {
    let pair = TwoAgents::new("missing-cert", "tokio");
    std::fs::remove_file(pair.file("a/cert.pem")).unwrap();
    fails_with_one_line(&agent_output(&pair, "a.toml"), &["a/cert.pem"]);
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let pair = TwoAgents::new("wrong-key", "tokio");
    std::fs::copy(pair.file("b/key.pem"), pair.file("a/key.pem")).unwrap();
    fails_with_one_line(&agent_output(&pair, "a.toml"), &["identity", "key"]);
}

#[test]
fn a_certificate_from_another_ca_is_refused_at_start() {
    let pair = TwoAgents::new("other-ca", "tokio");
    // A CA of the same trust domain that is not the one in a/ca.pem: the
    // certificate names the right kind of id, but no peer would accept it.
    let rogue = pair.file("rogue");
    issue_pki(pair.dir.path(), "other-ca", &[(CLIENT, "rogue")]);
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(rogue.join(file), pair.file("a").join(file)).unwrap();
    }
    let needles = [
        "a/cert.pem is not signed by ",
        "a/ca.pem (trust domain test.warren)",
    ];
    fails_with_one_line(&agent_output(&pair, "a.toml"), &needles);
    let check = warren()
        .args(["config", "check", "--identity"])
        .arg(pair.file("a.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(!stdout.contains("identity ok"), "{stdout}");
    fails_with_one_line(&check, &needles);
}

fn port_in_use(runtime: &str, which: &str) {
    let pair = TwoAgents::new(&format!("busy-{which}"), runtime);
    let port = match which {
        "socks" => pair.socks,
        "admin" => pair.a_admin,
        _ => pair.proxy,
    };
    let taken = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let addr = format!("127.0.0.1:{port}");
    fails_with_one_line(&agent_output(&pair, "a.toml"), &[&addr]);
    drop(taken);
}

#[test]
fn a_proxy_port_in_use_stops_the_start_on_tokio() {
    port_in_use("tokio", "proxy");
}

#[test]
fn a_proxy_port_in_use_stops_the_start_on_smol() {
    port_in_use("smol", "proxy");
}

#[test]
fn a_socks_port_in_use_stops_the_start_on_smol() {
    port_in_use("smol", "socks");
}

#[test]
fn an_admin_port_in_use_stops_the_start() {
    port_in_use("tokio", "admin");
}

#[test]
fn an_address_not_on_this_machine_stops_the_start() {
    let pair = TwoAgents::new("foreign-addr", "tokio");
    let text = std::fs::read_to_string(pair.file("b.toml")).unwrap();
    let hbone = format!("127.0.0.1:{}", pair.b_hbone);
    std::fs::write(
        pair.file("b.toml"),
        text.replacen(&hbone, "192.0.2.1:15008", 1),
    )
    .unwrap();
    fails_with_one_line(&agent_output(&pair, "b.toml"), &["192.0.2.1:15008"]);
}

/// Targets that cannot be reached while the agents run: the flow gets the
/// documented answer, one log line says why, and the agents keep serving.
fn unreachable_targets_are_answered_and_logged(runtime: &str) {
    let pair = TwoAgents::new("unreachable", runtime);
    // echo.test's target port closes; web.test stays.
    let gone = free_port();
    let text = std::fs::read_to_string(pair.file("b.toml")).unwrap();
    let text = text.replacen(
        &format!("127.0.0.1:{}\"", pair.echo),
        &format!("127.0.0.1:{gone}\""),
        1,
    );
    std::fs::write(pair.file("b.toml"), text).unwrap();
    // A also knows a service whose only endpoint has no agent.
    let nowhere = free_port();
    pair.write_a(&format!(
        "[[service]]\nname = \"void.test\"\nendpoints = [{{ addr = \"127.0.0.1:{nowhere}\", identity = \"{CLIENT}\" }}]\n"
    ));
    let (a, b) = pair.start_both();
    let proxy = format!("http://127.0.0.1:{}", pair.proxy);

    // The target refuses: B answers 503, A's proxy 502, B logs the reason.
    let out = curl(&["--proxytunnel", "-x", &proxy, "http://echo.test:7/"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("502"),
        "{out:?}"
    );
    assert!(exchange(pair.echo_tunnel, b"hello").is_empty());
    b.wait_stderr("connect failed");
    let log = b.stderr();
    assert!(
        log.lines().any(|l| l.contains("access flow closed")
            && l.contains("service=echo.test ")
            && l.contains("reason=connect failed")),
        "{log}"
    );

    // No agent at the endpoint: A's proxy 502 and a log line naming it.
    let out = curl(&["--proxytunnel", "-x", &proxy, "http://void.test:9/"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("502"),
        "{out:?}"
    );
    a.wait_stderr(&format!("127.0.0.1:{nowhere}"));

    // A name nobody exports or lists: SOCKS5 reply 4 (host unreachable)
    // or 2 (not allowed by egress rules), never a hang.
    let socks = format!("127.0.0.1:{}", pair.socks);
    let out = curl(&["--socks5-hostname", &socks, "http://unknown.test:80/"]);
    assert_eq!(out.status.code(), Some(97), "{out:?}");

    // Both agents still serve.
    let got = curl(&["--proxytunnel", "-x", &proxy, "http://web.test:80/still"]);
    assert_eq!(got.stdout, b"web: GET /still\n", "{got:?}");
    drop((a, b));
}

#[test]
fn unreachable_targets_are_answered_and_logged_on_tokio() {
    unreachable_targets_are_answered_and_logged("tokio");
}

#[test]
fn unreachable_targets_are_answered_and_logged_on_smol() {
    unreachable_targets_are_answered_and_logged("smol");
}
