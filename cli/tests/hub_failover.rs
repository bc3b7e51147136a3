//! Hubs and agents as real processes on loopback, on both runtimes, while
//! things fail: a hub killed with two up, a hub restarted on its port, the
//! serving agent restarted, and a second server of the same service coming
//! and going while long flows run.
//!
//! Every wait is on a condition (a log line, a flow that works) with the
//! generous [`support::WAIT`]; no test asserts how long anything took. The
//! failover test prints the time from the kill to the first new flow that
//! worked (`cargo test -- --nocapture` shows it).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::hub_mesh::{
    curl_until_ok, echo_once, echo_until_ok, EchoFlow, HubMesh, REPLICA, SERVER,
};
use support::prometheus;
use support::two_agents::{admin_get, signal};

/// Rounds of a long flow, and the bytes of each.
const ROUNDS: usize = 40;
const CHUNK: usize = 16 * 1024;

/// Bytes the hub with admin port `admin` relayed so far, both ways, over
/// every relayed stream (a flow's own, or in end-to-end mode the pair
/// stream its agents' inner connection runs in).
fn relayed_bytes(admin: u16) -> f64 {
    let samples = prometheus::parse(&admin_get(admin, "/metrics")).unwrap();
    let relayed = [("direction", "relayed")];
    prometheus::sum(&samples, "warren_tcp_sent_bytes_total", &relayed)
        + prometheus::sum(&samples, "warren_tcp_received_bytes_total", &relayed)
}

fn killing_one_of_two_hubs_keeps_the_others_flows(runtime: &str) {
    let mesh = HubMesh::loopback("failover", runtime, 2);
    let hub1 = mesh.start_hub(0);
    let hub2 = mesh.start_hub(1);
    let _b = mesh.start_agent("b");
    let a = mesh.start_agent("a");
    mesh.wait_relay_ready(0, &hub1, &a, 1, SERVER);
    mesh.wait_relay_ready(1, &hub2, &a, 1, SERVER);

    // A spreads new flows over its ready hubs in turn. Each flow's first
    // round (CHUNK bytes each way) shows in the byte count of the one hub
    // that carries it; control traffic is far smaller.
    let admins = [mesh.hubs[0].1, mesh.hubs[1].1];
    let mut flows = Vec::new();
    for i in 0..6 {
        let before = admins.map(relayed_bytes);
        let flow = EchoFlow::open(mesh.echo_tunnel, i, CHUNK).unwrap();
        let grew: Vec<usize> = (0..2)
            .filter(|&h| relayed_bytes(admins[h]) - before[h] >= CHUNK as f64)
            .collect();
        assert_eq!(grew.len(), 1, "flow {i} did not cross exactly one hub");
        flows.push((grew[0], flow));
    }
    let on_hub2 = flows.iter().filter(|(hub, _)| *hub == 1).count();
    assert!(
        on_hub2 > 0 && on_hub2 < flows.len(),
        "{on_hub2} of 6 flows on hub 2"
    );

    let killed = Instant::now();
    drop(hub1); // SIGKILL
    let mut failed = 0;
    let first_new = loop {
        if echo_once(mesh.echo_tunnel) {
            break killed.elapsed();
        }
        failed += 1;
        assert!(killed.elapsed() < support::WAIT, "no new flow worked");
    };
    eprintln!(
        "{runtime}: the first new flow worked {:.1} ms after hub 1 was killed, after {failed} failed",
        first_new.as_secs_f64() * 1e3
    );
    a.wait_stderr(&format!(
        "link down hub=127.0.0.1:{} kind=forward",
        mesh.hubs[0].0
    ));
    // Every flow hub 2 carried survives byte-exact; every flow hub 1
    // carried ends (cleanly: an error, never other bytes).
    for (i, (hub, mut flow)) in flows.into_iter().enumerate() {
        let whole = (1..ROUNDS)
            .try_for_each(|_| flow.round(CHUNK))
            .and_then(|()| flow.finish());
        match (hub, whole) {
            (1, Ok(bytes)) => assert_eq!(bytes, ROUNDS * CHUNK),
            (1, Err(e)) => panic!("flow {i} on hub 2 broke: {e}"),
            (_, Ok(_)) => panic!("flow {i} on the killed hub 1 went on"),
            (_, Err(_)) => {}
        }
    }
    eprintln!(
        "{runtime}: {on_hub2} flows on hub 2 survived byte-exact, {} on hub 1 ended",
        6 - on_hub2
    );
    // A knows hub 1 is gone: every new flow goes through hub 2 and works.
    for _ in 0..4 {
        assert!(echo_once(mesh.echo_tunnel));
    }
}

#[test]
fn killing_one_of_two_hubs_keeps_the_others_flows_on_tokio() {
    killing_one_of_two_hubs_keeps_the_others_flows("tokio");
}

#[test]
fn killing_one_of_two_hubs_keeps_the_others_flows_on_smol() {
    killing_one_of_two_hubs_keeps_the_others_flows("smol");
}

