//! An agent choosing among a service's endpoints, in memory over real
//! mutual TLS: each strategy's distribution, ejection of endpoints that
//! refuse, and flows retried elsewhere with no byte lost.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{
    addr, cart_over, echo_endpoint, endpoint_node, pattern, tunnel, TUNNEL,
};
use node_harness::{socks_request_domain, World};
use quickcheck::{Arbitrary, Gen, QuickCheck};
use warren_proto::balance::{Ejection, Strategy};
use warren_proto::identity::SpiffeId;
use warren_proto::node::{CloseReason, Direction, FrontConfig, FrontKind, NodeConfig, NodeEvent};
use warren_proto::policy::ServiceName;
use warren_proto::time::Instant;

const AGENT: usize = 0;

fn echo() -> ServiceName {
    ServiceName::parse("echo.shop").unwrap()
}

/// A world with the agent (node 0: tunnel 127.0.0.1:9000 → echo.shop:80,
/// its directory listing endpoints `0..n`) and a serving node for each
/// endpoint in `alive` (node `1 + k` for the k-th alive one, exporting
/// echo.shop to its own echo server). Endpoints not alive refuse connects.
fn mesh(n: usize, alive: &[usize], strategy: Strategy) -> (World, NodeConfig) {
    let ca = Ca::new(1);
    let mut world = World::new();
    let mut agent = cart_over(&ca, (0..n).map(echo_endpoint).collect());
    agent.balance.strategy = strategy;
    world.add_node(agent.clone());
    for &i in alive {
        let target = format!("127.0.1.{i}:8080");
        world.add_node(endpoint_node(&ca, i as u8, "echo.shop", &target));
        world.add_echo_server(addr(&target));
    }
    (world, agent)
}

/// The destination identity of each outbound flow the agent opened, in
/// order.
fn opened_to(world: &World) -> Vec<SpiffeId> {
    world
        .events_of(AGENT)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::FlowOpened {
                direction: Direction::Outbound,
                destination,
                ..
            } => destination.clone(),
            _ => None,
        })
        .collect()
}

fn count(ids: &[SpiffeId], id: &SpiffeId) -> usize {
    ids.iter().filter(|x| *x == id).count()
}

#[test]
fn round_robin_spreads_flows_evenly_over_endpoints() {
    let (mut world, _) = mesh(3, &[0, 1, 2], Strategy::RoundRobin);
    for i in 0..12 {
        let app = world.flow(TUNNEL, &pattern(300, i));
        assert!(world.net.apps[app].received == pattern(300, i), "flow {i}");
    }
    let to = opened_to(&world);
    assert_eq!(to.len(), 12);
    for i in 0..3 {
        assert_eq!(count(&to, &echo_endpoint(i).identity), 4, "endpoint {i}");
    }
    // In turn: no endpoint twice in a row.
    assert!(to.windows(2).all(|w| w[0] != w[1]), "{to:?}");
}

#[test]
fn least_flows_sends_new_flows_to_the_least_loaded_endpoints() {
    let (mut world, _) = mesh(3, &[0, 1, 2], Strategy::LeastFlows);
    // Three long flows, one per endpoint.
    let mut apps = Vec::new();
    for i in 0..3 {
        let app = world.open_flow(TUNNEL, &pattern(10, i));
        apps.push(app);
    }
    let first = opened_to(&world);
    assert_eq!(first.len(), 3);
    for i in 0..3 {
        assert_eq!(count(&first, &echo_endpoint(i).identity), 1);
    }
    // The first stays open; the other two end.
    let busy = first[0].clone();
    for &app in &apps[1..] {
        world.app_shutdown(app);
    }
    world.run();
    // Two new long flows avoid the endpoint still carrying one.
    for i in 3..5 {
        world.open_flow(TUNNEL, &pattern(10, i));
    }
    let to = opened_to(&world);
    let new = &to[3..];
    assert_eq!(new.len(), 2);
    assert!(
        !new.contains(&busy),
        "new flows went to {new:?}, busy {busy}"
    );
    assert_ne!(new[0], new[1], "one each to the two idle endpoints");
    // Every serving node now carries exactly one live flow.
    for n in 1..4 {
        assert_eq!(world.nodes[n].flow_count(), 1, "node {n}");
    }
}

#[test]
fn sticky_keeps_each_source_on_one_endpoint() {
    let (mut world, agent) = mesh(4, &[0, 1, 2, 3], Strategy::Sticky);
    // A second agent, another identity, same directory and strategy.
    let ca = Ca::new(1);
    let mut other = agent.clone();
    other.identity = ca.identity(3, "shop", "web");
    other.fronts = vec![tunnel("127.0.0.2:9000", "echo.shop:80")];
    let web = world.add_node(other);
    for i in 0..8 {
        world.flow(TUNNEL, &pattern(100, i));
        let app = world.flow("127.0.0.2:9000", &pattern(100, i));
        assert!(world.net.apps[app].received == pattern(100, i));
    }
    let to = opened_to(&world);
    assert_eq!(to.len(), 8);
    assert!(to.iter().all(|d| *d == to[0]), "cart moved: {to:?}");
    let web_to: Vec<SpiffeId> = world
        .events_of(web)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::FlowOpened { destination, .. } => destination.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(web_to.len(), 8);
    assert!(
        web_to.iter().all(|d| *d == web_to[0]),
        "web moved: {web_to:?}"
    );
}

