//! Interleaved rounds, the driving half: with every path of the issue's
//! target figures started at once, measures them alternately in short
//! rounds, in ABBA order ([`round_order`]), and makes each target figure
//! from its per-round values ([`Figure`]). The per-path rows take the same
//! rounds' measurements, pooled, so nothing is measured twice.
//!
//! Three phases, one measure each:
//! - *bulk*: one 1-flow window per path and round through the nghttpx
//!   chain, the stunnel pair, warren tokio and smol relayed end to end
//!   through a hub, warren tokio, warren smol and the plaintext relay
//!   pair: Gbit/s, and the relay's %core per Gbit/s;
//! - *warm setup*: a block of flows per path and round through direct TCP
//!   and warren tokio: the block's p50;
//! - *cold setup*: a block of flows per path and round through the stunnel
//!   pair and warren tokio cold (a pause before each flow so that each pays
//!   a handshake): the block's serial flows/s.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use super::budget::scaled;
use super::measure::{bulk_window, setup_flow, setup_samples, Setup, Throughput, Window};
use super::peers::Relay;
use super::report::Row;
use super::rounds::{round_order, Figure, Rounds};
use super::target::TargetServer;
use super::{
    COLD_TOKIO, DIRECT, NGHTTPX, PLAIN_PAIR, RELAY_SMOL, RELAY_TOKIO, STUNNEL, WARREN_SMOL,
    WARREN_TOKIO,
};

/// The bulk rounds' paths, warren tokio in the middle: each figure's two
/// paths at most three windows apart within a round (a relayed row next
/// to its direct agent→agent row).
const BULK_PATHS: [&str; 7] = [
    NGHTTPX,
    STUNNEL,
    RELAY_TOKIO,
    WARREN_TOKIO,
    WARREN_SMOL,
    RELAY_SMOL,
    PLAIN_PAIR,
];
/// The warm setup rounds' paths.
const WARM_PATHS: [&str; 2] = [DIRECT, WARREN_TOKIO];
/// The cold setup rounds' paths.
const COLD_PATHS: [&str; 2] = [STUNNEL, COLD_TOKIO];

/// Figure names, as the targets table shows them.
pub const ONE_VS_STUNNEL: &str = "warren tokio 1 flow / stunnel pair";
/// See [`ONE_VS_STUNNEL`].
pub const RELAY_CPU: &str = "warren tokio relay %core per Gbit/s";
/// See [`ONE_VS_STUNNEL`].
pub const ONE_VS_NGHTTPX: &str = "warren tokio 1 flow / nghttpx chain";
/// See [`ONE_VS_STUNNEL`].
pub const ONE_VS_PLAIN_PAIR: &str = "warren tokio 1 flow / plaintext relay pair";
/// See [`ONE_VS_STUNNEL`].
pub const WARM_VS_DIRECT: &str = "warm setup p50 / direct TCP connect+echo";
/// See [`ONE_VS_STUNNEL`].
pub const COLD_VS_STUNNEL: &str = "cold flows/s / stunnel pair (default config: resumption on)";
/// See [`ONE_VS_STUNNEL`].
pub const SMOL_VS_TOKIO: &str = "smol 1 flow / tokio 1 flow";
/// Issue 9's relayed figures (end to end), see [`ONE_VS_STUNNEL`].
pub const RELAY_TOKIO_VS_DIRECT: &str = "warren tokio relayed (e2e) 1 flow / direct agent→agent";
/// See [`RELAY_TOKIO_VS_DIRECT`].
pub const RELAY_TOKIO_VS_STUNNEL: &str = "warren tokio relayed (e2e) 1 flow / stunnel pair";
/// See [`RELAY_TOKIO_VS_DIRECT`].
pub const RELAY_SMOL_VS_DIRECT: &str = "warren smol relayed (e2e) 1 flow / direct agent→agent";
/// See [`RELAY_TOKIO_VS_DIRECT`].
pub const RELAY_SMOL_VS_STUNNEL: &str = "warren smol relayed (e2e) 1 flow / stunnel pair";

