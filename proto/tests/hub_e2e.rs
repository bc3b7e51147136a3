//! End-to-end mode through a hub, in memory over real mutual TLS: A and B
//! dial only the hub; A's flows to B's `echo.shop` travel in one inner
//! mTLS + HTTP/2 session between A and B, carried by one relayed stream.

mod node_harness;

use node_harness::certs::{spiffe, Ca};
use node_harness::config::{addr, pattern};
use node_harness::hubs::HubMesh;
use node_harness::World;
use warren_proto::hub::{HubEvent, HubLinks};
use warren_proto::node::{CloseReason, Direction, NodeConfig, NodeEvent};
use warren_proto::policy::{
    Action, AuthzPolicy, AuthzRule, Conditions, PrincipalPattern, RuleName,
};

const HUB: usize = 0;
const A: usize = 1;
const B: usize = 2;

/// Node 0 the hub, node 1 agent A (`cart`, tunnel 9000 → echo.shop:80),
/// node 2 agent B (`echo`, exports echo.shop:80, end to end unless
/// `plaintext`).
fn setup(plaintext: bool) -> (World, Vec<NodeConfig>) {
    let (mut world, configs) = setup_cold(plaintext);
    world.run();
    (world, configs)
}

/// `setup` before any byte moved: no agent is connected to the hub yet.
fn setup_cold(plaintext: bool) -> (World, Vec<NodeConfig>) {
    let mut mesh = HubMesh::new(&Ca::new(1));
    if plaintext {
        mesh = mesh.plaintext();
    }
    (mesh.world(), mesh.configs())
}

fn deny_cart() -> AuthzPolicy {
    let mut rule = AuthzRule::new(RuleName::new("b-says-no").unwrap(), Action::Deny);
    rule.when = Conditions {
        principals: vec![PrincipalPattern::new("*/sa/cart").unwrap()],
        ..Conditions::default()
    };
    AuthzPolicy::new(vec![rule])
}

/// Inner handshakes node `n` completed (one per agent pair and hub).
fn e2e_handshakes(world: &World, n: usize) -> usize {
    world
        .events_of(n)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::Hub(HubEvent::EndToEndUp { .. })))
        .count()
}

fn sources(world: &World, n: usize) -> Vec<String> {
    world
        .events_of(n)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::FlowClosed { source, .. } => source.as_ref().map(|s| s.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn flows_round_trip_end_to_end_sharing_one_inner_connection() {
    let (mut world, _) = setup(false);
    let mut apps = world.flows_of_sizes("127.0.0.1:9000", &[1, 70_000, 600_000]);
    // A later flow reuses the pooled inner connection.
    let data = pattern(30_000, 7);
    let late = world.start_flow("127.0.0.1:9000", &data);
    apps.push((late, data));
    world.run();
    world.assert_echoed(&apps);
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Done); 4]
    );
    assert_eq!(
        world.closed_flows(B),
        vec![(Direction::Inbound, CloseReason::Done); 4]
    );
    // One inner handshake on each side, one relayed pair stream at the
    // hub (still open: the inner connection is pooled), for four flows.
    assert_eq!(e2e_handshakes(&world, A), 1);
    assert_eq!(e2e_handshakes(&world, B), 1);
    assert_eq!(world.nodes[HUB].relay_count(), 1);
    let opened: Vec<String> = world
        .events_of(HUB)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::FlowOpened { service, .. } => Some(service.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(opened, ["end-to-end"]);
    // B authorized every flow as A, from the inner TLS session.
    assert_eq!(
        sources(&world, B),
        vec![spiffe("shop", "cart").to_string(); 4]
    );
    // A's access log names B, proven by the inner handshake.
    for e in world.events_of(A) {
        if let NodeEvent::FlowClosed { .. } = e {
            let line = e.to_string();
            assert!(
                line.contains(" dst=spiffe://mesh.test/ns/shop/sa/echo ")
                    && line.contains(" path=hub "),
                "{line}"
            );
        }
    }
    // The hub carried every byte, framed and encrypted: more than the
    // flows' bytes each way.
    let payload: u64 = apps.iter().map(|(_, d)| d.len() as u64).sum();
    let key = world.nodes[HUB].metrics().values().next().cloned().unwrap();
    assert!(key.bytes_sent > payload && key.bytes_received > payload);
}

