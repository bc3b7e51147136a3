//! An in-memory world for node tests: nodes, application endpoints and TCP
//! pipes between them, with bounded pipe buffers (so backpressure is real),
//! driven only through `warren_proto::drive`. No sockets, no clocks.

#![allow(dead_code)]

pub mod certs;
pub mod config;
pub mod hubs;
pub mod raw_peer;
pub mod tls_pipe;

/// A SOCKS5 client's view of a granted CONNECT: the no-auth method choice,
/// then success with a zero IPv4 bind address.
pub const SOCKS_OK: [u8; 12] = [5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0];

/// What a SOCKS5 client writes to reach `host:port` by name: its no-auth
/// greeting, then CONNECT with a domain address.
pub fn socks_request_domain(host: &str, port: u16) -> Vec<u8> {
    let mut r = vec![5, 1, 0, 5, 1, 0, 3, host.len() as u8];
    r.extend_from_slice(host.as_bytes());
    r.extend_from_slice(&port.to_be_bytes());
    r
}

/// A SOCKS5 client of the front at `listen` asks for `host:port` by name,
/// sends `payload` right behind its request and half-closes; the world
/// runs until quiet. Returns the client app.
pub fn socks_flow(world: &mut World, listen: &str, host: &str, port: u16, payload: &[u8]) -> usize {
    let mut bytes = socks_request_domain(host, port);
    bytes.extend_from_slice(payload);
    world.flow(listen, &bytes)
}

#[path = "../common/mod.rs"]
pub mod common;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use warren_proto::drive::{self, Host};
use warren_proto::node::{
    CloseReason, ConnectError, Direction, Input, ListenError, ListenerId, Node, NodeConfig,
    NodeEvent, ResolveError, SockId,
};
use warren_proto::time::Instant;

/// One end of a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    Node(usize, SockId),
    App(usize),
}

/// One direction of a TCP connection.
#[derive(Debug)]
struct Pipe {
    to: End,
    buf: VecDeque<u8>,
    fin: bool,
    fin_delivered: bool,
    sender_blocked: bool,
}

/// How a target server behaves.
#[derive(Clone, Debug)]
pub enum Server {
    /// Writes back what it reads; half-closes after EOF.
    Echo,
    /// Writes these bytes and half-closes at once; reads whatever comes.
    SpeakFirst(Vec<u8>),
    /// Only reads.
    Sink,
}

/// An application endpoint (a test client or a target server).
#[derive(Debug, Default)]
pub struct App {
    pub received: Vec<u8>,
    pub eof: bool,
    pub reset: bool,
    /// Bytes the app still wants to write.
    pub outbox: VecDeque<u8>,
    pub shutdown_after_outbox: bool,
    pub shut: bool,
    /// Echo servers write back what they read, and close after EOF.
    pub echo: bool,
    /// A slow reader takes at most this many bytes per round.
    pub read_per_round: Option<usize>,
    /// Stop reading entirely.
    pub stalled: bool,
    pub connected: Option<bool>,
}

#[derive(Debug)]
enum Action {
    Connect {
        node: usize,
        sock: SockId,
        addr: SocketAddr,
    },
    Reset {
        to: End,
    },
    Writable {
        node: usize,
        sock: SockId,
    },
    Resolved {
        node: usize,
        sock: SockId,
        host: String,
    },
    ListenFailed {
        node: usize,
        listener: ListenerId,
    },
}

/// Everything but the nodes (so a node and the network borrow apart).
#[derive(Debug, Default)]
pub struct Net {
    pipes: BTreeMap<End, Pipe>,
    paused: BTreeSet<End>,
    listeners: BTreeMap<SocketAddr, (usize, ListenerId)>,
    /// Addresses where servers listen, and how they behave.
    pub servers: BTreeMap<SocketAddr, Server>,
    /// Server apps created from now on read at most this much per round.
    pub slow_servers: Option<usize>,
    /// Addresses another program holds: listening there fails.
    pub busy: BTreeSet<SocketAddr>,
    /// What names resolve to (a name not here is `NotFound`).
    pub names: BTreeMap<String, Vec<IpAddr>>,
    /// Addresses whose connects never complete.
    pub blackhole: BTreeSet<SocketAddr>,
    /// Apps created by connections to servers, in order.
    pub server_apps: Vec<usize>,
    pub apps: Vec<App>,
    actions: VecDeque<Action>,
    pub events: Vec<(usize, NodeEvent)>,
    /// Bytes a pipe direction holds at most.
    pub cap: usize,
    /// Every output, for determinism checks.
    pub transcript: Vec<String>,
    /// Connects to a server complete inside `Host::connect`, as on
    /// loopback: the host answers them through `Host::connect_result_now`.
    pub instant_connects: bool,
    /// Nodes that read nothing for now: what is sent to them waits, so
    /// what several writes carried arrives in one read later.
    pub held: BTreeSet<usize>,
}

