//! The warren path: agent A (tunnel front) → mTLS HBONE → agent B (export
//! to the target), each agent a child process as deployed (one node on one
//! thread). A child is this executable re-run with `--agent` (see
//! [`SelfExec`]), so its CPU and memory are read from /proc like every
//! peer's.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warren_host::keyshare::with_stocked_key_shares;
use warren_proto::front::Target as FrontTarget;
use warren_proto::identity::Resumption;
use warren_proto::identity::{MeshTlsParams, MeshTrust, SpiffeId, TrustDomain};
use warren_proto::node::{Endpoint, FrontConfig, FrontKind, MeshIdentity, NodeConfig};
use warren_proto::policy::{AuthzPolicy, Export, Exports, ServiceName, Target};
use warren_sim::certs::{SimCa, Validity};

use super::peers::{Missing, Relay};
use super::procs::Daemon;

/// Trust domain of the bench mesh.
const TD: &str = "bench.test";

/// How to run this executable again as the agents' child process: the
/// executable and the arguments before `--agent` (`bench` for `warren bench`).
#[derive(Clone, Debug)]
pub struct SelfExec {
    /// The executable (normally `std::env::current_exe()`).
    pub exe: PathBuf,
    /// Arguments that lead to the bench's argument parser.
    pub prefix: Vec<String>,
}

/// Starts agent B (export to `target`) and agent A (tunnel front to it)
/// on `runtime`, each in its own child process as they would be deployed;
/// with `cold`, agent A's pool drops a connection 1 ms after its last stream.
/// TLS resumption is on (the agents' default) unless `full_handshakes`.
pub fn path_warren(
    me: &SelfExec,
    runtime: &str,
    cold: bool,
    full_handshakes: bool,
    target: SocketAddr,
    dir: &Path,
) -> Result<Relay, Missing> {
    let now = ca_epoch()?;
    let target = target.to_string();
    let mut export_args = vec![now.as_str(), "export", &target];
    if full_handshakes {
        export_args.push(NO_RESUMPTION);
    }
    let (b, hbone) = agent_child(me, runtime, &export_args, dir)?;
    let mut front_args = vec![now.as_str(), "front"];
    let hbone = hbone.to_string();
    front_args.push(&hbone);
    if cold {
        front_args.push("cold");
    }
    if full_handshakes {
        front_args.push(NO_RESUMPTION);
    }
    let (a, entry) = agent_child(me, runtime, &front_args, dir)?;
    Ok(Relay {
        entry,
        daemons: vec![a, b],
    })
}

/// The CA epoch every agent child of one path is started with: now, in
/// seconds since 1970, as text. Each child derives the same CA and
/// certificates (their validity starts there) from it, so the children
/// trust one another without sharing files.
pub(super) fn ca_epoch() -> Result<String, Missing> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    Ok(now.as_secs().to_string())
}

/// Starts one agent child; returns it and the address it printed.
pub(super) fn agent_child(
    me: &SelfExec,
    runtime: &str,
    args: &[&str],
    dir: &Path,
) -> Result<(Daemon, SocketAddr), Missing> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("warren-{runtime}.log")))
        .map_err(|e| e.to_string())?;
    let mut child = Command::new(&me.exe)
        .args(&me.prefix)
        .args(["--agent", runtime])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let daemon = Daemon { child };
    let addr: SocketAddr = line
        .trim()
        .parse()
        .map_err(|_| format!("agent {runtime} {args:?} did not start: {line:?}"))?;
    Ok((daemon, addr))
}

fn spiffe(sa: &str) -> Result<SpiffeId, String> {
    SpiffeId::parse(&format!("spiffe://{TD}/ns/bench/sa/{sa}")).map_err(|e| format!("{e:?}"))
}

/// The agent argument that turns TLS resumption off.
const NO_RESUMPTION: &str = "no-resumption";

/// An agent identity with TLS resumption on, as `warren agent` defaults.
pub(super) fn identity(
    ca: &SimCa,
    validity: Validity,
    sa: &str,
    serial: u64,
) -> Result<MeshIdentity, String> {
    identity_with(ca, validity, sa, serial, Resumption::default())
}

fn identity_with(
    ca: &SimCa,
    validity: Validity,
    sa: &str,
    serial: u64,
    resumption: Resumption,
) -> Result<MeshIdentity, String> {
    let leaf = ca
        .issue(&spiffe(sa)?, serial, validity)
        .map_err(|e| format!("{e:?}"))?;
    let td = TrustDomain::new(TD).map_err(|e| format!("{e:?}"))?;
    let trust = MeshTrust::new(td, &[ca.cert().clone()]).map_err(|e| format!("{e:?}"))?;
    // As `warren agent` does: key pairs made while the agent is idle.
    let provider = with_stocked_key_shares(rustls::crypto::ring::default_provider());
    let params = MeshTlsParams::new(
        Arc::new(provider),
        Arc::new(rustls::time_provider::DefaultTimeProvider),
        Arc::new(trust),
        leaf.chain.clone(),
        leaf.key(),
    )
    .map_err(|e| format!("{e:?}"))?
    .with_resumption(resumption);
    MeshIdentity::new(params).map_err(|e| format!("{e:?}"))
}

