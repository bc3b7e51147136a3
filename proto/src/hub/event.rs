//! What the hub role and an agent's hub links report.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use crate::control::Rejection;
use crate::identity::SpiffeId;
use crate::node::event::Who;

use super::Offence;

/// Which of the two connections to a hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkKind {
    /// The agent's flows and the control stream (agent = HTTP/2 client).
    Forward,
    /// The hub's flows towards the agent (agent = HTTP/2 server).
    Reverse,
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkKind::Forward => "forward",
            LinkKind::Reverse => "reverse",
        })
    }
}

/// A hub or hub-link event.
#[derive(Clone, Debug, PartialEq)]
pub enum HubEvent {
    /// Agent: a connection to a hub is up (HTTP/2 ready).
    LinkUp {
        /// The hub's address.
        hub: SocketAddr,
        /// Which connection.
        kind: LinkKind,
        /// The hub's verified identity.
        peer: Option<SpiffeId>,
    },
    /// Agent: a connection to a hub ended or failed; redial after `retry_in`.
    LinkDown {
        /// The hub's address.
        hub: SocketAddr,
        /// Which connection.
        kind: LinkKind,
        /// Failures in a row.
        failures: u32,
        /// Delay until the redial.
        retry_in: Duration,
    },
    /// Agent: the hub's registry as this agent now holds it.
    RegistryUpdated {
        /// The hub's address.
        hub: SocketAddr,
        /// The registry epoch.
        epoch: u64,
        /// Rows.
        entries: usize,
    },
    /// Hub: an agent connection is up.
    AgentConnected {
        /// The agent's verified identity.
        agent: Option<SpiffeId>,
        /// Its address.
        addr: SocketAddr,
        /// Which connection.
        kind: LinkKind,
    },
    /// Hub: an agent connection is gone; its announcements went with it.
    AgentDisconnected {
        /// The agent's verified identity.
        agent: Option<SpiffeId>,
        /// Its address.
        addr: SocketAddr,
        /// Which connection.
        kind: LinkKind,
    },
    /// Hub: an announcement was filed.
    Announced {
        /// Who announced (verified identity).
        agent: SpiffeId,
        /// Service ports announced.
        services: usize,
        /// The registry epoch after it.
        epoch: u64,
    },
    /// Either side: an announcement was refused (the hub decided; the agent
    /// heard it on its control stream).
    AnnounceRejected {
        /// Who announced.
        agent: SpiffeId,
        /// Why.
        rejection: Rejection,
    },
    /// Either side: the control stream broke the protocol (garbage,
    /// oversized frame, wrong direction) or overflowed; it is closed.
    ControlError {
        /// The peer's identity.
        peer: Option<SpiffeId>,
        /// What was wrong.
        error: String,
    },
    /// Hub: a request on a forward connection that was neither a CONNECT
    /// nor the control stream, or a second control stream.
    BadRequest {
        /// The peer's identity.
        peer: Option<SpiffeId>,
        /// What was wrong.
        error: String,
    },
    /// Either side: a connection's verified peer is revoked; it is closed.
    Revoked {
        /// The revoked identity.
        peer: SpiffeId,
        /// Its address.
        addr: SocketAddr,
        /// The list's entry, with its reason.
        reason: String,
    },
    /// Hub: an agent's request was refused for an offence (a flood, a
    /// broken control stream, a rejected announcement); it counts towards
    /// suspension.
    Offence {
        /// The agent's verified identity.
        agent: SpiffeId,
        /// The connection's address.
        addr: SocketAddr,
        /// What it did.
        offence: Offence,
        /// Offences in the current window, this one included.
        count: u32,
    },
    /// Hub: an agent's identity offended too often; every connection of it
    /// was closed with GOAWAY ENHANCE_YOUR_CALM, and new ones are refused
    /// for `back_off`.
    Suspended {
        /// The agent's verified identity.
        agent: SpiffeId,
        /// Offences in the window that tripped it.
        offences: u32,
        /// Connections closed.
        closed: usize,
        /// How long new connections are refused.
        back_off: Duration,
    },
    /// Hub: a suspended identity connected again before its back-off ended;
    /// refused with GOAWAY ENHANCE_YOUR_CALM.
    StillSuspended {
        /// The agent's verified identity.
        agent: SpiffeId,
        /// Its address.
        addr: SocketAddr,
        /// Time left of the back-off.
        remaining: Duration,
    },
    /// Agent: a reverse connection's CONNECT named no believable source.
    BadSource {
        /// The hub's identity.
        hub: Option<SpiffeId>,
        /// The header value, lossily decoded.
        value: String,
    },
    /// Agent: an end-to-end session with another agent, through a hub,
    /// finished its inner TLS handshake (one per agent pair and hub, not
    /// per flow).
    EndToEndUp {
        /// The other agent's identity, as the inner handshake verified it.
        peer: Option<SpiffeId>,
        /// The hub carrying it.
        hub: SocketAddr,
        /// We opened it (TLS client); false on the serving side.
        client: bool,
    },
}

