//! Cold flow setup (a flow that opens a new mesh connection), counted in
//! writes, i.e. in wake-ups of the peer:
//! - a target whose connect completes at once (loopback) is connected in
//!   the drain that asked for it, so agent B's session tickets, SETTINGS
//!   and 200 leave in one write and agent A wakes once for them;
//! - closing an idle pooled connection sends GOAWAY and close_notify in
//!   one write;
//! - a resumed handshake gets one new ticket, not two, so the server's
//!   store does not grow by a spare ticket per cold flow.

mod node_harness;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use node_harness::certs::{spiffe, Ca};
use node_harness::config::{addr, cold_pair, DirectPair, ECHO, TUNNEL};
use node_harness::World;
use warren_proto::drive::{self, Host};
use warren_proto::identity::Resumption;
use warren_proto::node::{ConnectError, Input, ListenerId, Node, NodeConfig, NodeEvent, SockId};
use warren_proto::time::Instant;

/// Node 0 ("cart") tunnels 9000 → echo.shop:80 on node 1 ("echo"), which
/// exports it to an echo server (the [`DirectPair`]). A's pool closes a
/// connection 1 s after its last stream, so a flow after a pause is a cold
/// one.
fn configs(resumption: Resumption) -> (NodeConfig, NodeConfig) {
    let DirectPair { a, b } = cold_pair(resumption);
    (a, b)
}

/// One end of a connection in [`Loopback`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Node(usize, SockId),
    /// The test's client (0) or the echo server (1).
    App(usize),
}

/// Bytes written at one end, not yet read at the other.
#[derive(Debug)]
struct Pipe {
    to: End,
    buf: Vec<u8>,
    /// The writer half-closed (or closed).
    fin: bool,
    /// The reader heard of it.
    fin_told: bool,
}

/// The network of [`Loopback`]: unbounded pipes (a cold flow moves a few
/// hundred bytes), an echo server, and a connect to a server that completes
/// inside connect(2), as on loopback: a host that knows it says so through
/// `Host::connect_result_now`, and otherwise reports it a turn later.
#[derive(Debug, Default)]
struct Net {
    listeners: BTreeMap<SocketAddr, (usize, ListenerId)>,
    pipes: BTreeMap<End, Pipe>,
    /// Connects to another node's listener: accepted a turn later.
    dials: VecDeque<(usize, SockId, SocketAddr)>,
    /// Connects to the echo server, done; `Connected` not told yet.
    done: VecDeque<(usize, SockId)>,
    /// Every write: node, socket, bytes.
    writes: Vec<(usize, SockId, usize)>,
    /// Sockets of mesh connections (either end).
    mesh: BTreeSet<(usize, SockId)>,
    /// What the client received.
    client_received: Vec<u8>,
}

struct LoopHost<'a> {
    n: usize,
    net: &'a mut Net,
}

impl Net {
    fn link(&mut self, a: End, b: End) {
        for (from, to) in [(a, b), (b, a)] {
            let pipe = Pipe {
                to,
                buf: Vec::new(),
                fin: false,
                fin_told: false,
            };
            self.pipes.insert(from, pipe);
        }
    }

    fn fin(&mut self, from: End) {
        if let Some(p) = self.pipes.get_mut(&from) {
            p.fin = true;
        }
    }
}

impl Host for LoopHost<'_> {
    fn listen(&mut self, listener: ListenerId, addr: SocketAddr) {
        self.net.listeners.insert(addr, (self.n, listener));
    }
    fn stop_listening(&mut self, listener: ListenerId) {
        let me = (self.n, listener);
        self.net.listeners.retain(|_, l| *l != me);
    }
    fn connect(&mut self, sock: SockId, to: SocketAddr) {
        if to == addr(ECHO) {
            self.net.link(End::Node(self.n, sock), End::App(1));
            self.net.done.push_back((self.n, sock));
        } else {
            self.net.dials.push_back((self.n, sock, to));
        }
    }
    fn connect_result_now(&mut self, sock: SockId) -> Option<Result<(), ConnectError>> {
        let me = (self.n, sock);
        let at = self.net.done.iter().position(|d| *d == me)?;
        self.net.done.remove(at);
        Some(Ok(()))
    }
    fn resolve(&mut self, _: SockId, host: &str) {
        panic!("no names here: {host}");
    }
    fn write(&mut self, sock: SockId, data: &[u8]) -> usize {
        self.net.writes.push((self.n, sock, data.len()));
        if let Some(p) = self.net.pipes.get_mut(&End::Node(self.n, sock)) {
            p.buf.extend_from_slice(data);
        }
        data.len()
    }
    fn pause_read(&mut self, _: SockId) {}
    fn resume_read(&mut self, _: SockId) {}
    fn shutdown_write(&mut self, sock: SockId) {
        self.net.fin(End::Node(self.n, sock));
    }
    fn close(&mut self, sock: SockId, _: bool) {
        // Bytes written before the close still arrive, then EOF; what the
        // other end writes afterwards is dropped.
        let me = End::Node(self.n, sock);
        self.net.fin(me);
        if let Some(to) = self.net.pipes.get(&me).map(|p| p.to) {
            self.net.pipes.remove(&to);
        }
    }
    fn event(&mut self, _: NodeEvent) {}
}

