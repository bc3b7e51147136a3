//! The hub: a rendezvous and relay for agents that accept no connections.
//!
//! # Wire contract
//!
//! A hub listens on one TLS port ([`DEFAULT_HUB_PORT`]). Every agent dials
//! every hub in its configuration twice, mutual TLS 1.3, both sides
//! presenting SPIFFE certificates of the trust domain:
//!
//! - **forward** connection, ALPN [`ALPN_FORWARD`] (`h2`): the agent is
//!   the HTTP/2 client, the hub the server. It carries the agent's own flows
//!   (`CONNECT service.ns:port`, standard HBONE) and one long-lived control
//!   stream: `POST` [`CONTROL_PATH`] with `content-type`
//!   [`CONTROL_CONTENT_TYPE`], whose DATA in both directions is a sequence of
//!   [`crate::control`] frames (agent → hub: `Announce`, `Withdraw`, `Ping`;
//!   hub → agent: `Registry`, `RegistryDelta`, `Rejected`, `Evict`, `Pong`).
//! - **reverse** connection, ALPN [`ALPN_REVERSE`] (`warren-reverse`): the
//!   agent is the TLS client but the HTTP/2 *server*; the hub is the HTTP/2
//!   client. The hub opens `CONNECT service.ns:port` streams toward the
//!   agent here, each carrying the header [`SOURCE_HEADER`] with the SPIFFE
//!   id of the agent that originated the flow. An agent honours that header
//!   only on a reverse connection whose TLS peer matches its configured hub
//!   identities ([`HubLinks::identities`]) and authorizes the flow with it
//!   as the source identity.
//!
//! A flow A → hub → B: A opens CONNECT on its forward connection; the hub
//! authorizes it (A's TLS identity, the target service, the hub's own
//! authorization policy), picks an endpoint agent for the service from its
//! registry with [`crate::balance`], opens CONNECT on that agent's reverse
//! connection and relays the two streams byte for byte. B's status (200,
//! 401, 503) goes back to A (a 200 with the header [`DESTINATION_HEADER`]
//! naming B, which A's access log shows as the flow's destination, believed
//! only from a hub); a service nobody serves gets 503 at once. The
//! relay holds no buffer of its own: bytes stay in the receiving leg's
//! HTTP/2 buffer until the sending leg accepted them, and only then is the
//! receive window credited back (WINDOW_UPDATE to A only once B's stream
//! took the bytes), so a slow reader stalls its writer through the hub and
//! the hub's memory per flow is bounded by its stream windows. END_STREAM is
//! a half-close passed on once the buffered bytes went; a reset on either
//! leg resets the other.
//!
//! ## End-to-end mode
//!
//! Every exported service takes flows from a hub only end to end unless
//! its agent announced it in [`crate::control::Announce::relay_plaintext`]
//! (an export's `end_to_end = false`); registry rows carry the flag
//! ([`crate::control::RegistryEntry::end_to_end`]). For an end-to-end
//! service the hub never sees plaintext and B never believes
//! [`SOURCE_HEADER`]: a plain relayed CONNECT for it gets 401 from B.
//!
//! Instead A picks an endpoint (identity + instance) from the registry of
//! a hub it holds a ready forward connection to and opens, on that forward
//! connection, one *pair stream* per agent pair:
//!
//! - `CONNECT` with `:authority` [`E2E_AUTHORITY`] (a fixed placeholder:
//!   the stream names an agent, not a service), header [`E2E_PEER_HEADER`]
//!   = B's SPIFFE id and [`E2E_INSTANCE_HEADER`] = the instance number from
//!   the hub's registry (decimal).
//! - The hub authorizes the *pair*: A (its TLS identity) must be allowed,
//!   by the hub's own policy, to reach at least one service that agent
//!   announced (the decision is logged; a denial is 401). An agent that is
//!   unknown, offline or without a ready reverse connection is 503 at once.
//!   The hub then opens the same CONNECT (same two headers) on B's reverse
//!   connection and relays the two streams byte for byte, with the same
//!   backpressure as any relay. The access log names the relay's service
//!   [`E2E_SERVICE_LABEL`].
//! - B accepts a pair stream only on a reverse connection to a configured
//!   hub identity and only when [`E2E_PEER_HEADER`] names B itself, and
//!   answers 200. Inside the stream A is TLS client and HTTP/2 client, B
//!   TLS server and HTTP/2 server: mutual TLS 1.3 with ALPN [`ALPN_E2E`],
//!   the certificates of A and B (A checks B's identity from the registry).
//! - On that inner connection A opens ordinary HBONE `CONNECT
//!   service.ns:port` streams, one per flow; B authorizes each with A's
//!   identity from the *inner* handshake. The inner connection is pooled
//!   per (hub, instance, B's identity), so a new flow costs a stream, not
//!   a handshake (double HBONE, as ztunnel does through east-west
//!   gateways).
//! - END_STREAM on the pair stream closes the inner connection's
//!   transport; a reset of it, or the loss of either hub connection, is
//!   the loss of the inner connection (its flows end as connection lost).
//!
//! # Design
//!
//! The hub is a *role* of [`crate::node::Node`], not a separate machine: it
//! needs exactly what a node already has (TLS accept, mesh connections,
//! timers, events, metrics, the host contract of [`crate::drive`]), so the
//! same hosts run it unchanged. A node whose [`crate::node::NodeConfig::hub`]
//! is set serves its HBONE listener as a hub port; a node whose
//! [`crate::node::NodeConfig::hub_links`] names hubs keeps the forward and
//! reverse connections to each, redialling with jittered exponential
//! back-off seeded from the configuration. The node's module `hub_role`
//! holds the hub's side (control streams, registry, stream↔stream relay),
//! `hub_link` the agent's side.
//!
//! Replicas that share one identity are told apart by connection: the
//! registry files an announcement under the forward connection's number,
//! and the hub pairs it with the reverse connection of the same identity
//! from the same peer address.

