//! Audit: what a hub can make an agent hold. An agent answers each
//! `Ping` on its control stream with a `Pong`, queued in the control
//! stream's outbox until HTTP/2 takes it; a hub that sends pings and never
//! reads the answers (never credits the stream) grew that outbox without
//! bound, 16 bytes per 16-byte ping. And every `RegistryDelta` the hub sent
//! grew the agent's copy of its registry without a cap. Both are bounded
//! now (`HubLinks::max_control_outbox`, `HubLinks::max_registry_entries`):
//! past either, the agent drops the control stream with an event that
//! says why, and the link reconnects as after any control failure.
//!
//! The hub here is hand-written: warren-proto's TLS and HTTP/2 driven by
//! the test, so it can do what a hub node never does.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::addr;
use node_harness::hubs::{echo_port, hub_links, HUB_ADDRS};
use node_harness::{Server, World};
use warren_proto::control::{
    encode, Endpoint, FrameDecoder, Message, RegistryDelta, RegistryEntry, RegistrySnapshot,
    DEFAULT_MAX_FRAME_LEN,
};
use warren_proto::h2::{Config, Connection, Event, Response, Role, StreamId};
use warren_proto::hub::{HubEvent, HubLinks, DEFAULT_CONTROL_OUTBOX};
use warren_proto::identity::SpiffeId;
use warren_proto::node::{MeshIdentity, NodeConfig, NodeEvent};
use warren_proto::tls::{PlaintextRead, TlsSession};

const AGENT: usize = 0;

/// One connection the agent dialled to the hand-written hub.
struct Session {
    app: usize,
    tls: TlsSession,
    h2: Connection,
    taken: usize,
    /// The agent's control stream, once it opened one.
    control: Option<StreamId>,
    /// Control messages the agent sent, decoded (only while `read`).
    decoder: FrameDecoder,
    received: Vec<Message>,
    /// TLS or HTTP/2 failed (the reverse link, whose ALPN we do not speak).
    dead: bool,
}

/// A hub at `HUB_ADDRS[0]` that answers the control stream 200, sends
/// what the test queues, and reads the agent's control bytes only when
/// told to.
struct FakeHub {
    identity: MeshIdentity,
    sessions: Vec<Session>,
    /// Control bytes to send on the next control stream that is up.
    queued: Vec<u8>,
    /// Read (and credit) what the agent sends on its control stream.
    read: bool,
    /// Control streams the agent reset.
    resets: usize,
}

impl FakeHub {
    fn new(ca: &Ca) -> FakeHub {
        FakeHub {
            identity: ca.identity(9, "mesh", "hub"),
            sessions: Vec::new(),
            queued: Vec::new(),
            read: true,
            resets: 0,
        }
    }

    /// Queues `message` for the agent.
    fn send(&mut self, message: &Message) {
        encode(message, DEFAULT_MAX_FRAME_LEN, &mut self.queued).unwrap();
    }

    /// Runs the world and the hub until nothing changes.
    fn pump(&mut self, world: &mut World) {
        for _ in 0..100_000 {
            world.run();
            for &app in &world.net.server_apps {
                if self.sessions.iter().all(|s| s.app != app) {
                    // A small stream window, so an agent whose answers are
                    // not read runs out of it soon.
                    let config = Config {
                        initial_stream_window: 65_535,
                        ..Config::default()
                    };
                    let server = self.identity.server_config().clone();
                    self.sessions.push(Session {
                        app,
                        tls: TlsSession::server(server, 1 << 20).unwrap(),
                        h2: Connection::new(Role::Server, config, world.now),
                        taken: 0,
                        control: None,
                        decoder: FrameDecoder::new(DEFAULT_MAX_FRAME_LEN),
                        received: Vec::new(),
                        dead: false,
                    });
                }
            }
            let mut progress = false;
            for i in 0..self.sessions.len() {
                progress |= self.step(world, i);
            }
            if !progress {
                return;
            }
        }
        panic!("the hub never went idle");
    }

