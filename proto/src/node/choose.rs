//! Which endpoint a new outbound flow goes to, and which way.
//!
//! A service's *direct-capable* endpoints are those whose HBONE address
//! the agent knows: its static directory entry, or else the rows of the
//! hubs' registries that carry the address their agent announced. They
//! are balanced per service port with [`crate::balance`] (the strategy
//! from [`Balancing`](super::config::Balancing)); the identity each must
//! prove comes with it and is verified in TLS. When none is left (none
//! known, all ejected, or all already failed this flow) the flow goes via
//! a hub if [`Route`] allows and a hub connection exists.
//!
//! The health bookkeeping lives here too: a failed connect or handshake
//! counts against the endpoint in every balancer that lists it (it is the
//! node that fails, whatever service was asked for), a completed one
//! restores it, and flows are counted per endpoint for least-flows.

use std::collections::BTreeMap;

use crate::balance::Balancer;
use crate::control::ServicePort;
use crate::hub::Route;
use crate::identity::SpiffeId;
use crate::policy::ServiceName;
use crate::pool::ConnId;

use super::config::Endpoint;
use super::event::NodeEvent;
use super::{FlowId, Node};

/// The agent's balancers, one per service port asked for.
pub(super) type Balancers = BTreeMap<ServicePort, Balancer<Endpoint>>;

/// Where a flow to a mesh service goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Chosen {
    /// Dial this endpoint (or reuse a pooled connection to it).
    Direct(Endpoint),
    /// Open the CONNECT on a hub's forward connection; the hub picks the
    /// serving agent.
    Hub,
}

impl Node {
    /// The endpoints of `service:port` this node can dial: the directory's
    /// (any port), else every hub registry row with an address, deduplicated
    /// across hubs.
    pub(super) fn direct_candidates(&self, service: &ServiceName, port: u16) -> Vec<Endpoint> {
        if let Some(eps) = self.config.directory.get(service) {
            return eps.clone();
        }
        let sp = ServicePort {
            service: service.clone(),
            port,
        };
        let mut eps = self.links.direct_endpoints(&sp);
        eps.sort();
        eps.dedup();
        eps
    }

    /// Chooses where a flow from `source` to `service:port` goes, leaving
    /// out the endpoints in `tried` (those that already failed this flow).
    /// In order: a healthy direct-capable endpoint; a hub, if the route
    /// allows one and one is connected; on a flow's first choice, the
    /// ejected endpoint readmitted soonest as a probe (without it, a
    /// service whose every endpoint is ejected would refuse all flows for
    /// the whole back-off even after it recovered, and for ever on a host
    /// whose clock stalls). `None` when nothing is left: the caller
    /// refuses the flow (or, if the service has no candidates at all,
    /// treats the name as a destination outside the mesh).
    pub(super) fn choose_endpoint(
        &mut self,
        service: &ServiceName,
        port: u16,
        source: &SpiffeId,
        tried: &[Endpoint],
    ) -> Option<Chosen> {
        let route = self.config.hub_links.route;
        let candidates = match route {
            Route::HubOnly => Vec::new(),
            Route::DirectFirst | Route::DirectOnly => self.direct_candidates(service, port),
        };
        let sp = ServicePort {
            service: service.clone(),
            port,
        };
        if candidates.is_empty() {
            self.balancers.remove(&sp);
        } else {
            let cfg = &self.config.balance;
            let strategy = cfg.strategy_for(service);
            let balancer = self
                .balancers
                .entry(sp.clone())
                .or_insert_with(|| Balancer::new(strategy, cfg.ejection, cfg.seed));
            balancer.set_policy(strategy, cfg.ejection);
            balancer.set_endpoints(candidates);
            if let Some(ep) = balancer.choose(self.now, source, tried) {
                return Some(Chosen::Direct(ep));
            }
        }
        if route != Route::DirectOnly && self.links.has_forward(&self.conns) {
            return Some(Chosen::Hub);
        }
        let probe = self
            .balancers
            .get(&sp)
            .filter(|_| tried.is_empty())
            .and_then(|b| b.soonest_readmitted(tried))?;
        Some(Chosen::Direct(probe))
    }

    /// Forgets the balancers of service ports that have no direct-capable
    /// endpoint any more (after a registry or configuration change), so
    /// their number follows what the node knows, not what it ever knew.
    pub(super) fn prune_balancers(&mut self) {
        let keys: Vec<ServicePort> = self.balancers.keys().cloned().collect();
        for sp in keys {
            if self.direct_candidates(&sp.service, sp.port).is_empty() {
                self.balancers.remove(&sp);
            }
        }
    }

    /// The endpoint a pooled connection was dialled to.
    fn endpoint_of(&self, c: ConnId) -> Option<Endpoint> {
        let m = self.conns.get(&c)?;
        let key = m.pool_key.as_ref()?;
        Some(Endpoint {
            hbone: m.peer_addr,
            identity: key.destination.clone(),
        })
    }

    /// A pooled connection's connect or handshake failed: its endpoint
    /// counts a failure everywhere it is listed, and is reported when that
    /// ejects it.
    pub(super) fn endpoint_failed(&mut self, c: ConnId) {
        let Some(ep) = self.endpoint_of(c) else {
            return;
        };
        let now = self.now;
        let ejected = self
            .balancers
            .values_mut()
            .filter_map(|b| b.connect_failed(now, &ep))
            .max();
        if let Some(until) = ejected {
            self.emit(NodeEvent::EndpointEjected {
                endpoint: ep,
                back_off: until.saturating_duration_since(now),
            });
        }
    }

    /// A pooled connection came up: its endpoint is healthy everywhere.
    pub(super) fn endpoint_succeeded(&mut self, c: ConnId) {
        let Some(ep) = self.endpoint_of(c) else {
            return;
        };
        for b in self.balancers.values_mut() {
            b.connect_succeeded(&ep);
        }
    }

    /// Points flow `f` at `target` (or at nothing), moving its count in
    /// the balancers from the endpoint it had.
    pub(super) fn set_mesh_target(
        &mut self,
        f: FlowId,
        target: Option<(ServiceName, u16, Endpoint)>,
    ) {
        let Some(flow) = self.flows.get_mut(&f) else {
            return;
        };
        let old = core::mem::replace(&mut flow.mesh_target, target.clone());
        if let Some(old) = old {
            self.count_flow(old, false);
        }
        if let Some(new) = target {
            self.count_flow(new, true);
        }
    }

    /// One more (`started`) or one fewer flow on a service port's endpoint.
    pub(super) fn count_flow(
        &mut self,
        (service, port, ep): (ServiceName, u16, Endpoint),
        started: bool,
    ) {
        let sp = ServicePort { service, port };
        if let Some(b) = self.balancers.get_mut(&sp) {
            if started {
                b.flow_started(&ep);
            } else {
                b.flow_ended(&ep);
            }
        }
    }
}
