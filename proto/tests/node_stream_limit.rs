//! A peer's stream limit: a connection that cannot open a stream sends the
//! flow to another connection, a bounded number of times, and a flow that
//! finds none is refused with a reason that says so. No flow is lost
//! silently, none recurses without end.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{addr, cart_over, echo_endpoint, endpoint_node, pattern, TUNNEL};
use node_harness::raw_peer::{open_flows, RawPeer};
use node_harness::World;
use warren_proto::node::CloseReason;

const AGENT: usize = 0;

/// The agent (node 0, tunnel 127.0.0.1:9000 → echo.shop:80 over
/// endpoints 0 and 1), endpoint 0 exporting another service (it answers
/// each CONNECT 503 with END_STREAM) and allowing `stale_streams` streams,
/// endpoint 1 serving echo.shop.
fn stale_endpoint_world(stale_streams: u32) -> World {
    let ca = Ca::new(1);
    let mut world = World::new();
    world.add_node(cart_over(&ca, vec![echo_endpoint(0), echo_endpoint(1)]));
    let mut stale = endpoint_node(&ca, 0, "other.shop", "127.0.1.0:8080");
    stale.h2.max_concurrent_streams = stale_streams;
    world.add_node(stale);
    world.add_node(endpoint_node(&ca, 1, "echo.shop", "127.0.1.1:8080"));
    world.add_echo_server(addr("127.0.1.1:8080"));
    world.run();
    world
}

#[test]
fn refused_streams_on_a_small_peer_never_recurse_and_lose_no_flow() {
    // Endpoint 0 allows 2 streams and answers every CONNECT 503. The
    // flows that try it go on to endpoint 1 before any byte; none may
    // leave a stream behind that makes the pool hand the full connection
    // back for ever.
    let mut world = stale_endpoint_world(2);
    for i in 0..12 {
        let data = pattern(5_000, i);
        let app = world.flow(TUNNEL, &data);
        assert!(
            world.net.apps[app].received == data,
            "flow {i}: echoed byte-exact"
        );
    }
    assert_eq!(world.outbound_closes(AGENT), vec![CloseReason::Done; 12]);
    // A 503 with END_STREAM ends our side too: the refused streams do
    // not pile up, so one connection to endpoint 0 serves every attempt.
    assert_eq!(world.dials(AGENT, echo_endpoint(0).hbone), 1);
}

fn dials(world: &World) -> usize {
    world.dials(AGENT, echo_endpoint(0).hbone)
}

#[test]
fn a_peer_lowering_its_stream_limit_mid_flight_loses_no_flow() {
    let (mut world, mut peer) = RawPeer::world(1000);
    // Three long flows open on the first connection...
    let first = open_flows(&mut world, 3, 0);
    peer.pump(&mut world);
    assert_eq!(dials(&world), 1);
    // ... whose peer then allows no stream at all.
    peer.lower_limit(&mut world, 0, 0);
    // Twenty flows at once while the three are still open go elsewhere.
    let second = open_flows(&mut world, 20, 100);
    peer.pump(&mut world);
    peer.finish(&mut world, &second);
    assert_eq!(dials(&world), 2, "one new connection for the twenty");
    // The first three end; their connection now has no stream open and
    // still allows none: new flows must not be refused there.
    peer.finish(&mut world, &first);
    let third = open_flows(&mut world, 10, 200);
    peer.pump(&mut world);
    peer.finish(&mut world, &third);
    assert_eq!(world.outbound_closes(AGENT), vec![CloseReason::Done; 33]);
    assert_eq!(dials(&world), 2, "the second connection carried the rest");
}

#[test]
fn a_peer_allowing_one_stream_per_connection_opens_or_refuses_every_flow_with_the_reason() {
    // Every connection of this peer allows a single stream: twenty flows
    // opened at once wait on one handshake, and all but one move on. Each
    // flow opens on a connection of its own or is refused saying why;
    // none is lost, and the agent dials at most one connection per
    // refusal a flow may take.
    let (mut world, mut peer) = RawPeer::world(1);
    let flows = open_flows(&mut world, 20, 0);
    peer.pump(&mut world);
    for (app, _) in &flows {
        world.app_shutdown(*app);
    }
    peer.pump(&mut world);
    let closes = world.outbound_closes(AGENT);
    assert_eq!(closes.len(), 20, "every flow accounted for: {closes:?}");
    for reason in &closes {
        assert!(
            matches!(
                reason,
                CloseReason::Done | CloseReason::StreamLimit { refusals: 8 }
            ),
            "{reason}"
        );
    }
    let done = closes.iter().filter(|r| **r == CloseReason::Done).count();
    let echoed = flows
        .iter()
        .filter(|(app, data)| world.net.apps[*app].received == *data)
        .count();
    let refused = flows
        .iter()
        .filter(|(app, _)| world.net.apps[*app].received.is_empty())
        .count();
    assert_eq!((echoed, refused), (done, 20 - done));
    assert!(done >= 8, "{done} flows opened");
    assert!(dials(&world) <= 20, "{} dials", dials(&world));
    println!("{done} of 20 opened, {} dials", dials(&world));
}
