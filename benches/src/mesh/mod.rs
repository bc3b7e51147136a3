//! `warren bench`: how close warren comes to the wire, measured against the
//! peers a user would pick instead, all in one run on 127.0.0.1.
//!
//! Every path carries the same load from the same client to the same target
//! server (both in this process, on std threads): direct TCP (the ceiling),
//! a `socat` relay, an `stunnel` mTLS pair, the nghttpx HTTP/2 CONNECT chain
//! of `shared/bench/baseline.sh`, and a two-agent warren mesh (agent A →
//! mTLS HBONE → agent B) on tokio and on smol.
//!
//! Each relay runs as child processes of the bench, warren included (this
//! executable re-run with `--agent`), so the relay CPU and memory of every
//! path are read the same way, from /proc, and none of the load generator's
//! CPU is counted.
//!
//! Rooms: [`target`] (the target server), [`procs`] (relay processes and
//! /proc), [`peers`] (direct, socat, stunnel, nghttpx), [`agents`] (the
//! warren path and its child process), [`measure`], [`report`].

pub mod agents;
pub mod measure;
pub mod peers;
pub mod procs;
pub mod relay;
pub mod report;
pub mod target;

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use agents::{path_warren, SelfExec};
use measure::{memory, setup, throughput};
use peers::{Missing, Relay};
use report::{Machine, Row};
use target::TargetServer;

/// Path names; the report's target checks find rows by them.
const DIRECT: &str = "direct TCP";
const SOCAT: &str = "socat relay (8 KiB default)";
/// Throughput only: what two relays move with no crypto (see
/// [`peers::path_plain_pair`]).
const PLAIN_PAIR: &str = "plaintext relay pair, no crypto (2 socat, 256 KiB)";
const STUNNEL: &str = "stunnel mTLS pair";
const NGHTTPX: &str = "nghttpx h2 CONNECT chain (defaults)";
const WARREN_TOKIO: &str = "warren tokio";
const WARREN_SMOL: &str = "warren smol";
/// Relayed rows: agent A → hub → agent B (B listens nowhere), end to end
/// (the default per export) and with the export's `end_to_end = false`.
const RELAY_TOKIO: &str = "warren tokio relayed (e2e)";
/// See [`RELAY_TOKIO`].
const RELAY_TOKIO_PLAIN: &str = "warren tokio relayed (e2e off)";
/// See [`RELAY_TOKIO`].
const RELAY_SMOL: &str = "warren smol relayed (e2e)";
/// See [`RELAY_TOKIO`].
const RELAY_SMOL_PLAIN: &str = "warren smol relayed (e2e off)";
/// Rows that measure only flow setup, each flow on a new mTLS connection,
/// with the agents' defaults (TLS 1.3 resumption on).
const COLD_TOKIO: &str = "warren tokio, cold (new mTLS per flow, resumed)";
/// See [`COLD_TOKIO`].
const COLD_SMOL: &str = "warren smol, cold (new mTLS per flow, resumed)";
/// Cold, with resumption off: every flow pays a full handshake.
const COLD_TOKIO_FULL: &str = "warren tokio, cold (new mTLS per flow, full handshake)";

/// How long each part of the run lasts.
struct Plan {
    warmup: Duration,
    window: Duration,
    setups: usize,
    /// Upper bound on one path's setup-latency phase (a slow peer gets fewer samples).
    setup_budget: Duration,
    /// Flow counts of the memory figures.
    memory_counts: &'static [usize],
    /// Upper bound on one path's memory phase.
    memory_budget: Duration,
    /// Relayed rows measured (the smol ones only in the full run).
    relayed: &'static [&'static str],
    /// Flows of the hub's slow-receiver figure.
    slow_flows: usize,
    /// Whether relayed rows measure 8 parallel flows too (not in --quick).
    relayed_eight: bool,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                // Sized to stay under 30 s with the box at load average ~18.
                warmup: Duration::from_millis(200),
                window: Duration::from_millis(500),
                setups: 200,
                setup_budget: Duration::from_millis(500),
                memory_counts: &[1000],
                memory_budget: Duration::from_secs(2),
                relayed: &[RELAY_TOKIO, RELAY_TOKIO_PLAIN],
                slow_flows: 16,
                relayed_eight: false,
            }
        } else {
            Plan {
                warmup: Duration::from_secs(1),
                window: Duration::from_secs(4),
                setups: 2000,
                setup_budget: Duration::from_secs(4),
                memory_counts: &[1000, 10_000],
                memory_budget: Duration::from_secs(15),
                relayed: &[RELAY_TOKIO, RELAY_TOKIO_PLAIN, RELAY_SMOL, RELAY_SMOL_PLAIN],
                slow_flows: 64,
                relayed_eight: true,
            }
        }
    }
}

