//! Logging: the `tracing` subscriber (text or JSON lines on stderr) and
//! what each of the node's notices becomes.
//!
//! Access and denial lines carry their facts as separate `tracing` fields
//! (`direction`, `source`, `destination`, `service`, `bytes_sent`,
//! `bytes_received`, `duration_ms`, `reason`, `rule`), so that with
//! `--log-format json` each is its own key of the line's object and a
//! log collector needs no parsing of the message.

use tracing::{debug, info, warn};
use warren_host::Notice;
use warren_proto::identity::SpiffeId;
use warren_proto::node::{CloseReason, NodeEvent};
use warren_proto::policy::Decision;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber; `RUST_LOG`-style filtering is left out
/// on purpose: access and denial lines are the product, always on.
pub fn init(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false);
    // Fails only when a subscriber is already set (a second demo agent).
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// An identity as a log field: `-` when unknown, so that every access
/// line has the same keys.
fn who(id: Option<&SpiffeId>) -> &str {
    id.map_or("-", SpiffeId::as_str)
}

/// The rule that decided, `-` when a default did.
fn rule_of(decision: Option<&Decision>) -> &str {
    decision
        .and_then(|d| d.rule.as_ref())
        .map_or("-", |r| r.as_str())
}

/// The decision a close reason carries, if policy ended the flow.
fn decision_of(reason: &CloseReason) -> Option<&Decision> {
    match reason {
        CloseReason::Denied(d) | CloseReason::Reconfigured(d) => Some(d),
        _ => None,
    }
}

/// Which way a denied flow was going: egress rules guard flows leaving
/// through this agent's proxies, authorization guards flows arriving.
fn denial_direction(decision: &Decision) -> &'static str {
    if decision.reason.code().starts_with("egress") {
        "outbound"
    } else {
        "inbound"
    }
}

/// Logs one notice of the node called `agent`: an access line per closed
/// flow, a warning per denial (the decision names the rule), and the
/// listeners as they bind.
pub fn notice(agent: &str, notice: Notice) {
    match notice {
        Notice::Listening { addr, .. } => info!(agent, %addr, "listening"),
        Notice::AcceptFailed {
            error, retry_in, ..
        } => warn!(
            agent,
            %error,
            retry_in_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX),
            "accept failed; pausing this listener"
        ),
        Notice::Started => info!(agent, "started"),
        Notice::Event(event @ NodeEvent::FlowOpened { .. }) => debug!(agent, "{event}"),
        Notice::Event(NodeEvent::FlowClosed {
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
        }) => info!(
            agent,
            flow = %flow,
            direction = %direction,
            source = %who(source.as_ref()),
            destination = %who(destination.as_ref()),
            service = %service,
            path = %path.map_or_else(|| "-".to_string(), |p| p.to_string()),
            bytes_sent,
            bytes_received,
            duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            reason = %reason,
            rule = %rule_of(decision_of(&reason)),
            "access flow closed"
        ),
        Notice::Event(NodeEvent::PolicyDenied {
            decision,
            source,
            destination,
        }) => warn!(
            agent,
            direction = %denial_direction(&decision),
            source = %who(source.as_ref()),
            destination = %destination,
            reason = %decision.reason.code(),
            rule = %rule_of(Some(&decision)),
            "policy denied"
        ),
        // A congested pooled connection is a warning; its recovery is not.
        Notice::Event(
            event @ NodeEvent::PoolCongestion {
                congested: false, ..
            },
        ) => info!(agent, "{event}"),
        Notice::Event(event) => warn!(agent, "{event}"),
    }
}
