//! What a node reports: one access-log event per flow, policy decisions,
//! failures, and counters for runtimes to export.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;
use std::collections::BTreeMap;

use crate::h2::{ErrorCode, Violation};
use crate::identity::SpiffeId;
use crate::policy::Decision;
use crate::tls::TlsError;

use super::FlowId;

/// Which way a flow crosses this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// A local client's flow leaving through a front end.
    Outbound,
    /// A mesh peer's flow arriving over HBONE.
    Inbound,
    /// A flow a hub relays between two agents.
    Relayed,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
            Direction::Relayed => "relayed",
        })
    }
}

/// Which way a flow's bytes travel between the two agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FlowPath {
    /// One HBONE connection between the two agents.
    Direct,
    /// Through a hub's relay.
    Hub,
    /// Plain TCP to a destination outside the mesh (egress).
    Egress,
}

impl fmt::Display for FlowPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlowPath::Direct => "direct",
            FlowPath::Hub => "hub",
            FlowPath::Egress => "egress",
        })
    }
}

/// A path for a log line, `-` when not chosen yet.
struct PathOf(Option<FlowPath>);

impl fmt::Display for PathOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{p}"),
            None => f.write_str("-"),
        }
    }
}

/// Why a flow ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides finished normally.
    Done,
    /// Policy refused it.
    Denied(Decision),
    /// The remote node answered the CONNECT with this status.
    Refused {
        /// The HTTP status.
        status: u16,
    },
    /// The inbound CONNECT was malformed (answered 400).
    BadRequest,
    /// Nothing to connect to (unknown service, no route, unresolvable).
    Unreachable,
    /// The service has endpoints, but each is ejected or already failed
    /// this flow, and the route allows no hub (or none is connected).
    NoHealthyEndpoint {
        /// How many endpoints the service has.
        endpoints: usize,
    },
    /// Connections could not open the flow's stream this many times
    /// (the peers' stream limits, or connections shutting down), and the
    /// flow gave up.
    StreamLimit {
        /// How many connections refused it.
        refusals: u8,
    },
    /// The flow waited this long for a hub's first registry (to learn
    /// how the service is served) and none came.
    NoRegistry {
        /// The configured wait ([`crate::hub::HubLinks::registry_wait`]).
        waited: Duration,
    },
    /// The local target or egress destination refused or failed.
    ConnectFailed,
    /// A connect or handshake took too long.
    Timeout,
    /// The local socket was reset.
    LocalReset,
    /// The HTTP/2 stream was reset by the peer or because of it.
    StreamReset(ErrorCode),
    /// The mesh connection carrying it failed.
    ConnectionLost,
    /// The client's front-end request was malformed.
    FrontEnd(String),
    /// A new configuration no longer allows it.
    Reconfigured(Decision),
    /// No byte moved for the idle timeout.
    Idle,
}