mod event;
mod limits;

pub use event::{HubEvent, LinkKind};
pub use limits::{AgentLimits, Offence, Rate};
pub(crate) use limits::{OffenceCount, TokenBucket};

use core::net::SocketAddr;
use core::time::Duration;

use crate::balance::{Ejection, Strategy};
use crate::control::{AnnouncePolicy, DEFAULT_MAX_FRAME_LEN};
use crate::policy::PrincipalPattern;
use crate::registry::DEFAULT_MAX_ENTRIES;

/// ALPN of the forward connection (agent = HTTP/2 client).
pub const ALPN_FORWARD: &[u8] = b"h2";
/// ALPN of the reverse connection (agent = HTTP/2 server).
pub const ALPN_REVERSE: &[u8] = b"warren-reverse";
/// `:path` of the control stream.
pub const CONTROL_PATH: &str = "/warren.control.v1";
/// `content-type` of the control stream.
pub const CONTROL_CONTENT_TYPE: &str = "application/x-warren-control";
/// Header naming the originating agent on a CONNECT the hub relays.
pub const SOURCE_HEADER: &str = "warren-source";
/// Header of the hub's 200 to a plain relayed CONNECT naming the agent
/// it picked (its SPIFFE id, verified on that agent's reverse connection).
pub const DESTINATION_HEADER: &str = "warren-destination";
/// ALPN of the inner TLS session of end-to-end mode.
pub const ALPN_E2E: &[u8] = b"warren-e2e";
/// `:authority` of a pair stream (a placeholder: the headers name the agent).
pub const E2E_AUTHORITY: &str = "agent.warren-e2e:15008";
/// Header of a pair stream naming the agent (its SPIFFE id) to reach.
pub const E2E_PEER_HEADER: &str = "warren-e2e-peer";
/// Header of a pair stream naming the agent's instance (decimal, the
/// number in the hub's registry).
pub const E2E_INSTANCE_HEADER: &str = "warren-e2e-instance";
/// The service label of a pair stream in the hub's access log and metrics.
pub const E2E_SERVICE_LABEL: &str = "end-to-end";
/// The port a hub listens on unless told otherwise.
pub const DEFAULT_HUB_PORT: u16 = 15009;
/// Default bound on control bytes queued towards one agent.
pub const DEFAULT_CONTROL_OUTBOX: usize = 1024 * 1024;

/// What a node serving as a hub is configured with (its authorization
/// policy is the node's own [`crate::node::NodeConfig::authz`]).
#[derive(Clone, Debug, PartialEq)]
pub struct HubRole {
    /// Which identities may announce which services.
    pub announce: AnnouncePolicy,
    /// Rows the registry holds at most.
    pub max_registry_entries: usize,
    /// Longest control frame accepted or sent.
    pub max_control_frame: usize,
    /// Control bytes queued towards one agent at most; an agent that reads
    /// slower loses its control stream (it reconnects and gets a snapshot).
    pub max_control_outbox: usize,
    /// How endpoints of one service are chosen.
    pub strategy: Strategy,
    /// When an endpoint is left out after failures.
    pub ejection: Ejection,
    /// Seed of the balancers' jitter.
    pub seed: u64,
    /// What one agent may cost the hub before it is refused or suspended.
    pub limits: AgentLimits,
}

impl Default for HubRole {
    fn default() -> HubRole {
        HubRole {
            announce: AnnouncePolicy::default(),
            max_registry_entries: DEFAULT_MAX_ENTRIES,
            max_control_frame: DEFAULT_MAX_FRAME_LEN,
            max_control_outbox: DEFAULT_CONTROL_OUTBOX,
            strategy: Strategy::RoundRobin,
            ejection: Ejection::default(),
            seed: 0,
            limits: AgentLimits::default(),
        }
    }
}

