//! The simulator's command line: `run`, `sweep`, `replay` and `minimize`.
//!
//! One implementation behind both `warren sim …` (the main binary embeds
//! [`SimCommand`]) and the stand-alone `warren-sim` (which CI builds, since
//! it does not pull in the runtimes).

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant as WallInstant;

use clap::{Args, Subcommand};

use crate::run::{minimize, replay, run, sweep_all, RunReport};
use crate::scenario::Scenario;

/// `run`, `sweep`, `replay` or `minimize`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run a scenario with one seed and check every invariant.
    #[command(
        long_about = "Run a scenario with one seed: real warren nodes on a model \
        network in virtual time, the scenario's workload and faults, then every invariant \
        (integrity, policy, liveness, leaks, bounded memory).\n\n\
        Prints the trace hash (the same scenario and seed always give the same hash), \
        counters, the speed as simulated time over wall time, and each violation. Exits \
        1 when an invariant is violated.\n\n\
        Example: warren sim run sim/scenarios/chaos-mesh.toml --seed 7"
    )]
    Run(SeedArgs),
    /// Run a range of seeds on several threads and list the failing ones.
    #[command(
        long_about = "Run every seed of --seeds A..B (B excluded) on --jobs threads \
        and print `failing seed N: VIOLATION` for each seed that breaks an invariant, then \
        a summary line. Exits 1 when any seed failed.\n\n\
        With --hashes every seed's trace hash is printed too (CI runs a sweep twice and \
        compares them).\n\n\
        Example: warren sim sweep sim/scenarios/chaos-mesh.toml --seeds 0..500 --jobs 2"
    )]
    Sweep(SweepArgs),
    /// Run one seed again and print what happened, in time order.
    #[command(
        long_about = "Run one seed again and, with --trace, print the readable \
        event log: scheduled faults and clients, every node event (flows, decisions, \
        handshakes) and the network's recent trace records, in virtual-time order; then \
        the same report as `run`.\n\n\
        Example: warren sim replay sim/scenarios/chaos-mesh.toml --seed 7 --trace | less"
    )]
    Replay(ReplayArgs),
    /// Shrink a failing seed's scenario and write it as a new file.
    #[command(
        long_about = "Shrink the scenario while the seed still shows the same kind \
        of violation: its random faults become an explicit schedule, then faults and \
        clients are dropped one by one and client counts and sizes halved. The smaller \
        scenario is written beside the original as NAME-min-SEED.toml (commit it under \
        sim/regressions/ once the bug is fixed).\n\n\
        Example: warren sim minimize sim/scenarios/chaos-mesh.toml --seed 7"
    )]
    Minimize(SeedArgs),
}

/// A scenario and one seed.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// The scenario file (TOML, see sim/scenarios/).
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// The seed behind every random choice of the run.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Inject this proto bug into every node (built with `sim-bugs`).
    #[cfg(feature = "sim-bugs")]
    #[arg(long, value_name = "BUG", value_parser = parse_bug)]
    pub bug: Option<warren_proto::sim_bugs::Bug>,
}

/// `sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The scenario file (TOML, see sim/scenarios/).
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// The seeds, `A..B` (B excluded).
    #[arg(long, value_name = "A..B", default_value = "0..100", value_parser = parse_seeds)]
    pub seeds: Range<u64>,
    /// Threads to run seeds on.
    #[arg(long, value_name = "J", default_value_t = 2)]
    pub jobs: usize,
    /// Print `seed N HASH` for every seed.
    #[arg(long)]
    pub hashes: bool,
    /// Inject this proto bug into every node (built with `sim-bugs`).
    #[cfg(feature = "sim-bugs")]
    #[arg(long, value_name = "BUG", value_parser = parse_bug)]
    pub bug: Option<warren_proto::sim_bugs::Bug>,
}

/// `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The seed to replay.
    #[command(flatten)]
    pub seed: SeedArgs,
    /// Print the readable event log.
    #[arg(long)]
    pub trace: bool,
}

/// `A..B` → the range.
pub fn parse_seeds(s: &str) -> Result<Range<u64>, String> {
    let bad = || format!("{s:?}: expected A..B, e.g. 0..500");
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b {
        return Err(format!("{s:?}: the first seed is after the last"));
    }
    Ok(a..b)
}