fn a_restarted_hub_is_redialled(runtime: &str) {
    let mesh = HubMesh::loopback("hub-restart", runtime, 1);
    let hub = mesh.start_hub(0);
    let b = mesh.start_agent("b");
    let a = mesh.start_agent("a");
    mesh.wait_relay_ready(0, &hub, &a, 1, SERVER);
    echo_until_ok(mesh.echo_tunnel);

    drop(hub); // SIGKILL
    b.wait_stderr("link down hub=");
    a.wait_stderr("link down hub=");
    assert!(!echo_once(mesh.echo_tunnel), "a flow worked with no hub");

    let hub = mesh.start_hub(0);
    // Both agents dial it again and B announces again.
    mesh.wait_relay_ready(0, &hub, &a, 2, SERVER);
    echo_until_ok(mesh.echo_tunnel);
    let body = curl_until_ok(mesh.socks, "http://web.demo:80/after-restart");
    assert_eq!(body, "B: GET /after-restart\n");
}

#[test]
fn a_restarted_hub_is_redialled_on_tokio() {
    a_restarted_hub_is_redialled("tokio");
}

#[test]
fn a_restarted_hub_is_redialled_on_smol() {
    a_restarted_hub_is_redialled("smol");
}

fn a_restarted_server_agent_is_reached_again(runtime: &str) {
    let mesh = HubMesh::loopback("agent-restart", runtime, 1);
    let hub = mesh.start_hub(0);
    let b = mesh.start_agent("b");
    let a = mesh.start_agent("a");
    mesh.wait_relay_ready(0, &hub, &a, 1, SERVER);
    curl_until_ok(mesh.socks, "http://web.demo:80/before");

    // SIGTERM: B drains and goes; the hub forgets its services.
    signal(&b, "TERM");
    hub.wait_stderr(&format!("agent disconnected {SERVER} "));
    // Meanwhile A's flows fail at once with a SOCKS5 error (curl exit 97),
    // not a hang: the hub answers 503 for a service nobody serves.
    let out = support::curl(&[
        "--socks5-hostname",
        &format!("127.0.0.1:{}", mesh.socks),
        "http://web.demo:80/meanwhile",
    ]);
    assert_eq!(out.status.code(), Some(97), "{out:?}");
    assert!(!echo_once(mesh.echo_tunnel));
    drop(b);

    let b = mesh.start_agent("b");
    let announced = format!("announced {SERVER} ");
    hub.wait_stderr_count(&announced, 2);
    let body = curl_until_ok(mesh.socks, "http://web.demo:80/after");
    assert_eq!(body, "B: GET /after\n");
    b.wait_stderr(&format!("source={}", support::hub_mesh::CLIENT));
}

#[test]
fn a_restarted_server_agent_is_reached_again_on_tokio() {
    a_restarted_server_agent_is_reached_again("tokio");
}

#[test]
fn a_restarted_server_agent_is_reached_again_on_smol() {
    a_restarted_server_agent_is_reached_again("smol");
}

fn registry_churn_breaks_no_running_flow(runtime: &str) {
    let mesh = HubMesh::loopback("churn", runtime, 1);
    let hub = mesh.start_hub(0);
    let _b = mesh.start_agent("b");
    let a = mesh.start_agent("a");
    mesh.wait_relay_ready(0, &hub, &a, 1, SERVER);

    // Long flows, all to B (C is not there yet), each on a thread that
    // keeps doing rounds until the churn is over.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4u8)
        .map(|i| {
            let mut flow = EchoFlow::open(mesh.echo_tunnel, i, CHUNK).unwrap();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut rounds = 1;
                while !stop.load(Ordering::SeqCst) || rounds < ROUNDS {
                    flow.round(CHUNK / 4).expect("a running flow broke");
                    rounds += 1;
                    // Paces the flow so it spans the churn (no assertion
                    // depends on it).
                    std::thread::sleep(Duration::from_millis(5));
                }
                (rounds, flow.finish().expect("a running flow broke"))
            })
        })
        .collect();

    // C comes and goes five times, alternately killed and stopped.
    let announced = format!("announced {REPLICA} ");
    let gone = format!("agent disconnected {REPLICA} ");
    for round in 1..=5 {
        let c = mesh.start_agent("c");
        hub.wait_stderr_count(&announced, round);
        // New flows may go to C while it is up; they work.
        assert!(echo_once(mesh.echo_tunnel));
        if round % 2 == 0 {
            signal(&c, "TERM");
        }
        drop(c);
        // Forward and reverse connection.
        hub.wait_stderr_count(&gone, 2 * round);
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        let (rounds, bytes) = worker.join().expect("a running flow broke");
        assert_eq!(bytes, CHUNK + (rounds - 1) * CHUNK / 4);
    }
    // C is gone for good: new flows all reach B.
    for _ in 0..4 {
        assert!(echo_once(mesh.echo_tunnel));
    }
}

#[test]
fn registry_churn_breaks_no_running_flow_on_tokio() {
    registry_churn_breaks_no_running_flow("tokio");
}

#[test]
fn registry_churn_breaks_no_running_flow_on_smol() {
    registry_churn_breaks_no_running_flow("smol");
}
