//! Early data: an outbound flow's first bytes go as DATA right behind its
//! CONNECT, before the 200, bounded by `early_data_limit`; a retry on
//! another connection replays exactly them; a refusal drops them.

mod node_harness;

use std::time::Duration;

use node_harness::certs::Ca;
use node_harness::config::{addr, endpoint, exports, pattern, DirectPair, ECHO, HBONE_B, TUNNEL};
use node_harness::World;
use quickcheck::{QuickCheck, TestResult};
use warren_proto::h2;
use warren_proto::node::{CloseReason, NodeConfig};
use warren_proto::policy::{
    Action, AuthzPolicy, AuthzRule, Conditions, PrincipalPattern, RuleName, ServiceName,
};

/// Node 0 "shop/cart" tunnels 9000 → echo.shop:80 with `early_limit`;
/// node 1 "shop/echo" exports echo.shop:80 → the echo server under `authz`.
fn two_nodes(early_limit: usize, authz: AuthzPolicy, h2: h2::Config) -> World {
    let mut pair = DirectPair::new(&Ca::new(1));
    pair.a.early_data_limit = early_limit;
    pair.a.h2 = h2.clone();
    pair.b.authz = authz;
    pair.b.h2 = h2;
    pair.world()
}

/// Node 1 receives the flow's first bytes while its target is still
/// connecting (the connect never completes): exactly
/// `min(written, early_limit)` of them, and node 0 keeps that copy and reads
/// at most one more socket read's worth from the client.
fn early_bytes_wait_at_the_server(written: usize, early_limit: usize) -> TestResult {
    let mut world = two_nodes(early_limit, AuthzPolicy::default(), h2::Config::default());
    world.net.blackhole.insert(addr(ECHO));
    let app = world.open_flow(TUNNEL, &pattern(written, 1));
    let sent = written.min(early_limit);
    let at_server = world.nodes[1].held_bytes();
    if at_server != sent {
        return TestResult::error(format!("server holds {at_server} B, expected {sent}"));
    }
    if world.net.apps[app].received.len() + world.net.server_apps.len() != 0 {
        return TestResult::error("a byte moved before the target was connected");
    }
    let at_client = world.nodes[0].held_bytes();
    let bound = early_limit + world.read_size;
    if at_client < sent || at_client > bound.max(sent) {
        return TestResult::error(format!(
            "client node holds {at_client} B, expected {sent}..={bound}"
        ));
    }
    TestResult::passed()
}

#[test]
fn early_bytes_wait_at_the_server_within_the_bound() {
    fn prop(written: u32, limit: u16) -> TestResult {
        let written = written as usize % 80_000 + 1;
        early_bytes_wait_at_the_server(written, limit as usize)
    }
    QuickCheck::new()
        .tests(24)
        .quickcheck(prop as fn(u32, u16) -> TestResult);
}

#[test]
fn the_default_bound_is_sixteen_kib() {
    let world = two_nodes(0, AuthzPolicy::default(), h2::Config::default());
    let default = NodeConfig::new(world.nodes[0].config().identity.clone());
    assert_eq!(default.early_data_limit, 16 * 1024);
    let r = early_bytes_wait_at_the_server(100_000, default.early_data_limit);
    assert!(!r.is_error() && !r.is_failure(), "{r:?}");
}

/// A pooled connection to node 1 goes silently dead after a first flow
/// (what node 0 sends it vanishes); the next flow opens a stream on it
/// `quiet` after node 0 last heard from node 1, then the connection is
/// reset (node 1's host restarted and forgot it, as in the simulator's
/// stale-pooled-connection-after-crash). Returns the world and the app.
fn flow_on_a_dead_connection(written: usize, quiet: Duration) -> (World, usize, Vec<u8>) {
    let mut world = two_nodes(16 * 1024, AuthzPolicy::default(), h2::Config::default());
    let warm = world.flow(TUNNEL, b"warm");
    assert_eq!(world.net.apps[warm].received, b"warm", "the warm-up flow");
    world.silence_links(1, 0);
    let later = world.nodes[0].now().saturating_add(quiet);
    world.advance_to(later);
    let data = pattern(written, 2);
    let app = world.flow(TUNNEL, &data);
    world.reset_links(1, 0);
    world.run();
    (world, app, data)
}

#[test]
fn a_flow_on_a_quiet_connection_sends_nothing_early_and_retries_exactly() {
    // Silent for longer than early_data_max_silence (1 s): the stream opens
    // but the client's bytes wait for the 200, so the retry after the reset
    // is safe, and the echo is byte-exact.
    for written in [1, 16 * 1024, 50_000] {
        let (world, app, data) = flow_on_a_dead_connection(written, Duration::from_secs(2));
        let got = &world.net.apps[app];
        assert!(
            got.received == data && got.eof && !got.reset,
            "{written} B: got {} B, eof {}, reset {}",
            got.received.len(),
            got.eof,
            got.reset
        );
        assert_eq!(
            world.dials(0, addr(HBONE_B)),
            2,
            "retried on a new connection"
        );
        assert_eq!(world.close_reasons(0), vec![CloseReason::Done; 2]);
        assert_eq!(world.nodes[0].held_bytes(), 0);
    }
}

