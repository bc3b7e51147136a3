//! Targets named by host name: exports whose target is `host:port` and
//! egress to a domain. The node asks the host to resolve (`Resolve`), then
//! connects to an address it chose; egress rules about names and CIDRs
//! decide as `node::resolve` documents.

mod node_harness;

use std::net::IpAddr;

use node_harness::certs::Ca;
use node_harness::config::{addr, endpoint, tunnel, HBONE_B, TUNNEL};
use node_harness::{socks_flow, socks_request_domain, World, SOCKS_OK};
use warren_proto::node::{
    CloseReason, FrontConfig, FrontKind, Input, Node, NodeConfig, NodeEvent, Output, ResolveError,
};
use warren_proto::policy::{
    Action, Cidr, Destination, DomainPattern, EgressPolicy, EgressRule, Export, Exports, PortRange,
    Reason, RuleName, ServiceName, Target,
};
use warren_proto::time::Instant;

const SOCKS: &str = "127.0.0.1:1080";
/// Where `db.internal` (node B's export target) lives.
const DB: &str = "127.0.0.9:5432";
/// Inside the `lab` CIDR rule.
const LAB_HOST: &str = "198.51.100.7:7";
/// Outside every CIDR rule.
const CDN_HOST: &str = "203.0.113.50:443";

fn ip(s: &str) -> IpAddr {
    addr(s).ip()
}

fn rule(name: &str, action: Action, dest: Destination, port: u16) -> EgressRule {
    let mut rule = EgressRule::new(RuleName::new(name).unwrap(), action);
    rule.destinations = vec![dest];
    rule.ports = vec![PortRange::new(port, port).unwrap()];
    rule
}

fn lab_rule() -> EgressRule {
    let lab = Cidr::parse("198.51.100.0/24").unwrap();
    rule("lab", Action::Allow, Destination::Cidr(lab), 7)
}

fn cdn_rule() -> EgressRule {
    let cdn = DomainPattern::parse("*.cdn.example").unwrap();
    rule("cdn", Action::Allow, Destination::Domain(cdn), 443)
}

/// Node A: SOCKS5 front end and a tunnel to `db.shop:5432`, egress rules
/// `lab` (a CIDR) and `cdn` (a domain). Node B exports `db.shop` with the
/// target `db.internal:5432`. Names: `lab.example` → the lab host,
/// `www.cdn.example` → the CDN host, `db.internal` → the database,
/// `elsewhere.example` → outside every rule.
fn world() -> World {
    let ca = Ca::new(1);
    let mut world = World::new();
    let mut a = NodeConfig::new(ca.identity(2, "shop", "cart"));
    a.fronts = vec![
        FrontConfig {
            listen: addr(SOCKS),
            kind: FrontKind::Socks5,
        },
        tunnel(TUNNEL, "db.shop:5432"),
    ];
    a.directory.insert(
        ServiceName::parse("db.shop").unwrap(),
        vec![endpoint(HBONE_B, "db")],
    );
    a.egress = EgressPolicy::new(vec![lab_rule(), cdn_rule()]);
    let mut b = NodeConfig::new(ca.identity(3, "shop", "db"));
    b.hbone_listen = Some(addr(HBONE_B));
    b.exports = Exports::new(vec![Export {
        service: ServiceName::parse("db.shop").unwrap(),
        port: 5432,
        target: Target::Host {
            host: "db.internal".into(),
            port: 5432,
        },
    }])
    .unwrap();
    world.add_node(a);
    world.add_node(b);
    for (name, at) in [
        ("lab.example", LAB_HOST),
        ("www.cdn.example", CDN_HOST),
        ("db.internal", DB),
        ("elsewhere.example", "192.0.2.1:7"),
    ] {
        world.net.names.insert(name.into(), vec![ip(at)]);
    }
    for server in [DB, LAB_HOST, CDN_HOST, "192.0.2.1:7"] {
        world.add_echo_server(addr(server));
    }
    world
}

/// The transcript lines of node `n` containing `word` (e.g. "resolve").
fn transcript(world: &World, n: usize, word: &str) -> Vec<String> {
    let prefix = format!("{n} {word} ");
    world
        .net
        .transcript
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .cloned()
        .collect()
}

#[test]
fn an_export_whose_target_is_a_name_is_resolved_and_reached() {
    let mut world = world();
    let app = world.flow(TUNNEL, b"select 1");
    assert_eq!(world.net.apps[app].received, b"select 1");
    assert!(world.net.apps[app].eof);
    assert_eq!(transcript(&world, 1, "resolve").len(), 1);
    assert!(transcript(&world, 1, "connect")
        .iter()
        .any(|l| l.ends_with(DB)));
    assert_eq!(world.close_reasons(1), vec![CloseReason::Done]);
}

