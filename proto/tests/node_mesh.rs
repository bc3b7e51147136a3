//! Several nodes, many flows, slow readers, policy swaps, timeouts and
//! determinism, all in memory over real mutual TLS.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{addr, endpoint, export, exports, pattern, tunnel};
use node_harness::{Server, World};
use warren_proto::h2;
use warren_proto::node::{CloseReason, HandshakeError, NodeConfig, NodeEvent};
use warren_proto::policy::{
    Action, AuthzPolicy, AuthzRule, Conditions, Exports, PrincipalPattern, RuleName, ServiceName,
};
use warren_proto::time::Instant;

/// Node 0 "cart": tunnels 9000 → echo.shop:80 (node 1), 9001 → db.shop:80
/// (node 2). Node 1 "echo": exports echo.shop. Node 2 "db": exports
/// db.shop, tunnels 9100 → echo.shop:80.
fn three_nodes(h2: h2::Config) -> (World, [NodeConfig; 3]) {
    let ca = Ca::new(1);
    let mut world = World::new();
    let mut a = NodeConfig::new(ca.identity(2, "shop", "cart"));
    a.fronts = vec![
        tunnel("127.0.0.1:9000", "echo.shop:80"),
        tunnel("127.0.0.1:9001", "db.shop:80"),
    ];
    a.directory.insert(
        ServiceName::parse("echo.shop").unwrap(),
        vec![endpoint("10.0.0.2:15008", "echo")],
    );
    a.directory.insert(
        ServiceName::parse("db.shop").unwrap(),
        vec![endpoint("10.0.0.3:15008", "db")],
    );
    a.h2 = h2.clone();
    let mut b = NodeConfig::new(ca.identity(3, "shop", "echo"));
    b.hbone_listen = Some(addr("10.0.0.2:15008"));
    b.exports = exports("echo.shop", "127.0.0.2:8080");
    b.h2 = h2.clone();
    let mut c = NodeConfig::new(ca.identity(4, "shop", "db"));
    c.hbone_listen = Some(addr("10.0.0.3:15008"));
    c.exports = exports("db.shop", "127.0.0.3:5432");
    c.fronts = vec![tunnel("127.0.0.3:9100", "echo.shop:80")];
    c.directory.insert(
        ServiceName::parse("echo.shop").unwrap(),
        vec![endpoint("10.0.0.2:15008", "echo")],
    );
    c.h2 = h2;
    world.add_node(a.clone());
    world.add_node(b.clone());
    world.add_node(c.clone());
    world.add_echo_server(addr("127.0.0.2:8080"));
    world.add_echo_server(addr("127.0.0.3:5432"));
    (world, [a, b, c])
}

/// Runs flows over all three nodes; returns the transcript.
fn three_node_scenario() -> Vec<String> {
    let (mut world, _) = three_nodes(h2::Config::default());
    let flows = [
        ("127.0.0.1:9000", 200_000),
        ("127.0.0.1:9001", 70_000),
        ("127.0.0.3:9100", 1),
        ("127.0.0.1:9000", 5_000),
    ];
    let mut apps = Vec::new();
    for (i, (listen, size)) in flows.iter().enumerate() {
        let data = pattern(*size, i);
        let app = world.start_flow(listen, &data);
        apps.push((app, data));
    }
    world.run();
    for (app, data) in &apps {
        assert!(world.net.apps[*app].received == *data);
        assert!(world.net.apps[*app].eof);
    }
    assert_eq!(world.close_reasons(0), vec![CloseReason::Done; 3]);
    assert_eq!(world.close_reasons(1), vec![CloseReason::Done; 3]);
    assert_eq!(world.close_reasons(2), vec![CloseReason::Done; 2]);
    // One pooled connection per (source, destination) pair.
    assert_eq!(world.nodes[0].connection_count(), 2);
    assert_eq!(world.nodes[1].connection_count(), 2);
    world.net.transcript.clone()
}

#[test]
fn three_nodes_relay_in_both_directions() {
    three_node_scenario();
}

#[test]
fn same_inputs_give_the_same_transcript() {
    // Ciphertext bytes differ (the test provider draws key shares from the
    // OS); lengths, ids, order and events must not.
    let first = three_node_scenario();
    let second = three_node_scenario();
    assert!(first.len() > 100);
    assert_eq!(first, second);
}

