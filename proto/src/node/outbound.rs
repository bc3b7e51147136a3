//! The outbound path: front-end accept → request parsed → a mesh service
//! from the directory (pooled TLS + HTTP/2 connection, CONNECT, 200) or an
//! outside destination the egress policy allows (direct TCP) → the front
//! end's reply → relay. Also what a new configuration does to live flows.

use core::net::SocketAddr;

use crate::front::{self, FrontEnd, Outcome, Progress, Refusal};
use crate::h2::{self, ErrorCode, Role, StreamId};
use crate::hbone::{connect_request, ConnectStatus};
use crate::hub::DESTINATION_HEADER;
use crate::identity::SpiffeId;
use crate::policy::{Authority, AuthzRequest, Decision, Reason, ServiceName};
use crate::pool::{Checkout, ConnId, PoolKey};
use crate::tls::TlsSession;

use super::choose::Chosen;
use super::config::{Endpoint, FrontKind};
use super::event::{CloseReason, DialFailure, Direction, FlowPath, NodeEvent};
use super::flow::{Far, Flow, Owner, Phase, Sock};
use super::labels;
use super::mesh::MeshConn;
use super::relay::after;
use super::resolve::{Dest, NameVerdict};
use super::{FlowId, Node, Output, SockId};

/// How many times connections may refuse to open one flow's stream (their
/// peers' stream limits) before the flow is refused. Each refusal moves the
/// flow to a connection with room or a new one, so a few suffice unless
/// every connection of the peer refuses.
pub(super) const MAX_STREAM_REFUSALS: u8 = 8;

impl Node {
    pub(super) fn accept_front(&mut self, sock: SockId, peer: SocketAddr, front: &FrontKind) {
        let f = FlowId(self.alloc());
        let mut flow = Flow::new(Direction::Outbound, sock, self.now);
        flow.source = Some(self.config.identity.id().clone());
        flow.front = Some(match front {
            FrontKind::Tunnel { to } => FrontEnd::tunnel(to.clone()),
            FrontKind::Socks5 => FrontEnd::socks5(),
            FrontKind::HttpConnect(cfg) => FrontEnd::http_connect(*cfg),
        });
        let mut s = Sock::new(Owner::Flow(f), peer);
        s.request_deadline = Some(after(self.now, self.config.timeouts.front_request));
        self.socks.insert(sock, Box::new(s));
        self.flows.insert(f, Box::new(flow));
        self.arm_idle_sweep();
        // A tunnel knows its target before any byte.
        self.front_data(f, &[]);
    }

    /// Client bytes while the front end is still reading its request.
    pub(super) fn front_data(&mut self, f: FlowId, data: &[u8]) {
        let Some(flow) = self.flows.get_mut(&f) else {
            return;
        };
        let local = flow.local;
        let Some(front) = flow.front.as_mut() else {
            return;
        };
        let step = match front.feed(data) {
            Ok(step) => step,
            Err(_) => return,
        };
        if let Some(s) = self.socks.get_mut(&local) {
            s.prefix.extend_from_slice(&step.send);
            if !step.send.is_empty() {
                self.dirty.insert(local);
            }
        }
        match step.progress {
            Progress::NeedMore => {}
            Progress::Rejected(e) => {
                self.close_flow(f, CloseReason::FrontEnd(e.to_string()), false);
            }
            Progress::Ready { target, leftover } => {
                if let Some(s) = self.socks.get_mut(&local) {
                    s.request_deadline = None;
                    s.held.extend_from_slice(leftover);
                    if !s.held.is_empty() && !s.read_paused {
                        s.read_paused = true;
                        self.outputs.push_back(Output::PauseRead { sock: local });
                    }
                }
                if let Some(flow) = self.flows.get_mut(&f) {
                    flow.phase = Phase::Opening;
                    flow.service = target.to_string();
                }
                self.route(f, &target);
            }
        }
    }