impl CloseReason {
    /// A short fixed name for metric labels (`done`, `denied`, ...): the
    /// display form carries rule names and codes, which would make label
    /// sets unbounded.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Done => "done",
            CloseReason::Denied(_) => "denied",
            CloseReason::Refused { .. } => "refused",
            CloseReason::BadRequest => "bad_request",
            CloseReason::Unreachable => "unreachable",
            CloseReason::NoHealthyEndpoint { .. } => "no_healthy_endpoint",
            CloseReason::StreamLimit { .. } => "stream_limit",
            CloseReason::NoRegistry { .. } => "no_registry",
            CloseReason::ConnectFailed => "connect_failed",
            CloseReason::Timeout => "timeout",
            CloseReason::LocalReset => "local_reset",
            CloseReason::StreamReset(_) => "stream_reset",
            CloseReason::ConnectionLost => "connection_lost",
            CloseReason::FrontEnd(_) => "front_end",
            CloseReason::Reconfigured(_) => "reconfigured",
            CloseReason::Idle => "idle",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Done => f.write_str("done"),
            CloseReason::Denied(d) => write!(f, "{d}"),
            CloseReason::Refused { status } => write!(f, "refused status={status}"),
            CloseReason::BadRequest => f.write_str("bad request"),
            CloseReason::Unreachable => f.write_str("unreachable"),
            CloseReason::NoHealthyEndpoint { endpoints } => {
                write!(f, "no healthy endpoint: all {endpoints} ejected or failed")
            }
            CloseReason::StreamLimit { refusals } => write!(
                f,
                "no stream: the peer's stream limit refused it {refusals} times"
            ),
            CloseReason::NoRegistry { waited } => {
                write!(f, "no registry from any hub within {}", Span(*waited))
            }
            CloseReason::ConnectFailed => f.write_str("connect failed"),
            CloseReason::Timeout => f.write_str("timeout"),
            CloseReason::LocalReset => f.write_str("local reset"),
            CloseReason::StreamReset(code) => write!(f, "stream reset code={code}"),
            CloseReason::ConnectionLost => f.write_str("connection lost"),
            CloseReason::FrontEnd(e) => write!(f, "front end: {e}"),
            CloseReason::Reconfigured(d) => write!(f, "reconfigured: {d}"),
            CloseReason::Idle => f.write_str("idle"),
        }
    }
}

/// A configured duration for a log line: whole seconds as `5 s`, else
/// milliseconds (`1500 ms`).
struct Span(Duration);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        match ms % 1000 {
            0 => write!(f, "{} s", ms / 1000),
            _ => write!(f, "{ms} ms"),
        }
    }
}

/// Something a node reports to its host.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// A flow is established (tunnel answered 200 / target connected).
    FlowOpened {
        /// The flow.
        flow: FlowId,
        /// Which way.
        direction: Direction,
        /// The source identity, when known.
        source: Option<SpiffeId>,
        /// The destination identity, when known.
        destination: Option<SpiffeId>,
        /// The service or target.
        service: String,
        /// Direct, via a hub, or egress.
        path: Option<FlowPath>,
    },
    /// A flow ended: the access-log line.
    FlowClosed {
        /// The flow.
        flow: FlowId,
        /// Which way.
        direction: Direction,
        /// The source identity, when known.
        source: Option<SpiffeId>,
        /// The destination identity, when known.
        destination: Option<SpiffeId>,
        /// The service or target.
        service: String,
        /// Bytes read from the local socket and passed on.
        bytes_sent: u64,
        /// Bytes written to the local socket.
        bytes_received: u64,
        /// From the flow's start to its end.
        duration: Duration,
        /// Why it ended.
        reason: CloseReason,
        /// Direct, via a hub, or egress; `None` when it ended before a
        /// path was chosen.
        path: Option<FlowPath>,
    },
    /// A failed connect or handshake ejected an endpoint: flows leave it
    /// out until the back-off passes (circuit breaking).
    EndpointEjected {
        /// The endpoint.
        endpoint: super::Endpoint,
        /// How long it is left out.
        back_off: Duration,
    },
    /// Policy refused a flow (`policy denied ... rule=NAME`).
    PolicyDenied {
        /// The decision, naming the rule.
        decision: Decision,
        /// Who asked.
        source: Option<SpiffeId>,
        /// What was asked for.
        destination: String,
    },
    /// A mesh TLS handshake failed.
    HandshakeFailed {
        /// The peer's address.
        peer: SocketAddr,
        /// Why.
        error: HandshakeError,
    },
    /// A mesh connection failed at the HTTP/2 level.
    H2Error {
        /// The peer's address.
        peer: SocketAddr,
        /// The code sent or received.
        code: ErrorCode,
        /// The rule the peer broke, when we ended it.
        violation: Option<Violation>,
    },
    /// A new configuration is in effect.
    ConfigApplied {
        /// Flows it closed.
        closed_flows: usize,
    },
    /// Something about hub connections, the control stream or the registry.
    Hub(crate::hub::HubEvent),
    /// A pooled connection became congested (its connection-level send
    /// window, not its streams', holds it back: new flows to its peer go
    /// to another connection) or recovered (it takes new flows again).
    /// Edge-triggered: one event per change.
    PoolCongestion {
        /// The peer's address.
        peer: SocketAddr,
        /// The identity the peer proved, when known.
        identity: Option<SpiffeId>,
        /// True when it became congested, false when it recovered.
        congested: bool,
        /// Its connection-level send window at that moment, bytes.
        send_window: i64,
        /// Streams carrying flows on it then (they stay on it).
        streams: usize,
    },
    /// A flow's new pooled connection (opened to spread away from
    /// congested ones) could not be had, and the flow went to the least
    /// congested live connection to the same peer instead of being
    /// refused (see [`crate::pool::Pool::fallback`]).
    PoolFallback {
        /// The flow.
        flow: FlowId,
        /// The peer's address.
        peer: SocketAddr,
        /// The identity the peer proved, when known (not yet while the
        /// connection taking the flow is in its handshake).
        identity: Option<SpiffeId>,
        /// The taking connection's connection-level send window, bytes.
        send_window: i64,
        /// Streams carrying flows on it before this one.
        streams: usize,
        /// What happened to the new connection.
        cause: DialFailure,
    },
    /// The host could not listen where the configuration asked; the node
    /// runs on without that listener.
    ListenFailed {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        error: super::ListenError,
    },
}

