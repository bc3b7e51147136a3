//! Logging: the `tracing` subscriber (text or JSON lines on stderr) and
//! what each of the node's notices becomes.

use tracing::{debug, info, warn};
use warren_host::Notice;
use warren_proto::node::NodeEvent;

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

/// Logs one notice of the node called `agent`: an access line per closed
/// flow, a warning per denial (the decision names the rule), and the
/// listeners as they bind.
pub fn notice(agent: &str, notice: Notice) {
    match notice {
        Notice::Listening { addr, .. } => info!(agent, %addr, "listening"),
        Notice::Started => info!(agent, "started"),
        Notice::Event(event @ NodeEvent::FlowOpened { .. }) => debug!(agent, "{event}"),
        Notice::Event(event @ NodeEvent::FlowClosed { .. }) => info!(agent, "access {event}"),
        Notice::Event(event @ NodeEvent::PolicyDenied { .. }) => warn!(agent, "denied {event}"),
        Notice::Event(event) => warn!(agent, "{event}"),
    }
}
