//! Two nodes with real mutual TLS and HTTP/2 in memory: a client agent's
//! plain tunnel to a mesh service exported by a second node.

mod node_harness;

use node_harness::certs::{spiffe, Ca};
use node_harness::config::{addr, pattern, DirectPair, ECHO, TUNNEL};
use node_harness::{Server, World};
use warren_proto::front::Target as FrontTarget;
use warren_proto::node::{CloseReason, FrontKind, NodeEvent};
use warren_proto::policy::{
    Action, AuthzPolicy, AuthzRule, Conditions, PrincipalPattern, RuleName,
};

/// Node 0: agent "shop/cart" with a tunnel to echo.shop:80. Node 1: agent
/// "shop/echo" exporting echo.shop:80 → the echo server.
fn two_nodes(authz: AuthzPolicy) -> World {
    let mut pair = DirectPair::new(&Ca::new(1));
    pair.b.authz = authz;
    pair.world()
}

fn echo(size: usize) {
    let mut world = two_nodes(AuthzPolicy::default());
    let data = pattern(size, 0);
    let app = world.flow(TUNNEL, &data);
    let got = &world.net.apps[app];
    assert!(
        got.received == data,
        "echo of {size} B: got {} B",
        got.received.len()
    );
    assert!(got.eof, "client saw the half-close come back");
    assert!(!got.reset);
    assert_eq!(world.close_reasons(0), vec![CloseReason::Done]);
    assert_eq!(world.close_reasons(1), vec![CloseReason::Done]);
    for n in 0..2 {
        assert_eq!(world.nodes[n].flow_count(), 0, "node {n} leaks flows");
    }
    let sent: Vec<(u64, u64)> = world
        .net
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            NodeEvent::FlowClosed {
                bytes_sent,
                bytes_received,
                ..
            } => Some((*bytes_sent, *bytes_received)),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![(size as u64, size as u64); 2]);
}

#[test]
fn echo_0_bytes() {
    echo(0);
}

#[test]
fn echo_1_byte() {
    echo(1);
}

#[test]
fn echo_16_kib() {
    echo(16 * 1024);
}

#[test]
fn echo_16_mib() {
    echo(16 * 1024 * 1024);
}

#[test]
fn denied_flow_gets_401_and_names_the_rule() {
    let mut rule = AuthzRule::new(RuleName::new("no-cart").unwrap(), Action::Deny);
    rule.when = Conditions {
        principals: vec![PrincipalPattern::new("spiffe://mesh.test/ns/shop/sa/cart").unwrap()],
        ..Conditions::default()
    };
    let mut world = two_nodes(AuthzPolicy::new(vec![rule]));
    let app = world.open_flow(TUNNEL, b"secret");
    let got = &world.net.apps[app];
    assert!(got.received.is_empty());
    assert!(got.eof, "the client's connection is closed");
    let denied = world.events_of(1).into_iter().find_map(|e| match e {
        NodeEvent::PolicyDenied {
            decision, source, ..
        } => Some((decision.clone(), source.clone())),
        _ => None,
    });
    let (decision, source) = denied.expect("a PolicyDenied event on the server");
    assert_eq!(decision.rule.as_ref().unwrap().as_str(), "no-cart");
    let line = world
        .events_of(1)
        .into_iter()
        .find(|e| matches!(e, NodeEvent::PolicyDenied { .. }))
        .unwrap()
        .to_string();
    assert_eq!(
        line,
        "policy denied reason=deny-rule rule=no-cart \
         src=spiffe://mesh.test/ns/shop/sa/cart dst=echo.shop"
    );
    let access = world.events_of(0).last().unwrap().to_string();
    assert!(
        access.starts_with("flow closed flow-")
            && access.contains("direction=outbound src=spiffe://mesh.test/ns/shop/sa/cart")
            && access.contains(
                "dst=spiffe://mesh.test/ns/shop/sa/echo service=echo.shop path=direct sent"
            )
            && access.ends_with("reason=\"refused status=401\""),
        "{access}"
    );
    assert_eq!(source, Some(spiffe("shop", "cart")));
    assert_eq!(
        world.close_reasons(0),
        vec![CloseReason::Refused { status: 401 }]
    );
    assert_eq!(
        world.nodes[1].sock_count(),
        1,
        "only the mesh connection remains"
    );
}

