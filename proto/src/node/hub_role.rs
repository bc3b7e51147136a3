//! The hub's side of [`crate::hub`]: accepted connections get their HTTP/2
//! role from ALPN, forward connections carry control streams (announce →
//! policy → registry → deltas to every agent) and CONNECTs, which are
//! authorized, balanced onto an agent's reverse connection and relayed
//! (`hub_relay`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use rustls::ServerConfig;

use crate::balance::Balancer;
use crate::control::{
    encode_split, ControlError, Endpoint, FrameDecoder, Message, RegistryDelta, Rejection, Sender,
    ServicePort, PROTOCOL_VERSION,
};
use crate::h2::{Header, Request, Response, StreamId};
use crate::hbone::ConnectStatus;
use crate::hub::{HubEvent, LinkKind, Offence, CONTROL_CONTENT_TYPE, CONTROL_PATH};
use crate::identity::SpiffeId;
use crate::pool::ConnId;
use crate::registry::{AgentKey, Registry};

use super::event::NodeEvent;
use super::hub_relay::Relay;
use super::{FlowId, Node};

/// One agent's control stream on its forward connection.
#[derive(Debug)]
pub(super) struct ControlStream {
    pub identity: SpiffeId,
    pub stream: StreamId,
    pub flow: FlowId,
    pub decoder: FrameDecoder,
    /// Framed messages not yet taken by HTTP/2 (bounded by
    /// [`crate::hub::HubRole::max_control_outbox`]).
    pub outbox: Vec<u8>,
}

/// Everything the hub role keeps.
#[derive(Debug, Default)]
pub(super) struct HubState {
    pub registry: Registry,
    /// Every accepted connection (to notice when one ends).
    pub conns: BTreeSet<ConnId>,
    /// Control streams by forward connection.
    pub agents: BTreeMap<ConnId, ControlStream>,
    /// Reverse connections whose HTTP/2 is ready.
    pub reverse: BTreeSet<ConnId>,
    /// Relayed flows.
    pub relays: BTreeMap<FlowId, Relay>,
    /// Which control stream a flow id names.
    pub controls: BTreeMap<FlowId, ConnId>,
    pub balancers: BTreeMap<ServicePort, Balancer<Endpoint>>,
    /// The server config offering both ALPNs, built on first use.
    pub server_tls: Option<Arc<ServerConfig>>,
    /// Per-agent rate limits, offences and suspensions.
    pub guard: super::hub_guard::Guard,
}

/// The stream an HTTP/2 event is about, if any.
pub(super) fn event_stream(event: &crate::h2::Event) -> Option<StreamId> {
    use crate::h2::Event as E;
    match event {
        E::Request { stream, .. }
        | E::Response { stream, .. }
        | E::Trailers { stream, .. }
        | E::Data { stream }
        | E::PeerFinished { stream }
        | E::Reset { stream, .. }
        | E::StreamClosed { stream }
        | E::Writable { stream } => Some(*stream),
        _ => None,
    }
}

impl Node {
    /// Sizes the registry from the hub role's limits.
    pub(super) fn hub_init(&mut self) {
        if let Some(role) = &self.config.hub {
            self.hub.registry = Registry::new(role.max_registry_entries);
        }
    }

    /// Takes the HTTP/2 events that belong to the hub role or to hub links:
    /// requests on a hub's connections, and everything on relay legs and
    /// control streams. Returns whether it took `event`.
    pub(super) fn hub_h2_event(&mut self, c: ConnId, event: &crate::h2::Event) -> bool {
        if let crate::h2::Event::Request {
            stream,
            request,
            end_stream,
        } = event
        {
            if self.hub.conns.contains(&c) {
                self.hub_request(c, *stream, request, *end_stream);
                return true;
            }
            return false;
        }
        let Some(f) = event_stream(event).and_then(|st| self.stream_flow(c, st)) else {
            return false;
        };
        if self.hub.relays.contains_key(&f) {
            self.relay_event(f, c, event);
        } else if self.hub.controls.contains_key(&f) {
            self.hub_control_event(c, event);
        } else if self.links.controls_flow(f) {
            self.link_control_event(f, event);
        } else {
            return false;
        }
        true
    }

    /// The TLS server config of the HBONE listener: with the hub role it
    /// also offers `warren-reverse`.
    pub(super) fn hbone_server_config(&mut self) -> Arc<ServerConfig> {
        let plain = self.config.identity.server_config().clone();
        if self.config.hub.is_none() {
            return plain;
        }
        if let Some(cfg) = &self.hub.server_tls {
            return cfg.clone();
        }
        let built = self
            .config
            .identity
            .params()
            .clone()
            .with_alpn(vec![
                crate::hub::ALPN_FORWARD.to_vec(),
                crate::hub::ALPN_REVERSE.to_vec(),
            ])
            .and_then(|p| p.server_config());
        match built {
            Ok(cfg) => {
                self.hub.server_tls = Some(cfg.clone());
                cfg
            }
            // The plain config was built from the same parameters, so this
            // cannot fail; if it did, agents could still use forward links.
            Err(_) => plain,
        }
    }

