//! SOCKS5 and HTTP CONNECT front ends: to a mesh service through HBONE, to
//! an outside host the egress policy allows (direct TCP), and refusals.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{
    addr, lab_rule, proxy_fronts, tunnel, DirectPair, HBONE_B, HTTP, SOCKS, TUNNEL,
};
use node_harness::{socks_flow, socks_request_domain, World, SOCKS_OK};
use warren_proto::node::{CloseReason, NodeEvent};
use warren_proto::policy::{Action, EgressPolicy, EgressRule, PortRange, Reason, RuleName};

const OUTSIDE: &str = "198.51.100.7:7";

/// A [`DirectPair`] whose A has a SOCKS5 and an HTTP CONNECT front
/// instead of the tunnel, and egress to the lab's outside echo server.
fn world() -> World {
    let mut pair = DirectPair::new(&Ca::new(1));
    pair.a.fronts = proxy_fronts();
    pair.a.egress = EgressPolicy::new(vec![lab_rule()]);
    let mut world = pair.world();
    world.add_echo_server(addr(OUTSIDE));
    world
}

fn socks_request_v4(ip: [u8; 4], port: u16) -> Vec<u8> {
    let mut r = vec![5, 1, 0, 5, 1, 0, 1];
    r.extend_from_slice(&ip);
    r.extend_from_slice(&port.to_be_bytes());
    r
}

#[test]
fn socks5_to_a_mesh_service_with_pipelined_data() {
    let mut world = world();
    let app = socks_flow(&mut world, SOCKS, "echo.shop", 80, b"early bytes");
    let mut want = SOCKS_OK.to_vec();
    want.extend_from_slice(b"early bytes");
    assert_eq!(world.net.apps[app].received, want);
    assert!(world.net.apps[app].eof);
    assert_eq!(world.close_reasons(0), vec![CloseReason::Done]);
    assert_eq!(world.close_reasons(1), vec![CloseReason::Done]);
}

#[test]
fn socks5_egress_allowed_connects_directly() {
    let mut world = world();
    let mut bytes = socks_request_v4([198, 51, 100, 7], 7);
    bytes.extend_from_slice(&[9u8; 100_000]);
    let app = world.flow(SOCKS, &bytes);
    let got = &world.net.apps[app].received;
    assert_eq!(got[..12], SOCKS_OK);
    assert!(got[12..] == [9u8; 100_000][..]);
    assert!(world.net.apps[app].eof);
    assert_eq!(world.close_reasons(0), vec![CloseReason::Done]);
    assert!(world.events_of(1).is_empty(), "no mesh traffic for egress");
}

#[test]
fn socks5_egress_denied_answers_not_allowed() {
    let mut world = world();
    let app = world.open_flow(SOCKS, &socks_request_v4([203, 0, 113, 5], 22));
    let got = &world.net.apps[app].received;
    assert_eq!(got[..4], [5, 0, 5, 2], "greeting ok, then 0x02 not allowed");
    assert!(world.net.apps[app].eof);
    let denied = world.events_of(0).into_iter().find_map(|e| match e {
        NodeEvent::PolicyDenied { decision, .. } => Some(decision.reason),
        _ => None,
    });
    assert_eq!(denied, Some(Reason::EgressNotAllowed));
}

#[test]
fn http_connect_to_a_mesh_service() {
    let mut world = world();
    let app = world.connect_app(addr(HTTP));
    world.app_write(
        app,
        b"CONNECT echo.shop:80 HTTP/1.1\r\nHost: echo.shop:80\r\n\r\nhi",
    );
    world.app_shutdown(app);
    world.run();
    let got = String::from_utf8(world.net.apps[app].received.clone()).unwrap();
    assert_eq!(got, "HTTP/1.1 200 Connection established\r\n\r\nhi");
    assert!(world.net.apps[app].eof);
}

#[test]
fn http_connect_egress_denied_is_403_with_the_rule() {
    let mut world = world();
    let mut deny = EgressRule::new(RuleName::new("no-ssh").unwrap(), Action::Deny);
    deny.ports = vec![PortRange::new(22, 22).unwrap()];
    let mut config = world.nodes[0].config().clone();
    config.egress = EgressPolicy::new(vec![deny, lab_rule()]);
    world.nodes[0] = warren_proto::node::Node::new(config, world.now);
    let app = world.open_flow(HTTP, b"CONNECT 198.51.100.7:22 HTTP/1.1\r\n\r\n");
    let got = String::from_utf8(world.net.apps[app].received.clone()).unwrap();
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    assert!(got.contains("no-ssh"), "{got}");
    assert!(world.net.apps[app].eof);
}

#[test]
fn http_connect_egress_target_refused_is_502() {
    let mut world = world();
    let app = world.open_flow(HTTP, b"CONNECT 198.51.100.8:7 HTTP/1.1\r\n\r\n");
    let got = String::from_utf8(world.net.apps[app].received.clone()).unwrap();
    assert!(got.starts_with("HTTP/1.1 502"), "{got}");
    assert_eq!(world.close_reasons(0), vec![CloseReason::ConnectFailed]);
}

