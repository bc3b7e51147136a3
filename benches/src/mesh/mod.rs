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
//! The target figures are ratios of two paths; each is measured in
//! interleaved rounds with both paths started ([`interleave`]), so that
//! both see the same load, and reported as the median of its per-round
//! values.
//!
//! Rooms: [`target`] (the target server), [`procs`] (relay processes and
//! /proc), [`peers`] (direct, socat, stunnel, nghttpx), [`agents`] (the
//! warren path and its child process), [`measure`], [`rounds`] (ABBA order,
//! per-round bookkeeping, medians), [`interleave`] (the rounds run),
//! [`budget`] (the run's time bound), [`report`].

pub mod agents;
pub mod budget;
pub mod interleave;
pub mod measure;
pub mod peers;
pub mod procs;
pub mod relay;
pub mod report;
pub mod rounds;
pub mod target;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use agents::{path_warren, SelfExec};
use budget::{scaled, Budget};
use interleave::RoundPlan;
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

/// How long each part of the run lasts, and the time budget it is built
/// against ([`budget`]).
struct Plan {
    /// The whole run's bound: phases started behind schedule are shortened
    /// so that the run ends within it.
    total: Duration,
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
    /// The interleaved rounds of the target figures.
    rounds: RoundPlan,
    /// Each phase's nominal share of `total`: about what it takes on the
    /// 2-core box at load ~4, path start included. They add up to less
    /// than `total`; the rest is the margin for a busier box.
    shares: &'static [(&'static str, f64)],
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                total: Duration::from_secs(28),
                // Sized to stay under 30 s with the box at load average ~18
                // (0.1 s + 0.4 s windows leave room for the interleaved rounds).
                warmup: Duration::from_millis(100),
                window: Duration::from_millis(400),
                setups: 200,
                setup_budget: Duration::from_millis(500),
                memory_counts: &[1000],
                memory_budget: Duration::from_secs(2),
                relayed: &[RELAY_TOKIO, RELAY_TOKIO_PLAIN],
                slow_flows: 16,
                relayed_eight: false,
                // ~5 s of bulk rounds (6 paths × 0.13 s + connect and
                // settle, 6 times), ~0.5 s warm and ~1 s cold.
                rounds: RoundPlan {
                    bulk_rounds: 6,
                    warmup: Duration::from_millis(30),
                    window: Duration::from_millis(100),
                    warm_rounds: 12,
                    warm_flows: 50,
                    cold_rounds: 6,
                    cold_flows: 6,
                    cold_peer_flows: 8,
                    pause: Duration::from_millis(20),
                    gap: Duration::from_millis(5),
                    budget: Duration::from_secs(8),
                },
                shares: &[
                    (DIRECT, 1.0),
                    (SOCAT, 2.0),
                    (PLAIN_PAIR, 1.5),
                    (STUNNEL, 3.0),
                    (NGHTTPX, 2.0),
                    (WARREN_TOKIO, 1.5),
                    (WARREN_SMOL, 1.5),
                    (COLD_TOKIO, 0.2),
                    (COLD_SMOL, 0.6),
                    (COLD_TOKIO_FULL, 0.6),
                    (RELAY_TOKIO, 1.5),
                    (RELAY_TOKIO_PLAIN, 1.5),
                    (interleave::BULK, 5.0),
                    (interleave::WARM, 0.6),
                    (interleave::COLD, 1.2),
                ],
            }
        } else {
            Plan {
                total: Duration::from_secs(170),
                // 0.5 s + 2.5 s: the rows' own windows (8 flows, and 1 flow
                // of the paths outside the rounds) are not target figures.
                warmup: Duration::from_millis(500),
                window: Duration::from_millis(2500),
                setups: 2000,
                setup_budget: Duration::from_secs(3),
                memory_counts: &[1000, 10_000],
                memory_budget: Duration::from_secs(12),
                relayed: &[RELAY_TOKIO, RELAY_TOKIO_PLAIN, RELAY_SMOL, RELAY_SMOL_PLAIN],
                slow_flows: 64,
                relayed_eight: true,
                rounds: RoundPlan {
                    bulk_rounds: 8,
                    warmup: Duration::from_millis(100),
                    window: Duration::from_millis(400),
                    warm_rounds: 40,
                    warm_flows: 50,
                    cold_rounds: 12,
                    cold_flows: 10,
                    cold_peer_flows: 12,
                    pause: Duration::from_millis(20),
                    gap: Duration::from_millis(5),
                    budget: Duration::from_secs(40),
                },
                // From three runs of this plan at load 4–14 (150–162 s):
                // stunnel's memory phase runs into its cap, the warren rows'
                // 10k-flow busy round takes 7–10 s.
                shares: &[
                    (DIRECT, 6.5),
                    (SOCAT, 11.0),
                    (PLAIN_PAIR, 4.0),
                    (STUNNEL, 20.0),
                    (NGHTTPX, 8.0),
                    (WARREN_TOKIO, 11.0),
                    (WARREN_SMOL, 12.0),
                    (COLD_TOKIO, 0.5),
                    (COLD_SMOL, 3.5),
                    (COLD_TOKIO_FULL, 3.5),
                    (RELAY_TOKIO, 7.0),
                    (RELAY_TOKIO_PLAIN, 10.0),
                    (RELAY_SMOL, 7.0),
                    (RELAY_SMOL_PLAIN, 10.0),
                    (interleave::BULK, 33.0),
                    (interleave::WARM, 1.5),
                    (interleave::COLD, 4.0),
                ],
            }
        }
    }

    /// Phase `name`'s nominal share (zero for a phase the plan has none for).
    fn share(&self, name: &str) -> Duration {
        let s = self.shares.iter().find(|(n, _)| *n == name);
        Duration::from_secs_f64(s.map_or(0.0, |(_, s)| *s))
    }

    /// The shares of the phases this plan runs.
    fn planned(&self) -> Duration {
        self.shares
            .iter()
            .filter(|(n, _)| !n.contains("relayed") || self.relayed.contains(n))
            .map(|(_, s)| Duration::from_secs_f64(*s))
            .sum()
    }
}

