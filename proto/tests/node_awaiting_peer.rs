//! `Node::awaiting_peer`: what a host asks before it spins instead of
//! parking. True while a handshake or a young flow waits for its peer's
//! first answer; false once the answer came, for flows older than the
//! horizon, and for a node that only holds established flows.

mod node_harness;

use std::time::Duration;

use node_harness::certs::Ca;
use node_harness::config::{addr, DirectPair, ECHO, TUNNEL};
use node_harness::{Server, World};
use quickcheck::{QuickCheck, TestResult};
use warren_proto::node::AWAIT_HORIZON;

/// A warm pair (one flow has run both ways and stays open), with the
/// first flow's answer in.
fn warm_pair() -> World {
    let mut world = DirectPair::new(&Ca::new(1)).world();
    let warm = world.open_flow(TUNNEL, b"warm");
    assert_eq!(world.net.apps[warm].received, b"warm", "the warm-up flow");
    world
}

fn awaiting(world: &World, n: usize) -> bool {
    world.nodes[n].awaiting_peer(world.now)
}

#[test]
fn a_node_with_only_established_flows_awaits_nothing() {
    let world = warm_pair();
    assert!(!awaiting(&world, 0));
    assert!(!awaiting(&world, 1));
}

#[test]
fn each_side_awaits_the_first_answer_until_it_comes() {
    let mut world = warm_pair();
    let app = world.connect_app_with(addr(TUNNEL), b"E");
    // Node 0 sent the CONNECT and the byte; node 1 has not seen them.
    assert!(awaiting(&world, 0), "the opener waits for the 200");
    assert!(!awaiting(&world, 1));
    // Node 1 answers, but node 0 does not hear it yet.
    world.net.held.insert(0);
    world.run();
    assert!(awaiting(&world, 0), "no answer delivered to node 0");
    assert!(!awaiting(&world, 1), "node 1 relayed both ways");
    world.net.held.remove(&0);
    world.run();
    assert_eq!(world.net.apps[app].received, b"E");
    assert!(!awaiting(&world, 0), "the first bytes came back");
    assert!(!awaiting(&world, 1));
}

#[test]
fn a_target_that_stays_silent_is_awaited_only_within_the_horizon() {
    let mut world = warm_pair();
    world.add_server(addr(ECHO), Server::Sink);
    world.connect_app_with(addr(TUNNEL), b"E");
    world.run();
    // The 200 came and the byte reached the target, which says nothing.
    assert!(
        awaiting(&world, 0),
        "the client waits for the first bytes back"
    );
    assert!(
        awaiting(&world, 1),
        "node 1 waits for the target's first bytes"
    );
    let edge = world.now + AWAIT_HORIZON;
    assert!(world.nodes[0].awaiting_peer(edge));
    let past = edge + Duration::from_micros(1);
    assert!(!world.nodes[0].awaiting_peer(past));
    assert!(!world.nodes[1].awaiting_peer(past));
}

#[test]
fn a_cold_node_awaits_its_handshake() {
    let mut world = DirectPair::new(&Ca::new(1)).world();
    world.connect_app_with(addr(TUNNEL), b"E");
    // Node 0 dialed node 1 and sent its ClientHello; hold node 0 so the
    // handshake stays in flight, however long it takes.
    world.net.held.insert(0);
    world.run();
    assert!(world.nodes[0].handshaking());
    let much_later = world.now + Duration::from_secs(5);
    assert!(world.nodes[0].awaiting_peer(much_later));
}

/// Any number of flows opened over time, each answered or not: the node
/// awaits exactly when a flow opened within the horizon is unanswered.
#[test]
fn awaiting_follows_the_young_unanswered_flows() {
    fn prop(plan: Vec<(u8, bool)>) -> TestResult {
        let plan: Vec<(u8, bool)> = plan.into_iter().take(8).collect();
        let mut world = warm_pair();
        let mut opened = Vec::new();
        for &(gap_100us, answered) in &plan {
            world.now = world.now + Duration::from_micros(100 * u64::from(gap_100us % 16));
            let server = if answered { Server::Echo } else { Server::Sink };
            world.add_server(addr(ECHO), server);
            world.connect_app_with(addr(TUNNEL), b"E");
            world.run();
            opened.push((world.now, answered));
        }
        for probe_us in [0, 500, 1000, 1001, 2000] {
            let at = world.now + Duration::from_micros(probe_us);
            let expected = opened.iter().any(|&(started, answered)| {
                !answered && at.saturating_duration_since(started) <= AWAIT_HORIZON
            });
            let got = world.nodes[0].awaiting_peer(at);
            if got != expected {
                return TestResult::error(format!(
                    "{plan:?} at +{probe_us} µs: awaiting {got}, expected {expected}"
                ));
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(40)
        .quickcheck(prop as fn(Vec<(u8, bool)>) -> TestResult);
}
