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

use bytes::Bytes;
use rustls::{ClientConfig, ServerConfig};

use crate::control::{Endpoint, RegistrySnapshot, ServicePort};
use crate::front::Refusal;
use crate::h2::{ErrorCode, Event as H2Event, Header, Request, Role, StreamId};
use crate::hbone::{connect_request, ConnectStatus};
use crate::hub::{HubEvent, ALPN_E2E, E2E_AUTHORITY, E2E_INSTANCE_HEADER, E2E_PEER_HEADER};
use crate::identity::SpiffeId;
use crate::policy::{Authority, ServiceName};
use crate::pool::{Checkout, ConnId, PoolKey};
use crate::tls::TlsSession;

use super::event::{CloseReason, FlowPath, HandshakeError, NodeEvent};
use super::flow::Far;
use super::hub_role::event_stream;
use super::mesh::MeshConn;
use super::relay::after;
use super::{FlowId, Node, SockId};

/// Most bytes copied between the outer stream and the inner connection
/// per step (a copy, so bounded).
const MOVE_CHUNK: usize = 64 * 1024;

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
    client_tls: BTreeMap<SpiffeId, Arc<ClientConfig>>,
    /// The server config of inner sessions (ALPN `warren-e2e`).
    server_tls: Option<Arc<ServerConfig>>,
    /// Spreads new pair streams over hubs and instances in turn.
    turn: usize,
}

impl Tunnels {
    /// Forgets the TLS configs (a new identity or trust may have come).
    pub(super) fn clear_tls(&mut self) {
        self.client_tls.clear();
        self.server_tls = None;
    }
}

/// The first value of header `name` in `request`, as text.
fn header<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
        .and_then(|h| core::str::from_utf8(&h.value).ok())
}

/// The pair-stream request naming `peer` (instance `instance`).
pub(super) fn pair_request(peer: &SpiffeId, instance: u64) -> Request {
    let mut req = match Authority::parse(E2E_AUTHORITY) {
        Ok(a) => connect_request(&a, None),
        Err(_) => Request::connect(Bytes::from_static(E2E_AUTHORITY.as_bytes())),
    };
    req.headers.push(Header::new(
        Bytes::from_static(E2E_PEER_HEADER.as_bytes()),
        Bytes::from(peer.as_str().to_string()),
    ));
    req.headers.push(Header::new(
        Bytes::from_static(E2E_INSTANCE_HEADER.as_bytes()),
        Bytes::from(instance.to_string()),
    ));
    req
}

/// The agent a pair-stream request names, if it is one: `Some(None)` for
/// a pair stream whose headers do not parse.
pub(super) fn pair_target(request: &Request) -> Option<Option<(SpiffeId, u64)>> {
    let peer = header(request, E2E_PEER_HEADER)?;
    let parsed = SpiffeId::parse(peer)
        .ok()
        .zip(header(request, E2E_INSTANCE_HEADER).and_then(|i| i.parse::<u64>().ok()));
    Some(parsed)
}

/// The end-to-end endpoints of `sp` in one hub's registry.
fn end_to_end_rows<'a>(
    registry: &'a RegistrySnapshot,
    sp: &'a ServicePort,
) -> impl Iterator<Item = &'a Endpoint> + 'a {
    registry
        .entries
        .iter()
        .filter(move |e| e.end_to_end && &e.service == sp)
        .map(|e| &e.endpoint)
}

impl Node {
    /// Routes flow `f` end to end when a ready hub lists `service:port`
    /// as an end-to-end service: onto the pooled inner connection to the
    /// chosen endpoint, dialling one through the hub if there is none.
    /// Returns false when no hub offers the service end to end.
    pub(super) fn route_end_to_end(&mut self, f: FlowId, service: &ServiceName, port: u16) -> bool {
        let sp = ServicePort {
            service: service.clone(),
            port,
        };
        let mut candidates = Vec::new();
        for (forward, hub, registry) in self.links.registries() {
            let ready = self
                .conns
                .get(&forward)
                .is_some_and(|m| m.ready && !m.closing);
            if ready {
                for ep in end_to_end_rows(registry, &sp) {
                    candidates.push((forward, hub, ep.clone()));
                }
            }
        }
        if candidates.is_empty() {
            return false;
        }
        self.tunnels.turn = self.tunnels.turn.wrapping_add(1);
        let pick = self.tunnels.turn % candidates.len();
        let Some((forward, hub, ep)) = candidates.into_iter().nth(pick) else {
            return false;
        };
        let key = PoolKey {
            source: self.config.identity.id().clone(),
            node: format!("e2e/{hub}/{}", ep.instance),
            destination: ep.identity.clone(),
        };
        let c = match self.pool.checkout(&key) {
            Checkout::Ready(c) | Checkout::Pending(c) => c,
            Checkout::NeedConnection => match self.tunnel_dial(&key, forward, &ep) {
                Some(c) => c,
                None => return false,
            },
        };
        if let Some(flow) = self.flows.get_mut(&f) {
            // The bytes cross the hub (inside the pair stream), and a
            // direct attempt that fell back here must not leave its label.
            flow.path = Some(FlowPath::Hub);
            flow.destination = Some(ep.identity.clone());
            // The CONNECT authority on the inner connection.
            flow.service = format!("{}:{port}", service.as_str());
            flow.mesh_target = None;
            flow.pooled = Some(c);
            flow.far = Far::Stream {
                conn: c,
                stream: None,
            };
        }
        match self.conns.get_mut(&c) {
            Some(m) if m.ready => self.open_stream(f, c),
            Some(m) => m.waiting.push(f),
            None => return false,
        }
        true
    }