/// A flow that starts before A's links are up waits for the hub's
/// registry; here A's snapshot comes before B's announcement, so the flow
/// first leaves as a plain relay, B refuses it, and A (having learnt
/// meanwhile that echo.shop is end to end) retries end to end.
#[test]
fn a_flow_older_than_the_registry_still_goes_end_to_end() {
    let (mut world, _) = setup_cold(false);
    let app = world.flow("127.0.0.1:9000", b"early");
    assert_eq!(world.net.apps[app].received, b"early");
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Done)]
    );
    assert_eq!(
        world.closed_flows(B),
        vec![
            (Direction::Inbound, CloseReason::Refused { status: 401 }),
            (Direction::Inbound, CloseReason::Done)
        ]
    );
    assert_eq!(e2e_handshakes(&world, A), 1);
}

/// A joins a hub where B is already announced, and a flow starts before
/// A's links are up: it waits for the hub's snapshot, which says end to
/// end, so no plain relay is ever tried.
#[test]
fn a_flow_waits_for_the_registry_before_choosing_the_mode() {
    let (mut world, configs) = setup_cold(false);
    let mut lonely = configs[A].clone();
    lonely.hub_links = HubLinks::default();
    world.apply_config(A, lonely);
    world.run();
    assert_eq!(world.nodes[HUB].hub_registry().len(), 1, "B announced");
    world.apply_config(A, configs[A].clone());
    let app = world.flow("127.0.0.1:9000", b"patient");
    assert_eq!(world.net.apps[app].received, b"patient");
    assert_eq!(
        world.closed_flows(B),
        vec![(Direction::Inbound, CloseReason::Done)]
    );
    assert_eq!(world.closed_flows(HUB), vec![]);
    assert_eq!(e2e_handshakes(&world, A), 1);
}

#[test]
fn the_endpoint_authorizes_with_the_inner_identity() {
    let (mut world, configs) = setup(false);
    let mut b = configs[B].clone();
    b.authz = deny_cart();
    world.apply_config(B, b);
    world.run();
    let app = world.open_flow("127.0.0.1:9000", b"hello");
    assert!(world.net.apps[app].received.is_empty());
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Refused { status: 401 })]
    );
    // The hub allowed the pair (its relay opened); B said no, naming its rule.
    assert_eq!(world.nodes[HUB].relay_count(), 1);
    let denied: Vec<(String, Option<String>)> = world
        .events_of(B)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::PolicyDenied {
                decision, source, ..
            } => Some((
                decision.rule.as_ref().unwrap().to_string(),
                source.as_ref().map(|s| s.to_string()),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        denied,
        [(
            "b-says-no".to_string(),
            Some(spiffe("shop", "cart").to_string())
        )]
    );
}

#[test]
fn the_hub_policy_authorizes_the_pair() {
    let (mut world, configs) = setup(false);
    let mut hub = configs[HUB].clone();
    hub.authz = deny_cart();
    world.apply_config(HUB, hub);
    let app = world.open_flow("127.0.0.1:9000", b"hello");
    assert!(world.net.apps[app].received.is_empty());
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Refused { status: 401 })]
    );
    assert!(matches!(
        world.closed_flows(HUB)[..],
        [(Direction::Relayed, CloseReason::Denied(_))]
    ));
    assert_eq!(e2e_handshakes(&world, B), 0, "B never heard of it");
}