    /// Picks the way to `target`: a mesh service, or egress.
    fn route(&mut self, f: FlowId, target: &front::Target) {
        if let front::Host::Domain(name) = &target.host {
            if let Ok(service) = ServiceName::parse(name.as_str()) {
                if self.route_service(f, &service, target.port) {
                    return;
                }
            }
        }
        self.route_egress(f, target);
    }

    /// Sends `f` to `service:port` as [`Node::choose_endpoint`] says, or
    /// refuses it when every endpoint is ejected or failed it. False when
    /// the mesh knows no way to the service at all (no endpoint, no hub).
    fn route_service(&mut self, f: FlowId, service: &ServiceName, port: u16) -> bool {
        let Some(tried) = self.flows.get(&f).map(|fl| fl.tried.clone()) else {
            return true;
        };
        let source = self.config.identity.id().clone();
        match self.choose_endpoint(service, port, &source, &tried) {
            Some(Chosen::Direct(ep)) => {
                self.route_mesh(f, service, port, ep);
                true
            }
            Some(Chosen::Hub) => self.route_via_hub(f, service, port),
            None => {
                let endpoints = match self.config.hub_links.route {
                    crate::hub::Route::HubOnly => 0,
                    _ => self.direct_candidates(service, port).len(),
                };
                if endpoints == 0 {
                    return false;
                }
                self.refuse(
                    f,
                    Refusal::Unreachable,
                    CloseReason::NoHealthyEndpoint { endpoints },
                );
                true
            }
        }
    }

    fn route_mesh(&mut self, f: FlowId, service: &ServiceName, port: u16, ep: Endpoint) {
        if let Some(flow) = self.flows.get_mut(&f) {
            flow.destination = Some(ep.identity.clone());
            // The service's name alone, as the receiving node labels it
            // (from its export), so both sides count the same series.
            flow.service = service.as_str().to_owned();
            flow.path = Some(FlowPath::Direct);
        }
        self.set_mesh_target(f, Some((service.clone(), port, ep.clone())));
        let key = self.pool_key(&ep);
        let c = match self.pool.checkout(&key) {
            Checkout::Ready(c) | Checkout::Pending(c) => c,
            Checkout::NeedConnection => match self.dial(&key, &ep) {
                Some(c) => c,
                None => match self.fall_back(f, &key, DialFailure::NotStarted) {
                    Some(c) => c,
                    None => {
                        return self.refuse(f, Refusal::GeneralFailure, CloseReason::Unreachable)
                    }
                },
            },
        };
        if let Some(flow) = self.flows.get_mut(&f) {
            flow.pooled = Some(c);
            flow.far = Far::Stream {
                conn: c,
                stream: None,
            };
        }
        self.open_or_wait(f, c);
    }

    /// The pool key of this node's flows to `ep`.
    fn pool_key(&self, ep: &Endpoint) -> PoolKey {
        PoolKey {
            source: self.config.identity.id().clone(),
            node: ep.hbone.to_string(),
            destination: ep.identity.clone(),
        }
    }

    /// `f` could not have a new connection for `key` (`cause`): it takes
    /// the connection [`crate::pool::Pool::fallback`] chooses, if one has
    /// room (a congested connection is slower than a new one would have
    /// been, but a refusal is worse), and the event says so. `None` when
    /// none has room: the caller goes on as without a fallback.
    fn fall_back(&mut self, f: FlowId, key: &PoolKey, cause: DialFailure) -> Option<ConnId> {
        let (Checkout::Ready(c) | Checkout::Pending(c)) = self.pool.fallback(key)? else {
            return None;
        };
        if let Some(m) = self.conns.get(&c) {
            let event = NodeEvent::PoolFallback {
                flow: f,
                peer: m.peer_addr,
                identity: m.peer.clone(),
                send_window: m.h2.send_window(),
                streams: m.streams.len(),
                cause,
            };
            self.emit(event);
        }
        Some(c)
    }