#[test]
fn half_close_from_the_server_side_first() {
    let mut world = two_nodes(AuthzPolicy::default());
    let greeting = pattern(100_000, 0);
    world.add_server(addr(ECHO), Server::SpeakFirst(greeting.clone()));
    let app = world.connect_app(addr(TUNNEL));
    world.run();
    // The server's half arrived and ended; the client's half is still open.
    assert!(world.net.apps[app].received == greeting);
    assert!(world.net.apps[app].eof);
    assert_eq!(world.nodes[0].flow_count(), 1, "flow still open one way");
    let request = pattern(70_000, 0);
    world.app_write(app, &request);
    world.app_shutdown(app);
    world.run();
    let server = world.net.server_apps[0];
    assert!(world.net.apps[server].received == request);
    assert!(world.net.apps[server].eof);
    assert_eq!(world.close_reasons(0), vec![CloseReason::Done]);
    assert_eq!(world.close_reasons(1), vec![CloseReason::Done]);
}

#[test]
fn half_close_from_the_client_side_first() {
    let mut world = two_nodes(AuthzPolicy::default());
    world.add_server(addr(ECHO), Server::Sink);
    let request = pattern(50_000, 0);
    let app = world.flow(TUNNEL, &request);
    let server = world.net.server_apps[0];
    assert!(world.net.apps[server].received == request);
    assert!(world.net.apps[server].eof);
    assert!(!world.net.apps[app].eof, "the server has not closed yet");
    // Now the server answers and closes.
    world.net.apps[server].outbox.extend(b"bye");
    world.net.apps[server].shutdown_after_outbox = true;
    world.run();
    assert_eq!(world.net.apps[app].received, b"bye");
    assert!(world.net.apps[app].eof);
    assert_eq!(world.nodes[0].flow_count() + world.nodes[1].flow_count(), 0);
}

#[test]
fn client_reset_reaches_the_server() {
    let mut world = two_nodes(AuthzPolicy::default());
    world.add_server(addr(ECHO), Server::Sink);
    let app = world.open_flow(TUNNEL, b"hello");
    let server = world.net.server_apps[0];
    assert_eq!(world.net.apps[server].received, b"hello");
    let live: Vec<_> = world.nodes[1].flows().collect();
    assert_eq!(live.len(), 1);
    assert!(live[0].established);
    assert_eq!(live[0].service, "echo.shop");
    assert_eq!(live[0].source, Some(spiffe("shop", "cart")));
    assert_eq!(live[0].bytes_received, 5, "written to the target");
    world.app_reset(app);
    world.run();
    assert!(
        world.net.apps[server].reset,
        "reset propagated to the target"
    );
    assert_eq!(world.close_reasons(0), vec![CloseReason::LocalReset]);
    assert!(matches!(
        world.close_reasons(1)[..],
        [CloseReason::StreamReset(_)]
    ));
    assert_eq!(world.nodes[0].flow_count() + world.nodes[1].flow_count(), 0);
}

#[test]
fn server_reset_reaches_the_client() {
    let mut world = two_nodes(AuthzPolicy::default());
    let app = world.open_flow(TUNNEL, b"ping");
    assert_eq!(world.net.apps[app].received, b"ping");
    let server = world.net.server_apps[0];
    world.app_reset(server);
    world.run();
    assert!(world.net.apps[app].reset, "reset propagated to the client");
    assert_eq!(world.close_reasons(1), vec![CloseReason::LocalReset]);
    assert!(matches!(
        world.close_reasons(0)[..],
        [CloseReason::StreamReset(_)]
    ));
}

#[test]
fn unknown_service_port_gets_503() {
    let mut world = two_nodes(AuthzPolicy::default());
    // Re-point the tunnel at a port the server does not export.
    let mut config = world.nodes[0].config().clone();
    config.fronts[0].kind = FrontKind::Tunnel {
        to: FrontTarget::parse("echo.shop:81").unwrap(),
    };
    world.nodes[0] = warren_proto::node::Node::new(config, world.now);
    let app = world.connect_app(addr(TUNNEL));
    world.run();
    assert!(world.net.apps[app].eof);
    assert_eq!(
        world.close_reasons(0),
        vec![CloseReason::Refused { status: 503 }]
    );
}

#[test]
fn target_down_gets_503() {
    let mut world = two_nodes(AuthzPolicy::default());
    world.net.servers.clear();
    let app = world.open_flow(TUNNEL, b"x");
    assert!(world.net.apps[app].eof);
    assert!(world.net.apps[app].received.is_empty());
    assert_eq!(
        world.close_reasons(0),
        vec![CloseReason::Refused { status: 503 }]
    );
    assert_eq!(world.close_reasons(1), vec![CloseReason::ConnectFailed]);
}

