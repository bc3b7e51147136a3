//! Egress: may this mesh identity open a flow to this outside host and
//! port (a SOCKS5 or HTTP CONNECT target, or a flow through an egress
//! gateway)?
//!
//! Denied unless allowed:
//!
//! 1. any matching DENY rule → deny, naming the first
//!    ([`Reason::EgressDeniedByRule`]);
//! 2. any matching ALLOW rule → allow, naming the first
//!    ([`Reason::EgressAllowed`]);
//! 3. otherwise deny ([`Reason::EgressNotAllowed`]).
//!
//! A rule matches when the source matches one of its `sources`, the host
//! one of its `destinations` and the port one of its `ports`; an empty list
//! is not a constraint (a rule with no destinations covers every host).
//! An address host is matched only by CIDRs and a domain host only by
//! domain patterns: policy never resolves names, so a rule for `10.0.0.0/8`
//! says nothing about a name that happens to resolve there. The front end
//! decides on what the client asked for and must then connect to that.

use super::cidr::Cidr;
use super::decision::{Action, Decision, Reason, RuleName};
use super::glob::PrincipalPattern;
use super::host::{DomainPattern, Host};
use super::port::PortRange;
use crate::identity::SpiffeId;

/// A destination an egress rule names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Addresses in a network.
    Cidr(Cidr),
    /// A domain or `*.` wildcard domain.
    Domain(DomainPattern),
}

impl Destination {
    /// Whether `host` is this destination.
    pub fn matches(&self, host: Host<'_>) -> bool {
        match (self, host) {
            (Destination::Cidr(net), Host::Ip(ip)) => net.contains(ip),
            (Destination::Domain(pattern), Host::Domain(domain)) => pattern.matches(domain),
            _ => false,
        }
    }
}

/// One named egress rule. Empty lists are not constraints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressRule {
    /// The name logged with every decision the rule makes.
    pub name: RuleName,
    /// What the rule does when it matches.
    pub action: Action,
    /// The source identity matches one of these.
    pub sources: Vec<PrincipalPattern>,
    /// The host is one of these.
    pub destinations: Vec<Destination>,
    /// The port is in one of these ranges.
    pub ports: Vec<PortRange>,
}

impl EgressRule {
    /// A rule with no constraints yet (matching every flow); fill in
    /// `sources`, `destinations` and `ports` to narrow it.
    pub fn new(name: RuleName, action: Action) -> EgressRule {
        EgressRule {
            name,
            action,
            sources: Vec::new(),
            destinations: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// Whether the rule matches the request.
    pub fn matches(&self, req: &EgressRequest<'_>) -> bool {
        (self.sources.is_empty() || self.sources.iter().any(|p| p.matches(req.source)))
            && (self.destinations.is_empty()
                || self.destinations.iter().any(|d| d.matches(req.host)))
            && (self.ports.is_empty() || self.ports.iter().any(|r| r.contains(req.port)))
    }
}

/// What egress is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EgressRequest<'a> {
    /// The mesh identity that wants out.
    pub source: &'a SpiffeId,
    /// Where it wants to go.
    pub host: Host<'a>,
    /// The destination port.
    pub port: u16,
}

/// A node's egress rules, in order (order only picks which rule a decision
/// names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// The rules.
    pub rules: Vec<EgressRule>,
}

impl EgressPolicy {
    /// A policy with these rules.
    pub fn new(rules: Vec<EgressRule>) -> EgressPolicy {
        EgressPolicy { rules }
    }

    /// Decides a request (see the module docs). Does not allocate.
    pub fn evaluate(&self, req: &EgressRequest<'_>) -> Decision {
        let matching = |action: Action| {
            self.rules
                .iter()
                .find(|r| r.action == action && r.matches(req))
        };
        if let Some(rule) = matching(Action::Deny) {
            return Decision::new(Reason::EgressDeniedByRule, Some(rule.name.clone()));
        }
        match matching(Action::Allow) {
            Some(rule) => Decision::new(Reason::EgressAllowed, Some(rule.name.clone())),
            None => Decision::new(Reason::EgressNotAllowed, None),
        }
    }
}
