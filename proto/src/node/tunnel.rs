//! End-to-end mode (see [`crate::hub`]): a mesh connection whose transport
//! is an HTTP/2 stream through a hub instead of a socket.
//!
//! Agent A opens a *pair stream* on its forward connection to a hub; the
//! hub relays it to agent B's reverse connection. Inside it A and B run an
//! ordinary mesh connection (`MeshConn`: TLS with ALPN `warren-e2e`, then
//! HTTP/2), so everything the node already does for mesh connections —
//! handshake deadline, pool, waiting flows, `open_stream`, `on_response`,
//! inbound authorization with the verified peer, relaying flows — works
//! unchanged on it. Only the transport differs:
//!
//! - The inner connection gets a placeholder `SockId` the host never hears
//!   of. Where the node would announce a socket's ciphertext chunk
//!   (`refresh`), the chunk goes as DATA on the pair stream instead, as
//!   much as the stream's flow control takes; the rest stays in the inner
//!   connection's one chunk and the next goes once it drained (the outer
//!   `Writable` event retries). Memory: one chunk plus the outer stream's
//!   send buffer.
//! - DATA arriving on the pair stream stays in the outer connection's
//!   HTTP/2 buffer until the inner TLS session took it; only then is the
//!   outer stream's window credited. The inner connection's own flow
//!   control bounds what its flows buffer, so backpressure runs end to end
//!   from B's target socket through the hub to A's client.
//! - END_STREAM on the pair stream is the transport's EOF; the inner
//!   connection's end (after close_notify went out) is our END_STREAM. A
//!   reset pair stream, or the end of the outer connection, is a lost
//!   transport: the inner connection's flows get the usual
//!   connection-lost handling (retry before 200, close after).
//!
//! The pair stream keeps its record until the outer stream is closed, so
//! bytes arriving after the inner connection ended are released, never
//! left holding the outer connection's window.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};

use crate::front::Refusal;
use crate::h2::{ErrorCode, Event as H2Event, StreamId};
use crate::hbone::ConnectStatus;
use crate::hub::HubEvent;
use crate::identity::SpiffeId;
use crate::pool::ConnId;

use super::event::{CloseReason, HandshakeError, NodeEvent};
use super::hub_role::event_stream;
use super::mesh::MeshConn;
use super::{FlowId, Node, SockId};

/// Most bytes copied between the outer stream and the inner connection
/// per step (a copy, so bounded). 64 KiB less a frame header: sent
/// straight into TLS (`MeshConn::send_data`), one step is one DATA frame
/// filling four whole 16 KiB records at the default TLS buffer limit,
/// instead of four records and a 9-byte one.
const MOVE_CHUNK: usize = 64 * 1024 - crate::h2::frame::HEADER_LEN;

/// Where an inner connection's ciphertext travels: a stream on another
/// mesh connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Tunnel {
    /// The outer connection (a hub link).
    pub outer: ConnId,
    /// The pair stream on it.
    pub stream: StreamId,
}

/// One pair stream.
#[derive(Clone, Copy, Debug)]
struct PairStream {
    tunnel: Tunnel,
    /// The inner connection; `None` once it ended (the stream drains).
    inner: Option<ConnId>,
    /// The inner connection's placeholder socket.
    sock: SockId,
    /// The pair stream was answered 200 (always true on B's side).
    established: bool,
    /// The peer ended the pair stream.
    peer_finished: bool,
    /// EOF was passed into the inner connection.
    eof_delivered: bool,
    /// The inner handshake completion was reported.
    reported: bool,
}

/// Every pair stream of the node, and the TLS configs of inner sessions.
#[derive(Debug, Default)]
pub(super) struct Tunnels {
    /// By the flow id the pair stream has on its outer connection.
    pairs: BTreeMap<FlowId, PairStream>,
    /// Inner connections' placeholder sockets.
    by_sock: BTreeMap<SockId, FlowId>,
    /// Client configs per expected peer identity (ALPN `warren-e2e`).
    pub(super) client_tls: BTreeMap<SpiffeId, Arc<ClientConfig>>,
    /// The server config of inner sessions (ALPN `warren-e2e`).
    pub(super) server_tls: Option<Arc<ServerConfig>>,
    /// Spreads new pair streams over hubs and instances in turn.
    pub(super) turn: usize,
}