/// The phases of the rounds, as the time budget names them.
pub const BULK: &str = "interleaved bulk rounds";
/// See [`BULK`].
pub const WARM: &str = "interleaved warm setup rounds";
/// See [`BULK`].
pub const COLD: &str = "interleaved cold setup rounds";

/// Whether the rounds measure `path`'s 1-flow throughput and relay CPU
/// (its row then takes them from the rounds).
pub fn measures_bulk(path: &str) -> bool {
    BULK_PATHS.contains(&path)
}

/// Whether the rounds time `path`'s flow setup (its row then takes it
/// from the rounds).
pub fn times_setup(path: &str) -> bool {
    WARM_PATHS.contains(&path) || COLD_PATHS.contains(&path)
}

/// Whether the rounds need `path` kept started.
pub fn uses(path: &str) -> bool {
    measures_bulk(path) || times_setup(path)
}

/// How many rounds, and how long each part of a round lasts.
pub struct RoundPlan {
    /// Bulk rounds (one window per path each).
    pub bulk_rounds: usize,
    /// Each bulk window's warm-up, not counted.
    pub warmup: Duration,
    /// Each bulk window, counted.
    pub window: Duration,
    /// Warm setup rounds.
    pub warm_rounds: usize,
    /// Flows per warm setup block.
    pub warm_flows: usize,
    /// Cold setup rounds.
    pub cold_rounds: usize,
    /// Cold warren flows per block.
    pub cold_flows: usize,
    /// stunnel flows per block of the cold rounds.
    pub cold_peer_flows: usize,
    /// Before each cold flow of either path: agent A's pool (1 ms idle
    /// timeout) drops the connection meanwhile. stunnel's flows get the
    /// same pause (each of its flows is a new handshake anyway), so both
    /// paths start every flow from the same idle box: timed back to back,
    /// stunnel's flows ran on warm CPUs and caches and warren's did not,
    /// which read stunnel 22 % faster (mean 1724 µs against 2216 µs, same
    /// quiet hour; benches/WARREN-BENCH.md, sixth pass).
    pub pause: Duration,
    /// Before each warm setup block: the other path's last flow is torn
    /// down meanwhile.
    pub gap: Duration,
    /// Each phase starts no new round after this long (times the phase's
    /// scale from the run's time budget).
    pub budget: Duration,
}

/// What the rounds found: the figures, and each path's measurements
/// pooled over its rounds for the per-path rows.
pub struct Interleaved {
    /// The target figures, in the targets table's order.
    pub figures: Vec<Figure>,
    /// Every bulk window, by path.
    windows: BTreeMap<&'static str, Vec<Window>>,
    /// Every setup time (µs), by path.
    samples: BTreeMap<&'static str, Vec<f64>>,
    /// Paths that failed during the rounds, and how.
    failed: BTreeMap<&'static str, String>,
}

impl Interleaved {
    /// Sets the figures the rounds measured in the per-path rows: 1-flow
    /// Gbit/s and relay %core per Gbit/s over all of a path's windows, setup
    /// p50/p99 and serial flows/s over all of its flows; a path that failed
    /// in the rounds becomes missing, saying so.
    pub fn fill(&self, rows: &mut [Row]) {
        for row in rows.iter_mut() {
            let name = row.name.as_str();
            if let Some(why) = self.failed.get(name) {
                if row.missing.is_none() {
                    row.missing = Some(format!("{why} (interleaved rounds)"));
                }
                continue;
            }
            if let Some(w) = self.windows.get(name).filter(|w| !w.is_empty()) {
                let t = Throughput::of(w);
                row.one = Some(t.gbps);
                row.cpu = t.core_per_gbps;
            }
            if let Some(s) = self.samples.get(name).filter(|s| !s.is_empty()) {
                row.setup = Some(Setup::of(s));
            }
        }
    }
}