#[test]
fn host_misuse_is_an_error_not_a_panic() {
    use warren_proto::node::{HostError, Input, ListenerId, SockId};
    let mut world = two_nodes(AuthzPolicy::default());
    let node = &mut world.nodes[0];
    let ghost = SockId(999);
    let now = world.now;
    assert_eq!(
        node.handle_input(
            now,
            Input::Received {
                sock: ghost,
                data: b"x"
            }
        ),
        Err(HostError::UnknownSock(ghost))
    );
    assert_eq!(
        node.accept(now, ListenerId(77), addr("192.0.2.9:1")),
        Err(HostError::UnknownListener(ListenerId(77)))
    );
    // An accepted socket was never connecting.
    let sock = node
        .accept(now, ListenerId(1), addr("192.0.2.9:1"))
        .unwrap();
    assert_eq!(
        node.handle_input(
            now,
            Input::Connected {
                sock,
                result: Ok(())
            }
        ),
        Err(HostError::NotConnecting(sock))
    );
    assert_eq!(
        node.transmit_done(now, sock, 1),
        Err(HostError::TransmitOverrun(sock))
    );
}

/// Whatever the host's read sizes and socket buffers, the bytes arrive
/// exactly once and in order.
#[test]
fn echo_survives_any_read_size_and_buffer_size() {
    fn prop(size: u32, read: u16, cap: u32) -> bool {
        // Ranges keep the byte-at-a-time cases within the harness's round
        // budget; tiny buffers with tiny payloads are covered too.
        let size = (size % 60_000) as usize;
        let mut world = two_nodes(AuthzPolicy::default());
        world.read_size = 1 + usize::from(read % 20_000);
        world.net.cap = 1 + (cap % 200_000) as usize;
        if world.read_size < 64 || world.net.cap < 64 {
            return echo_exact(world, size % 2_000);
        }
        echo_exact(world, size)
    }
    fn echo_exact(mut world: World, size: usize) -> bool {
        let data = pattern(size, 0);
        let app = world.flow(TUNNEL, &data);
        let got = &world.net.apps[app];
        got.received == data && got.eof && world.nodes[0].flow_count() == 0
    }
    quickcheck::QuickCheck::new()
        .tests(25)
        .quickcheck(prop as fn(u32, u16, u32) -> bool);
}

#[test]
fn idle_pooled_connection_closes_gracefully_on_both_sides() {
    let mut world = two_nodes(AuthzPolicy::default());
    world.flow(TUNNEL, b"abc");
    assert_eq!(world.nodes[0].connection_count(), 1, "kept for reuse");
    // Reused by the next flow: still one connection.
    let again = world.connect_app(addr(TUNNEL));
    world.app_shutdown(again);
    world.run();
    assert_eq!(world.nodes[0].connection_count(), 1);
    let mut steps = 0;
    while let Some(deadline) = world.nodes[0].poll_timeout() {
        steps += 1;
        assert!(steps < 100, "timers never settle");
        world.advance_to(deadline);
        world.run();
    }
    for n in 0..2 {
        assert_eq!(world.nodes[n].connection_count(), 0, "node {n}");
        assert_eq!(world.nodes[n].sock_count(), 0, "node {n}");
    }
    assert!(world.net.events.iter().all(|(_, e)| !matches!(
        e,
        NodeEvent::H2Error { .. } | NodeEvent::HandshakeFailed { .. }
    )));
}

#[test]
fn a_mesh_connection_ending_without_goaway_resets_the_local_socket_mid_flow() {
    let mut world = two_nodes(AuthzPolicy::default());
    let app = world.open_flow(TUNNEL, b"before");
    assert_eq!(
        world.net.apps[app].received, b"before",
        "the flow is relaying"
    );
    // Node B dies: its connection to A ends with a bare FIN, no GOAWAY and
    // no END_STREAM for the stream, so the flow broke and the client must
    // hear a reset, not a clean close.
    world.kill_links(1, 0);
    world.run();
    let got = &world.net.apps[app];
    assert!(got.reset, "the client's socket was reset");
    assert!(!got.eof, "no FIN reached the client before the reset");
    assert!(
        !world
            .net
            .transcript
            .iter()
            .any(|l| l.starts_with("0 shutdown ")),
        "node A shut a socket's write side: {:#?}",
        world.net.transcript
    );
    let reasons = world.close_reasons(0);
    assert_eq!(reasons.len(), 1);
    assert_ne!(reasons[0], CloseReason::Done, "{reasons:?}");
}

#[test]
fn losing_the_mesh_connection_resets_its_flows_and_the_next_flow_redials() {
    let mut world = two_nodes(AuthzPolicy::default());
    let first = world.open_flow(TUNNEL, b"before");
    world.reset_links(0, 1);
    world.run();
    assert!(world.net.apps[first].reset);
    assert_eq!(world.close_reasons(0), vec![CloseReason::ConnectionLost]);
    assert_eq!(world.close_reasons(1), vec![CloseReason::ConnectionLost]);
    for n in 0..2 {
        assert_eq!(world.nodes[n].connection_count(), 0, "node {n}");
    }
    let second = world.flow(TUNNEL, b"after");
    assert_eq!(world.net.apps[second].received, b"after");
}