/// Why a flow did not get the new pooled connection it asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialFailure {
    /// The dial never started: the client TLS configuration or session
    /// could not be made.
    NotStarted,
    /// The TCP connect or the TLS handshake failed or timed out.
    Failed,
}

impl fmt::Display for DialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DialFailure::NotStarted => "dial_not_started",
            DialFailure::Failed => "dial_failed",
        })
    }
}

/// An identity for a log line, `-` when unknown (also for hub events).
pub(crate) struct Who<'a>(pub(crate) &'a Option<SpiffeId>);

impl fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "{id}"),
            None => f.write_str("-"),
        }
    }
}

/// One log line per event; `FlowClosed` is the access log
/// (`flow closed direction src dst service path bytes duration reason`),
/// `PolicyDenied` reads `policy denied reason=... rule=NAME ...`.
impl fmt::Display for NodeEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeEvent::FlowOpened {
                flow,
                direction,
                source,
                destination,
                service,
                path,
            } => write!(
                f,
                "flow opened {flow} direction={direction} src={} dst={} service={service} path={}",
                Who(source),
                Who(destination),
                PathOf(*path)
            ),
            NodeEvent::FlowClosed {
                flow,
                direction,
                source,
                destination,
                service,
                bytes_sent,
                bytes_received,
                duration,
                reason,
                path,
            } => write!(
                f,
                "flow closed {flow} direction={direction} src={} dst={} service={service} \
                 path={} sent={bytes_sent} received={bytes_received} duration_ms={} \
                 reason=\"{reason}\"",
                Who(source),
                Who(destination),
                PathOf(*path),
                duration.as_millis()
            ),
            NodeEvent::EndpointEjected { endpoint, back_off } => write!(
                f,
                "endpoint ejected addr={} identity={} back_off_ms={}",
                endpoint.hbone,
                endpoint.identity,
                back_off.as_millis()
            ),
            NodeEvent::PolicyDenied {
                decision,
                source,
                destination,
            } => write!(f, "{decision} src={} dst={destination}", Who(source)),
            NodeEvent::HandshakeFailed { peer, error } => {
                write!(f, "handshake failed peer={peer} error=\"{error}\"")
            }
            NodeEvent::H2Error {
                peer,
                code,
                violation,
            } => {
                write!(f, "h2 error peer={peer} code={code}")?;
                match violation {
                    Some(v) => write!(f, " violation={v:?}"),
                    None => Ok(()),
                }
            }
            NodeEvent::ConfigApplied { closed_flows } => {
                write!(f, "config applied closed_flows={closed_flows}")
            }
            NodeEvent::Hub(event) => write!(f, "hub {event}"),
            NodeEvent::PoolCongestion {
                peer,
                identity,
                congested,
                send_window,
                streams,
            } => write!(
                f,
                "connection {} peer={peer} identity={} send_window={send_window} streams={streams}",
                if *congested { "congested" } else { "recovered" },
                Who(identity)
            ),
            NodeEvent::PoolFallback {
                flow,
                peer,
                identity,
                send_window,
                streams,
                cause,
            } => write!(
                f,
                "pool fallback {flow} peer={peer} identity={} \
                 send_window={send_window} streams={streams} cause={cause}",
                Who(identity)
            ),
            NodeEvent::ListenFailed { addr, error } => {
                write!(f, "listen failed addr={addr} error=\"{error}\"")
            }
        }
    }
}