impl Tunnels {
    /// Forgets the TLS configs (a new identity or trust may have come).
    pub(super) fn clear_tls(&mut self) {
        self.client_tls.clear();
        self.server_tls = None;
    }
}

/// Connections `a` and `b` of `conns`, both mutable (`None` if either is
/// missing or they are the same): a tunnel's outer and inner connection,
/// so bytes move from one's buffer into the other without a copy between.
fn conn_pair_mut(
    conns: &mut BTreeMap<ConnId, MeshConn>,
    a: ConnId,
    b: ConnId,
) -> Option<(&mut MeshConn, &mut MeshConn)> {
    if a == b {
        return None;
    }
    let (low, high) = if a < b { (a, b) } else { (b, a) };
    let mut range = conns.range_mut(low..=high);
    let (first_id, first) = range.next()?;
    let (last_id, last) = range.next_back()?;
    if (*first_id, *last_id) != (low, high) {
        return None;
    }
    Some(if a < b { (first, last) } else { (last, first) })
}

impl Node {
    /// Files a pair stream for inner connection `c`; returns its
    /// placeholder socket.
    pub(super) fn tunnel_register(
        &mut self,
        tunnel: Tunnel,
        c: ConnId,
        established: bool,
    ) -> SockId {
        let pair = FlowId(self.alloc());
        let sock = SockId(self.alloc());
        if let Some(m) = self.conns.get_mut(&tunnel.outer) {
            m.streams.insert(tunnel.stream, pair);
        }
        self.tunnels.pairs.insert(
            pair,
            PairStream {
                tunnel,
                inner: Some(c),
                sock,
                established,
                peer_finished: false,
                eof_delivered: false,
                reported: false,
            },
        );
        self.tunnels.by_sock.insert(sock, pair);
        sock
    }

    /// Takes the HTTP/2 events of pair streams. Returns whether it took
    /// `event`.
    pub(super) fn tunnel_h2_event(&mut self, c: ConnId, event: &H2Event) -> bool {
        let Some(pair) = event_stream(event).and_then(|st| self.stream_flow(c, st)) else {
            return false;
        };
        if !self.tunnels.pairs.contains_key(&pair) {
            return false;
        }
        match event {
            H2Event::Response {
                response,
                end_stream,
                ..
            } => self.pair_answered(pair, response.status, *end_stream),
            H2Event::Data { .. } => self.tunnel_pull(pair),
            H2Event::Writable { .. } => self.tunnel_push(pair),
            H2Event::PeerFinished { .. } | H2Event::Trailers { .. } => {
                if let Some(p) = self.tunnels.pairs.get_mut(&pair) {
                    p.peer_finished = true;
                }
                self.tunnel_pull(pair);
            }
            H2Event::StreamClosed { .. } => {
                if let Some(p) = self.tunnels.pairs.get_mut(&pair) {
                    p.peer_finished = true;
                }
                self.tunnel_pull(pair);
                self.tunnel_end(pair, false);
            }
            H2Event::Reset { .. } => self.tunnel_end(pair, false),
            _ => {}
        }
        true
    }

    /// A's side: the hub answered the pair stream.
    fn pair_answered(&mut self, pair: FlowId, status: u16, end_stream: bool) {
        let Some(p) = self.tunnels.pairs.get_mut(&pair) else {
            return;
        };
        let inner = p.inner;
        if status == 200 {
            p.established = true;
            p.peer_finished |= end_stream;
            if let Some(m) = inner.and_then(|c| self.conns.get_mut(&c)) {
                m.connected = true;
                self.dirty.insert(m.sock);
            }
            return;
        }
        // Refused: the flows waiting for the inner connection hear the
        // hub's answer itself (no other hub path would be different).
        let waiting = inner
            .and_then(|c| self.conns.get_mut(&c))
            .map(|m| core::mem::take(&mut m.waiting))
            .unwrap_or_default();
        let refusal = match ConnectStatus::from_code(status) {
            Ok(ConnectStatus::Denied) => Refusal::Denied {
                rule: "hub policy".into(),
            },
            Ok(ConnectStatus::Unavailable) => Refusal::Unreachable,
            _ => Refusal::GeneralFailure,
        };
        for f in waiting {
            self.refuse(f, refusal.clone(), CloseReason::Refused { status });
        }
        self.tunnel_end(pair, !end_stream);
    }

