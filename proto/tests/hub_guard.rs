//! Bad input at the hub: garbage and oversized control frames, too many
//! or forbidden announcements, and a flood of CONNECTs from one agent are
//! refused with the protocol's answer and an event, the offender is
//! suspended with GOAWAY ENHANCE_YOUR_CALM, and other agents' flows go on.
//!
//! The misbehaving agent is a raw client written here (TLS and HTTP/2 from
//! warren-proto, driven by hand over an application pipe to the hub's
//! port), so the test chooses every byte it sends.

mod node_harness;

use std::collections::BTreeSet;
use std::net::SocketAddr;

use bytes::Bytes;
use node_harness::certs::{spiffe, Ca};
use node_harness::config::{addr, pattern, tunnel, TUNNEL};
use node_harness::hubs::{self, hub_links, hub_node, HubMesh, HUB_ADDRS};
use node_harness::tls_pipe::TlsPipe;
use node_harness::World;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use warren_proto::control::{
    encode, Announce, AnnouncePolicy, FrameDecoder, Message, Rejection, ServicePort,
    DEFAULT_MAX_FRAME_LEN, PROTOCOL_VERSION,
};
use warren_proto::h2::{self, ErrorCode, Event, Header, Request, StreamId};
use warren_proto::hub::{
    AgentLimits, HubEvent, HubRole, Offence, Rate, CONTROL_CONTENT_TYPE, CONTROL_PATH,
};
use warren_proto::identity::SpiffeId;
use warren_proto::node::{MeshIdentity, NodeConfig, NodeEvent};
use warren_proto::policy::{PrincipalPattern, ServiceName};
use warren_proto::tls::TlsSession;

const HUB: usize = 0;

fn hub_addr() -> SocketAddr {
    addr(HUB_ADDRS[0])
}

/// [`hubs::hub_role`] with these agent limits and at most `max_services`
/// announced per agent.
fn hub_role(limits: AgentLimits, max_services: u32) -> HubRole {
    let role = hubs::hub_role();
    HubRole {
        announce: role.announce.with_max_services(max_services),
        limits,
        ..role
    }
}

/// Node 0 the hub in `role`, node 1 agent A (`cart`, tunnel 9000 →
/// echo.shop:80), node 2 agent B (`echo`, serves echo.shop:80 from an echo
/// server).
fn setup(ca: &Ca, role: HubRole) -> World {
    // Plaintext relays: these tests send plain CONNECTs (a raw agent's
    // flood among them) to count the hub's per-CONNECT budget; an
    // end-to-end export would refuse each one at B with 401.
    let mut mesh = HubMesh::new(ca).plaintext();
    mesh.hubs[0].hub = Some(role);
    let mut world = mesh.world();
    world.run();
    world
}

/// A hand-driven agent: TLS client and HTTP/2 client over an app pipe.
struct RawAgent {
    pipe: TlsPipe,
    h2: h2::Connection,
    events: Vec<Event>,
    control: Option<StreamId>,
    /// Bytes the hub sent on the control stream (taken as they arrive: a
    /// reset stream's buffer goes with it).
    control_in: Vec<u8>,
}

impl RawAgent {
    fn connect(world: &mut World, identity: &MeshIdentity) -> RawAgent {
        let config = identity
            .params()
            .clone()
            .with_alpn(vec![b"h2".to_vec()])
            .unwrap()
            .client_config_matching(vec![PrincipalPattern::new(
                "spiffe://mesh.test/ns/mesh/sa/hub*",
            )
            .unwrap()])
            .unwrap();
        let app = world.connect_app(hub_addr());
        let mut agent = RawAgent {
            pipe: TlsPipe::new(app, TlsSession::client(config, 1 << 20).unwrap()),
            h2: h2::Connection::new(h2::Role::Client, h2::Config::default(), world.now),
            events: Vec::new(),
            control: None,
            control_in: Vec::new(),
        };
        agent.pump(world);
        assert!(agent.events.contains(&Event::Ready), "raw agent is up");
        agent
    }

