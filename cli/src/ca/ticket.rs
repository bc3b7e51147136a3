//! The join ticket: one TOML file that gives a new agent everything it
//! needs to join the mesh — the CA certificate it trusts, its own
//! certificate and key, and the hubs to dial with the identities they
//! must prove.
//!
//! A hub's identity matters more than a peer's: an agent sends its flows
//! through the hub and believes the hub's `warren-source` header naming who
//! a relayed flow comes from. So a ticket that names hubs also names which
//! identities may serve as hub, and the agent trusts no other certificate
//! in that role. Unless told otherwise (`warren ca ticket --hub-identity`)
//! that is [`default_hub_identity`]: `spiffe://<trust-domain>/ns/mesh/sa/hub*`,
//! so hubs get certificates such as `spiffe://example.org/ns/mesh/sa/hub1`
//! and the namespace `mesh` is kept for them. A ticket written before hub
//! identities were carried gets the same default when read.
//!
//! It holds a private key, so it is written owner-only and its `Debug`
//! leaves the key out.

use core::fmt;

use serde::{Deserialize, Serialize};
use warren_proto::front::Target;
use warren_proto::identity::SpiffeId;
use warren_proto::policy::PrincipalPattern;

/// The ticket format this build writes and reads.
pub const TICKET_VERSION: u32 = 1;

/// The namespace kept for hubs' identities.
pub const HUB_NAMESPACE: &str = "mesh";

/// The identity pattern hubs of `trust_domain` must match when a ticket
/// says nothing else: service accounts `hub*` in namespace
/// [`HUB_NAMESPACE`].
pub fn default_hub_identity(trust_domain: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{HUB_NAMESPACE}/sa/hub*")
}

/// Parses a hub identity pattern and checks it can match an identity of
/// `trust_domain` (the only ones an agent of it verifies).
pub fn check_hub_identity(pattern: &str, trust_domain: &str) -> Result<PrincipalPattern, String> {
    let parsed = PrincipalPattern::new(pattern).map_err(|e| format!("{pattern:?}: {e}"))?;
    if !parsed
        .as_str()
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.strip_prefix(trust_domain))
        .is_some_and(|rest| rest.starts_with('/'))
    {
        return Err(format!(
            "{pattern:?} is not in trust domain {trust_domain}, so no hub could match it; expected spiffe://{trust_domain}/ns/NAMESPACE/sa/NAME (NAME may end in *)"
        ));
    }
    Ok(parsed)
}

/// A join ticket.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ticket {
    /// Format version, [`TICKET_VERSION`].
    pub version: u32,
    /// The agent's SPIFFE id (also the URI SAN of `cert`).
    pub id: String,
    /// Hub addresses, `host:port`, each dialed by the agent.
    #[serde(default)]
    pub hubs: Vec<String>,
    /// Patterns a hub's certificate must match (see the module's
    /// documentation); filled with [`default_hub_identity`] when `hubs` is
    /// not empty and a ticket names none.
    #[serde(default)]
    pub hub_identities: Vec<String>,
    /// The CA certificate, PEM: the trust anchor.
    pub ca: String,
    /// The agent's certificate, PEM.
    pub cert: String,
    /// The agent's private key, PKCS#8 PEM.
    pub key: String,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("version", &self.version)
            .field("id", &self.id)
            .field("hubs", &self.hubs)
            .field("hub_identities", &self.hub_identities)
            .finish_non_exhaustive()
    }
}

/// Why a ticket cannot be used.
#[derive(Debug)]
pub enum TicketError {
    /// Not TOML of the ticket's shape (toml's message, with position).
    Syntax(String),
    /// Written by a newer (or older) warren.
    Version(u32),
    /// `id` is not a SPIFFE id.
    Id(String),
    /// A hub address is not `host:port`.
    Hub(String),
    /// A hub identity pattern is malformed or of another trust domain.
    HubIdentity(String),
}

impl fmt::Display for TicketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TicketError::Syntax(e) => write!(f, "ticket is malformed: {e}"),
            TicketError::Version(v) => write!(
                f,
                "ticket version {v} is not supported (this warren reads version {TICKET_VERSION})"
            ),
            TicketError::Id(e) => write!(f, "ticket id: {e}"),
            TicketError::Hub(e) => write!(f, "ticket hub: {e}"),
            TicketError::HubIdentity(e) => write!(f, "ticket hub identity: {e}"),
        }
    }
}

impl std::error::Error for TicketError {}

/// Parses a hub address: `host:port`.
fn parse_hub(addr: &str) -> Result<Target, String> {
    Target::parse(addr).map_err(|e| format!("{addr:?}: {e}"))
}

/// Checks a hub address: `host:port`.
pub fn check_hub(addr: &str) -> Result<(), String> {
    parse_hub(addr).map(|_| ())
}

impl Ticket {
    /// Parses and checks a ticket file's text.
    pub fn parse(text: &str) -> Result<Ticket, TicketError> {
        let mut ticket: Ticket =
            toml::from_str(text).map_err(|e| TicketError::Syntax(e.to_string()))?;
        if ticket.version != TICKET_VERSION {
            return Err(TicketError::Version(ticket.version));
        }
        let id = SpiffeId::parse(&ticket.id).map_err(|e| TicketError::Id(e.to_string()))?;
        for hub in &ticket.hubs {
            check_hub(hub).map_err(TicketError::Hub)?;
        }
        if !ticket.hubs.is_empty() && ticket.hub_identities.is_empty() {
            ticket.hub_identities = vec![default_hub_identity(id.trust_domain())];
        }
        for pattern in &ticket.hub_identities {
            check_hub_identity(pattern, id.trust_domain()).map_err(TicketError::HubIdentity)?;
        }
        Ok(ticket)
    }

    /// The identities a hub must prove, parsed.
    pub fn hub_patterns(&self) -> Result<Vec<PrincipalPattern>, String> {
        let id = SpiffeId::parse(&self.id).map_err(|e| e.to_string())?;
        self.hub_identities
            .iter()
            .map(|p| check_hub_identity(p, id.trust_domain()))
            .collect()
    }

    /// The hubs to dial, parsed (the hub client dials them in this order).
    pub fn hub_targets(&self) -> Result<Vec<Target>, String> {
        self.hubs.iter().map(|hub| parse_hub(hub)).collect()
    }

    /// The ticket as a TOML file, with a header warning that it is secret.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        let body = toml::to_string(self)?;
        Ok(format!(
            "# warren join ticket for {}\n\
             # It holds this agent's private key: keep it secret, hand it over once.\n\n{body}",
            self.id
        ))
    }
}