#[test]
fn a_flow_whose_early_bytes_may_have_arrived_is_not_retried() {
    // The connection was heard from just now: the first bytes go early. The
    // connection then dies before the 200; node 1 may have passed them to
    // its target, so a retry could deliver them twice: the flow fails.
    let (world, app, _) = flow_on_a_dead_connection(1000, Duration::ZERO);
    let got = &world.net.apps[app];
    // A FIN would tell the client its bytes arrived: a reset says they may not.
    assert!(got.received.is_empty() && got.reset && !got.eof, "{got:?}");
    assert_eq!(world.dials(0, addr(HBONE_B)), 1, "no second connection");
    assert_eq!(
        world.close_reasons(0),
        vec![CloseReason::Done, CloseReason::ConnectionLost]
    );
    assert_eq!(world.nodes[0].held_bytes(), 0);
}

/// Node 1 "cart" reaches echo.shop at two endpoints: node 0, which answers
/// at most one CONNECT at a time and whose target never accepts, and node 2.
fn refusing_endpoint_first(early_limit: usize) -> World {
    let ca = Ca::new(1);
    let DirectPair { mut a, mut b } = DirectPair::new(&ca);
    a.directory.insert(
        ServiceName::parse("echo.shop").unwrap(),
        vec![
            endpoint(HBONE_B, "echo"),
            endpoint("10.0.0.3:15008", "echo2"),
        ],
    );
    a.early_data_limit = early_limit;
    b.h2.max_pending_accept = 1;
    let mut c = NodeConfig::new(ca.identity(4, "shop", "echo2"));
    c.hbone_listen = Some(addr("10.0.0.3:15008"));
    c.exports = exports("echo.shop", "127.0.0.3:8080");
    let mut world = World::new();
    // The refusing node first: the harness delivers pipes in node order,
    // so its RST_STREAM reaches node 1 a round after the client's bytes,
    // which node 1 has sent early by then.
    world.add_node(b);
    world.add_node(a);
    world.add_node(c);
    world.net.blackhole.insert(addr(ECHO));
    world.add_echo_server(addr("127.0.0.3:8080"));
    world
}

/// A stream the peer refused unprocessed (REFUSED_STREAM) is retried on
/// the next endpoint with its early bytes replayed: the echo is exact.
fn refused_stream_replays(written: usize, early_limit: usize) -> TestResult {
    let mut world = refusing_endpoint_first(early_limit);
    // Flow 1 holds node 0's only pending CONNECT; flow 2 goes to node 2.
    for i in 0..2 {
        world.open_flow(TUNNEL, &pattern(10, i));
    }
    let data = pattern(written, 3);
    let app = world.flow(TUNNEL, &data);
    let got = &world.net.apps[app];
    if got.received != data || !got.eof || got.reset {
        return TestResult::error(format!(
            "echo of {written} B (early limit {early_limit}): got {} B, eof {}, reset {}",
            got.received.len(),
            got.eof,
            got.reset
        ));
    }
    // Node 0 refused flow 3 (its turn): the retry carried it to node 2,
    // where it ended and flow 2 still lives.
    if world.close_reasons(2) != vec![CloseReason::Done] || world.nodes[2].flow_count() != 1 {
        return TestResult::error(format!("node 2: {:?}", world.close_reasons(2)));
    }
    TestResult::passed()
}

#[test]
fn a_refused_stream_retries_with_its_early_bytes_replayed() {
    fn prop(written: u32, limit: u16) -> TestResult {
        refused_stream_replays(written as usize % 70_000 + 1, limit as usize)
    }
    QuickCheck::new()
        .tests(16)
        .quickcheck(prop as fn(u32, u16) -> TestResult);
    for written in [1, 16 * 1024, 16 * 1024 + 1, 50_000] {
        let r = refused_stream_replays(written, 16 * 1024);
        assert!(!r.is_error() && !r.is_failure(), "{written} B: {r:?}");
    }
}

fn deny_cart() -> AuthzPolicy {
    let mut rule = AuthzRule::new(RuleName::new("no-cart").unwrap(), Action::Deny);
    rule.when = Conditions {
        principals: vec![PrincipalPattern::new("spiffe://mesh.test/ns/shop/sa/cart").unwrap()],
        ..Conditions::default()
    };
    AuthzPolicy::new(vec![rule])
}

#[test]
fn a_refused_flow_drops_its_early_bytes_and_its_stream() {
    // Few streams per connection: a stream a refusal left open would
    // push later flows onto new connections.
    let h2 = h2::Config {
        max_concurrent_streams: 3,
        ..h2::Config::default()
    };
    let mut world = two_nodes(16 * 1024, deny_cart(), h2);
    let mut apps = Vec::new();
    for i in 0..8 {
        let app = world.connect_app(addr(TUNNEL));
        world.app_write(app, &pattern(5_000, i));
        apps.push(app);
        world.run();
    }
    for app in apps {
        let got = &world.net.apps[app];
        assert!(got.received.is_empty() && (got.eof || got.reset), "{got:?}");
    }
    assert!(
        world.net.server_apps.is_empty(),
        "no byte reached the target"
    );
    assert_eq!(world.close_reasons(0).len(), 8);
    assert!(world
        .close_reasons(0)
        .iter()
        .all(|r| matches!(r, CloseReason::Refused { status: 401 })));
    for n in 0..2 {
        assert_eq!(world.nodes[n].held_bytes(), 0, "node {n} keeps early bytes");
        assert_eq!(world.nodes[n].flow_count(), 0, "node {n}");
    }
    assert_eq!(
        world.nodes[0].connection_count(),
        1,
        "refused streams closed: one connection carried all eight"
    );
}