    /// Moves bytes both ways until nothing changes.
    fn pump(&mut self, world: &mut World) {
        loop {
            world.run();
            let mut input = Vec::new();
            let mut progress = self
                .pipe
                .receive(world, |plain| input.extend_from_slice(plain));
            if !input.is_empty() {
                self.feed(world, &input);
            }
            while let Some(e) = self.h2.poll_event() {
                // A refused CONNECT: end our side too, as an agent does,
                // so the stream stops counting against the limits.
                if let Event::Response {
                    stream,
                    response,
                    end_stream: true,
                } = &e
                {
                    if response.status != 200 {
                        let _ = self.h2.finish(*stream);
                    }
                }
                self.events.push(e);
            }
            let mut plain = Vec::new();
            self.h2.poll_transmit(world.now, &mut plain);
            progress |= self.pipe.send(world, &plain);
            if !progress {
                break;
            }
        }
    }

    /// Hands plaintext to HTTP/2. With a control stream open it goes a
    /// byte at a time, taking the stream's data after each: a RST_STREAM
    /// right behind the data would otherwise drop it with the stream.
    fn feed(&mut self, world: &World, plain: &[u8]) {
        let Some(control) = self.control else {
            self.h2.handle_input(world.now, plain);
            return;
        };
        for byte in plain.chunks(1) {
            self.h2.handle_input(world.now, byte);
            let data = self.h2.recv_data(control).to_vec();
            if !data.is_empty() {
                let _ = self.h2.release_capacity(control, data.len());
                self.control_in.extend(data);
            }
        }
    }

    /// Opens the control stream (the hub answers with its registry).
    fn open_control(&mut self, world: &mut World) {
        let request = Request {
            method: Bytes::from_static(b"POST"),
            scheme: Some(Bytes::from_static(b"https")),
            authority: Some(Bytes::from_static(b"hub")),
            path: Some(Bytes::from_static(CONTROL_PATH.as_bytes())),
            headers: vec![Header::new(
                Bytes::from_static(b"content-type"),
                Bytes::from_static(CONTROL_CONTENT_TYPE.as_bytes()),
            )],
        };
        self.control = Some(self.h2.send_request(&request, false).unwrap());
        self.pump(world);
    }

    /// Sends raw bytes on the control stream.
    fn send_control(&mut self, world: &mut World, bytes: &[u8]) {
        let stream = self.control.unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let n = self.h2.send_data(stream, &bytes[at..]).unwrap_or(0);
            at += n;
            self.pump(world);
            if n == 0 {
                // The hub stopped taking bytes (stream reset): done.
                break;
            }
        }
        self.pump(world);
    }

    /// Control messages the hub sent, decoded.
    fn control_messages(&self) -> Vec<Message> {
        let mut input = &self.control_in[..];
        let mut decoder = FrameDecoder::new(16 << 20);
        let mut out = Vec::new();
        while let Ok(Some(m)) = decoder.decode(&mut input) {
            out.push(m);
        }
        out
    }

    fn control_reset(&self) -> bool {
        let stream = self.control.unwrap();
        self.events
            .iter()
            .any(|e| matches!(e, Event::Reset { stream: s, .. } if *s == stream))
    }

    fn goaway(&self) -> Option<ErrorCode> {
        self.events.iter().find_map(|e| match e {
            Event::GoAway { code, .. } => Some(*code),
            _ => None,
        })
    }

    /// Statuses of the answers to CONNECTs, in arrival order.
    fn statuses(&self) -> Vec<u16> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Response { response, .. } => Some(response.status),
                _ => None,
            })
            .collect()
    }
}

fn framed(message: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode(message, 16 << 20, &mut out).unwrap();
    out
}

fn sp(name: &str, port: u16) -> ServicePort {
    ServicePort {
        service: ServiceName::parse(name).unwrap(),
        port,
    }
}

fn announce(services: Vec<ServicePort>) -> Message {
    Message::Announce(Announce {
        services,
        reachable_hbone: None,
        relay_plaintext: Vec::new(),
    })
}

fn offences(world: &World, n: usize) -> Vec<(SpiffeId, Offence)> {
    world
        .events_of(n)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Hub(HubEvent::Offence { agent, offence, .. }) => {
                Some((agent.clone(), *offence))
            }
            _ => None,
        })
        .collect()
}