/// Two nodes and the echo server on [`Net`], driven through `drive`.
struct Loopback {
    nodes: Vec<Node>,
    net: Net,
    now: Instant,
}

impl Loopback {
    fn new(a: NodeConfig, b: NodeConfig) -> Loopback {
        let mut world = Loopback {
            nodes: Vec::new(),
            net: Net::default(),
            now: Instant::ZERO,
        };
        for config in [a, b] {
            world.nodes.push(Node::new(config, world.now));
            let n = world.nodes.len() - 1;
            let mut host = LoopHost {
                n,
                net: &mut world.net,
            };
            drive::drain(&mut world.nodes[n], &mut host, world.now).unwrap();
        }
        world
    }

    fn step(&mut self, n: usize, input: Input<'_>) {
        let mut host = LoopHost {
            n,
            net: &mut self.net,
        };
        drive::step(&mut self.nodes[n], &mut host, self.now, input).unwrap();
    }

    /// The client connects to A's front with its first bytes already
    /// written, as warren-host reads them at the accept.
    fn client(&mut self, first: &[u8]) {
        let &(n, listener) = self.net.listeners.get(&addr(TUNNEL)).unwrap();
        let peer = addr("192.0.2.1:40000");
        let mut host = LoopHost {
            n,
            net: &mut self.net,
        };
        let register = |h: &mut LoopHost<'_>, sock| h.net.link(End::App(0), End::Node(n, sock));
        let read_first = |_: &mut LoopHost<'_>, sock| Some(Input::Received { sock, data: first });
        drive::accept_and_read(
            &mut self.nodes[n],
            &mut host,
            self.now,
            listener,
            peer,
            register,
            read_first,
        )
        .unwrap();
    }