#[test]
fn a_plain_relayed_connect_to_an_end_to_end_service_is_refused() {
    // B serves echo.shop in plaintext mode, A learns so; then B turns
    // end-to-end on, and A's next flow leaves before the registry change
    // reaches it: a plain relay, with the hub's `warren-source` header.
    let (mut world, configs) = setup(true);
    let mut b = configs[B].clone();
    b.relay_plaintext.clear();
    world.apply_config(B, b);
    let app = world.flow("127.0.0.1:9000", b"hello");
    // B refused the plain relay without dialling its target, and said why.
    assert_eq!(
        world.closed_flows(B)[0],
        (Direction::Inbound, CloseReason::Refused { status: 401 })
    );
    assert_eq!(
        world.closed_flows(HUB)[0],
        (Direction::Relayed, CloseReason::Refused { status: 401 })
    );
    let refusals = world
        .events_of(B)
        .into_iter()
        .filter(|e| {
            e.to_string()
                .contains("plain relayed CONNECT for end-to-end service echo.shop:80")
        })
        .count();
    assert_eq!(refusals, 1);
    // A had learnt meanwhile that echo.shop is end to end: its flow went
    // that way (no byte had moved) and got through, once.
    assert_eq!(world.net.apps[app].received, b"hello");
    assert_eq!(world.net.server_apps.len(), 1, "B dialled its target once");
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Done)]
    );
    assert_eq!(e2e_handshakes(&world, A), 1);
}

#[test]
fn an_agent_gone_from_the_hub_is_503_at_once() {
    let (mut world, _) = setup(false);
    // B's links to the hub die; A's next flow leaves before the hub's
    // registry change reaches it.
    world.reset_links(HUB, B);
    let app = world.open_flow("127.0.0.1:9000", b"hello");
    assert!(world.net.apps[app].received.is_empty());
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::Refused { status: 503 })]
    );
    assert_eq!(
        world.closed_flows(HUB),
        vec![(Direction::Relayed, CloseReason::Unreachable)]
    );
}

#[test]
fn losing_the_hub_ends_the_inner_connection_and_its_flows() {
    let (mut world, _) = setup(false);
    let app = world.open_flow("127.0.0.1:9000", b"open");
    assert_eq!(world.net.apps[app].received, b"open");
    let conns = world.nodes[A].connection_count();
    assert_eq!(conns, 3, "forward, reverse and the inner connection");
    world.reset_links(HUB, B);
    world.run();
    assert!(world.net.apps[app].reset || world.net.apps[app].eof);
    assert_eq!(
        world.closed_flows(A),
        vec![(Direction::Outbound, CloseReason::ConnectionLost)]
    );
    assert_eq!(world.nodes[HUB].relay_count(), 0);
    assert_eq!(
        world.nodes[A].connection_count(),
        2,
        "the inner one is gone"
    );
    assert_eq!(world.nodes[A].flow_count(), 0);
}

/// Runs one flow carrying a marker through the hub, recording the hub's
/// plaintext; returns the recording.
fn hub_plaintext(plaintext: bool) -> Vec<u8> {
    let (mut world, _) = setup(plaintext);
    world.nodes[HUB].record_plaintext(16 << 20);
    let marker = b"MARKER-7f3a-never-on-the-hub";
    let mut data = pattern(50_000, 1);
    data.extend_from_slice(marker);
    data.extend(pattern(50_000, 2));
    let app = world.flow("127.0.0.1:9000", &data);
    // The flow worked (and echoed the marker back through the hub).
    assert!(world.net.apps[app].received == data);
    let (seen, dropped) = world.nodes[HUB].recorded_plaintext();
    assert_eq!(dropped, 0);
    assert!(seen.len() > 100_000, "the tap saw the relayed bytes");
    let found = seen.windows(marker.len()).filter(|w| w == marker).count();
    assert!(found == 0 || found == 4, "found {found}");
    seen.to_vec()
}

#[test]
fn the_hub_never_holds_plaintext_end_to_end() {
    let marker = b"MARKER-7f3a-never-on-the-hub";
    let on = hub_plaintext(false);
    assert!(!on.windows(marker.len()).any(|w| w == marker));
    // The check can fail: with end-to-end off the hub reads the marker
    // coming in and going out, in both directions (the echo).
    let off = hub_plaintext(true);
    let found = off.windows(marker.len()).filter(|w| w == marker).count();
    assert_eq!(found, 4);
}

#[test]
fn a_slow_reader_keeps_the_hub_bounded_end_to_end() {
    let (mut world, _) = setup(false);
    world.add_server(addr("127.0.0.2:8080"), node_harness::Server::Sink);
    world.net.slow_servers = Some(512);
    let data = pattern(4 << 20, 3);
    world.start_flow("127.0.0.1:9000", &data);
    // Default windows: the pair stream's 4 MiB window, one send buffer
    // and one TLS fill per direction.
    let bound = 2 * ((4 << 20) + (1 << 20) + (256 << 10) + (64 << 10));
    world.bound_buffered(HUB, bound);
    world.run();
    let sink = *world.net.server_apps.last().unwrap();
    assert!(world.net.apps[sink].received == data);
    assert!(world.net.apps[sink].eof, "A's half-close crossed the hub");
}

