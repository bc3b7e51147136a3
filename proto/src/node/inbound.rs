//! The inbound path: HBONE accept → TLS server → HTTP/2 server → CONNECT
//! checked (400) → export resolved (503) → authorized with the peer's
//! verified identity (401) → connect to the export's target → 200 on
//! success, 503 on failure.

use core::net::SocketAddr;

use crate::h2::{Request, Role, StreamId};
use crate::hbone::{parse_connect, ConnectStatus};
use crate::policy::{AuthzRequest, Decision, Target};
use crate::pool::ConnId;
use crate::tls::TlsSession;

use super::event::{CloseReason, Direction, FlowPath, NodeEvent};
use super::flow::{Far, Flow, Owner, Phase, Sock};
use super::labels::{self, Labels};
use super::mesh::MeshConn;
use super::relay::after;
use super::resolve::Dest;
use super::{FlowId, Node, Output, SockId};

impl Node {
    pub(super) fn accept_hbone(&mut self, sock: SockId, peer: SocketAddr) {
        let c = ConnId(self.alloc());
        let mut s = Sock::new(Owner::Mesh(c), peer);
        let deadline = after(self.now, self.config.timeouts.tls_handshake);
        // A hub's listener also speaks the reverse-link ALPN, from a config
        // of its own that does not resume.
        let session = if self.config.hub.is_none() {
            TlsSession::server_resumable(
                self.config.identity.resumable_server_config(),
                self.config.tls_buffer_limit,
            )
        } else {
            let server = self.hbone_server_config();
            TlsSession::server(server, self.config.tls_buffer_limit)
        };
        match session {
            Ok(tls) => {
                let h2 = self.new_h2(Role::Server);
                self.conns.insert(
                    c,
                    MeshConn::new(sock, peer, tls, h2, None, self.now, deadline),
                );
                self.hub_accepted(c);
                self.socks.insert(sock, Box::new(s));
                self.dirty.insert(sock);
            }
            Err(error) => {
                // Only a broken server config gets here; refuse the socket.
                s.closing = Some(true);
                self.emit(NodeEvent::HandshakeFailed {
                    peer,
                    error: super::HandshakeError::Tls(error),
                });
                self.outputs.push_back(Output::Close { sock, reset: true });
            }
        }
    }

    /// Answers a stream that gets no flow, with END_STREAM.
    fn answer(&mut self, c: ConnId, stream: StreamId, status: ConnectStatus) {
        self.respond(c, stream, status, true);
    }

    /// Sends the CONNECT response `status` on `stream`; `end_stream` when no
    /// tunnel follows it.
    fn respond(&mut self, c: ConnId, stream: StreamId, status: ConnectStatus, end_stream: bool) {
        if let Some(m) = self.conns.get_mut(&c) {
            // The stream may have been reset meanwhile; then there is no one
            // to answer and the error says nothing new.
            let _ = m.h2.send_response(stream, &status.response(), end_stream);
            self.dirty.insert(m.sock);
        }
    }

    pub(super) fn on_request(
        &mut self,
        c: ConnId,
        stream: StreamId,
        request: &Request,
        end_stream: bool,
    ) {
        if self.tunnel_accept(c, stream, request, end_stream) {
            return;
        }
        let Some(source_ip) = self.conns.get(&c).map(|m| m.peer_addr.ip()) else {
            return;
        };
        let source = self.request_source(c, request);
        let f = FlowId(self.alloc());
        let mut flow = Flow::new(Direction::Inbound, SockId(0), self.now);
        // A relayed CONNECT arrives on the reverse link; an end-to-end one
        // on an inner connection inside a pair stream: both crossed a hub.
        let via_hub = self
            .conns
            .get(&c)
            .is_some_and(|m| m.reverse || m.tunnel.is_some());
        flow.path = Some(match via_hub {
            true => FlowPath::Hub,
            false => FlowPath::Direct,
        });
        flow.source = source.clone();
        flow.destination = Some(self.config.identity.id().clone());
        let authority = match parse_connect(request) {
            Ok(a) => a,
            Err(_) => {
                flow.service = String::from_utf8_lossy(request.authority.as_deref().unwrap_or(b""))
                    .into_owned();
                self.answer(c, stream, ConnectStatus::BadRequest);
                return self.log_unopened(f, flow, CloseReason::BadRequest);
            }
        };
        flow.service = authority.to_string();
        let export = match self.config.exports.resolve(&authority) {
            Ok(e) => e.clone(),
            Err(decision) => {
                self.answer(c, stream, ConnectStatus::Unavailable);
                self.deny_event(&decision, &flow);
                return self.log_unopened(f, flow, CloseReason::Denied(decision));
            }
        };
        flow.service = export.service.as_str().to_string();
        flow.port = export.port;
        if self.relayed_plaintext_refused(c, &export) {
            // Only the inner TLS session of end-to-end mode proves who A
            // is; a hub's word (`warren-source`) is not enough here.
            self.answer(c, stream, ConnectStatus::Denied);
            let error = format!(
                "plain relayed CONNECT for end-to-end service {}:{} refused",
                export.service, export.port
            );
            let peer = self.conns.get(&c).and_then(|m| m.peer.clone());
            self.emit(NodeEvent::Hub(crate::hub::HubEvent::BadRequest {
                peer,
                error,
            }));
            return self.log_unopened(f, flow, CloseReason::Refused { status: 401 });
        }
        let Some(source) = source else {
            // No verified identity: never reaches authorization.
            self.answer(c, stream, ConnectStatus::Denied);
            return self.log_unopened(f, flow, CloseReason::Unreachable);
        };
        let decision = self.config.authz.evaluate(&AuthzRequest {
            source: &source,
            source_addr: Some(source_ip),
            service: export.service.as_str(),
            port: export.port,
        });
        if !decision.allowed {
            self.answer(c, stream, ConnectStatus::for_refusal(&decision));
            self.deny_event(&decision, &flow);
            return self.log_unopened(f, flow, CloseReason::Denied(decision));
        }
        let dest = match &export.target {
            Target::Addr(addr) => Dest::Addr(*addr),
            // A literal address needs no resolver.
            Target::Host { host, port } => match host.parse() {
                Ok(ip) => Dest::Addr(SocketAddr::new(ip, *port)),
                // Export targets are the operator's own: no egress rules.
                Err(_) => Dest::Name {
                    host: host.clone(),
                    port: *port,
                    check_egress: false,
                },
            },
        };
        let sock = self.start_connect(f, dest);
        flow.local = sock;
        flow.far = Far::Stream {
            conn: c,
            stream: Some(stream),
        };
        flow.phase = Phase::Opening;
        flow.peer_finished = end_stream;
        self.flows.insert(f, Box::new(flow));
        self.arm_idle_sweep();
        if let Some(m) = self.conns.get_mut(&c) {
            m.streams.insert(stream, f);
        }
    }