#[test]
fn sticky_source_moves_only_while_its_endpoint_is_ejected() {
    let (mut world, _) = mesh(3, &[0, 1, 2], Strategy::Sticky);
    world.flow(TUNNEL, b"first");
    let home = opened_to(&world)[0].clone();
    let i = (0..3).find(|&i| echo_endpoint(i).identity == home).unwrap();
    // Its node stops listening: the next flow's connect is refused.
    let node = 1 + i;
    let mut cfg = world.nodes[node].config().clone();
    cfg.hbone_listen = None;
    world.apply_config(node, cfg.clone());
    world.reset_links(AGENT, node);
    world.run();
    let app = world.flow(TUNNEL, &pattern(5000, 1));
    assert!(
        world.net.apps[app].received == pattern(5000, 1),
        "retried whole"
    );
    let ejected = world.events_of(AGENT).into_iter().any(
        |e| matches!(e, NodeEvent::EndpointEjected { endpoint, .. } if endpoint.identity == home),
    );
    assert!(ejected, "the refusing endpoint was ejected");
    for k in 2..5 {
        world.flow(TUNNEL, &pattern(10, k));
    }
    let to = opened_to(&world);
    let away = &to[1..];
    assert!(!away.contains(&home));
    assert!(away.iter().all(|d| *d == away[0]), "one fallback: {away:?}");
    // It listens again; after the back-off the source comes home.
    cfg.hbone_listen = Some(echo_endpoint(i).hbone);
    world.apply_config(node, cfg);
    world.advance_to(Instant::from_nanos(61_000_000_000));
    world.run();
    world.flow(TUNNEL, b"home again");
    assert_eq!(opened_to(&world).last(), Some(&home));
}

#[test]
fn a_per_service_strategy_overrides_the_default() {
    let (mut world, mut agent) = mesh(3, &[0, 1, 2], Strategy::RoundRobin);
    agent.balance.services.insert(echo(), Strategy::Sticky);
    world.apply_config(AGENT, agent);
    for i in 0..6 {
        world.flow(TUNNEL, &pattern(10, i));
    }
    let to = opened_to(&world);
    assert!(to.iter().all(|d| *d == to[0]), "{to:?}");
}

#[test]
fn all_endpoints_ejected_refuses_and_says_so() {
    // Neither endpoint listens; the client speaks SOCKS5.
    let (mut world, mut agent) = mesh(2, &[], Strategy::RoundRobin);
    agent.fronts = vec![FrontConfig {
        listen: addr("127.0.0.1:1080"),
        kind: FrontKind::Socks5,
    }];
    world.apply_config(AGENT, agent);
    for _ in 0..2 {
        let app = world.open_flow("127.0.0.1:1080", &socks_request_domain("echo.shop", 80));
        // Method choice, then "host unreachable" (4).
        assert_eq!(
            world.net.apps[app].received,
            [5, 0, 5, 4, 0, 1, 0, 0, 0, 0, 0, 0]
        );
        assert!(world.net.apps[app].eof);
    }
    assert_eq!(
        world.close_reasons(AGENT),
        vec![CloseReason::NoHealthyEndpoint { endpoints: 2 }; 2]
    );
    let line = world
        .events_of(AGENT)
        .into_iter()
        .find(|e| matches!(e, NodeEvent::FlowClosed { .. }))
        .unwrap()
        .to_string();
    assert!(
        line.ends_with("reason=\"no healthy endpoint: all 2 ejected or failed\""),
        "{line}"
    );
    // The first flow tried both and ejected both; the second probed only
    // the one readmitted soonest.
    let dialled: Vec<usize> = (0..2)
        .map(|i| world.dials(AGENT, echo_endpoint(i).hbone))
        .collect();
    assert!(dialled.contains(&1) && dialled.contains(&2), "{dialled:?}");
    let ejections = world
        .events_of(AGENT)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::EndpointEjected { .. }))
        .count();
    assert_eq!(ejections, 2);
}

#[test]
fn a_recovered_endpoint_takes_the_next_flow_even_while_ejected() {
    // One endpoint, not listening yet: the first flow ejects it.
    let (mut world, _) = mesh(1, &[], Strategy::RoundRobin);
    let app = world.flow(TUNNEL, b"too early");
    assert!(world.net.apps[app].received.is_empty());
    let (mut late, _) = mesh(1, &[0], Strategy::RoundRobin);
    // It comes up within its back-off (no time passes): the next flow
    // probes it instead of being refused, and it is healthy again.
    world.add_node(late.nodes.remove(1).config().clone());
    world.add_echo_server(addr("127.0.1.0:8080"));
    for i in 0..3 {
        let app = world.flow(TUNNEL, &pattern(1000, i));
        assert!(world.net.apps[app].received == pattern(1000, i), "flow {i}");
    }
    assert_eq!(
        world.close_reasons(AGENT),
        [
            vec![CloseReason::NoHealthyEndpoint { endpoints: 1 }],
            vec![CloseReason::Done; 3]
        ]
        .concat()
    );
    assert_eq!(
        world.dials(AGENT, echo_endpoint(0).hbone),
        2,
        "one pooled connection after"
    );
}

