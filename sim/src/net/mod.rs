//! A deterministic model of TCP between simulated hosts.
//!
//! Hosts have virtual addresses (nothing touches the OS). A host listens,
//! connects, writes, pauses and resumes reading, half-closes, closes and
//! aborts through [`Net`]'s methods; what happens to it comes back from
//! [`Net::poll_event`] as a [`NetEvent`] addressed to the host. That is the
//! shape of `proto::drive::Host` (calls out) and `Node::handle_input`
//! (events in), so hosting a node is a thin adapter mapping ids.
//!
//! Every future happening sits in one queue ordered by (virtual time,
//! sequence number); [`Net::step`] jumps the clock to the earliest one.
//! Within one connection bytes are never reordered, lost or duplicated;
//! their write boundaries are split and merged at random, they take latency,
//! jitter and bandwidth into account, and a direction holds at most
//! [`NetConfig::window`] bytes, so a reader that pauses pushes back on the
//! writer. Faults (partitions, clogged links, black holes, resets) only
//! delay or cut connections; they never corrupt a byte stream.

mod config;
mod fault;
mod inject;
mod pipe;
mod tcp;

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use warren_proto::time::Instant;

use crate::rng::Seed;
use crate::trace::{digest, Trace, TraceEntry, TraceHash};

pub use config::{LinkConfig, NetConfig};
pub use fault::FaultId;

use fault::Faults;
use pipe::Pipe;

/// A simulated machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(pub u32);

/// A listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerId(pub u64);

/// One end of a connection. Ids are never reused within a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketId(pub u64);

/// Why a connect failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// The peer host answered with RST: nothing listens on that port, or
    /// the listener went away before the connection was accepted.
    Refused,
    /// No answer before [`NetConfig::connect_timeout`] (black hole or
    /// partition).
    TimedOut,
    /// No host has the address (the sender's first hop says so at once).
    Unreachable,
}

/// What the network tells a host. Each event is addressed to the host that
/// owns the socket or listener it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A listener has a new connection.
    Accepted {
        /// The listener.
        listener: ListenerId,
        /// The new socket, ready for reading and writing.
        sock: SocketId,
        /// The connecting side's address.
        peer: SocketAddr,
    },
    /// A `connect` finished. After an error the socket is gone.
    Connected {
        /// The socket `connect` returned.
        sock: SocketId,
        /// Whether the connection is established.
        result: Result<(), ConnectError>,
    },
    /// Bytes arrived, in order, continuing the previous `Received`.
    Received {
        /// The socket.
        sock: SocketId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The peer half-closed: no more bytes will arrive.
    ReadClosed {
        /// The socket.
        sock: SocketId,
    },
    /// The connection was reset; the socket is gone.
    Reset {
        /// The socket.
        sock: SocketId,
    },
    /// A write that came back short can now take more.
    Writable {
        /// The socket.
        sock: SocketId,
    },
}

/// A host used the network wrongly (a bug in the host, never a network
/// condition: those arrive as events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// Another host already has this address.
    AddressTaken,
    /// No such host.
    UnknownHost,
    /// This host already listens on that port.
    PortInUse,
    /// `listen_on` named an address that is not the host's.
    AddressNotLocal,
    /// The socket does not exist or is already closed.
    UnknownSocket,
    /// The socket is still connecting.
    NotConnected,
    /// `shutdown_write` was already called on the socket.
    WriteShutdown,
    /// [`NetConfig::max_connections`] reached.
    TooManyConnections,
}

impl NetEvent {
    /// The socket the event is about.
    pub fn sock(&self) -> SocketId {
        match self {
            NetEvent::Accepted { sock, .. }
            | NetEvent::Connected { sock, .. }
            | NetEvent::Received { sock, .. }
            | NetEvent::ReadClosed { sock }
            | NetEvent::Reset { sock }
            | NetEvent::Writable { sock } => *sock,
        }
    }
}

impl core::fmt::Display for NetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self {
            NetError::AddressTaken => "address already belongs to a host",
            NetError::UnknownHost => "no such host",
            NetError::PortInUse => "port already in use on this host",
            NetError::AddressNotLocal => "address does not belong to this host",
            NetError::UnknownSocket => "no such socket",
            NetError::NotConnected => "socket is not connected yet",
            NetError::WriteShutdown => "socket's sending side is shut down",
            NetError::TooManyConnections => "connection limit reached",
        };
        f.write_str(what)
    }
}

impl std::error::Error for NetError {}

