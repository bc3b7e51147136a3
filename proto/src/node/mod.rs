//! The mesh node: owns the state of every socket, flow, mesh connection and
//! the pool, and turns what the host reports into what the host must do.
//!
//! Rooms:
//! - [`config`]: what a node is told to be.
//! - [`event`]: what it reports (access log, decisions, counters).
//! - `mesh`: one TLS + HTTP/2 connection on a socket.
//! - `flow`: socket and flow records.
//! - `inbound`: HBONE requests → policy → local target.
//! - `outbound`: front ends → mesh service or egress.
//! - `choose`: which endpoint and path (direct or hub) a flow takes, and
//!   the endpoints' health (circuit breaking).
//! - `relay`: moving bytes, half-closes, resets, closing flows.
//! - `hub_role`, `hub_relay`: serving as a hub; `hub_link`: an agent's
//!   connections to hubs (see [`crate::hub`]); `e2e`: end-to-end mode's
//!   routing and acceptance; `tunnel`: mesh connections carried in a
//!   stream through a hub.
//!
//! The host contract is in [`crate::drive`]: feed one [`Input`], drain
//! [`Node::poll_output`], sleep until [`Node::poll_timeout`].

mod awaiting;
mod choose;
pub mod config;
mod congestion;
mod e2e;
pub mod event;
mod flow;
mod hub_guard;
mod hub_link;
mod hub_relay;
mod hub_role;
mod hub_status;
mod inbound;
mod labels;
mod mesh;
mod outbound;
mod relay;
mod resolve;
mod revoke;
mod tap;
mod tunnel;

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::pool::{ConnId, Pool};
use crate::time::Instant;

pub use awaiting::AWAIT_HORIZON;
pub use config::{Balancing, Endpoint, FrontConfig, FrontKind, MeshIdentity, NodeConfig, Timeouts};
pub use event::{
    CloseCounts, CloseReason, ConnSnapshot, DialFailure, Direction, FlowCounters, FlowPath,
    FlowSnapshot, HandshakeCounts, HandshakeError, MetricKey, Metrics, NodeEvent,
};
pub use hub_guard::RefusalCounts;
pub use hub_link::HubLinkStatus;
pub use hub_status::HubStatus;

use flow::{Flow, Owner, Sock};
use mesh::MeshConn;

/// A socket the node asked for or accepted; allocated by the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SockId(pub u64);

/// A listener the node asked for; allocated by the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerId(pub u64);

/// A flow; allocated by the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowId(pub u64);

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "flow-{}", self.0)
    }
}

/// Why a TCP connect failed, as the host saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// The far side refused (RST).
    Refused,
    /// No answer in the host's own time.
    TimedOut,
    /// No route.
    Unreachable,
    /// Anything else.
    Other,
}

/// Why a name asked for with [`Output::Resolve`] has no address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// The resolver says the name does not exist (or has no address).
    NotFound,
    /// The resolver failed (no answer, no server, anything else).
    Failed,
}

/// Why a listener could not be bound, as the host saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenError {
    /// Another socket holds the address.
    AddrInUse,
    /// The address is not one of this machine's.
    AddrNotAvailable,
    /// Not allowed (a privileged port).
    PermissionDenied,
    /// Anything else.
    Other,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListenError::AddrInUse => "address in use",
            ListenError::AddrNotAvailable => "address not available",
            ListenError::PermissionDenied => "permission denied",
            ListenError::Other => "listen failed",
        })
    }
}

/// Something that happened to the node's sockets or time.
#[derive(Debug)]
pub enum Input<'a> {
    /// An `Output::Connect` finished.
    Connected {
        /// The socket.
        sock: SockId,
        /// How.
        result: Result<(), ConnectError>,
    },
    /// An `Output::Resolve` finished. An answer for a socket the node gave
    /// up on meanwhile (its connect deadline passed) is ignored.
    Resolved {
        /// The socket the name is for.
        sock: SockId,
        /// The addresses, in the resolver's order of preference.
        result: Result<&'a [IpAddr], ResolveError>,
    },
    /// Bytes arrived. The node takes all of them; what it cannot pass on
    /// yet it holds (at most one read per socket) and asks `PauseRead`.
    Received {
        /// The socket.
        sock: SockId,
        /// The bytes.
        data: &'a [u8],
    },
    /// The socket can take more after a short write.
    Writable {
        /// The socket.
        sock: SockId,
    },
    /// The peer closed its sending side (EOF).
    ReadClosed {
        /// The socket.
        sock: SockId,
    },
    /// The connection was reset or failed; the socket is gone.
    Reset {
        /// The socket.
        sock: SockId,
    },
    /// An `Output::Listen` could not be carried out. The node forgets the
    /// listener (a later configuration naming the address asks again) and
    /// reports `NodeEvent::ListenFailed`.
    ListenFailed {
        /// The listener.
        listener: ListenerId,
        /// Why.
        error: ListenError,
    },
    /// `poll_timeout`'s deadline passed.
    Timeout,
    /// A new configuration (policy, exports, directory, certificates).
    Config(Box<NodeConfig>),
}