impl Net {
    /// A server app for a connection from `from` to the server `server`,
    /// its pipes connected.
    fn serve(&mut self, from: End, server: Server) {
        self.apps.push(App::default());
        let app = self.apps.len() - 1;
        self.server_apps.push(app);
        let a = &mut self.apps[app];
        a.read_per_round = self.slow_servers;
        match server {
            Server::Echo => a.echo = true,
            Server::SpeakFirst(data) => {
                a.outbox.extend(data);
                a.shutdown_after_outbox = true;
            }
            Server::Sink => {}
        }
        self.connect_pipes(from, End::App(app));
    }
}

struct NodeHost<'a> {
    n: usize,
    net: &'a mut Net,
}

impl Host for NodeHost<'_> {
    fn listen(&mut self, listener: ListenerId, addr: SocketAddr) {
        self.net
            .transcript
            .push(format!("{} listen {addr}", self.n));
        if self.net.busy.contains(&addr) {
            self.net.actions.push_back(Action::ListenFailed {
                node: self.n,
                listener,
            });
            return;
        }
        self.net.listeners.insert(addr, (self.n, listener));
    }
    fn stop_listening(&mut self, listener: ListenerId) {
        self.net
            .transcript
            .push(format!("{} unlisten {}", self.n, listener.0));
        let me = (self.n, listener);
        self.net.listeners.retain(|_, l| *l != me);
    }
    fn connect(&mut self, sock: SockId, addr: SocketAddr) {
        self.net
            .transcript
            .push(format!("{} connect {} {addr}", self.n, sock.0));
        self.net.actions.push_back(Action::Connect {
            node: self.n,
            sock,
            addr,
        });
    }
    fn connect_result_now(&mut self, sock: SockId) -> Option<Result<(), ConnectError>> {
        if !self.net.instant_connects {
            return None;
        }
        let me = self.n;
        let Some(Action::Connect {
            node,
            sock: s,
            addr,
        }) = self.net.actions.back()
        else {
            return None;
        };
        let server = self.net.servers.get(addr).cloned();
        let (true, Some(server)) = (*node == me && *s == sock, server) else {
            return None;
        };
        self.net.actions.pop_back();
        self.net.serve(End::Node(me, sock), server);
        Some(Ok(()))
    }
    fn resolve(&mut self, sock: SockId, host: &str) {
        self.net
            .transcript
            .push(format!("{} resolve {} {host}", self.n, sock.0));
        self.net.actions.push_back(Action::Resolved {
            node: self.n,
            sock,
            host: host.to_string(),
        });
    }
    fn write(&mut self, sock: SockId, data: &[u8]) -> usize {
        let n = self.net.write(End::Node(self.n, sock), data);
        self.net
            .transcript
            .push(format!("{} write {} {}/{}", self.n, sock.0, n, data.len()));
        n
    }
    fn pause_read(&mut self, sock: SockId) {
        self.net
            .transcript
            .push(format!("{} pause {}", self.n, sock.0));
        self.net.paused.insert(End::Node(self.n, sock));
    }
    fn resume_read(&mut self, sock: SockId) {
        self.net
            .transcript
            .push(format!("{} resume {}", self.n, sock.0));
        self.net.paused.remove(&End::Node(self.n, sock));
    }
    fn shutdown_write(&mut self, sock: SockId) {
        self.net
            .transcript
            .push(format!("{} shutdown {}", self.n, sock.0));
        if let Some(p) = self.net.pipes.get_mut(&End::Node(self.n, sock)) {
            p.fin = true;
        }
    }
    fn close(&mut self, sock: SockId, reset: bool) {
        self.net
            .transcript
            .push(format!("{} close {} reset={reset}", self.n, sock.0));
        let me = End::Node(self.n, sock);
        self.net.paused.remove(&me);
        // A connect still in flight is abandoned with its socket.
        let n = self.n;
        self.net.actions.retain(
            |a| !matches!(a, Action::Connect { node, sock: s, .. } if *node == n && *s == sock),
        );
        if reset {
            if let Some(p) = self.net.pipes.remove(&me) {
                self.net.pipes.remove(&p.to);
                self.net.actions.push_back(Action::Reset { to: p.to });
            }
        } else {
            if let Some(p) = self.net.pipes.get_mut(&me) {
                p.fin = true;
            }
            // Nobody reads this socket any more: data towards it is dropped.
            let towards: Vec<End> = self
                .net
                .pipes
                .iter()
                .filter(|(_, p)| p.to == me)
                .map(|(from, _)| *from)
                .collect();
            for from in towards {
                self.net.pipes.remove(&from);
            }
        }
    }
    fn event(&mut self, event: NodeEvent) {
        self.net
            .transcript
            .push(format!("{} event {event:?}", self.n));
        self.net.events.push((self.n, event));
    }
}

