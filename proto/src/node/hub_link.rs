//! The agent's side of [`crate::hub`]: a forward and a reverse connection
//! to every configured hub, redialled with seeded jittered back-off; the
//! control stream on the forward one (announce our exports, follow the
//! hub's registry); flows to services not in the directory routed through
//! a hub; and the `warren-source` header believed only on a reverse
//! connection to a configured hub identity.

use core::net::SocketAddr;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use rustls::ClientConfig;

use crate::control::{
    encode, Announce, FrameDecoder, Message, RegistrySnapshot, Sender, ServicePort,
};
use crate::h2::{self, Header, Request, Role, StreamId};
use crate::hub::{
    backoff, HubEvent, LinkKind, ALPN_FORWARD, ALPN_REVERSE, CONTROL_CONTENT_TYPE, CONTROL_PATH,
    SOURCE_HEADER,
};
use crate::identity::SpiffeId;
use crate::policy::ServiceName;
use crate::pool::ConnId;
use crate::time::Instant;
use crate::tls::TlsSession;

use super::config::Endpoint;
use super::event::{FlowPath, NodeEvent};
use super::flow::{Far, Owner, Sock};
use super::mesh::MeshConn;
use super::relay::after;
use super::{FlowId, Node, Output, SockId};

/// One of the two connections to a hub.
#[derive(Debug, Default)]
struct Slot {
    conn: Option<ConnId>,
    /// HTTP/2 is ready on it.
    up: bool,
    /// Failures in a row (dial, handshake, or loss before it came up).
    failures: u32,
    retry_at: Option<Instant>,
}

/// The control stream on a forward connection.
#[derive(Debug)]
struct AgentControl {
    stream: StreamId,
    flow: FlowId,
    decoder: FrameDecoder,
    outbox: Vec<u8>,
}

/// One hub.
#[derive(Debug)]
struct Link {
    addr: SocketAddr,
    forward: Slot,
    reverse: Slot,
    control: Option<AgentControl>,
    /// The announcement last sent on the current control stream.
    sent: Option<Announce>,
    registry: RegistrySnapshot,
    /// `registry` is the current control stream's (its snapshot arrived);
    /// false from a link's (re)connect until then.
    synced: bool,
}

/// Connections to hub `hub` made with a certificate since replaced. They
/// carry their flows to the end but take no new ones, and are told to go
/// (GOAWAY, control stream reset) once the new connections to the same hub
/// are up and the hub's registry lists our services on the new ones too,
/// so the hub never goes without our announcement. (Rows are counted by
/// identity: replicas sharing one identity on one hub can make the count
/// early, leaving a moment with only the other replica listed.)
#[derive(Debug)]
struct Retiring {
    hub: usize,
    /// Old connections still open.
    conns: Vec<ConnId>,
    /// The old forward connection, which carries the control stream.
    forward: Option<ConnId>,
    /// The old control stream, until retired.
    control: Option<AgentControl>,
    /// GOAWAY went out.
    retired: bool,
}

/// Everything the agent keeps about its hubs.
#[derive(Debug, Default)]
pub(super) struct Links {
    links: Vec<Link>,
    /// Links being replaced after a certificate rotation.
    retiring: Vec<Retiring>,
    /// Client configs (forward, reverse), built on first use.
    tls: Option<(Arc<ClientConfig>, Arc<ClientConfig>)>,
    /// Which link a control stream's flow id belongs to.
    controls: BTreeMap<FlowId, usize>,
    /// Flows are spread over ready hubs in turn, so losing one hub loses
    /// only its share.
    turn: usize,
    /// Flows to a service no synced registry lists, waiting for a hub's
    /// snapshot to tell whether it is served end to end.
    parked: Vec<Parked>,
}

/// A flow waiting for a hub's first registry.
#[derive(Debug)]
struct Parked {
    flow: FlowId,
    service: ServiceName,
    port: u16,
    /// When the client is refused if no registry came
    /// ([`crate::hub::HubLinks::registry_wait`] after it first parked).
    deadline: Instant,
}

/// One hub connection's state, for status pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubLinkStatus {
    /// The hub's address.
    pub hub: SocketAddr,
    /// The forward connection is up.
    pub forward_up: bool,
    /// The reverse connection is up.
    pub reverse_up: bool,
    /// The control stream is open.
    pub control: bool,
    /// Failures in a row (forward, reverse).
    pub failures: (u32, u32),
    /// The hub registry's epoch and rows as this agent holds it.
    pub registry: (u64, usize),
    /// The next redial of a connection that is down, if one is scheduled.
    pub retry_at: Option<Instant>,
}

