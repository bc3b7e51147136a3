//! `warren demo` end to end with curl: the three documented ways in work,
//! the documented denied request fails with the documented errors and the
//! log names the rule.

mod support;

use support::{curl, warren, Running};

fn demo_answers_curl(runtime: &str, base: u16) {
    let mut cmd = warren();
    cmd.args([
        "demo",
        "--runtime",
        runtime,
        "--port-base",
        &base.to_string(),
    ]);
    let demo = Running::start(cmd);
    let printed = demo.wait_stdout("ready").join("\n");
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
#[test]
fn demo_with_a_hub_answers_curl() {
    let base = 25300;
    let mut cmd = warren();
    cmd.args(["demo", "--hub", "--port-base", &base.to_string()]);
    let demo = Running::start(cmd);
    let printed = demo.wait_stdout("ready").join("\n");
    assert!(printed.contains("no open port"), "{printed}");
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
    // End to end by default: A and B run their own TLS session through
    // the hub (which logs the relayed stream only when it closes).
    demo.wait_stderr("end-to-end up");
    let out = curl(&["--socks5-hostname", &socks, "http://secret.demo:8080/"]);
    assert_eq!(out.status.code(), Some(97), "{out:?}");
    demo.wait_stderr("only-ops-may-use-secret");
}