impl Net {
    fn write(&mut self, from: End, data: &[u8]) -> usize {
        let cap = self.cap;
        let Some(p) = self.pipes.get_mut(&from) else {
            return data.len(); // the peer is gone; the bytes vanish
        };
        let room = cap.saturating_sub(p.buf.len());
        let n = room.min(data.len());
        p.buf.extend(&data[..n]);
        if n < data.len() {
            p.sender_blocked = true;
        }
        n
    }

    fn connect_pipes(&mut self, a: End, b: End) {
        for (from, to) in [(a, b), (b, a)] {
            self.pipes.insert(
                from,
                Pipe {
                    to,
                    buf: VecDeque::new(),
                    fin: false,
                    fin_delivered: false,
                    sender_blocked: false,
                },
            );
        }
    }
}

/// An invariant checked after every round.
pub type Check = Box<dyn FnMut(&World)>;

/// Nodes plus the network.
pub struct World {
    pub nodes: Vec<Node>,
    pub net: Net,
    pub now: Instant,
    /// Bytes delivered to a node per `Received`.
    pub read_size: usize,
    /// Called after every delivery step, to check invariants.
    pub check: Option<Check>,
}

impl World {
    pub fn new() -> World {
        World {
            nodes: Vec::new(),
            net: Net {
                cap: 64 * 1024,
                ..Net::default()
            },
            now: Instant::ZERO,
            read_size: 16 * 1024,
            check: None,
        }
    }

    pub fn add_node(&mut self, config: NodeConfig) -> usize {
        let n = self.nodes.len();
        self.nodes.push(Node::new(config, self.now));
        let now = self.now;
        drive::drain(
            &mut self.nodes[n],
            &mut NodeHost {
                n,
                net: &mut self.net,
            },
            now,
        )
        .unwrap();
        n
    }

    pub fn add_echo_server(&mut self, addr: SocketAddr) {
        self.net.servers.insert(addr, Server::Echo);
    }

    pub fn add_server(&mut self, addr: SocketAddr, server: Server) {
        self.net.servers.insert(addr, server);
    }

    fn step(&mut self, n: usize, input: Input<'_>) {
        let now = self.now;
        drive::step(
            &mut self.nodes[n],
            &mut NodeHost {
                n,
                net: &mut self.net,
            },
            now,
            input,
        )
        .unwrap();
    }

    /// Swaps node `n`'s configuration.
    pub fn apply_config(&mut self, n: usize, config: NodeConfig) {
        self.step(n, Input::Config(Box::new(config)));
    }

    /// Advances virtual time to `at` and delivers the node's timeout.
    pub fn advance_to(&mut self, at: Instant) {
        self.now = at;
        for n in 0..self.nodes.len() {
            if self.nodes[n].poll_timeout().is_some_and(|d| d <= at) {
                self.step(n, Input::Timeout);
            }
        }
    }

    fn new_app(&mut self) -> usize {
        self.net.apps.push(App::default());
        self.net.apps.len() - 1
    }

