//! The pool remembers the stream limit a peer announced
//! (SETTINGS_MAX_CONCURRENT_STREAMS) and uses it for the next connections
//! to that peer: flows opened at once go to as many new connections as
//! the limit needs, instead of piling onto one handshake that will refuse
//! all but two of them.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{addr, echo_endpoint, pattern, DirectPair, TUNNEL};
use node_harness::World;
use warren_proto::h2::{Config, Connection, Event, Role};
use warren_proto::node::{CloseReason, MeshIdentity};
use warren_proto::policy::ServiceName;
use warren_proto::time::Instant;
use warren_proto::tls::{PlaintextRead, TlsSession};

const AGENT: usize = 0;

/// A hand-driven HBONE peer (warren-proto's TLS and HTTP/2, no node)
/// allowing `limit` streams per connection: answers every CONNECT 200 and
/// echoes; counts the streams each connection had open at once.
struct RawPeer {
    identity: MeshIdentity,
    limit: u32,
    sessions: Vec<Session>,
}

struct Session {
    app: usize,
    tls: TlsSession,
    h2: Connection,
    taken: usize,
    open: usize,
    most_open: usize,
}

impl RawPeer {
    /// Runs the world and the peer until nothing changes.
    fn pump(&mut self, world: &mut World) {
        loop {
            world.run();
            for &app in &world.net.server_apps {
                if self.sessions.iter().all(|s| s.app != app) {
                    let config = Config {
                        max_concurrent_streams: self.limit,
                        ..Config::default()
                    };
                    self.sessions.push(Session {
                        app,
                        tls: TlsSession::server(self.identity.server_config().clone(), 1 << 20)
                            .unwrap(),
                        h2: Connection::new(Role::Server, config, world.now),
                        taken: 0,
                        open: 0,
                        most_open: 0,
                    });
                }
            }
            let mut progress = false;
            for s in &mut self.sessions {
                progress |= s.step(world);
            }
            if !progress {
                return;
            }
        }
    }
}

impl Session {
    fn step(&mut self, world: &mut World) -> bool {
        let now = world.now;
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
                while let PlaintextRead::Data(k) = self.tls.read_plaintext(&mut plain) {
                    self.h2.handle_input(now, &plain[..k]);
                }
                if n == 0 {
                    break;
                }
            }
        }
        while let Some(e) = self.h2.poll_event() {
            match e {
                Event::Request { stream, .. } => {
                    self.open += 1;
                    self.most_open = self.most_open.max(self.open);
                    let ok = warren_proto::hbone::ConnectStatus::Established.response();
                    self.h2.send_response(stream, &ok, false).unwrap();
                }
                Event::Data { stream } => {
                    let data = self.h2.recv_data(stream).to_vec();
                    self.h2.release_capacity(stream, data.len()).unwrap();
                    assert_eq!(self.h2.send_data(stream, &data).unwrap(), data.len());
                }
                Event::PeerFinished { stream } => {
                    let _ = self.h2.finish(stream);
                }
                Event::StreamClosed { .. } | Event::Reset { .. } => {
                    self.open = self.open.saturating_sub(1);
                }
                _ => {}
            }
        }
        let mut plain = Vec::new();
        self.h2.poll_transmit(now, &mut plain);
        let mut at = 0;
        while at < plain.len() {
            at += self.tls.write_plaintext(&plain[at..]).unwrap();
            let mut out = Vec::new();
            self.tls.write_tls(&mut out);
            world.app_write(self.app, &out);
            progress = true;
        }
        let mut out = Vec::new();
        if self.tls.write_tls(&mut out) > 0 {
            world.app_write(self.app, &out);
            progress = true;
        }
        progress
    }
}

/// The [`DirectPair`]'s agent A whose one echo.shop endpoint is the raw
/// peer (`echo_endpoint(0)`, allowing 2 streams).
fn setup() -> (World, RawPeer) {
    let ca = Ca::new(1);
    let mut agent = DirectPair::new(&ca).a;
    agent.directory.insert(
        ServiceName::parse("echo.shop").unwrap(),
        vec![echo_endpoint(0)],
    );
    let mut world = World::new();
    world.add_node(agent);
    world.add_server(echo_endpoint(0).hbone, node_harness::Server::Sink);
    let peer = RawPeer {
        identity: ca.identity(10, "shop", "echo0"),
        limit: 2,
        sessions: Vec::new(),
    };
    (world, peer)
}

fn dials(world: &World) -> usize {
    world.dials(AGENT, echo_endpoint(0).hbone)
}

/// Opens `n` flows at once, each writing its pattern.
fn open(world: &mut World, n: usize, salt: usize) -> Vec<(usize, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let app = world.connect_app(addr(TUNNEL));
            let data = pattern(3_000, salt + i);
            world.app_write(app, &data);
            (app, data)
        })
        .collect()
}

fn finish(world: &mut World, peer: &mut RawPeer, flows: &[(usize, Vec<u8>)]) {
    for (app, _) in flows {
        world.app_shutdown(*app);
    }
    peer.pump(world);
    for (app, data) in flows {
        assert!(world.net.apps[*app].received == *data, "app {app}: echoed");
        assert!(world.net.apps[*app].eof, "app {app}: closed");
    }
}

#[test]
fn ten_flows_at_once_open_no_more_than_the_peers_two_streams_per_connection() {
    let (mut world, mut peer) = setup();
    // A first flow: the agent learns the peer allows 2 streams.
    let first = open(&mut world, 1, 0);
    peer.pump(&mut world);
    finish(&mut world, &mut peer, &first);
    assert_eq!(dials(&world), 1);
    // Ten at once, before the peer says anything: the idle connection
    // takes 2, and the other 8 go to 4 new connections dialled at once
    // (without the remembered limit all ten wait on the first one).
    let ten = open(&mut world, 10, 100);
    world.run();
    assert_eq!(dials(&world), 5, "four more dialled at once");
    peer.pump(&mut world);
    assert_eq!(peer.sessions.len(), 5);
    for (i, s) in peer.sessions.iter().enumerate() {
        assert!(s.most_open <= 2, "connection {i}: {} streams", s.most_open);
    }
    finish(&mut world, &mut peer, &ten);
    assert_eq!(world.close_reasons(AGENT), vec![CloseReason::Done; 11]);
}

#[test]
fn the_remembered_limit_outlives_the_peers_last_connection() {
    let (mut world, mut peer) = setup();
    let first = open(&mut world, 1, 0);
    peer.pump(&mut world);
    finish(&mut world, &mut peer, &first);
    // The pool's idle timeout (60 s) closes the connection.
    world.advance_to(Instant::from_nanos(61_000_000_000));
    peer.pump(&mut world);
    assert_eq!(
        world.nodes[AGENT]
            .connections()
            .filter(|c| c.pooled)
            .count(),
        0
    );
    // A fresh pool for the key, but the key remembers 2: ten flows dial
    // five connections at once, each carrying two.
    let ten = open(&mut world, 10, 100);
    world.run();
    assert_eq!(dials(&world), 6, "five more dialled at once");
    peer.pump(&mut world);
    for s in &peer.sessions {
        assert!(s.most_open <= 2, "{} streams", s.most_open);
    }
    finish(&mut world, &mut peer, &ten);
    assert_eq!(world.close_reasons(AGENT), vec![CloseReason::Done; 11]);
}