/// Runs the three phases over `paths` (the started ones; `missing` says why
/// any other was not started; `planned` lists every path the run has a
/// row for) and makes the figures. `phase` starts each phase on the run's
/// time budget and returns the factor its time is scaled by and the most
/// it may take: a phase starts no new round after `plan.budget` × that
/// factor, or after that most, whichever comes first.
pub fn run(
    paths: &BTreeMap<&'static str, Relay>,
    missing: &BTreeMap<String, String>,
    planned: &[&str],
    plan: &RoundPlan,
    target: &TargetServer,
    phase: &mut dyn FnMut(&str) -> (f64, Duration),
) -> Interleaved {
    let mut out = Interleaved {
        figures: Vec::new(),
        windows: BTreeMap::new(),
        samples: BTreeMap::new(),
        failed: BTreeMap::new(),
    };
    let (mut gbps, mut cpu) = (Rounds::default(), Rounds::default());
    let (mut warm, mut cold) = (Rounds::default(), Rounds::default());
    // Paths the run does not plan (the smol relayed row in --quick) are
    // left out of the rounds altogether.
    let listed: Vec<&'static str> = BULK_PATHS
        .into_iter()
        .filter(|p| planned.contains(p))
        .collect();
    let bulk = present(&listed, paths, missing, &mut [&mut gbps, &mut cpu]);
    let t0 = Instant::now();
    eprintln!("#   bulk rounds: {bulk:?}");
    let bulk_budget = capped(plan.budget, phase(BULK));
    for round in 0..plan.bulk_rounds {
        if t0.elapsed() > bulk_budget {
            break;
        }
        for name in round_order(&bulk, round) {
            let Some(path) = paths.get(name).filter(|_| gbps.excluded(name).is_none()) else {
                continue;
            };
            match bulk_window(path, 1, target, (plan.warmup, plan.window)) {
                Ok(w) => {
                    let t = Throughput::of(&[w]);
                    gbps.record(name, round, t.gbps);
                    if let Some(c) = t.core_per_gbps {
                        cpu.record(name, round, c);
                    }
                    out.windows.entry(name).or_default().push(w);
                }
                Err(e) => out.fail(name, &e.to_string(), &mut [&mut gbps, &mut cpu]),
            }
        }
    }
    let warm_paths = present(&WARM_PATHS, paths, missing, &mut [&mut warm]);
    eprintln!(
        "#   {:.1} s: warm setup rounds: {warm_paths:?}",
        t0.elapsed().as_secs_f64()
    );
    let warm_block = |_: &str| (plan.warm_flows, plan.gap, None);
    let p50 = |s: &Setup| s.p50;
    let warm_budget = capped(plan.budget, phase(WARM));
    out.setup_phase(
        &warm_paths,
        paths,
        warm_budget,
        plan.warm_rounds,
        warm_block,
        p50,
        &mut warm,
    );
    let cold_paths = present(&COLD_PATHS, paths, missing, &mut [&mut cold]);
    eprintln!(
        "#   {:.1} s: cold setup rounds: {cold_paths:?}",
        t0.elapsed().as_secs_f64()
    );
    let cold_block = |name: &str| {
        let flows = if name == COLD_TOKIO {
            plan.cold_flows
        } else {
            plan.cold_peer_flows
        };
        (flows, Duration::ZERO, Some(plan.pause))
    };
    let per_s = |s: &Setup| s.per_s;
    let cold_budget = capped(plan.budget, phase(COLD));
    out.setup_phase(
        &cold_paths,
        paths,
        cold_budget,
        plan.cold_rounds,
        cold_block,
        per_s,
        &mut cold,
    );
    eprintln!("#   {:.1} s: rounds done", t0.elapsed().as_secs_f64());

    let ratio = |name: &'static str,
                 measure: &'static str,
                 r: &Rounds,
                 a: &'static str,
                 b: &'static str,
                 order: &[&'static str]| Figure {
        name,
        measure,
        a,
        b: Some(b),
        order: order.to_vec(),
        rounds: r.ratios(a, b),
    };
    let one = "1 flow Gbit/s";
    out.figures = vec![
        ratio(ONE_VS_STUNNEL, one, &gbps, WARREN_TOKIO, STUNNEL, &bulk),
        Figure {
            name: RELAY_CPU,
            measure: "relay %core per Gbit/s, 1 flow",
            a: WARREN_TOKIO,
            b: None,
            order: bulk.clone(),
            rounds: cpu.singles(WARREN_TOKIO),
        },
        ratio(ONE_VS_NGHTTPX, one, &gbps, WARREN_TOKIO, NGHTTPX, &bulk),
        ratio(
            ONE_VS_PLAIN_PAIR,
            one,
            &gbps,
            WARREN_TOKIO,
            PLAIN_PAIR,
            &bulk,
        ),
        ratio(
            WARM_VS_DIRECT,
            "setup p50 µs of a block",
            &warm,
            WARREN_TOKIO,
            DIRECT,
            &warm_paths,
        ),
        ratio(
            COLD_VS_STUNNEL,
            "serial flows/s of a block",
            &cold,
            COLD_TOKIO,
            STUNNEL,
            &cold_paths,
        ),
        ratio(SMOL_VS_TOKIO, one, &gbps, WARREN_SMOL, WARREN_TOKIO, &bulk),
    ];
    for (relayed, direct, vs_direct, vs_stunnel) in [
        (
            RELAY_TOKIO,
            WARREN_TOKIO,
            RELAY_TOKIO_VS_DIRECT,
            RELAY_TOKIO_VS_STUNNEL,
        ),
        (
            RELAY_SMOL,
            WARREN_SMOL,
            RELAY_SMOL_VS_DIRECT,
            RELAY_SMOL_VS_STUNNEL,
        ),
    ] {
        if listed.contains(&relayed) {
            out.figures.extend([
                ratio(vs_direct, one, &gbps, relayed, direct, &bulk),
                ratio(vs_stunnel, one, &gbps, relayed, STUNNEL, &bulk),
            ]);
        }
    }
    out
}

