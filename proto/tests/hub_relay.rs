//! A hub and two agents in memory over real mutual TLS: A and B dial only
//! the hub (B has no listener at all), B announces `echo.shop`, and A's
//! flows reach it through the hub's relay.

mod node_harness;

use node_harness::certs::{spiffe, Ca};
use node_harness::config::{addr, pattern, tunnel};
use node_harness::hubs::HubMesh;
use node_harness::{Server, World};
use warren_proto::h2;
use warren_proto::hub::{HubEvent, LinkKind};
use warren_proto::node::{CloseReason, Direction, NodeConfig, NodeEvent};
use warren_proto::policy::{
    Action, AuthzPolicy, AuthzRule, Conditions, Export, Exports, PrincipalPattern, RuleName,
    ServiceName, Target,
};
use warren_proto::revocation::RevocationList;

const HUB: usize = 0;
const A: usize = 1;
const B: usize = 2;

fn deny_rule(name: &str, principal: &str) -> AuthzRule {
    let mut rule = AuthzRule::new(RuleName::new(name).unwrap(), Action::Deny);
    rule.when = Conditions {
        principals: vec![PrincipalPattern::new(principal).unwrap()],
        ..Conditions::default()
    };
    rule
}

struct Setup {
    world: World,
    configs: Vec<NodeConfig>,
}

/// Node 0 the hub, node 1 agent A (`cart`, tunnel 9000 → echo.shop:80,
/// 9001 → nope.shop:80), node 2 agent B (`echo`, exports echo.shop:80 →
/// an echo server, no listener).
fn setup(h2: h2::Config) -> Setup {
    // These tests are about the plain relay (end-to-end mode off); see
    // hub_e2e.rs for the default.
    let mut mesh = HubMesh::new(&Ca::new(1)).plaintext().h2(h2);
    mesh.a.fronts.push(tunnel("127.0.0.1:9001", "nope.shop:80"));
    let mut world = mesh.world();
    world.run();
    Setup {
        world,
        configs: mesh.configs(),
    }
}

#[test]
fn agents_connect_and_the_hub_files_announcements() {
    let Setup { world, .. } = setup(h2::Config::default());
    for n in [A, B] {
        let ups: Vec<LinkKind> = world
            .events_of(n)
            .into_iter()
            .filter_map(|e| match e {
                NodeEvent::Hub(HubEvent::LinkUp { kind, .. }) => Some(*kind),
                _ => None,
            })
            .collect();
        assert_eq!(ups.len(), 2, "node {n}: {ups:?}");
        let status = world.nodes[n].hub_links();
        assert!(status[0].forward_up && status[0].reverse_up && status[0].control);
        // Both agents hold the hub's registry: echo.shop:80 served by B.
        assert_eq!(status[0].registry.1, 1);
    }
    let registry = world.nodes[HUB].hub_registry().snapshot();
    assert_eq!(registry.entries.len(), 1);
    assert_eq!(
        registry.entries[0].endpoint.identity,
        spiffe("shop", "echo")
    );
    assert_eq!(registry.entries[0].service.port, 80);
    // Two connections per agent, and B listens on nothing.
    assert_eq!(world.nodes[HUB].connection_count(), 4);
    assert!(world
        .net
        .transcript
        .iter()
        .all(|l| !l.starts_with("2 listen")));
}

