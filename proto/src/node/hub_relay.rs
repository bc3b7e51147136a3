//! Stream ↔ stream relay: a flow from agent A's forward connection to agent
//! B's reverse connection. The relay owns no buffer: bytes wait in the
//! receiving leg's HTTP/2 buffer and are released (crediting the sender's
//! window) only as the other leg's `send_data` accepts them, so the hub
//! holds at most one stream window per direction per flow. End-to-end pair
//! streams (see [`crate::hub`]) are relays like any other, authorized per
//! agent pair instead of per service.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::balance::Balancer;
use crate::control::{Endpoint, ServicePort};
use crate::h2::{ErrorCode, Event as H2Event, Header, Request, StreamId};
use crate::hbone::{connect_request, parse_connect, ConnectStatus};
use crate::hub::{DESTINATION_HEADER, E2E_SERVICE_LABEL, SOURCE_HEADER};
use crate::identity::SpiffeId;
use crate::policy::{Authority, AuthzRequest};
use crate::pool::ConnId;
use crate::registry::AgentKey;
use crate::time::Instant;

use super::e2e::{pair_request, pair_target};
use super::event::{CloseReason, Direction, FlowPath, MetricKey, NodeEvent};
use super::mesh::MeshConn;
use super::{FlowId, Node};

/// Most bytes moved between legs per step (a copy, so bounded). 64 KiB
/// less a frame header: sent straight into TLS (`MeshConn::send_data`),
/// one step is one DATA frame filling four whole 16 KiB records at the
/// default TLS buffer limit, instead of four records and a 9-byte one.
const MOVE_CHUNK: usize = 64 * 1024 - crate::h2::frame::HEADER_LEN;

/// One side of a relayed flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Leg {
    pub conn: ConnId,
    pub stream: StreamId,
    /// The peer ended its side (END_STREAM seen).
    pub peer_finished: bool,
    /// We ended our side towards this peer.
    pub finished: bool,
    /// The stream is gone.
    pub closed: bool,
}

impl Leg {
    fn new(conn: ConnId, stream: StreamId) -> Leg {
        Leg {
            conn,
            stream,
            peer_finished: false,
            finished: false,
            closed: false,
        }
    }
}

/// A relayed flow: `a` is the originator's stream, `b` the endpoint's.
#[derive(Debug)]
pub(super) struct Relay {
    pub a: Leg,
    pub b: Leg,
    pub source: SpiffeId,
    pub endpoint: (ServicePort, Endpoint),
    pub service: String,
    pub established: bool,
    pub started: Instant,
    /// The endpoint was chosen by the service's balancer (not an
    /// end-to-end pair stream, which names its agent itself).
    pub balanced: bool,
    /// Bytes A → B and B → A.
    pub forwarded: u64,
    pub returned: u64,
}

impl Relay {
    fn key(&self) -> MetricKey {
        MetricKey {
            source: Some(self.source.clone()),
            destination: Some(self.endpoint.1.identity.clone()),
            service: self.service.clone(),
            direction: Direction::Relayed,
        }
    }
}

/// The ready reverse connection of the agent whose forward connection is
/// `instance`: same identity, same peer address.
fn reverse_of(
    conns: &BTreeMap<ConnId, MeshConn>,
    reverse: &BTreeSet<ConnId>,
    identity: &SpiffeId,
    instance: u64,
) -> Option<ConnId> {
    let forward = conns.get(&ConnId(instance)).map(|m| m.peer_addr.ip());
    reverse.iter().copied().find(|r| {
        conns.get(r).is_some_and(|m| {
            m.ready
                && !m.closing
                && m.h2.can_open_stream()
                && m.peer.as_ref() == Some(identity)
                && Some(m.peer_addr.ip()) == forward
        })
    })
}

