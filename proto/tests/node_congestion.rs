//! Head-of-line blocking on a pooled connection: receivers that stop
//! reading hold the whole connection window, and the pool sends new flows
//! to another connection to the same peer until the window recovers.
//!
//! The HTTP/2 windows are the defaults scaled down 16× (256 KiB per
//! stream, 1 MiB per connection, congestion below 64 KiB) so the test
//! moves megabytes, not tens of them: four stalled streams fill the
//! connection window exactly as four 4 MiB streams fill 16 MiB.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{addr, pattern, DirectPair, HBONE_B, TUNNEL};
use node_harness::World;
use warren_proto::h2;
use warren_proto::node::{CloseReason, NodeEvent};
use warren_proto::pool::PoolConfig;

const AGENT: usize = 0;

fn scaled_h2() -> h2::Config {
    h2::Config {
        initial_stream_window: 256 << 10,
        initial_connection_window: 1 << 20,
        ..h2::Config::default()
    }
}

/// The [`DirectPair`] (agent tunnels to echo.shop at 10.0.0.2), both
/// nodes with the scaled windows; the agent spreads over at most
/// `max_connections` connections.
fn world(max_connections: u32) -> World {
    let mut pair = DirectPair::new(&Ca::new(1));
    pair.a.h2 = scaled_h2();
    pair.b.h2 = scaled_h2();
    pair.a.pool = PoolConfig {
        congestion_window: 64 << 10,
        max_connections_per_endpoint: max_connections,
        ..PoolConfig::default()
    };
    let mut world = pair.world();
    world.run();
    world
}

/// Opens a tunnel flow writing `data`; returns the client app.
fn start(world: &mut World, data: &[u8]) -> usize {
    let app = world.connect_app(addr(TUNNEL));
    world.app_write(app, data);
    app
}

fn dials(world: &World) -> usize {
    world.dials(AGENT, addr(HBONE_B))
}

/// The agent's congestion events, as (congested, streams).
fn congestion(world: &World) -> Vec<(bool, usize)> {
    world
        .events_of(AGENT)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::PoolCongestion {
                congested, streams, ..
            } => Some((*congested, *streams)),
            _ => None,
        })
        .collect()
}

/// Four flows of 400 KiB each whose echo servers do not read: their
/// streams hold 4 × 256 KiB, the whole connection window.
fn stall_four(world: &mut World) -> Vec<(usize, Vec<u8>)> {
    world.stall_readers(TUNNEL, 4, 400 << 10)
}

#[test]
fn a_flow_started_behind_four_stalled_readers_completes_on_a_second_connection() {
    let mut world = world(4);
    let stalled = stall_four(&mut world);
    assert_eq!(dials(&world), 1);
    assert_eq!(
        congestion(&world),
        vec![(true, 4)],
        "one edge, four streams"
    );
    for (app, _) in &stalled {
        assert!(world.net.apps[*app].received.len() < 400 << 10);
    }
    // A fifth flow: it must not wait behind the stalled four.
    let data = pattern(100_000, 9);
    let fifth = start(&mut world, &data);
    world.app_shutdown(fifth);
    world.run();
    assert!(world.net.apps[fifth].received == data, "echoed byte-exact");
    assert!(world.net.apps[fifth].eof);
    assert_eq!(dials(&world), 2, "one more connection, no more");
    assert_eq!(
        world.close_reasons(AGENT),
        vec![CloseReason::Done],
        "the fifth flow closed cleanly; the four still stall"
    );
    assert_eq!(world.streams_per_connection(AGENT), vec![4, 0]);
}

#[test]
fn the_congested_connection_takes_flows_again_once_its_readers_resume() {
    let mut world = world(4);
    let stalled = stall_four(&mut world);
    let fifth = start(&mut world, &pattern(1000, 9));
    world.run();
    assert_eq!(world.streams_per_connection(AGENT), vec![4, 1]);
    // The readers resume and the four flows finish: no byte lost.
    world.resume_readers(&stalled);
    for (i, (app, data)) in stalled.iter().enumerate() {
        assert!(world.net.apps[*app].received == *data, "flow {i} echoed");
        assert!(world.net.apps[*app].eof, "flow {i} closed");
    }
    let events = congestion(&world);
    assert_eq!(events.first(), Some(&(true, 4)));
    assert_eq!(events.last().map(|e| e.0), Some(false), "{events:?}");
    // The window is back: a new flow goes to the first connection again.
    let data = pattern(50_000, 10);
    let sixth = start(&mut world, &data);
    world.run();
    assert_eq!(world.streams_per_connection(AGENT), vec![1, 1]);
    world.app_shutdown(fifth);
    world.app_shutdown(sixth);
    world.run();
    assert!(world.net.apps[sixth].received == data);
    assert_eq!(world.close_reasons(AGENT), vec![CloseReason::Done; 6]);
    assert_eq!(dials(&world), 2);
}

#[test]
fn at_the_per_endpoint_limit_new_flows_wait_on_the_congested_connection() {
    // One connection allowed: the fifth flow joins the stalled ones'
    // connection and waits for its window, as before spreading existed.
    let mut world = world(1);
    let stalled = stall_four(&mut world);
    let data = pattern(100_000, 9);
    let fifth = start(&mut world, &data);
    world.app_shutdown(fifth);
    world.run();
    assert_eq!(dials(&world), 1);
    assert!(world.net.apps[fifth].received.len() < data.len());
    assert_eq!(world.streams_per_connection(AGENT), vec![5]);
    // Once the readers resume, it completes too.
    world.resume_readers(&stalled);
    assert!(world.net.apps[fifth].received == data);
    assert_eq!(world.close_reasons(AGENT), vec![CloseReason::Done; 5]);
}