#[test]
fn bytes_round_trip_through_the_hub() {
    let Setup { mut world, .. } = setup(h2::Config::default());
    let apps = world.flows_of_sizes("127.0.0.1:9000", &[1, 70_000, 600_000]);
    world.assert_echoed(&apps);
    let done = (Direction::Relayed, CloseReason::Done);
    assert_eq!(world.closed_flows(HUB), vec![done.clone(); 3]);
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Done); 3]
    );
    assert_eq!(
        world.closed_flows(B),
        vec![(Direction::Inbound, CloseReason::Done); 3]
    );
    // B authorized the flows as A, from the hub's header.
    let sources: Vec<_> = world
        .events_of(B)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::FlowClosed { source, .. } => source.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(sources, vec![spiffe("shop", "cart"); 3]);
    // A's access log names the agent the hub picked, as the hub vouched
    // for it (B is the verified peer of the hub's reverse link).
    let a_lines: Vec<String> = world
        .events_of(A)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::FlowClosed { .. }))
        .map(|e| e.to_string())
        .collect();
    assert_eq!(a_lines.len(), 3);
    for line in &a_lines {
        assert!(
            line.contains(" dst=spiffe://mesh.test/ns/shop/sa/echo ")
                && line.contains(" path=hub "),
            "{line}"
        );
    }
    assert_eq!(world.nodes[HUB].relay_count(), 0);
    // The relay's byte counts are the flows' sizes.
    let relayed: u64 = world.nodes[HUB]
        .metrics()
        .values()
        .map(|c| c.bytes_sent)
        .sum();
    assert_eq!(relayed, 670_001);
}

#[test]
fn unknown_service_is_answered_503_at_once() {
    let Setup { mut world, .. } = setup(h2::Config::default());
    let app = world.open_flow("127.0.0.1:9001", b"hello");
    assert!(world.net.apps[app].received.is_empty());
    assert!(world.net.apps[app].eof || world.net.apps[app].reset);
    assert_eq!(
        world.closed_flows(HUB),
        vec![(Direction::Relayed, CloseReason::Unreachable)]
    );
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Refused { status: 503 })]
    );
    assert!(world.closed_flows(B).is_empty(), "B never heard of it");
}

#[test]
fn hub_policy_denies_with_401_and_names_the_rule() {
    let Setup {
        mut world, configs, ..
    } = setup(h2::Config::default());
    let mut hub = configs[HUB].clone();
    hub.authz = AuthzPolicy::new(vec![deny_rule("no-cart", "*/sa/cart")]);
    world.apply_config(HUB, hub);
    let app = world.open_flow("127.0.0.1:9000", b"hello");
    assert!(world.net.apps[app].received.is_empty());
    let denied: Vec<String> = world
        .events_of(HUB)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::PolicyDenied { decision, .. } => {
                decision.rule.as_ref().map(|r| r.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(denied, vec!["no-cart".to_string()]);
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Refused { status: 401 })]
    );
    assert!(world.closed_flows(B).is_empty());
}

#[test]
fn endpoint_policy_denial_comes_back_as_401() {
    let Setup {
        mut world, configs, ..
    } = setup(h2::Config::default());
    let mut b = configs[B].clone();
    b.authz = AuthzPolicy::new(vec![deny_rule("b-says-no", "*/sa/cart")]);
    world.apply_config(B, b);
    world.run();
    let app = world.open_flow("127.0.0.1:9000", b"hello");
    assert!(world.net.apps[app].received.is_empty());
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Refused { status: 401 })]
    );
    assert_eq!(
        world.closed_flows(HUB),
        vec![(Direction::Relayed, CloseReason::Refused { status: 401 })]
    );
}

#[test]
fn slow_reader_keeps_hub_buffers_bounded() {
    let cfg = h2::Config {
        initial_stream_window: 256 << 10,
        initial_connection_window: 1 << 20,
        max_send_buffer: 64 << 10,
        ..h2::Config::default()
    };
    let Setup { mut world, .. } = setup(cfg);
    world.add_server(addr("127.0.0.2:8080"), Server::Sink);
    world.net.slow_servers = Some(512);
    let data = pattern(8 << 20, 3);
    world.start_flow("127.0.0.1:9000", &data);
    // Per direction the hub holds at most one stream window of received
    // bytes, one send buffer and one TLS fill (256 KiB); two directions.
    let bound = 2 * ((256 << 10) + (64 << 10) + (256 << 10) + (64 << 10));
    let peak = world.bound_buffered(HUB, bound);
    world.run();
    assert!(peak.get() > 100 << 10, "the test never filled the hub");
    // All 8 MiB still arrive, slowly, in order.
    let sink = *world.net.server_apps.last().unwrap();
    assert!(world.net.apps[sink].received == data);
    assert!(world.net.apps[sink].eof, "A's half-close crossed the hub");
}

