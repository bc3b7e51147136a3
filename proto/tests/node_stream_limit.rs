//! A peer's stream limit: a connection that cannot open a stream sends the
//! flow to another connection, a bounded number of times, and a flow that
//! finds none is refused with a reason that says so. No flow is lost
//! silently, none recurses without end.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{addr, echo_endpoint, endpoint_node, pattern, tunnel, TUNNEL};
use node_harness::World;
use warren_proto::node::{CloseReason, NodeConfig};
use warren_proto::policy::ServiceName;

const AGENT: usize = 0;

fn echo() -> ServiceName {
    ServiceName::parse("echo.shop").unwrap()
}

/// The agent (node 0, tunnel 127.0.0.1:9000 → echo.shop:80 over
/// endpoints 0 and 1), endpoint 0 exporting another service (it answers
/// each CONNECT 503 with END_STREAM) and allowing `stale_streams` streams,
/// endpoint 1 serving echo.shop.
fn stale_endpoint_world(stale_streams: u32) -> World {
    let ca = Ca::new(1);
    let mut world = World::new();
    let mut agent = NodeConfig::new(ca.identity(2, "shop", "cart"));
    agent.fronts = vec![tunnel(TUNNEL, "echo.shop:80")];
    agent
        .directory
        .insert(echo(), vec![echo_endpoint(0), echo_endpoint(1)]);
    world.add_node(agent);
    let mut stale = endpoint_node(&ca, 0, "other.shop", "127.0.1.0:8080");
    stale.h2.max_concurrent_streams = stale_streams;
    world.add_node(stale);
    world.add_node(endpoint_node(&ca, 1, "echo.shop", "127.0.1.1:8080"));
    world.add_echo_server(addr("127.0.1.1:8080"));
    world.run();
    world
}

#[test]
fn refused_streams_on_a_small_peer_never_recurse_and_lose_no_flow() {
    // Endpoint 0 allows 2 streams and answers every CONNECT 503. The
    // flows that try it go on to endpoint 1 before any byte; none may
    // leave a stream behind that makes the pool hand the full connection
    // back for ever.
    let mut world = stale_endpoint_world(2);
    for i in 0..12 {
        let data = pattern(5_000, i);
        let app = world.flow(TUNNEL, &data);
        assert!(
            world.net.apps[app].received == data,
            "flow {i}: echoed byte-exact"
        );
    }
    assert_eq!(world.outbound_closes(AGENT), vec![CloseReason::Done; 12]);
    // A 503 with END_STREAM ends our side too: the refused streams do
    // not pile up, so one connection to endpoint 0 serves every attempt.
    assert_eq!(world.dials(AGENT, echo_endpoint(0).hbone), 1);
}

/// A hand-written HBONE peer at endpoint 0's address: TLS and HTTP/2 from
/// warren-proto driven by the test, so it can send a SETTINGS that lowers
/// its stream limit whenever the test says. It answers every CONNECT 200
/// and echoes each stream; one session per connection the agent dials.
struct RawPeer {
    identity: warren_proto::node::MeshIdentity,
    sessions: Vec<Session>,
    /// Each new session's initial stream limit.
    initial_limit: u32,
}

struct Session {
    app: usize,
    tls: warren_proto::tls::TlsSession,
    h2: warren_proto::h2::Connection,
    taken: usize,
    /// Raw SETTINGS frames to send after the next HTTP/2 output.
    inject: Vec<u8>,
}

/// A SETTINGS frame carrying only MAX_CONCURRENT_STREAMS = `limit`.
fn settings_max_streams(limit: u32) -> Vec<u8> {
    let mut frame = vec![0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 0x3];
    frame.extend_from_slice(&limit.to_be_bytes());
    frame
}

impl RawPeer {
    fn new(identity: warren_proto::node::MeshIdentity, initial_limit: u32) -> RawPeer {
        RawPeer {
            identity,
            sessions: Vec::new(),
            initial_limit,
        }
    }