impl Node {
    /// A CONNECT on a forward connection: authorize, pick an endpoint,
    /// open the second leg.
    pub(super) fn relay_open(
        &mut self,
        c: ConnId,
        stream: StreamId,
        request: &Request,
        end_stream: bool,
    ) {
        if let Some(target) = pair_target(request) {
            return self.relay_open_pair(c, stream, target, end_stream);
        }
        let (source, source_ip) = match self.conns.get(&c) {
            Some(m) => (m.peer.clone(), m.peer_addr.ip()),
            None => return,
        };
        let authority = parse_connect(request).ok().and_then(|a| a.service_port());
        let text =
            String::from_utf8_lossy(request.authority.as_deref().unwrap_or(b"")).into_owned();
        let (Some((service, port)), Some(source)) = (authority, source) else {
            self.hub_answer(c, stream, ConnectStatus::BadRequest);
            return self.relay_refused(&text, None, CloseReason::BadRequest);
        };
        let label = format!("{}:{port}", service.as_str());
        let decision = self.config.authz.evaluate(&AuthzRequest {
            source: &source,
            source_addr: Some(source_ip),
            service: service.as_str(),
            port,
        });
        if !decision.allowed {
            self.hub_answer(c, stream, ConnectStatus::for_refusal(&decision));
            self.emit(NodeEvent::PolicyDenied {
                decision: decision.clone(),
                source: Some(source.clone()),
                destination: label.clone(),
            });
            return self.relay_refused(&label, Some(source), CloseReason::Denied(decision));
        }
        let sp = ServicePort { service, port };
        let Some((endpoint, b_conn)) = self.relay_choose(&sp, &source) else {
            self.hub_answer(c, stream, ConnectStatus::Unavailable);
            return self.relay_refused(&label, Some(source), CloseReason::Unreachable);
        };
        let mut req = Request::connect(Bytes::from(label.clone()));
        if let Ok(a) = Authority::parse(&label) {
            req = connect_request(&a, None);
        }
        req.headers.push(Header::new(
            Bytes::from_static(SOURCE_HEADER.as_bytes()),
            Bytes::from(source.as_str().to_string()),
        ));
        let opened = self
            .conns
            .get_mut(&b_conn)
            .map(|m| (m.h2.send_request(&req, false), m.sock));
        let b_stream = match opened {
            Some((Ok(st), sock)) => {
                self.dirty.insert(sock);
                st
            }
            _ => {
                self.hub_answer(c, stream, ConnectStatus::Unavailable);
                return self.relay_refused(&label, Some(source), CloseReason::Unreachable);
            }
        };
        let f = FlowId(self.alloc());
        let mut a = Leg::new(c, stream);
        a.peer_finished = end_stream;
        if let Some(b) = self.hub.balancers.get_mut(&sp) {
            b.flow_started(&endpoint);
        }
        self.hub.relays.insert(
            f,
            Relay {
                a,
                b: Leg::new(b_conn, b_stream),
                source,
                endpoint: (sp, endpoint),
                service: label,
                established: false,
                started: self.now,
                balanced: true,
                forwarded: 0,
                returned: 0,
            },
        );
        for (conn, st) in [(c, stream), (b_conn, b_stream)] {
            if let Some(m) = self.conns.get_mut(&conn) {
                m.streams.insert(st, f);
            }
        }
    }

    /// The endpoint for a new flow and the reverse connection that reaches
    /// it; endpoints without one are passed over.
    fn relay_choose(&mut self, sp: &ServicePort, source: &SpiffeId) -> Option<(Endpoint, ConnId)> {
        let role = self.config.hub.as_ref()?;
        let (strategy, ejection, seed) = (role.strategy, role.ejection, role.seed);
        let registry = &self.hub.registry;
        let balancer = self
            .hub
            .balancers
            .entry(sp.clone())
            .or_insert_with(|| Balancer::new(strategy, ejection, seed));
        balancer.set_endpoints(registry.endpoints(sp).cloned());
        let mut tried = Vec::new();
        while let Some(ep) = balancer.choose(self.now, source, &tried) {
            match reverse_of(&self.conns, &self.hub.reverse, &ep.identity, ep.instance) {
                Some(r) => return Some((ep, r)),
                None => tried.push(ep),
            }
        }
        None
    }

