//! Issue 6's end-to-end tests: two real `warren agent` processes with
//! certificates from `warren ca`, on tokio and on smol, reached by real
//! clients (curl, iperf3, std sockets):
//! - curl through A's SOCKS5 (`--socks5-hostname`), HTTP CONNECT
//!   (`--proxytunnel`) and tunnel port, body bytes checked; a denied
//!   destination gets SOCKS5 reply 2 / HTTP 403 and B logs the rule;
//! - `/metrics` of both agents parses as Prometheus text and its byte
//!   counters equal the bytes sent;
//! - iperf3 through a tunnel for 5 s, byte counts checked;
//! - a policy reload while long flows run: the still-allowed flow carries
//!   on, the now-denied one is closed, logs and metrics say so;
//! - `kill -9` of B mid-transfer: A's flow ends with a reset reason,
//!   nothing hangs, and the pool reconnects once B is back.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::prometheus::{self, Sample};
use support::two_agents::{
    admin_get, body_of, exchange, pattern, signal, TwoAgents, CLIENT, SECRET_RULE, SERVER,
};
use support::{curl, free_port, Running, WAIT};

/// The samples of `port`'s `/metrics`, which must parse.
fn metrics(port: u16) -> Vec<Sample> {
    let text = admin_get(port, "/metrics");
    prometheus::parse(&text)
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{text}"))
}