/// Two hubs (nodes 0 and 1), A (node 2) and B (node 3) connected to both.
fn two_hubs() -> World {
    let mut world = HubMesh::two_hubs(&Ca::new(1)).plaintext().world();
    world.run();
    world
}

fn link_ups(world: &World, n: usize) -> usize {
    world
        .events_of(n)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::Hub(HubEvent::LinkUp { .. })))
        .count()
}

#[test]
fn losing_one_hub_keeps_flows_on_the_other_and_new_flows_work() {
    let mut world = two_hubs();
    assert_eq!(link_ups(&world, 2), 4);
    assert_eq!(link_ups(&world, 3), 4);
    for h in [0, 1] {
        assert_eq!(world.nodes[h].hub_registry().len(), 1, "hub {h}");
    }
    // Two flows: one on each hub.
    let flows: Vec<usize> = (0..2)
        .map(|i| {
            let app = world.connect_app(addr("127.0.0.1:9000"));
            world.app_write(app, &pattern(10_000, i));
            app
        })
        .collect();
    world.run();
    assert_eq!(world.nodes[0].relay_count(), 1);
    assert_eq!(world.nodes[1].relay_count(), 1);
    // Hub 0 dies: its connections reset, its address stops answering.
    world.first_hub_dies();
    world.run();
    let survivor = world.live_apps(&flows);
    assert_eq!(survivor.len(), 1, "exactly the flow on hub 1 survives");
    let app = survivor[0];
    let salt = flows.iter().position(|f| *f == app).unwrap();
    world.app_write(app, &pattern(5_000, 9));
    world.app_shutdown(app);
    world.run();
    let mut expected = pattern(10_000, salt);
    expected.extend(pattern(5_000, 9));
    assert!(world.net.apps[app].received == expected);
    assert!(world.net.apps[app].eof);
    // A new flow goes through hub 1.
    let fresh = world.flow("127.0.0.1:9000", b"still here");
    assert_eq!(world.net.apps[fresh].received, b"still here");
    // Hub 0 comes back: the agents redial after their back-off.
    world.net.blackhole.remove(&addr("10.0.0.9:15009"));
    let mut now = world.now;
    for _ in 0..200 {
        now = now + core::time::Duration::from_millis(500);
        world.advance_to(now);
        world.run();
    }
    assert_eq!(link_ups(&world, 2), 6, "A is back on hub 0");
    assert_eq!(link_ups(&world, 3), 6, "B is back on hub 0");
    assert_eq!(world.nodes[0].hub_registry().len(), 1);
}

