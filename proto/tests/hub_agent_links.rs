//! An agent's hub links in memory over real mutual TLS: relayed flows go to
//! a hub whose registry lists the service, and a new certificate rolls the
//! links make-before-break (flows on the old links run to their end).

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{addr, exports, pattern, tunnel, ECHO, TUNNEL};
use node_harness::hubs::{hub_links, hub_node, HUB_ADDRS};
use node_harness::World;
use warren_proto::hub::{HubEvent, HubLinks, LinkKind};
use warren_proto::node::{CloseReason, NodeConfig, NodeEvent};

fn hub(ca: &Ca, i: usize) -> NodeConfig {
    hub_node(ca, 9 + i as u8, &format!("hub{i}"), HUB_ADDRS[i])
}

fn links(hubs: &[usize]) -> HubLinks {
    let addrs: Vec<&str> = hubs.iter().map(|i| HUB_ADDRS[*i]).collect();
    hub_links(&addrs)
}

/// Agent A (`shop/cart`, tunnel 9000 → echo.shop:80) dials `a_hubs`;
/// agent B (`shop/echo`, key seed `b_key`, no listener) serves echo.shop:80
/// and dials `b_hubs`.
fn agents(ca: &Ca, a_hubs: &[usize], b_key: u8, b_hubs: &[usize]) -> (NodeConfig, NodeConfig) {
    let mut a = NodeConfig::new(ca.identity(2, "shop", "cart"));
    a.fronts = vec![tunnel(TUNNEL, "echo.shop:80")];
    a.hub_links = links(a_hubs);
    let mut b = NodeConfig::new(ca.identity(b_key, "shop", "echo"));
    b.exports = exports("echo.shop", ECHO);
    b.hub_links = links(b_hubs);
    (a, b)
}

fn link_ups(world: &World, n: usize) -> Vec<LinkKind> {
    world
        .events_of(n)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Hub(HubEvent::LinkUp { kind, .. }) => Some(*kind),
            _ => None,
        })
        .collect()
}

/// Lets 5 s of virtual time pass (GOAWAY grace periods end).
fn settle(world: &mut World) {
    let mut now = world.now;
    for _ in 0..10 {
        now = now + core::time::Duration::from_millis(500);
        world.advance_to(now);
        world.run();
    }
}

#[test]
fn flows_go_to_the_hub_that_lists_the_service() {
    // A dials both hubs, B only hub 1: hub 0 never hears of echo.shop.
    let ca = Ca::new(1);
    let mut world = World::new();
    world.add_node(hub(&ca, 0));
    world.add_node(hub(&ca, 1));
    let (a, b) = agents(&ca, &[0, 1], 3, &[1]);
    let (a_n, _) = (world.add_node(a), world.add_node(b));
    world.add_echo_server(addr(ECHO));
    world.run();
    assert_eq!(world.nodes[0].hub_registry().len(), 0);
    assert_eq!(world.nodes[1].hub_registry().len(), 1);
    let apps: Vec<(usize, Vec<u8>)> = (0..6)
        .map(|i| {
            let data = pattern(5_000 + i, i);
            let app = world.start_flow("127.0.0.1:9000", &data);
            (app, data)
        })
        .collect();
    world.run();
    for (app, data) in &apps {
        assert!(world.net.apps[*app].received == *data, "app {app}");
    }
    // Before the fix A sent every other flow to hub 0, which answered 503.
    assert_eq!(world.outbound_closes(a_n), vec![CloseReason::Done; 6]);
}

