//! The direct path: agent B listens for HBONE and announces its address,
//! the hub's registry carries it to agent A, and A's flows to B's service
//! go straight to B (verifying B's identity from the registry) or via the
//! hub, as A's route preference says and as the direct connect fares.

mod node_harness;

use node_harness::certs::{spiffe, Ca};
use node_harness::config::{addr, pattern, ECHO, TUNNEL};
use node_harness::hubs::HubMesh;
use node_harness::World;
use warren_proto::hub::Route;
use warren_proto::node::{CloseReason, Direction, FlowPath, NodeConfig, NodeEvent};

const HUB: usize = 0;
const A: usize = 1;
const B: usize = 2;

/// Where B listens and what it announces.
const B_HBONE: &str = "10.0.0.3:15008";

/// How the world is set up around B's announced address.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AtB {
    /// B listens there.
    Listening,
    /// Another program holds the port: B's listen fails, connects to it
    /// are refused, yet B announces it.
    Refusing,
    /// Node 3, another identity (`db`), listens there instead of B.
    Impostor,
}

/// Node 0 the hub, node 1 agent A (`cart`, tunnel 9000 → echo.shop:80,
/// nothing in its directory), node 2 agent B (`echo`, exports echo.shop:80
/// end to end, HBONE at [`B_HBONE`]).
fn setup(route: Route, at_b: AtB) -> World {
    setup_with(route, at_b, false)
}

/// [`setup`], with B's export relayed in plaintext (`end_to_end = false`)
/// when `plaintext`: hub flows are then one hub relay each.
fn setup_with(route: Route, at_b: AtB, plaintext: bool) -> World {
    let ca = Ca::new(1);
    let mut mesh = HubMesh::new(&ca);
    if plaintext {
        mesh = mesh.plaintext();
    }
    mesh.a.hub_links.route = route;
    mesh.b.hub_links.route = route;
    mesh.b.hbone_listen = Some(addr(B_HBONE));
    let HubMesh { hubs, a, b } = mesh;
    let mut world = World::new();
    world.add_node(hubs[0].clone());
    world.add_node(a);
    match at_b {
        AtB::Listening => {
            world.add_node(b);
        }
        AtB::Refusing => {
            world.net.busy.insert(addr(B_HBONE));
            world.add_node(b);
        }
        AtB::Impostor => {
            // The harness gives an address to its latest listener: the
            // impostor, added after B, takes B's connections.
            let mut c = NodeConfig::new(ca.identity(4, "shop", "db"));
            c.hbone_listen = Some(addr(B_HBONE));
            c.exports = b.exports.clone();
            world.add_node(b);
            world.add_node(c);
        }
    }
    world.add_echo_server(addr(ECHO));
    world.run();
    world
}