impl fmt::Display for HubEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HubEvent::LinkUp { hub, kind, peer } => {
                write!(f, "link up hub={hub} kind={kind} peer={}", Who(peer))
            }
            HubEvent::LinkDown {
                hub,
                kind,
                failures,
                retry_in,
            } => write!(
                f,
                "link down hub={hub} kind={kind} failures={failures} retry_ms={}",
                retry_in.as_millis()
            ),
            HubEvent::RegistryUpdated {
                hub,
                epoch,
                entries,
            } => write!(f, "registry hub={hub} epoch={epoch} entries={entries}"),
            HubEvent::AgentConnected { agent, addr, kind } => {
                write!(f, "agent connected {} addr={addr} kind={kind}", Who(agent))
            }
            HubEvent::AgentDisconnected { agent, addr, kind } => {
                write!(
                    f,
                    "agent disconnected {} addr={addr} kind={kind}",
                    Who(agent)
                )
            }
            HubEvent::Announced {
                agent,
                services,
                epoch,
            } => write!(f, "announced {agent} services={services} epoch={epoch}"),
            HubEvent::AnnounceRejected { agent, rejection } => {
                write!(f, "announce rejected {agent} reason=\"{rejection}\"")
            }
            HubEvent::ControlError { peer, error } => {
                write!(f, "control error peer={} error=\"{error}\"", Who(peer))
            }
            HubEvent::BadRequest { peer, error } => {
                write!(f, "bad request peer={} error=\"{error}\"", Who(peer))
            }
            HubEvent::Revoked { peer, addr, reason } => {
                write!(f, "revoked peer={peer} addr={addr} closed reason={reason}")
            }
            HubEvent::Offence {
                agent,
                addr,
                offence,
                count,
            } => write!(
                f,
                "refused {agent} addr={addr} offence={offence} offences_in_window={count}"
            ),
            HubEvent::Suspended {
                agent,
                offences,
                closed,
                back_off,
            } => write!(
                f,
                "suspended {agent} offences={offences} closed={closed} goaway=ENHANCE_YOUR_CALM back_off_ms={}",
                back_off.as_millis()
            ),
            HubEvent::StillSuspended {
                agent,
                addr,
                remaining,
            } => write!(
                f,
                "still suspended {agent} addr={addr} goaway=ENHANCE_YOUR_CALM remaining_ms={}",
                remaining.as_millis()
            ),
            HubEvent::BadSource { hub, value } => {
                write!(f, "bad source header hub={} value={value:?}", Who(hub))
            }
            HubEvent::EndToEndUp { peer, hub, client } => {
                let role = if *client { "client" } else { "server" };
                write!(f, "end-to-end up peer={} hub={hub} role={role}", Who(peer))
            }
        }
    }
}