#[test]
fn a_new_certificate_rolls_hub_links_and_old_links_drain() {
    let ca = Ca::new(1);
    let mut world = World::new();
    let hub_n = world.add_node(hub(&ca, 0));
    let (a, b) = agents(&ca, &[0], 3, &[0]);
    world.add_node(a);
    let b_n = world.add_node(b.clone());
    world.add_echo_server(addr(ECHO));
    world.run();
    assert_eq!(link_ups(&world, b_n).len(), 2);
    assert_eq!(world.nodes[hub_n].connection_count(), 4);
    // A flow through B is open when B's certificate changes.
    let first = pattern(20_000, 1);
    let open = world.open_flow("127.0.0.1:9000", &first);
    assert!(world.net.apps[open].received == first);
    let mut rotated = b;
    rotated.identity = ca.identity(23, "shop", "echo");
    world.apply_config(b_n, rotated);
    world.run();
    // B dialled the hub again (forward and reverse) with the new
    // certificate; the old forward link stays while the open flow uses it
    // (its reverse link carries the flow's second leg).
    assert_eq!(link_ups(&world, b_n).len(), 4);
    let status = world.nodes[b_n].hub_links();
    assert!(status[0].forward_up && status[0].reverse_up && status[0].control);
    // The hub lists B once: the old announcement went with the old control
    // stream, after the new one arrived.
    assert_eq!(world.nodes[hub_n].hub_registry().len(), 1);
    // Once the GOAWAY grace passed, the old forward link (no flow) is gone
    // and the old reverse link still carries the open flow.
    settle(&mut world);
    assert_eq!(world.nodes[hub_n].connection_count(), 5);
    // The flow that crossed the rotation finishes intact.
    let second = pattern(30_000, 2);
    world.app_write(open, &second);
    world.app_shutdown(open);
    world.run();
    let mut all = first;
    all.extend(&second);
    assert!(world.net.apps[open].received == all);
    assert!(world.net.apps[open].eof);
    // The old reverse connection closes once nothing rides on it. The
    // flow went end to end, so what rides on it is the pair stream of A's
    // pooled inner connection to B's old instance: new flows go to B's new
    // instance, and that inner connection closes at the pool's idle
    // timeout (60 s), taking the old link with it.
    settle(&mut world);
    assert_eq!(world.nodes[hub_n].connection_count(), 5);
    world.advance_to(world.now + core::time::Duration::from_secs(65));
    world.run();
    settle(&mut world);
    assert_eq!(world.nodes[hub_n].connection_count(), 4);
    // New flows cross the new links.
    let fresh = world.flow("127.0.0.1:9000", b"after rotation");
    assert_eq!(world.net.apps[fresh].received, b"after rotation");
}

/// Agent A alone, its only hub silent (connects never complete), waiting
/// `wait` for a registry; one flow to echo.shop opened at time 0.
fn flow_waiting_for_a_silent_hub(wait: Option<core::time::Duration>) -> (World, usize) {
    let ca = Ca::new(1);
    let mut world = World::new();
    world.net.blackhole.insert(addr(HUB_ADDRS[0]));
    let (mut a, _) = agents(&ca, &[0], 3, &[]);
    if let Some(wait) = wait {
        a.hub_links.registry_wait = wait;
    }
    world.add_node(a);
    let app = world.open_flow("127.0.0.1:9000", b"hello");
    (world, app)
}

#[test]
fn a_flow_waiting_for_the_first_registry_is_refused_at_its_deadline() {
    use core::time::Duration;
    use warren_proto::time::Instant;
    let (mut world, app) = flow_waiting_for_a_silent_hub(None);
    // The default wait is 5 s: just before it, the flow still waits.
    world.advance_to(Instant::ZERO + Duration::from_millis(4_999));
    world.run();
    assert_eq!(world.nodes[0].flow_count(), 1);
    assert!(world.outbound_closes(0).is_empty());
    assert!(!world.net.apps[app].eof && !world.net.apps[app].reset);
    // At 5 s it is refused, saying why (the hub's handshake deadline,
    // 10 s, has not passed: the link is still "coming").
    assert_eq!(
        world.nodes[0].poll_timeout(),
        Some(Instant::ZERO + Duration::from_secs(5))
    );
    world.advance_to(Instant::ZERO + Duration::from_secs(5));
    world.run();
    let reasons = world.outbound_closes(0);
    assert_eq!(
        reasons,
        vec![CloseReason::NoRegistry {
            waited: Duration::from_secs(5)
        }]
    );
    assert_eq!(
        reasons[0].to_string(),
        "no registry from any hub within 5 s"
    );
    assert_eq!(world.nodes[0].flow_count(), 0);
    assert!(world.net.apps[app].eof || world.net.apps[app].reset);
}

#[test]
fn the_registry_wait_is_configurable() {
    use core::time::Duration;
    use warren_proto::time::Instant;
    let wait = Duration::from_millis(1_500);
    let (mut world, _) = flow_waiting_for_a_silent_hub(Some(wait));
    world.advance_to(Instant::ZERO + Duration::from_millis(1_499));
    world.run();
    assert!(world.outbound_closes(0).is_empty());
    world.advance_to(Instant::ZERO + wait);
    world.run();
    let reasons = world.outbound_closes(0);
    assert_eq!(reasons, vec![CloseReason::NoRegistry { waited: wait }]);
    assert_eq!(
        reasons[0].to_string(),
        "no registry from any hub within 1500 ms"
    );
}