    /// A client application connects to a node's listener at `addr`.
    pub fn connect_app(&mut self, addr: SocketAddr) -> usize {
        let app = self.new_app();
        let Some(&(n, listener)) = self.net.listeners.get(&addr) else {
            // Nobody listens: refused, as TCP does (RST).
            self.net.apps[app].connected = Some(false);
            self.net.apps[app].reset = true;
            return app;
        };
        let peer: SocketAddr = format!("192.0.2.1:{}", 10000 + app).parse().unwrap();
        // Pipes must exist before the node writes (a SOCKS5 reply, say).
        let now = self.now;
        let register = |h: &mut NodeHost<'_>, sock| {
            h.net.connect_pipes(End::App(app), End::Node(n, sock));
        };
        let mut host = NodeHost {
            n,
            net: &mut self.net,
        };
        drive::accept(&mut self.nodes[n], &mut host, now, listener, peer, register).unwrap();
        self.net.apps[app].connected = Some(true);
        app
    }

    /// A client connects to a node's listener having already written
    /// `first`; the node's host reads it at the accept, before carrying out
    /// the node's outputs ([`drive::accept_and_read`]), as warren-host does.
    pub fn connect_app_with(&mut self, addr: SocketAddr, first: &[u8]) -> usize {
        let app = self.new_app();
        let &(n, listener) = self.net.listeners.get(&addr).expect("a listener");
        let peer: SocketAddr = format!("192.0.2.1:{}", 10000 + app).parse().unwrap();
        let now = self.now;
        let register = |h: &mut NodeHost<'_>, sock| {
            h.net.connect_pipes(End::App(app), End::Node(n, sock));
        };
        let read_first = |_: &mut NodeHost<'_>, sock| Some(Input::Received { sock, data: first });
        let mut host = NodeHost {
            n,
            net: &mut self.net,
        };
        drive::accept_and_read(
            &mut self.nodes[n],
            &mut host,
            now,
            listener,
            peer,
            register,
            read_first,
        )
        .unwrap();
        self.net.apps[app].connected = Some(true);
        app
    }

    pub fn app_write(&mut self, app: usize, data: &[u8]) {
        self.net.apps[app].outbox.extend(data);
    }

    pub fn app_shutdown(&mut self, app: usize) {
        self.net.apps[app].shutdown_after_outbox = true;
    }

    pub fn app_reset(&mut self, app: usize) {
        if let Some(p) = self.net.pipes.remove(&End::App(app)) {
            self.net.pipes.remove(&p.to);
            self.net.actions.push_back(Action::Reset { to: p.to });
        }
    }

    fn do_action(&mut self, action: Action) {
        match action {
            Action::Connect { node, sock, addr } => {
                let from = End::Node(node, sock);
                if self.net.blackhole.contains(&addr) {
                    return;
                }
                if let Some(&(m, listener)) = self.net.listeners.get(&addr) {
                    let peer: SocketAddr =
                        format!("10.9.{node}.1:{}", 20000 + sock.0).parse().unwrap();
                    // The accepting node may write at once: pipes first.
                    let now = self.now;
                    let register = |h: &mut NodeHost<'_>, accepted| {
                        h.net.connect_pipes(from, End::Node(m, accepted));
                    };
                    let mut host = NodeHost {
                        n: m,
                        net: &mut self.net,
                    };
                    drive::accept(&mut self.nodes[m], &mut host, now, listener, peer, register)
                        .unwrap();
                    self.step(
                        node,
                        Input::Connected {
                            sock,
                            result: Ok(()),
                        },
                    );
                } else if let Some(server) = self.net.servers.get(&addr).cloned() {
                    self.net.serve(from, server);
                    self.step(
                        node,
                        Input::Connected {
                            sock,
                            result: Ok(()),
                        },
                    );
                } else {
                    self.step(
                        node,
                        Input::Connected {
                            sock,
                            result: Err(ConnectError::Refused),
                        },
                    );
                }
            }
            Action::Reset { to } => match to {
                End::Node(n, sock) => {
                    self.net.paused.remove(&to);
                    self.step(n, Input::Reset { sock });
                }
                End::App(a) => self.net.apps[a].reset = true,
            },
            Action::Writable { node, sock } => self.step(node, Input::Writable { sock }),
            Action::ListenFailed { node, listener } => {
                let error = ListenError::AddrInUse;
                self.step(node, Input::ListenFailed { listener, error });
            }
            Action::Resolved { node, sock, host } => {
                let addrs = self.net.names.get(&host).cloned();
                let result = addrs.as_deref().ok_or(ResolveError::NotFound);
                self.step(node, Input::Resolved { sock, result });
            }
        }
    }

    /// Moves bytes until nothing changes. Returns the number of rounds.
    pub fn run(&mut self) -> usize {
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 1_000_000, "no quiescence");
            let mut progress = false;
            while let Some(action) = self.net.actions.pop_front() {
                progress = true;
                self.do_action(action);
            }
            // Applications write what they have.
            for a in 0..self.net.apps.len() {
                progress |= self.app_pump(a);
            }
            let froms: Vec<End> = self.net.pipes.keys().copied().collect();
            for from in froms {
                progress |= self.deliver(from);
            }
            if let Some(mut check) = self.check.take() {
                check(self);
                self.check = Some(check);
            }
            if !progress {
                return rounds;
            }
        }
    }

    fn app_pump(&mut self, a: usize) -> bool {
        let mut progress = false;
        let app = &mut self.net.apps[a];
        if app.echo && !app.received.is_empty() {
            let data = std::mem::take(&mut app.received);
            app.outbox.extend(data);
        }
        if app.echo && app.eof && !app.shutdown_after_outbox {
            app.shutdown_after_outbox = true;
        }
        if !app.outbox.is_empty() {
            let (front, _) = app.outbox.as_slices();
            let chunk = front.to_vec();
            let n = self.net.write(End::App(a), &chunk);
            self.net.apps[a].outbox.drain(..n);
            progress |= n > 0;
        }
        let app = &mut self.net.apps[a];
        if app.outbox.is_empty() && app.shutdown_after_outbox && !app.shut {
            app.shut = true;
            if let Some(p) = self.net.pipes.get_mut(&End::App(a)) {
                p.fin = true;
            }
            progress = true;
        }
        progress
    }

    fn deliver(&mut self, from: End) -> bool {
        let Some(p) = self.net.pipes.get(&from) else {
            return false;
        };
        let to = p.to;
        if self.net.paused.contains(&to)
            || matches!(to, End::Node(n, _) if self.net.held.contains(&n))
        {
            return false;
        }
        let mut progress = false;
        let limit = match to {
            End::Node(..) => self.read_size,
            End::App(a) => {
                let app = &self.net.apps[a];
                if app.stalled {
                    0
                } else {
                    app.read_per_round.unwrap_or(usize::MAX)
                }
            }
        };
        let p = self.net.pipes.get_mut(&from).unwrap();
        let n = p.buf.len().min(limit);
        if n > 0 {
            let data: Vec<u8> = p.buf.drain(..n).collect();
            let was_blocked = std::mem::take(&mut p.sender_blocked);
            progress = true;
            match to {
                End::Node(m, sock) => self.step(m, Input::Received { sock, data: &data }),
                End::App(a) => self.net.apps[a].received.extend_from_slice(&data),
            }
            if was_blocked {
                if let End::Node(n, sock) = from {
                    self.net
                        .actions
                        .push_back(Action::Writable { node: n, sock });
                }
            }
        }
        let Some(p) = self.net.pipes.get_mut(&from) else {
            return progress;
        };
        if p.buf.is_empty() && p.fin && !p.fin_delivered {
            p.fin_delivered = true;
            progress = true;
            match to {
                End::Node(m, sock) => self.step(m, Input::ReadClosed { sock }),
                End::App(a) => self.net.apps[a].eof = true,
            }
        }
        progress
    }

    /// Resets every TCP connection between nodes `a` and `b` (both ends
    /// hear a reset).
    pub fn reset_links(&mut self, a: usize, b: usize) {
        let links: Vec<(End, End)> = self
            .net
            .pipes
            .iter()
            .filter(|(from, p)| {
                matches!((from, p.to), (End::Node(x, _), End::Node(y, _)) if *x == a && y == b)
            })
            .map(|(from, p)| (*from, p.to))
            .collect();
        for (x, y) in links {
            self.net.pipes.remove(&x);
            self.net.pipes.remove(&y);
            self.net.actions.push_back(Action::Reset { to: x });
            self.net.actions.push_back(Action::Reset { to: y });
        }
    }

    /// Node `dead` stops answering node `alive` without a word: what
    /// `alive` sends it vanishes, and nothing tells `alive` (yet).
    pub fn silence_links(&mut self, dead: usize, alive: usize) {
        self.net.pipes.retain(|from, p| {
            !matches!((from, p.to), (End::Node(a, _), End::Node(d, _)) if *a == alive && d == dead)
        });
    }

    /// Node `dead`'s process dies (kill -9) with nothing left unread: its
    /// kernel closes each connection to node `alive` with a FIN (no
    /// GOAWAY, no END_STREAM), and what `alive` sends afterwards vanishes.
    pub fn kill_links(&mut self, dead: usize, alive: usize) {
        let between = |from: &End, to: &End, x: usize, y: usize| matches!((from, to), (End::Node(a, _), End::Node(b, _)) if *a == x && *b == y);
        let towards_dead: Vec<End> = self
            .net
            .pipes
            .iter()
            .filter(|(from, p)| between(from, &p.to, alive, dead))
            .map(|(from, _)| *from)
            .collect();
        for from in towards_dead {
            self.net.pipes.remove(&from);
        }
        for (from, p) in self.net.pipes.iter_mut() {
            if between(from, &p.to, dead, alive) {
                p.fin = true;
            }
        }
    }

    /// Node `n`'s sockets the network knows about.
    pub fn node_socks(&self, n: usize) -> Vec<SockId> {
        self.net
            .pipes
            .keys()
            .filter_map(|e| match e {
                End::Node(m, sock) if *m == n => Some(*sock),
                _ => None,
            })
            .collect()
    }

    /// From now on checks after every delivery step that node `n` holds
    /// at most `bound` bytes in its connections' buffers; returns the
    /// most it has held since.
    pub fn bound_buffered(&mut self, n: usize, bound: usize) -> Rc<Cell<usize>> {
        let peak = Rc::new(Cell::new(0usize));
        let seen = peak.clone();
        self.check = Some(Box::new(move |w: &World| {
            let held = w.nodes[n].connection_buffered();
            seen.set(seen.get().max(held));
            assert!(held <= bound, "node {n} holds {held} bytes, bound {bound}");
        }));
        peak
    }

    /// One cold flow through the front at `front`: connect with one byte,
    /// read the echo, close, and let node 0's pool close the idle
    /// connection (2 s later; the cold pairs' pools close after 1 s).
    pub fn cold_echo_flow(&mut self, front: SocketAddr) {
        let app = self.connect_app_with(front, b"x");
        self.app_shutdown(app);
        self.run();
        assert_eq!(self.net.apps[app].received, b"x", "the echo");
        let later = self.now + std::time::Duration::from_secs(2);
        self.advance_to(later);
        self.run();
        assert_eq!(self.nodes[0].connection_count(), 0, "the pool closed it");
    }

    /// Streams on each of node `n`'s pooled connections, oldest first.
    pub fn streams_per_connection(&self, n: usize) -> Vec<usize> {
        self.nodes[n]
            .connections()
            .filter(|c| c.pooled)
            .map(|c| c.streams)
            .collect()
    }

    /// How many TCP connects node `n` has started to `to`.
    pub fn dials(&self, n: usize, to: SocketAddr) -> usize {
        let (start, end) = (format!("{n} connect"), to.to_string());
        self.net
            .transcript
            .iter()
            .filter(|l| l.starts_with(&start) && l.ends_with(&end))
            .count()
    }

    /// Events of node `n`.
    pub fn events_of(&self, n: usize) -> Vec<&NodeEvent> {
        self.net
            .events
            .iter()
            .filter(|(m, _)| *m == n)
            .map(|(_, e)| e)
            .collect()
    }

    /// Why node `n`'s flows closed, in order.
    pub fn close_reasons(&self, n: usize) -> Vec<CloseReason> {
        self.events_of(n)
            .into_iter()
            .filter_map(|e| match e {
                NodeEvent::FlowClosed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    /// Node `n`'s closed flows, in order: each one's direction and reason.
    pub fn closed_flows(&self, n: usize) -> Vec<(Direction, CloseReason)> {
        self.events_of(n)
            .into_iter()
            .filter_map(|e| match e {
                NodeEvent::FlowClosed {
                    direction, reason, ..
                } => Some((*direction, reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// Why node `n`'s outbound flows closed, in order.
    pub fn outbound_closes(&self, n: usize) -> Vec<CloseReason> {
        self.closed_flows(n)
            .into_iter()
            .filter(|(direction, _)| *direction == Direction::Outbound)
            .map(|(_, reason)| reason)
            .collect()
    }
}
