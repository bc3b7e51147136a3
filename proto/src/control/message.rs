//! The hub ↔ agent control messages, as values.
//!
//! Names and identities are carried as validated types ([`ServiceName`],
//! [`SpiffeId`]); on the wire they are strings, and a string that does not
//! validate fails the whole message (see [`super::codec`]).

use crate::identity::SpiffeId;
use crate::policy::ServiceName;
use core::net::SocketAddr;
use serde::{Deserialize, Serialize};

/// One control message. The variant order is the wire tag: new variants
/// go at the end, and a change that an old peer would misread bumps
/// [`super::PROTOCOL_VERSION`] instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Agent → hub: the complete set of services this agent serves on this
    /// connection. Replaces any earlier announcement (declarative, so a
    /// reconnect or a second hub is just the same message again).
    Announce(Announce),
    /// Agent → hub: withdraw everything this connection announced (drain
    /// before shutdown). The connection stays up for the agent's own flows.
    Withdraw,
    /// Hub → agent: the whole registry at an epoch.
    Registry(RegistrySnapshot),
    /// Hub → agent: what changed from one epoch to the next.
    RegistryDelta(RegistryDelta),
    /// Hub → agent: the hub refused an announcement; nothing of it was
    /// registered.
    Rejected(Rejection),
    /// Hub → agent: the hub is closing this agent's connections.
    Evict(Evict),
    /// Either way: keepalive probe; the peer answers [`Message::Pong`] with
    /// the same token.
    Ping(u64),
    /// Either way: the answer to [`Message::Ping`].
    Pong(u64),
    /// Either way: the sender saw a protocol error and will close.
    Error(ControlError),
}

/// Which side may send a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// Only agents send it.
    Agent,
    /// Only hubs send it.
    Hub,
    /// Both sides send it.
    Either,
}

impl Message {
    /// Which side may send this message. A hub treats a hub-only message
    /// from an agent (say, a forged [`Message::Registry`]) as a protocol
    /// error, and the other way round.
    pub fn sender(&self) -> Sender {
        match self {
            Message::Announce(_) | Message::Withdraw => Sender::Agent,
            Message::Registry(_)
            | Message::RegistryDelta(_)
            | Message::Rejected(_)
            | Message::Evict(_) => Sender::Hub,
            Message::Ping(_) | Message::Pong(_) | Message::Error(_) => Sender::Either,
        }
    }

    /// Whether `side` may send this message.
    pub fn may_be_sent_by(&self, side: Sender) -> bool {
        let own = self.sender();
        own == Sender::Either || own == side
    }
}

/// A service port an agent serves: `name.namespace:port`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServicePort {
    /// The mesh service.
    #[serde(with = "service_name_str")]
    pub service: ServiceName,
    /// The service port clients name in `name.namespace:port`; never 0.
    pub port: u16,
}

/// Agent → hub: what this agent serves.
///
/// There is deliberately no identity field: the hub files the services
/// under the identity its TLS session verified, never one a peer writes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announce {
    /// Every service port served, each once.
    pub services: Vec<ServicePort>,
    /// An HBONE address where this agent accepts direct connections, if it
    /// has an open port; `None` for agents reachable only through a hub.
    pub reachable_hbone: Option<SocketAddr>,
    /// The services (each also in `services`) that take flows a hub relays
    /// in plaintext (`end_to_end = false`). Every other service takes hub
    /// flows only end to end (see [`crate::hub`]), so the default, an
    /// empty list, is the safe one.
    pub relay_plaintext: Vec<ServicePort>,
}

/// One endpoint of a service: an agent connection that announced it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// The agent's verified identity.
    #[serde(with = "spiffe_id_str")]
    pub identity: SpiffeId,
    /// The hub's number for the agent's connection, telling apart replicas
    /// that share one identity. Only meaningful to the hub that sent it.
    pub instance: u64,
    /// Where the agent accepts direct HBONE connections, if anywhere.
    pub hbone: Option<SocketAddr>,
}

/// One row of the registry: a service port served by one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// The service port.
    pub service: ServicePort,
    /// Who serves it.
    pub endpoint: Endpoint,
    /// Clients reach it through a hub only end to end (their own mTLS
    /// session with the endpoint inside the relayed stream); false when the
    /// endpoint announced it in [`Announce::relay_plaintext`].
    pub end_to_end: bool,
}

/// Hub → agent: the whole registry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrySnapshot {
    /// Increases by one with every change the hub makes.
    pub epoch: u64,
    /// Every row, sorted, without duplicates.
    pub entries: Vec<RegistryEntry>,
}

