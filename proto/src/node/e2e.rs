//! End-to-end mode's two ends (see [`crate::hub`]): agent A routes a flow
//! onto the pooled inner connection to the endpoint it picked from a hub's
//! registry (dialling one inside a new pair stream if needed, and retrying
//! a plain relay that came back refused while the registry now says end to
//! end); agent B accepts pair streams from its hubs and runs the inner TLS
//! server in them. What carries an inner connection's bytes is `tunnel`.

use std::sync::Arc;

use bytes::Bytes;
use rustls::ServerConfig;

use crate::control::{Endpoint, RegistrySnapshot, ServicePort};
use crate::h2::{Header, Request, Role, StreamId};
use crate::hbone::{connect_request, ConnectStatus};
use crate::hub::{HubEvent, ALPN_E2E, E2E_AUTHORITY, E2E_INSTANCE_HEADER, E2E_PEER_HEADER};
use crate::identity::SpiffeId;
use crate::policy::{Authority, ServiceName};
use crate::pool::{Checkout, ConnId, PoolKey};
use crate::tls::TlsSession;

use super::event::{FlowPath, NodeEvent};
use super::flow::Far;
use super::mesh::MeshConn;
use super::relay::after;
use super::tunnel::Tunnel;
use super::{FlowId, Node};

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
        self.open_or_wait(f, c)
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
        let target = Authority::parse(&flow.service)
            .ok()
            .and_then(|a| a.service_port());
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
        self.leave_answered_stream(c, stream, ended);
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
}