/// How an agent picks between a direct connection and a hub.
///
/// An endpoint is *direct-capable* when the agent knows its HBONE address:
/// it is in the static directory, or a hub's registry lists it with the
/// address its agent announced. A direct connection verifies the
/// endpoint's identity (from the directory or the registry) in TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Route {
    /// Direct to a direct-capable endpoint; via a hub when there is none,
    /// when all are ejected, or when the flow's connects to them failed
    /// (before any byte was sent).
    #[default]
    DirectFirst,
    /// Every mesh service goes via a hub.
    HubOnly,
    /// Never via a hub: only direct-capable endpoints, a flow none can take
    /// is refused. Hubs still serve as registries (their rows give the
    /// addresses). For traffic that must not cross a relay even encrypted.
    DirectOnly,
}

/// An agent's hubs.
#[derive(Clone, Debug, PartialEq)]
pub struct HubLinks {
    /// Every hub, dialled twice (forward and reverse).
    pub hubs: Vec<SocketAddr>,
    /// Identities a hub's certificate must match; also the only peers whose
    /// [`SOURCE_HEADER`] is believed.
    pub identities: Vec<PrincipalPattern>,
    /// Direct or via a hub.
    pub route: Route,
    /// First redial delay; doubles per failure up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest redial delay.
    pub backoff_max: Duration,
    /// Seed of the redial jitter.
    pub seed: u64,
    /// How long a flow to a service no hub registry lists yet waits for
    /// the first registry of a hub still coming up (default 5 s); then the
    /// client is refused (`no registry from any hub within 5 s`). Without
    /// it such a flow waited until a link failed or the idle timeout.
    pub registry_wait: Duration,
    /// Control bytes queued towards one hub at most (default 1 MiB); a
    /// hub that reads slower (it can make us answer its pings and never
    /// take the answers) loses its control stream, which reconnects.
    pub max_control_outbox: usize,
    /// Rows of one hub's registry an agent keeps at most (default 65,536,
    /// the hub's own default cap); a snapshot or delta past it drops the
    /// control stream.
    pub max_registry_entries: usize,
}

impl Default for HubLinks {
    fn default() -> HubLinks {
        HubLinks {
            hubs: Vec::new(),
            identities: Vec::new(),
            route: Route::DirectFirst,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            seed: 0,
            registry_wait: DEFAULT_REGISTRY_WAIT,
            max_control_outbox: DEFAULT_CONTROL_OUTBOX,
            max_registry_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// [`HubLinks::registry_wait`] unless configured.
pub const DEFAULT_REGISTRY_WAIT: Duration = Duration::from_secs(5);

/// The redial delay after `failures` failures in a row: doubling from
/// `min` up to `max`, then scaled into [½, 1] by a hash of `seed`, the
/// hub's index and the attempt, so agents restarted together do not dial
/// in lockstep but a run with one seed is repeatable.
pub fn backoff(links: &HubLinks, hub: usize, failures: u32) -> Duration {
    let doubled = links
        .backoff_min
        .saturating_mul(1u32 << failures.min(20))
        .min(links.backoff_max);
    let mut x = links
        .seed
        .wrapping_add((hub as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(u64::from(failures).wrapping_mul(0xD1B5_4A32_D192_ED03));
    // splitmix64 finaliser: a well-mixed value from a counter.
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let per_mille = 500 + (x % 501) as u32;
    doubled.saturating_mul(per_mille) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn backoff_doubles_and_caps() {
        let links = HubLinks {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..HubLinks::default()
        };
        let b0 = backoff(&links, 0, 0);
        assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100));
        let b3 = backoff(&links, 0, 3);
        assert!(b3 >= Duration::from_millis(400) && b3 <= Duration::from_millis(800));
        let b9 = backoff(&links, 0, 9);
        assert!(b9 >= Duration::from_millis(500) && b9 <= Duration::from_secs(1));
    }

    #[test]
    fn backoff_depends_on_seed_and_hub() {
        let a = HubLinks {
            seed: 1,
            ..HubLinks::default()
        };
        let b = HubLinks {
            seed: 2,
            ..HubLinks::default()
        };
        let delays = |l: &HubLinks, hub| (0..8).map(|f| backoff(l, hub, f)).collect::<Vec<_>>();
        assert_ne!(delays(&a, 0), delays(&b, 0));
        assert_ne!(delays(&a, 0), delays(&a, 1));
        assert_eq!(delays(&a, 0), delays(&a, 0));
    }

    #[test]
    fn backoff_stays_in_bounds() {
        fn prop(seed: u64, hub: u8, failures: u32, min_ms: u16, max_ms: u16) -> TestResult {
            if min_ms == 0 || max_ms < min_ms {
                return TestResult::discard();
            }
            let links = HubLinks {
                seed,
                backoff_min: Duration::from_millis(u64::from(min_ms)),
                backoff_max: Duration::from_millis(u64::from(max_ms)),
                ..HubLinks::default()
            };
            let d = backoff(&links, usize::from(hub), failures);
            let cap = Duration::from_millis(u64::from(max_ms));
            TestResult::from_bool(d <= cap && d >= Duration::from_millis(u64::from(min_ms)) / 2)
        }
        quickcheck(prop as fn(u64, u8, u32, u16, u16) -> TestResult);
    }
}
