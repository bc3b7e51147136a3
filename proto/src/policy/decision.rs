//! What a policy check concluded, which rule concluded it, and why.
//!
//! A [`Decision`] is what the node turns into an HBONE status (401 / 503) or
//! a front-end refusal, and what it logs: its `Display` is the tail of the
//! log line, `policy denied reason=deny-rule rule=NAME`.

use core::fmt;
use std::sync::Arc;

/// What a rule does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// The flow may proceed (if no DENY rule matches it).
    Allow,
    /// The flow is refused, whatever else matches.
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
        })
    }
}

/// The longest rule name accepted, in bytes.
pub const MAX_RULE_NAME_LEN: usize = 128;

/// A rule's name, as it appears in logs (`rule=NAME`).
///
/// Restricted to `[A-Za-z0-9._:/-]` so a name can never break a log line
/// (no spaces, quotes or newlines). Shared, so that a [`Decision`] can carry
/// it without allocating on the evaluation path.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleName(Arc<str>);

/// Why a string is not a rule name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleNameError {
    /// The name is empty.
    Empty,
    /// Longer than [`MAX_RULE_NAME_LEN`].
    TooLong,
    /// A character outside `[A-Za-z0-9._:/-]`.
    InvalidChar,
}

impl fmt::Display for RuleNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleNameError::Empty => "rule name is empty",
            RuleNameError::TooLong => "rule name longer than 128 bytes",
            RuleNameError::InvalidChar => "rule name may only use A-Z a-z 0-9 . _ : / -",
        })
    }
}

impl std::error::Error for RuleNameError {}

impl RuleName {
    /// Validates a rule name.
    pub fn new(name: &str) -> Result<RuleName, RuleNameError> {
        if name.is_empty() {
            return Err(RuleNameError::Empty);
        }
        if name.len() > MAX_RULE_NAME_LEN {
            return Err(RuleNameError::TooLong);
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b))
        {
            return Err(RuleNameError::InvalidChar);
        }
        Ok(RuleName(Arc::from(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RuleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RuleName({})", self.0)
    }
}

/// Why a policy check ended the way it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Authorization: a DENY rule matched (the decision names it).
    DeniedByRule,
    /// Authorization: ALLOW rules apply to the service, none matched.
    NoAllowRuleMatched,
    /// Authorization: an ALLOW rule matched and no DENY rule did.
    AllowedByRule,
    /// Authorization: no rule matched and no ALLOW rule applies to the
    /// service, so the default (allow) holds.
    AllowedNoPolicy,
    /// The destination is not a service this node exports (HBONE 503).
    NotExported,
    /// Egress: a DENY rule matched (the decision names it).
    EgressDeniedByRule,
    /// Egress: no ALLOW rule matched; egress is denied by default.
    EgressNotAllowed,
    /// Egress: an ALLOW rule matched and no DENY rule did.
    EgressAllowed,
}

impl Reason {
    /// Whether a decision with this reason lets the flow through.
    pub const fn allows(self) -> bool {
        matches!(
            self,
            Reason::AllowedByRule | Reason::AllowedNoPolicy | Reason::EgressAllowed
        )
    }

    /// A short, stable, greppable code for logs and metrics labels.
    pub const fn code(self) -> &'static str {
        match self {
            Reason::DeniedByRule => "deny-rule",
            Reason::NoAllowRuleMatched => "no-allow-match",
            Reason::AllowedByRule => "allow-rule",
            Reason::AllowedNoPolicy => "no-policy",
            Reason::NotExported => "not-exported",
            Reason::EgressDeniedByRule => "egress-deny-rule",
            Reason::EgressNotAllowed => "egress-not-allowed",
            Reason::EgressAllowed => "egress-allow-rule",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::DeniedByRule => "a DENY rule matched",
            Reason::NoAllowRuleMatched => "ALLOW rules exist but none matched",
            Reason::AllowedByRule => "an ALLOW rule matched",
            Reason::AllowedNoPolicy => "no ALLOW rule applies",
            Reason::NotExported => "destination is not exported",
            Reason::EgressDeniedByRule => "an egress DENY rule matched",
            Reason::EgressNotAllowed => "no egress ALLOW rule matched",
            Reason::EgressAllowed => "an egress ALLOW rule matched",
        })
    }
}

/// The outcome of a policy check.
///
/// `allowed` always equals `reason.allows()` when built with
/// [`Decision::new`]; it is a field so that callers can branch on it
/// without knowing the reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the flow may proceed.
    pub allowed: bool,
    /// The rule that decided; `None` when a default decided.
    pub rule: Option<RuleName>,
    /// Why.
    pub reason: Reason,
}

impl Decision {
    /// A decision for `reason`, made by `rule` (or by a default).
    pub fn new(reason: Reason, rule: Option<RuleName>) -> Decision {
        Decision {
            allowed: reason.allows(),
            rule,
            reason,
        }
    }
}

/// `policy allowed reason=allow-rule rule=NAME` or
/// `policy denied reason=no-allow-match`.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        write!(f, "policy {verdict} reason={}", self.reason.code())?;
        if let Some(rule) = &self.rule {
            write!(f, " rule={rule}")?;
        }
        Ok(())
    }
}