/// Something the host must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Listen on `addr`; report connections with [`Node::accept`].
    Listen {
        /// The listener.
        listener: ListenerId,
        /// Where.
        addr: SocketAddr,
    },
    /// Close the listener: a new configuration dropped it or moved it to
    /// another address. Connections it accepted stay; the id is dead.
    StopListening {
        /// The listener.
        listener: ListenerId,
    },
    /// Open a TCP connection; report with `Input::Connected`.
    Connect {
        /// The new socket.
        sock: SockId,
        /// Where.
        addr: SocketAddr,
    },
    /// Resolve `host` to addresses; report with `Input::Resolved`. The
    /// node then asks `Output::Connect` for `sock` (or gives up on it).
    ///
    /// A separate step rather than a "connect to this name" output: the
    /// node must see the addresses to decide, because an egress flow to a
    /// name that no domain rule allows may still go to an address a CIDR
    /// rule allows. The host stays an executor of I/O (no policy in any
    /// runtime), the simulator can answer names from a table, and the
    /// connect after it is the ordinary one, under the same deadline.
    Resolve {
        /// The socket the connect will use.
        sock: SockId,
        /// The name (a validated DNS name, no port).
        host: String,
    },
    /// Data is ready for `sock`: write [`Node::transmit_chunk`] and report
    /// with [`Node::transmit_done`] until the socket takes less.
    Transmit {
        /// The socket.
        sock: SockId,
    },
    /// Stop reading `sock`.
    PauseRead {
        /// The socket.
        sock: SockId,
    },
    /// Read `sock` again.
    ResumeRead {
        /// The socket.
        sock: SockId,
    },
    /// Half-close `sock` (everything for it was already transmitted).
    ShutdownWrite {
        /// The socket.
        sock: SockId,
    },
    /// Close `sock` (with RST when `reset`); the id is dead afterwards.
    Close {
        /// The socket.
        sock: SockId,
        /// Abort instead of a graceful close.
        reset: bool,
    },
    /// Report this.
    Event(NodeEvent),
}

/// Misuse of the node's API by the host; never caused by network bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// No such socket (never allocated, or closed).
    UnknownSock(SockId),
    /// No such listener.
    UnknownListener(ListenerId),
    /// `Connected` for a socket that was not connecting.
    NotConnecting(SockId),
    /// `transmit_done` for more bytes than the chunk held.
    TransmitOverrun(SockId),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::UnknownSock(s) => write!(f, "unknown socket {}", s.0),
            HostError::UnknownListener(l) => write!(f, "unknown listener {}", l.0),
            HostError::NotConnecting(s) => write!(f, "socket {} was not connecting", s.0),
            HostError::TransmitOverrun(s) => {
                write!(f, "transmit_done beyond the chunk of socket {}", s.0)
            }
        }
    }
}

impl std::error::Error for HostError {}

/// What a listener serves. Fronts are found by address in the current
/// configuration, so a swap that changes what a front end at the same
/// address speaks takes effect on the next accept, without a rebind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ListenerKind {
    Hbone,
    Front,
}