#[test]
fn an_endpoint_that_does_not_serve_the_service_sends_flows_elsewhere() {
    // Endpoint 0 is up but exports another service: it answers 503.
    let (mut world, _) = mesh(2, &[1], Strategy::RoundRobin);
    let ca = Ca::new(1);
    let stale = world.add_node(endpoint_node(&ca, 0, "other.shop", "127.0.1.0:8080"));
    for i in 0..4 {
        let data = pattern(20_000, i);
        let app = world.flow(TUNNEL, &data);
        assert!(
            world.net.apps[app].received == data,
            "flow {i}: no byte lost"
        );
    }
    assert_eq!(world.close_reasons(AGENT), vec![CloseReason::Done; 4]);
    // The stale endpoint refused the flows that tried it (not exported:
    // 503), and endpoint 1 carried every one.
    let refused = world.close_reasons(stale);
    assert!(!refused.is_empty());
    assert!(
        refused.iter().all(|r| matches!(r,
            CloseReason::Denied(d) if d.reason == warren_proto::policy::Reason::NotExported)),
        "{refused:?}"
    );
    assert_eq!(world.close_reasons(1), vec![CloseReason::Done; 4]);
    // Connected fine, so never ejected.
    assert!(!world
        .events_of(AGENT)
        .into_iter()
        .any(|e| matches!(e, NodeEvent::EndpointEjected { .. })));
}

#[test]
fn ejection_waits_for_the_configured_number_of_failures() {
    let (mut world, mut agent) = mesh(2, &[1], Strategy::RoundRobin);
    agent.balance.ejection = Ejection {
        consecutive_failures: 3,
        ..agent.balance.ejection
    };
    world.apply_config(AGENT, agent);
    for i in 0..8 {
        let app = world.flow(TUNNEL, &pattern(50, i));
        assert!(world.net.apps[app].received == pattern(50, i), "flow {i}");
    }
    // Round-robin turns reach the dead endpoint until its third failure.
    assert_eq!(world.dials(AGENT, echo_endpoint(0).hbone), 3);
    assert_eq!(world.close_reasons(1).len(), 8, "all served by endpoint 1");
}

/// Which of a few endpoints are alive, and how many flows to run.
#[derive(Clone, Debug)]
struct Liveness {
    alive: Vec<bool>,
    flows: usize,
    strategy: Strategy,
}

impl Arbitrary for Liveness {
    fn arbitrary(g: &mut Gen) -> Liveness {
        let n = 1 + usize::arbitrary(g) % 4;
        Liveness {
            alive: (0..n).map(|_| bool::arbitrary(g)).collect(),
            flows: 1 + usize::arbitrary(g) % 6,
            strategy: *g
                .choose(&[Strategy::RoundRobin, Strategy::LeastFlows, Strategy::Sticky])
                .unwrap(),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Liveness>> {
        let me = self.clone();
        let fewer = (1..self.flows).map(move |flows| Liveness {
            flows,
            ..me.clone()
        });
        Box::new(fewer)
    }
}

#[test]
fn dead_endpoints_cost_no_bytes_and_one_dial_each() {
    // Property: with any endpoints dead, every flow either arrives whole
    // (some endpoint lives) or is refused saying no endpoint is healthy
    // (none does). While one lives, each dead endpoint is dialled once at
    // most (ejected after one failure); when all are dead, the first flow
    // tries each and every later flow probes just one.
    fn prop(l: Liveness) -> bool {
        let alive: Vec<usize> = (0..l.alive.len()).filter(|&i| l.alive[i]).collect();
        let (mut world, _) = mesh(l.alive.len(), &alive, l.strategy);
        for f in 0..l.flows {
            let app = world.flow(TUNNEL, &pattern(2000, f));
            let got = &world.net.apps[app];
            let ok = if alive.is_empty() {
                got.received.is_empty() && got.eof
            } else {
                got.received == pattern(2000, f) && got.eof
            };
            if !ok {
                return false;
            }
        }
        let dead_dials: Vec<usize> = (0..l.alive.len())
            .filter(|&i| !l.alive[i])
            .map(|i| world.dials(AGENT, echo_endpoint(i).hbone))
            .collect();
        let dead_dials_once = if alive.is_empty() {
            dead_dials.iter().sum::<usize>() == l.alive.len() + l.flows - 1
        } else {
            dead_dials.iter().all(|&d| d <= 1)
        };
        let reasons = world.close_reasons(AGENT);
        let expected = if alive.is_empty() {
            CloseReason::NoHealthyEndpoint {
                endpoints: l.alive.len(),
            }
        } else {
            CloseReason::Done
        };
        dead_dials_once && reasons.len() == l.flows && reasons.iter().all(|r| *r == expected)
    }
    QuickCheck::new()
        .tests(25)
        .quickcheck(prop as fn(Liveness) -> bool);
}