    /// Runs the world and the peer's sessions until nothing changes.
    fn pump(&mut self, world: &mut World) {
        loop {
            world.run();
            let mut progress = false;
            for &app in &world.net.server_apps {
                if self.sessions.iter().any(|s| s.app == app) {
                    continue;
                }
                let config = self.identity.server_config().clone();
                let h2_config = warren_proto::h2::Config {
                    max_concurrent_streams: self.initial_limit,
                    ..warren_proto::h2::Config::default()
                };
                self.sessions.push(Session {
                    app,
                    tls: warren_proto::tls::TlsSession::server(config, 1 << 20).unwrap(),
                    h2: warren_proto::h2::Connection::new(
                        warren_proto::h2::Role::Server,
                        h2_config,
                        world.now,
                    ),
                    taken: 0,
                    inject: Vec::new(),
                });
            }
            for s in &mut self.sessions {
                progress |= s.step(world);
            }
            if !progress {
                return;
            }
        }
    }

    /// Session `i` announces a stream limit of `limit` from now on.
    fn lower_limit(&mut self, world: &mut World, i: usize, limit: u32) {
        self.sessions[i].inject.extend(settings_max_streams(limit));
        self.pump(world);
    }
}

impl Session {
    fn step(&mut self, world: &mut World) -> bool {
        use warren_proto::h2::Event;
        let mut progress = false;
        let received = &world.net.apps[self.app].received;
        if received.len() > self.taken {
            let mut input = received[self.taken..].to_vec();
            self.taken = received.len();
            progress = true;
            while !input.is_empty() {
                let n = self.tls.read_tls(&input).unwrap();
                input.drain(..n);
                let mut plain = vec![0; 64 << 10];
                while let warren_proto::tls::PlaintextRead::Data(k) =
                    self.tls.read_plaintext(&mut plain)
                {
                    self.h2.handle_input(world.now, &plain[..k]);
                }
                if n == 0 {
                    break;
                }
            }
        }
        while let Some(e) = self.h2.poll_event() {
            match e {
                Event::Request { stream, .. } => {
                    let ok = warren_proto::hbone::ConnectStatus::Established.response();
                    self.h2.send_response(stream, &ok, false).unwrap();
                }
                Event::Data { stream } => {
                    // Flows here are small: the echo fits the windows.
                    let data = self.h2.recv_data(stream).to_vec();
                    self.h2.release_capacity(stream, data.len()).unwrap();
                    let sent = self.h2.send_data(stream, &data).unwrap();
                    assert_eq!(sent, data.len(), "echo fits the window");
                }
                Event::PeerFinished { stream } => {
                    let _ = self.h2.finish(stream);
                }
                _ => {}
            }
        }
        let mut plain = Vec::new();
        self.h2.poll_transmit(world.now, &mut plain);
        plain.append(&mut self.inject);
        if !plain.is_empty() {
            progress = true;
            let mut at = 0;
            while at < plain.len() {
                at += self.tls.write_plaintext(&plain[at..]).unwrap();
                let mut out = Vec::new();
                self.tls.write_tls(&mut out);
                world.app_write(self.app, &out);
            }
        }
        let mut out = Vec::new();
        if self.tls.write_tls(&mut out) > 0 {
            world.app_write(self.app, &out);
            progress = true;
        }
        progress
    }
}

/// The agent (node 0, tunnel 127.0.0.1:9000 → echo.shop:80) whose only
/// endpoint is the raw peer.
fn raw_peer_world(initial_limit: u32) -> (World, RawPeer) {
    let ca = Ca::new(1);
    let mut world = World::new();
    let mut agent = NodeConfig::new(ca.identity(2, "shop", "cart"));
    agent.fronts = vec![tunnel(TUNNEL, "echo.shop:80")];
    agent.directory.insert(echo(), vec![echo_endpoint(0)]);
    world.add_node(agent);
    world.add_server(echo_endpoint(0).hbone, node_harness::Server::Sink);
    let peer = RawPeer::new(ca.identity(10, "shop", "echo0"), initial_limit);
    (world, peer)
}