    /// A connection accepted on a hub's port: its HTTP/2 role waits for ALPN.
    pub(super) fn hub_accepted(&mut self, c: ConnId) {
        if self.config.hub.is_none() {
            return;
        }
        let h2 = self.config.h2.clone();
        if let Some(m) = self.conns.get_mut(&c) {
            m.alpn_role = Some(h2);
            self.hub.conns.insert(c);
        }
    }

    /// An HTTP/2 connection of the hub is ready.
    pub(super) fn hub_conn_ready(&mut self, c: ConnId) {
        if !self.hub.conns.contains(&c) || self.refuse_if_suspended(c) {
            return;
        }
        let Some(m) = self.conns.get(&c) else {
            return;
        };
        let kind = if m.reverse {
            LinkKind::Reverse
        } else {
            LinkKind::Forward
        };
        let event = HubEvent::AgentConnected {
            agent: m.peer.clone(),
            addr: m.peer_addr,
            kind,
        };
        if m.reverse {
            self.hub.reverse.insert(c);
        }
        self.emit(NodeEvent::Hub(event));
    }

    /// A hub connection ended: its announcements, reverse slot and relays
    /// go with it.
    pub(super) fn hub_conn_finished(&mut self, c: ConnId) {
        if !self.hub.conns.remove(&c) {
            return;
        }
        let (agent, addr, reverse) = self
            .conns
            .get(&c)
            .map(|m| (m.peer.clone(), m.peer_addr, m.reverse))
            .unwrap_or((None, ([0, 0, 0, 0], 0).into(), false));
        self.hub.reverse.remove(&c);
        self.guard_conn_finished(c, agent.as_ref());
        if let Some(control) = self.hub.agents.remove(&c) {
            self.hub.controls.remove(&control.flow);
            let key = AgentKey {
                identity: control.identity,
                instance: c.0,
            };
            if let Some(delta) = self.hub.registry.remove(&key) {
                self.broadcast(&delta);
            }
        }
        let kind = if reverse {
            LinkKind::Reverse
        } else {
            LinkKind::Forward
        };
        self.emit(NodeEvent::Hub(HubEvent::AgentDisconnected {
            agent,
            addr,
            kind,
        }));
        let lost: Vec<FlowId> = self
            .hub
            .relays
            .iter()
            .filter(|(_, r)| r.a.conn == c || r.b.conn == c)
            .map(|(f, _)| *f)
            .collect();
        for f in lost {
            self.relay_close(f, super::CloseReason::ConnectionLost, true);
        }
    }

    /// A request on a hub's forward connection: the control stream or a
    /// CONNECT to relay.
    pub(super) fn hub_request(
        &mut self,
        c: ConnId,
        stream: StreamId,
        request: &Request,
        end_stream: bool,
    ) {
        let is_control = request.method.as_ref() == b"POST"
            && request.path.as_deref() == Some(CONTROL_PATH.as_bytes());
        if is_control {
            return self.control_open(c, stream);
        }
        if self.guard_connect(c, stream) {
            self.relay_open(c, stream, request, end_stream);
        }
    }

    /// Sends a bodiless answer on `stream`.
    pub(super) fn hub_answer(&mut self, c: ConnId, stream: StreamId, status: ConnectStatus) {
        if let Some(m) = self.conns.get_mut(&c) {
            // The stream may already be reset: nobody to answer then.
            let _ = m.h2.send_response(stream, &status.response(), true);
            self.dirty.insert(m.sock);
        }
    }