    /// Whether a CONNECT on `c` for `export` is a hub's plain relay of an
    /// export that takes hub flows only end to end.
    fn relayed_plaintext_refused(&self, c: ConnId, export: &crate::policy::Export) -> bool {
        let relayed = self.conns.get(&c).is_some_and(|m| m.reverse) && self.links.slot_of_ref(c);
        let sp = crate::control::ServicePort {
            service: export.service.clone(),
            port: export.port,
        };
        relayed && !self.config.relay_plaintext.contains(&sp)
    }

    pub(super) fn deny_event(&mut self, decision: &Decision, flow: &Flow) {
        self.emit(NodeEvent::PolicyDenied {
            decision: decision.clone(),
            source: flow.source.clone(),
            destination: flow.service.clone(),
        });
    }

    /// The access-log line of a flow refused before it had a socket.
    pub(super) fn log_unopened(&mut self, f: FlowId, flow: Flow, reason: CloseReason) {
        labels::count(&mut self.metrics, &flow, |c| c.closed += 1);
        *self.closes.entry((flow.key(), reason.label())).or_default() += 1;
        self.emit(NodeEvent::FlowClosed {
            flow: f,
            direction: flow.direction,
            source: flow.source,
            destination: flow.destination,
            service: flow.service,
            bytes_sent: 0,
            bytes_received: 0,
            duration: core::time::Duration::ZERO,
            reason,
            path: flow.path,
        });
    }

    /// The local target (inbound) or egress destination (outbound) is
    /// connected.
    pub(super) fn target_connected(&mut self, f: FlowId) {
        let Some(flow) = self.flows.get(&f) else {
            return;
        };
        match (flow.direction, flow.far) {
            (
                Direction::Inbound,
                Far::Stream {
                    conn,
                    stream: Some(st),
                },
            ) => {
                self.respond(conn, st, ConnectStatus::Established, false);
                self.flow_established(f, None);
            }
            (Direction::Outbound, Far::Tcp(_)) => self.flow_established(f, None),
            _ => {}
        }
    }

    /// The connect to the target failed or timed out.
    pub(super) fn target_failed(&mut self, f: FlowId, reason: CloseReason) {
        let Some(flow) = self.flows.get(&f) else {
            return;
        };
        match (flow.direction, flow.far) {
            (
                Direction::Inbound,
                Far::Stream {
                    conn,
                    stream: Some(st),
                },
            ) => {
                self.respond(conn, st, ConnectStatus::Unavailable, true);
                if let Some(flow) = self.flows.get_mut(&f) {
                    // Answered and ended: nothing to reset.
                    flow.stream_closed = true;
                }
                self.close_flow(f, reason, false);
            }
            _ => {
                let refusal = match reason {
                    CloseReason::Timeout => crate::front::Refusal::Timeout,
                    // The name did not resolve.
                    CloseReason::Unreachable => crate::front::Refusal::Unreachable,
                    _ => crate::front::Refusal::Refused,
                };
                self.refuse(f, refusal, reason);
            }
        }
    }
}