    /// An end-to-end pair stream on a forward connection: authorize the
    /// pair (A may reach at least one service the named agent announced),
    /// find the agent's reverse connection, open the second leg.
    fn relay_open_pair(
        &mut self,
        c: ConnId,
        stream: StreamId,
        target: Option<(SpiffeId, u64)>,
        end_stream: bool,
    ) {
        let label = E2E_SERVICE_LABEL;
        let (source, source_ip) = match self.conns.get(&c) {
            Some(m) => (m.peer.clone(), m.peer_addr.ip()),
            None => return,
        };
        let (Some((peer, instance)), Some(source)) = (target, source) else {
            self.hub_answer(c, stream, ConnectStatus::BadRequest);
            return self.relay_refused(label, None, CloseReason::BadRequest);
        };
        let key = AgentKey {
            identity: peer.clone(),
            instance,
        };
        let services: Vec<ServicePort> = self.hub.registry.services_of(&key).cloned().collect();
        let mut allowed = None;
        let mut denial = None;
        for sp in services {
            let decision = self.config.authz.evaluate(&AuthzRequest {
                source: &source,
                source_addr: Some(source_ip),
                service: sp.service.as_str(),
                port: sp.port,
            });
            if decision.allowed {
                allowed = Some(sp);
                break;
            }
            denial = Some(decision);
        }
        let sp = match (allowed, denial) {
            (Some(sp), _) => sp,
            (None, Some(decision)) => {
                self.hub_answer(c, stream, ConnectStatus::for_refusal(&decision));
                self.emit(NodeEvent::PolicyDenied {
                    decision: decision.clone(),
                    source: Some(source.clone()),
                    destination: format!("{label} {peer}"),
                });
                return self.relay_refused(label, Some(source), CloseReason::Denied(decision));
            }
            // The agent announced nothing (unknown, gone, or withdrawn).
            (None, None) => {
                self.hub_answer(c, stream, ConnectStatus::Unavailable);
                return self.relay_refused(label, Some(source), CloseReason::Unreachable);
            }
        };
        let reverse = reverse_of(&self.conns, &self.hub.reverse, &peer, instance);
        let opened = reverse.and_then(|b| {
            let m = self.conns.get_mut(&b)?;
            let st =
                m.h2.send_request(&pair_request(&peer, instance), false)
                    .ok()?;
            Some((b, st, m.sock))
        });
        let Some((b_conn, b_stream, b_sock)) = opened else {
            self.hub_answer(c, stream, ConnectStatus::Unavailable);
            return self.relay_refused(label, Some(source), CloseReason::Unreachable);
        };
        self.dirty.insert(b_sock);
        let f = FlowId(self.alloc());
        let mut a = Leg::new(c, stream);
        a.peer_finished = end_stream;
        let endpoint = Endpoint {
            identity: peer,
            instance,
            hbone: None,
        };
        self.hub.relays.insert(
            f,
            Relay {
                a,
                b: Leg::new(b_conn, b_stream),
                source,
                endpoint: (sp, endpoint),
                service: label.to_string(),
                established: false,
                started: self.now,
                balanced: false,
                forwarded: 0,
                returned: 0,
            },
        );
        for (conn, st) in [(c, stream), (b_conn, b_stream)] {
            if let Some(m) = self.conns.get_mut(&conn) {
                m.streams.insert(st, f);
            }
        }
    }

    /// The access-log line and counters of a relay refused at once.
    fn relay_refused(&mut self, service: &str, source: Option<SpiffeId>, reason: CloseReason) {
        let f = FlowId(self.alloc());
        let key = MetricKey {
            source: source.clone(),
            destination: None,
            service: service.to_string(),
            direction: Direction::Relayed,
        };
        self.metrics.entry(key.clone()).or_default().closed += 1;
        *self.closes.entry((key, reason.label())).or_default() += 1;
        self.emit(NodeEvent::FlowClosed {
            flow: f,
            direction: Direction::Relayed,
            source,
            destination: None,
            service: service.to_string(),
            bytes_sent: 0,
            bytes_received: 0,
            duration: core::time::Duration::ZERO,
            reason,
            path: Some(FlowPath::Hub),
        });
    }

    /// An HTTP/2 event on a relay leg.
    pub(super) fn relay_event(&mut self, f: FlowId, c: ConnId, event: &H2Event) {
        let Some(relay) = self.hub.relays.get_mut(&f) else {
            return;
        };
        let on_a = relay.a.conn == c;
        let leg = if on_a { &mut relay.a } else { &mut relay.b };
        match event {
            H2Event::Response {
                response,
                end_stream,
                ..
            } if !on_a => {
                leg.peer_finished |= *end_stream;
                let status = response.status;
                self.relay_response(f, status);
            }
            H2Event::Data { .. } | H2Event::Writable { .. } => self.relay_pump(f),
            H2Event::PeerFinished { .. } | H2Event::Trailers { .. } => {
                leg.peer_finished = true;
                self.relay_pump(f);
            }
            H2Event::StreamClosed { .. } => {
                leg.peer_finished = true;
                leg.closed = true;
                self.relay_pump(f);
            }
            H2Event::Reset { code, .. } => {
                leg.closed = true;
                let established = relay.established;
                if !on_a && !established {
                    // B gave up before answering: A hears 503.
                    let (ac, ast) = (relay.a.conn, relay.a.stream);
                    self.hub_answer(ac, ast, ConnectStatus::Unavailable);
                    if let Some(r) = self.hub.relays.get_mut(&f) {
                        r.a.closed = true;
                    }
                }
                self.relay_close(f, CloseReason::StreamReset(*code), true);
            }
            _ => {}
        }
    }

