//! `warren-sim`: run, sweep, replay and minimize simulator scenarios.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use warren_sim::run::{minimize, replay, run, sweep_all, RunReport};
use warren_sim::scenario::Scenario;

/// The deterministic simulator of warren.
#[derive(Parser)]
#[command(name = "warren-sim")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a scenario with one seed.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Runs a range of seeds (`A..B`) and lists the failing ones.
    Sweep {
        /// The scenario file.
        scenario: PathBuf,
        /// Seeds `A..B` (B excluded).
        #[arg(long, default_value = "0..100")]
        seeds: String,
        /// Threads.
        #[arg(long, default_value_t = 2)]
        jobs: usize,
        /// Print `seed trace-hash` for every seed.
        #[arg(long)]
        hashes: bool,
    },
    /// Runs one seed and prints the readable event log.
    Replay {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print the event log.
        #[arg(long)]
        trace: bool,
    },
    /// Shrinks a failing seed's scenario and writes it beside the original.
    Minimize {
        /// The scenario file.
        scenario: PathBuf,
        /// The seed.
        #[arg(long)]
        seed: u64,
    },
}

fn print(report: &RunReport) {
    println!("{}", report.trace_hash);
    let s = &report.stats;
    println!(
        "steps: {} virtual-ms: {} flows: {} ok: {} faults: {} net-bytes: {}",
        s.steps, s.virtual_ms, s.flows, s.flows_ok, s.faults, s.net.bytes_delivered
    );
    for v in &report.violations {
        println!("violation: {v}");
    }
}

/// Simulated time against wall time, events and their rate, and the
/// process's peak memory and CPU time (Linux only; left out elsewhere).
/// CPU time is there because wall time on a shared, loaded machine says
/// more about the neighbours than about the simulator.
fn print_speed(report: &RunReport, wall: std::time::Duration) {
    let s = &report.stats;
    let wall_s = wall.as_secs_f64().max(1e-9);
    let virtual_s = s.virtual_ms as f64 / 1000.0;
    println!(
        "speed: {virtual_s:.1} virtual s in {wall_s:.3} wall s = {:.0}x real time; {} events, {:.0} events/s",
        virtual_s / wall_s,
        s.steps,
        s.steps as f64 / wall_s,
    );
    if let Some(cpu_s) = cpu_seconds().filter(|c| *c > 0.0) {
        println!(
            "cpu: {cpu_s:.3} s = {:.0}x real time, {:.0} events/s",
            virtual_s / cpu_s,
            s.steps as f64 / cpu_s
        );
    }
    if let Some(kib) = peak_rss_kib() {
        println!("peak-rss: {} MiB", kib / 1024);
    }
}

/// CPU time of this (single-threaded) process so far, from
/// `/proc/self/schedstat` (nanoseconds on CPU).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

/// `VmHWM` from `/proc/self/status`, KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parse_range(s: &str) -> Option<std::ops::Range<u64>> {
    let (a, b) = s.split_once("..")?;
    Some(a.parse().ok()?..b.parse().ok()?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let load = |p: &PathBuf| Scenario::load(p).map_err(|e| e.to_string());
    let result: Result<bool, String> = match &cli.command {
        Command::Run { scenario, seed } => load(scenario).map(|s| {
            let started = std::time::Instant::now();
            let report = run(&s, *seed);
            print(&report);
            print_speed(&report, started.elapsed());
            report.violations.is_empty()
        }),
        Command::Sweep {
            scenario,
            seeds,
            jobs,
            hashes,
        } => load(scenario).and_then(|s| {
            let range = parse_range(seeds).ok_or(format!("--seeds {seeds:?}: expected A..B"))?;
            let n = range.end.saturating_sub(range.start);
            let started = std::time::Instant::now();
            let all = sweep_all(&s, range, *jobs);
            let secs = started.elapsed().as_secs_f64();
            let mut failing = 0;
            for o in &all {
                if *hashes {
                    println!("seed {} {}", o.seed, o.trace_hash);
                }
                if let Some(v) = o.violations.first() {
                    failing += 1;
                    println!("failing seed {}: {v}", o.seed);
                }
            }
            println!(
                "{failing} of {n} seeds failed; {:.1} seeds/s",
                n as f64 / secs.max(1e-9)
            );
            Ok(failing == 0)
        }),
        Command::Replay {
            scenario,
            seed,
            trace,
        } => load(scenario).map(|s| {
            let report = replay(&s, *seed);
            if *trace {
                // The log can be long and is often piped into `head`: stop
                // quietly when the reader goes away instead of panicking.
                let mut out = std::io::stdout().lock();
                for line in &report.log {
                    if writeln!(out, "{line}").is_err() {
                        return report.violations.is_empty();
                    }
                }
            }
            print(&report);
            report.violations.is_empty()
        }),
        Command::Minimize { scenario, seed } => load(scenario).and_then(|s| {
            let Some(small) = minimize(&s, *seed) else {
                println!("seed {seed} passes; nothing to minimize");
                return Ok(true);
            };
            let out = scenario.with_file_name(format!("{}.toml", small.name));
            std::fs::write(&out, small.to_toml()).map_err(|e| format!("{}: {e}", out.display()))?;
            println!("wrote {}", out.display());
            print(&run(&small, *seed));
            Ok(false)
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
