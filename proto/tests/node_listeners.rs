//! Listener lifecycle: a configuration swap stops the listeners it drops
//! or moves and asks for the new ones; a listener the host cannot bind is
//! reported with its address and the error, and asked for again by a
//! later configuration.

mod node_harness;

use std::net::SocketAddr;

use node_harness::certs::Ca;
use node_harness::World;
use warren_proto::node::{FrontConfig, FrontKind, ListenError, NodeConfig, NodeEvent};

const SOCKS: &str = "127.0.0.1:1080";
const HTTP: &str = "127.0.0.1:3128";
const HBONE: &str = "10.0.0.1:15008";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn front(listen: &str, kind: FrontKind) -> FrontConfig {
    FrontConfig {
        listen: addr(listen),
        kind,
    }
}

fn config() -> NodeConfig {
    let mut c = NodeConfig::new(Ca::new(1).identity(2, "shop", "cart"));
    c.hbone_listen = Some(addr(HBONE));
    c.fronts = vec![
        front(SOCKS, FrontKind::Socks5),
        front(HTTP, FrontKind::HttpConnect(Default::default())),
    ];
    c
}

fn lines(world: &World, word: &str) -> Vec<String> {
    let prefix = format!("0 {word} ");
    let all = world.net.transcript.iter();
    all.filter(|l| l.starts_with(&prefix)).cloned().collect()
}

fn listen_failures(world: &World) -> Vec<(SocketAddr, ListenError)> {
    let events = world.events_of(0).into_iter();
    events
        .filter_map(|e| match e {
            NodeEvent::ListenFailed { addr, error } => Some((*addr, *error)),
            _ => None,
        })
        .collect()
}

#[test]
fn dropping_a_front_end_stops_its_listener_and_only_it() {
    let mut world = World::new();
    world.add_node(config());
    assert_eq!(lines(&world, "listen").len(), 3);
    let mut c = config();
    c.fronts.remove(0);
    world.apply_config(0, c);
    world.run();
    assert_eq!(lines(&world, "unlisten").len(), 1);
    assert_eq!(lines(&world, "listen").len(), 3, "nothing new to bind");
    let socks = world.connect_app(addr(SOCKS));
    assert!(world.net.apps[socks].reset, "nobody listens there any more");
    let http = world.connect_app(addr(HTTP));
    assert_eq!(world.net.apps[http].connected, Some(true));
}

#[test]
fn moving_the_hbone_port_rebinds_it() {
    let mut world = World::new();
    world.add_node(config());
    let mut c = config();
    c.hbone_listen = Some(addr("10.0.0.1:15009"));
    world.apply_config(0, c);
    world.run();
    assert_eq!(lines(&world, "unlisten").len(), 1);
    let listens = lines(&world, "listen");
    assert_eq!(listens.len(), 4);
    assert!(listens[3].ends_with("10.0.0.1:15009"), "{listens:?}");
}

#[test]
fn changing_what_a_front_end_speaks_keeps_its_listener() {
    let mut world = World::new();
    world.add_node(config());
    let mut c = config();
    c.fronts[0].kind = FrontKind::HttpConnect(Default::default());
    world.apply_config(0, c);
    world.run();
    assert!(lines(&world, "unlisten").is_empty());
    assert_eq!(lines(&world, "listen").len(), 3);
    // The next client on the old SOCKS port now speaks HTTP CONNECT.
    let app = world.open_flow(SOCKS, b"CONNECT 192.0.2.9:1 HTTP/1.1\r\n\r\n");
    let got = String::from_utf8(world.net.apps[app].received.clone()).unwrap();
    assert!(got.starts_with("HTTP/1.1 403"), "{got}");
}

#[test]
fn a_bind_failure_is_an_event_and_a_later_config_asks_again() {
    let mut world = World::new();
    world.net.busy.insert(addr(HTTP));
    world.add_node(config());
    world.run();
    assert_eq!(
        listen_failures(&world),
        vec![(addr(HTTP), ListenError::AddrInUse)]
    );
    let event = world.events_of(0).into_iter().find_map(|e| match e {
        NodeEvent::ListenFailed { .. } => Some(e.to_string()),
        _ => None,
    });
    let text = event.unwrap();
    assert!(
        text.contains("127.0.0.1:3128") && text.contains("address in use"),
        "{text}"
    );
    // The other listeners work.
    let socks = world.connect_app(addr(SOCKS));
    assert_eq!(world.net.apps[socks].connected, Some(true));
    // The port is free now; the same configuration again binds it (the
    // failed listener was forgotten, not kept as if it were open).
    world.net.busy.clear();
    world.apply_config(0, config());
    world.run();
    assert!(lines(&world, "unlisten").is_empty());
    let http = world.connect_app(addr(HTTP));
    assert_eq!(world.net.apps[http].connected, Some(true));
}

#[test]
fn an_unknown_listener_failing_is_a_host_error() {
    use warren_proto::node::{HostError, Input, ListenerId, Node};
    use warren_proto::time::Instant;
    let mut node = Node::new(config(), Instant::ZERO);
    let input = Input::ListenFailed {
        listener: ListenerId(999),
        error: ListenError::Other,
    };
    assert_eq!(
        node.handle_input(Instant::ZERO, input),
        Err(HostError::UnknownListener(ListenerId(999)))
    );
}