    /// The new connection `f` waited for failed before it came up (its
    /// TCP connect or TLS handshake failed or timed out). If that
    /// connection was opened to spread away from congested ones, these
    /// can still take `f`: it goes to one of them instead of counting the
    /// endpoint as tried (with a single endpoint, that refused the flow).
    /// False when no connection to the endpoint has room.
    fn fall_back_after_failure(&mut self, f: FlowId) -> bool {
        let Some((_, _, ep)) = self.flows.get(&f).and_then(|fl| fl.mesh_target.clone()) else {
            return false;
        };
        let key = self.pool_key(&ep);
        let Some(c) = self.fall_back(f, &key, DialFailure::Failed) else {
            return false;
        };
        if let Some(flow) = self.flows.get_mut(&f) {
            flow.pooled = Some(c);
            flow.stream_closed = false;
            flow.far = Far::Stream {
                conn: c,
                stream: None,
            };
        }
        if self.open_or_wait(f, c) {
            return true;
        }
        // The pool named a connection the node no longer has: the slot
        // goes back and the flow takes the usual way.
        if let Some(p) = self.flows.get_mut(&f).and_then(|fl| fl.pooled.take()) {
            self.pool.release(p, self.now);
        }
        false
    }

    /// Flow `f`, attached to connection `c`, opens its stream now if `c`
    /// is ready, else waits for it. False when `c` is gone.
    pub(super) fn open_or_wait(&mut self, f: FlowId, c: ConnId) -> bool {
        match self.conns.get_mut(&c) {
            Some(m) if m.ready => self.open_stream(f, c),
            Some(m) => m.waiting.push(f),
            None => return false,
        }
        true
    }

    /// Opens a new mesh connection for `key`, registered in the pool with
    /// one claimed slot.
    fn dial(&mut self, key: &PoolKey, ep: &Endpoint) -> Option<ConnId> {
        // One config per endpoint: its tickets go back only to the address
        // that issued them, and only while it must prove the same identity.
        let tls_key = (ep.hbone, ep.identity.clone());
        let client = match self.client_tls.get(&tls_key) {
            Some(cfg) => cfg.clone(),
            None => {
                let cfg = self
                    .config
                    .identity
                    .params()
                    .resumable_client_config([ep.identity.clone()])
                    .ok()?;
                // Bounded like the server's store: past the bound, start
                // over (the next handshakes are full ones).
                let bound = self.config.identity.params().resumption().max_sessions;
                if self.client_tls.len() >= bound.max(1) {
                    self.client_tls.clear();
                }
                self.client_tls.insert(tls_key, cfg.clone());
                cfg
            }
        };
        let tls = TlsSession::client_resumable(&client, self.config.tls_buffer_limit).ok()?;
        let c = ConnId(self.alloc());
        let sock = SockId(self.alloc());
        let h2 = self.new_h2(Role::Client);
        let deadline = after(self.now, self.config.timeouts.tls_handshake);
        let mut conn = MeshConn::new(
            sock,
            ep.hbone,
            tls,
            h2,
            Some(key.clone()),
            self.now,
            deadline,
        );
        conn.connected = false;
        self.conns.insert(c, conn);
        let mut s = Sock::new(Owner::Mesh(c), ep.hbone);
        s.connect_deadline = Some(deadline);
        self.socks.insert(sock, Box::new(s));
        self.pool.insert(c, key.clone());
        self.outputs.push_back(Output::Connect {
            sock,
            addr: ep.hbone,
        });
        Some(c)
    }

    /// A pooled connection's TLS handshake just completed: the first
    /// waiting flow opens its stream now, so its CONNECT (and early data)
    /// leaves in the same flight as our Finished. Waiting for the server's
    /// SETTINGS would cost a round trip: a server that authenticates its
    /// client sends nothing before our Finished. HTTP/2 lets a client send
    /// requests right after its preface (RFC 9113 §3.4); one stream is
    /// within any server's limit, the others wait for the SETTINGS that
    /// say how many it takes.
    pub(super) fn ready_at_handshake(&mut self, c: ConnId) {
        let Some(m) = self.conns.get_mut(&c) else {
            return;
        };
        if m.handshake_seen || m.closing || m.pool_key.is_none() || m.peer.is_none() {
            return;
        }
        m.handshake_seen = true;
        self.count_handshake(c);
        if self.refuse_if_revoked(c) {
            return;
        }
        let first = self
            .conns
            .get_mut(&c)
            .and_then(|m| (!m.waiting.is_empty()).then(|| m.waiting.remove(0)));
        if let Some(f) = first {
            self.open_stream(f, c);
        }
    }