/// What the bench's command line asked for.
pub enum Args {
    /// Run the bench.
    Bench {
        /// `--quick`: ≤ 30 s instead of ≤ 3 min.
        quick: bool,
    },
    /// `--agent <runtime> <target> [cold]`: be the warren path's child process.
    Agent(Vec<String>),
}

impl Args {
    /// Parses the arguments after the program (and subcommand) name.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        match args {
            [flag, rest @ ..] if flag == "--agent" => Ok(Args::Agent(rest.to_vec())),
            [] => Ok(Args::Bench { quick: false }),
            [q] if q == "--quick" => Ok(Args::Bench { quick: true }),
            _ => Err("usage: [--quick]".into()),
        }
    }
}

/// Runs what `args` asks; `me` says how to re-run this executable as the
/// agents' child. JSON lines and markdown go to stdout, progress to stderr.
pub fn main(args: Args, me: &SelfExec) -> Result<(), String> {
    match args {
        Args::Agent(rest) => agents::run_agents(&rest),
        Args::Bench { quick } => run(quick, me).map_err(|e| e.to_string()),
    }
}

fn run(quick: bool, me: &SelfExec) -> std::io::Result<()> {
    let started = Instant::now();
    let plan = Plan::new(quick);
    let hz = procs::clock_ticks();
    let mut machine = Machine::probe();
    let fd_limit = procs::raise_fd_limit().unwrap_or(1024);
    machine.info.insert("fd_limit", fd_limit.to_string());
    // Two sockets per flow here (client, target) and in the relay; some to spare.
    let max_flows = usize::try_from(fd_limit.saturating_sub(200) / 2).unwrap_or(usize::MAX);
    let dir = std::env::temp_dir().join(format!("warren-bench.{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let target = target::start()?;
    let certs = peers::make_certs(&dir);

    type Start<'a> = Box<dyn Fn() -> Result<Relay, Missing> + 'a>;
    let t = target.addr;
    let d = dir.as_path();
    let with_certs = |f: fn(SocketAddr, &Path, &Path) -> Result<Relay, Missing>| -> Start<'_> {
        let certs = certs.clone();
        Box::new(move || f(t, d, certs.as_ref().map_err(Clone::clone)?))
    };
    let warren = |runtime: &'static str, cold: bool| -> Start<'_> {
        Box::new(move || path_warren(me, runtime, cold, false, t, d))
    };
    let relayed = |runtime: &'static str, plain: bool| -> Start<'_> {
        Box::new(move || relay::path_relayed(me, runtime, plain, t, d))
    };
    let mut starts: Vec<(&str, Start<'_>)> = vec![
        (DIRECT, Box::new(move || Ok(peers::path_direct(t)))),
        (SOCAT, Box::new(move || peers::path_socat(t, d))),
        (PLAIN_PAIR, Box::new(move || peers::path_plain_pair(t, d))),
        (STUNNEL, with_certs(peers::path_stunnel)),
        (NGHTTPX, with_certs(peers::path_nghttpx)),
        (WARREN_TOKIO, warren("tokio", false)),
        (WARREN_SMOL, warren("smol", false)),
        (COLD_TOKIO, warren("tokio", true)),
        (COLD_SMOL, warren("smol", true)),
        (
            COLD_TOKIO_FULL,
            Box::new(move || path_warren(me, "tokio", true, true, t, d)),
        ),
    ];
    for (name, runtime, plain) in [
        (RELAY_TOKIO, "tokio", false),
        (RELAY_TOKIO_PLAIN, "tokio", true),
        (RELAY_SMOL, "smol", false),
        (RELAY_SMOL_PLAIN, "smol", true),
    ] {
        if plan.relayed.contains(&name) {
            starts.push((name, relayed(runtime, plain)));
        }
    }

    let mut rows: Vec<Row> = Vec::new();
    for (name, start) in starts {
        eprintln!("# {name} ...");
        let mut row = Row::new(name);
        match start() {
            Err(why) => row.missing = Some(why),
            Ok(path) if [COLD_TOKIO, COLD_SMOL, COLD_TOKIO_FULL].contains(&name) => {
                // The pause lets agent A's pool drop the connection (1 ms idle timeout).
                let pause = Some(Duration::from_millis(20));
                match setup(&path, plan.setups / 4, plan.setup_budget, pause) {
                    Ok(s) => row.setup = Some(s),
                    Err(e) => row.missing = Some(format!("failed: {e}")),
                }
                row.memory = Err("see the warm row".into());
            }
            Ok(path) if name == PLAIN_PAIR => {
                // A ceiling for throughput only: its setup and memory are
                // socat's fork per connection, already shown by the socat row.
                let window = (plan.warmup, plan.window);
                match (
                    throughput(&path, 1, &target, window, hz),
                    throughput(&path, 8, &target, window, hz),
                ) {
                    (Ok(one), Ok(eight)) => {
                        row.one = Some(one.gbps);
                        row.eight = Some(eight.gbps);
                        row.cpu = one.core_per_gbps;
                    }
                    (a, b) => {
                        let err = [a.err(), b.err()].into_iter().flatten();
                        let err = err.map(|e| e.to_string()).collect::<Vec<_>>();
                        row.missing = Some(format!("failed: {}", err.join("; ")));
                    }
                }
                row.memory = Err("not measured (a process per flow)".into());
            }
            Ok(path) if plan.relayed.contains(&name) => {
                measure_relayed(&mut row, &path, name, &plan, &target, hz);
            }
            Ok(path) => {
                // First, on a fresh relay (see `measure::memory`).
                row.memory = match name {
                    DIRECT => Err("no relay".into()),
                    // Its exit hop forks bash + socat per flow.
                    NGHTTPX => Err("not measured (exit hop forks per flow)".into()),
                    // A process per flow, ~2.6 MiB each: 10k would be ~26 GB.
                    SOCAT => Ok(memory(&path, &[1000], max_flows, plan.memory_budget)),
                    _ => Ok(memory(
                        &path,
                        plan.memory_counts,
                        max_flows,
                        plan.memory_budget,
                    )),
                };
                let window = (plan.warmup, plan.window);
                let one = throughput(&path, 1, &target, window, hz);
                let eight = throughput(&path, 8, &target, window, hz);
                let lat = setup(&path, plan.setups, plan.setup_budget, None);
                match (one, eight, lat) {
                    (Ok(one), Ok(eight), Ok(lat)) => {
                        row.one = Some(one.gbps);
                        row.eight = Some(eight.gbps);
                        row.cpu = one.core_per_gbps;
                        row.setup = Some(lat);
                    }
                    (a, b, c) => {
                        let err = [a.err(), b.err(), c.err()]
                            .into_iter()
                            .flatten()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ");
                        row.missing = Some(format!("failed: {err}"));
                    }
                }
            }
        }
        rows.push(row);
    }
    machine.info.insert("loadavg_end", report::loadavg());
    let _ = fs::remove_dir_all(&dir);
    let elapsed = started.elapsed().as_secs_f64();
    machine.info.insert("quick", quick.to_string());
    machine.info.insert("elapsed_s", format!("{elapsed:.1}"));
    for line in report::json_lines(&machine, &rows) {
        println!("{line}");
    }
    println!();
    print!("{}", report::markdown(&machine, &rows, quick, elapsed));
    Ok(())
}

/// Bytes each slow-receiver flow pushes at most (the path stalls sooner).
const SLOW_PUSH_PER_FLOW: u64 = 8 << 20;

/// A relayed row: the hub's memory under a slow receiver first (on a fresh
/// hub), then 1-flow throughput (8 flows too in the full run) and warm
/// flow setup.
fn measure_relayed(
    row: &mut Row,
    path: &peers::Relay,
    name: &str,
    plan: &Plan,
    target: &TargetServer,
    hz: f64,
) {
    let e2e = !name.contains("e2e off");
    match relay::slow_receiver(path, target, e2e, plan.slow_flows, SLOW_PUSH_PER_FLOW) {
        Ok(s) => row.slow = Some(s),
        Err(e) => row.missing = Some(format!("slow receiver failed: {e}")),
    }
    row.memory = Err("see the hub's slow-receiver figure".into());
    let window = (plan.warmup, plan.window);
    let one = throughput(path, 1, target, window, hz);
    let eight = plan
        .relayed_eight
        .then(|| throughput(path, 8, target, window, hz));
    let lat = setup(path, plan.setups, plan.setup_budget, None);
    let mut errors = Vec::new();
    match one {
        Ok(one) => {
            row.one = Some(one.gbps);
            row.cpu = one.core_per_gbps;
        }
        Err(e) => errors.push(e.to_string()),
    }
    match eight {
        Some(Ok(eight)) => row.eight = Some(eight.gbps),
        Some(Err(e)) => errors.push(e.to_string()),
        None => {}
    }
    match lat {
        Ok(lat) => row.setup = Some(lat),
        Err(e) => errors.push(e.to_string()),
    }
    if !errors.is_empty() {
        row.missing = Some(format!("failed: {}", errors.join("; ")));
    }
}