impl Links {
    /// The earliest deadline of a flow waiting for a registry.
    pub(super) fn next_registry_deadline(&self) -> Option<Instant> {
        self.parked.iter().map(|p| p.deadline).min()
    }

    /// The earliest redial.
    pub(super) fn next_retry(&self) -> Option<Instant> {
        self.links
            .iter()
            .flat_map(|l| [&l.forward, &l.reverse])
            .filter(|s| s.conn.is_none())
            .filter_map(|s| s.retry_at)
            .min()
    }

    fn slot_of(&mut self, c: ConnId) -> Option<(usize, LinkKind, &mut Slot)> {
        self.links.iter_mut().enumerate().find_map(|(i, l)| {
            if l.forward.conn == Some(c) {
                Some((i, LinkKind::Forward, &mut l.forward))
            } else if l.reverse.conn == Some(c) {
                Some((i, LinkKind::Reverse, &mut l.reverse))
            } else {
                None
            }
        })
    }
}

impl Node {
    /// Every hub link's state.
    pub fn hub_links(&self) -> Vec<HubLinkStatus> {
        self.links
            .links
            .iter()
            .map(|l| HubLinkStatus {
                hub: l.addr,
                forward_up: l.forward.up,
                reverse_up: l.reverse.up,
                control: l.control.is_some(),
                failures: (l.forward.failures, l.reverse.failures),
                registry: (l.registry.epoch, l.registry.entries.len()),
                // `Instant` at its end means "never" (no hub identity).
                retry_at: [l.forward.retry_at, l.reverse.retry_at]
                    .into_iter()
                    .flatten()
                    .filter(|at| at.as_nanos() != u64::MAX)
                    .min(),
            })
            .collect()
    }

    /// Dials what is down and due, follows configuration changes, and
    /// re-announces when the exports changed. Runs after every input.
    pub(super) fn tend_links(&mut self) {
        let wanted = &self.config.hub_links.hubs;
        let same = wanted.len() == self.links.links.len()
            && wanted
                .iter()
                .zip(&self.links.links)
                .all(|(a, l)| *a == l.addr);
        if !same {
            self.rebuild_links();
        }
        let now = self.now;
        for i in 0..self.links.links.len() {
            for kind in [LinkKind::Forward, LinkKind::Reverse] {
                let due = self.links.links.get(i).is_some_and(|l| {
                    let slot = match kind {
                        LinkKind::Forward => &l.forward,
                        LinkKind::Reverse => &l.reverse,
                    };
                    slot.conn.is_none() && slot.retry_at.is_none_or(|at| at <= now)
                });
                if due {
                    self.dial_hub(i, kind);
                }
            }
        }
        let announce = self.own_announce();
        for i in 0..self.links.links.len() {
            let stale = self
                .links
                .links
                .get(i)
                .is_some_and(|l| l.control.is_some() && l.sent.as_ref() != Some(&announce));
            if stale {
                if let Some(l) = self.links.links.get_mut(i) {
                    l.sent = Some(announce.clone());
                }
                self.link_send(i, &Message::Announce(announce.clone()));
            }
        }
        self.retire_links();
    }

    /// The configured hubs changed: old connections go away, new links
    /// start down and due.
    fn rebuild_links(&mut self) {
        let old = core::mem::take(&mut self.links.links);
        self.links.controls.clear();
        // Links still retiring name hubs by index: retire them all now.
        let now = self.now;
        for r in &mut self.links.retiring {
            r.retired = true;
            r.control = None;
            for c in &r.conns {
                if let Some(m) = self.conns.get_mut(c) {
                    m.h2.go_away(now);
                    self.dirty.insert(m.sock);
                }
            }
        }
        for link in old {
            for c in [link.forward.conn, link.reverse.conn].into_iter().flatten() {
                let now = self.now;
                if let Some(m) = self.conns.get_mut(&c) {
                    m.h2.go_away(now);
                    self.dirty.insert(m.sock);
                }
            }
        }
        self.links.links = self
            .config
            .hub_links
            .hubs
            .iter()
            .map(|addr| Link {
                addr: *addr,
                forward: Slot::default(),
                reverse: Slot::default(),
                control: None,
                sent: None,
                registry: RegistrySnapshot::default(),
                synced: false,
            })
            .collect();
        self.unpark_flows();
    }

