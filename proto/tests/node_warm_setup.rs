//! Warm flow setup: a client's first bytes, read at the accept
//! (`drive::accept_and_read`), leave in the same write as the flow's
//! CONNECT, so the peer wakes once for both; the early-data rules still
//! decide whether they go before the 200.

mod node_harness;

use std::time::Duration;

use node_harness::certs::Ca;
use node_harness::config::{addr, pattern, DirectPair, TUNNEL};
use node_harness::World;
use quickcheck::{QuickCheck, TestResult};

/// Node 0 tunnels 9000 → echo.shop:80; node 1 exports it to an echo
/// server. One flow has run, so node 0 holds a pooled connection to
/// node 1 that was heard from just now.
fn warm_pair() -> World {
    let mut world = DirectPair::new(&Ca::new(1)).world();
    let warm = world.open_flow(TUNNEL, b"warm");
    assert_eq!(world.net.apps[warm].received, b"warm", "the warm-up flow");
    world.net.transcript.clear();
    world
}

/// The sizes of node 0's writes in the transcript so far.
fn writes_of_node_0(world: &World) -> Vec<usize> {
    world
        .net
        .transcript
        .iter()
        .filter_map(|l| l.strip_prefix("0 write "))
        .map(|rest| {
            let taken = rest.split(' ').nth(1).and_then(|s| s.split('/').next());
            taken.and_then(|n| n.parse().ok()).expect("a write line")
        })
        .collect()
}

fn first_bytes_leave_with_the_connect(n: usize) -> TestResult {
    let mut world = warm_pair();
    let data = pattern(n, 0);
    let app = world.connect_app_with(addr(TUNNEL), &data);
    // Everything the accept caused went out in one write: the CONNECT
    // HEADERS and the DATA behind it (TLS adds its own bytes on top).
    let writes = writes_of_node_0(&world);
    if writes.len() != 1 || writes[0] < n {
        return TestResult::error(format!("{n} B at accept: node 0 wrote {writes:?}"));
    }
    world.run();
    if world.net.apps[app].received != data {
        return TestResult::error(format!(
            "{n} B at accept: {} B echoed",
            world.net.apps[app].received.len()
        ));
    }
    TestResult::passed()
}

#[test]
fn first_bytes_read_at_the_accept_leave_in_the_connects_write() {
    fn prop(n: u16) -> TestResult {
        // Up to the default early-data bound (16 KiB).
        first_bytes_leave_with_the_connect(usize::from(n % (16 * 1024)) + 1)
    }
    QuickCheck::new()
        .tests(40)
        .quickcheck(prop as fn(u16) -> TestResult);
}

#[test]
fn bytes_read_after_the_accept_cost_a_second_write() {
    // What the read at the accept saves: the same byte, fed one input
    // later, follows the CONNECT in a write of its own (and the peer
    // wakes up for each).
    let mut world = warm_pair();
    let app = world.connect_app(addr(TUNNEL));
    assert_eq!(writes_of_node_0(&world).len(), 1, "the CONNECT alone");
    world.app_write(app, b"E");
    world.run();
    assert_eq!(world.net.apps[app].received, b"E");
    let upto_reply = world
        .net
        .transcript
        .iter()
        .position(|l| l.starts_with("1 write "))
        .expect("node 1 answered");
    let before_reply = world.net.transcript[..upto_reply]
        .iter()
        .filter(|l| l.starts_with("0 write "))
        .count();
    assert_eq!(before_reply, 2, "{:#?}", world.net.transcript);
}

#[test]
fn on_a_quiet_connection_first_bytes_read_at_the_accept_wait_for_the_200() {
    // Past early_data_max_silence (1 s) the connection may be dead unnoticed:
    // the bytes read at the accept stay with node 0 until the 200, so the
    // CONNECT leaves alone, and the flow still works.
    let mut world = warm_pair();
    let later = world.nodes[0].now().saturating_add(Duration::from_secs(2));
    world.advance_to(later);
    world.net.transcript.clear();
    let data = pattern(1000, 0);
    let app = world.connect_app_with(addr(TUNNEL), &data);
    let writes = writes_of_node_0(&world);
    assert!(writes.len() == 1 && writes[0] < data.len(), "{writes:?}");
    assert!(world.nodes[0].held_bytes() >= data.len());
    world.run();
    assert_eq!(world.net.apps[app].received, data);
}

#[test]
fn a_flow_over_both_ways_closes_the_client_without_a_shutdown_first() {
    // The client half-closes, the target answers and closes: node 0 ends
    // both directions in one settle, and its close sends the FIN (no
    // shutdown(2) before it). Node 1 still half-closes its target, which
    // had to answer after the client's FIN.
    let mut world = warm_pair();
    let app = world.connect_app_with(addr(TUNNEL), b"E");
    world.app_shutdown(app);
    world.run();
    let got = &world.net.apps[app];
    assert!(got.received == b"E" && got.eof && !got.reset, "{got:?}");
    let lines = |prefix: &str| {
        world
            .net
            .transcript
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    };
    assert_eq!(lines("0 shutdown "), 0, "{:#?}", world.net.transcript);
    assert_eq!(lines("1 shutdown "), 1, "{:#?}", world.net.transcript);
    assert!(world
        .net
        .transcript
        .iter()
        .any(|l| l.starts_with("0 close ") && l.ends_with("reset=false")));
}