/// (direction, path, reason) of each flow node `n` closed.
fn closed(world: &World, n: usize) -> Vec<(Direction, Option<FlowPath>, CloseReason)> {
    world
        .events_of(n)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::FlowClosed {
                direction,
                path,
                reason,
                ..
            } => Some((*direction, *path, reason.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn direct_first_dials_the_registry_address() {
    let mut world = setup(Route::DirectFirst, AtB::Listening);
    for i in 0..3 {
        let data = pattern(100_000, i);
        let app = world.flow(TUNNEL, &data);
        assert!(world.net.apps[app].received == data, "flow {i}");
    }
    let direct = (
        Direction::Outbound,
        Some(FlowPath::Direct),
        CloseReason::Done,
    );
    assert_eq!(closed(&world, A), vec![direct; 3]);
    let inbound = (
        Direction::Inbound,
        Some(FlowPath::Direct),
        CloseReason::Done,
    );
    assert_eq!(closed(&world, B), vec![inbound; 3]);
    assert!(closed(&world, HUB).is_empty(), "the hub relayed nothing");
    assert_eq!(world.dials(A, addr(B_HBONE)), 1, "one pooled connection");
    let line = world
        .events_of(A)
        .into_iter()
        .rev()
        .find(|e| matches!(e, NodeEvent::FlowClosed { .. }))
        .unwrap()
        .to_string();
    assert!(
        line.contains("dst=spiffe://mesh.test/ns/shop/sa/echo service=echo.shop path=direct "),
        "{line}"
    );
}

#[test]
fn direct_first_falls_back_to_the_hub_when_the_address_refuses() {
    let mut world = setup(Route::DirectFirst, AtB::Refusing);
    for i in 0..3 {
        let data = pattern(100_000, i);
        let app = world.flow(TUNNEL, &data);
        assert!(
            world.net.apps[app].received == data,
            "flow {i}: no byte lost"
        );
        assert!(world.net.apps[app].eof);
    }
    let via_hub = (Direction::Outbound, Some(FlowPath::Hub), CloseReason::Done);
    assert_eq!(closed(&world, A), vec![via_hub; 3]);
    // End to end, the hub relays one pair stream carrying A's pooled inner
    // connection to B, not one relay per flow: it closed no flow and still
    // holds that pair stream.
    assert!(closed(&world, HUB).is_empty(), "no per-flow relay");
    assert_eq!(world.nodes[HUB].relay_count(), 1);
    assert_eq!(world.nodes[HUB].pair_relay_count(), 1);
    let inbound = (Direction::Inbound, Some(FlowPath::Hub), CloseReason::Done);
    assert_eq!(closed(&world, B), vec![inbound; 3]);
    assert_eq!(
        world.dials(A, addr(B_HBONE)),
        1,
        "ejected after the first refusal"
    );
    let ejected = world.events_of(A).into_iter().any(|e| {
        matches!(e, NodeEvent::EndpointEjected { endpoint, .. }
            if endpoint.hbone == addr(B_HBONE) && endpoint.identity == spiffe("shop", "echo"))
    });
    assert!(ejected);
}

#[test]
fn a_direct_connection_must_prove_the_registry_identity() {
    let mut world = setup(Route::DirectFirst, AtB::Impostor);
    let data = pattern(10_000, 1);
    let app = world.flow(TUNNEL, &data);
    assert!(world.net.apps[app].received == data);
    let handshake_failed = world
        .events_of(A)
        .into_iter()
        .any(|e| matches!(e, NodeEvent::HandshakeFailed { peer, .. } if *peer == addr(B_HBONE)));
    assert!(handshake_failed, "A refused the impostor's certificate");
    assert!(closed(&world, 3).is_empty(), "the impostor carried no flow");
    let via_hub = (Direction::Outbound, Some(FlowPath::Hub), CloseReason::Done);
    assert_eq!(closed(&world, A), vec![via_hub]);
}

#[test]
fn hub_only_never_dials_direct() {
    // In plaintext so that every flow is a hub relay of its own, counted
    // below (end to end, the fallback test above covers the hub path).
    let mut world = setup_with(Route::HubOnly, AtB::Listening, true);
    for i in 0..3 {
        let data = pattern(20_000, i);
        let app = world.flow(TUNNEL, &data);
        assert!(world.net.apps[app].received == data, "flow {i}");
    }
    assert_eq!(world.dials(A, addr(B_HBONE)), 0);
    let via_hub = (Direction::Outbound, Some(FlowPath::Hub), CloseReason::Done);
    assert_eq!(closed(&world, A), vec![via_hub; 3]);
    let relayed = (Direction::Relayed, Some(FlowPath::Hub), CloseReason::Done);
    assert_eq!(closed(&world, HUB), vec![relayed; 3]);
    assert_eq!(world.nodes[HUB].pair_relay_count(), 0);
}

#[test]
fn direct_only_refuses_rather_than_use_the_hub() {
    let mut world = setup(Route::DirectOnly, AtB::Refusing);
    let app = world.flow(TUNNEL, b"must not cross a relay");
    assert!(world.net.apps[app].received.is_empty());
    assert!(world.net.apps[app].eof);
    assert_eq!(
        closed(&world, A),
        vec![(
            Direction::Outbound,
            Some(FlowPath::Direct),
            CloseReason::NoHealthyEndpoint { endpoints: 1 }
        )]
    );
    assert!(closed(&world, HUB).is_empty(), "nothing went to the hub");
}

#[test]
fn direct_only_goes_direct_when_the_address_answers() {
    let mut world = setup(Route::DirectOnly, AtB::Listening);
    let data = pattern(5_000, 3);
    let app = world.flow(TUNNEL, &data);
    assert!(world.net.apps[app].received == data);
    let direct = (
        Direction::Outbound,
        Some(FlowPath::Direct),
        CloseReason::Done,
    );
    assert_eq!(closed(&world, A), vec![direct]);
}

#[test]
fn an_address_withdrawn_from_the_registry_sends_flows_via_the_hub() {
    let mut world = setup(Route::DirectFirst, AtB::Listening);
    world.flow(TUNNEL, b"direct");
    // B stops listening: its announcement loses the address.
    let mut b = world.nodes[B].config().clone();
    b.hbone_listen = None;
    world.apply_config(B, b);
    world.run();
    let data = pattern(30_000, 2);
    let app = world.flow(TUNNEL, &data);
    assert!(world.net.apps[app].received == data);
    let paths: Vec<Option<FlowPath>> = closed(&world, A).into_iter().map(|(_, p, _)| p).collect();
    assert_eq!(paths, vec![Some(FlowPath::Direct), Some(FlowPath::Hub)]);
}