/// One live flow, for the admin port's `/flows`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSnapshot {
    /// The flow.
    pub flow: FlowId,
    /// Which way.
    pub direction: Direction,
    /// The source identity, when known.
    pub source: Option<SpiffeId>,
    /// The destination identity, when known.
    pub destination: Option<SpiffeId>,
    /// The service or target.
    pub service: String,
    /// True once the tunnel or connection is up.
    pub established: bool,
    /// Bytes read from the local socket and passed on.
    pub bytes_sent: u64,
    /// Bytes written to the local socket.
    pub bytes_received: u64,
    /// When the flow started.
    pub started: crate::time::Instant,
}

/// Mesh TLS handshakes a node completed, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeCounts {
    /// Full handshakes: both certificates sent and verified.
    pub full: u64,
    /// Handshakes that resumed a stored session and passed the re-check.
    pub resumed: u64,
    /// Resumed handshakes whose stored peer certificate failed the
    /// re-check (the connection was closed).
    pub resumed_refused: u64,
}

/// Why a handshake failed.
#[derive(Clone, Debug, PartialEq)]
pub enum HandshakeError {
    /// TLS said so.
    Tls(TlsError),
    /// It did not finish in time.
    Timeout,
    /// The TCP connection failed or ended first.
    Transport,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Tls(e) => write!(f, "{e}"),
            HandshakeError::Timeout => f.write_str("timeout"),
            HandshakeError::Transport => f.write_str("transport failed"),
        }
    }
}

/// The labels of one counter set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricKey {
    /// Source identity (empty when unknown).
    pub source: Option<SpiffeId>,
    /// Destination identity (empty when unknown).
    pub destination: Option<SpiffeId>,
    /// Service or target.
    pub service: String,
    /// Which way.
    pub direction: Direction,
}

/// Counters of one label set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Flows established.
    pub opened: u64,
    /// Flows ended (established or not).
    pub closed: u64,
    /// Bytes read from local sockets and passed on.
    pub bytes_sent: u64,
    /// Bytes written to local sockets.
    pub bytes_received: u64,
}

/// Every counter set, ordered by labels.
pub type Metrics = BTreeMap<MetricKey, FlowCounters>;

/// Flows closed per label set and [`CloseReason::label`].
pub type CloseCounts = BTreeMap<(MetricKey, &'static str), u64>;

/// One mesh connection, for the admin port's `/certs` and gauges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnSnapshot {
    /// The peer's address.
    pub peer_addr: core::net::SocketAddr,
    /// The verified peer identity, once the handshake is done.
    pub peer: Option<SpiffeId>,
    /// A client connection of the outbound pool (else accepted).
    pub pooled: bool,
    /// HTTP/2 streams carrying flows now.
    pub streams: usize,
    /// When it was dialled or accepted.
    pub opened: crate::time::Instant,
}