    /// B answered the CONNECT.
    fn relay_response(&mut self, f: FlowId, status: u16) {
        let Some(relay) = self.hub.relays.get_mut(&f) else {
            return;
        };
        let (ac, ast) = (relay.a.conn, relay.a.stream);
        let sp = relay.endpoint.0.clone();
        let ep = relay.endpoint.1.clone();
        let balanced = relay.balanced;
        match ConnectStatus::from_code(status) {
            Ok(ConnectStatus::Established) => {
                relay.established = true;
                let key = relay.key();
                let event = NodeEvent::FlowOpened {
                    flow: f,
                    direction: Direction::Relayed,
                    source: Some(relay.source.clone()),
                    destination: Some(ep.identity.clone()),
                    service: relay.service.clone(),
                    path: Some(FlowPath::Hub),
                };
                let mut ok = ConnectStatus::Established.response();
                ok.headers.push(Header::new(
                    Bytes::from_static(DESTINATION_HEADER.as_bytes()),
                    Bytes::from(ep.identity.as_str().to_owned()),
                ));
                if let Some(m) = self.conns.get_mut(&ac) {
                    let _ = m.h2.send_response(ast, &ok, false);
                    self.dirty.insert(m.sock);
                }
                if let Some(b) = self.hub.balancers.get_mut(&sp).filter(|_| balanced) {
                    b.connect_succeeded(&ep);
                }
                self.metrics.entry(key).or_default().opened += 1;
                self.emit(event);
                self.relay_pump(f);
            }
            answer => {
                let back = match answer {
                    Ok(ConnectStatus::Denied) => ConnectStatus::Denied,
                    Ok(ConnectStatus::BadRequest) => ConnectStatus::BadRequest,
                    _ => ConnectStatus::Unavailable,
                };
                if back == ConnectStatus::Unavailable {
                    let now = self.now;
                    if let Some(b) = self.hub.balancers.get_mut(&sp).filter(|_| balanced) {
                        b.connect_failed(now, &ep);
                    }
                }
                self.hub_answer(ac, ast, back);
                if let Some(r) = self.hub.relays.get_mut(&f) {
                    r.a.closed = true;
                }
                self.relay_close(f, CloseReason::Refused { status }, true);
            }
        }
    }

    /// Moves what both legs can take, passes half-closes on, and ends the
    /// relay once both streams are done.
    pub(super) fn relay_pump(&mut self, f: FlowId) {
        let Some(relay) = self.hub.relays.get(&f) else {
            return;
        };
        if !relay.established {
            return;
        }
        let (a, b) = (relay.a, relay.b);
        loop {
            let forwarded = self.relay_move(a, b);
            let returned = self.relay_move(b, a);
            if let Some(r) = self.hub.relays.get_mut(&f) {
                r.forwarded += forwarded as u64;
                r.returned += returned as u64;
                let key = r.key();
                let counters = self.metrics.entry(key).or_default();
                counters.bytes_sent += forwarded as u64;
                counters.bytes_received += returned as u64;
            }
            if forwarded == 0 && returned == 0 {
                break;
            }
        }
        self.relay_half_close(f, true);
        self.relay_half_close(f, false);
        let Some(relay) = self.hub.relays.get(&f) else {
            return;
        };
        let drained = |leg: &Leg| {
            self.conns
                .get(&leg.conn)
                .is_none_or(|m| m.h2.recv_data(leg.stream).is_empty())
        };
        let done = |leg: &Leg| leg.closed || (leg.finished && leg.peer_finished);
        if done(&relay.a) && done(&relay.b) && drained(&relay.a) && drained(&relay.b) {
            self.relay_close(f, CloseReason::Done, false);
        }
    }