    fn step(&mut self, world: &mut World, i: usize) -> bool {
        let now = world.now;
        let s = &mut self.sessions[i];
        if s.dead {
            return false;
        }
        let mut progress = false;
        let received = &world.net.apps[s.app].received;
        if received.len() > s.taken {
            let mut input = received[s.taken..].to_vec();
            s.taken = received.len();
            progress = true;
            while !input.is_empty() {
                let Ok(n) = s.tls.read_tls(&input) else {
                    s.dead = true;
                    return true;
                };
                input.drain(..n);
                let mut plain = vec![0; 64 << 10];
                while let PlaintextRead::Data(k) = s.tls.read_plaintext(&mut plain) {
                    s.h2.handle_input(now, &plain[..k]);
                }
                if n == 0 {
                    break;
                }
            }
        }
        while let Some(e) = s.h2.poll_event() {
            match e {
                Event::Request { stream, .. } => {
                    let ok = Response {
                        status: 200,
                        headers: Vec::new(),
                    };
                    s.h2.send_response(stream, &ok, false).unwrap();
                    s.control = Some(stream);
                }
                Event::Data { stream } if self.read && Some(stream) == s.control => {
                    let data: Vec<u8> = s.h2.recv_pieces(stream).flatten().copied().collect();
                    s.h2.release_capacity(stream, data.len()).unwrap();
                    let mut input = &data[..];
                    while let Ok(Some(m)) = s.decoder.decode(&mut input) {
                        s.received.push(m);
                    }
                }
                Event::Reset { stream, .. } if Some(stream) == s.control => {
                    s.control = None;
                    self.resets += 1;
                }
                _ => {}
            }
        }
        if let Some(stream) = s.control {
            if !self.queued.is_empty() {
                let n = s.h2.send_data(stream, &self.queued).unwrap_or(0);
                self.queued.drain(..n);
            }
        }
        let mut plain = Vec::new();
        s.h2.poll_transmit(now, &mut plain);
        if !plain.is_empty() {
            progress = true;
            let mut at = 0;
            while at < plain.len() {
                at += s.tls.write_plaintext(&plain[at..]).unwrap();
                let mut out = Vec::new();
                s.tls.write_tls(&mut out);
                world.app_write(s.app, &out);
            }
        }
        let mut out = Vec::new();
        if s.tls.write_tls(&mut out) > 0 {
            world.app_write(s.app, &out);
            progress = true;
        }
        progress
    }

    /// Whether a control stream is up on some session.
    fn control_up(&self) -> bool {
        self.sessions.iter().any(|s| s.control.is_some())
    }
}

/// The agent `shop/cart` with one hub link to the fake hub, configured by
/// `links`, in a world where the hub's control stream is up.
fn world(links: impl FnOnce(&mut HubLinks)) -> (World, FakeHub) {
    let ca = Ca::new(1);
    let mut world = World::new();
    let mut agent = NodeConfig::new(ca.identity(2, "shop", "cart"));
    agent.hub_links = hub_links(&[HUB_ADDRS[0]]);
    links(&mut agent.hub_links);
    world.add_node(agent);
    world.add_server(addr(HUB_ADDRS[0]), Server::Sink);
    let mut hub = FakeHub::new(&ca);
    hub.pump(&mut world);
    assert!(hub.control_up(), "the agent opened its control stream");
    hub.send(&Message::Registry(RegistrySnapshot::default()));
    hub.pump(&mut world);
    (world, hub)
}

/// The control errors the agent reported.
fn control_errors(world: &World) -> Vec<String> {
    world
        .events_of(AGENT)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Hub(HubEvent::ControlError { error, .. }) => Some(error.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn defaults() {
    let links = HubLinks::default();
    assert_eq!(links.max_control_outbox, DEFAULT_CONTROL_OUTBOX);
    assert_eq!(links.max_registry_entries, 65_536);
}

#[test]
fn pings_are_answered_while_the_hub_reads() {
    let (mut world, mut hub) = world(|_| {});
    for token in 0..1000 {
        hub.send(&Message::Ping(token));
    }
    hub.pump(&mut world);
    let pongs: Vec<u64> = hub
        .sessions
        .iter()
        .flat_map(|s| &s.received)
        .filter_map(|m| match m {
            Message::Pong(t) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!(pongs, (0..1000).collect::<Vec<u64>>());
    assert_eq!(control_errors(&world), Vec::<String>::new());
}

#[test]
fn a_hub_that_never_reads_the_pongs_loses_its_control_stream() {
    let max = 100_000;
    let (mut world, mut hub) = world(|l| l.max_control_outbox = max);
    hub.read = false;
    // 16 bytes a ping (and a pong): 64 KiB of window and `max` bytes of
    // outbox take about 10,000 of them.
    for round in 0..40u64 {
        for i in 0..1000u64 {
            hub.send(&Message::Ping(u64::MAX - round * 1000 - i));
        }
        hub.pump(&mut world);
        if hub.resets > 0 {
            break;
        }
    }
    let errors = control_errors(&world);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("hub reads control messages too slowly"),
        "{errors:?}"
    );
    assert_eq!(hub.resets, 1, "the agent reset the control stream");
}

/// A delta that adds one row for `agent` `n` at epoch `n`.
fn one_more_row(n: u64) -> Message {
    let identity = SpiffeId::parse(&format!("spiffe://mesh.test/ns/shop/sa/echo{n}")).unwrap();
    Message::RegistryDelta(RegistryDelta {
        base: n,
        epoch: n + 1,
        added: vec![RegistryEntry {
            service: echo_port(),
            endpoint: Endpoint {
                identity,
                instance: n,
                hbone: None,
            },
            end_to_end: true,
        }],
        removed: Vec::new(),
    })
}

#[test]
fn a_registry_past_its_cap_loses_the_control_stream() {
    let (mut world, mut hub) = world(|l| l.max_registry_entries = 20);
    for n in 0..20 {
        hub.send(&one_more_row(n));
    }
    hub.pump(&mut world);
    assert_eq!(control_errors(&world), Vec::<String>::new());
    hub.send(&one_more_row(20));
    hub.pump(&mut world);
    assert_eq!(
        control_errors(&world),
        ["hub registry would exceed 20 entries"]
    );
    assert_eq!(hub.resets, 1, "the agent reset the control stream");
}