    /// The peer's SETTINGS arrived: waiting flows open their streams.
    pub(super) fn conn_ready(&mut self, c: ConnId) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        conn.ready = true;
        let waiting = core::mem::take(&mut conn.waiting);
        if conn.pool_key.is_some() {
            // The peer's own limit, which the pool also remembers for the
            // next connection to it; a later SETTINGS may lower it, and a
            // stream open then fails cleanly (`stream_refused_locally`).
            let limit = conn.h2.peer_max_concurrent_streams();
            self.pool.ready(c, limit);
            self.endpoint_succeeded(c);
        }
        for f in waiting {
            self.open_stream(f, c);
        }
    }

    pub(super) fn open_stream(&mut self, f: FlowId, c: ConnId) {
        let Some(flow) = self.flows.get(&f) else {
            return;
        };
        let client = self.socks.get(&flow.local).map(|s| s.peer_addr.to_string());
        // The service label carries no port; the CONNECT authority does.
        let authority_text = match &flow.mesh_target {
            Some((service, port, _)) => format!("{}:{port}", service.as_str()),
            None => flow.service.clone(),
        };
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        let opened = match Authority::parse(&authority_text) {
            Ok(authority) => conn
                .h2
                .send_request(&connect_request(&authority, client.as_deref()), false),
            Err(_) => Err(h2::UsageError::InvalidState(StreamId::CONNECTION)),
        };
        let sock = conn.sock;
        let open_now = u32::try_from(conn.h2.open_streams()).unwrap_or(u32::MAX);
        match opened {
            Err(h2::UsageError::CannotOpenStream) => self.stream_refused_locally(f, c, open_now),
            Ok(st) => {
                conn.streams.insert(st, f);
                if let Some(flow) = self.flows.get_mut(&f) {
                    flow.far = Far::Stream {
                        conn: c,
                        stream: Some(st),
                    };
                }
                self.dirty.insert(sock);
                self.send_early(f);
            }
            Err(_) => self.refuse(f, Refusal::GeneralFailure, CloseReason::Unreachable),
        }
    }

    /// Connection `c` could not open the stream of `f`: the peer allows
    /// fewer streams than we assumed (a SETTINGS lowered its limit, maybe
    /// to 0), or `c` is shutting down. The pool stops offering `c` until
    /// its flows end, and the flow goes to another connection, at most
    /// [`MAX_STREAM_REFUSALS`] times: a peer that refuses streams on every
    /// connection, or slot counts that disagree with the streams really
    /// open, must not cost a flow an unbounded chain of attempts (it once
    /// recursed until the stack overflowed). Past that it is refused with
    /// a reason that says so.
    fn stream_refused_locally(&mut self, f: FlowId, c: ConnId, open_now: u32) {
        let Some(flow) = self.flows.get_mut(&f) else {
            return;
        };
        flow.stream_refusals = flow.stream_refusals.saturating_add(1);
        let refusals = flow.stream_refusals;
        let retry = match flow.pooled.take() {
            Some(p) => {
                flow.far = Far::None;
                self.pool.release(p, self.now);
                flow.mesh_target.clone()
            }
            // Not a pooled connection (a hub link, an inner end-to-end
            // connection): no other connection to try here.
            None => None,
        };
        // After the release: the slots still claimed are other flows'.
        #[cfg(feature = "sim-bugs")]
        let learn = !self.injected(crate::sim_bugs::Bug::PoolReuseAfterGoaway);
        #[cfg(not(feature = "sim-bugs"))]
        let learn = true;
        if learn {
            self.pool.refused_stream(c, open_now);
        }
        match retry {
            Some((service, port, ep)) if refusals < MAX_STREAM_REFUSALS => {
                self.route_mesh(f, &service, port, ep)
            }
            _ => self.refuse(
                f,
                Refusal::GeneralFailure,
                CloseReason::StreamLimit { refusals },
            ),
        }
    }

    pub(super) fn on_response(
        &mut self,
        c: ConnId,
        stream: StreamId,
        response: &h2::Response,
        end: bool,
    ) {
        let Some(f) = self
            .conns
            .get(&c)
            .and_then(|m| m.streams.get(&stream).copied())
        else {
            return;
        };
        let status = response.status;
        match ConnectStatus::from_code(status) {
            Ok(ConnectStatus::Established) => {
                let named = self.hub_named_destination(c, response);
                if let Some(flow) = self.flows.get_mut(&f) {
                    flow.peer_finished |= end;
                    if flow.destination.is_none() {
                        flow.destination = named;
                    }
                }
                self.flow_established(f, None);
            }
            // A plain relay refused for want of end-to-end mode goes end to end.
            _ if self.retry_end_to_end(f, c, stream, end) => {}
            Ok(ConnectStatus::Unavailable) if self.retry_elsewhere(f, c, stream, end) => {}
            Ok(ConnectStatus::Unavailable)
                if self.retry_on_other_hub(f, c, Some((stream, end))) => {}
            other => {
                let refusal = match other {
                    Ok(ConnectStatus::Denied) => Refusal::Denied {
                        rule: "remote policy".into(),
                    },
                    Ok(ConnectStatus::Unavailable) => Refusal::Unreachable,
                    _ => Refusal::GeneralFailure,
                };
                if let Some(flow) = self.flows.get_mut(&f) {
                    flow.stream_closed = end;
                }
                if let (true, Some(m)) = (end, self.conns.get_mut(&c)) {
                    // The answer ended the peer's side; ending ours closes
                    // the stream on both nodes without a reset (the server
                    // drops whatever DATA we sent early).
                    let _ = m.h2.finish(stream);
                    self.dirty.insert(m.sock);
                }
                self.refuse(f, refusal, CloseReason::Refused { status });
            }
        }
    }

    /// The agent a hub says it relayed a plain CONNECT to (the 200's
    /// [`DESTINATION_HEADER`]): believed only on a hub link, whose peer
    /// proved a hub identity, as B believes the hub's source header.
    fn hub_named_destination(&self, c: ConnId, response: &h2::Response) -> Option<SpiffeId> {
        if !self.links.slot_of_ref(c) {
            return None;
        }
        let value = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(DESTINATION_HEADER.as_bytes()))?;
        SpiffeId::parse(core::str::from_utf8(&value.value).ok()?).ok()
    }

    /// A direct endpoint answered 503: it does not serve the service (the
    /// registry row was stale, the directory is wrong, its target is down).
    /// Before any byte, the flow leaves that stream for another endpoint or
    /// a hub. False when it cannot (not a direct flow, bytes already sent,
    /// nowhere else to go): the caller refuses it with the 503.
    fn retry_elsewhere(&mut self, f: FlowId, c: ConnId, stream: StreamId, end: bool) -> bool {
        let Some(flow) = self.flows.get(&f) else {
            return false;
        };
        let unsent = flow.phase == Phase::Opening && flow.bytes_sent == 0;
        let Some((service, port, ep)) = flow.mesh_target.clone().filter(|_| unsent) else {
            return false;
        };
        let mut tried = flow.tried.clone();
        tried.push(ep);
        let source = self.config.identity.id().clone();
        let Some(choice) = self.choose_endpoint(&service, port, &source, &tried) else {
            return false;
        };
        let pooled = self.flows.get_mut(&f).and_then(|flow| {
            flow.tried = tried;
            flow.far = Far::None;
            flow.stream_closed = false;
            flow.pooled.take()
        });
        self.leave_answered_stream(c, stream, end);
        if let Some(p) = pooled {
            self.pool.release(p, self.now);
        }
        // A 503 means the peer reached no target: what went early goes
        // again on the next stream.
        if let Some(local) = self.flows.get(&f).map(|fl| fl.local) {
            self.replay_early(f, local);
        }
        match choice {
            Chosen::Direct(next) => self.route_mesh(f, &service, port, next),
            Chosen::Hub if self.route_via_hub(f, &service, port) => {}
            Chosen::Hub => self.refuse(f, Refusal::Unreachable, CloseReason::Unreachable),
        }
        true
    }

    /// The tunnel or direct connection is up: reply to the front end,
    /// start relaying.
    pub(super) fn flow_established(&mut self, f: FlowId, bound: Option<SocketAddr>) {
        let Some(flow) = self.flows.get_mut(&f) else {
            return;
        };
        flow.phase = Phase::Relay;
        // The bytes sent before the 200 arrived: no replay needs them now.
        let early = core::mem::take(&mut flow.early).len() as u64;
        flow.bytes_sent += early;
        labels::count(&mut self.metrics, &**flow, |c| {
            c.bytes_sent += early;
            c.opened += 1;
        });
        // The front end's last word: an idle flow keeps none of its state.
        let reply = flow
            .front
            .take()
            .and_then(|mut fe| fe.reply(&Outcome::Connected { bound }).ok())
            .unwrap_or_default();
        let local = flow.local;
        let event = NodeEvent::FlowOpened {
            flow: f,
            direction: flow.direction,
            source: flow.source.clone(),
            destination: flow.destination.clone(),
            service: flow.service.clone(),
            path: flow.path,
        };
        if let Some(s) = self.socks.get_mut(&local) {
            s.prefix.extend_from_slice(&reply);
        }
        self.dirty.insert(local);
        self.emit(event);
        self.settle_flow(f);
    }

    /// The flow will not open: the front end's answer, then close.
    pub(super) fn refuse(&mut self, f: FlowId, refusal: Refusal, reason: CloseReason) {
        let Some(flow) = self.flows.get_mut(&f) else {
            return;
        };
        let reply = flow
            .front
            .as_mut()
            .and_then(|fe| fe.reply(&Outcome::Refused(refusal)).ok())
            .unwrap_or_default();
        let local = flow.local;
        if let Some(s) = self.socks.get_mut(&local) {
            s.prefix.extend_from_slice(&reply);
        }
        self.close_flow(f, reason, false);
    }

    fn route_egress(&mut self, f: FlowId, target: &front::Target) {
        let dest = match &target.host {
            front::Host::Ip(ip) => {
                let addr = SocketAddr::new(*ip, target.port);
                let decision = self.egress_recheck(None, addr);
                if !decision.allowed {
                    return self.deny_egress(f, decision);
                }
                Dest::Addr(addr)
            }
            front::Host::Domain(name) => {
                let check_egress = match self.egress_for_name(name, target.port) {
                    NameVerdict::Allowed => false,
                    NameVerdict::ByAddress => true,
                    NameVerdict::Denied(decision) => return self.deny_egress(f, decision),
                };
                if let Some(flow) = self.flows.get_mut(&f) {
                    flow.egress_name = Some(name.clone());
                }
                Dest::Name {
                    host: name.as_str().to_string(),
                    port: target.port,
                    check_egress,
                }
            }
        };
        let sock = self.start_connect(f, dest);
        if let Some(flow) = self.flows.get_mut(&f) {
            flow.far = Far::Tcp(sock);
            flow.path = Some(FlowPath::Egress);
        }
    }

    /// Egress refused `f`: the decision is logged and the front end hears
    /// which rule.
    pub(super) fn deny_egress(&mut self, f: FlowId, decision: Decision) {
        if let Some(flow) = self.flows.get(&f) {
            let flow_view = Flow {
                source: flow.source.clone(),
                service: flow.service.clone(),
                ..Flow::new(Direction::Outbound, flow.local, self.now)
            };
            self.deny_event(&decision, &flow_view);
        }
        let rule = decision
            .rule
            .as_ref()
            .map_or_else(|| decision.reason.code().to_string(), |r| r.to_string());
        self.refuse(f, Refusal::Denied { rule }, CloseReason::Denied(decision));
    }

    /// The stream of `f` was reset: before 200 the front end hears why,
    /// unless the peer refused the stream unprocessed (REFUSED_STREAM, also
    /// what a GOAWAY says of streams above its last id): that flow may
    /// retry, replaying what it sent early (RFC 9113 §8.7).
    pub(super) fn stream_refused_or_reset(&mut self, f: FlowId, code: ErrorCode) {
        let opening = self
            .flows
            .get(&f)
            .is_some_and(|fl| fl.phase == Phase::Opening && fl.direction == Direction::Outbound);
        if opening && code == ErrorCode::REFUSED_STREAM {
            self.leave_stream(f);
            return self.retry_opening(f, true, true, CloseReason::StreamReset(code));
        }
        if opening {
            self.fail_opening(f, CloseReason::StreamReset(code));
        } else {
            self.close_flow(f, CloseReason::StreamReset(code), true);
        }
    }

    /// The peer answered `stream` of `c` without a tunnel (a 503, a plain
    /// relay refused) and its flow goes elsewhere: the stream is forgotten
    /// and our side ended too, by END_STREAM when the answer `ended` the
    /// peer's side, else by a reset. Left half-open, it would count
    /// against the peer's stream limit for as long as the connection lives.
    pub(super) fn leave_answered_stream(&mut self, c: ConnId, stream: StreamId, ended: bool) {
        if let Some(m) = self.conns.get_mut(&c) {
            m.streams.remove(&stream);
            let _ = match ended {
                true => m.h2.finish(stream),
                false => m.h2.reset(stream, ErrorCode::CANCEL),
            };
            self.dirty.insert(m.sock);
        }
    }

    /// Forgets the stream of `f` on a connection that lives on, and gives
    /// its pool slot back.
    fn leave_stream(&mut self, f: FlowId) {
        let Some(flow) = self.flows.get_mut(&f) else {
            return;
        };
        if let Far::Stream {
            conn,
            stream: Some(st),
        } = flow.far
        {
            if let Some(m) = self.conns.get_mut(&conn) {
                m.streams.remove(&st);
            }
        }
        flow.stream_closed = true;
        if let Some(c) = flow.pooled.take() {
            self.pool.release(c, self.now);
        }
    }

    /// The mesh connection under `f` is gone; `came_up` says whether it
    /// had been established (else its connect or handshake failed).
    pub(super) fn flow_lost(&mut self, f: FlowId, came_up: bool) {
        let opening = self
            .flows
            .get(&f)
            .is_some_and(|fl| fl.phase == Phase::Opening && fl.direction == Direction::Outbound);
        if !opening {
            return self.close_flow(f, CloseReason::ConnectionLost, true);
        }
        // Bytes sent early may have reached the target already (the peer
        // connected it and its 200 was lost with the connection): no retry
        // then, or the target could see them twice.
        let unsent = self
            .flows
            .get(&f)
            .is_some_and(|fl| fl.early.is_empty() && fl.bytes_sent == 0);
        let hub = match self.flows.get(&f).map(|fl| fl.far) {
            Some(Far::Stream { conn, .. }) => Some(conn),
            _ => None,
        };
        if let Some(hub) = hub.filter(|_| unsent) {
            if self.retry_on_other_hub(f, hub, None) {
                return;
            }
        }
        self.retry_opening(f, came_up, unsent, CloseReason::ConnectionLost);
    }

    /// An opening flow lost its stream before any byte was known to
    /// arrive: when `may_retry`, it goes elsewhere, replaying what it sent
    /// early: to an endpoint it has not seen fail, or a hub. A connection
    /// that was up (`came_up`) may just have been stale (its peer
    /// restarted unnoticed), so the same endpoint gets one more chance on
    /// a fresh connection first. Each endpoint fails a flow at most once
    /// and the stale retry happens once, so retries are bounded by the
    /// service's endpoints. Else the flow is refused with `reason`.
    /// A connection that never came up first hands its flows to the other
    /// connections to the same endpoint that have room (congested ones it
    /// was opened to relieve), see [`Node::fall_back_after_failure`].
    fn retry_opening(&mut self, f: FlowId, came_up: bool, may_retry: bool, reason: CloseReason) {
        if may_retry && !came_up && self.fall_back_after_failure(f) {
            return;
        }
        let retry = self.flows.get_mut(&f).and_then(|flow| {
            let (service, port, ep) = flow.mesh_target.clone().filter(|_| may_retry)?;
            if came_up && !flow.stale_retried {
                flow.stale_retried = true;
            } else {
                flow.tried.push(ep);
            }
            flow.far = Far::None;
            flow.pooled = None;
            flow.stream_closed = false;
            Some((service, port, flow.local))
        });
        match retry {
            Some((service, port, local)) => {
                self.replay_early(f, local);
                if !self.route_service(f, &service, port) {
                    self.fail_opening(f, reason);
                }
            }
            None => self.fail_opening(f, reason),
        }
    }

    /// An opening flow cannot go on. Without early bytes its front end
    /// hears why; with them the client's stream is cut short somewhere
    /// unknown, and only a reset says so (a FIN would claim the bytes
    /// arrived).
    fn fail_opening(&mut self, f: FlowId, reason: CloseReason) {
        match self.flows.get(&f).is_some_and(|fl| !fl.early.is_empty()) {
            true => self.close_flow(f, reason, true),
            false => self.refuse(f, Refusal::Unreachable, reason),
        }
    }

    /// A retry starts over: the bytes sent early go back in front of what
    /// the client socket still holds, to be sent again on the new stream.
    pub(super) fn replay_early(&mut self, f: FlowId, local: SockId) {
        let Some(flow) = self.flows.get_mut(&f) else {
            return;
        };
        let mut again = core::mem::take(&mut flow.early);
        if let Some(s) = self.socks.get_mut(&local) {
            again.extend_from_slice(&s.held);
            s.held = again;
        }
        // No stream yet: the client waits (paused) until one opens.
        self.send_early(f);
    }

    /// After a configuration swap: flows the new policy denies are closed
    /// with the deciding rule. Returns how many.
    pub(super) fn reauthorize(&mut self) -> usize {
        let mut denied = Vec::new();
        for (f, flow) in &self.flows {
            let decision = match flow.direction {
                Direction::Inbound => {
                    let Some(source) = &flow.source else { continue };
                    let exported = self
                        .config
                        .exports
                        .iter()
                        .any(|e| e.port == flow.port && e.service.as_str() == flow.service);
                    if !exported {
                        denied.push((*f, Decision::new(Reason::NotExported, None)));
                        continue;
                    }
                    let addr = match flow.far {
                        Far::Stream { conn, .. } => self.conns.get(&conn).map(|m| m.peer_addr.ip()),
                        _ => None,
                    };
                    self.config.authz.evaluate(&AuthzRequest {
                        source,
                        source_addr: addr,
                        service: &flow.service,
                        port: flow.port,
                    })
                }
                Direction::Outbound => {
                    let Far::Tcp(t) = flow.far else { continue };
                    // A socket still resolving is judged when its answer
                    // comes, under the configuration of that moment.
                    let Some(addr) = self
                        .socks
                        .get(&t)
                        .filter(|s| s.resolving.is_none())
                        .map(|s| s.peer_addr)
                    else {
                        continue;
                    };
                    self.egress_recheck(flow.egress_name.as_ref(), addr)
                }
                // Relays are not node flows (the hub role keeps them).
                Direction::Relayed => continue,
            };
            if !decision.allowed {
                denied.push((*f, decision));
            }
        }
        let n = denied.len();
        for (f, decision) in denied {
            self.close_flow(f, CloseReason::Reconfigured(decision), true);
        }
        n
    }
}