    /// A plain CONNECT that flow `f` sent through a hub (on connection
    /// `c`, stream `stream`) was refused. The flow sent no byte yet, so if
    /// a hub's registry now lists the service end to end — it was routed
    /// before the registry said so — it goes end to end instead, once.
    /// Returns whether it did.
    pub(super) fn retry_end_to_end(
        &mut self,
        f: FlowId,
        c: ConnId,
        stream: StreamId,
        ended: bool,
    ) -> bool {
        let Some(flow) = self.flows.get(&f) else {
            return false;
        };
        let plain_via_hub = !flow.stale_retried
            && flow.mesh_target.is_none()
            && flow.direction == super::Direction::Outbound
            && self.links.slot_of_ref(c);
        let target = match Authority::parse(&flow.service) {
            Ok(Authority::Service {
                name,
                namespace,
                port,
            }) => ServiceName::new(name, namespace).ok().map(|s| (s, port)),
            _ => None,
        };
        let Some((service, port)) = target.filter(|_| plain_via_hub) else {
            return false;
        };
        let sp = ServicePort {
            service: service.clone(),
            port,
        };
        let listed = self
            .links
            .registries()
            .iter()
            .any(|(_, _, r)| end_to_end_rows(r, &sp).next().is_some());
        if !listed {
            return false;
        }
        if let Some(m) = self.conns.get_mut(&c) {
            m.streams.remove(&stream);
            if !ended {
                let _ = m.h2.reset(stream, ErrorCode::CANCEL);
            }
            self.dirty.insert(m.sock);
        }
        let local = self.flows.get_mut(&f).map(|flow| {
            flow.stale_retried = true;
            flow.far = Far::None;
            flow.local
        });
        // Bytes sent early went to the refused stream and are gone with
        // it: they go again, first, on the end-to-end stream.
        if let Some(local) = local {
            self.replay_early(f, local);
        }
        if self.route_end_to_end(f, &service, port) {
            return true;
        }
        // The stream is gone either way: the caller's refusal must not
        // touch it again.
        if let Some(flow) = self.flows.get_mut(&f) {
            flow.stream_closed = true;
        }
        false
    }

    /// Opens a pair stream on `forward` towards `ep` and the inner client
    /// connection inside it, registered in the pool with one claimed slot.
    fn tunnel_dial(&mut self, key: &PoolKey, forward: ConnId, ep: &Endpoint) -> Option<ConnId> {
        let client = match self.tunnels.client_tls.get(&ep.identity) {
            Some(cfg) => cfg.clone(),
            None => {
                let cfg = self
                    .config
                    .identity
                    .params()
                    .clone()
                    .with_alpn(vec![ALPN_E2E.to_vec()])
                    .and_then(|p| p.client_config([ep.identity.clone()]))
                    .ok()?;
                self.tunnels
                    .client_tls
                    .insert(ep.identity.clone(), cfg.clone());
                cfg
            }
        };
        let tls = TlsSession::client(client, self.config.tls_buffer_limit).ok()?;
        let outer = self.conns.get_mut(&forward)?;
        let stream = outer
            .h2
            .send_request(&pair_request(&ep.identity, ep.instance), false)
            .ok()?;
        let (outer_sock, hub) = (outer.sock, outer.peer_addr);
        self.dirty.insert(outer_sock);
        let tunnel = Tunnel {
            outer: forward,
            stream,
        };
        let c = ConnId(self.alloc());
        let h2 = self.new_h2(Role::Client);
        let deadline = after(self.now, self.config.timeouts.tls_handshake);
        let sock = self.tunnel_register(tunnel, c, false);
        let mut conn = MeshConn::new(sock, hub, tls, h2, Some(key.clone()), self.now, deadline);
        // Nothing goes into the pair stream before the hub's 200.
        conn.connected = false;
        conn.tunnel = Some(tunnel);
        self.conns.insert(c, conn);
        self.pool.insert(c, key.clone());
        Some(c)
    }

