//! Head-of-line blocking end to end: A's flows to B share one pooled inner
//! connection through the hub. Receivers that stop reading hold its whole
//! connection window, and A's pool opens a second inner connection (a new
//! pair stream) for the next flow. Windows are the defaults scaled down
//! 16× (256 KiB per stream, 1 MiB per connection, congestion below 64 KiB).

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{pattern, TUNNEL};
use node_harness::hubs::HubMesh;
use node_harness::World;
use warren_proto::h2;
use warren_proto::hub::HubEvent;
use warren_proto::node::{CloseReason, NodeEvent};
use warren_proto::pool::PoolConfig;

const A: usize = 1;

fn scaled_h2() -> h2::Config {
    h2::Config {
        initial_stream_window: 256 << 10,
        initial_connection_window: 1 << 20,
        ..h2::Config::default()
    }
}

/// The one-hub [`HubMesh`] (node 0 the hub, node 1 agent A, node 2 agent
/// B exporting echo.shop:80 end to end), every node with the scaled
/// windows.
fn setup() -> World {
    let mut mesh = HubMesh::new(&Ca::new(1)).h2(scaled_h2());
    mesh.a.pool = PoolConfig {
        congestion_window: 64 << 10,
        ..PoolConfig::default()
    };
    let mut world = mesh.world();
    world.run();
    world
}

/// Inner handshakes A completed.
fn inner_connections(world: &World) -> usize {
    world
        .events_of(A)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::Hub(HubEvent::EndToEndUp { .. })))
        .count()
}

fn congested_edges(world: &World) -> usize {
    world
        .events_of(A)
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                NodeEvent::PoolCongestion {
                    congested: true,
                    ..
                }
            )
        })
        .count()
}

#[test]
fn a_flow_behind_four_stalled_readers_gets_a_second_inner_connection() {
    let mut world = setup();
    let stalled = world.stall_readers(TUNNEL, 4, 400 << 10);
    assert_eq!(inner_connections(&world), 1);
    assert_eq!(congested_edges(&world), 1);
    let data = pattern(100_000, 9);
    let fifth = world.flow(TUNNEL, &data);
    assert!(world.net.apps[fifth].received == data, "echoed byte-exact");
    assert_eq!(inner_connections(&world), 2, "a second inner connection");
    // The readers resume: the stalled four finish, no byte lost.
    world.resume_readers(&stalled);
    for (i, (app, data)) in stalled.iter().enumerate() {
        assert!(world.net.apps[*app].received == *data, "flow {i} echoed");
    }
    assert_eq!(world.close_reasons(A), vec![CloseReason::Done; 5]);
}
