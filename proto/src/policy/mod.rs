//! Policy: pure functions deciding who may reach what.
//!
//! Nothing here does I/O, reads a clock or allocates while deciding; every
//! check returns a [`Decision`] that names the rule behind it, so the log
//! line says *why* (`policy denied reason=deny-rule rule=NAME`).
//!
//! Rooms:
//! - [`Decision`], [`Reason`], [`Action`], [`RuleName`]: outcomes and rule names.
//! - [`AuthzPolicy`]: authorization at the receiving node (Istio's
//!   AuthorizationPolicy semantics, see `authz.rs`).
//! - [`Exports`]: which exported service an HBONE `:authority` names, and
//!   [`Authority`], its parser.
//! - [`EgressPolicy`]: default-deny egress for the front ends.
//! - Building blocks: [`Glob`] / [`PrincipalPattern`] (linear-time `*`
//!   globs), [`Cidr`], [`PortRange`], [`ServiceName`], [`Host`] /
//!   [`DomainPattern`].
//!
//! A flow into a node is checked in this order: parse the authority (400 on
//! error), resolve it against the exports (503), authorize (401), connect.

mod authority;
mod authz;
mod cidr;
mod decision;
mod egress;
mod exports;
mod glob;
mod host;
mod port;
mod service;

pub use authority::{Authority, AuthorityError, MAX_AUTHORITY_LEN};
pub use authz::{AuthzPolicy, AuthzRequest, AuthzRule, Conditions, Scope};
pub use cidr::{canonical_ip, Cidr, CidrError, MAX_CIDR_LEN};
pub use decision::{Action, Decision, Reason, RuleName, RuleNameError, MAX_RULE_NAME_LEN};
pub use egress::{Destination, EgressPolicy, EgressRequest, EgressRule};
pub use exports::{Export, Exports, ExportsError, Target};
pub use glob::{Glob, GlobError, PrincipalPattern, MAX_PATTERN_LEN};
pub use host::{Domain, DomainError, DomainPattern, Host, MAX_DOMAIN_LEN};
pub use port::{PortRange, PortRangeError};
pub use service::{ServiceName, ServiceNameError, MAX_LABEL_LEN};
