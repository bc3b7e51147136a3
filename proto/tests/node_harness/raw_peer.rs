//! A hand-written HBONE peer: warren-proto's TLS and HTTP/2 driven by the
//! test instead of a node, so a test controls what a node never does on
//! its own (lower its stream limit mid-flight) and sees what it is sent
//! (how many streams each connection had open at once).

use warren_proto::h2::{Config, Connection, Event, Role};
use warren_proto::hbone::ConnectStatus;
use warren_proto::node::MeshIdentity;
use warren_proto::tls::TlsSession;

use super::certs::Ca;
use super::config::{addr, cart_over, echo_endpoint, pattern, TUNNEL};
use super::tls_pipe::TlsPipe;
use super::{Server, World};

/// The peer at endpoint 0's address. It answers every CONNECT 200 and
/// echoes each stream; one session per connection the agent dials.
pub struct RawPeer {
    identity: MeshIdentity,
    /// Each new session's initial stream limit.
    initial_limit: u32,
    /// One per connection, in the order they were accepted.
    pub sessions: Vec<Session>,
}

/// One connection to the [`RawPeer`].
pub struct Session {
    pipe: TlsPipe,
    h2: Connection,
    /// Raw SETTINGS frames to send after the next HTTP/2 output.
    inject: Vec<u8>,
    open: usize,
    /// The most streams this connection had open at once.
    pub most_open: usize,
}

/// A SETTINGS frame carrying only MAX_CONCURRENT_STREAMS = `limit`.
fn settings_max_streams(limit: u32) -> Vec<u8> {
    let mut frame = vec![0, 0, 6, 0x4, 0, 0, 0, 0, 0, 0, 0x3];
    frame.extend_from_slice(&limit.to_be_bytes());
    frame
}

impl RawPeer {
    /// Agent A (node 0, `shop/cart`, tunnel [`TUNNEL`] → echo.shop:80)
    /// whose only echo.shop endpoint is a raw peer (`shop/echo0`) at
    /// [`echo_endpoint`]`(0)`, allowing `initial_limit` streams per
    /// connection. Nothing has run yet.
    pub fn world(initial_limit: u32) -> (World, RawPeer) {
        let ca = Ca::new(1);
        let mut world = World::new();
        world.add_node(cart_over(&ca, vec![echo_endpoint(0)]));
        world.add_server(echo_endpoint(0).hbone, Server::Sink);
        let peer = RawPeer {
            identity: ca.identity(10, "shop", "echo0"),
            initial_limit,
            sessions: Vec::new(),
        };
        (world, peer)
    }

    /// Runs the world and the peer's sessions until nothing changes.
    pub fn pump(&mut self, world: &mut World) {
        loop {
            world.run();
            for &app in &world.net.server_apps {
                if self.sessions.iter().all(|s| s.pipe.app != app) {
                    let config = Config {
                        max_concurrent_streams: self.initial_limit,
                        ..Config::default()
                    };
                    let tls =
                        TlsSession::server(self.identity.server_config().clone(), 1 << 20).unwrap();
                    self.sessions.push(Session {
                        pipe: TlsPipe::new(app, tls),
                        h2: Connection::new(Role::Server, config, world.now),
                        inject: Vec::new(),
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

    /// Session `i` announces a stream limit of `limit` from now on.
    pub fn lower_limit(&mut self, world: &mut World, i: usize, limit: u32) {
        self.sessions[i].inject.extend(settings_max_streams(limit));
        self.pump(world);
    }

    /// Half-closes each flow's client, runs, and checks each echo came
    /// back whole and the client saw a clean close.
    pub fn finish(&mut self, world: &mut World, flows: &[(usize, Vec<u8>)]) {
        for (app, _) in flows {
            world.app_shutdown(*app);
        }
        self.pump(world);
        for (app, data) in flows {
            assert!(world.net.apps[*app].received == *data, "app {app}: echoed");
            assert!(world.net.apps[*app].eof, "app {app}: closed cleanly");
        }
    }
}

impl Session {
    fn step(&mut self, world: &mut World) -> bool {
        let now = world.now;
        let mut progress = self
            .pipe
            .receive(world, |plain| self.h2.handle_input(now, plain));
        while let Some(e) = self.h2.poll_event() {
            match e {
                Event::Request { stream, .. } => {
                    self.open += 1;
                    self.most_open = self.most_open.max(self.open);
                    let ok = ConnectStatus::Established.response();
                    self.h2.send_response(stream, &ok, false).unwrap();
                }
                Event::Data { stream } => {
                    // Flows here are small: the echo fits the windows.
                    let data: Vec<u8> = self.h2.recv_pieces(stream).flatten().copied().collect();
                    self.h2.release_capacity(stream, data.len()).unwrap();
                    let sent = self.h2.send_data(stream, &data).unwrap();
                    assert_eq!(sent, data.len(), "echo fits the window");
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
        plain.append(&mut self.inject);
        progress |= self.pipe.send(world, &plain);
        progress
    }
}

/// Opens `n` tunnel flows at once, flow `i` writing `pattern(3_000, salt + i)`.
pub fn open_flows(world: &mut World, n: usize, salt: usize) -> Vec<(usize, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let app = world.connect_app(addr(TUNNEL));
            let data = pattern(3_000, salt + i);
            world.app_write(app, &data);
            (app, data)
        })
        .collect()
}