    /// What this agent serves, as it announces it.
    fn own_announce(&self) -> Announce {
        let mut services: Vec<ServicePort> = self
            .config
            .exports
            .iter()
            .map(|e| ServicePort {
                service: e.service.clone(),
                port: e.port,
            })
            .collect();
        services.sort();
        services.dedup();
        let reachable_hbone = self
            .config
            .hbone_listen
            .filter(|a| !a.ip().is_unspecified());
        let relay_plaintext = services
            .iter()
            .filter(|s| self.config.relay_plaintext.contains(*s))
            .cloned()
            .collect();
        Announce {
            services,
            reachable_hbone,
            relay_plaintext,
        }
    }

    /// The node's certificate changed: every hub link is redialled at once
    /// with the new one, and the old connections retire once the new ones
    /// carry our announcement (make before break: no flow sees a hub
    /// without us, and flows on the old connections run to their end).
    pub(super) fn links_certificate_rotated(&mut self) {
        self.links.tls = None;
        let Links {
            links,
            retiring,
            controls,
            ..
        } = &mut self.links;
        for (hub, l) in links.iter_mut().enumerate() {
            let conns: Vec<ConnId> = [l.forward.conn, l.reverse.conn]
                .into_iter()
                .flatten()
                .collect();
            if conns.is_empty() {
                continue;
            }
            let control = l.control.take();
            if let Some(control) = &control {
                controls.remove(&control.flow);
            }
            let forward = l.forward.conn;
            l.forward = Slot::default();
            l.reverse = Slot::default();
            l.sent = None;
            retiring.push(Retiring {
                hub,
                conns,
                forward,
                control,
                retired: false,
            });
        }
    }

    /// Retires old links whose replacements are ready (see [`Retiring`]).
    fn retire_links(&mut self) {
        if self.links.retiring.iter().all(|r| r.retired) {
            return;
        }
        let me = self.config.identity.id().clone();
        let services = self.own_announce().services;
        let now = self.now;
        for k in 0..self.links.retiring.len() {
            let ready = self.links.retiring.get(k).is_some_and(|r| {
                let need = if r.control.is_some() { 2 } else { 1 };
                !r.retired
                    && self.links.links.get(r.hub).is_some_and(|l| {
                        l.forward.up
                            && l.reverse.up
                            && l.sent.is_some()
                            && services.iter().all(|sp| {
                                let listed = l
                                    .registry
                                    .entries
                                    .iter()
                                    .filter(|e| &e.service == sp && e.endpoint.identity == me);
                                listed.count() >= need
                            })
                    })
            });
            if !ready {
                continue;
            }
            let Some(r) = self.links.retiring.get_mut(k) else {
                continue;
            };
            r.retired = true;
            let control = r.control.take();
            let forward = r.forward;
            let conns = r.conns.clone();
            for c in conns {
                let Some(m) = self.conns.get_mut(&c) else {
                    continue;
                };
                // Stream ids are per connection: the control stream's id
                // names a relayed flow's stream on the reverse connection.
                if let (Some(control), true) = (&control, forward == Some(c)) {
                    if m.streams.remove(&control.stream).is_some() {
                        let _ = m.h2.reset(control.stream, h2::ErrorCode::CANCEL);
                    }
                }
                m.h2.go_away(now);
                self.dirty.insert(m.sock);
            }
        }
    }

    /// A retiring connection ended; true if `c` was one.
    fn forget_retiring(&mut self, c: ConnId) -> bool {
        let mut found = false;
        for r in &mut self.links.retiring {
            let before = r.conns.len();
            r.conns.retain(|x| *x != c);
            found |= r.conns.len() != before;
        }
        self.links.retiring.retain(|r| !r.conns.is_empty());
        found
    }

    fn link_tls(&mut self, kind: LinkKind) -> Option<Arc<ClientConfig>> {
        if self.links.tls.is_none() {
            let params = self.config.identity.params();
            let ids = self.config.hub_links.identities.clone();
            let build = |alpn: &[u8]| {
                params
                    .clone()
                    .with_alpn(vec![alpn.to_vec()])
                    .and_then(|p| p.client_config_matching(ids.clone()))
                    .ok()
            };
            self.links.tls = Some((build(ALPN_FORWARD)?, build(ALPN_REVERSE)?));
        }
        let (forward, reverse) = self.links.tls.as_ref()?;
        Some(match kind {
            LinkKind::Forward => forward.clone(),
            LinkKind::Reverse => reverse.clone(),
        })
    }

