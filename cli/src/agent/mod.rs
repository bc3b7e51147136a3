//! `warren agent`: one mesh node from a configuration file, on tokio or
//! smol, logging access lines and denials, reloading on SIGHUP (or when
//! the file changes) and draining on SIGTERM/SIGINT.
//!
//! The admin endpoint (`/metrics`, `/flows`, `/certs`, `/config_dump`,
//! `/healthz`) runs on [`AgentConfig::admin`].

pub mod log;
mod node_config;

pub use node_config::{node_config, resolve, Resolved};

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{error, info, warn};
use warren_host::admin::{AdminServer, NoticeRecord, RecordedNode};
use warren_host::{Handle, LoopOptions, Notice};
use warren_proto::node::NodeConfig;

use crate::config::{self, AgentConfig};

/// How long a stopping agent waits for its flows to finish.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// How often the configuration file's modification time is looked at.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// Which async runtime carries the node's sockets and timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    /// tokio, single-threaded.
    Tokio,
    /// smol (async-io).
    Smol,
}

/// Starts `config`'s node on `runtime` on its own thread; `agent` names it
/// in log lines, `record` keeps what the admin endpoint shows of its
/// notices (denials, failed accepts). Returns once every
/// listener is bound.
fn start(
    runtime: Runtime,
    agent: &'static str,
    config: NodeConfig,
    options: LoopOptions,
    record: NoticeRecord,
) -> io::Result<Handle> {
    let on_notice = move |n: Notice| {
        record.record(&n);
        log::notice(agent, n);
    };
    match runtime {
        Runtime::Tokio => warren_tokio::spawn_with(config, options, on_notice),
        Runtime::Smol => warren_smol::spawn_with(config, options, on_notice),
    }
}

/// Stops `handle`, waiting at most `deadline` for the node's thread.
fn drain(handle: Handle, deadline: Duration) {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(handle.shutdown());
    });
    match done_rx.recv_timeout(deadline) {
        Ok(Ok(())) => info!("stopped"),
        Ok(Err(e)) => warn!(error = %e, "stopped with an error"),
        Err(_) => warn!(
            deadline_secs = deadline.as_secs(),
            "drain deadline passed; exiting"
        ),
    }
}

/// A started node and the admin endpoint that shows it.
pub struct RunningAgent {
    handle: Arc<Handle>,
    admin: AdminServer,
}

impl RunningAgent {
    /// Starts `config`'s node on `runtime` with loop `options` (see
    /// [`start`]) and its admin
    /// endpoint on `admin`. An admin address that cannot be bound fails the
    /// start like any other listener (issue 6: a port in use is a clear
    /// error, nothing half-started): the node is stopped again.
    pub fn start(
        runtime: Runtime,
        agent: &'static str,
        config: NodeConfig,
        options: LoopOptions,
        admin: SocketAddr,
    ) -> io::Result<RunningAgent> {
        let record = NoticeRecord::default();
        let handle = Arc::new(start(runtime, agent, config, options, record.clone())?);
        let source = RecordedNode {
            handle: Arc::clone(&handle),
            record,
        };
        match AdminServer::start(admin, source) {
            Ok(server) => Ok(RunningAgent {
                handle,
                admin: server,
            }),
            Err(e) => {
                // The failed server dropped its clone: this is the only one.
                if let Ok(handle) = Arc::try_unwrap(handle) {
                    let _ = handle.shutdown();
                }
                Err(io::Error::new(
                    e.kind(),
                    format!("admin endpoint on {admin}: {e}"),
                ))
            }
        }
    }

    /// The running node.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Stops the admin endpoint, then the node, waiting at most `deadline`.
    pub fn drain(self, deadline: Duration) {
        // Stopping the admin server drops its clone of the handle.
        drop(self.admin);
        match Arc::try_unwrap(self.handle) {
            Ok(handle) => drain(handle, deadline),
            Err(_) => warn!("the node is still shared; exiting without draining"),
        }
    }
}

/// Reads the configuration file (the identity maybe from `ticket`) and
/// builds the node's configuration.
fn load(file: &Path, ticket: Option<&Path>) -> Result<(AgentConfig, Resolved), String> {
    let cfg = config::load_with_ticket(file, ticket).map_err(|e| e.to_string())?;
    let resolved = resolve(&cfg).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok((cfg, resolved))
}

/// The file's modification time, if it can be read.
fn modified(file: &Path) -> Option<SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

/// `warren agent`: runs until SIGTERM or SIGINT. `ticket` is the join
/// ticket given on the command line, instead of the file's `[identity]`.
pub fn run(file: PathBuf, ticket: Option<PathBuf>, runtime: Runtime) -> Result<(), String> {
    let ticket = ticket.as_deref();
    let (cfg, Resolved { node, hubs }) = load(&file, ticket)?;
    // Registered before the node starts, so an early signal is not lost.
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT])
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    let id = node.identity.id().to_string();
    let agent = RunningAgent::start(runtime, "agent", node, cfg.runtime, cfg.admin)
        .map_err(|e| format!("cannot start the agent: {e}"))?;
    info!(
        config = %file.display(),
        %id,
        runtime = ?runtime,
        admin = %cfg.admin,
        listeners = ?agent.handle().local_addrs(),
        hubs = ?hubs.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "ready"
    );
    // The revocation list is watched with the file: a revoked identity
    // must lose its connections without anyone sending SIGHUP.
    let watched = |cfg: &AgentConfig| {
        (
            modified(&file),
            cfg.revocation.as_deref().and_then(modified),
        )
    };
    let mut seen = watched(&cfg);
    loop {
        for signal in signals.pending() {
            match signal {
                SIGHUP => reload(&file, ticket, agent.handle(), "SIGHUP"),
                _ => {
                    info!(signal, "draining");
                    agent.drain(DRAIN_DEADLINE);
                    return Ok(());
                }
            }
        }
        let now = match config::load_with_ticket(&file, ticket) {
            Ok(cfg) => watched(&cfg),
            Err(_) => (modified(&file), seen.1),
        };
        if now != seen {
            seen = now;
            reload(&file, ticket, agent.handle(), "the file changed");
        }
        std::thread::sleep(WATCH_INTERVAL);
    }
}

/// `warren hub`: an agent file with a `[hub]` table, run until SIGTERM
/// or SIGINT.
pub fn run_hub(file: PathBuf, ticket: Option<PathBuf>, runtime: Runtime) -> Result<(), String> {
    let cfg = config::load_with_ticket(&file, ticket.as_deref()).map_err(|e| e.to_string())?;
    if cfg.hub.is_none() {
        return Err(format!(
            "{}: no [hub] table; expected one with [[hub.announce]] rules",
            file.display()
        ));
    }
    run(file, ticket, runtime)
}

/// Reloads policy, exports, services and certificates; a broken file is
/// logged and the running configuration kept.
fn reload(file: &Path, ticket: Option<&Path>, handle: &Handle, why: &str) {
    match load(file, ticket) {
        Ok((_, resolved)) => match handle.reconfigure(resolved.node) {
            Ok(()) => info!(reason = why, "configuration reloaded"),
            Err(e) => error!(error = %e, "reload failed"),
        },
        Err(e) => {
            error!(reason = why, error = %e, "reload refused; keeping the running configuration")
        }
    }
}
