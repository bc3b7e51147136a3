//! `warren demo` end to end with curl: the three documented ways in work,
//! the documented denied request fails with the documented errors and the
//! log names the rule.

mod support;

use std::collections::BTreeSet;

use support::hub_mesh::listening_ports;
use support::{curl, warren, Running};

/// Starts `warren demo` with `flags` on `runtime`, its ports counted from
/// `base`; returns it once ready, with what it printed until then.
fn start_demo(flags: &[&str], runtime: &str, base: u16) -> (Running, String) {
    let mut cmd = warren();
    cmd.arg("demo")
        .args(flags)
        .args(["--runtime", runtime, "--port-base", &base.to_string()]);
    let demo = Running::start(cmd);
    let printed = demo.wait_stdout("ready").join("\n");
    (demo, printed)
}

fn demo_answers_curl(runtime: &str, base: u16) {
    let (demo, printed) = start_demo(&[], runtime, base);
    let socks = format!("127.0.0.1:{}", base + 1);
    let proxy = format!("http://127.0.0.1:{}", base + 2);
    let tunnel = format!("http://127.0.0.1:{}/tunnel", base + 3);
    assert!(
        printed.contains(&format!(
            "curl --socks5-hostname {socks} http://echo.demo:8080/"
        )),
        "{printed}"
    );

    let out = curl(&["--socks5-hostname", &socks, "http://echo.demo:8080/socks"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "echo: GET /socks\n",
        "{out:?}"
    );
    let out = curl(&[
        "--proxytunnel",
        "-x",
        &proxy,
        "http://echo.demo:8080/connect",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "echo: GET /connect\n",
        "{out:?}"
    );
    let out = curl(&[&tunnel]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "echo: GET /tunnel\n",
        "{out:?}"
    );
    demo.wait_stderr("service=echo.demo ");

    // SOCKS5 reply 2: connection not allowed by ruleset.
    let out = curl(&["--socks5-hostname", &socks, "http://secret.demo:8080/"]);
    assert_eq!(out.status.code(), Some(97), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(2)"),
        "{out:?}"
    );
    let out = curl(&["--proxytunnel", "-x", &proxy, "http://secret.demo:8080/"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    demo.wait_stderr("only-ops-may-use-secret");
    assert!(!demo.stderr().contains("secret: GET"), "{}", demo.stderr());

    // Agent A's admin endpoint counts the three flows that reached echo.demo.
    let metrics = curl(&[&format!("http://127.0.0.1:{}/metrics", base + 8)]);
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("warren_tcp_connections_opened_total{")
                && l.contains("destination_service=\"echo.demo\"")
                && l.ends_with(" 3")),
        "{text}"
    );
}

#[test]
fn demo_on_tokio_answers_curl() {
    demo_answers_curl("tokio", 25100);
}

#[test]
fn demo_on_smol_answers_curl() {
    demo_answers_curl("smol", 25200);
}

/// `warren demo --hub`: the same curl commands work with neither agent
/// listening for HBONE, through the hub; the denial still comes from B.
fn demo_with_a_hub_answers_curl(runtime: &str, base: u16) {
    let (demo, printed) = start_demo(&["--hub"], runtime, base);
    assert!(
        printed.contains("dials out only (no HBONE port)"),
        "{printed}"
    );
    let socks = format!("127.0.0.1:{}", base + 1);
    // The agents reach the hub within moments of starting.
    let deadline = std::time::Instant::now() + support::WAIT;
    let out = loop {
        let out = curl(&["--socks5-hostname", &socks, "http://echo.demo:8080/hub"]);
        if out.status.success() || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "echo: GET /hub\n",
        "{out:?}"
    );
    let out = curl(&[&format!("http://127.0.0.1:{}/tunnel", base + 3)]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "echo: GET /tunnel\n");
    // B served the flows knowing A's identity (whether the hub relayed
    // them as they are or as an end-to-end session between A and B).
    demo.wait_stderr("direction=inbound source=spiffe://demo.warren/ns/web/sa/client");
    let out = curl(&["--socks5-hostname", &socks, "http://secret.demo:8080/"]);
    assert_eq!(out.status.code(), Some(97), "{out:?}");
    demo.wait_stderr("only-ops-may-use-secret");
    // The process listens on the printed ports and no others: A's three
    // front ends, the hub and its admin, the two services, the two agents'
    // admin endpoints. Neither agent has an HBONE port.
    let expected: BTreeSet<u16> = (1..=9).map(|offset| base + offset).collect();
    assert_eq!(listening_ports(demo.pid()), expected);
}

#[test]
fn demo_with_a_hub_answers_curl_on_tokio() {
    demo_with_a_hub_answers_curl("tokio", 25300);
}

#[test]
fn demo_with_a_hub_answers_curl_on_smol() {
    demo_with_a_hub_answers_curl("smol", 25400);
}