/// First ephemeral port handed to outgoing connections (IANA range).
const EPHEMERAL_START: u16 = 49152;

#[derive(Debug)]
struct Host {
    ip: IpAddr,
    next_ephemeral: u16,
    /// The host's process is stopped: it reads nothing and hears nothing.
    frozen: bool,
    /// Events raised while frozen, handed over at thaw. Bounded: bytes stay
    /// in the windows (only control events wait here, a few per socket).
    held: VecDeque<NetEvent>,
    /// How far the host's clock is ahead of the network's (negative:
    /// behind), in nanoseconds.
    clock_offset: i64,
}

#[derive(Debug)]
struct Listener {
    host: HostId,
    port: u16,
    /// Bound to a loopback address: only the host itself can connect.
    loopback_only: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Connecting,
    Established,
}

/// Side 0 is the connecting client, side 1 the accepting server; pipe `d`
/// carries bytes from side `d` to side `1 - d`.
#[derive(Debug)]
struct End {
    sock: SocketId,
    /// False once the host closed or aborted it, or learnt of its reset.
    attached: bool,
    read_paused: bool,
}

#[derive(Debug)]
struct Conn {
    state: ConnState,
    /// A connect still in progress fails at this time.
    connect_deadline: Instant,
    /// Queue keys of the pending SYN retry and connect timeout, removed
    /// once the connect is decided so they do not keep the network busy.
    connect_timers: Vec<(Instant, u64)>,
    hosts: [Option<HostId>; 2],
    addrs: [SocketAddr; 2],
    ends: [Option<End>; 2],
    pipes: [Pipe; 2],
}

impl Conn {
    fn attached(&self, side: usize) -> bool {
        self.ends[side].as_ref().is_some_and(|e| e.attached)
    }
}

/// Something scheduled to happen at a virtual time.
#[derive(Debug)]
enum Scheduled {
    SynSend {
        conn: u64,
        attempt: u32,
    },
    SynArrive {
        conn: u64,
    },
    SynAckArrive {
        conn: u64,
    },
    AckArrive {
        conn: u64,
    },
    RefusedArrive {
        conn: u64,
    },
    UnreachableArrive {
        conn: u64,
    },
    ConnectTimeout {
        conn: u64,
    },
    Pump {
        conn: u64,
        dir: usize,
    },
    Arrive {
        conn: u64,
        dir: usize,
        data: Vec<u8>,
        fin: bool,
    },
    RstArrive {
        conn: u64,
        to_side: usize,
    },
}

/// The simulated network and its clock.
#[derive(Debug)]
pub struct Net {
    config: NetConfig,
    seed: Seed,
    now: Instant,
    next_seq: u64,
    queue: BTreeMap<(Instant, u64), Scheduled>,
    outbox: VecDeque<(HostId, NetEvent)>,
    hosts: BTreeMap<HostId, Host>,
    /// Hosts by address, so a connect finds its peer in O(log n).
    by_ip: BTreeMap<IpAddr, HostId>,
    links: BTreeMap<(HostId, HostId), LinkConfig>,
    /// When each directed link finishes sending what it was given.
    link_free_at: BTreeMap<(HostId, HostId), Instant>,
    listeners: BTreeMap<ListenerId, Listener>,
    listening: BTreeMap<(HostId, u16), ListenerId>,
    next_listener: u64,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    sockets: BTreeMap<SocketId, (u64, usize)>,
    next_socket: u64,
    faults: Faults,
    trace: Trace,
    stats: NetStats,
}

/// Counters over a whole run, for a run's summary and for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// `connect` calls.
    pub connects: u64,
    /// Connections accepted by listeners.
    pub accepted: u64,
    /// Connects that failed (refused, timed out or unreachable).
    pub connect_failures: u64,
    /// SYNs that could not leave (partition, clog, black hole).
    pub syn_drops: u64,
    /// Segments sent (data and/or FIN).
    pub segments: u64,
    /// Bytes handed to reading hosts.
    pub bytes_delivered: u64,
    /// Resets reported to hosts.
    pub resets: u64,
}