#[test]
fn a_thousand_concurrent_flows() {
    let (mut world, _) = three_nodes(h2::Config::default());
    let mut apps = Vec::new();
    for i in 0..1000 {
        let app = world.connect_app(addr("127.0.0.1:9000"));
        let data = pattern(1000 + i, i);
        world.app_write(app, &data);
        apps.push((app, data));
    }
    world.run();
    assert_eq!(world.nodes[0].flow_count(), 1000, "all open at once");
    assert_eq!(world.nodes[1].flow_count(), 1000);
    for (app, _) in &apps {
        world.app_shutdown(*app);
    }
    world.run();
    for (app, data) in &apps {
        assert!(world.net.apps[*app].received == *data);
        assert!(world.net.apps[*app].eof);
    }
    assert_eq!(world.nodes[0].flow_count(), 0);
    assert_eq!(world.nodes[1].flow_count(), 0);
    assert!(world.nodes[0].connection_count() <= 10);
    let m = world.nodes[0].metrics();
    let total: u64 = m.values().map(|c| c.closed).sum();
    assert_eq!(total, 1000);
}

#[test]
fn slow_reader_bounds_what_is_in_flight() {
    // Small windows so the bound is tight and easy to exceed if broken.
    let cfg = h2::Config {
        initial_stream_window: 256 << 10,
        initial_connection_window: 1 << 20,
        max_send_buffer: 64 << 10,
        ..h2::Config::default()
    };
    let window = 256 << 10;
    let (mut world, _) = three_nodes(cfg);
    world.add_server(addr("127.0.0.2:8080"), Server::Sink);
    let data = pattern(8 << 20, 3);
    let app = world.start_flow("127.0.0.1:9000", &data);
    // Sender side: the h2 send buffer, one TLS fill, TLS's own buffer and
    // one read; the pipes of the model network hold their capacity each.
    let bound = window + (64 << 10) + (256 << 10) + (64 << 10) + 16 * 1024 + 4 * world.net.cap
        // TLS record and frame overheads
        + 64 * 1024;
    let total = data.len();
    let server_reads = 4000;
    let peak = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let seen = peak.clone();
    world.check = Some(Box::new(move |w: &World| {
        let written = total - w.net.apps[app].outbox.len();
        let server = w.net.server_apps.first().copied();
        let read = server.map_or(0, |s| w.net.apps[s].received.len());
        let in_flight = written - read;
        assert!(in_flight <= bound, "in flight {in_flight} > bound {bound}");
        // Per socket: one read held, plus one ciphertext fill on mesh sockets.
        for n in 0..w.nodes.len() {
            for sock in w.node_socks(n) {
                let held = w.nodes[n].buffered(sock);
                assert!(held <= (256 << 10) + (64 << 10), "node {n} holds {held} B");
            }
        }
        seen.set(seen.get().max(in_flight));
    }));
    world.net.slow_servers = Some(server_reads);
    world.run();
    let server = world.net.server_apps[0];
    assert!(world.net.apps[server].received == data);
    assert!(world.net.apps[server].eof);
    // The reader was slow enough for the window to fill up.
    assert!(peak.get() >= window, "peak in flight {}", peak.get());
}

#[test]
fn stalled_reader_stops_the_client() {
    let cfg = h2::Config {
        initial_stream_window: 256 << 10,
        initial_connection_window: 1 << 20,
        max_send_buffer: 64 << 10,
        ..h2::Config::default()
    };
    let (mut world, _) = three_nodes(cfg);
    world.add_server(addr("127.0.0.2:8080"), Server::Sink);
    let app = world.open_flow("127.0.0.1:9000", &[1]);
    let server = world.net.server_apps[0];
    world.net.apps[server].stalled = true;
    let data = pattern(8 << 20, 5);
    world.app_write(app, &data);
    world.run();
    let left = world.net.apps[app].outbox.len();
    assert!(
        left > 6 << 20,
        "backpressure reached the client ({left} left)"
    );
    world.net.apps[server].stalled = false;
    world.run();
    assert_eq!(world.net.apps[app].outbox.len(), 0);
    assert_eq!(world.net.apps[server].received.len(), data.len() + 1);
}