/// The mesh node. See the module docs.
#[derive(Debug)]
pub struct Node {
    config: NodeConfig,
    now: Instant,
    next_id: u64,
    listeners: BTreeMap<ListenerId, (ListenerKind, SocketAddr)>,
    // Sockets and flows are boxed: ids come in increasing order, which
    // leaves B-tree leaves about half full, so inline records would cost
    // nearly twice their size per idle flow.
    socks: BTreeMap<SockId, Box<Sock>>,
    conns: BTreeMap<ConnId, MeshConn>,
    flows: BTreeMap<FlowId, Box<Flow>>,
    pool: Pool,
    /// Client TLS configs per endpoint (address, identity), each with its
    /// resumption tickets.
    client_tls: BTreeMap<
        (SocketAddr, crate::identity::SpiffeId),
        crate::identity::ResumableConfig<rustls::ClientConfig>,
    >,
    /// Mesh TLS handshakes by kind.
    handshakes: HandshakeCounts,
    outputs: VecDeque<Output>,
    /// Sockets whose output may have changed.
    dirty: BTreeSet<SockId>,
    metrics: Metrics,
    /// Flows closed per label set and reason.
    closes: CloseCounts,
    /// When to look for idle flows next (a sweep, so that `poll_timeout`
    /// does not scan every flow after every input).
    idle_sweep_at: Option<Instant>,
    /// Endpoint choice and health per service port (see `choose`).
    balancers: choose::Balancers,
    /// The hub role's state (empty unless `config.hub`).
    hub: hub_role::HubState,
    /// Connections to hubs (empty unless `config.hub_links`).
    links: hub_link::Links,
    /// End-to-end pair streams and their inner connections.
    tunnels: tunnel::Tunnels,
    /// The plaintext tap, when recording (see [`Node::record_plaintext`]).
    tap: Option<tap::Tap>,
    /// The bug the simulator injected, if any.
    #[cfg(feature = "sim-bugs")]
    bug: Option<crate::sim_bugs::Bug>,
}

impl Node {
    /// A node; its listeners come out of [`Node::poll_output`] first.
    pub fn new(config: NodeConfig, now: Instant) -> Node {
        let mut node = Node {
            pool: Pool::new(config.pool),
            config,
            now,
            next_id: 0,
            listeners: BTreeMap::new(),
            socks: BTreeMap::new(),
            conns: BTreeMap::new(),
            flows: BTreeMap::new(),
            client_tls: BTreeMap::new(),
            handshakes: HandshakeCounts::default(),
            outputs: VecDeque::new(),
            dirty: BTreeSet::new(),
            metrics: Metrics::new(),
            closes: CloseCounts::new(),
            idle_sweep_at: None,
            balancers: choose::Balancers::new(),
            hub: hub_role::HubState::default(),
            links: hub_link::Links::default(),
            tunnels: tunnel::Tunnels::default(),
            tap: None,
            #[cfg(feature = "sim-bugs")]
            bug: None,
        };
        node.hub_init();
        node.listen_all();
        node.tend_links();
        node
    }

    /// Asks for every listener of the configuration not yet asked for,
    /// and stops those it no longer names (dropped, or moved elsewhere).
    fn listen_all(&mut self) {
        let mut wanted: BTreeSet<(ListenerKind, SocketAddr)> = BTreeSet::new();
        if let Some(addr) = self.config.hbone_listen {
            wanted.insert((ListenerKind::Hbone, addr));
        }
        for front in &self.config.fronts {
            wanted.insert((ListenerKind::Front, front.listen));
        }
        let stale: Vec<ListenerId> = self
            .listeners
            .iter()
            .filter(|(_, have)| !wanted.remove(have))
            .map(|(id, _)| *id)
            .collect();
        for listener in stale {
            self.listeners.remove(&listener);
            self.outputs.push_back(Output::StopListening { listener });
        }
        for (kind, addr) in wanted {
            let listener = ListenerId(self.alloc());
            self.listeners.insert(listener, (kind, addr));
            self.outputs.push_back(Output::Listen { listener, addr });
        }
    }

    /// One id counter for sockets, listeners, flows and connections: ids
    /// are unique across kinds, which makes traces easier to read.
    fn alloc(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Injects `bug` (or none) from now on; it survives configuration
    /// swaps and reaches connections opened afterwards.
    #[cfg(feature = "sim-bugs")]
    pub fn inject_bug(&mut self, bug: Option<crate::sim_bugs::Bug>) {
        self.bug = bug;
    }

    /// Whether `bug` is injected.
    #[cfg(feature = "sim-bugs")]
    fn injected(&self, bug: crate::sim_bugs::Bug) -> bool {
        self.bug == Some(bug)
    }

    /// A new HTTP/2 connection with the node's settings (and its injected
    /// bug).
    fn new_h2(&self, role: crate::h2::Role) -> crate::h2::Connection {
        #[allow(unused_mut)] // only a sim-bugs build touches it
        let mut h2 = crate::h2::Connection::new(role, self.config.h2.clone(), self.now);
        #[cfg(feature = "sim-bugs")]
        h2.inject_bug(self.bug);
        h2
    }

    /// The configuration in effect.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Counters per (source, destination, service, direction).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Flows closed per label set and reason.
    pub fn close_counts(&self) -> &CloseCounts {
        &self.closes
    }

    /// Mesh TLS handshakes completed, full and resumed, and resumed ones
    /// refused by the re-check.
    pub fn handshake_counts(&self) -> HandshakeCounts {
        self.handshakes
    }

    /// The time of the latest input (flow ages are measured against it).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Every mesh connection, by id.
    pub fn connections(&self) -> impl Iterator<Item = ConnSnapshot> + '_ {
        self.conns.values().map(|c| ConnSnapshot {
            peer_addr: c.peer_addr,
            peer: c.peer.clone(),
            pooled: c.pool_key.is_some(),
            streams: c.streams.len(),
            opened: c.opened,
        })
    }