    fn dial_hub(&mut self, i: usize, kind: LinkKind) {
        let Some(addr) = self.links.links.get(i).map(|l| l.addr) else {
            return;
        };
        let Some(tls) = self
            .link_tls(kind)
            .and_then(|cfg| TlsSession::client(cfg, self.config.tls_buffer_limit).ok())
        else {
            // No hub identity configured: nobody to trust, so no dial.
            if let Some(l) = self.links.links.get_mut(i) {
                let slot = match kind {
                    LinkKind::Forward => &mut l.forward,
                    LinkKind::Reverse => &mut l.reverse,
                };
                slot.retry_at = Some(Instant::from_nanos(u64::MAX));
            }
            return;
        };
        let role = match kind {
            LinkKind::Forward => Role::Client,
            LinkKind::Reverse => Role::Server,
        };
        let c = ConnId(self.alloc());
        let sock = SockId(self.alloc());
        let h2 = h2::Connection::new(role, self.config.h2.clone(), self.now);
        let deadline = after(self.now, self.config.timeouts.tls_handshake);
        let mut conn = MeshConn::new(sock, addr, tls, h2, None, self.now, deadline);
        conn.connected = false;
        conn.reverse = kind == LinkKind::Reverse;
        self.conns.insert(c, conn);
        let mut s = Sock::new(Owner::Mesh(c), addr);
        s.connect_deadline = Some(deadline);
        self.socks.insert(sock, Box::new(s));
        if let Some(l) = self.links.links.get_mut(i) {
            let slot = match kind {
                LinkKind::Forward => &mut l.forward,
                LinkKind::Reverse => &mut l.reverse,
            };
            slot.conn = Some(c);
            slot.up = false;
            slot.retry_at = None;
        }
        self.outputs.push_back(Output::Connect { sock, addr });
    }

    /// HTTP/2 came up on a connection: a hub link is up; a forward one
    /// opens the control stream.
    pub(super) fn link_conn_ready(&mut self, c: ConnId) {
        let peer = self.conns.get(&c).and_then(|m| m.peer.clone());
        let Some((i, kind, slot)) = self.links.slot_of(c) else {
            return;
        };
        slot.up = true;
        slot.failures = 0;
        let hub = self.links.links.get(i).map(|l| l.addr);
        if let Some(hub) = hub {
            self.emit(NodeEvent::Hub(HubEvent::LinkUp { hub, kind, peer }));
        }
        if kind == LinkKind::Forward {
            self.open_control(i, c);
        }
    }

    fn open_control(&mut self, i: usize, c: ConnId) {
        let request = Request {
            method: Bytes::from_static(b"POST"),
            scheme: Some(Bytes::from_static(b"https")),
            authority: Some(Bytes::from_static(b"hub")),
            path: Some(Bytes::from_static(CONTROL_PATH.as_bytes())),
            headers: vec![Header::new(
                Bytes::from_static(b"content-type"),
                Bytes::from_static(CONTROL_CONTENT_TYPE.as_bytes()),
            )],
        };
        let Some(m) = self.conns.get_mut(&c) else {
            return;
        };
        let Ok(stream) = m.h2.send_request(&request, false) else {
            return;
        };
        self.dirty.insert(m.sock);
        let f = FlowId(self.alloc());
        if let Some(m) = self.conns.get_mut(&c) {
            m.streams.insert(stream, f);
        }
        let max = crate::control::DEFAULT_MAX_FRAME_LEN;
        if let Some(l) = self.links.links.get_mut(i) {
            l.control = Some(AgentControl {
                stream,
                flow: f,
                decoder: FrameDecoder::new(max),
                outbox: Vec::new(),
            });
            l.sent = None;
        }
        self.links.controls.insert(f, i);
        // The announcement goes out from `tend_links`, after this input.
    }