/// Scrapes `port` until `done` holds: a counter moves a moment after the
/// bytes it counts (the agent counts a write once the socket took it).
/// Bounded by [`WAIT`] as a hang guard, not as a performance bound.
fn metrics_until(port: u16, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + WAIT;
    loop {
        let samples = metrics(port);
        if done(&samples) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never got there: {samples:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A counter of one service and direction, summed over other labels.
fn count(samples: &[Sample], name: &str, service: &str, direction: &str) -> f64 {
    prometheus::sum(
        samples,
        name,
        &[("destination_service", service), ("direction", direction)],
    )
}

fn curl_body(args: &[&str]) -> Vec<u8> {
    let out = curl(args);
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    out.stdout
}

fn curl_through_socks5_proxy_and_tunnel(runtime: &str) {
    let pair = TwoAgents::new("curl", runtime);
    let (a, b) = pair.start_both();
    let socks = format!("127.0.0.1:{}", pair.socks);
    let proxy = format!("http://127.0.0.1:{}", pair.proxy);
    let body = body_of(300_000);
    let got = curl_body(&[
        "--socks5-hostname",
        &socks,
        "http://web.test:80/bytes/300000",
    ]);
    assert!(got == body, "SOCKS5: {} B, not the 300000 sent", got.len());
    let got = curl_body(&[
        "--proxytunnel",
        "-x",
        &proxy,
        "http://web.test:80/bytes/300000",
    ]);
    assert!(
        got == body,
        "HTTP CONNECT: {} B, not the 300000 sent",
        got.len()
    );
    let tunnel = format!("http://127.0.0.1:{}/bytes/300000", pair.web_tunnel);
    let got = curl_body(&[&tunnel]);
    assert!(got == body, "tunnel: {} B, not the 300000 sent", got.len());
    let got = curl_body(&["--socks5-hostname", &socks, "http://web.test:80/hello"]);
    assert_eq!(got, b"web: GET /hello\n");

    // Denied by B's rule: SOCKS5 reply 2 (curl exit 97), HTTP 403.
    let out = curl(&["--socks5-hostname", &socks, "http://secret.test:80/"]);
    assert_eq!(out.status.code(), Some(97), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(2)"),
        "{out:?}"
    );
    let out = curl(&["--proxytunnel", "-x", &proxy, "http://secret.test:80/"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("403"),
        "{out:?}"
    );
    assert!(!out.stdout.starts_with(b"secret"), "{out:?}");
    // One denial line per refused flow; B's stderr reaches us a moment
    // after curl's answer.
    let denial = format!("rule={SECRET_RULE}");
    let denials = |log: &str| {
        log.lines()
            .filter(|l| l.contains("WARN policy denied") && l.contains(&denial))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + WAIT;
    while denials(&b.stderr()).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = b.stderr();
    let lines = denials(&log);
    assert_eq!(lines.len(), 2, "one denial line per refused flow:\n{log}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains(&format!("source={CLIENT}"))),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("service=secret.test") && l.contains("reason=done")),
        "{log}"
    );

    // A counts four flows to web.test and none opened to secret.test.
    let samples = metrics_until(pair.a_admin, |s| {
        count(
            s,
            "warren_tcp_connections_closed_total",
            "web.test",
            "outbound",
        ) == 4.0
    });
    assert_eq!(
        count(
            &samples,
            "warren_tcp_connections_opened_total",
            "web.test",
            "outbound"
        ),
        4.0
    );
    assert_eq!(
        count(
            &samples,
            "warren_tcp_connections_opened_total",
            "secret.test",
            "outbound"
        ),
        0.0
    );
    drop((a, b));
}

fn metrics_count_the_bytes(runtime: &str) {
    let pair = TwoAgents::new("metrics", runtime);
    let (a, b) = pair.start_both();
    let data = pattern(1_000_003);
    let got = exchange(pair.echo_tunnel, &data);
    assert!(got == data, "echoed {} B", got.len());
    let n = data.len() as f64;
    let sent = "warren_tcp_sent_bytes_total";
    let received = "warren_tcp_received_bytes_total";
    let closed = "warren_tcp_connections_closed_total";
    // Both sides label the flow with the service name, without the port.
    for (admin, service, direction, peer_label, peer) in [
        (
            pair.a_admin,
            "echo.test",
            "outbound",
            "destination_identity",
            SERVER,
        ),
        (
            pair.b_admin,
            "echo.test",
            "inbound",
            "source_identity",
            CLIENT,
        ),
    ] {
        let samples = metrics_until(admin, |s| count(s, closed, service, direction) == 1.0);
        assert_eq!(
            count(&samples, sent, service, direction),
            n,
            "{direction}: {samples:#?}"
        );
        assert_eq!(
            count(&samples, received, service, direction),
            n,
            "{direction}"
        );
        assert_eq!(
            count(
                &samples,
                "warren_tcp_connections_opened_total",
                service,
                direction
            ),
            1.0
        );
        assert_eq!(
            prometheus::sum(
                &samples,
                sent,
                &[(peer_label, peer), ("direction", direction)]
            ),
            n,
            "{direction}: the peer's identity labels the bytes"
        );
        assert_eq!(
            prometheus::sum(
                &samples,
                closed,
                &[("reason", "done"), ("direction", direction)]
            ),
            1.0
        );
        assert_eq!(prometheus::sum(&samples, "warren_flows_open", &[]), 0.0);
    }
    drop((a, b));
}

fn iperf3_through_a_tunnel(runtime: &str) {
    let pair = TwoAgents::new("iperf3", runtime);
    let (server_port, tunnel) = (free_port(), free_port());
    pair.write_b(&format!(
        "[[export]]\nservice = \"iperf.test\"\nport = 5201\ntarget = \"127.0.0.1:{server_port}\"\n"
    ));
    pair.write_a(&format!(
        "[[tunnel]]\nlisten = \"127.0.0.1:{tunnel}\"\nto = \"iperf.test:5201\"\n\
         [[service]]\nname = \"iperf.test\"\nendpoints = {}\n",
        pair.endpoints()
    ));
    let mut cmd = Command::new("iperf3");
    cmd.args(["-s", "-1", "--forceflush", "-p", &server_port.to_string()]);
    let server = Running::start(cmd);
    server.wait_stdout("Server listening");
    let (a, b) = pair.start_both();
    let out = Command::new("timeout")
        .args([
            "60",
            "iperf3",
            "-c",
            "127.0.0.1",
            "-p",
            &tunnel.to_string(),
            "-t",
            "5",
            "-J",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run iperf3 (apt-get install iperf3)");
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let end = &report["end"];
    let sent = end["sum_sent"]["bytes"].as_u64().unwrap();
    let received = end["sum_received"]["bytes"].as_u64().unwrap();
    let seconds = end["sum_sent"]["seconds"].as_f64().unwrap();
    assert!(seconds >= 4.9, "ran {seconds} s");
    assert!(sent > 0, "{report}");
    // The bytes pass four counters in order, and each sees at most what
    // the one before it saw (plus the control connection's few kilobytes
    // of JSON): when the test ends, iperf3's server stops reading and
    // closes, and whatever was in flight is dropped downstream.
    let outbound = |s: &[Sample], name| count(s, name, "iperf.test", "outbound");
    let inbound = |s: &[Sample], name| count(s, name, "iperf.test", "inbound");
    let closed = "warren_tcp_connections_closed_total";
    let a_samples = metrics_until(pair.a_admin, |s| outbound(s, closed) >= 2.0);
    let b_samples = metrics_until(pair.b_admin, |s| inbound(s, closed) >= 2.0);
    let a_read = outbound(&a_samples, "warren_tcp_sent_bytes_total");
    let b_wrote = inbound(&b_samples, "warren_tcp_received_bytes_total");
    let (sent, received) = (sent as f64, received as f64);
    let chain =
        format!("client sent {sent}, A read {a_read}, B wrote {b_wrote}, server got {received}");
    let control = 65536.0;
    assert!(a_read <= sent + control, "{chain}");
    assert!(b_wrote <= a_read, "{chain}");
    assert!(received <= b_wrote, "{chain}");
    // In flight at the end: at most the flow windows (4 MiB) and six
    // loopback socket buffers (a few MiB each), whatever the throughput.
    assert!(sent - received <= (64 << 20) as f64, "{chain}");
    assert!(received > 0.0, "{chain}");
    for samples in [&a_samples, &b_samples] {
        assert_eq!(prometheus::sum(samples, "warren_flows_open", &[]), 0.0);
    }
    drop((a, b, server));
}

/// An open flow through `port`: writes `msg`, reads it back.
fn ping(conn: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    conn.write_all(msg)?;
    let mut back = vec![0; msg.len()];
    conn.read_exact(&mut back)?;
    assert_eq!(back, msg);
    Ok(())
}

fn open(port: u16) -> TcpStream {
    let conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn
}

/// Reads until the flow ends; true if it ended with a reset.
fn wait_end(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(e) => panic!("the flow did not end: {e}"),
        }
    }
}

/// Reloads B's policy by SIGHUP or by just changing its file.
fn reload_closes_denied_flows_only(runtime: &str, by_signal: bool) {
    let pair = TwoAgents::new(
        if by_signal {
            "reload-hup"
        } else {
            "reload-file"
        },
        runtime,
    );
    let (a, b) = pair.start_both();
    let mut doomed = open(pair.echo_tunnel);
    let mut spared = open(pair.echo2_tunnel);
    ping(&mut doomed, b"before").unwrap();
    ping(&mut spared, b"before").unwrap();

    pair.write_b(&format!(
        "[[authz.rule]]\nname = \"echo-closed\"\naction = \"deny\"\nservice = \"echo.test\"\nprincipals = [\"{CLIENT}\"]\n"
    ));
    if by_signal {
        signal(&b, "HUP");
        b.wait_stderr("reason=\"SIGHUP\"");
    } else {
        b.wait_stderr("reason=\"the file changed\"");
    }
    b.wait_stderr("closed_flows=1");
    wait_end(&mut doomed);
    ping(&mut spared, b"after the reload").unwrap();
    spared.shutdown(Shutdown::Write).unwrap();
    assert!(!wait_end(&mut spared), "the spared flow was reset");

    // B's access line names the reason and the rule; its metrics agree.
    b.wait_stderr("service=echo2.test ");
    let log = b.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("access flow closed") && l.contains("service=echo.test "))
        .unwrap_or_else(|| panic!("no access line for the closed flow:\n{log}"));
    assert!(
        line.contains("reconfigured") && line.contains("rule=echo-closed"),
        "{line}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("access flow closed") && l.contains("service=echo2.test "))
        .unwrap();
    assert!(line.contains("reason=done"), "{line}");
    let closed = "warren_tcp_connections_closed_total";
    let samples = metrics_until(pair.b_admin, |s| {
        count(s, closed, "echo2.test", "inbound") == 1.0
    });
    let by_reason = |service, reason| {
        prometheus::sum(
            &samples,
            closed,
            &[("destination_service", service), ("reason", reason)],
        )
    };
    assert_eq!(by_reason("echo.test", "reconfigured"), 1.0);
    assert_eq!(by_reason("echo2.test", "done"), 1.0);
    // 6 bytes before the reload, 22 in all on the spared flow.
    assert_eq!(
        count(
            &samples,
            "warren_tcp_received_bytes_total",
            "echo2.test",
            "inbound"
        ),
        22.0
    );
    // A new flow is denied at once.
    assert!(exchange(pair.echo_tunnel, b"again").is_empty());
    drop((a, b));
}

fn reload_on_sighup_closes_denied_flows_only(runtime: &str) {
    reload_closes_denied_flows_only(runtime, true);
}

fn reload_on_file_change_closes_denied_flows_only(runtime: &str) {
    reload_closes_denied_flows_only(runtime, false);
}

fn kill_9_mid_transfer(runtime: &str) {
    let pair = TwoAgents::new("kill9", runtime);
    let (a, b) = pair.start_both();
    let mut conn = open(pair.echo_tunnel);
    let mut writer = conn.try_clone().unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let count_written = Arc::clone(&written);
    let sender = std::thread::spawn(move || {
        let chunk = pattern(64 << 10);
        // Writes until the flow breaks; bounded so a hang shows as a failure.
        for _ in 0..16_384 {
            if let Err(e) = writer.write_all(&chunk) {
                return Some(e.kind());
            }
            count_written.fetch_add(chunk.len(), Ordering::SeqCst);
        }
        None
    });
    let mut got = vec![0u8; 1 << 20];
    conn.read_exact(&mut got).unwrap();
    let mut b = b;
    signal(&b, "KILL");
    assert!(!b.wait_exit().success());
    // The flow ends with a reset, not a clean close: A closes the client's
    // socket with `reset: true`. The kernel reports the RST once, as
    // ECONNRESET to whichever call comes first: the writer (then the
    // reader sees only the end of the stream) or the reader.
    let reader_saw_reset = wait_end(&mut conn);
    drop(conn);
    let writer_error = sender.join().unwrap();
    assert!(
        reader_saw_reset || writer_error == Some(ErrorKind::ConnectionReset),
        "the client saw a clean close: reader reset {reader_saw_reset}, writer {writer_error:?}"
    );
    assert!(
        written.load(Ordering::SeqCst) < 16_384 * (64 << 10),
        "the writer never stopped"
    );

    // A's access line for the flow gives a reset reason, not "done".
    a.wait_stderr("service=echo.test ");
    let log = a.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("access flow closed") && l.contains("service=echo.test "))
        .unwrap();
    assert!(
        line.contains("connection lost") || line.contains("reset"),
        "{line}"
    );
    let samples = metrics_until(pair.a_admin, |s| {
        prometheus::sum(s, "warren_flows_open", &[]) == 0.0
    });
    assert_eq!(
        prometheus::sum(
            &samples,
            "warren_tcp_connections_closed_total",
            &[("reason", "done")]
        ),
        0.0
    );
    // Nothing reaches B while it is down: the flow ends, it does not hang.
    assert!(exchange(pair.echo_tunnel, b"nobody home").is_empty());

    // B comes back on the same ports; A's pool dials it again.
    let b = pair.start("b.toml");
    let data = pattern(100_000);
    assert!(
        exchange(pair.echo_tunnel, &data) == data,
        "no flow after B came back"
    );
    let samples = metrics(pair.a_admin);
    assert_eq!(
        prometheus::sum(&samples, "warren_pool_connections", &[]),
        1.0
    );
    drop((a, b));
}

macro_rules! on_both_runtimes {
    ($($case:ident),* $(,)?) => {
        mod tokio {
            $(#[test] fn $case() { super::$case("tokio"); })*
        }
        mod smol {
            $(#[test] fn $case() { super::$case("smol"); })*
        }
    };
}

on_both_runtimes!(
    curl_through_socks5_proxy_and_tunnel,
    metrics_count_the_bytes,
    iperf3_through_a_tunnel,
    reload_on_sighup_closes_denied_flows_only,
    reload_on_file_change_closes_denied_flows_only,
    kill_9_mid_transfer,
);
#[test]
fn prometheus_reader_refuses_what_the_format_forbids() {
    let good = "# HELP x_bytes Bytes.\n# TYPE x_bytes counter\nx_bytes_total{a=\"q\\\"\",b=\"\"} 3\n# EOF\n";
    let samples = prometheus::parse(good).unwrap();
    assert_eq!(samples[0].labels["a"], "q\"");
    assert_eq!(
        prometheus::sum(&samples, "x_bytes_total", &[("b", "")]),
        3.0
    );
    for bad in [
        "x_bytes_total 3\n# EOF\n",
        "# TYPE x counter\nx 1\n# EOF\n",
        "# TYPE x gauge\nx{a=\"1} 1\n# EOF\n",
        "# TYPE x gauge\nx one\n# EOF\n",
        "# TYPE x gauge\nx 1\nx 2\n# EOF\n",
        "# TYPE x gauge\nx 1\n",
        "# TYPE x gauge\n# EOF\nx 1\n",
        "# TYPE 1x gauge\n# EOF\n",
    ] {
        assert!(prometheus::parse(bad).is_err(), "{bad:?}");
    }
}