impl Net {
    /// An empty network at time zero whose random choices all derive from
    /// `seed`.
    pub fn new(seed: Seed, config: NetConfig) -> Net {
        Net {
            config,
            seed: seed.child("net"),
            now: Instant::ZERO,
            next_seq: 0,
            queue: BTreeMap::new(),
            outbox: VecDeque::new(),
            hosts: BTreeMap::new(),
            by_ip: BTreeMap::new(),
            links: BTreeMap::new(),
            link_free_at: BTreeMap::new(),
            listeners: BTreeMap::new(),
            listening: BTreeMap::new(),
            next_listener: 0,
            conns: BTreeMap::new(),
            next_conn: 0,
            sockets: BTreeMap::new(),
            next_socket: 0,
            faults: Faults::default(),
            trace: Trace::new(config.trace_keep),
            stats: NetStats::default(),
        }
    }

    // ----- clock and scheduling -------------------------------------------

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// When the next scheduled happening is due, `None` if the network is
    /// quiet (nothing in flight, nothing pending).
    pub fn next_event_time(&self) -> Option<Instant> {
        self.queue.first_key_value().map(|((t, _), _)| *t)
    }

    /// Processes the earliest scheduled happening, moving the clock to its
    /// time. Returns false if nothing was scheduled. Events for hosts are
    /// then waiting in [`Net::poll_event`].
    pub fn step(&mut self) -> bool {
        let Some(((at, _), item)) = self.queue.pop_first() else {
            return false;
        };
        self.now = self.now.max(at);
        self.handle(item);
        true
    }

    /// Moves the clock forward to `t` without processing anything (for a
    /// host timer that fires before the network's next happening). The
    /// clock never passes a scheduled happening nor goes back.
    pub fn advance_to(&mut self, t: Instant) {
        let limit = self.next_event_time().unwrap_or(t);
        self.now = self.now.max(t.min(limit));
    }

    /// The next event for a host, in the order they happened.
    pub fn poll_event(&mut self) -> Option<(HostId, NetEvent)> {
        self.outbox.pop_front()
    }

    /// The run's trace so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// Counters over the run so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Shorthand for `trace().trace_hash()`.
    pub fn trace_hash(&self) -> TraceHash {
        self.trace.trace_hash()
    }

    /// Connections the network still holds (for leak checks: after every
    /// host closed its sockets and the network went quiet, this is 0).
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    fn schedule(&mut self, at: Instant, item: Scheduled) -> (Instant, u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = (at.max(self.now), seq);
        self.queue.insert(key, item);
        key
    }