    /// Queues a control message towards hub `i`.
    fn link_send(&mut self, i: usize, message: &Message) {
        let max_outbox = self.config.hub_links.max_control_outbox;
        let Some(control) = self.links.links.get_mut(i).and_then(|l| l.control.as_mut()) else {
            return;
        };
        let before = control.outbox.len();
        if encode(
            message,
            crate::control::DEFAULT_MAX_FRAME_LEN,
            &mut control.outbox,
        )
        .is_err()
        {
            let error = "announcement exceeds the control frame limit".to_string();
            return self.emit(NodeEvent::Hub(HubEvent::ControlError { peer: None, error }));
        }
        // A message always fits an empty outbox (an announcement is no sign
        // of a slow reader); past the bound the hub is not reading what it
        // makes us send (its pings' answers).
        if before > 0 && control.outbox.len() > max_outbox {
            control.outbox.truncate(before);
            let error = format!("hub reads control messages too slowly ({before} bytes queued)");
            return self.link_control_lost(i, Some(error));
        }
        self.link_flush(i);
    }

    fn link_flush(&mut self, i: usize) {
        let Some(link) = self.links.links.get_mut(i) else {
            return;
        };
        let (Some(c), Some(control)) = (link.forward.conn, link.control.as_mut()) else {
            return;
        };
        let Some(m) = self.conns.get_mut(&c) else {
            return;
        };
        if control.outbox.is_empty() {
            return;
        }
        let n = m.h2.send_data(control.stream, &control.outbox).unwrap_or(0);
        control.outbox.drain(..n);
        self.dirty.insert(m.sock);
    }

    /// An HTTP/2 event on an agent's control stream.
    pub(super) fn link_control_event(&mut self, f: FlowId, event: &h2::Event) {
        let Some(&i) = self.links.controls.get(&f) else {
            return;
        };
        match event {
            h2::Event::Response { response, .. } if response.status != 200 => {
                let error = format!("control stream refused with status {}", response.status);
                self.link_control_lost(i, Some(error));
            }
            h2::Event::Data { .. } => self.link_receive(i),
            h2::Event::Writable { .. } => self.link_flush(i),
            h2::Event::PeerFinished { .. }
            | h2::Event::Trailers { .. }
            | h2::Event::StreamClosed { .. }
            | h2::Event::Reset { .. } => {
                self.link_control_lost(i, Some("hub ended the control stream".into()))
            }
            _ => {}
        }
    }

    fn link_control_lost(&mut self, i: usize, error: Option<String>) {
        let Some(link) = self.links.links.get_mut(i) else {
            return;
        };
        let Some(control) = link.control.take() else {
            return;
        };
        link.sent = None;
        link.synced = false;
        let peer_conn = link.forward.conn;
        self.links.controls.remove(&control.flow);
        if let Some(m) = peer_conn.and_then(|c| self.conns.get_mut(&c)) {
            m.streams.remove(&control.stream);
            let _ = m.h2.reset(control.stream, h2::ErrorCode::CANCEL);
            self.dirty.insert(m.sock);
        }
        if let Some(error) = error {
            let peer = peer_conn
                .and_then(|c| self.conns.get(&c))
                .and_then(|m| m.peer.clone());
            self.emit(NodeEvent::Hub(HubEvent::ControlError { peer, error }));
        }
        self.unpark_flows();
    }

    fn link_receive(&mut self, i: usize) {
        let mut messages = Vec::new();
        let failure = {
            let Some(link) = self.links.links.get_mut(i) else {
                return;
            };
            let (Some(c), Some(control)) = (link.forward.conn, link.control.as_mut()) else {
                return;
            };
            let Some(m) = self.conns.get_mut(&c) else {
                return;
            };
            self.dirty.insert(m.sock);
            m.read_control(control.stream, &mut control.decoder, &mut messages)
        };
        for message in messages {
            self.hub_message(i, message);
        }
        if let Some(e) = failure {
            self.link_control_lost(i, Some(e.to_string()));
        }
    }