/// Hub → agent: the change from epoch `base` to `epoch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryDelta {
    /// The epoch this delta applies to.
    pub base: u64,
    /// The epoch after applying it.
    pub epoch: u64,
    /// Rows that appeared, sorted.
    pub added: Vec<RegistryEntry>,
    /// Rows that went away, sorted.
    pub removed: Vec<RegistryEntry>,
}

/// Why a delta could not be applied to a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeltaError {
    /// The delta starts from another epoch: the subscriber missed a change
    /// and needs a fresh snapshot.
    EpochGap {
        /// The subscriber's epoch.
        have: u64,
        /// The delta's base.
        base: u64,
    },
    /// The delta removes a row the snapshot lacks or adds one it already
    /// has: the two disagree, so the subscriber needs a fresh snapshot.
    Inconsistent,
}

impl core::fmt::Display for DeltaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DeltaError::EpochGap { have, base } => {
                write!(f, "registry delta from epoch {base}, but at epoch {have}")
            }
            DeltaError::Inconsistent => f.write_str("registry delta disagrees with the snapshot"),
        }
    }
}

impl std::error::Error for DeltaError {}

impl RegistrySnapshot {
    /// Applies a delta in place. On error the snapshot is unchanged.
    pub fn apply(&mut self, delta: &RegistryDelta) -> Result<(), DeltaError> {
        if delta.base != self.epoch {
            return Err(DeltaError::EpochGap {
                have: self.epoch,
                base: delta.base,
            });
        }
        let mut rows: std::collections::BTreeSet<RegistryEntry> =
            self.entries.iter().cloned().collect();
        for gone in &delta.removed {
            if !rows.remove(gone) {
                return Err(DeltaError::Inconsistent);
            }
        }
        for new in &delta.added {
            if !rows.insert(new.clone()) {
                return Err(DeltaError::Inconsistent);
            }
        }
        self.entries = rows.into_iter().collect();
        self.epoch = delta.epoch;
        Ok(())
    }
}

/// Why a hub refused an announcement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// No rule lets this identity export this service.
    NotAllowed(ServicePort),
    /// Port 0 is not a service port.
    ZeroPort(ServicePort),
    /// The same service port is listed twice.
    Duplicate(ServicePort),
    /// More service ports than the hub takes from one agent.
    TooManyServices {
        /// How many were announced.
        announced: u32,
        /// The hub's limit.
        limit: u32,
    },
    /// The identity is revoked.
    Revoked,
    /// The hub's registry is full.
    RegistryFull,
}

impl core::fmt::Display for Rejection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Rejection::NotAllowed(s) => {
                write!(f, "identity may not export {}:{}", s.service, s.port)
            }
            Rejection::ZeroPort(s) => write!(f, "{} announced with port 0", s.service),
            Rejection::Duplicate(s) => write!(f, "{}:{} announced twice", s.service, s.port),
            Rejection::TooManyServices { announced, limit } => {
                write!(f, "{announced} service ports announced, limit {limit}")
            }
            Rejection::Revoked => f.write_str("identity is revoked"),
            Rejection::RegistryFull => f.write_str("hub registry is full"),
        }
    }
}

impl std::error::Error for Rejection {}

/// Why a hub evicts an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EvictReason {
    /// The agent's identity or certificate was revoked.
    Revoked,
    /// The agent broke the control protocol or policy.
    Misbehaved,
    /// Another connection of the same agent replaced this one.
    Replaced,
    /// The hub is shutting down; reconnect to another hub.
    HubShutdown,
}

/// Hub → agent: the hub is about to close this agent's connections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evict {
    /// Why.
    pub reason: EvictReason,
}

/// The kind of a protocol error one side reports before closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// A frame carried a version this side does not speak.
    UnsupportedVersion,
    /// A frame was longer than this side accepts.
    FrameTooLong,
    /// A frame's payload did not decode.
    Malformed,
    /// The message is not one the sender's role may send.
    WrongDirection,
}

/// A protocol error report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlError {
    /// What went wrong.
    pub code: ErrorCode,
    /// The protocol version the reporting side speaks, so an old peer
    /// learns why a newer one refused it.
    pub version: u8,
}

/// Serde as a string for [`ServiceName`] (a type the policy room owns).
mod service_name_str {
    use crate::policy::ServiceName;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &ServiceName, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ServiceName, D::Error> {
        let s = <&str>::deserialize(d)?;
        ServiceName::parse(s).map_err(D::Error::custom)
    }
}

/// Serde as a string for [`SpiffeId`] (a type the identity room owns).
mod spiffe_id_str {
    use crate::identity::SpiffeId;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &SpiffeId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SpiffeId, D::Error> {
        let s = <&str>::deserialize(d)?;
        SpiffeId::parse(s).map_err(D::Error::custom)
    }
}