#[cfg(feature = "sim-bugs")]
fn parse_bug(s: &str) -> Result<warren_proto::sim_bugs::Bug, String> {
    s.parse()
}

/// The bug chosen on the command line: nothing to choose from without
/// `sim-bugs`.
#[cfg(feature = "sim-bugs")]
type BugChoice = Option<warren_proto::sim_bugs::Bug>;
#[cfg(not(feature = "sim-bugs"))]
type BugChoice = ();

impl SeedArgs {
    #[cfg(feature = "sim-bugs")]
    fn bug(&self) -> BugChoice {
        self.bug
    }

    #[cfg(not(feature = "sim-bugs"))]
    fn bug(&self) -> BugChoice {}
}

impl SweepArgs {
    #[cfg(feature = "sim-bugs")]
    fn bug(&self) -> BugChoice {
        self.bug
    }

    #[cfg(not(feature = "sim-bugs"))]
    fn bug(&self) -> BugChoice {}
}

/// Loads the scenario and sets the bug to inject, if any.
fn load(path: &Path, bug: BugChoice) -> Result<Scenario, String> {
    #[allow(unused_mut)] // only a sim-bugs build sets the bug
    let mut scenario = Scenario::load(path).map_err(|e| e.to_string())?;
    #[cfg(feature = "sim-bugs")]
    {
        scenario.inject = bug;
    }
    #[cfg(not(feature = "sim-bugs"))]
    let () = bug;
    Ok(scenario)
}

/// Prints a run's report; `wall` is how long it took, for the speed line.
fn print(out: &mut impl Write, report: &RunReport, wall: Option<f64>) -> std::io::Result<()> {
    writeln!(out, "{}", report.trace_hash)?;
    let s = &report.stats;
    writeln!(
        out,
        "steps: {} virtual-ms: {} flows: {} ok: {} faults: {} net-bytes: {} peak-socket-bytes: {}",
        s.steps,
        s.virtual_ms,
        s.flows,
        s.flows_ok,
        s.faults,
        s.net.bytes_delivered,
        s.peak_buffered
    )?;
    if s.peak_relay > 0 {
        writeln!(
            out,
            "peak-relay-bytes: {} (one relayed flow at a hub)",
            s.peak_relay
        )?;
    }
    if let Some(wall) = wall {
        let simulated = s.virtual_ms as f64 / 1000.0;
        let wall = wall.max(1e-9);
        writeln!(
            out,
            "speed: {simulated:.1} s simulated in {wall:.2} s wall = {:.0}x real time; {} events, {:.0} events/s",
            simulated / wall,
            s.steps,
            s.steps as f64 / wall,
        )?;
        // CPU time as well: wall time on a shared, loaded machine says
        // more about the neighbours than about the simulator.
        if let Some(cpu) = cpu_seconds().filter(|c| *c > 0.0) {
            writeln!(
                out,
                "cpu: {cpu:.3} s = {:.0}x real time, {:.0} events/s",
                simulated / cpu,
                s.steps as f64 / cpu
            )?;
        }
        if let Some(kib) = peak_rss_kib() {
            writeln!(out, "peak-rss: {} MiB", kib / 1024)?;
        }
    }
    for v in &report.violations {
        writeln!(out, "violation: {v}")?;
    }
    Ok(())
}