    fn hub_message(&mut self, i: usize, message: Message) {
        let Some(hub) = self.links.links.get(i).map(|l| l.addr) else {
            return;
        };
        if !message.may_be_sent_by(Sender::Hub) {
            let error = format!("hub sent an agent message: {message:?}");
            return self.link_control_lost(i, Some(error));
        }
        match message {
            Message::Registry(snapshot) => {
                let (epoch, entries) = (snapshot.epoch, snapshot.entries.len());
                if entries > self.config.hub_links.max_registry_entries {
                    return self.registry_too_large(i);
                }
                if let Some(l) = self.links.links.get_mut(i) {
                    l.registry = snapshot;
                    l.synced = true;
                }
                self.prune_balancers();
                self.emit(NodeEvent::Hub(HubEvent::RegistryUpdated {
                    hub,
                    epoch,
                    entries,
                }));
                self.unpark_flows();
            }
            Message::RegistryDelta(delta) => {
                let max = self.config.hub_links.max_registry_entries;
                let grows_past = self.links.links.get(i).is_some_and(|l| {
                    let kept = l.registry.entries.len().saturating_sub(delta.removed.len());
                    kept.saturating_add(delta.added.len()) > max
                });
                if grows_past {
                    return self.registry_too_large(i);
                }
                let applied = self
                    .links
                    .links
                    .get_mut(i)
                    .map(|l| l.registry.apply(&delta).map(|()| l.registry.entries.len()));
                match applied {
                    Some(Ok(entries)) => {
                        self.prune_balancers();
                        self.emit(NodeEvent::Hub(HubEvent::RegistryUpdated {
                            hub,
                            epoch: delta.epoch,
                            entries,
                        }))
                    }
                    Some(Err(e)) => self.link_control_lost(i, Some(e.to_string())),
                    None => {}
                }
            }
            Message::Rejected(rejection) => {
                let agent = self.config.identity.id().clone();
                self.emit(NodeEvent::Hub(HubEvent::AnnounceRejected {
                    agent,
                    rejection,
                }));
            }
            Message::Evict(evict) => {
                let error = format!("evicted: {:?}", evict.reason);
                self.emit(NodeEvent::Hub(HubEvent::ControlError { peer: None, error }));
            }
            Message::Ping(token) => self.link_send(i, &Message::Pong(token)),
            Message::Error(e) => {
                let error = format!("hub reported {:?}", e.code);
                self.emit(NodeEvent::Hub(HubEvent::ControlError { peer: None, error }));
            }
            _ => {}
        }
    }

    /// Hub `i` sent more registry rows than we keep.
    fn registry_too_large(&mut self, i: usize) {
        let max = self.config.hub_links.max_registry_entries;
        let error = format!("hub registry would exceed {max} entries");
        self.link_control_lost(i, Some(error));
    }

    /// A connection ended: if it was a hub link, schedule the redial.
    pub(super) fn link_conn_finished(&mut self, c: ConnId) {
        if self.forget_retiring(c) {
            return;
        }
        let now = self.now;
        let links_cfg = self.config.hub_links.clone();
        let Some((i, kind, slot)) = self.links.slot_of(c) else {
            return;
        };
        if slot.up {
            slot.failures = 0;
        } else {
            slot.failures = slot.failures.saturating_add(1);
        }
        slot.up = false;
        slot.conn = None;
        let failures = slot.failures;
        let retry_in = backoff(&links_cfg, i, failures.saturating_sub(1));
        slot.retry_at = Some(after(now, retry_in));
        if kind == LinkKind::Forward {
            if let Some(l) = self.links.links.get_mut(i) {
                if let Some(control) = l.control.take() {
                    self.links.controls.remove(&control.flow);
                }
                l.sent = None;
                l.synced = false;
            }
            self.unpark_flows();
        }
        if let Some(hub) = self.links.links.get(i).map(|l| l.addr) {
            self.emit(NodeEvent::Hub(HubEvent::LinkDown {
                hub,
                kind,
                failures,
                retry_in,
            }));
        }
    }