/// Opens `n` tunnel flows at once, each writing its pattern.
fn open_flows(world: &mut World, n: usize, salt: usize) -> Vec<(usize, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let app = world.connect_app(addr(TUNNEL));
            let data = pattern(3_000, salt + i);
            world.app_write(app, &data);
            (app, data)
        })
        .collect()
}

/// Half-closes each flow's client and checks the echo came back whole.
fn finish_flows(world: &mut World, peer: &mut RawPeer, flows: &[(usize, Vec<u8>)]) {
    for (app, _) in flows {
        world.app_shutdown(*app);
    }
    peer.pump(world);
    for (app, data) in flows {
        assert!(world.net.apps[*app].received == *data, "app {app}: echoed");
        assert!(world.net.apps[*app].eof, "app {app}: closed cleanly");
    }
}

fn dials(world: &World) -> usize {
    world.dials(AGENT, echo_endpoint(0).hbone)
}

#[test]
fn a_peer_lowering_its_stream_limit_mid_flight_loses_no_flow() {
    let (mut world, mut peer) = raw_peer_world(1000);
    // Three long flows open on the first connection...
    let first = open_flows(&mut world, 3, 0);
    peer.pump(&mut world);
    assert_eq!(dials(&world), 1);
    // ... whose peer then allows no stream at all.
    peer.lower_limit(&mut world, 0, 0);
    // Twenty flows at once while the three are still open go elsewhere.
    let second = open_flows(&mut world, 20, 100);
    peer.pump(&mut world);
    finish_flows(&mut world, &mut peer, &second);
    assert_eq!(dials(&world), 2, "one new connection for the twenty");
    // The first three end; their connection now has no stream open and
    // still allows none: new flows must not be refused there.
    finish_flows(&mut world, &mut peer, &first);
    let third = open_flows(&mut world, 10, 200);
    peer.pump(&mut world);
    finish_flows(&mut world, &mut peer, &third);
    assert_eq!(world.outbound_closes(AGENT), vec![CloseReason::Done; 33]);
    assert_eq!(dials(&world), 2, "the second connection carried the rest");
}

#[test]
fn a_peer_allowing_one_stream_per_connection_opens_or_refuses_every_flow_with_the_reason() {
    // Every connection of this peer allows a single stream: twenty flows
    // opened at once wait on one handshake, and all but one move on. Each
    // flow opens on a connection of its own or is refused saying why;
    // none is lost, and the agent dials at most one connection per
    // refusal a flow may take.
    let (mut world, mut peer) = raw_peer_world(1);
    let flows = open_flows(&mut world, 20, 0);
    peer.pump(&mut world);
    for (app, _) in &flows {
        world.app_shutdown(*app);
    }
    peer.pump(&mut world);
    let closes = world.outbound_closes(AGENT);
    assert_eq!(closes.len(), 20, "every flow accounted for: {closes:?}");
    for reason in &closes {
        assert!(
            matches!(
                reason,
                CloseReason::Done | CloseReason::StreamLimit { refusals: 8 }
            ),
            "{reason}"
        );
    }
    let done = closes.iter().filter(|r| **r == CloseReason::Done).count();
    let echoed = flows
        .iter()
        .filter(|(app, data)| world.net.apps[*app].received == *data)
        .count();
    let refused = flows
        .iter()
        .filter(|(app, _)| world.net.apps[*app].received.is_empty())
        .count();
    assert_eq!((echoed, refused), (done, 20 - done));
    assert!(done >= 8, "{done} flows opened");
    assert!(dials(&world) <= 20, "{} dials", dials(&world));
    println!("{done} of 20 opened, {} dials", dials(&world));
}
