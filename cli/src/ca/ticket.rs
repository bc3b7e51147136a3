//! The join ticket: one TOML file that gives a new agent everything it
//! needs to join the mesh — the CA certificate it trusts, its own
//! certificate and key, and the hubs to dial.
//!
//! It holds a private key, so it is written owner-only and its `Debug`
//! leaves the key out.

use core::fmt;

use serde::{Deserialize, Serialize};
use warren_proto::front::Target;
use warren_proto::identity::SpiffeId;

/// The ticket format this build writes and reads.
pub const TICKET_VERSION: u32 = 1;

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
        let ticket: Ticket =
            toml::from_str(text).map_err(|e| TicketError::Syntax(e.to_string()))?;
        if ticket.version != TICKET_VERSION {
            return Err(TicketError::Version(ticket.version));
        }
        SpiffeId::parse(&ticket.id).map_err(|e| TicketError::Id(e.to_string()))?;
        for hub in &ticket.hubs {
            check_hub(hub).map_err(TicketError::Hub)?;
        }
        Ok(ticket)
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
