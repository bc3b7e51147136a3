//! The warren path: agent A (tunnel front) → mTLS HBONE → agent B (export
//! to the target), both nodes in one child process, each on its own
//! thread with its own runtime. The child is this executable re-run with
//! `--agent` (see [`SelfExec`]), so its CPU and memory are read from /proc
//! like every peer's.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warren_proto::front::Target as FrontTarget;
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

/// Starts both agents on `runtime` in a child process; with `cold`, agent
/// A's pool drops a connection 1 ms after its last stream.
pub fn path_warren(
    me: &SelfExec,
    runtime: &str,
    cold: bool,
    target: SocketAddr,
    dir: &Path,
) -> Result<Relay, Missing> {
    let log =
        fs::File::create(dir.join(format!("warren-{runtime}.log"))).map_err(|e| e.to_string())?;
    let mut child = Command::new(&me.exe)
        .args(&me.prefix)
        .args(["--agent", runtime, &target.to_string()])
        .args(cold.then_some("cold"))
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
    let entry: SocketAddr = line
        .trim()
        .parse()
        .map_err(|_| format!("agent {runtime} did not start: {line:?}"))?;
    Ok(Relay {
        entry,
        daemons: vec![Daemon { child }],
    })
}

fn spiffe(sa: &str) -> Result<SpiffeId, String> {
    SpiffeId::parse(&format!("spiffe://{TD}/ns/bench/sa/{sa}")).map_err(|e| format!("{e:?}"))
}

fn identity(ca: &SimCa, validity: Validity, sa: &str, serial: u64) -> Result<MeshIdentity, String> {
    let leaf = ca
        .issue(&spiffe(sa)?, serial, validity)
        .map_err(|e| format!("{e:?}"))?;
    let td = TrustDomain::new(TD).map_err(|e| format!("{e:?}"))?;
    let trust = MeshTrust::new(td, &[ca.cert().clone()]).map_err(|e| format!("{e:?}"))?;
    let params = MeshTlsParams::new(
        Arc::new(rustls::crypto::ring::default_provider()),
        Arc::new(rustls::time_provider::DefaultTimeProvider),
        Arc::new(trust),
        leaf.chain.clone(),
        leaf.key(),
    )
    .map_err(|e| format!("{e:?}"))?;
    MeshIdentity::new(params).map_err(|e| format!("{e:?}"))
}

/// Agent B exports `sink.bench:80` → `target`; agent A fronts it on a tunnel
/// port, printed on stdout. Both run until stdin closes.
/// `args` are what follows `--agent`: `<tokio|smol> <target addr> [cold]`.
pub fn run_agents(args: &[String]) -> Result<(), String> {
    let (runtime, target, cold) = match args {
        [runtime, target] => (runtime, target, false),
        [runtime, target, c] if c == "cold" => (runtime, target, true),
        _ => return Err("usage: --agent <tokio|smol> <target addr> [cold]".into()),
    };
    let target: SocketAddr = target.parse().map_err(|_| "bad target address")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let validity = Validity {
        not_before: now - 3600,
        not_after: now + 86_400,
    };
    let ca = SimCa::new([9; 32], "bench CA", 1, validity).map_err(|e| format!("{e:?}"))?;
    let service = ServiceName::parse("sink.bench").map_err(|e| format!("{e:?}"))?;

    let mut b = NodeConfig::new(identity(&ca, validity, "sink", 3)?);
    b.hbone_listen = Some(([127, 0, 0, 1], 0).into());
    b.exports = Exports::new(vec![Export {
        service: service.clone(),
        port: 80,
        target: Target::Addr(target),
    }])
    .map_err(|e| format!("{e:?}"))?;
    b.authz = AuthzPolicy::default();
    let node_b = spawn(runtime, b)?;
    let hbone = *node_b.first().ok_or("agent B bound nothing")?;

    let mut a = NodeConfig::new(identity(&ca, validity, "client", 2)?);
    if cold {
        // A pool that drops a connection 1 ms after its last stream: with the
        // bench's pause between flows, every flow pays a new mTLS handshake.
        a.pool.idle_timeout = Duration::from_millis(1);
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
            hbone,
            identity: spiffe("sink")?,
        }],
    );
    let node_a = spawn(runtime, a)?;
    let front = *node_a.first().ok_or("agent A bound nothing")?;
    println!("{front}");
    io::stdout().flush().map_err(|e| e.to_string())?;
    // Runs until the bench closes our stdin (or dies).
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
    Ok(())
}

/// Starts a node on `runtime`; returns its bound addresses (HBONE or front first).
/// The handle is leaked on purpose: the node lives as long as this process.
fn spawn(runtime: &str, config: NodeConfig) -> Result<Vec<SocketAddr>, String> {
    let handle = match runtime {
        "tokio" => warren_tokio::spawn(config, |_| {}),
        "smol" => warren_smol::spawn(config, |_| {}),
        other => return Err(format!("unknown runtime {other}")),
    }
    .map_err(|e| e.to_string())?;
    let addrs = handle.local_addrs().to_vec();
    std::mem::forget(handle);
    Ok(addrs)
}