fn control_errors(world: &World, n: usize) -> Vec<String> {
    world
        .events_of(n)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Hub(HubEvent::ControlError { error, .. }) => Some(error.clone()),
            _ => None,
        })
        .collect()
}

/// Rows of the hub's registry served by `who`.
fn served_by(world: &World, who: &SpiffeId) -> BTreeSet<ServicePort> {
    world.nodes[HUB]
        .hub_registry()
        .snapshot()
        .entries
        .into_iter()
        .filter(|e| &e.endpoint.identity == who)
        .map(|e| e.service)
        .collect()
}

/// A's flow through the hub to B still carries bytes exactly.
fn a_flow_works(world: &mut World, size: usize, salt: usize) {
    let data = pattern(size, salt);
    let app = world.flow("127.0.0.1:9000", &data);
    assert!(world.net.apps[app].received == data, "A's bytes differ");
    assert!(world.net.apps[app].eof);
}

#[test]
fn garbage_on_the_control_stream_is_answered_and_dropped() {
    let ca = Ca::new(1);
    let mut world = setup(&ca, hub_role(AgentLimits::default(), 8));
    let mut raw = RawAgent::connect(&mut world, &ca.identity(5, "shop", "raw"));
    raw.open_control(&mut world);
    assert!(matches!(
        raw.control_messages().first(),
        Some(Message::Registry(_))
    ));
    let before = world.nodes[HUB].hub_registry().snapshot();
    raw.send_control(&mut world, b"GET / HTTP/1.1\r\nHost: hub\r\n\r\n");
    // The hub says why (wrong version byte), then resets the stream.
    let error = raw.control_messages().into_iter().find_map(|m| match m {
        Message::Error(e) => Some(e),
        _ => None,
    });
    let error = error.expect("an Error message before the reset");
    assert_eq!(
        error.code,
        warren_proto::control::ErrorCode::UnsupportedVersion
    );
    assert_eq!(error.version, PROTOCOL_VERSION);
    assert!(raw.control_reset());
    assert_eq!(
        offences(&world, HUB),
        vec![(spiffe("shop", "raw"), Offence::BadControl)]
    );
    assert!(control_errors(&world, HUB)
        .iter()
        .any(|e| e.contains("version 71")));
    assert_eq!(world.nodes[HUB].hub_registry().snapshot(), before);
    assert_eq!(
        world.nodes[HUB]
            .hub_refusals()
            .get(&(Some(spiffe("shop", "raw")), Offence::BadControl)),
        Some(&1)
    );
    // The connection itself stays (one offence is no suspension), and
    // other agents are untouched.
    assert_eq!(raw.goaway(), None);
    a_flow_works(&mut world, 50_000, 1);
}