    fn control_open(&mut self, c: ConnId, stream: StreamId) {
        let peer = self.conns.get(&c).and_then(|m| m.peer.clone());
        let Some(identity) = peer.filter(|_| !self.hub.agents.contains_key(&c)) else {
            self.hub_answer(c, stream, ConnectStatus::BadRequest);
            let error = "second control stream on one connection".to_string();
            let peer = self.conns.get(&c).and_then(|m| m.peer.clone());
            return self.emit(NodeEvent::Hub(HubEvent::BadRequest { peer, error }));
        };
        let max_frame = self.config.hub.as_ref().map_or(0, |h| h.max_control_frame);
        let f = FlowId(self.alloc());
        let response = Response {
            status: 200,
            headers: vec![Header::new(
                Bytes::from_static(b"content-type"),
                Bytes::from_static(CONTROL_CONTENT_TYPE.as_bytes()),
            )],
        };
        if let Some(m) = self.conns.get_mut(&c) {
            let _ = m.h2.send_response(stream, &response, false);
            m.streams.insert(stream, f);
            self.dirty.insert(m.sock);
        }
        self.hub.agents.insert(
            c,
            ControlStream {
                identity,
                stream,
                flow: f,
                decoder: FrameDecoder::new(max_frame),
                outbox: Vec::new(),
            },
        );
        self.hub.controls.insert(f, c);
        let snapshot = Message::Registry(self.hub.registry.snapshot());
        self.control_send(c, &snapshot);
    }

    /// Queues one message for the agent on `c` and pushes what HTTP/2 takes.
    fn control_send(&mut self, c: ConnId, message: &Message) {
        let (max_frame, max_outbox) = self
            .config
            .hub
            .as_ref()
            .map_or((0, 0), |h| (h.max_control_frame, h.max_control_outbox));
        let Some(agent) = self.hub.agents.get_mut(&c) else {
            return;
        };
        let before = agent.outbox.len();
        // A message always fits an empty outbox: the registry's own row
        // limit bounds it, and a big snapshot is no sign of a slow reader.
        let error = match encode_split(message, max_frame, &mut agent.outbox) {
            Ok(()) if before == 0 || agent.outbox.len() <= max_outbox => None,
            Ok(()) => {
                agent.outbox.truncate(before);
                Some(format!(
                    "agent reads control messages too slowly ({before} bytes queued)"
                ))
            }
            Err(e) => Some(e.to_string()),
        };
        match error {
            Some(error) => self.control_drop(c, error),
            None => self.control_flush(c),
        }
    }

    /// Moves queued control bytes into HTTP/2.
    pub(super) fn control_flush(&mut self, c: ConnId) {
        let (Some(agent), Some(m)) = (self.hub.agents.get_mut(&c), self.conns.get_mut(&c)) else {
            return;
        };
        if agent.outbox.is_empty() {
            return;
        }
        let n = m.h2.send_data(agent.stream, &agent.outbox).unwrap_or(0);
        agent.outbox.drain(..n);
        self.dirty.insert(m.sock);
    }

    /// Ends an agent's control stream (protocol error, overflow): its
    /// announcements are withdrawn; the connection and its flows stay.
    fn control_drop(&mut self, c: ConnId, error: String) {
        let Some(agent) = self.hub.agents.remove(&c) else {
            return;
        };
        self.hub.controls.remove(&agent.flow);
        if let Some(m) = self.conns.get_mut(&c) {
            m.streams.remove(&agent.stream);
            let _ = m.h2.reset(agent.stream, crate::h2::ErrorCode::CANCEL);
            self.dirty.insert(m.sock);
        }
        self.emit(NodeEvent::Hub(HubEvent::ControlError {
            peer: Some(agent.identity.clone()),
            error,
        }));
        let key = AgentKey {
            identity: agent.identity,
            instance: c.0,
        };
        if let Some(delta) = self.hub.registry.remove(&key) {
            self.broadcast(&delta);
        }
    }

    /// Sends a registry change to every agent.
    fn broadcast(&mut self, delta: &RegistryDelta) {
        let message = Message::RegistryDelta(delta.clone());
        let agents: Vec<ConnId> = self.hub.agents.keys().copied().collect();
        for c in agents {
            self.control_send(c, &message);
        }
        // Balancers follow the registry.
        let registry = &self.hub.registry;
        for (service, balancer) in &mut self.hub.balancers {
            balancer.set_endpoints(registry.endpoints(service).cloned());
        }
        self.hub
            .balancers
            .retain(|_, b| b.endpoints().next().is_some());
    }

    /// An HTTP/2 event on a hub control stream.
    pub(super) fn hub_control_event(&mut self, c: ConnId, event: &crate::h2::Event) {
        use crate::h2::Event as E;
        match event {
            E::Data { .. } => self.control_receive(c),
            E::Writable { .. } => self.control_flush(c),
            E::PeerFinished { .. }
            | E::Trailers { .. }
            | E::StreamClosed { .. }
            | E::Reset { .. } => {
                // The agent withdrew by ending its control stream.
                if let Some(agent) = self.hub.agents.remove(&c) {
                    self.hub.controls.remove(&agent.flow);
                    if let Some(m) = self.conns.get_mut(&c) {
                        m.streams.remove(&agent.stream);
                        let _ = m.h2.reset(agent.stream, crate::h2::ErrorCode::NO_ERROR);
                        self.dirty.insert(m.sock);
                    }
                    let key = AgentKey {
                        identity: agent.identity,
                        instance: c.0,
                    };
                    if let Some(delta) = self.hub.registry.remove(&key) {
                        self.broadcast(&delta);
                    }
                }
            }
            _ => {}
        }
    }