    /// Runs until nothing moves: connects complete, each pipe's bytes are
    /// read in one piece (one wake-up of the reader per write batch).
    fn run(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some((n, sock, to)) = self.net.dials.pop_front() {
                moved = true;
                let &(m, listener) = self.net.listeners.get(&to).unwrap();
                let peer = addr("10.9.0.1:20000");
                let mut host = LoopHost {
                    n: m,
                    net: &mut self.net,
                };
                let from = End::Node(n, sock);
                let register = |h: &mut LoopHost<'_>, accepted| {
                    h.net.link(from, End::Node(m, accepted));
                    h.net.mesh.insert((n, sock));
                    h.net.mesh.insert((m, accepted));
                };
                drive::accept(
                    &mut self.nodes[m],
                    &mut host,
                    self.now,
                    listener,
                    peer,
                    register,
                )
                .unwrap();
                let result = Ok(());
                self.step(n, Input::Connected { sock, result });
            }
            while let Some((n, sock)) = self.net.done.pop_front() {
                moved = true;
                let result = Ok(());
                self.step(n, Input::Connected { sock, result });
            }
            let ends: Vec<End> = self.net.pipes.keys().copied().collect();
            for from in ends {
                let Some(p) = self.net.pipes.get_mut(&from) else {
                    continue;
                };
                let to = p.to;
                let data = std::mem::take(&mut p.buf);
                let eof = p.fin && !p.fin_told;
                p.fin_told |= eof;
                moved |= !data.is_empty() || eof;
                match to {
                    End::Node(n, sock) => {
                        if !data.is_empty() {
                            self.step(n, Input::Received { sock, data: &data });
                        }
                        if eof && self.net.pipes.contains_key(&to) {
                            self.step(n, Input::ReadClosed { sock });
                        }
                    }
                    End::App(0) => self.net.client_received.extend_from_slice(&data),
                    End::App(_) => {
                        // The echo server answers what it read, and
                        // closes after EOF.
                        if let Some(back) = self.net.pipes.get_mut(&to) {
                            back.buf.extend_from_slice(&data);
                            back.fin |= eof;
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("no quiescence");
    }

    /// Moves the clock and delivers each node's due timeout.
    fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
        for n in 0..self.nodes.len() {
            if self.nodes[n].poll_timeout().is_some_and(|d| d <= self.now) {
                self.step(n, Input::Timeout);
            }
        }
    }

    /// Node `n`'s writes on mesh connection sockets, in bytes.
    fn mesh_writes(&self, n: usize) -> Vec<usize> {
        self.writes(n, true)
    }

    /// Node `n`'s writes on mesh sockets (`mesh`) or others, in bytes.
    fn writes(&self, n: usize, mesh: bool) -> Vec<usize> {
        self.net
            .writes
            .iter()
            .filter(|(m, sock, _)| *m == n && self.net.mesh.contains(&(n, *sock)) == mesh)
            .map(|(_, _, len)| *len)
            .collect()
    }

    /// One cold flow up to the echo: the client's byte came back.
    fn cold_flow(&mut self) {
        self.net.client_received.clear();
        self.net.writes.clear();
        self.client(b"x");
        self.run();
        assert_eq!(self.net.client_received, b"x", "the echo");
    }

    /// The client closes; the flow ends on both nodes.
    fn close_client(&mut self) {
        self.net.fin(End::App(0));
        self.run();
        for n in 0..2 {
            assert_eq!(self.nodes[n].flow_count(), 0, "node {n}'s flows");
        }
    }
}

fn b_mesh_writes_per_cold_flow(resumption: Resumption) {
    let (a, b) = configs(resumption);
    let mut world = Loopback::new(a, b);
    for round in 0..3 {
        world.cold_flow();
        // B wrote: its handshake flight (ServerHello .. Finished); then, for
        // A's Finished, preface, SETTINGS, CONNECT and first byte, its
        // tickets, SETTINGS and 200 in one write; then the echoed byte.
        // Not connected at once, the 200 went alone: a write and a wake-up
        // of A more.
        let writes = world.mesh_writes(1);
        assert_eq!(writes.len(), 3, "round {round}: B's writes {writes:?}");
        // A: ClientHello; Finished .. first byte; SETTINGS ack.
        let writes = world.mesh_writes(0);
        assert_eq!(writes.len(), 3, "round {round}: A's writes {writes:?}");
        world.close_client();
        world.advance(Duration::from_secs(2));
        world.run();
        assert_eq!(world.nodes[0].connection_count(), 0, "the pool closed it");
    }
}

#[test]
fn bs_tickets_settings_and_200_leave_in_one_write_on_a_resumed_connection() {
    b_mesh_writes_per_cold_flow(Resumption::default());
}

#[test]
fn bs_settings_and_200_leave_in_one_write_on_a_full_handshake() {
    b_mesh_writes_per_cold_flow(Resumption::disabled());
}

#[test]
fn a_target_connected_at_once_gets_the_first_bytes_in_the_same_turn() {
    let (a, b) = configs(Resumption::default());
    let mut world = Loopback::new(a, b);
    world.cold_flow();
    assert_eq!(
        world.writes(1, false),
        vec![1],
        "the first byte, in one write"
    );
    // B's writes in order: handshake flight; the flight with the 200 and
    // the first byte to the target right behind it, in the same drain;
    // the echoed byte.
    let order: Vec<bool> = world
        .net
        .writes
        .iter()
        .filter(|(n, _, _)| *n == 1)
        .map(|(_, sock, _)| world.net.mesh.contains(&(1, *sock)))
        .collect();
    assert_eq!(
        order,
        vec![true, true, false, true],
        "mesh, mesh, target, mesh"
    );
}

#[test]
fn an_idle_pooled_connection_closes_with_goaway_and_close_notify_in_one_write() {
    for resumption in [Resumption::default(), Resumption::disabled()] {
        let (a, b) = configs(resumption);
        let mut world = Loopback::new(a, b);
        world.cold_flow();
        world.close_client();
        world.net.writes.clear();
        world.advance(Duration::from_secs(2));
        world.run();
        // GOAWAY (a 17-byte frame) and close_notify (2 bytes), each in a
        // TLS record (5 header + 1 type + 16 tag): 39 + 24 bytes.
        assert_eq!(world.mesh_writes(0), vec![63], "A's closing writes");
        assert_eq!(world.nodes[0].connection_count(), 0);
    }
}

/// Sessions B's store holds after `flows` cold flows through the node
/// harness (a full handshake, then resumed ones).
fn server_sessions_after(flows: usize) -> usize {
    let (a, b) = configs(Resumption::default());
    let mut world = World::new();
    world.add_node(a);
    world.add_node(b);
    world.add_echo_server(addr(ECHO));
    for _ in 0..flows {
        let app = world.flow(TUNNEL, b"x");
        assert_eq!(world.net.apps[app].received, b"x");
        let later = world.now + Duration::from_secs(2);
        world.advance_to(later);
        world.run();
    }
    let counts = world.nodes[0].handshake_counts();
    assert_eq!(counts.resumed, flows as u64 - 1, "{counts:?}");
    world.nodes[1]
        .config()
        .identity
        .resumable_server_config()
        .stored_sessions()
}

#[test]
fn a_resumed_handshake_replaces_only_the_ticket_it_used() {
    // Two tickets from the full handshake; each resumed one uses one and
    // gets one. With two per handshake the store grew by one per cold flow.
    assert_eq!(server_sessions_after(1), 2);
    assert_eq!(server_sessions_after(4), 2);
    assert_eq!(server_sessions_after(8), 2);
}

#[test]
fn mesh_tls_prefers_the_sha256_suite_and_still_offers_aes_256() {
    use rustls::CipherSuite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
    let identity = Ca::new(1).identity(2, "shop", "cart");
    let params = identity.params();
    let client = params.client_config([spiffe("shop", "echo")]).unwrap();
    let server = params.server_config().unwrap();
    for provider in [client.crypto_provider(), server.crypto_provider()] {
        let suites: Vec<_> = provider.cipher_suites.iter().map(|s| s.suite()).collect();
        // The server follows the client's order: the client's first is used.
        assert_eq!(
            suites.first(),
            Some(&TLS13_AES_128_GCM_SHA256),
            "{suites:?}"
        );
        assert!(suites.contains(&TLS13_AES_256_GCM_SHA384), "{suites:?}");
    }
}