#[test]
fn config_swap_closes_only_flows_the_new_policy_denies() {
    let (mut world, [_, b, _]) = three_nodes(h2::Config::default());
    let from_cart = world.connect_app(addr("127.0.0.1:9000"));
    let from_db = world.connect_app(addr("127.0.0.3:9100"));
    world.app_write(from_cart, b"one");
    world.app_write(from_db, b"two");
    world.run();
    let mut rule = AuthzRule::new(RuleName::new("cart-out").unwrap(), Action::Deny);
    rule.when = Conditions {
        principals: vec![PrincipalPattern::new("spiffe://mesh.test/ns/shop/sa/cart").unwrap()],
        ..Conditions::default()
    };
    let mut swapped = b.clone();
    swapped.authz = AuthzPolicy::new(vec![rule]);
    world.apply_config(1, swapped);
    world.run();
    let applied = world.events_of(1).into_iter().find_map(|e| match e {
        NodeEvent::ConfigApplied { closed_flows } => Some(*closed_flows),
        _ => None,
    });
    assert_eq!(applied, Some(1));
    assert!(matches!(
        world.close_reasons(1)[..],
        [CloseReason::Reconfigured(ref d)] if d.rule.as_ref().unwrap().as_str() == "cart-out"
    ));
    assert!(world.net.apps[from_cart].reset, "the denied flow is cut");
    // The other flow lives on.
    world.app_write(from_db, b" three");
    world.app_shutdown(from_db);
    world.run();
    assert_eq!(world.net.apps[from_db].received, b"two three");
    assert!(world.net.apps[from_db].eof);
    // And new flows from cart are now denied.
    let again = world.connect_app(addr("127.0.0.1:9000"));
    world.run();
    assert!(world.net.apps[again].eof);
    assert_eq!(
        world.close_reasons(0).last(),
        Some(&CloseReason::Refused { status: 401 })
    );
}

#[test]
fn unreachable_node_times_out_the_handshake() {
    let (mut world, _) = three_nodes(h2::Config::default());
    // Nobody answers at echo's HBONE address: the connect stays pending.
    world.net.blackhole.insert(addr("10.0.0.2:15008"));
    let app = world.open_flow("127.0.0.1:9000", b"x");
    let deadline = world.nodes[0].poll_timeout().expect("a handshake deadline");
    world.advance_to(deadline);
    world.run();
    assert!(world.net.apps[app].eof);
    let failed = world.events_of(0).into_iter().any(|e| {
        matches!(
            e,
            NodeEvent::HandshakeFailed {
                error: HandshakeError::Timeout,
                ..
            }
        )
    });
    assert!(failed);
    // Its only endpoint failed it and no hub is configured.
    assert_eq!(
        world.close_reasons(0),
        vec![CloseReason::NoHealthyEndpoint { endpoints: 1 }]
    );
    assert_eq!(world.nodes[0].sock_count(), 0);
    assert!(world.now > Instant::ZERO);
}

#[test]
fn wrong_server_identity_fails_the_handshake() {
    let (mut world, [mut a, _, _]) = three_nodes(h2::Config::default());
    // Node 0 expects "db" at echo's address.
    a.directory.insert(
        ServiceName::parse("echo.shop").unwrap(),
        vec![endpoint("10.0.0.2:15008", "db")],
    );
    world.apply_config(0, a);
    let app = world.open_flow("127.0.0.1:9000", b"x");
    assert!(world.net.apps[app].eof);
    assert!(world.net.apps[app].received.is_empty());
    let failed = world.events_of(0).into_iter().any(|e| {
        matches!(
            e,
            NodeEvent::HandshakeFailed {
                error: HandshakeError::Tls(_),
                ..
            }
        )
    });
    assert!(failed, "{:?}", world.events_of(0));
    assert_eq!(world.nodes[1].flow_count(), 0);
}

#[test]
fn a_peer_with_a_low_stream_limit_gets_more_connections() {
    let (mut world, [_, mut b, _]) = three_nodes(h2::Config::default());
    b.h2.max_concurrent_streams = 3;
    world.nodes[1] = warren_proto::node::Node::new(b, world.now);
    let mut apps = Vec::new();
    for i in 0..10 {
        let app = world.connect_app(addr("127.0.0.1:9000"));
        let data = pattern(3000, i);
        world.app_write(app, &data);
        apps.push((app, data));
    }
    world.run();
    assert_eq!(world.nodes[0].flow_count(), 10, "every flow is open");
    assert!(world.nodes[0].connection_count() >= 4);
    for (app, _) in &apps {
        world.app_shutdown(*app);
    }
    world.run();
    for (app, data) in &apps {
        assert!(world.net.apps[*app].received == *data);
    }
    assert_eq!(world.close_reasons(0), vec![CloseReason::Done; 10]);
}