    fn control_receive(&mut self, c: ConnId) {
        let mut messages = Vec::new();
        let failure = {
            let (Some(agent), Some(m)) = (self.hub.agents.get_mut(&c), self.conns.get_mut(&c))
            else {
                return;
            };
            self.dirty.insert(m.sock);
            m.read_control(agent.stream, &mut agent.decoder, &mut messages)
        };
        for message in messages {
            if !self.hub.agents.contains_key(&c) {
                return;
            }
            if !self.guard_control(c) {
                self.control_drop(c, "control messages over the rate limit".to_string());
                return self.hub_offence(c, Offence::ControlFlood);
            }
            self.agent_message(c, message);
        }
        if let Some(error) = failure {
            // Tell the agent why before the stream goes (the frame is
            // queued ahead of the reset).
            let report = Message::Error(ControlError {
                code: error.code(),
                version: PROTOCOL_VERSION,
            });
            self.control_send(c, &report);
            self.control_drop(c, error.to_string());
            self.hub_offence(c, Offence::BadControl);
        }
    }

    fn agent_message(&mut self, c: ConnId, message: Message) {
        let Some(identity) = self.hub.agents.get(&c).map(|a| a.identity.clone()) else {
            return;
        };
        if !message.may_be_sent_by(Sender::Agent) {
            let report = Message::Error(ControlError {
                code: crate::control::ErrorCode::WrongDirection,
                version: PROTOCOL_VERSION,
            });
            self.control_send(c, &report);
            self.control_drop(c, format!("agent sent a hub message: {message:?}"));
            return self.hub_offence(c, Offence::BadControl);
        }
        let key = AgentKey {
            identity: identity.clone(),
            instance: c.0,
        };
        match message {
            Message::Announce(announce) => {
                let checked = match &self.config.hub {
                    Some(role) => role.announce.check(&identity, &announce),
                    None => return,
                };
                let filed = checked.and_then(|()| self.hub.registry.announce(&key, &announce));
                match filed {
                    Ok(delta) => {
                        let epoch = self.hub.registry.epoch();
                        self.emit(NodeEvent::Hub(HubEvent::Announced {
                            agent: identity,
                            services: announce.services.len(),
                            epoch,
                        }));
                        if let Some(delta) = delta {
                            self.broadcast(&delta);
                        }
                    }
                    Err(rejection) => {
                        // A full registry is the hub's limit, not the
                        // agent's fault.
                        let offended = rejection != Rejection::RegistryFull;
                        self.emit(NodeEvent::Hub(HubEvent::AnnounceRejected {
                            agent: identity,
                            rejection: rejection.clone(),
                        }));
                        self.control_send(c, &Message::Rejected(rejection));
                        if offended {
                            self.hub_offence(c, Offence::RejectedAnnouncement);
                        }
                    }
                }
            }
            Message::Withdraw => {
                if let Some(delta) = self.hub.registry.remove(&key) {
                    self.broadcast(&delta);
                }
            }
            Message::Ping(token) => self.control_send(c, &Message::Pong(token)),
            Message::Error(e) => self.emit(NodeEvent::Hub(HubEvent::ControlError {
                peer: Some(identity),
                error: format!("agent reported {:?}", e.code),
            })),
            _ => {}
        }
    }

    /// The hub's registry (empty unless the node is a hub).
    pub fn hub_registry(&self) -> &Registry {
        &self.hub.registry
    }

    /// Flows the hub relays now.
    pub fn relay_count(&self) -> usize {
        self.hub.relays.len()
    }

    /// Of [`Node::relay_count`], the end-to-end pair streams: each carries
    /// an agent pair's pooled inner connection, so it lives as long as that
    /// connection (the pool's idle timeout), not as long as one flow.
    pub fn pair_relay_count(&self) -> usize {
        // Only a pair stream skips the service's balancer.
        self.hub.relays.values().filter(|r| !r.balanced).count()
    }

    /// Bytes held inside every mesh connection: HTTP/2 input not yet
    /// released (relay legs included), HTTP/2 output not yet encrypted, and
    /// ciphertext not yet taken by the socket. A hub's memory per flow.
    pub fn connection_buffered(&self) -> usize {
        self.conns
            .values()
            .map(|m| m.h2.buffered_bytes() + m.h2.pending_transmit() + m.chunk().len())
            .sum()
    }
}
