//! Authorization at the receiving node: may this peer identity reach this
//! exported service on this port?
//!
//! Istio's AuthorizationPolicy semantics, flattened to one list of named
//! rules. For a request, the rules that *apply* are those scoped to its
//! service plus those scoped to all services. Then:
//!
//! 1. any applicable DENY rule that matches → deny, naming the first such
//!    rule ([`Reason::DeniedByRule`]);
//! 2. if any applicable rule is an ALLOW rule, one must match → allow naming
//!    the first that does ([`Reason::AllowedByRule`]), else deny
//!    ([`Reason::NoAllowRuleMatched`]);
//! 3. otherwise allow ([`Reason::AllowedNoPolicy`]).
//!
//! Only authenticated mesh identities are ever asked about (a request holds
//! a verified [`SpiffeId`]), and only after [`super::Exports`] found the
//! service.
//!
//! A rule matches when every field it sets matches (AND). A positive field
//! matches when any of its values does (OR); an empty field is not set. A
//! negated field matches when none of its values does. A rule with no
//! fields set matches every request (a blanket DENY or ALLOW). Istio's
//! ALLOW policy without rules, which allows nothing, is written here as a
//! DENY rule without conditions scoped to the service.
//!
//! **Unknown source address.** When the node does not know the peer's
//! address (`source_addr: None`, e.g. a flow relayed by a hub), an address
//! field cannot be decided. Such a field then counts as matching in a DENY
//! rule and as not matching in an ALLOW rule, positive or negated alike:
//! the outcome is the one the address could have forced at worst, so hiding
//! the address never widens access.

use super::cidr::Cidr;
use super::decision::{Action, Decision, Reason, RuleName};
use super::glob::{Glob, PrincipalPattern};
use super::port::PortRange;
use super::service::ServiceName;
use crate::identity::SpiffeId;
use core::net::IpAddr;

/// Which services a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every service of the node.
    AllServices,
    /// One service.
    Service(ServiceName),
}

impl Scope {
    /// Whether the rule applies to `service` (`name.namespace`).
    pub fn covers(&self, service: &str) -> bool {
        match self {
            Scope::AllServices => true,
            Scope::Service(name) => name.as_str() == service,
        }
    }
}

/// The conditions of one rule. Empty fields are not set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Source SPIFFE id matches one of these.
    pub principals: Vec<PrincipalPattern>,
    /// Source SPIFFE id matches none of these.
    pub not_principals: Vec<PrincipalPattern>,
    /// Source namespace (from the SPIFFE id) matches one of these.
    pub namespaces: Vec<Glob>,
    /// Source namespace matches none of these.
    pub not_namespaces: Vec<Glob>,
    /// Source address is in one of these networks.
    pub ip_blocks: Vec<Cidr>,
    /// Source address is in none of these networks.
    pub not_ip_blocks: Vec<Cidr>,
    /// Destination port is in one of these ranges.
    pub ports: Vec<PortRange>,
    /// Destination port is in none of these ranges.
    pub not_ports: Vec<PortRange>,
}

/// One named rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthzRule {
    /// The name logged with every decision the rule makes.
    pub name: RuleName,
    /// What the rule does when it matches.
    pub action: Action,
    /// Which services it applies to.
    pub scope: Scope,
    /// When it matches.
    pub when: Conditions,
}

impl AuthzRule {
    /// A rule for every service with no conditions yet (matching
    /// everything); set `scope` and `when` to narrow it.
    pub fn new(name: RuleName, action: Action) -> AuthzRule {
        AuthzRule {
            name,
            action,
            scope: Scope::AllServices,
            when: Conditions::default(),
        }
    }

    /// Whether the conditions match (with the unknown-address rule of the
    /// module docs); the scope is the caller's business.
    fn conditions_match(&self, req: &AuthzRequest<'_>) -> bool {
        let c = &self.when;
        // All fields are ANDed and side-effect free, so they are tested
        // cheapest first: integer compares, then masks, then globs.
        let ports = positive(&c.ports, |r| r.contains(req.port))
            && negated(&c.not_ports, |r| r.contains(req.port));
        let addr = || match req.source_addr {
            Some(addr) => {
                positive(&c.ip_blocks, |n| n.contains(addr))
                    && negated(&c.not_ip_blocks, |n| n.contains(addr))
            }
            None if c.ip_blocks.is_empty() && c.not_ip_blocks.is_empty() => true,
            // Undecidable address field: the worst case (module docs).
            None => self.action == Action::Deny,
        };
        let id = req.source;
        let ns = id.namespace();
        ports
            && addr()
            && positive(&c.namespaces, |g| g.matches(ns))
            && negated(&c.not_namespaces, |g| g.matches(ns))
            && positive(&c.principals, |p| p.matches(id))
            && negated(&c.not_principals, |p| p.matches(id))
    }
}

/// A positive field: not set (empty), or some value hits.
fn positive<T>(values: &[T], hit: impl Fn(&T) -> bool) -> bool {
    values.is_empty() || values.iter().any(hit)
}

/// A negated field: no value hits (so an empty one always holds).
fn negated<T>(values: &[T], hit: impl Fn(&T) -> bool) -> bool {
    !values.iter().any(hit)
}

/// What authorization is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthzRequest<'a> {
    /// The peer's verified identity.
    pub source: &'a SpiffeId,
    /// The peer's address as the node sees it, if it knows it.
    pub source_addr: Option<IpAddr>,
    /// The exported service, `name.namespace` (as [`ServiceName::as_str`]).
    pub service: &'a str,
    /// The exported service port the flow resolved to.
    pub port: u16,
}

/// A node's authorization rules, in order. The order only decides which
/// rule a decision names when several match; it never changes the verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthzPolicy {
    /// The rules.
    pub rules: Vec<AuthzRule>,
}

impl AuthzPolicy {
    /// A policy with these rules.
    pub fn new(rules: Vec<AuthzRule>) -> AuthzPolicy {
        AuthzPolicy { rules }
    }

    /// Decides a request (see the module docs). Does not allocate.
    pub fn evaluate(&self, req: &AuthzRequest<'_>) -> Decision {
        let mut allow_applies = false;
        let mut allowed_by: Option<&RuleName> = None;
        for rule in self.rules.iter().filter(|r| r.scope.covers(req.service)) {
            match rule.action {
                Action::Deny => {
                    if rule.conditions_match(req) {
                        return Decision::new(Reason::DeniedByRule, Some(rule.name.clone()));
                    }
                }
                Action::Allow => {
                    allow_applies = true;
                    if allowed_by.is_none() && rule.conditions_match(req) {
                        allowed_by = Some(&rule.name);
                    }
                }
            }
        }
        match (allowed_by, allow_applies) {
            (Some(name), _) => Decision::new(Reason::AllowedByRule, Some(name.clone())),
            (None, true) => Decision::new(Reason::NoAllowRuleMatched, None),
            (None, false) => Decision::new(Reason::AllowedNoPolicy, None),
        }
    }
}