    /// Copies from `from`'s receive buffer into `to`'s stream; returns how
    /// much `to` accepted (and was released on `from`).
    fn relay_move(&mut self, from: Leg, to: Leg) -> usize {
        if to.finished || to.closed {
            return 0;
        }
        // Gathered across the buffer's pieces, so the other leg gets one
        // large write (this copy was made anyway).
        let Some(chunk) = self
            .conns
            .get(&from.conn)
            .map(|m| m.h2.recv_copy(from.stream, MOVE_CHUNK))
        else {
            return 0;
        };
        if chunk.is_empty() {
            return 0;
        }
        let Some(m) = self.conns.get_mut(&to.conn) else {
            return 0;
        };
        let n = m.send_data(to.stream, &chunk).unwrap_or(0);
        self.dirty.insert(m.sock);
        // Injected bug: a partial send releases the whole chunk, so what
        // the other leg did not take is lost.
        #[cfg(feature = "sim-bugs")]
        let released = if self.injected(crate::sim_bugs::Bug::HubRelayDropsUnsent) && n > 0 {
            chunk.len()
        } else {
            n
        };
        #[cfg(not(feature = "sim-bugs"))]
        let released = n;
        if n > 0 {
            if let Some(src) = self.conns.get_mut(&from.conn) {
                let _ = src.h2.release_capacity(from.stream, released);
                self.dirty.insert(src.sock);
            }
        }
        n
    }

    /// Ends our side of one leg once the other peer finished and its bytes
    /// all went across (`towards_b`: A's END_STREAM passed on to B).
    fn relay_half_close(&mut self, f: FlowId, towards_b: bool) {
        let Some(relay) = self.hub.relays.get_mut(&f) else {
            return;
        };
        let (from, to) = if towards_b {
            (relay.a, &mut relay.b)
        } else {
            (relay.b, &mut relay.a)
        };
        if to.finished || to.closed || !from.peer_finished {
            return;
        }
        let drained = self
            .conns
            .get(&from.conn)
            .is_none_or(|m| m.h2.recv_data(from.stream).is_empty());
        if !drained {
            return;
        }
        to.finished = true;
        if let Some(m) = self.conns.get_mut(&to.conn) {
            let _ = m.h2.finish(to.stream);
            self.dirty.insert(m.sock);
        }
    }

    /// Ends a relay: legs still open are reset when `reset`, the streams
    /// leave their connections, the access-log event goes out.
    pub(super) fn relay_close(&mut self, f: FlowId, reason: CloseReason, reset: bool) {
        let Some(relay) = self.hub.relays.remove(&f) else {
            return;
        };
        for leg in [relay.a, relay.b] {
            if let Some(m) = self.conns.get_mut(&leg.conn) {
                m.streams.remove(&leg.stream);
                if reset && !leg.closed {
                    let _ = m.h2.reset(leg.stream, ErrorCode::CANCEL);
                } else if !reset {
                    // Done: whatever is left unread is dropped with the stream.
                    let left = m.h2.recv_len(leg.stream);
                    let _ = m.h2.release_capacity(leg.stream, left);
                }
                self.dirty.insert(m.sock);
            }
        }
        let balancer = self.hub.balancers.get_mut(&relay.endpoint.0);
        if let Some(b) = balancer.filter(|_| relay.balanced) {
            b.flow_ended(&relay.endpoint.1);
        }
        let key = relay.key();
        self.metrics.entry(key.clone()).or_default().closed += 1;
        *self.closes.entry((key, reason.label())).or_default() += 1;
        self.emit(NodeEvent::FlowClosed {
            flow: f,
            direction: Direction::Relayed,
            source: Some(relay.source),
            destination: Some(relay.endpoint.1.identity),
            service: relay.service,
            bytes_sent: relay.forwarded,
            bytes_received: relay.returned,
            duration: self.now.saturating_duration_since(relay.started),
            reason,
            path: Some(FlowPath::Hub),
        });
    }
}

impl Node {
    /// The most payload bytes any one relayed flow holds now: what each
    /// leg received and the other leg has not taken yet. The hub's own
    /// stream window bounds each leg, so a flow holds at most two windows
    /// (the simulator checks this after every input).
    pub fn relay_held_max(&self) -> usize {
        let held = |leg: &Leg| {
            self.conns
                .get(&leg.conn)
                .map_or(0, |m| m.h2.recv_len(leg.stream))
        };
        self.hub
            .relays
            .values()
            .map(|r| held(&r.a).saturating_add(held(&r.b)))
            .max()
            .unwrap_or(0)
    }
}