#[test]
fn a_frame_over_the_length_limit_is_refused_before_it_is_buffered() {
    let ca = Ca::new(1);
    let mut world = setup(&ca, hub_role(AgentLimits::default(), 8));
    let mut raw = RawAgent::connect(&mut world, &ca.identity(5, "shop", "raw"));
    raw.open_control(&mut world);
    // A header announcing 64 KiB + 1, followed by part of the body.
    let mut bytes = vec![PROTOCOL_VERSION];
    bytes.extend_from_slice(&(DEFAULT_MAX_FRAME_LEN as u32 + 1).to_be_bytes());
    bytes.extend(std::iter::repeat_n(0u8, 30_000));
    raw.send_control(&mut world, &bytes);
    let codes: Vec<_> = raw
        .control_messages()
        .into_iter()
        .filter_map(|m| match m {
            Message::Error(e) => Some(e.code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![warren_proto::control::ErrorCode::FrameTooLong]);
    assert!(raw.control_reset());
    assert!(control_errors(&world, HUB)
        .iter()
        .any(|e| e.contains("65537 bytes exceeds the 65536-byte limit")));
    assert_eq!(
        offences(&world, HUB),
        vec![(spiffe("shop", "raw"), Offence::BadControl)]
    );
    // Nothing of the oversized frame is held at the hub.
    assert!(world.nodes[HUB].connection_buffered() < 64 << 10);
    a_flow_works(&mut world, 10_000, 2);
}

#[test]
fn too_many_services_and_foreign_names_are_rejected_registry_unchanged() {
    let ca = Ca::new(1);
    let mut world = setup(&ca, hub_role(AgentLimits::default(), 3));
    let mut raw = RawAgent::connect(&mut world, &ca.identity(5, "shop", "raw"));
    raw.open_control(&mut world);
    let me = spiffe("shop", "raw");
    // A permitted announcement first.
    raw.send_control(&mut world, &framed(&announce(vec![sp("web.shop", 80)])));
    assert_eq!(served_by(&world, &me), BTreeSet::from([sp("web.shop", 80)]));
    let registry = world.nodes[HUB].hub_registry().snapshot();
    // Four services with a limit of three.
    let four = (0..4).map(|i| sp("web.shop", 80 + i)).collect();
    raw.send_control(&mut world, &framed(&announce(four)));
    // A name of another namespace: the identity may not export it.
    let foreign = vec![sp("web.shop", 80), sp("payments.bank", 443)];
    raw.send_control(&mut world, &framed(&announce(foreign)));
    let rejections: Vec<Rejection> = raw
        .control_messages()
        .into_iter()
        .filter_map(|m| match m {
            Message::Rejected(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(
        rejections,
        vec![
            Rejection::TooManyServices {
                announced: 4,
                limit: 3
            },
            Rejection::NotAllowed(sp("payments.bank", 443)),
        ]
    );
    // Both refused whole: the registry is exactly what it was.
    assert_eq!(world.nodes[HUB].hub_registry().snapshot(), registry);
    let hub_rejections: Vec<String> = world
        .events_of(HUB)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Hub(HubEvent::AnnounceRejected { agent, rejection }) => {
                Some(format!("{agent}: {rejection}"))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        hub_rejections,
        vec![
            "spiffe://mesh.test/ns/shop/sa/raw: 4 service ports announced, limit 3".to_string(),
            "spiffe://mesh.test/ns/shop/sa/raw: identity may not export payments.bank:443"
                .to_string(),
        ]
    );
    assert_eq!(
        offences(&world, HUB),
        vec![(me.clone(), Offence::RejectedAnnouncement); 2]
    );
    // The control stream stays for a corrected announcement.
    assert!(!raw.control_reset());
    raw.send_control(&mut world, &framed(&announce(vec![sp("api.shop", 8080)])));
    assert_eq!(
        served_by(&world, &me),
        BTreeSet::from([sp("api.shop", 8080)])
    );
    a_flow_works(&mut world, 10_000, 3);
}

#[test]
fn a_control_message_flood_ends_the_control_stream() {
    let ca = Ca::new(1);
    let limits = AgentLimits {
        control_messages: Rate {
            per_second: 1,
            burst: 5,
        },
        ..AgentLimits::default()
    };
    let mut world = setup(&ca, hub_role(limits, 8));
    let mut raw = RawAgent::connect(&mut world, &ca.identity(5, "shop", "raw"));
    raw.open_control(&mut world);
    let pings: Vec<u8> = (0..20).flat_map(|i| framed(&Message::Ping(i))).collect();
    raw.send_control(&mut world, &pings);
    let pongs = raw
        .control_messages()
        .into_iter()
        .filter(|m| matches!(m, Message::Pong(_)))
        .count();
    assert_eq!(pongs, 5, "the burst is answered, the rest is not");
    assert!(raw.control_reset());
    assert_eq!(
        offences(&world, HUB),
        vec![(spiffe("shop", "raw"), Offence::ControlFlood)]
    );
    // B's control stream kept working: its registry rows are still there.
    assert_eq!(world.nodes[HUB].hub_registry().len(), 1);
}

/// Sends `n` CONNECTs to echo.shop:80 from `raw` at once; returns how
/// many its HTTP/2 took.
fn flood(world: &mut World, raw: &mut RawAgent, n: usize) -> usize {
    let sent = (0..n)
        .filter(|_| {
            raw.h2
                .send_request(&Request::connect("echo.shop:80"), false)
                .is_ok()
        })
        .count();
    raw.pump(world);
    world.run();
    sent
}

fn count(statuses: &[u16], code: u16) -> usize {
    statuses.iter().filter(|s| **s == code).count()
}

/// 1000 CONNECTs from one agent: the burst is relayed, the rest answered
/// 429 at once, while A's flow, sent during the flood, arrives byte-exact
/// and the hub holds at most the burst's relays. More of it passes the
/// offence limit: every connection of the agent is closed with GOAWAY
/// ENHANCE_YOUR_CALM and its reconnects are refused for the back-off.
#[test]
fn a_connect_flood_is_refused_suspended_and_others_flow() {
    let ca = Ca::new(1);
    let limits = AgentLimits {
        connects: Rate {
            per_second: 100,
            burst: 100,
        },
        max_offences: 1000,
        ..AgentLimits::default()
    };
    let mut world = setup(&ca, hub_role(limits, 8));
    let flooder = ca.identity(5, "shop", "flood");
    let mut raw = RawAgent::connect(&mut world, &flooder);
    // A's flow starts first and runs through the flood.
    let a_data = pattern(300_000, 4);
    let a_app = world.start_flow("127.0.0.1:9000", &a_data);
    let peak = std::rc::Rc::new(std::cell::Cell::new((0usize, 0usize)));
    let seen = peak.clone();
    world.check = Some(Box::new(move |w: &World| {
        let (relays, bytes) = seen.get();
        let hub = &w.nodes[HUB];
        seen.set((
            relays.max(hub.relay_count()),
            bytes.max(hub.connection_buffered()),
        ));
    }));
    // Virtual time stands still: the bucket never refills.
    assert_eq!(flood(&mut world, &mut raw, 1000), 1000);
    let statuses = raw.statuses();
    assert_eq!(count(&statuses, 200), 100, "the burst is relayed");
    assert_eq!(count(&statuses, 429), 900, "the rest is refused at once");
    assert_eq!(raw.goaway(), None, "900 offences are under the limit");
    // Memory: the burst's relays (A's own included) and their windows,
    // not a thousand streams' worth.
    let (relays, bytes) = peak.get();
    assert!(relays <= 101, "{relays} relays at once");
    assert!(bytes < 4 << 20, "hub held {bytes} bytes");
    assert_eq!(world.nodes[HUB].relay_count(), 100);
    // A's bytes crossed during the flood, exactly.
    assert!(world.net.apps[a_app].received == a_data, "A's bytes differ");
    assert!(world.net.apps[a_app].eof);
    // Every offence was the flooder's.
    assert!(offences(&world, HUB)
        .iter()
        .all(|(who, o)| *who == spiffe("shop", "flood") && *o == Offence::ConnectFlood));

    // More of the same: offence 1001 suspends the identity.
    flood(&mut world, &mut raw, 200);
    assert_eq!(count(&raw.statuses(), 429), 1001);
    assert_eq!(raw.goaway(), Some(ErrorCode::ENHANCE_YOUR_CALM));
    let suspended: Vec<(SpiffeId, u32, usize)> = world
        .events_of(HUB)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Hub(HubEvent::Suspended {
                agent,
                offences,
                closed,
                ..
            }) => Some((agent.clone(), *offences, *closed)),
            _ => None,
        })
        .collect();
    assert_eq!(suspended, vec![(spiffe("shop", "flood"), 1001, 1)]);
    let status = world.nodes[HUB].hub_status().unwrap();
    assert_eq!(
        (status.suspended, status.agents, status.connections),
        (1, 2, 4)
    );
    assert_eq!(
        status.refusals,
        [((Some(spiffe("shop", "flood")), Offence::ConnectFlood), 1001)].into()
    );
    // The flooder's relays went with its connection.
    assert_eq!(world.nodes[HUB].relay_count(), 0);
    // A reconnect during the back-off is refused at once.
    let mut again = RawAgent::connect(&mut world, &flooder);
    again.pump(&mut world);
    assert_eq!(again.goaway(), Some(ErrorCode::ENHANCE_YOUR_CALM));
    assert!(world.events_of(HUB).into_iter().any(|e| matches!(
        e,
        NodeEvent::Hub(HubEvent::StillSuspended { agent, .. }) if *agent == spiffe("shop", "flood")
    )));
    // Other agents keep flowing.
    a_flow_works(&mut world, 20_000, 5);
}

/// The CONNECT budget belongs to the identity: a second connection of
/// the same identity draws from the same bucket, another identity has its
/// own.
#[test]
fn the_connect_budget_is_per_identity_across_connections() {
    let ca = Ca::new(1);
    let limits = AgentLimits {
        connects: Rate {
            per_second: 1,
            burst: 10,
        },
        ..AgentLimits::default()
    };
    let mut world = setup(&ca, hub_role(limits, 8));
    let same = ca.identity(5, "shop", "twin");
    let mut first = RawAgent::connect(&mut world, &same);
    let mut second = RawAgent::connect(&mut world, &same);
    let mut other = RawAgent::connect(&mut world, &ca.identity(6, "shop", "other"));
    for raw in [&mut first, &mut second, &mut other] {
        assert_eq!(flood(&mut world, raw, 8), 8);
    }
    let answered = |raw: &RawAgent| (count(&raw.statuses(), 200), count(&raw.statuses(), 429));
    assert_eq!(answered(&first), (8, 0));
    assert_eq!(answered(&second), (2, 6), "the twin's bucket was shared");
    assert_eq!(answered(&other), (8, 0), "another identity is unaffected");
    // One second refills one token.
    world.advance_to(world.now + core::time::Duration::from_secs(1));
    flood(&mut world, &mut second, 2);
    assert_eq!(answered(&second), (3, 7));
}

/// One piece of what a fuzzing agent writes on its control stream.
#[derive(Clone, Debug)]
enum Piece {
    /// Any bytes.
    Bytes(Vec<u8>),
    /// A well-formed announcement, permitted or not.
    Announce(Vec<(u8, u16)>),
    /// A well-formed withdrawal.
    Withdraw,
    /// A header with this length, then nothing.
    Header(u32),
    /// A message only a hub may send.
    HubOnly,
}

/// A short script of pieces: long ones almost always hold a garbage
/// piece, which ends the stream, so short ones reach the registry.
#[derive(Clone, Debug)]
struct Script(Vec<Piece>);

impl Arbitrary for Script {
    fn arbitrary(g: &mut Gen) -> Script {
        let n = usize::from(u8::arbitrary(g) % 8);
        Script((0..n).map(|_| Piece::arbitrary(g)).collect())
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Script>> {
        Box::new(self.0.shrink().map(Script))
    }
}

/// One name in six is outside the agent's namespace (not allowed).
const NAMES: [&str; 6] = [
    "web.shop", "api.shop", "pay.bank", "x.shop", "db.shop", "y.shop",
];

impl Piece {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Piece::Bytes(b) => b.clone(),
            Piece::Announce(services) => framed(&announce(
                services
                    .iter()
                    .map(|(n, p)| sp(NAMES[usize::from(*n) % NAMES.len()], *p))
                    .collect(),
            )),
            Piece::Withdraw => framed(&Message::Withdraw),
            Piece::Header(len) => {
                let mut out = vec![PROTOCOL_VERSION];
                out.extend_from_slice(&len.to_be_bytes());
                out
            }
            Piece::HubOnly => framed(&Message::Rejected(Rejection::RegistryFull)),
        }
    }
}

impl Arbitrary for Piece {
    fn arbitrary(g: &mut Gen) -> Piece {
        // Mostly well-formed pieces, so that runs get far enough to file
        // something; any garbage piece ends the stream where it stands.
        match u8::arbitrary(g) % 64 {
            0 | 1 => Piece::Bytes(Vec::arbitrary(g)),
            2 => Piece::Header(u32::arbitrary(g)),
            3 => Piece::HubOnly,
            4..=9 => Piece::Withdraw,
            _ => {
                // 1 to 4 services, one more than the hub's limit of 3
                // (an empty announcement is a withdrawal by another name).
                let n = 1 + usize::from(u8::arbitrary(g) % 4);
                let ports = [80u16, 443, 8080, 80, 443, 8080, 80, 0];
                Piece::Announce(
                    (0..n)
                        .map(|_| {
                            let port = ports[usize::from(u8::arbitrary(g)) % ports.len()];
                            (u8::arbitrary(g), port)
                        })
                        .collect(),
                )
            }
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Piece>> {
        match self {
            Piece::Bytes(b) => Box::new(b.shrink().map(Piece::Bytes)),
            Piece::Announce(s) => Box::new(s.shrink().map(Piece::Announce)),
            _ => Box::new(std::iter::empty()),
        }
    }
}

/// What the hub must have filed for the fuzzing agent after `bytes`: the
/// last permitted announcement before the stream broke (nothing once it
/// broke, since a broken control stream withdraws its rows).
fn expected_rows(bytes: &[u8], policy: &AnnouncePolicy, me: &SpiffeId) -> BTreeSet<ServicePort> {
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut input = bytes;
    let mut rows = BTreeSet::new();
    loop {
        match decoder.decode(&mut input) {
            Ok(Some(Message::Announce(a))) => {
                if policy.check(me, &a).is_ok() {
                    rows = a.services.into_iter().collect();
                }
            }
            Ok(Some(Message::Withdraw)) => rows.clear(),
            Ok(Some(m)) if !m.may_be_sent_by(warren_proto::control::Sender::Agent) => {
                return BTreeSet::new();
            }
            Ok(Some(_)) => {}
            Ok(None) => return rows,
            Err(_) => return BTreeSet::new(),
        }
    }
}

/// Arbitrary bytes on the control stream never panic the hub and change
/// the registry only as far as they decode to permitted announcements.
#[test]
fn arbitrary_control_bytes_change_only_what_policy_permits() {
    fn prop(script: Script) -> TestResult {
        let pieces = script.0;
        let ca = Ca::new(1);
        let limits = AgentLimits {
            control_messages: Rate {
                per_second: 1000,
                burst: 1000,
            },
            ..AgentLimits::default()
        };
        let role = hub_role(limits, 3);
        let me = spiffe("shop", "raw");
        let mut world = World::new();
        let mut hub = hub_node(&ca, 9, "hub", HUB_ADDRS[0]);
        hub.hub = Some(role.clone());
        world.add_node(hub);
        let mut raw = RawAgent::connect(&mut world, &ca.identity(5, "shop", "raw"));
        raw.open_control(&mut world);
        let bytes: Vec<u8> = pieces.iter().flat_map(Piece::bytes).collect();
        raw.send_control(&mut world, &bytes);
        let want = expected_rows(&bytes, &role.announce, &me);
        TestResult::from_bool(served_by(&world, &me) == want)
    }
    QuickCheck::new()
        .tests(150)
        .quickcheck(prop as fn(Script) -> TestResult);
}

/// A registry past the frame limit reaches agents as several frames, each
/// within the limit, that rebuild it exactly: on a raw control stream and
/// in a real agent connecting afterwards.
#[test]
fn a_registry_larger_than_a_frame_is_sent_in_parts() {
    let ca = Ca::new(1);
    let mut world = setup(&ca, hub_role(AgentLimits::default(), 1000));
    for (seed, name) in [(5, "raw-one"), (6, "raw-two"), (7, "raw-three")] {
        let mut raw = RawAgent::connect(&mut world, &ca.identity(seed, "shop", name));
        raw.open_control(&mut world);
        let services = (0..400)
            .map(|i| sp(&format!("a-rather-long-service-name-{name}-{i}.shop"), 80))
            .collect();
        raw.send_control(&mut world, &framed(&announce(services)));
        assert!(!raw.control_reset());
    }
    let snapshot = world.nodes[HUB].hub_registry().snapshot();
    assert_eq!(snapshot.entries.len(), 1201);
    let whole = framed(&Message::Registry(snapshot.clone())).len();
    assert!(whole > DEFAULT_MAX_FRAME_LEN, "{whole} bytes fit one frame");
    // A new control stream gets the snapshot in parts.
    let mut late = RawAgent::connect(&mut world, &ca.identity(8, "shop", "late"));
    late.open_control(&mut world);
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut input = &late.control_in[..];
    let mut held = warren_proto::control::RegistrySnapshot::default();
    let mut parts = 0;
    while let Some(m) = decoder
        .decode(&mut input)
        .expect("every part within the limit")
    {
        parts += 1;
        match m {
            Message::Registry(s) => held = s,
            Message::RegistryDelta(d) => held.apply(&d).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(parts >= 2, "{parts} parts");
    assert_eq!(held, snapshot);
    // A real agent joining now holds the same registry, and still flows.
    let mut c = NodeConfig::new(ca.identity(4, "shop", "late-agent"));
    c.hub_links = hub_links(&HUB_ADDRS[..1]);
    let n = world.add_node(c);
    world.run();
    assert_eq!(
        world.nodes[n].hub_links()[0].registry,
        (snapshot.epoch, 1201)
    );
    a_flow_works(&mut world, 10_000, 6);
}

fn revoked_events(world: &World, n: usize) -> Vec<(SpiffeId, String)> {
    world
        .events_of(n)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::Hub(HubEvent::Revoked { peer, reason, .. }) => {
                Some((peer.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Revoking one certificate by serial at the hub closes that agent's
/// connections at once, with the serial in the logged reason; agents with
/// other certificates are unaffected.
#[test]
fn a_revoked_serial_is_closed_at_the_hub_at_once() {
    let ca = Ca::new(1);
    let mut world = setup(&ca, hub_role(AgentLimits::default(), 8));
    let open = world.open_flow("127.0.0.1:9000", b"before");
    assert_eq!(world.net.apps[open].received, b"before");
    // B's certificate has serial 3 (the harness uses the key seed).
    let mut hub = hub_node(&ca, 9, "hub", HUB_ADDRS[0]);
    hub.hub = Some(hub_role(AgentLimits::default(), 8));
    hub.revocation =
        warren_proto::revocation::RevocationList::parse("serial 00:03 key leaked\n").unwrap();
    world.apply_config(HUB, hub);
    world.run();
    let expected = (
        spiffe("shop", "echo"),
        "certificate serial 03 revoked: key leaked".to_string(),
    );
    assert_eq!(
        revoked_events(&world, HUB),
        vec![expected.clone(), expected],
        "forward and reverse"
    );
    assert!(world.net.apps[open].reset || world.net.apps[open].eof);
    assert!(world.nodes[HUB].hub_registry().is_empty());
    // A (serial 2) keeps both links; its new flow finds nobody: 503.
    let a = &world.nodes[1].hub_links()[0];
    assert!(a.forward_up && a.reverse_up && a.control);
    let app = world.open_flow("127.0.0.1:9000", b"hello");
    assert!(world.net.apps[app].received.is_empty());
    assert!(world.net.apps[app].eof || world.net.apps[app].reset);
}

/// An agent that revokes its hub's certificate serial drops its links to
/// it at once and refuses it again on every redial.
#[test]
fn an_agent_closes_links_to_a_hub_whose_serial_is_revoked() {
    let ca = Ca::new(1);
    let mut world = setup(&ca, hub_role(AgentLimits::default(), 8));
    let mut a = NodeConfig::new(ca.identity(2, "shop", "cart"));
    a.fronts = vec![tunnel(TUNNEL, "echo.shop:80")];
    a.hub_links = hub_links(&HUB_ADDRS[..1]);
    a.revocation =
        warren_proto::revocation::RevocationList::parse("serial 9 stolen hub key\n").unwrap();
    world.apply_config(1, a);
    world.run();
    let hub_id = SpiffeId::parse("spiffe://mesh.test/ns/mesh/sa/hub").unwrap();
    let expected = (
        hub_id,
        "certificate serial 09 revoked: stolen hub key".to_string(),
    );
    assert_eq!(revoked_events(&world, 1), vec![expected.clone(); 2]);
    let status = &world.nodes[1].hub_links()[0];
    assert!(!status.forward_up && !status.reverse_up);
    assert!(
        status.retry_at.is_some_and(|at| at > world.now),
        "a redial is due"
    );
    assert!(world.nodes[1].hub_status().is_none(), "an agent is no hub");
    // Redials meet the same certificate and are refused again.
    let mut now = world.now;
    for _ in 0..20 {
        now = now + core::time::Duration::from_millis(500);
        world.advance_to(now);
        world.run();
    }
    assert!(revoked_events(&world, 1).len() > 2);
    assert!(revoked_events(&world, 1).iter().all(|e| *e == expected));
    // B (not revoking) stays linked.
    assert!(world.nodes[2].hub_links()[0].forward_up);
}