    /// The source identity of a CONNECT on connection `c`: the TLS peer,
    /// or on a reverse link to a configured hub the `warren-source` header.
    pub(super) fn request_source(&mut self, c: ConnId, request: &Request) -> Option<SpiffeId> {
        let m = self.conns.get(&c)?;
        let is_link = m.reverse && self.links.slot_of_ref(c);
        if !is_link {
            return m.peer.clone();
        }
        let hub = m.peer.clone();
        let trusted = hub.as_ref().is_some_and(|h| {
            self.config
                .hub_links
                .identities
                .iter()
                .any(|p| p.matches(h))
        });
        let value = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(SOURCE_HEADER.as_bytes()))
            .map(|h| h.value.clone());
        let parsed = value
            .as_ref()
            .and_then(|v| core::str::from_utf8(v).ok())
            .and_then(|v| SpiffeId::parse(v).ok());
        match parsed {
            Some(id) if trusted => Some(id),
            _ => {
                let value = value
                    .map(|v| String::from_utf8_lossy(&v).chars().take(256).collect())
                    .unwrap_or_default();
                self.emit(NodeEvent::Hub(HubEvent::BadSource { hub, value }));
                None
            }
        }
    }

    /// Routes flow `f` to `service:port` through a hub: on the next ready
    /// forward connection in turn whose hub's registry (as this agent
    /// holds it) lists the service, else on any ready one, else waiting on
    /// one still coming up. Returns false when no hub connection exists at
    /// all.
    ///
    /// Preferring a hub that knows the service matters after a hub
    /// restarts: its registry is empty until the endpoint agents redial,
    /// which can take them a keepalive period, and meanwhile a flow sent
    /// there would get 503 while another hub could carry it.
    pub(super) fn route_via_hub(&mut self, f: FlowId, service: &ServiceName, port: u16) -> bool {
        if self.route_end_to_end(f, service, port) || self.park_until_registry(f, service, port) {
            return true;
        }
        let forwards: Vec<(ConnId, bool)> = self
            .links
            .links
            .iter()
            .filter_map(|l| {
                let knows = l
                    .registry
                    .entries
                    .iter()
                    .any(|e| e.service.port == port && &e.service.service == service);
                Some((l.forward.conn?, knows))
            })
            .filter(|(c, _)| self.conns.get(c).is_some_and(|m| !m.closing))
            .collect();
        let ready_all: Vec<(ConnId, bool)> = forwards
            .iter()
            .copied()
            .filter(|(c, _)| self.conns.get(c).is_some_and(|m| m.ready))
            .collect();
        let knowing: Vec<ConnId> = ready_all
            .iter()
            .filter(|(_, knows)| *knows)
            .map(|(c, _)| *c)
            .collect();
        let ready = if knowing.is_empty() {
            ready_all.iter().map(|(c, _)| *c).collect()
        } else {
            knowing
        };
        let forwards: Vec<ConnId> = forwards.iter().map(|(c, _)| *c).collect();
        self.links.turn = self.links.turn.wrapping_add(1);
        let ready = ready.get(self.links.turn % ready.len().max(1)).copied();
        let Some(c) = ready.or_else(|| forwards.first().copied()) else {
            return false;
        };
        self.set_mesh_target(f, None);
        if let Some(flow) = self.flows.get_mut(&f) {
            flow.path = Some(FlowPath::Hub);
            flow.destination = None;
            flow.service = format!("{}:{port}", service.as_str());
            flow.far = Far::Stream {
                conn: c,
                stream: None,
            };
        }
        self.open_or_wait(f, c)
    }
}

impl Node {
    /// A plain relayed flow's hub failed it before any byte was known to
    /// arrive: its forward connection `failed` died, or the hub answered
    /// 503 on `refused` (stream, whether the answer ended the hub's side).
    /// Like an endpoint retry, it tries once more, on another ready hub
    /// whose registry lists the service, replaying what it sent early
    /// (the callers only come here when that is safe: a 503 reached no
    /// target; a lost connection only when nothing went early). Returns
    /// whether it did.
    pub(super) fn retry_on_other_hub(
        &mut self,
        f: FlowId,
        failed: ConnId,
        refused: Option<(StreamId, bool)>,
    ) -> bool {
        let Some(flow) = self.flows.get(&f) else {
            return false;
        };
        let eligible = !flow.hub_retried
            && flow.direction == super::Direction::Outbound
            && flow.phase == super::flow::Phase::Opening
            && flow.bytes_sent == 0
            && flow.mesh_target.is_none()
            && self.links.slot_of_ref(failed);
        let target = crate::policy::Authority::parse(&flow.service)
            .ok()
            .and_then(|a| a.service_port());
        let Some((service, port)) = target.filter(|_| eligible) else {
            return false;
        };
        let other = self
            .links
            .links
            .iter()
            .filter(|l| {
                l.registry
                    .entries
                    .iter()
                    .any(|e| e.service.port == port && e.service.service == service)
            })
            .filter_map(|l| l.forward.conn)
            .find(|c| *c != failed && self.conns.get(c).is_some_and(|m| m.ready && !m.closing));
        let Some(c) = other else {
            return false;
        };
        if let Some((stream, ended)) = refused {
            self.leave_answered_stream(failed, stream, ended);
        }
        let local = self.flows.get_mut(&f).map(|flow| {
            flow.hub_retried = true;
            flow.stream_closed = false;
            flow.far = Far::Stream {
                conn: c,
                stream: None,
            };
            flow.local
        });
        if let Some(local) = local {
            self.replay_early(f, local);
        }
        self.open_or_wait(f, c)
    }