#[test]
fn an_announcement_outside_the_identity_is_rejected_and_others_unaffected() {
    let Setup {
        mut world, configs, ..
    } = setup(h2::Config::default());
    // B now also claims a service of another namespace.
    let mut b = configs[B].clone();
    b.exports = Exports::new(vec![
        Export {
            service: ServiceName::parse("echo.shop").unwrap(),
            port: 80,
            target: Target::Addr(addr("127.0.0.2:8080")),
        },
        Export {
            service: ServiceName::parse("payments.bank").unwrap(),
            port: 443,
            target: Target::Addr(addr("127.0.0.2:8443")),
        },
    ])
    .unwrap();
    world.apply_config(B, b);
    world.run();
    let rejected = |n: usize| {
        world
            .events_of(n)
            .into_iter()
            .filter_map(|e| match e {
                NodeEvent::Hub(HubEvent::AnnounceRejected { agent, rejection }) => {
                    Some((agent.clone(), rejection.to_string()))
                }
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let expected = vec![(
        spiffe("shop", "echo"),
        "identity may not export payments.bank:443".to_string(),
    )];
    assert_eq!(rejected(HUB), expected);
    assert_eq!(rejected(B), expected, "B hears why on its control stream");
    // All or nothing: B's earlier announcement stands, and A still gets through.
    assert_eq!(world.nodes[HUB].hub_registry().len(), 1);
    let app = world.flow("127.0.0.1:9000", b"ping");
    assert_eq!(world.net.apps[app].received, b"ping");
}

#[test]
fn revoking_an_agent_at_the_hub_closes_its_connections_and_refuses_it() {
    let Setup {
        mut world, configs, ..
    } = setup(h2::Config::default());
    // A flow through B is open when B is revoked.
    let open = world.open_flow("127.0.0.1:9000", b"before");
    assert_eq!(world.net.apps[open].received, b"before");
    let mut hub = configs[HUB].clone();
    hub.revocation =
        RevocationList::parse("id spiffe://mesh.test/ns/shop/sa/echo key leaked\n").unwrap();
    world.apply_config(HUB, hub);
    world.run();
    let revoked: Vec<String> = world
        .events_of(HUB)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Hub(HubEvent::Revoked { peer, reason, .. }) => {
                Some(format!("{peer} {reason}"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(revoked.len(), 2, "forward and reverse: {revoked:?}");
    assert!(revoked
        .iter()
        .all(|r| r.contains("sa/echo") && r.contains("key leaked")));
    assert!(world.net.apps[open].reset || world.net.apps[open].eof);
    assert!(world.nodes[HUB].hub_registry().is_empty());
    // B redials and is refused again; A's new flows find nobody: 503.
    let mut now = world.now;
    for _ in 0..20 {
        now = now + core::time::Duration::from_millis(500);
        world.advance_to(now);
        world.run();
    }
    let again = world
        .events_of(HUB)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::Hub(HubEvent::Revoked { .. })))
        .count();
    assert!(again > 2, "redials are refused too");
    assert!(world.nodes[HUB].hub_registry().is_empty());
    let app = world.open_flow("127.0.0.1:9000", b"hello");
    assert!(world.net.apps[app].received.is_empty());
    assert_eq!(
        world.closed_flows(A).last(),
        Some(&(Direction::Outbound, CloseReason::Refused { status: 503 }))
    );
}

#[test]
fn a_flow_whose_hub_dies_before_any_byte_goes_through_the_other_hub() {
    let mut world = two_hubs();
    // Two flows: A spreads them over the two hubs, their CONNECTs are out
    // but the client has written nothing yet.
    let apps: Vec<usize> = (0..2)
        .map(|_| world.connect_app(addr("127.0.0.1:9000")))
        .collect();
    // Hub 0 dies before answering.
    world.first_hub_dies();
    echo_through_hub_1(&mut world, &apps);
    // Hub 1 relayed both; hub 0 finished none.
    assert_eq!(
        world.closed_flows(1),
        vec![(Direction::Relayed, CloseReason::Done); 2]
    );
}

/// The clients `apps` each write 10 kB and half-close; every flow must
/// come back echoed (through hub 1) and end well on A.
fn echo_through_hub_1(world: &mut World, apps: &[usize]) {
    for (i, app) in apps.iter().enumerate() {
        world.app_write(*app, &pattern(10_000, i));
        world.app_shutdown(*app);
    }
    world.run();
    for (i, app) in apps.iter().enumerate() {
        assert!(
            world.net.apps[*app].received == pattern(10_000, i),
            "flow {i}: echoed through hub 1"
        );
    }
    assert_eq!(
        world.closed_flows(2),
        vec![(Direction::Outbound, CloseReason::Done); apps.len()]
    );
}

#[test]
fn a_flow_refused_503_by_one_hub_goes_through_the_other() {
    let mut world = two_hubs();
    // Two flows, one CONNECT towards each hub, nothing written yet.
    let apps: Vec<usize> = (0..2)
        .map(|_| world.connect_app(addr("127.0.0.1:9000")))
        .collect();
    // B's links to hub 0 break first: hub 0 no longer has B and answers
    // its CONNECT 503, while hub 1 still relays to B.
    world.reset_links(0, 3);
    echo_through_hub_1(&mut world, &apps);
    // Hub 0 refused one (503: nobody serves it there), hub 1 relayed both.
    assert_eq!(
        world.closed_flows(0),
        vec![(Direction::Relayed, CloseReason::Unreachable)]
    );
    assert_eq!(
        world.closed_flows(1),
        vec![(Direction::Relayed, CloseReason::Done); 2]
    );
}