/// CPU time of this thread so far, from `/proc/thread-self/schedstat`
/// (nanoseconds on CPU); `None` off Linux.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// The process's peak resident memory (`VmHWM`), KiB; `None` off Linux.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Carries out `command`, printing to stdout. Exit codes: 0 clean, 1 an
/// invariant was violated, 2 the command could not run (bad file, bad
/// arguments, cannot write).
pub fn execute(command: &SimCommand) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match execute_to(command, &mut out) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Carries out `command`, writing to `out`; `Ok(clean)`. A reader that goes
/// away (`| head`) ends the output quietly.
pub fn execute_to(command: &SimCommand, out: &mut impl Write) -> Result<bool, String> {
    let quiet_io = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    };
    match command {
        SimCommand::Run(a) => {
            let s = load(&a.scenario, a.bug())?;
            let started = WallInstant::now();
            let report = run(&s, a.seed);
            let wall = started.elapsed().as_secs_f64();
            quiet_io(print(out, &report, Some(wall)))?;
            Ok(report.violations.is_empty())
        }
        SimCommand::Sweep(a) => {
            let s = load(&a.scenario, a.bug())?;
            let n = a.seeds.end - a.seeds.start;
            let started = WallInstant::now();
            let all = sweep_all(&s, a.seeds.clone(), a.jobs);
            let secs = started.elapsed().as_secs_f64();
            let mut failing = 0;
            let mut lines = String::new();
            for o in &all {
                if a.hashes {
                    lines.push_str(&format!("seed {} {}\n", o.seed, o.trace_hash));
                }
                if let Some(v) = o.violations.first() {
                    failing += 1;
                    lines.push_str(&format!("failing seed {}: {v}\n", o.seed));
                }
            }
            lines.push_str(&format!(
                "{failing} of {n} seeds failed; {:.1} seeds/s\n",
                n as f64 / secs.max(1e-9)
            ));
            quiet_io(out.write_all(lines.as_bytes()))?;
            Ok(failing == 0)
        }
        SimCommand::Replay(a) => {
            let s = load(&a.seed.scenario, a.seed.bug())?;
            let started = WallInstant::now();
            let report = replay(&s, a.seed.seed);
            let wall = started.elapsed().as_secs_f64();
            let mut write = || -> std::io::Result<()> {
                if a.trace {
                    for line in &report.log {
                        writeln!(out, "{line}")?;
                    }
                }
                print(out, &report, Some(wall))
            };
            quiet_io(write())?;
            Ok(report.violations.is_empty())
        }
        SimCommand::Minimize(a) => {
            let s = load(&a.scenario, a.bug())?;
            let Some(small) = minimize(&s, a.seed) else {
                quiet_io(writeln!(out, "seed {} passes; nothing to minimize", a.seed))?;
                return Ok(true);
            };
            let path = a.scenario.with_file_name(format!("{}.toml", small.name));
            std::fs::write(&path, small.to_toml())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let report = run(&small, a.seed);
            let mut write = || -> std::io::Result<()> {
                writeln!(out, "wrote {}", path.display())?;
                print(out, &report, None)
            };
            quiet_io(write())?;
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: SimCommand,
    }

    fn scenario(name: &str) -> String {
        format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn exec(args: &[&str]) -> (Result<bool, String>, String) {
        let cli = Cli::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))
            .expect("arguments parse");
        let mut out = Vec::new();
        let result = execute_to(&cli.command, &mut out);
        (result, String::from_utf8(out).expect("utf-8 output"))
    }

    #[test]
    fn seeds_parse_as_a_half_open_range() {
        assert_eq!(parse_seeds("3..7"), Ok(3..7));
        assert_eq!(parse_seeds("0..0"), Ok(0..0));
        assert!(parse_seeds("7..3").is_err());
        assert!(parse_seeds("7").is_err());
        assert!(parse_seeds("a..3").is_err());
    }

    #[test]
    fn run_prints_the_hash_and_the_speed() {
        let (result, out) = exec(&["run", &scenario("two-node-echo.toml"), "--seed", "3"]);
        assert_eq!(result, Ok(true), "{out}");
        let mut lines = out.lines();
        assert!(
            lines.next().is_some_and(|l| l.starts_with("trace-hash: ")),
            "{out}"
        );
        assert!(out.contains("x real time"), "{out}");
    }

    #[test]
    fn sweep_prints_every_hash_and_a_summary() {
        let args = [
            "sweep",
            &scenario("two-node-echo.toml"),
            "--seeds",
            "0..3",
            "--hashes",
        ];
        let (result, out) = exec(&args);
        assert_eq!(result, Ok(true), "{out}");
        assert_eq!(
            out.lines().filter(|l| l.starts_with("seed ")).count(),
            3,
            "{out}"
        );
        assert!(out.contains("0 of 3 seeds failed"), "{out}");
    }

    #[test]
    fn a_missing_file_is_an_error_not_a_violation() {
        let (result, _) = exec(&["run", "/nonexistent/scenario.toml"]);
        assert!(result.is_err_and(|e| e.contains("/nonexistent/scenario.toml")));
    }
}