    /// Parks flow `f` when no synced registry lists `service:port` but a
    /// hub's snapshot is still to come: whether to go end to end is known
    /// only then (a plain relay to an end-to-end service is refused).
    /// Returns whether it parked the flow.
    fn park_until_registry(&mut self, f: FlowId, service: &ServiceName, port: u16) -> bool {
        let sp = ServicePort {
            service: service.clone(),
            port,
        };
        let listed = self
            .links
            .links
            .iter()
            .any(|l| l.synced && l.registry.entries.iter().any(|e| e.service == sp));
        let coming = self.links.links.iter().any(|l| {
            !l.synced
                && l.forward
                    .conn
                    .is_some_and(|c| self.conns.get(&c).is_some_and(|m| !m.closing))
        });
        if listed || !coming {
            return false;
        }
        self.links.parked.push(Parked {
            flow: f,
            service: service.clone(),
            port,
            deadline: after(self.now, self.config.hub_links.registry_wait),
        });
        true
    }

    /// A registry arrived or a link went down: parked flows are routed
    /// again (or refused when no hub is left). One parked again keeps its
    /// first deadline: links coming and going must not stretch the wait.
    fn unpark_flows(&mut self) {
        let before = core::mem::take(&mut self.links.parked);
        let deadlines: BTreeMap<FlowId, Instant> =
            before.iter().map(|p| (p.flow, p.deadline)).collect();
        for p in before {
            if !self.flows.contains_key(&p.flow) {
                continue;
            }
            if !self.route_via_hub(p.flow, &p.service, p.port) {
                self.refuse(
                    p.flow,
                    crate::front::Refusal::Unreachable,
                    super::CloseReason::Unreachable,
                );
            }
        }
        for p in &mut self.links.parked {
            if let Some(first) = deadlines.get(&p.flow) {
                p.deadline = *first;
            }
        }
    }

    /// Refuses the parked flows whose registry wait is over.
    pub(super) fn expire_parked(&mut self) {
        let now = self.now;
        let (late, waiting): (Vec<Parked>, Vec<Parked>) = core::mem::take(&mut self.links.parked)
            .into_iter()
            .partition(|p| p.deadline <= now);
        self.links.parked = waiting;
        let waited = self.config.hub_links.registry_wait;
        for p in late {
            self.refuse(
                p.flow,
                crate::front::Refusal::Unreachable,
                super::CloseReason::NoRegistry { waited },
            );
        }
    }
}

impl Links {
    /// Every synced hub registry as this agent holds it, with the hub's
    /// forward connection and address.
    pub(super) fn registries(&self) -> Vec<(ConnId, SocketAddr, &RegistrySnapshot)> {
        self.links
            .iter()
            .filter(|l| l.synced)
            .filter_map(|l| Some((l.forward.conn?, l.addr, &l.registry)))
            .collect()
    }

    /// Whether `f` names a control stream of a link.
    pub(super) fn controls_flow(&self, f: FlowId) -> bool {
        self.controls.contains_key(&f)
    }

    /// Every registry row for `sp`, over all hubs, whose agent announced
    /// an HBONE address: an endpoint this agent may dial directly.
    pub(super) fn direct_endpoints(&self, sp: &ServicePort) -> Vec<Endpoint> {
        self.links
            .iter()
            .flat_map(|l| &l.registry.entries)
            .filter(|e| e.service == *sp)
            .filter_map(|e| {
                Some(Endpoint {
                    hbone: e.endpoint.hbone?,
                    identity: e.endpoint.identity.clone(),
                })
            })
            .collect()
    }

    /// Whether a forward connection to some hub exists (up or coming up),
    /// so a flow can be routed via a hub.
    pub(super) fn has_forward(&self, conns: &BTreeMap<ConnId, MeshConn>) -> bool {
        self.links
            .iter()
            .filter_map(|l| l.forward.conn)
            .any(|c| conns.get(&c).is_some_and(|m| !m.closing))
    }

    /// Whether `c` is a hub link, current or retiring (a hub may still
    /// open streams on a retiring reverse connection).
    pub(super) fn slot_of_ref(&self, c: ConnId) -> bool {
        self.links
            .iter()
            .any(|l| l.forward.conn == Some(c) || l.reverse.conn == Some(c))
            || self.retiring.iter().any(|r| r.conns.contains(&c))
    }
}