/// `budget` scaled by a phase's factor and capped at its allowance.
fn capped(budget: Duration, (scale, allowance): (f64, Duration)) -> Duration {
    scaled(budget, scale).min(allowance)
}

/// The paths of `list` that were started; every other one is excluded
/// from `rounds` with the reason it was not started.
fn present(
    list: &[&'static str],
    paths: &BTreeMap<&'static str, Relay>,
    missing: &BTreeMap<String, String>,
    rounds: &mut [&mut Rounds],
) -> Vec<&'static str> {
    let mut out = Vec::new();
    for &name in list {
        if paths.contains_key(name) {
            out.push(name);
            continue;
        }
        let why = match missing.get(name) {
            Some(why) if why.starts_with("failed") => why.clone(),
            Some(why) => format!("missing: {why}"),
            None => "not started".to_string(),
        };
        for r in rounds.iter_mut() {
            r.exclude(name, &why);
        }
    }
    out
}

impl Interleaved {
    /// Takes `name` out of the rounds after an error.
    fn fail(&mut self, name: &'static str, error: &str, rounds: &mut [&mut Rounds]) {
        let why = format!("failed: {error}");
        for r in rounds.iter_mut() {
            r.exclude(name, &why);
        }
        self.failed.entry(name).or_insert(why);
    }

