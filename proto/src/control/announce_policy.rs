//! Which services an agent may announce, decided from its verified
//! identity alone.
//!
//! A hub that filed whatever an agent announced would let any mesh member
//! hijack any service name (ZTM's hub checks nothing of the kind). Here the
//! identity comes from the TLS session, the rules from the hub's
//! configuration, and the message contributes only the names it asks for.

use super::message::{Announce, Rejection, ServicePort};
use crate::identity::SpiffeId;
use crate::policy::{Glob, PrincipalPattern, ServiceName};
use std::collections::BTreeSet;

/// The default limit on service ports one agent connection announces.
pub const DEFAULT_MAX_SERVICES_PER_AGENT: u32 = 256;

/// Service names a rule lets its principals export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceAllowance {
    /// Any service in the namespace of the agent's own identity (the
    /// Kubernetes convention: a service account serves its namespace).
    OwnNamespace,
    /// Services whose `name.namespace` matches a `*` glob, e.g. `*.shop`.
    Matching(Glob),
}

impl ServiceAllowance {
    fn allows(&self, identity: &SpiffeId, service: &ServiceName) -> bool {
        match self {
            ServiceAllowance::OwnNamespace => service.namespace() == identity.namespace(),
            ServiceAllowance::Matching(glob) => glob.matches(service.as_str()),
        }
    }
}

/// One rule: identities matching any principal may export services
/// matching any allowance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRule {
    /// Whom the rule is for.
    pub principals: Vec<PrincipalPattern>,
    /// What they may export.
    pub services: Vec<ServiceAllowance>,
}

/// The hub's announcement policy. With no rules nobody may export
/// anything (default deny).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncePolicy {
    rules: Vec<ExportRule>,
    max_services: u32,
}

impl Default for AnnouncePolicy {
    fn default() -> AnnouncePolicy {
        AnnouncePolicy::new(Vec::new())
    }
}

impl AnnouncePolicy {
    /// A policy from rules, with the default per-agent limit.
    pub fn new(rules: Vec<ExportRule>) -> AnnouncePolicy {
        AnnouncePolicy {
            rules,
            max_services: DEFAULT_MAX_SERVICES_PER_AGENT,
        }
    }

    /// Sets the most service ports one announcement may carry.
    pub fn with_max_services(mut self, max: u32) -> AnnouncePolicy {
        self.max_services = max;
        self
    }

    /// Whether `identity` may export `service` (any port).
    pub fn may_export(&self, identity: &SpiffeId, service: &ServiceName) -> bool {
        self.rules.iter().any(|rule| {
            rule.principals.iter().any(|p| p.matches(identity))
                && rule.services.iter().any(|s| s.allows(identity, service))
        })
    }

    /// Accepts an announcement from the agent whose TLS session verified
    /// `identity`, or names the first thing wrong with it. All or nothing:
    /// one disallowed service rejects the whole announcement, so an agent
    /// never ends up half-registered.
    pub fn check(&self, identity: &SpiffeId, announce: &Announce) -> Result<(), Rejection> {
        let announced = u32::try_from(announce.services.len()).unwrap_or(u32::MAX);
        if announced > self.max_services {
            return Err(Rejection::TooManyServices {
                announced,
                limit: self.max_services,
            });
        }
        let mut seen: BTreeSet<&ServicePort> = BTreeSet::new();
        for sp in &announce.services {
            if sp.port == 0 {
                return Err(Rejection::ZeroPort(sp.clone()));
            }
            if !seen.insert(sp) {
                return Err(Rejection::Duplicate(sp.clone()));
            }
            if !self.may_export(identity, &sp.service) {
                return Err(Rejection::NotAllowed(sp.clone()));
            }
        }
        Ok(())
    }
}