/// An idle inner connection leaves the pool after its idle timeout: both
/// TLS sessions close, the pair stream ends cleanly at the hub, and no
/// connection, stream or relay is left behind. A later flow dials anew.
#[test]
fn an_idle_inner_connection_closes_cleanly_everywhere() {
    let (mut world, _) = setup(false);
    let app = world.flow("127.0.0.1:9000", b"once");
    assert_eq!(world.net.apps[app].received, b"once");
    assert_eq!(world.nodes[A].connection_count(), 3);
    assert_eq!(world.nodes[B].connection_count(), 3);
    assert_eq!(world.nodes[HUB].pair_relay_count(), 1);
    assert_eq!(world.nodes[A].pair_stream_count(), 1);
    assert_eq!(world.nodes[B].pair_stream_count(), 1);
    let mut now = world.now;
    for _ in 0..14 {
        now = now + core::time::Duration::from_secs(5);
        world.advance_to(now);
        world.run();
    }
    assert_eq!(world.nodes[HUB].relay_count(), 0);
    // The simulator's end-of-run leak check matches the hub's pair streams
    // against the agents' ends: both sides drop theirs together.
    assert_eq!(world.nodes[HUB].pair_relay_count(), 0);
    assert_eq!(world.nodes[A].pair_stream_count(), 0);
    assert_eq!(world.nodes[B].pair_stream_count(), 0);
    assert_eq!(
        world.closed_flows(HUB),
        vec![(Direction::Relayed, CloseReason::Done)]
    );
    assert_eq!(world.nodes[A].connection_count(), 2, "forward and reverse");
    assert_eq!(world.nodes[B].connection_count(), 2, "forward and reverse");
    assert_eq!(world.nodes[HUB].connection_count(), 4);
    // Nothing of the pair stream is left buffered anywhere.
    assert_eq!(world.nodes[HUB].connection_buffered(), 0);
    let again = world.flow("127.0.0.1:9000", b"twice");
    assert_eq!(world.net.apps[again].received, b"twice");
    assert_eq!(e2e_handshakes(&world, A), 2);
}

/// Two hubs (nodes 0 and 1), A (node 2) and B (node 3) on both, end to
/// end: flows alternate between the hubs, one inner connection per hub;
/// losing a hub loses only the flows inside its pair stream.
#[test]
fn two_hubs_carry_one_inner_connection_each_and_survive_losing_one() {
    let mut world = HubMesh::two_hubs(&Ca::new(1)).world();
    let a = 2;
    world.run();
    let apps: Vec<usize> = (0..4)
        .map(|i| {
            let app = world.connect_app(addr("127.0.0.1:9000"));
            world.app_write(app, &pattern(10_000, i));
            app
        })
        .collect();
    world.run();
    for (i, app) in apps.iter().enumerate() {
        assert!(world.net.apps[*app].received == pattern(10_000, i));
    }
    assert_eq!(e2e_handshakes(&world, a), 2, "one per hub");
    assert_eq!(world.nodes[0].relay_count(), 1);
    assert_eq!(world.nodes[1].relay_count(), 1);
    // Hub 0 dies.
    world.first_hub_dies();
    world.run();
    let alive = world.live_apps(&apps);
    assert_eq!(alive.len(), 2, "the flows inside hub 1's pair stream live");
    for app in &alive {
        world.app_write(*app, b"+more");
        world.app_shutdown(*app);
    }
    world.run();
    for app in &alive {
        assert!(world.net.apps[*app].received.ends_with(b"+more"));
        assert!(world.net.apps[*app].eof);
    }
    // A new flow goes through hub 1, on its inner connection.
    let fresh = world.flow("127.0.0.1:9000", b"still here");
    assert_eq!(world.net.apps[fresh].received, b"still here");
    assert_eq!(e2e_handshakes(&world, a), 2, "no new handshake");
}