#[test]
fn an_export_whose_name_does_not_resolve_answers_503() {
    let mut world = world();
    world.net.names.remove("db.internal");
    let app = world.open_flow(TUNNEL, b"select 1");
    assert_eq!(world.close_reasons(1), vec![CloseReason::Unreachable]);
    assert_eq!(
        world.close_reasons(0),
        vec![CloseReason::Refused { status: 503 }]
    );
    assert!(world.net.apps[app].received.is_empty());
    assert_eq!(world.nodes[1].sock_count(), 1, "only the mesh connection");
}

#[test]
fn egress_to_a_name_a_domain_rule_allows_uses_any_address_it_resolves_to() {
    let mut world = world();
    // 203.0.113.50 is outside every CIDR rule: the name's rule decides.
    let app = socks_flow(&mut world, SOCKS, "www.cdn.example", 443, b"GET /");
    let got = &world.net.apps[app].received;
    assert_eq!(got[..12], SOCKS_OK);
    assert_eq!(&got[12..], b"GET /");
    assert!(transcript(&world, 0, "connect")
        .iter()
        .any(|l| l.ends_with(CDN_HOST)));
    assert_eq!(world.close_reasons(0), vec![CloseReason::Done]);
}

#[test]
fn egress_to_a_name_no_rule_names_is_allowed_when_its_address_is_in_an_allowed_cidr() {
    let mut world = world();
    let app = socks_flow(&mut world, SOCKS, "lab.example", 7, b"ping");
    let got = &world.net.apps[app].received;
    assert_eq!(got[..12], SOCKS_OK);
    assert_eq!(&got[12..], b"ping");
    assert_eq!(world.close_reasons(0), vec![CloseReason::Done]);
}

#[test]
fn egress_to_a_name_resolving_outside_every_cidr_is_denied_without_a_connect() {
    let mut world = world();
    let app = socks_flow(&mut world, SOCKS, "elsewhere.example", 7, b"ping");
    assert_eq!(world.net.apps[app].received[..4], [5, 0, 5, 2]);
    assert_eq!(transcript(&world, 0, "resolve").len(), 1);
    assert!(transcript(&world, 0, "connect").is_empty());
    let denied = world.events_of(0).into_iter().find_map(|e| match e {
        NodeEvent::PolicyDenied { decision, .. } => Some(decision.reason),
        _ => None,
    });
    assert_eq!(denied, Some(Reason::EgressNotAllowed));
    assert_eq!(world.nodes[0].sock_count(), 0);
}

#[test]
fn a_name_a_deny_rule_matches_is_refused_before_resolving() {
    let mut world = world();
    let mut config = world.nodes[0].config().clone();
    let lab = DomainPattern::parse("lab.example").unwrap();
    let deny = rule("no-lab-name", Action::Deny, Destination::Domain(lab), 7);
    config.egress.rules.insert(0, deny);
    world.apply_config(0, config);
    let app = socks_flow(&mut world, SOCKS, "lab.example", 7, b"ping");
    assert_eq!(world.net.apps[app].received[..4], [5, 0, 5, 2]);
    assert!(transcript(&world, 0, "resolve").is_empty());
}

#[test]
fn without_any_cidr_rule_an_unnamed_domain_is_denied_before_resolving() {
    let mut world = world();
    let mut config = world.nodes[0].config().clone();
    config.egress = EgressPolicy::new(vec![cdn_rule()]);
    world.apply_config(0, config);
    let app = socks_flow(&mut world, SOCKS, "lab.example", 7, b"ping");
    assert_eq!(world.net.apps[app].received[..4], [5, 0, 5, 2]);
    assert!(transcript(&world, 0, "resolve").is_empty());
}

#[test]
fn an_egress_name_that_does_not_resolve_is_host_unreachable() {
    let mut world = world();
    let app = socks_flow(&mut world, SOCKS, "nowhere.cdn.example", 443, b"");
    assert_eq!(
        world.net.apps[app].received[..4],
        [5, 0, 5, 4],
        "0x04 host unreachable"
    );
    assert_eq!(world.close_reasons(0), vec![CloseReason::Unreachable]);
    assert_eq!(world.nodes[0].sock_count(), 0);
}

#[test]
fn a_flow_allowed_by_its_name_survives_a_config_swap_that_keeps_the_rule() {
    let mut world = world();
    let app = world.open_flow(SOCKS, &socks_request_domain("www.cdn.example", 443));
    assert_eq!(world.net.apps[app].received, SOCKS_OK);
    // The same rules again: judged by its name, not by 203.0.113.50 (which
    // no rule allows).
    let config = world.nodes[0].config().clone();
    world.apply_config(0, config);
    world.run();
    assert!(
        world.close_reasons(0).is_empty(),
        "{:?}",
        world.close_reasons(0)
    );
    // A swap that drops the domain rule closes it.
    let mut config = world.nodes[0].config().clone();
    config.egress = EgressPolicy::new(vec![lab_rule()]);
    world.apply_config(0, config);
    world.run();
    assert!(matches!(
        world.close_reasons(0)[..],
        [CloseReason::Reconfigured(_)]
    ));
    assert!(world.net.apps[app].reset);
}