    /// Remembers a connect timer of `id` so it can be cancelled.
    fn schedule_connect_timer(&mut self, id: u64, at: Instant, item: Scheduled) {
        let key = self.schedule(at, item);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.connect_timers.retain(|k| self.queue.contains_key(k));
            conn.connect_timers.push(key);
        }
    }

    /// Drops the pending SYN retry and connect timeout of `id`.
    fn cancel_connect_timers(&mut self, id: u64) {
        if let Some(conn) = self.conns.get_mut(&id) {
            for key in conn.connect_timers.drain(..) {
                self.queue.remove(&key);
            }
        }
    }

    fn emit(&mut self, host: HostId, event: NetEvent) {
        let entry = match &event {
            NetEvent::Accepted {
                listener,
                sock,
                peer,
            } => TraceEntry::Accepted {
                listener: listener.0,
                sock: sock.0,
                peer: *peer,
            },
            NetEvent::Connected { sock, result } => TraceEntry::Connected {
                sock: sock.0,
                outcome: match result {
                    Ok(()) => 0,
                    Err(ConnectError::Refused) => 1,
                    Err(ConnectError::TimedOut) => 2,
                    Err(ConnectError::Unreachable) => 3,
                },
            },
            NetEvent::Received { sock, data } => TraceEntry::Received {
                sock: sock.0,
                len: data.len() as u64,
                digest: digest(data),
            },
            NetEvent::ReadClosed { sock } => TraceEntry::ReadClosed { sock: sock.0 },
            NetEvent::Reset { sock } => TraceEntry::Reset { sock: sock.0 },
            NetEvent::Writable { sock } => TraceEntry::Writable { sock: sock.0 },
        };
        self.trace.record(self.now, entry);
        let st = &mut self.stats;
        match &event {
            NetEvent::Accepted { .. } => st.accepted += 1,
            NetEvent::Connected { result: Err(_), .. } => st.connect_failures += 1,
            NetEvent::Received { data, .. } => st.bytes_delivered += data.len() as u64,
            NetEvent::Reset { .. } => st.resets += 1,
            _ => {}
        }
        match self.hosts.get_mut(&host) {
            Some(h) if h.frozen => h.held.push_back(event),
            _ => self.outbox.push_back((host, event)),
        }
    }

    // ----- hosts, links, listeners ------------------------------------------

    /// Adds a host with a (virtual) address.
    pub fn add_host(&mut self, ip: IpAddr) -> Result<HostId, NetError> {
        if self.by_ip.contains_key(&ip) {
            return Err(NetError::AddressTaken);
        }
        let id = HostId(u32::try_from(self.hosts.len()).map_err(|_| NetError::AddressTaken)?);
        self.hosts.insert(
            id,
            Host {
                ip,
                next_ephemeral: EPHEMERAL_START,
                frozen: false,
                held: VecDeque::new(),
                clock_offset: 0,
            },
        );
        self.by_ip.insert(ip, id);
        Ok(id)
    }

    /// A host's address.
    pub fn host_ip(&self, host: HostId) -> Option<IpAddr> {
        self.hosts.get(&host).map(|h| h.ip)
    }

    /// Overrides the link `from → to` (one direction).
    pub fn set_link(&mut self, from: HostId, to: HostId, link: LinkConfig) {
        self.links.insert((from, to), link);
    }

    fn link(&self, from: HostId, to: HostId) -> LinkConfig {
        self.links
            .get(&(from, to))
            .copied()
            .unwrap_or(self.config.link)
    }

    /// Listens on `port` of every address of `host` (0 picks a free
    /// ephemeral port).
    pub fn listen(&mut self, host: HostId, port: u16) -> Result<ListenerId, NetError> {
        self.bind(host, port, false)
    }

    /// Listens on `addr` of `host`: a loopback address accepts connections
    /// from the host itself only; the unspecified address or the host's
    /// own address accept from everyone.
    pub fn listen_on(&mut self, host: HostId, addr: SocketAddr) -> Result<ListenerId, NetError> {
        let own = self.host_ip(host).ok_or(NetError::UnknownHost)?;
        let ip = addr.ip();
        if ip.is_loopback() {
            self.bind(host, addr.port(), true)
        } else if ip.is_unspecified() || ip == own {
            self.bind(host, addr.port(), false)
        } else {
            Err(NetError::AddressNotLocal)
        }
    }

    fn bind(
        &mut self,
        host: HostId,
        port: u16,
        loopback_only: bool,
    ) -> Result<ListenerId, NetError> {
        if !self.hosts.contains_key(&host) {
            return Err(NetError::UnknownHost);
        }
        let port = if port == 0 {
            self.ephemeral_port(host)?
        } else {
            port
        };
        if self.listening.contains_key(&(host, port)) {
            return Err(NetError::PortInUse);
        }
        let id = ListenerId(self.next_listener);
        self.next_listener += 1;
        self.listeners.insert(
            id,
            Listener {
                host,
                port,
                loopback_only,
            },
        );
        self.listening.insert((host, port), id);
        self.trace.record(
            self.now,
            TraceEntry::Listen {
                host: host.0,
                listener: id.0,
                port,
            },
        );
        Ok(id)
    }

    /// The address a listener is bound to.
    pub fn listener_addr(&self, listener: ListenerId) -> Option<SocketAddr> {
        let l = self.listeners.get(&listener)?;
        let ip = if l.loopback_only {
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        } else {
            self.host_ip(l.host)?
        };
        Some(SocketAddr::new(ip, l.port))
    }

    /// The listener a connection to `dialled` on `host` reaches, if any.
    fn listener_for(&self, host: HostId, dialled: SocketAddr) -> Option<ListenerId> {
        let id = *self.listening.get(&(host, dialled.port()))?;
        let l = self.listeners.get(&id)?;
        (!l.loopback_only || dialled.ip().is_loopback()).then_some(id)
    }

    /// Stops listening. Connections not yet accepted are refused.
    pub fn unlisten(&mut self, listener: ListenerId) {
        if let Some(l) = self.listeners.remove(&listener) {
            self.listening.remove(&(l.host, l.port));
            self.trace.record(
                self.now,
                TraceEntry::Unlisten {
                    listener: listener.0,
                },
            );
        }
    }

    fn ephemeral_port(&mut self, host: HostId) -> Result<u16, NetError> {
        let h = self.hosts.get_mut(&host).ok_or(NetError::UnknownHost)?;
        for _ in EPHEMERAL_START..=u16::MAX {
            let port = h.next_ephemeral;
            h.next_ephemeral = port.checked_add(1).unwrap_or(EPHEMERAL_START);
            if !self.listening.contains_key(&(host, port)) {
                return Ok(port);
            }
        }
        Err(NetError::PortInUse)
    }

    // ----- sockets ------------------------------------------------------------

    /// Starts connecting from `host` to `to`. The answer arrives later as
    /// [`NetEvent::Connected`] for the returned socket.
    pub fn connect(&mut self, host: HostId, to: SocketAddr) -> Result<SocketId, NetError> {
        if self.conns.len() >= self.config.max_connections {
            return Err(NetError::TooManyConnections);
        }
        let own_ip = self.host_ip(host).ok_or(NetError::UnknownHost)?;
        // Loopback stays on the host (an agent reaching a local target).
        let (ip, server_host) = if to.ip().is_loopback() {
            (to.ip(), Some(host))
        } else {
            let server = self.by_ip.get(&to.ip()).copied();
            (own_ip, server)
        };
        let from = SocketAddr::new(ip, self.ephemeral_port(host)?);
        let conn = self.next_conn;
        self.next_conn += 1;
        let sock = self.new_socket(conn, 0);
        self.stats.connects += 1;
        let pipe = |dir: u64| {
            Pipe::new(
                self.config.window,
                self.seed.stream_indexed("conn", conn * 2 + dir),
            )
        };
        let pipes = [pipe(0), pipe(1)];
        let deadline = self.now + self.config.connect_timeout;
        self.conns.insert(
            conn,
            Conn {
                state: ConnState::Connecting,
                connect_deadline: deadline,
                connect_timers: Vec::new(),
                hosts: [Some(host), server_host],
                addrs: [from, to],
                ends: [
                    Some(End {
                        sock,
                        attached: true,
                        read_paused: false,
                    }),
                    None,
                ],
                pipes,
            },
        );
        self.trace.record(
            self.now,
            TraceEntry::Connect {
                sock: sock.0,
                from,
                to,
            },
        );
        if server_host.is_none() {
            let at = self.now + self.config.link.latency;
            self.schedule(at, Scheduled::UnreachableArrive { conn });
            return Ok(sock);
        }
        self.schedule(self.now, Scheduled::SynSend { conn, attempt: 0 });
        self.schedule_connect_timer(conn, deadline, Scheduled::ConnectTimeout { conn });
        Ok(sock)
    }

    fn new_socket(&mut self, conn: u64, side: usize) -> SocketId {
        let sock = SocketId(self.next_socket);
        self.next_socket += 1;
        self.sockets.insert(sock, (conn, side));
        sock
    }

    /// The host that owns a socket.
    pub fn socket_host(&self, sock: SocketId) -> Option<HostId> {
        let (conn, side) = self.sockets.get(&sock)?;
        self.conns.get(conn)?.hosts[*side]
    }

    /// A socket's own address.
    pub fn local_addr(&self, sock: SocketId) -> Option<SocketAddr> {
        let (conn, side) = self.sockets.get(&sock)?;
        Some(self.conns.get(conn)?.addrs[*side])
    }

    /// The address of a socket's peer.
    pub fn peer_addr(&self, sock: SocketId) -> Option<SocketAddr> {
        let (conn, side) = self.sockets.get(&sock)?;
        Some(self.conns.get(conn)?.addrs[1 - *side])
    }

    fn lookup(&self, sock: SocketId) -> Result<(u64, usize), NetError> {
        self.sockets
            .get(&sock)
            .copied()
            .ok_or(NetError::UnknownSocket)
    }

    /// The pipe a socket sends on, if it may still send: connected and not
    /// shut down. Also returns the connection id and the socket's side.
    fn sending_pipe(&mut self, sock: SocketId) -> Result<(u64, usize, &mut Pipe), NetError> {
        let (id, side) = self.lookup(sock)?;
        let conn = self.conns.get_mut(&id).ok_or(NetError::UnknownSocket)?;
        if conn.state == ConnState::Connecting {
            return Err(NetError::NotConnected);
        }
        let pipe = &mut conn.pipes[side];
        if pipe.fin_requested {
            return Err(NetError::WriteShutdown);
        }
        Ok((id, side, pipe))
    }

    /// Writes as much of `data` as the connection's window takes and
    /// returns that count (possibly 0). After a short write the host gets
    /// [`NetEvent::Writable`] once the reader made room.
    pub fn write(&mut self, sock: SocketId, data: &[u8]) -> Result<usize, NetError> {
        let (id, side, pipe) = self.sending_pipe(sock)?;
        let n = pipe.write(data);
        if n < data.len() {
            pipe.want_writable = true;
        }
        self.trace.record(
            self.now,
            TraceEntry::Write {
                sock: sock.0,
                offered: data.len() as u64,
                accepted: n as u64,
            },
        );
        if n > 0 {
            self.kick_pump(id, side, true);
        }
        Ok(n)
    }

    /// Half-closes: FIN follows the bytes already written.
    pub fn shutdown_write(&mut self, sock: SocketId) -> Result<(), NetError> {
        let (id, side, pipe) = self.sending_pipe(sock)?;
        pipe.fin_requested = true;
        pipe.want_writable = false;
        self.trace
            .record(self.now, TraceEntry::ShutdownWrite { sock: sock.0 });
        self.kick_pump(id, side, false);
        Ok(())
    }

    /// Stops handing received bytes to the host; they wait in the window,
    /// which fills and then stalls the writer.
    pub fn pause_read(&mut self, sock: SocketId) -> Result<(), NetError> {
        self.set_read_paused(sock, true)
    }

    /// Hands over what arrived while paused and keeps delivering.
    pub fn resume_read(&mut self, sock: SocketId) -> Result<(), NetError> {
        self.set_read_paused(sock, false)
    }

    fn set_read_paused(&mut self, sock: SocketId, paused: bool) -> Result<(), NetError> {
        let (id, side) = self.lookup(sock)?;
        let conn = self.conns.get_mut(&id).ok_or(NetError::UnknownSocket)?;
        if let Some(end) = conn.ends[side].as_mut() {
            end.read_paused = paused;
        }
        self.trace.record(
            self.now,
            TraceEntry::ReadPaused {
                sock: sock.0,
                paused,
            },
        );
        if !paused {
            self.deliver(id, 1 - side);
        }
        Ok(())
    }

    /// Closes a socket. Like a kernel, it sends FIN after the queued bytes,
    /// unless unread bytes are waiting or the connect is still in progress:
    /// then it resets. Bytes that arrive after the close are answered with
    /// RST. Closing an unknown or already-gone socket does nothing.
    pub fn close(&mut self, sock: SocketId) {
        let Ok((id, side)) = self.lookup(sock) else {
            return;
        };
        self.forget_events(sock, id, side);
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let abortive = conn.state == ConnState::Connecting || conn.pipes[1 - side].has_unread();
        if abortive {
            self.abort(sock);
            return;
        }
        self.trace.record(
            self.now,
            TraceEntry::Close {
                sock: sock.0,
                abortive: false,
            },
        );
        if let Some(conn) = self.conns.get_mut(&id) {
            let pipe = &mut conn.pipes[side];
            pipe.want_writable = false;
            if !pipe.fin_requested {
                pipe.fin_requested = true;
                self.kick_pump(id, side, false);
            }
        }
        self.detach(id, side);
    }

    /// Closes a socket abortively: queued bytes are dropped and the peer
    /// gets a reset.
    pub fn abort(&mut self, sock: SocketId) {
        let Ok((id, side)) = self.lookup(sock) else {
            return;
        };
        self.forget_events(sock, id, side);
        self.trace.record(
            self.now,
            TraceEntry::Close {
                sock: sock.0,
                abortive: true,
            },
        );
        if let Some(conn) = self.conns.get_mut(&id) {
            // Bytes already on the wire still arrive ahead of the RST.
            conn.pipes[side].drop_unsent();
            conn.pipes[1 - side].drop_unread();
        }
        self.send_rst(id, side);
        self.detach(id, side);
    }

    /// A host that closed a socket hears nothing more of it, not even what
    /// was already waiting in the outbox.
    fn forget_events(&mut self, sock: SocketId, id: u64, side: usize) {
        self.outbox.retain(|(_, ev)| ev.sock() != sock);
        // Only the socket's own host can hold events for it: looking at
        // every host would make each close cost O(hosts).
        let owner = self.conns.get(&id).and_then(|c| c.hosts[side]);
        if let Some(h) = owner.and_then(|o| self.hosts.get_mut(&o)) {
            h.held.retain(|ev| ev.sock() != sock);
        }
    }

    /// The host no longer holds this end; the connection goes once neither
    /// end is held.
    fn detach(&mut self, id: u64, side: usize) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(end) = conn.ends[side].as_mut() {
            end.attached = false;
            self.sockets.remove(&end.sock);
        }
        if !conn.attached(0) && !conn.attached(1) {
            self.cancel_connect_timers(id);
            self.conns.remove(&id);
        }
    }
}