    /// A setup phase: one warm-up flow per path, then `n_rounds` rounds of
    /// one block per path; `block` gives a path's flows per block, the
    /// pause before its block and the pause before each of its flows;
    /// `value` is what a block records.
    #[allow(clippy::too_many_arguments)]
    fn setup_phase(
        &mut self,
        order: &[&'static str],
        paths: &BTreeMap<&'static str, Relay>,
        budget: Duration,
        n_rounds: usize,
        block: impl Fn(&str) -> (usize, Duration, Option<Duration>),
        value: impl Fn(&Setup) -> f64,
        rounds: &mut Rounds,
    ) {
        for &name in order {
            if let Some(path) = paths.get(name) {
                if let Err(e) = setup_flow(path) {
                    self.fail(name, &e.to_string(), &mut [&mut *rounds]);
                }
            }
        }
        let t0 = Instant::now();
        for round in 0..n_rounds {
            if t0.elapsed() > budget {
                break;
            }
            for name in round_order(order, round) {
                let Some(path) = paths.get(name).filter(|_| rounds.excluded(name).is_none()) else {
                    continue;
                };
                let (flows, lead, pause) = block(name);
                thread::sleep(lead);
                match setup_samples(path, flows, budget, pause) {
                    Ok(v) if !v.is_empty() => {
                        rounds.record(name, round, value(&Setup::of(&v)));
                        self.samples.entry(name).or_default().extend(v);
                    }
                    Ok(_) => {}
                    Err(e) => self.fail(name, &e.to_string(), &mut [&mut *rounds]),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::peers::path_direct;

    #[test]
    fn rows_take_their_pooled_rounds_and_a_failure_in_the_rounds_says_so() {
        let w = |bytes: u64| Window {
            bytes,
            secs: 1.0,
            cpu_s: Some(0.1),
        };
        let mut out = Interleaved {
            figures: Vec::new(),
            windows: [(WARREN_TOKIO, vec![w(1_000_000_000), w(500_000_000)])].into(),
            samples: [(DIRECT, vec![30.0, 10.0, 20.0])].into(),
            failed: BTreeMap::new(),
        };
        out.fail(NGHTTPX, "connection refused", &mut []);
        let mut rows = [DIRECT, WARREN_TOKIO, NGHTTPX, STUNNEL].map(Row::new);
        rows[3].missing = Some("stunnel not installed".into());
        out.fill(&mut rows);
        // 1.5 GB in 2 s = 6 Gbit/s; 0.2 s of CPU in 2 s = 10 %core.
        assert_eq!(rows[1].one, Some(6.0));
        assert_eq!(rows[1].cpu, Some(10.0 / 6.0));
        assert_eq!(rows[0].setup.map(|s| s.p50), Some(20.0));
        assert_eq!(
            rows[2].missing.as_deref(),
            Some("failed: connection refused (interleaved rounds)")
        );
        assert_eq!(rows[3].missing.as_deref(), Some("stunnel not installed"));
    }

    #[test]
    fn paths_not_started_are_out_of_the_rounds_with_their_reason() {
        let paths: BTreeMap<&'static str, Relay> =
            [(WARREN_TOKIO, path_direct(([127, 0, 0, 1], 9).into()))].into();
        let missing: BTreeMap<String, String> = [
            (STUNNEL.to_string(), "stunnel not installed".to_string()),
            (NGHTTPX.to_string(), "failed: timed out".to_string()),
        ]
        .into();
        let mut r = Rounds::default();
        let started = present(&BULK_PATHS, &paths, &missing, &mut [&mut r]);
        assert_eq!(started, [WARREN_TOKIO]);
        assert_eq!(r.excluded(STUNNEL), Some("missing: stunnel not installed"));
        assert_eq!(r.excluded(NGHTTPX), Some("failed: timed out"));
        assert_eq!(r.excluded(WARREN_SMOL), Some("not started"));
        assert_eq!(r.excluded(WARREN_TOKIO), None);
    }

    #[test]
    fn the_rows_measured_in_rounds_are_the_ones_the_figures_need() {
        for path in [
            WARREN_TOKIO,
            WARREN_SMOL,
            STUNNEL,
            NGHTTPX,
            PLAIN_PAIR,
            RELAY_TOKIO,
            RELAY_SMOL,
        ] {
            assert!(measures_bulk(path) && uses(path), "{path}");
        }
        for path in [DIRECT, WARREN_TOKIO, STUNNEL, COLD_TOKIO] {
            assert!(times_setup(path) && uses(path), "{path}");
        }
        for path in [
            super::super::SOCAT,
            super::super::COLD_SMOL,
            super::super::RELAY_TOKIO_PLAIN,
        ] {
            assert!(!uses(path), "{path}");
        }
    }
}
