//! A scripted end of one TCP connection, for tests that need a flow to do
//! things in a given order: write, half-close, wait for the other side's
//! bytes or end of stream, reset. It keeps what it receives, and can read
//! slowly (one delivery per interval) to push back on the sender.

use core::time::Duration;
use std::collections::VecDeque;
use std::net::SocketAddr;

use warren_proto::time::Instant;

use crate::net::{ConnectError, HostId, ListenerId, Net, NetEvent, SocketId};
use crate::world::Application;

/// One thing a [`Peer`] does, in script order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes, honouring short writes.
    Write(Vec<u8>),
    /// Half-close the sending side (FIN after what was written).
    Shutdown,
    /// Wait until at least this many bytes arrived in all.
    AwaitBytes(usize),
    /// Wait until the other side half-closed.
    AwaitEof,
    /// Abort the connection: the other side gets a reset.
    Reset,
    /// Close gracefully.
    Close,
}

/// Whether the peer dials or listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Dial(SocketAddr),
    Listen(u16),
}

/// A connection end that follows a [`Step`] script. A listening peer takes
/// the first connection to its port and resets any later one.
#[derive(Debug)]
pub struct Peer {
    role: Role,
    listener: Option<ListenerId>,
    sock: Option<SocketId>,
    script: VecDeque<Step>,
    /// Bytes of the current `Write` step already taken.
    taken: usize,
    /// Slow reading: at most one delivery per interval.
    read_every: Option<Duration>,
    /// When a paused slow reader reads again.
    next_read: Option<Instant>,
    /// Everything received, in order.
    pub received: Vec<u8>,
    /// How many deliveries brought `received`.
    pub reads: u64,
    /// The other side half-closed.
    pub eof: bool,
    /// The connection was reset by the other side or the network.
    pub reset: bool,
    /// A dialling peer's connect outcome, once known.
    pub connected: Option<Result<(), ConnectError>>,
    /// Bytes the network accepted from this peer.
    pub written: u64,
}

impl Peer {
    /// A peer that dials `to` once started.
    pub fn dial(to: SocketAddr, script: Vec<Step>) -> Peer {
        Peer::new(Role::Dial(to), script)
    }

    /// A peer that listens on `port` of its host once started.
    pub fn listen(port: u16, script: Vec<Step>) -> Peer {
        Peer::new(Role::Listen(port), script)
    }

    fn new(role: Role, script: Vec<Step>) -> Peer {
        Peer {
            role,
            listener: None,
            sock: None,
            script: script.into(),
            taken: 0,
            read_every: None,
            next_read: None,
            received: Vec::new(),
            reads: 0,
            eof: false,
            reset: false,
            connected: None,
            written: 0,
        }
    }

    /// Reads slowly: after each delivery, reading pauses for `every`.
    pub fn reading_every(mut self, every: Duration) -> Peer {
        self.read_every = Some(every);
        self
    }

    /// The connection's socket, once there is one.
    pub fn sock(&self) -> Option<SocketId> {
        self.sock
    }

    /// Whether every step of the script was done.
    pub fn script_done(&self) -> bool {
        self.script.is_empty()
    }

    /// Pauses a slow reader until its next read time.
    fn hold_reading(&mut self, net: &mut Net, sock: SocketId) {
        if let Some(every) = self.read_every {
            let _ = net.pause_read(sock);
            self.next_read = Some(net.now() + every);
        }
    }

    /// Does the script's steps until one has to wait.
    fn advance(&mut self, net: &mut Net) {
        let Some(sock) = self.sock else {
            return;
        };
        while let Some(step) = self.script.front() {
            match step {
                Step::Write(data) => {
                    let rest = data.get(self.taken..).unwrap_or(&[]);
                    let took = net.write(sock, rest).unwrap_or(0);
                    self.taken += took;
                    self.written += took as u64;
                    if took < rest.len() {
                        return;
                    }
                    self.taken = 0;
                }
                Step::Shutdown => {
                    let _ = net.shutdown_write(sock);
                }
                Step::AwaitBytes(n) if self.received.len() < *n => return,
                Step::AwaitEof if !self.eof => return,
                Step::AwaitBytes(_) | Step::AwaitEof => {}
                Step::Reset => {
                    net.abort(sock);
                    self.script.clear();
                    return;
                }
                Step::Close => net.close(sock),
            }
            self.script.pop_front();
        }
    }
}

impl Application for Peer {
    fn start(&mut self, net: &mut Net, host: HostId) {
        match self.role {
            Role::Dial(to) => self.sock = net.connect(host, to).ok(),
            Role::Listen(port) => self.listener = net.listen(host, port).ok(),
        }
    }

    fn claims(&self, event: &NetEvent) -> bool {
        match event {
            NetEvent::Accepted { listener, .. } => Some(*listener) == self.listener,
            other => Some(other.sock()) == self.sock,
        }
    }

    fn on_event(&mut self, net: &mut Net, _host: HostId, event: NetEvent) {
        match event {
            NetEvent::Accepted { sock, .. } => {
                if self.sock.is_some() {
                    net.abort(sock);
                    return;
                }
                self.sock = Some(sock);
                self.hold_reading(net, sock);
            }
            NetEvent::Connected { sock, result } => {
                self.connected = Some(result);
                if result.is_ok() {
                    self.hold_reading(net, sock);
                }
            }
            NetEvent::Received { sock, data } => {
                self.received.extend_from_slice(&data);
                self.reads += 1;
                self.hold_reading(net, sock);
            }
            NetEvent::ReadClosed { .. } => self.eof = true,
            NetEvent::Reset { .. } => {
                self.reset = true;
                self.script.clear();
                return;
            }
            NetEvent::Writable { .. } => {}
        }
        self.advance(net);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.next_read
    }

    fn on_timeout(&mut self, net: &mut Net, _host: HostId) {
        self.next_read = None;
        if let Some(sock) = self.sock {
            let _ = net.resume_read(sock);
        }
    }
}
