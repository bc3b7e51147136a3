//! The pool remembers the stream limit a peer announced
//! (SETTINGS_MAX_CONCURRENT_STREAMS) and uses it for the next connections
//! to that peer: flows opened at once go to as many new connections as
//! the limit needs, instead of piling onto one handshake that will refuse
//! all but two of them.

mod node_harness;

use node_harness::config::echo_endpoint;
use node_harness::raw_peer::{open_flows, RawPeer};
use node_harness::World;
use warren_proto::node::CloseReason;
use warren_proto::time::Instant;

const AGENT: usize = 0;

fn dials(world: &World) -> usize {
    world.dials(AGENT, echo_endpoint(0).hbone)
}

#[test]
fn ten_flows_at_once_open_no_more_than_the_peers_two_streams_per_connection() {
    let (mut world, mut peer) = RawPeer::world(2);
    // A first flow: the agent learns the peer allows 2 streams.
    let first = open_flows(&mut world, 1, 0);
    peer.pump(&mut world);
    peer.finish(&mut world, &first);
    assert_eq!(dials(&world), 1);
    // Ten at once, before the peer says anything: the idle connection
    // takes 2, and the other 8 go to 4 new connections dialled at once
    // (without the remembered limit all ten wait on the first one).
    let ten = open_flows(&mut world, 10, 100);
    world.run();
    assert_eq!(dials(&world), 5, "four more dialled at once");
    peer.pump(&mut world);
    assert_eq!(peer.sessions.len(), 5);
    for (i, s) in peer.sessions.iter().enumerate() {
        assert!(s.most_open <= 2, "connection {i}: {} streams", s.most_open);
    }
    peer.finish(&mut world, &ten);
    assert_eq!(world.close_reasons(AGENT), vec![CloseReason::Done; 11]);
}

#[test]
fn the_remembered_limit_outlives_the_peers_last_connection() {
    let (mut world, mut peer) = RawPeer::world(2);
    let first = open_flows(&mut world, 1, 0);
    peer.pump(&mut world);
    peer.finish(&mut world, &first);
    // The pool's idle timeout (60 s) closes the connection.
    world.advance_to(Instant::from_nanos(61_000_000_000));
    peer.pump(&mut world);
    assert_eq!(
        world.nodes[AGENT]
            .connections()
            .filter(|c| c.pooled)
            .count(),
        0
    );
    // A fresh pool for the key, but the key remembers 2: ten flows dial
    // five connections at once, each carrying two.
    let ten = open_flows(&mut world, 10, 100);
    world.run();
    assert_eq!(dials(&world), 6, "five more dialled at once");
    peer.pump(&mut world);
    for s in &peer.sessions {
        assert!(s.most_open <= 2, "{} streams", s.most_open);
    }
    peer.finish(&mut world, &ten);
    assert_eq!(world.close_reasons(AGENT), vec![CloseReason::Done; 11]);
}
