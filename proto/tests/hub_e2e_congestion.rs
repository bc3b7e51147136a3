//! Head-of-line blocking end to end: A's flows to B share one pooled inner
//! connection through the hub. Receivers that stop reading hold its whole
//! connection window, and A's pool opens a second inner connection (a new
//! pair stream) for the next flow. Windows are the defaults scaled down
//! 16× (256 KiB per stream, 1 MiB per connection, congestion below 64 KiB).

mod node_harness;

use std::net::SocketAddr;

use node_harness::certs::Ca;
use node_harness::World;
use warren_proto::control::{AnnouncePolicy, ExportRule, ServiceAllowance};
use warren_proto::front::Target as FrontTarget;
use warren_proto::h2;
use warren_proto::hub::{HubEvent, HubLinks, HubRole, Route};
use warren_proto::node::{CloseReason, FrontConfig, FrontKind, NodeConfig, NodeEvent};
use warren_proto::policy::{Export, Exports, PrincipalPattern, ServiceName, Target};
use warren_proto::pool::PoolConfig;

const A: usize = 1;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn pattern(n: usize, salt: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i * 7 + salt * 13 + i / 251) as u8)
        .collect()
}

fn links() -> HubLinks {
    HubLinks {
        hubs: vec![addr("10.0.0.9:15009")],
        identities: vec![PrincipalPattern::new("spiffe://mesh.test/ns/mesh/sa/hub*").unwrap()],
        route: Route::DirectFirst,
        seed: 7,
        ..HubLinks::default()
    }
}

fn scaled_h2() -> h2::Config {
    h2::Config {
        initial_stream_window: 256 << 10,
        initial_connection_window: 1 << 20,
        ..h2::Config::default()
    }
}

/// Node 0 the hub, node 1 agent A (tunnel 9000 → echo.shop:80), node 2
/// agent B (exports echo.shop:80 end to end).
fn setup() -> World {
    let ca = Ca::new(1);
    let mut world = World::new();
    let mut hub = NodeConfig::new(ca.identity(9, "mesh", "hub"));
    hub.hbone_listen = Some(addr("10.0.0.9:15009"));
    hub.hub = Some(HubRole {
        announce: AnnouncePolicy::new(vec![ExportRule {
            principals: vec![PrincipalPattern::new("*").unwrap()],
            services: vec![ServiceAllowance::OwnNamespace],
        }]),
        ..HubRole::default()
    });
    hub.h2 = scaled_h2();
    let mut a = NodeConfig::new(ca.identity(2, "shop", "cart"));
    a.fronts = vec![FrontConfig {
        listen: addr("127.0.0.1:9000"),
        kind: FrontKind::Tunnel {
            to: FrontTarget::parse("echo.shop:80").unwrap(),
        },
    }];
    a.hub_links = links();
    a.h2 = scaled_h2();
    a.pool = PoolConfig {
        congestion_window: 64 << 10,
        ..PoolConfig::default()
    };
    let mut b = NodeConfig::new(ca.identity(3, "shop", "echo"));
    b.exports = Exports::new(vec![Export {
        service: ServiceName::parse("echo.shop").unwrap(),
        port: 80,
        target: Target::Addr(addr("127.0.0.2:8080")),
    }])
    .unwrap();
    b.hub_links = links();
    b.h2 = scaled_h2();
    world.add_node(hub);
    world.add_node(a);
    world.add_node(b);
    world.add_echo_server(addr("127.0.0.2:8080"));
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
    world.net.slow_servers = Some(0);
    let stalled: Vec<(usize, Vec<u8>)> = (0..4)
        .map(|i| {
            let data = pattern(400 << 10, i);
            let app = world.connect_app(addr("127.0.0.1:9000"));
            world.app_write(app, &data);
            (app, data)
        })
        .collect();
    world.run();
    world.net.slow_servers = None;
    assert_eq!(inner_connections(&world), 1);
    assert_eq!(congested_edges(&world), 1);
    let data = pattern(100_000, 9);
    let fifth = world.connect_app(addr("127.0.0.1:9000"));
    world.app_write(fifth, &data);
    world.app_shutdown(fifth);
    world.run();
    assert!(world.net.apps[fifth].received == data, "echoed byte-exact");
    assert_eq!(inner_connections(&world), 2, "a second inner connection");
    // The readers resume: the stalled four finish, no byte lost.
    let servers: Vec<usize> = world.net.server_apps.clone();
    for app in servers {
        world.net.apps[app].read_per_round = None;
    }
    for (app, _) in &stalled {
        world.app_shutdown(*app);
    }
    world.run();
    for (i, (app, data)) in stalled.iter().enumerate() {
        assert!(world.net.apps[*app].received == *data, "flow {i} echoed");
    }
    assert_eq!(world.close_reasons(A), vec![CloseReason::Done; 5]);
}
