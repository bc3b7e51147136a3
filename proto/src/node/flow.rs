//! The node's per-socket and per-flow records.

use core::net::SocketAddr;
use std::collections::VecDeque;

use crate::front::{DomainName, FrontEnd};
use crate::h2::StreamId;
use crate::identity::SpiffeId;
use crate::policy::ServiceName;
use crate::pool::ConnId;
use crate::time::Instant;

use super::config::Endpoint;
use super::event::{Direction, FlowPath};
use super::FlowId;

/// Who a socket belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    /// The transport of a mesh connection.
    Mesh(ConnId),
    /// A flow's local socket (the client's or the target's).
    Flow(FlowId),
}

/// One socket the host holds for the node.
#[derive(Debug)]
pub(super) struct Sock {
    pub owner: Owner,
    pub peer_addr: SocketAddr,
    /// Bytes for the socket before any relayed byte (front-end replies).
    pub prefix: Vec<u8>,
    /// Bytes read from the socket not passed on yet: at most one read.
    pub held: Vec<u8>,
    pub read_paused: bool,
    /// The host took less than offered; wait for `Writable`.
    pub blocked: bool,
    pub read_eof: bool,
    pub write_shut: bool,
    /// Close once nothing is left to write (`Some(reset)`).
    pub closing: Option<bool>,
    /// Outbound connect still under way, until this deadline.
    pub connect_deadline: Option<Instant>,
    /// A front end's request must be complete by then.
    pub request_deadline: Option<Instant>,
    /// The host is resolving the name this socket connects to.
    pub resolving: Option<super::resolve::PendingName>,
    /// Further addresses of the resolved name, tried in turn when a
    /// connect fails (at most `resolve::MAX_ADDRS`).
    pub fallback: VecDeque<SocketAddr>,
}

impl Sock {
    pub fn new(owner: Owner, peer_addr: SocketAddr) -> Sock {
        Sock {
            owner,
            peer_addr,
            prefix: Vec::new(),
            held: Vec::new(),
            read_paused: false,
            blocked: false,
            read_eof: false,
            write_shut: false,
            closing: None,
            connect_deadline: None,
            request_deadline: None,
            resolving: None,
            fallback: VecDeque::new(),
        }
    }

    /// Drops the first `n` held bytes. Once none are left the allocation
    /// goes too: an idle flow keeps no read buffer, however busy it was.
    pub fn take_held(&mut self, n: usize) {
        self.held.drain(..n.min(self.held.len()));
        if self.held.is_empty() {
            self.held = Vec::new();
        }
    }
}

/// The far side of a flow, seen from its local socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Far {
    /// Not decided yet (front end still parsing).
    None,
    /// An HTTP/2 stream on a mesh connection (stream `None` while the
    /// connection is not ready).
    Stream {
        conn: ConnId,
        stream: Option<StreamId>,
    },
    /// A direct TCP socket (egress).
    Tcp(super::SockId),
}

/// Where a flow stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// The front end is reading the client's request.
    Front,
    /// Waiting for the tunnel (200) or the TCP connect.
    Opening,
    /// Bytes flow both ways.
    Relay,
}

/// One flow.
#[derive(Debug)]
pub(super) struct Flow {
    pub direction: Direction,
    pub local: super::SockId,
    pub far: Far,
    pub phase: Phase,
    pub front: Option<FrontEnd>,
    pub source: Option<SpiffeId>,
    pub destination: Option<SpiffeId>,
    pub service: String,
    /// Inbound: the export's port (for re-authorization on config swap).
    pub port: u16,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub started: Instant,
    /// When a byte last moved (for the idle timeout).
    pub last_active: Instant,
    /// END_STREAM sent (stream far side).
    pub finished: bool,
    /// The peer sent END_STREAM (stream far side).
    pub peer_finished: bool,
    /// The stream is gone from the connection's point of view.
    pub stream_closed: bool,
    /// Outbound mesh flows: the pool slot held.
    pub pooled: Option<ConnId>,
    /// Outbound mesh flows: the service, port and endpoint, kept to retry
    /// on another connection. Set only through `Node::set_mesh_target`,
    /// which keeps the balancers' flow counts.
    pub mesh_target: Option<(ServiceName, u16, Endpoint)>,
    /// Endpoints whose connection failed this flow before any byte: a
    /// retry leaves them out (each at most once, so bounded by the
    /// service's endpoints).
    pub tried: Vec<Endpoint>,
    /// The flow already retried once after an established connection
    /// under it was lost.
    pub stale_retried: bool,
    /// A plain relayed flow already moved to a second hub once.
    pub hub_retried: bool,
    /// Connections that could not open this flow's stream (a peer's
    /// stream limit); bounded by `outbound::MAX_STREAM_REFUSALS`.
    pub stream_refusals: u8,
    /// Direct, via a hub, or egress, once chosen.
    pub path: Option<FlowPath>,
    /// Outbound flows while opening: the bytes sent as DATA before the
    /// 200, kept (bounded by `early_data_limit`) so that a retry on another
    /// connection replays exactly them; dropped at the 200.
    pub early: Vec<u8>,
    /// Outbound egress flows asked for by name: the name (egress rules
    /// about it are judged again on a configuration swap).
    pub egress_name: Option<DomainName>,
}

impl Flow {
    pub fn new(direction: Direction, local: super::SockId, now: Instant) -> Flow {
        Flow {
            direction,
            local,
            far: Far::None,
            phase: Phase::Front,
            front: None,
            source: None,
            destination: None,
            service: String::new(),
            port: 0,
            bytes_sent: 0,
            bytes_received: 0,
            started: now,
            last_active: now,
            finished: false,
            peer_finished: false,
            stream_closed: false,
            pooled: None,
            mesh_target: None,
            tried: Vec::new(),
            stale_retried: false,
            hub_retried: false,
            stream_refusals: 0,
            path: None,
            early: Vec::new(),
            egress_name: None,
        }
    }
}