    /// The placeholder socket `sock` may have output or be done; returns
    /// false if it is no inner connection's.
    pub(super) fn tunnel_refresh(&mut self, sock: SockId) -> bool {
        let Some(&pair) = self.tunnels.by_sock.get(&sock) else {
            return false;
        };
        self.tunnel_pull(pair);
        self.tunnel_push(pair);
        true
    }

    /// Feeds what arrived on the pair stream into the inner connection,
    /// crediting the outer window with what its TLS took; delivers EOF
    /// once the peer finished and every byte went in.
    fn tunnel_pull(&mut self, pair: FlowId) {
        let Some(p) = self.tunnels.pairs.get(&pair).copied() else {
            return;
        };
        let Tunnel { outer, stream } = p.tunnel;
        let Some(c) = p.inner.filter(|c| self.conns.contains_key(c)) else {
            // Nobody reads any more: release what came, keep the window open.
            return self.discard_pair_input(outer, stream);
        };
        let now = self.now;
        loop {
            // The outer stream's pieces go straight into the inner TLS (no
            // copy of them first), up to `MOVE_CHUNK` per round, so the
            // inner connection's events are handled between rounds.
            let Some((o, m)) = conn_pair_mut(&mut self.conns, outer, c) else {
                return;
            };
            if m.closing {
                return self.discard_pair_input(outer, stream);
            }
            let (mut offered, mut taken) = (0usize, 0usize);
            let mut failure = None;
            for piece in o.h2.recv_pieces(stream) {
                let piece = piece
                    .get(..MOVE_CHUNK.saturating_sub(offered))
                    .unwrap_or(piece);
                offered += piece.len();
                match m.receive(now, piece) {
                    Ok(n) => taken += n,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
                if taken < offered || offered >= MOVE_CHUNK {
                    break;
                }
            }
            if offered == 0 {
                break;
            }
            let inner_sock = m.sock;
            if taken > 0 {
                let _ = o.h2.release_capacity(stream, taken);
                self.dirty.insert(o.sock);
            }
            if let Some(e) = failure {
                return self.conn_failed(c, e);
            }
            self.dirty.insert(inner_sock);
            self.dispatch_h2(c);
            if taken < offered {
                break;
            }
        }
        self.report_handshake(pair);
        let drained = self
            .conns
            .get(&outer)
            .is_none_or(|m| m.h2.recv_data(stream).is_empty());
        if p.peer_finished && !p.eof_delivered && drained {
            if let Some(q) = self.tunnels.pairs.get_mut(&pair) {
                q.eof_delivered = true;
            }
            if let Some(m) = self.conns.get_mut(&c) {
                // A TLS error here only says the peer did not close cleanly.
                let _ = m.receive_eof(now);
            }
            self.dispatch_h2(c);
            self.conn_finish(c);
        }
    }

    /// Releases everything received on a pair stream nobody reads.
    fn discard_pair_input(&mut self, outer: ConnId, stream: StreamId) {
        if let Some(o) = self.conns.get_mut(&outer) {
            let left = o.h2.recv_len(stream);
            if left > 0 {
                let _ = o.h2.release_capacity(stream, left);
                self.dirty.insert(o.sock);
            }
        }
    }

    /// Reports an inner handshake once it completed (tests count them;
    /// operators see which agent pairs run end to end).
    fn report_handshake(&mut self, pair: FlowId) {
        let Some(p) = self.tunnels.pairs.get(&pair).copied() else {
            return;
        };
        let Some(m) = p.inner.and_then(|c| self.conns.get(&c)) else {
            return;
        };
        if p.reported || m.peer.is_none() {
            return;
        }
        let event = HubEvent::EndToEndUp {
            peer: m.peer.clone(),
            hub: m.peer_addr,
            client: m.pool_key.is_some(),
        };
        if let Some(q) = self.tunnels.pairs.get_mut(&pair) {
            q.reported = true;
        }
        self.emit(NodeEvent::Hub(event));
    }

    /// Moves the inner connection's ciphertext into the pair stream as far
    /// as its flow control allows; once the inner connection ended and
    /// everything went, ends the pair stream.
    fn tunnel_push(&mut self, pair: FlowId) {
        let Some(p) = self.tunnels.pairs.get(&pair).copied() else {
            return;
        };
        let Some(c) = p.inner else {
            return;
        };
        if !self.conns.contains_key(&c) {
            // The inner connection was dropped (handshake timeout, lost).
            return self.tunnel_end(pair, true);
        }
        if !p.established {
            return;
        }
        let Tunnel { outer, stream } = p.tunnel;
        loop {
            self.fill_conn(c);
            if !self.conns.contains_key(&c) {
                return self.tunnel_end(pair, true);
            }
            // The inner ciphertext goes from its chunk straight into the
            // outer stream's TLS (no copy of it first).
            let Some((o, m)) = conn_pair_mut(&mut self.conns, outer, c) else {
                return;
            };
            let chunk = m.chunk();
            if chunk.is_empty() {
                break;
            }
            let chunk = chunk.get(..MOVE_CHUNK).unwrap_or(chunk);
            let n = o.send_data(stream, chunk).unwrap_or(0);
            self.dirty.insert(o.sock);
            if n == 0 {
                return;
            }
            m.consume(n);
        }
        let done = self.conns.get(&c).is_some_and(|m| m.closing);
        if !done {
            return;
        }
        // The inner connection ended and its last bytes (close_notify)
        // went: END_STREAM, and the pair stream drains until closed.
        self.conns.remove(&c);
        self.tunnels.by_sock.remove(&p.sock);
        if let Some(q) = self.tunnels.pairs.get_mut(&pair) {
            q.inner = None;
        }
        if let Some(o) = self.conns.get_mut(&outer) {
            let _ = o.h2.finish(stream);
            self.dirty.insert(o.sock);
        }
        self.discard_pair_input(outer, stream);
    }

    /// Ends a pair stream: it leaves its outer connection (reset when
    /// `reset`, else whatever it still holds is released) and the inner
    /// connection, if any, is lost.
    fn tunnel_end(&mut self, pair: FlowId, reset: bool) {
        let Some(p) = self.tunnels.pairs.remove(&pair) else {
            return;
        };
        self.tunnels.by_sock.remove(&p.sock);
        let Tunnel { outer, stream } = p.tunnel;
        if let Some(o) = self.conns.get_mut(&outer) {
            o.streams.remove(&stream);
            if reset {
                let _ = o.h2.reset(stream, ErrorCode::CANCEL);
            } else {
                let left = o.h2.recv_len(stream);
                let _ = o.h2.release_capacity(stream, left);
            }
            self.dirty.insert(o.sock);
        }
        if let Some(c) = p.inner {
            let handshaking = self.conns.get(&c).is_some_and(|m| m.tls.is_handshaking());
            self.conn_lost(c, handshaking.then_some(HandshakeError::Transport));
        }
    }

    /// End-to-end pair streams this agent holds (either end), each
    /// carrying one inner connection.
    pub fn pair_stream_count(&self) -> usize {
        self.tunnels.pairs.len()
    }

    /// Connection `c` ended: the pair streams it carried are lost.
    pub(super) fn tunnels_outer_finished(&mut self, c: ConnId) {
        let lost: Vec<FlowId> = self
            .tunnels
            .pairs
            .iter()
            .filter(|(_, p)| p.tunnel.outer == c)
            .map(|(f, _)| *f)
            .collect();
        for pair in lost {
            self.tunnel_end(pair, false);
        }
    }
}