#[test]
fn idle_flows_are_reset_and_busy_ones_are_not() {
    let (mut world, [mut a, _, _]) = three_nodes(h2::Config::default());
    a.timeouts.idle_flow = Some(std::time::Duration::from_secs(60));
    world.nodes[0] = warren_proto::node::Node::new(a, world.now);
    let quiet = world.connect_app(addr("127.0.0.1:9000"));
    let busy = world.connect_app(addr("127.0.0.1:9000"));
    world.app_write(quiet, b"once");
    world.run();
    // Keep one flow busy every 20 s; the other never moves again.
    for t in 1..=6u64 {
        world.advance_to(Instant::from_nanos(t * 20_000_000_000));
        world.app_write(busy, b".");
        world.run();
    }
    assert!(world.net.apps[quiet].reset, "the quiet flow was cut");
    assert!(!world.net.apps[busy].reset);
    assert_eq!(world.close_reasons(0), vec![CloseReason::Idle]);
    assert_eq!(world.net.apps[busy].received, b"......");
}

#[test]
fn withdrawing_an_export_cuts_its_flows() {
    let (mut world, [_, mut b, _]) = three_nodes(h2::Config::default());
    let app = world.open_flow("127.0.0.1:9000", b"hi");
    assert_eq!(world.net.apps[app].received, b"hi");
    b.exports = Exports::default();
    world.apply_config(1, b);
    world.run();
    assert!(world.net.apps[app].reset);
    assert!(matches!(
        world.close_reasons(1)[..],
        [CloseReason::Reconfigured(ref d)] if d.reason == warren_proto::policy::Reason::NotExported
    ));
}

/// Three nodes where node 2 also exports echo.shop, and node 0's directory
/// lists echo.shop at `first` (as node 1's identity) and at node 2.
fn echo_on_two_endpoints(first: &str) -> World {
    let (mut world, [mut a, _, mut c]) = three_nodes(h2::Config::default());
    c.exports = Exports::new(vec![
        export("db.shop", "127.0.0.3:5432"),
        export("echo.shop", "127.0.0.3:8080"),
    ])
    .unwrap();
    world.apply_config(2, c);
    world.add_echo_server(addr("127.0.0.3:8080"));
    let eps = vec![endpoint(first, "echo"), endpoint("10.0.0.3:15008", "db")];
    a.directory
        .insert(ServiceName::parse("echo.shop").unwrap(), eps);
    world.apply_config(0, a);
    world
}

#[test]
fn flows_take_turns_across_a_services_endpoints() {
    // echo.shop is served by node 1 and node 2 (both export it).
    let mut world = echo_on_two_endpoints("10.0.0.2:15008");
    let mut apps = Vec::new();
    for i in 0..4 {
        let app = world.start_flow("127.0.0.1:9000", &pattern(100, i));
        apps.push(app);
    }
    world.run();
    for (i, app) in apps.iter().enumerate() {
        assert!(world.net.apps[*app].received == pattern(100, i));
    }
    assert_eq!(world.close_reasons(1).len(), 2, "half went to node 1");
    assert_eq!(world.close_reasons(2).len(), 2, "half went to node 2");
}

#[test]
fn a_dead_endpoint_is_ejected_and_its_flows_retry_elsewhere() {
    // Node 1's HBONE port refuses connections.
    let mut world = echo_on_two_endpoints("10.0.0.9:15008");
    let apps: Vec<usize> = (0..4)
        .map(|i| world.flow("127.0.0.1:9000", &pattern(100, i)))
        .collect();
    for (i, app) in apps.iter().enumerate() {
        assert!(world.net.apps[*app].received == pattern(100, i), "flow {i}");
    }
    assert_eq!(
        world.close_reasons(2).len(),
        4,
        "every flow ended up on node 2"
    );
    assert_eq!(
        world.dials(0, addr("10.0.0.9:15008")),
        1,
        "the dead endpoint was tried once"
    );
}