    /// Flows alive now.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Every live flow, oldest id first.
    pub fn flows(&self) -> impl Iterator<Item = FlowSnapshot> + '_ {
        self.flows.iter().map(|(id, f)| FlowSnapshot {
            flow: *id,
            direction: f.direction,
            source: f.source.clone(),
            destination: f.destination.clone(),
            service: f.service.clone(),
            established: f.phase == flow::Phase::Relay,
            bytes_sent: f.bytes_sent,
            bytes_received: f.bytes_received,
            started: f.started,
        })
    }

    /// Whether the node takes bytes from `sock` now: it is open, not
    /// paused, not at EOF and not closing. A host that reads before
    /// carrying out the node's outputs (see [`crate::drive::accept_and_read`])
    /// asks this first.
    pub fn reads(&self, sock: SockId) -> bool {
        self.socks
            .get(&sock)
            .is_some_and(|s| !s.read_paused && !s.read_eof && s.closing.is_none())
    }

    /// Sockets alive now (listeners excluded).
    pub fn sock_count(&self) -> usize {
        self.socks.len()
    }

    /// Mesh connections alive now.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Whether a mesh connection's TLS handshake is under way, i.e. a
    /// peer's handshake flight may arrive at any moment. A host that has
    /// work it can do at any time (warren-host makes the next handshakes'
    /// key pairs) does it when this is false, so the work never delays the
    /// reply a handshake waits for. One look at every connection, as
    /// [`Node::poll_timeout`] takes.
    pub fn handshaking(&self) -> bool {
        self.conns.values().any(|m| m.tls.is_handshaking())
    }

    /// Bytes the node holds for `sock`: read but not passed on, plus
    /// output produced but not taken by the socket, plus (a flow's client
    /// socket) the copy of bytes sent before the 200 (excluding HTTP/2
    /// receive buffers, which the window bounds).
    pub fn buffered(&self, sock: SockId) -> usize {
        let Some(s) = self.socks.get(&sock) else {
            return 0;
        };
        let own = s.held.len() + s.prefix.len();
        match s.owner {
            Owner::Mesh(c) => own + self.conns.get(&c).map_or(0, |m| m.chunk().len()),
            Owner::Flow(f) => {
                let early = self
                    .flows
                    .get(&f)
                    .filter(|fl| fl.local == sock)
                    .map_or(0, |fl| fl.early.len());
                own + early
            }
        }
    }

    /// Every byte of flow data the node holds, over all sockets and mesh
    /// connections: socket input not yet passed on, HTTP/2 output not yet
    /// encrypted or written, ciphertext not yet taken by the socket, and
    /// HTTP/2 receive buffers. With one flow, backpressure keeps this
    /// under the flow's window plus one socket read (and framing).
    pub fn held_bytes(&self) -> usize {
        let socks: usize = self.socks.keys().map(|s| self.buffered(*s)).sum();
        let conns: usize = self
            .conns
            .values()
            .map(|c| c.h2.pending_transmit() + c.h2.buffered_bytes() + c.unencrypted())
            .sum();
        socks + conns
    }

    /// Frees the spare room a burst left in the node's shared buffers:
    /// every mesh connection's (see `MeshConn::shrink_buffers`) and the
    /// output queue. These grow with the bytes or outputs in flight at
    /// once (a thousand flows answering together grew them to 2.5 MB on an
    /// agent) and `clear`/`pop` keep the room, so without this an idle
    /// node keeps the memory of its busiest moment. Held bytes stay, so
    /// this is safe at any time; it costs a reallocation when the next
    /// burst comes, so the host calls it once the node has been quiet for a
    /// while, not after every step.
    pub fn shrink_buffers(&mut self) {
        for conn in self.conns.values_mut() {
            conn.shrink_buffers();
        }
        self.outputs.shrink_to_fit();
    }

    /// Bytes allocated for the buffers [`Node::shrink_buffers`] shrinks
    /// (and the HTTP/2 receive buffers), whether they hold bytes or not.
    pub fn buffer_capacity(&self) -> usize {
        let conns: usize = self.conns.values().map(MeshConn::buffer_capacity).sum();
        conns + self.outputs.capacity() * std::mem::size_of::<Output>()
    }

    /// A connection arrived on `listener` from `peer`; returns its socket.
    pub fn accept(
        &mut self,
        now: Instant,
        listener: ListenerId,
        peer: SocketAddr,
    ) -> Result<SockId, HostError> {
        self.now = now;
        let (kind, addr) = *self
            .listeners
            .get(&listener)
            .ok_or(HostError::UnknownListener(listener))?;
        let sock = SockId(self.alloc());
        let front = match kind {
            ListenerKind::Front => self.config.fronts.iter().find(|f| f.listen == addr),
            ListenerKind::Hbone => None,
        };
        match (kind, front.map(|f| f.kind.clone())) {
            (ListenerKind::Hbone, _) => self.accept_hbone(sock, peer),
            (ListenerKind::Front, Some(front)) => self.accept_front(sock, peer, &front),
            // Unreachable while listeners follow the configuration; kept
            // so that a stale id can never reach a front end.
            (ListenerKind::Front, None) => {
                self.outputs.push_back(Output::Close { sock, reset: true })
            }
        }
        Ok(sock)
    }

    /// Applies one input. Network bytes never make this fail.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), HostError> {
        self.now = now;
        let result = self.apply_input(input);
        self.tend_links();
        result
    }

    fn apply_input(&mut self, input: Input<'_>) -> Result<(), HostError> {
        match input {
            Input::Connected { sock, result } => self.on_connected(sock, result),
            Input::Resolved { sock, result } => {
                self.on_resolved(sock, result);
                Ok(())
            }
            Input::Received { sock, data } => self.on_received(sock, data),
            Input::Writable { sock } => {
                let s = self.sock_mut(sock)?;
                s.blocked = false;
                self.dirty.insert(sock);
                Ok(())
            }
            Input::ReadClosed { sock } => self.on_read_closed(sock),
            Input::Reset { sock } => self.on_reset(sock),
            Input::ListenFailed { listener, error } => {
                let (_, addr) = self
                    .listeners
                    .remove(&listener)
                    .ok_or(HostError::UnknownListener(listener))?;
                self.emit(NodeEvent::ListenFailed { addr, error });
                Ok(())
            }
            Input::Timeout => {
                self.on_timeout();
                Ok(())
            }
            Input::Config(config) => {
                self.on_config(*config);
                Ok(())
            }
        }
    }

    fn sock_mut(&mut self, sock: SockId) -> Result<&mut Sock, HostError> {
        self.socks
            .get_mut(&sock)
            .map(|s| &mut **s)
            .ok_or(HostError::UnknownSock(sock))
    }

    fn owner(&self, sock: SockId) -> Result<Owner, HostError> {
        self.socks
            .get(&sock)
            .map(|s| s.owner)
            .ok_or(HostError::UnknownSock(sock))
    }

    /// The next thing the host must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        loop {
            if let Some(out) = self.outputs.pop_front() {
                return Some(out);
            }
            let sock = self.dirty.pop_first()?;
            self.refresh(sock);
        }
    }

    /// When to deliver `Input::Timeout` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let socks = self
            .socks
            .values()
            .flat_map(|s| [s.connect_deadline, s.request_deadline])
            .flatten();
        let conns = self
            .conns
            .values()
            .flat_map(|c| [c.deadline, c.h2.poll_timeout()])
            .flatten();
        socks
            .chain(conns)
            .chain(self.pool.poll_timeout())
            .chain(self.idle_sweep_at)
            .chain(self.links.next_retry())
            .chain(self.links.next_registry_deadline())
            .min()
    }

    /// The bytes waiting for `sock` (empty if none or unknown).
    pub fn transmit_chunk(&self, sock: SockId) -> &[u8] {
        self.chunk(sock)
    }

    /// The host wrote `n` bytes of [`Node::transmit_chunk`] to `sock`.
    /// Fewer than offered means the socket is full: the node waits for
    /// `Input::Writable`.
    pub fn transmit_done(&mut self, now: Instant, sock: SockId, n: usize) -> Result<(), HostError> {
        self.now = now;
        self.on_transmitted(sock, n)
    }
}