#[test]
fn malformed_socks_is_rejected_and_logged() {
    let mut world = world();
    let app = world.open_flow(SOCKS, &[4, 1, 0, 80]);
    assert!(world.net.apps[app].eof);
    assert!(matches!(
        world.close_reasons(0)[..],
        [CloseReason::FrontEnd(_)]
    ));
    assert_eq!(world.nodes[0].sock_count(), 0);
}

#[test]
fn a_silent_proxy_client_is_closed_at_its_deadline() {
    let mut world = world();
    let app = world.open_flow(HTTP, b"CONNECT echo.shop:80 HTTP/1.1\r\n");
    assert!(!world.net.apps[app].eof, "still waiting for the head");
    let deadline = world.nodes[0].poll_timeout().expect("a request deadline");
    world.advance_to(deadline);
    world.run();
    assert!(world.net.apps[app].eof);
    assert!(matches!(
        world.close_reasons(0)[..],
        [CloseReason::FrontEnd(_)]
    ));
    assert_eq!(world.nodes[0].sock_count(), 0);
    assert_eq!(world.nodes[0].poll_timeout(), None, "no timer left behind");
}

/// Arbitrary bytes, in arbitrary pieces, at the HBONE port or a proxy
/// port: no panic, no host error, and after EOF every socket is gone.
#[test]
fn garbage_never_panics_and_leaves_nothing_behind() {
    fn prop(chunks: Vec<Vec<u8>>, port: u8) -> bool {
        let mut world = world();
        let target = match port % 3 {
            0 => HBONE_B,
            1 => SOCKS,
            _ => HTTP,
        };
        let app = world.connect_app(addr(target));
        for chunk in chunks.iter().take(20) {
            world.app_write(app, chunk);
            world.run();
        }
        world.app_shutdown(app);
        world.run();
        // The peer's handshake/request never completed: nothing may remain,
        // except a mesh connection the garbage could not have opened.
        world.net.apps[app].eof
            && world.nodes.iter().all(|n| n.flow_count() == 0)
            && world.nodes.iter().all(|n| n.sock_count() == 0)
    }
    quickcheck::QuickCheck::new()
        .tests(200)
        .quickcheck(prop as fn(Vec<Vec<u8>>, u8) -> bool);
}

#[test]
fn config_swap_adds_and_drops_front_ends() {
    let mut world = world();
    let mut config = world.nodes[0].config().clone();
    // Drop SOCKS, add a tunnel.
    config.fronts.remove(0);
    config.fronts.push(tunnel(TUNNEL, "echo.shop:80"));
    world.apply_config(0, config);
    world.run();
    let socks = world.connect_app(addr(SOCKS));
    world.run();
    assert!(world.net.apps[socks].reset, "dropped front end refuses");
    let app = world.flow(TUNNEL, b"new");
    assert_eq!(world.net.apps[app].received, b"new");
}

fn deny_cart(world: &mut World) {
    use warren_proto::policy::{AuthzPolicy, AuthzRule, Conditions, PrincipalPattern};
    let mut rule = AuthzRule::new(RuleName::new("no-cart").unwrap(), Action::Deny);
    rule.when = Conditions {
        principals: vec![PrincipalPattern::new("spiffe://mesh.test/ns/shop/sa/*").unwrap()],
        ..Conditions::default()
    };
    let mut b = world.nodes[1].config().clone();
    b.authz = AuthzPolicy::new(vec![rule]);
    world.apply_config(1, b);
}

/// A SOCKS5 client and an HTTP CONNECT client both ask for echo.shop at
/// `port`, and the world runs until quiet. Returns (socks app, http app).
fn ask_both_fronts(world: &mut World, port: u16) -> (usize, usize) {
    let socks = world.connect_app(addr(SOCKS));
    world.app_write(socks, &socks_request_domain("echo.shop", port));
    let http = world.connect_app(addr(HTTP));
    world.app_write(
        http,
        format!("CONNECT echo.shop:{port} HTTP/1.1\r\n\r\n").as_bytes(),
    );
    world.run();
    (socks, http)
}

#[test]
fn remote_401_is_socks_not_allowed_and_http_403() {
    let mut world = world();
    deny_cart(&mut world);
    let (socks, http) = ask_both_fronts(&mut world, 80);
    assert_eq!(world.net.apps[socks].received[..4], [5, 0, 5, 2]);
    let got = String::from_utf8(world.net.apps[http].received.clone()).unwrap();
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
    assert!(world.net.apps[socks].eof && world.net.apps[http].eof);
}

#[test]
fn remote_503_is_socks_host_unreachable_and_http_502() {
    let mut world = world();
    let (socks, http) = ask_both_fronts(&mut world, 81);
    assert_eq!(world.net.apps[socks].received[..4], [5, 0, 5, 4]);
    let got = String::from_utf8(world.net.apps[http].received.clone()).unwrap();
    assert!(got.starts_with("HTTP/1.1 502"), "{got}");
    assert_eq!(
        world.close_reasons(0),
        vec![CloseReason::Refused { status: 503 }; 2]
    );
}