    /// Files a pair stream for inner connection `c`; returns its
    /// placeholder socket.
    fn tunnel_register(&mut self, tunnel: Tunnel, c: ConnId, established: bool) -> SockId {
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

    /// B's side: a CONNECT carrying [`E2E_PEER_HEADER`] on connection `c`.
    /// Accepted (200, inner TLS server inside) only on a reverse connection
    /// to a trusted hub, naming us. Returns false for any other request.
    pub(super) fn tunnel_accept(
        &mut self,
        c: ConnId,
        stream: StreamId,
        request: &Request,
        end_stream: bool,
    ) -> bool {
        let Some(target) = pair_target(request) else {
            return false;
        };
        let hub = self.conns.get(&c).and_then(|m| m.peer.clone());
        let from_hub = self.conns.get(&c).is_some_and(|m| m.reverse)
            && self.links.slot_of_ref(c)
            && hub.as_ref().is_some_and(|h| {
                self.config
                    .hub_links
                    .identities
                    .iter()
                    .any(|p| p.matches(h))
            });
        let status = match target {
            _ if !from_hub || end_stream => Some(ConnectStatus::BadRequest),
            None => Some(ConnectStatus::BadRequest),
            Some((peer, _)) if &peer != self.config.identity.id() => {
                Some(ConnectStatus::Unavailable)
            }
            Some(_) => None,
        };
        let server = match status {
            Some(_) => None,
            None => self.tunnel_server_tls(),
        };
        let tls = server.and_then(|cfg| TlsSession::server(cfg, self.config.tls_buffer_limit).ok());
        let (Some(tls), Some(peer_addr)) = (tls, self.conns.get(&c).map(|m| m.peer_addr)) else {
            let status = status.unwrap_or(ConnectStatus::Unavailable);
            let error = format!(
                "end-to-end pair stream refused with {}",
                status.response().status
            );
            self.emit(NodeEvent::Hub(HubEvent::BadRequest { peer: hub, error }));
            if let Some(m) = self.conns.get_mut(&c) {
                let _ = m.h2.send_response(stream, &status.response(), true);
                self.dirty.insert(m.sock);
            }
            return true;
        };
        let tunnel = Tunnel { outer: c, stream };
        let inner = ConnId(self.alloc());
        let h2 = self.new_h2(Role::Server);
        let deadline = after(self.now, self.config.timeouts.tls_handshake);
        let sock = self.tunnel_register(tunnel, inner, true);
        let mut conn = MeshConn::new(sock, peer_addr, tls, h2, None, self.now, deadline);
        conn.tunnel = Some(tunnel);
        self.conns.insert(inner, conn);
        if let Some(m) = self.conns.get_mut(&c) {
            let response = ConnectStatus::Established.response();
            let _ = m.h2.send_response(stream, &response, false);
            self.dirty.insert(m.sock);
        }
        true
    }

    fn tunnel_server_tls(&mut self) -> Option<Arc<ServerConfig>> {
        if self.tunnels.server_tls.is_none() {
            self.tunnels.server_tls = self
                .config
                .identity
                .params()
                .clone()
                .with_alpn(vec![ALPN_E2E.to_vec()])
                .and_then(|p| p.server_config())
                .ok();
        }
        self.tunnels.server_tls.clone()
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
            let Some(data) = self.conns.get(&outer).map(|m| {
                let d = m.h2.recv_data(stream);
                d.get(..d.len().min(MOVE_CHUNK)).unwrap_or(&[]).to_vec()
            }) else {
                return;
            };
            if data.is_empty() {
                break;
            }
            let Some(m) = self.conns.get_mut(&c) else {
                return;
            };
            if m.closing {
                return self.discard_pair_input(outer, stream);
            }
            let taken = match m.receive(now, &data) {
                Ok(n) => n,
                Err(e) => return self.conn_failed(c, e),
            };
            let inner_sock = m.sock;
            if let Some(o) = self.conns.get_mut(&outer) {
                let _ = o.h2.release_capacity(stream, taken);
                self.dirty.insert(o.sock);
            }
            self.dirty.insert(inner_sock);
            self.dispatch_h2(c);
            if taken < data.len() {
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
            let left = o.h2.recv_data(stream).len();
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
            let Some(chunk) = self.conns.get(&c).map(|m| {
                let d = m.chunk();
                d.get(..d.len().min(MOVE_CHUNK)).unwrap_or(&[]).to_vec()
            }) else {
                return self.tunnel_end(pair, true);
            };
            if chunk.is_empty() {
                break;
            }
            let Some(o) = self.conns.get_mut(&outer) else {
                return;
            };
            let n = o.h2.send_data(stream, &chunk).unwrap_or(0);
            self.dirty.insert(o.sock);
            if n == 0 {
                return;
            }
            if let Some(m) = self.conns.get_mut(&c) {
                m.consume(n);
            }
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
                let left = o.h2.recv_data(stream).len();
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