/// A plan's durations for one phase, scaled by the budget; the loops that
/// can stop early also stop at the phase's allowance.
struct Scaled<'a> {
    plan: &'a Plan,
    scale: f64,
    allowance: Duration,
}

impl Scaled<'_> {
    fn window(&self) -> (Duration, Duration) {
        (
            scaled(self.plan.warmup, self.scale),
            scaled(self.plan.window, self.scale),
        )
    }

    fn setup_budget(&self) -> Duration {
        scaled(self.plan.setup_budget, self.scale).min(self.allowance)
    }

    fn memory_budget(&self) -> Duration {
        scaled(self.plan.memory_budget, self.scale).min(self.allowance)
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
    let plan = Plan::new(quick);
    let mut budget = Budget::new(plan.total, plan.planned());
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
    let starts: Vec<(&'static str, Start<'_>)> = vec![
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
    let mut relayed_starts: Vec<(&'static str, Start<'_>)> = Vec::new();
    for (name, runtime, plain) in [
        (RELAY_TOKIO, "tokio", false),
        (RELAY_TOKIO_PLAIN, "tokio", true),
        (RELAY_SMOL, "smol", false),
        (RELAY_SMOL_PLAIN, "smol", true),
    ] {
        if plan.relayed.contains(&name) {
            relayed_starts.push((name, relayed(runtime, plain)));
        }
    }

    let mut rows: Vec<Row> = Vec::new();
    // Paths of the interleaved rounds stay started until the rounds are over.
    let mut kept: BTreeMap<&'static str, Relay> = BTreeMap::new();
    // The relayed rows come last, still before the rounds: the hub's
    // slow-receiver figure wants a fresh hub, and the end-to-end rows'
    // 1-flow figures are measured in the rounds, interleaved with direct
    // agent→agent.
    let all = (starts.into_iter().map(|(name, start)| (name, start, false))).chain(
        relayed_starts
            .into_iter()
            .map(|(name, start)| (name, start, true)),
    );
    for (name, start, relayed) in all {
        eprintln!("# {:.1} s: {name} ...", budget.elapsed().as_secs_f64());
        let scale = budget.start(name, plan.share(name));
        let mut row = Row::new(name);
        match start() {
            Err(why) => row.missing = Some(why),
            Ok(path) => {
                let durations = Scaled {
                    plan: &plan,
                    scale,
                    allowance: budget.allowance(),
                };
                if relayed {
                    measure_relayed(&mut row, &path, &durations, &target);
                } else {
                    measure_row(&mut row, &path, &durations, &target, max_flows);
                }
                if interleave::uses(name) && row.missing.is_none() {
                    kept.insert(name, path);
                }
            }
        }
        rows.push(row);
    }
    let missing: BTreeMap<String, String> = rows
        .iter()
        .filter_map(|r| Some((r.name.clone(), r.missing.clone()?)))
        .collect();
    eprintln!(
        "# {:.1} s: interleaved rounds ...",
        budget.elapsed().as_secs_f64()
    );
    let planned: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let interleaved = interleave::run(
        &kept,
        &missing,
        &planned,
        &plan.rounds,
        &target,
        &mut |phase| {
            let scale = budget.start(phase, plan.share(phase));
            (scale, budget.allowance())
        },
    );
    budget.end();
    interleaved.fill(&mut rows);
    drop(kept);
    machine.info.insert("loadavg_end", report::loadavg());
    let _ = fs::remove_dir_all(&dir);
    let elapsed = budget.elapsed().as_secs_f64();
    machine.info.insert("quick", quick.to_string());
    machine.info.insert("elapsed_s", format!("{elapsed:.1}"));
    let figures = &interleaved.figures;
    for line in report::json_lines(&machine, &rows, figures, &budget) {
        println!("{line}");
    }
    println!();
    print!(
        "{}",
        report::markdown(&machine, &rows, figures, quick, &budget)
    );
    Ok(())
}

/// The figures of a path's row that are measured on their own, one path
/// after another: memory first (on the fresh relay), then 8 flows, and the
/// 1-flow throughput and flow setup unless the interleaved rounds measure
/// them (see [`interleave::Interleaved::fill`]).
fn measure_row(
    row: &mut Row,
    path: &Relay,
    durations: &Scaled,
    target: &TargetServer,
    max_flows: usize,
) {
    let plan = durations.plan;
    let name = row.name.clone();
    let name = name.as_str();
    let window = durations.window();
    let mut errors = Vec::new();
    if [COLD_TOKIO, COLD_SMOL, COLD_TOKIO_FULL].contains(&name) {
        row.memory = Err("see the warm row".into());
    } else {
        row.memory = match name {
            DIRECT => Err("no relay".into()),
            // Its exit hop forks bash + socat per flow.
            NGHTTPX => Err("not measured (exit hop forks per flow)".into()),
            // Its setup and memory are socat's fork per connection, already
            // shown by the socat row: a ceiling for throughput only.
            PLAIN_PAIR => Err("not measured (a process per flow)".into()),
            // A process per flow, ~2.6 MiB each: 10k would be ~26 GB.
            // socat listens with a backlog of 5: its flows are opened one
            // at a time (more at once would overflow it into SYN retries).
            SOCAT => Ok(memory(
                path,
                &[1000],
                max_flows,
                durations.memory_budget(),
                1,
            )),
            // First, on a fresh relay (see `measure::memory`).
            _ => Ok(memory(
                path,
                plan.memory_counts,
                max_flows,
                durations.memory_budget(),
                MEMORY_BATCH,
            )),
        };
        if !interleave::measures_bulk(name) {
            match throughput(path, 1, target, window) {
                Ok(one) => {
                    row.one = Some(one.gbps);
                    row.cpu = one.core_per_gbps;
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        match throughput(path, 8, target, window) {
            Ok(eight) => row.eight = Some(eight.gbps),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !interleave::times_setup(name) && name != PLAIN_PAIR {
        let setup = if [COLD_TOKIO, COLD_SMOL, COLD_TOKIO_FULL].contains(&name) {
            // The pause lets agent A's pool drop the connection (1 ms idle timeout).
            let pause = Some(Duration::from_millis(20));
            setup(path, plan.setups / 4, durations.setup_budget(), pause)
        } else {
            setup(path, plan.setups, durations.setup_budget(), None)
        };
        match setup {
            Ok(s) => row.setup = Some(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        row.missing = Some(format!("failed: {}", errors.join("; ")));
    }
}

/// Bytes each slow-receiver flow pushes at most (the path stalls sooner).
/// 8 MiB was too little for 16 flows: the path's socket buffers took
/// ~7.5 MiB per flow and the hub's connection window 1 MiB more, so in
/// `--quick` every flow could reach the cap without the hub filling.
const SLOW_PUSH_PER_FLOW: u64 = 16 << 20;
/// How long the held flows may take to drain once released (~400 MiB in
/// the full run, through the relayed path).
const SLOW_DRAIN_WAIT: Duration = Duration::from_secs(10);

/// Flows the memory phases open at once (each batch connects, sends and
/// reads its first byte together): well under the relays' listen backlogs.
const MEMORY_BATCH: usize = 64;

/// A relayed row: the hub's memory under a slow receiver first (on a fresh
/// hub; its held flows drained before anything else), then 8 flows (full
/// run) and warm flow setup, and 1 flow unless the interleaved rounds
/// measure it.
fn measure_relayed(row: &mut Row, path: &peers::Relay, durations: &Scaled, target: &TargetServer) {
    let plan = durations.plan;
    let name = row.name.clone();
    let e2e = !name.contains("e2e off");
    let drain_wait = scaled(SLOW_DRAIN_WAIT, durations.scale);
    match relay::slow_receiver(
        path,
        target,
        e2e,
        plan.slow_flows,
        SLOW_PUSH_PER_FLOW,
        drain_wait,
    ) {
        Ok(s) => row.slow = Some(s),
        Err(e) => row.missing = Some(format!("slow receiver failed: {e}")),
    }
    row.memory = Err("see the hub's slow-receiver figure".into());
    let window = durations.window();
    let one = (!interleave::measures_bulk(&name)).then(|| throughput(path, 1, target, window));
    let eight = plan
        .relayed_eight
        .then(|| throughput(path, 8, target, window));
    let lat = setup(path, plan.setups, durations.setup_budget(), None);
    let mut errors = Vec::new();
    match one {
        Some(Ok(one)) => {
            row.one = Some(one.gbps);
            row.cpu = one.core_per_gbps;
        }
        Some(Err(e)) => errors.push(e.to_string()),
        None => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plan_leaves_a_margin_and_names_a_share_for_every_phase_it_runs() {
        for (quick, bound) in [(true, 30), (false, 180)] {
            let plan = Plan::new(quick);
            // The bound, with the budget under it and the shares
            // under the budget (the margin absorbs phases that overrun).
            assert!(plan.total < Duration::from_secs(bound));
            let planned = plan.planned();
            assert!(planned.as_secs_f64() < 0.95 * plan.total.as_secs_f64());
            let phases = [
                DIRECT,
                SOCAT,
                PLAIN_PAIR,
                STUNNEL,
                NGHTTPX,
                WARREN_TOKIO,
                WARREN_SMOL,
                COLD_TOKIO,
                COLD_SMOL,
                COLD_TOKIO_FULL,
                interleave::BULK,
                interleave::WARM,
                interleave::COLD,
            ];
            for phase in phases.iter().chain(plan.relayed) {
                assert!(plan.share(phase) > Duration::ZERO, "{phase}");
            }
        }
        // --quick runs no smol relayed rows: their shares do not count.
        let quick = Plan::new(true);
        assert!(!quick.relayed.contains(&RELAY_SMOL));
    }
}