/// Node A alone, driven by hand: a SOCKS5 flow to `www.cdn.example:443`
/// up to the `Resolve`; returns the node and the socket being resolved.
fn node_resolving() -> (Node, warren_proto::node::SockId) {
    let ca = Ca::new(1);
    let mut config = NodeConfig::new(ca.identity(2, "shop", "cart"));
    config.fronts = vec![FrontConfig {
        listen: addr(SOCKS),
        kind: FrontKind::Socks5,
    }];
    config.egress = EgressPolicy::new(vec![cdn_rule()]);
    let mut node = Node::new(config, Instant::ZERO);
    let listener = match node.poll_output() {
        Some(Output::Listen { listener, .. }) => listener,
        other => panic!("expected Listen, got {other:?}"),
    };
    let client = node
        .accept(Instant::ZERO, listener, addr("127.0.0.1:40000"))
        .unwrap();
    let data = socks_request_domain("www.cdn.example", 443);
    let input = Input::Received {
        sock: client,
        data: &data,
    };
    node.handle_input(Instant::ZERO, input).unwrap();
    let resolving = std::iter::from_fn(|| node.poll_output()).find_map(|o| match o {
        Output::Resolve { sock, host } => Some((sock, host)),
        _ => None,
    });
    let (sock, host) = resolving.expect("a Resolve output");
    assert_eq!(host, "www.cdn.example");
    (node, sock)
}

#[test]
fn a_late_answer_after_the_connect_deadline_is_ignored() {
    let (mut node, sock) = node_resolving();
    let deadline = node.poll_timeout().expect("the connect deadline");
    node.handle_input(deadline, Input::Timeout).unwrap();
    let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::Event(NodeEvent::FlowClosed {
            reason: CloseReason::Timeout,
            ..
        })
    )));
    let addrs = [ip(CDN_HOST)];
    let late = Input::Resolved {
        sock,
        result: Ok(&addrs),
    };
    node.handle_input(deadline, late).unwrap();
    assert_eq!(node.poll_output(), None, "no connect for a dead flow");
    // Left: only the client's socket, closing after the SOCKS5 reply.
    assert_eq!(node.sock_count(), 1);
}

#[test]
fn a_resolver_failure_or_an_empty_answer_ends_the_flow_unreachable() {
    for result in [
        Err(ResolveError::Failed),
        Err(ResolveError::NotFound),
        Ok(&[][..]),
    ] {
        let (mut node, sock) = node_resolving();
        node.handle_input(Instant::ZERO, Input::Resolved { sock, result })
            .unwrap();
        let outputs: Vec<Output> = std::iter::from_fn(|| node.poll_output()).collect();
        assert!(!outputs.iter().any(|o| matches!(o, Output::Connect { .. })));
        assert!(outputs.iter().any(|o| matches!(
            o,
            Output::Event(NodeEvent::FlowClosed {
                reason: CloseReason::Unreachable,
                ..
            })
        )));
    }
}

#[test]
fn the_first_address_of_the_answer_is_connected_to() {
    let (mut node, sock) = node_resolving();
    let addrs = [ip("203.0.113.50:1"), ip("203.0.113.51:1")];
    let input = Input::Resolved {
        sock,
        result: Ok(&addrs),
    };
    node.handle_input(Instant::ZERO, input).unwrap();
    let connect = std::iter::from_fn(|| node.poll_output()).find_map(|o| match o {
        Output::Connect { sock, addr } => Some((sock, addr)),
        _ => None,
    });
    assert_eq!(connect, Some((sock, addr("203.0.113.50:443"))));
}

#[test]
fn a_refused_address_of_the_answer_falls_back_to_the_next() {
    let mut world = world();
    // Like `localhost`: `::1` first, where nothing listens.
    world
        .net
        .names
        .insert("db.internal".into(), vec![ip("[::1]:1"), ip(DB)]);
    let app = world.flow(TUNNEL, b"select 1");
    assert_eq!(world.net.apps[app].received, b"select 1");
    let connects = transcript(&world, 1, "connect");
    assert_eq!(connects.len(), 2, "{connects:?}");
    assert!(connects[0].ends_with("[::1]:5432") && connects[1].ends_with(DB));
    assert_eq!(world.close_reasons(1), vec![CloseReason::Done]);
}

#[test]
fn when_every_address_refuses_the_flow_ends_once() {
    let mut world = world();
    world.net.names.insert(
        "db.internal".into(),
        vec![ip("[::1]:1"), ip("127.0.0.99:1")],
    );
    world.open_flow(TUNNEL, b"select 1");
    assert_eq!(transcript(&world, 1, "connect").len(), 2);
    assert_eq!(world.close_reasons(1), vec![CloseReason::ConnectFailed]);
    assert_eq!(
        world.close_reasons(0),
        vec![CloseReason::Refused { status: 503 }]
    );
}