/// `args` are what follows `--agent`: `<tokio|smol> <unix time> export
/// <target>` runs agent B, which exports `sink.bench:80` → target and prints
/// its HBONE address; `<tokio|smol> <unix time> front <hbone> [cold]` runs
/// agent A, a tunnel front to that service at `hbone`, and prints the
/// front's address. Either runs until stdin closes. A last argument
/// `no-resumption` makes every TLS handshake a full one.
pub fn run_agents(args: &[String]) -> Result<(), String> {
    let usage = "usage: --agent <tokio|smol> <unix time> (export <target> | front <hbone> [cold] \
                 | hub <listen> | relay-export[-plain] <hub> <target> | relay-front <hub>) \
                 [no-resumption]";
    let (resumption, args) = match args.split_last() {
        Some((last, rest)) if last == NO_RESUMPTION => (Resumption::disabled(), rest),
        _ => (Resumption::default(), args),
    };
    let [runtime, now, role, addr, rest @ ..] = args else {
        return Err(usage.into());
    };
    let addr: SocketAddr = addr.parse().map_err(|_| "bad address")?;
    let now: u64 = now.parse().map_err(|_| "bad time")?;
    let validity = Validity {
        not_before: now.saturating_sub(3600),
        not_after: now + 86_400,
    };
    let ca = SimCa::new([9; 32], "bench CA", 1, validity).map_err(|e| format!("{e:?}"))?;
    let service = ServiceName::parse("sink.bench").map_err(|e| format!("{e:?}"))?;
    let make_identity = |sa: &str, serial: u64| identity(&ca, validity, sa, serial);
    let relayed = super::relay::relay_config(role, addr, rest, service.clone(), &make_identity);
    let config = if let Some(relayed) = relayed {
        relayed?
    } else {
        match (role.as_str(), rest) {
            ("export", []) => {
                let mut b = NodeConfig::new(identity_with(&ca, validity, "sink", 3, resumption)?);
                b.hbone_listen = Some(([127, 0, 0, 1], 0).into());
                b.exports = Exports::new(vec![Export {
                    service,
                    port: 80,
                    target: Target::Addr(addr),
                }])
                .map_err(|e| format!("{e:?}"))?;
                b.authz = AuthzPolicy::default();
                b
            }
            ("front", cold) => {
                let mut a = NodeConfig::new(identity_with(&ca, validity, "client", 2, resumption)?);
                // Same-run before/after comparisons of early data (0 = off).
                if let Some(limit) = std::env::var_os("WARREN_BENCH_EARLY_DATA") {
                    a.early_data_limit = limit.to_str().and_then(|l| l.parse().ok()).unwrap_or(0);
                }
                match cold {
                    [] => {}
                    // A pool that drops a connection 1 ms after its last stream: with
                    // the bench's pause between flows, every flow pays a new handshake.
                    [c] if c == "cold" => a.pool.idle_timeout = Duration::from_millis(1),
                    _ => return Err(usage.into()),
                }
                a.fronts.push(FrontConfig {
                    listen: ([127, 0, 0, 1], 0).into(),
                    kind: FrontKind::Tunnel {
                        to: FrontTarget::parse("sink.bench:80").map_err(|e| format!("{e:?}"))?,
                    },
                });
                a.directory.insert(
                    service,
                    vec![Endpoint {
                        hbone: addr,
                        identity: spiffe("sink")?,
                    }],
                );
                a
            }
            _ => return Err(usage.into()),
        }
    };
    let bound = spawn(runtime, config)?;
    // An agent that only dials a hub binds nothing: it says so with port 0.
    let first = bound
        .first()
        .copied()
        .unwrap_or_else(|| ([127, 0, 0, 1], 0).into());
    println!("{first}");
    io::stdout().flush().map_err(|e| e.to_string())?;
    // Runs until the bench closes our stdin (or dies).
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
    Ok(())
}

/// Starts a node on `runtime`; returns its bound addresses (HBONE or front first).
/// The handle is leaked on purpose: the node lives as long as this process.
fn spawn(runtime: &str, config: NodeConfig) -> Result<Vec<SocketAddr>, String> {
    // WARREN_BENCH_LOG=1: every notice to stderr (the run's log file), for
    // finding out why a path did not come up; off, so it costs no timing.
    let log = std::env::var_os("WARREN_BENCH_LOG").is_some();
    let notice = move |n: warren_tokio::Notice| {
        if log {
            eprintln!("{n:?}");
        }
    };
    // WARREN_BENCH_SPIN_US=N: the node's loop spins up to N µs after it
    // did work before parking (`LoopOptions::spin`, an adaptive window;
    // 100 µs by default, as in `warren agent`; 0 parks at once), for
    // same-run before/after comparisons.
    let options = warren_tokio::LoopOptions {
        spin: Duration::from_micros(
            std::env::var("WARREN_BENCH_SPIN_US")
                .ok()
                .and_then(|us| us.parse().ok())
                .unwrap_or(100),
        ),
    };
    let handle = match runtime {
        "tokio" => warren_tokio::spawn_with(config, options, notice),
        "smol" => warren_smol::spawn_with(config, options, notice),
        other => return Err(format!("unknown runtime {other}")),
    }
    .map_err(|e| e.to_string())?;
    let addrs = handle.local_addrs().to_vec();
    std::mem::forget(handle);
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_epoch_is_what_a_child_parses_as_its_unix_time() {
        let epoch = ca_epoch().unwrap();
        assert!(epoch.bytes().all(|b| b.is_ascii_digit()), "{epoch}");
        let secs: u64 = epoch
            .parse()
            .expect("decimal seconds, as run_agents reads them");
        // Past 1970 by more than the hour run_agents backdates certificates.
        assert!(secs > 3600, "{secs}");
    }
}
