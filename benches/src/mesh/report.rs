//! The run's output: JSON lines (one `machine` line, one line per path,
//! one per interleaved figure), then markdown tables with every figure as a
//! ratio to direct TCP and to each peer of the same run, the interleaved
//! figures, and the targets checked.

use std::collections::BTreeMap;
use std::fs;
use std::thread;

use serde_json::{json, Value};

use super::budget::Budget;
use super::interleave::{
    COLD_VS_STUNNEL, ONE_VS_NGHTTPX, ONE_VS_PLAIN_PAIR, ONE_VS_STUNNEL, RELAY_CPU,
    RELAY_SMOL_VS_DIRECT, RELAY_SMOL_VS_STUNNEL, RELAY_TOKIO_VS_DIRECT, RELAY_TOKIO_VS_STUNNEL,
    SMOL_VS_TOKIO, WARM_VS_DIRECT,
};
use super::measure::{Memory, MemoryAt, Setup, BUSY_BYTES};
use super::relay::SlowReceiver;
use super::rounds::Figure;

/// Every figure of one path; None where it was not measured.
pub struct Row {
    /// The path's name.
    pub name: String,
    /// Why the path could not be started or measured.
    pub missing: Option<String>,
    /// Gbit/s, one flow.
    pub one: Option<f64>,
    /// Gbit/s, 8 parallel flows.
    pub eight: Option<f64>,
    /// Relay %core per Gbit/s over the one-flow window.
    pub cpu: Option<f64>,
    /// Flow setup figures.
    pub setup: Option<Setup>,
    /// The relay's memory per flow, or why it was not measured.
    pub memory: Result<Memory, String>,
    /// Relayed rows: the hub's memory under a slow receiver.
    pub slow: Option<SlowReceiver>,
}

impl Row {
    /// A row with nothing measured yet.
    pub fn new(name: &str) -> Row {
        Row {
            name: name.to_string(),
            missing: None,
            one: None,
            eight: None,
            cpu: None,
            setup: None,
            memory: Err("not measured".into()),
            slow: None,
        }
    }

    fn p50(&self) -> Option<f64> {
        self.setup.as_ref().map(|s| s.p50)
    }

    fn per_s(&self) -> Option<f64> {
        self.setup.as_ref().map(|s| s.per_s)
    }

    /// The memory point with the most flows.
    fn memory_last(&self) -> Option<&MemoryAt> {
        self.memory.as_ref().ok()?.points.last()
    }

    /// The memory point that asked for `asked` flows.
    fn memory_at(&self, asked: usize) -> Option<&MemoryAt> {
        let m = self.memory.as_ref().ok()?;
        m.points.iter().find(|p| p.asked == asked)
    }
}

/// The machine and the run's circumstances.
pub struct Machine {
    /// Values by name (nproc, cpu_model, glibc_tunables, fd limit, loads).
    pub info: BTreeMap<&'static str, String>,
}

impl Machine {
    /// nproc, CPU model, GLIBC_TUNABLES and the load average now.
    pub fn probe() -> Machine {
        let mut info = BTreeMap::new();
        info.insert(
            "nproc",
            thread::available_parallelism().map_or("?".into(), |n| n.to_string()),
        );
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "?".into());
        info.insert("cpu_model", cpu);
        info.insert(
            "glibc_tunables",
            std::env::var("GLIBC_TUNABLES").unwrap_or_else(|_| "unset".into()),
        );
        info.insert("loadavg_start", loadavg());
        Machine { info }
    }

    /// Whether a load average (first figure of `key`) exceeded nproc.
    fn busy(&self, key: &str) -> bool {
        let first: f64 = self
            .info
            .get(key)
            .and_then(|l| l.split(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let cores: f64 = self.info["nproc"].parse().unwrap_or(1.0);
        first > cores
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One JSON object per line: the machine, then each path, then each
/// interleaved figure, then the run's wall time against its budget.
pub fn json_lines(
    machine: &Machine,
    rows: &[Row],
    figures: &[Figure],
    budget: &Budget,
) -> Vec<String> {
    let mut out = vec![json!({ "machine": machine.info }).to_string()];
    for r in rows {
        let v = match &r.missing {
            Some(why) => {
                json!({ "path": r.name, "missing": why, "hub_slow_receiver": r.slow.as_ref().map(slow_json) })
            }
            None => {
                let memory = match &r.memory {
                    Ok(m) => json!({
                        "busy_bytes_each_way": BUSY_BYTES,
                        "points": m.points.iter().map(|p| json!({
                            "flows_asked": p.asked,
                            "flows": p.flows,
                            "rss_kib_per_idle_flow": round(p.idle_kib),
                            "rss_kib_per_busy_flow": p.busy_kib.map(round),
                            "rss_kib_per_flow_idle_after_busy": p.after_kib.map(round),
                        })).collect::<Vec<_>>(),
                        "cut_short": m.cut,
                    }),
                    Err(why) => json!({ "missing": why }),
                };
                json!({
                    "path": r.name,
                    "gbps_1flow": r.one.map(round),
                    "gbps_8flows": r.eight.map(round),
                    "relay_core_pct_per_gbps": r.cpu.map(round),
                    "setup_p50_us": r.p50().map(round),
                    "setup_p99_us": r.setup.as_ref().map(|s| round(s.p99)),
                    "serial_flows_per_s": r.per_s().map(round),
                    "memory": memory,
                    "hub_slow_receiver": r.slow.as_ref().map(slow_json),
                })
            }
        };
        out.push(v.to_string());
    }
    out.extend(figures.iter().map(|f| figure_json(f).to_string()));
    out.push(budget_json(budget).to_string());
    out
}

/// The run's wall time, its budget, and each phase's share, scale and time.
fn budget_json(b: &Budget) -> Value {
    json!({ "time_budget": {
        "budget_s": b.total().as_secs_f64(),
        "elapsed_s": round(b.elapsed().as_secs_f64()),
        "within": b.elapsed() <= b.total(),
        "phases": b.phases().iter().map(|p| json!({
            "phase": p.name,
            "share_s": p.share_s,
            "scale": round(p.scale),
            "took_s": p.took_s.map(round),
        })).collect::<Vec<_>>(),
    }})
}

/// The run's wall time against its budget, each phase's share and time,
/// and the phases that started behind schedule and were shortened.
fn budget_table(b: &Budget) -> String {
    let elapsed = b.elapsed().as_secs_f64();
    let total = b.total().as_secs_f64();
    let mut o = format!(
        "\nTime budget: {elapsed:.1} s wall of a {total:.0} s budget ({}). Each phase has a nominal share; a phase started behind schedule gets its windows, caps and rounds scaled by (time left) / (shares ahead):\n\n| phase | share s | took s | scale |\n|---|---|---|---|\n",
        if elapsed <= total { "within" } else { "OVER" },
    );
    for p in b.phases() {
        let scale = if p.scale < 1.0 {
            format!("{:.2} (shortened: started behind schedule)", p.scale)
        } else {
            "1".into()
        };
        o += &format!(
            "| {} | {:.1} | {} | {scale} |\n",
            p.name,
            p.share_s,
            cell(p.took_s, 1),
        );
    }
    o
}

/// An interleaved figure with every round's values, so that a reader can
/// recompute the median; or why it has none.
fn figure_json(f: &Figure) -> Value {
    let mut v = json!({
        "interleaved": f.name,
        "a": f.a,
        "b": f.b,
        "measure": f.measure,
        "order_even_rounds": f.order,
        "order_odd_rounds": "reversed",
    });
    match (&f.rounds, f.summary()) {
        (Ok(rounds), Some(s)) => {
            v["median"] = round(s.median);
            v["min"] = round(s.min);
            v["max"] = round(s.max);
            v["rounds"] = json!(s.rounds);
            v["per_round"] = rounds
                .iter()
                .map(|r| {
                    json!({
                        "round": r.round,
                        "a": round(r.a),
                        "b": r.b.map(round),
                        "value": round(r.value),
                    })
                })
                .collect();
        }
        _ => v["missing"] = json!(f.why_none()),
    }
    v
}

fn slow_json(s: &SlowReceiver) -> Value {
    json!({
        "flows": s.flows,
        "hub_streams": s.hub_streams,
        "bytes_pushed": s.pushed,
        "flows_stalled": s.stalled,
        "bytes_undrained": s.undrained,
        "drain_s": round(s.drain_s),
        "hub_rss_growth_bytes": s.hub_growth,
        "hub_rss_kib_per_flow": round(s.kib_per_flow()),
        "stream_window_bytes": s.stream_window,
        "connection_window_bytes": s.connection_window,
        "send_buffer_bytes_per_connection": s.send_buffer,
        "window_bound_bytes": s.bound(),
        "within_bound": s.hub_growth <= s.bound(),
    })
}

fn round(x: f64) -> Value {
    json!((x * 1000.0).round() / 1000.0)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "–".into(),
    }
}

fn cell(v: Option<f64>, prec: usize) -> String {
    v.map_or("–".into(), |x| format!("{x:.prec$}"))
}

fn find<'a>(rows: &'a [Row], name: &str) -> Option<&'a Row> {
    rows.iter().find(|r| r.name == name && r.missing.is_none())
}

/// The markdown tables.
pub fn markdown(
    machine: &Machine,
    rows: &[Row],
    figures: &[Figure],
    quick: bool,
    budget: &Budget,
) -> String {
    let elapsed_s = budget.elapsed().as_secs_f64();
    let mut o = String::new();
    let i = &machine.info;
    o += &format!(
        "Machine: {} × {}; load average {} at start, {} at end; GLIBC_TUNABLES {}; open-file limit {}; {} mode, {:.0} s.\n",
        i["nproc"],
        i["cpu_model"],
        i["loadavg_start"],
        i.get("loadavg_end").map_or("?", String::as_str),
        i["glibc_tunables"],
        i.get("fd_limit").map_or("?", String::as_str),
        if quick { "--quick" } else { "default" },
        elapsed_s,
    );
    if machine.busy("loadavg_start") || machine.busy("loadavg_end") {
        o += "\nWARNING: load average above nproc: other work shared the cores; absolute figures and p99s are unreliable, compare ratios only.\n";
    }
    o += "\nThe 1-flow Gbit/s and relay %core of the paths in the interleaved bulk rounds, and the setup figures of those in the setup rounds, pool all of their rounds' windows and flows (see the interleaved table).\n";
    o += "\n| path | 1 flow Gbit/s | ×direct | 8 flows Gbit/s | ×direct | relay %core per Gbit/s | setup p50 µs | p99 µs | p50 ×direct | serial flows/s |\n";
    o += "|---|---|---|---|---|---|---|---|---|---|\n";
    let direct = rows.first();
    let d = |f: fn(&Row) -> Option<f64>| direct.and_then(f);
    for r in rows {
        if let Some(why) = &r.missing {
            o += &format!("| {} | missing: {why} | | | | | | | | |\n", r.name);
            continue;
        }
        o += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            cell(r.one, 2),
            ratio(r.one, d(|r| r.one)),
            cell(r.eight, 2),
            ratio(r.eight, d(|r| r.eight)),
            cell(r.cpu, 1),
            cell(r.p50(), 0),
            cell(r.setup.as_ref().map(|s| s.p99), 0),
            ratio(r.p50(), d(Row::p50)),
            cell(r.per_s(), 0),
        );
    }
    o += &memory_table(rows);
    o += &versus_table(rows);
    o += &interleaved_table(figures);
    o += &targets(rows, figures);
    o += &relayed_table(rows, figures);
    o += &budget_table(budget);
    o
}

/// The direct agent→agent row a relayed row compares with (same runtime).
fn direct_of(relayed: &str) -> &'static str {
    if relayed.contains("smol") {
        super::WARREN_SMOL
    } else {
        super::WARREN_TOKIO
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Relayed rows against direct agent→agent and the stunnel pair, the hub
/// under a slow receiver, and issue 9's targets.
fn relayed_table(rows: &[Row], figures: &[Figure]) -> String {
    let relayed: Vec<&Row> = rows.iter().filter(|r| r.name.contains("relayed")).collect();
    if relayed.is_empty() {
        return String::new();
    }
    let stunnel = find(rows, super::STUNNEL);
    let mut o = String::from(
        "\nRelayed (agent A → hub → agent B, B listening nowhere; one hub process), same run. Hub under a slow receiver: flows whose target never reads, each pushed until the path stalls; the hub's RSS growth against its bound = one stream window per hub stream (end to end all flows ride one pair stream), at most one connection window, plus 2 × (HTTP/2 send buffer + TLS buffer) for the two legs' connections. The bound counts the bytes the windows let the hub hold; RSS also counts the capacity its buffers were allocated with (see benches/WARREN-BENCH.md, sixth pass):\n\n",
    );
    o += "| relayed path | 1 flow Gbit/s | / direct agent→agent | / stunnel pair | 8 flows Gbit/s | relay %core per Gbit/s | setup p50 µs | p99 µs | slow-receiver flows | pushed MiB | drained in s | hub RSS growth MiB | KiB per flow | window bound MiB | within |\n";
    o += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in &relayed {
        if let Some(why) = &r.missing {
            o += &format!("| {} | missing: {why} ||||||||||||||\n", r.name);
            continue;
        }
        let direct = find(rows, direct_of(&r.name));
        let slow = r.slow.as_ref();
        o += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.name,
            cell(r.one, 2),
            ratio(r.one, direct.and_then(|d| d.one)),
            ratio(r.one, stunnel.and_then(|s| s.one)),
            cell(r.eight, 2),
            cell(r.cpu, 1),
            cell(r.p50(), 0),
            cell(r.setup.as_ref().map(|s| s.p99), 0),
            slow.map_or("–".into(), |s| format!(
                "{} ({} stalled)",
                s.flows, s.stalled
            )),
            cell(slow.map(|s| s.pushed as f64 / MIB), 1),
            slow.map_or("–".into(), |s| if s.undrained == 0 {
                format!("{:.2}", s.drain_s)
            } else {
                format!(
                    "not: {:.1} MiB left after {:.1}",
                    s.undrained as f64 / MIB,
                    s.drain_s
                )
            }),
            cell(slow.map(|s| s.hub_growth as f64 / MIB), 1),
            cell(slow.map(SlowReceiver::kib_per_flow), 0),
            cell(slow.map(|s| s.bound() as f64 / MIB), 1),
            slow.map_or("–", |s| if s.hub_growth <= s.bound() {
                "yes"
            } else {
                "no"
            }),
        );
    }
    o += "\nThe end-to-end rows' 1-flow Gbit/s are measured in the interleaved bulk rounds (pooled), the plaintext rows' in a window of their own after their slow-receiver figure (its held flows drained first).\n";
    o += "\nTargets (issue 9), end to end (the default), from this run. The 1-flow ratios are the median over interleaved rounds (relayed, direct agent→agent and the stunnel pair measured alternately):\n\n| figure | value | target | met | min–max over rounds |\n|---|---|---|---|---|\n";
    for r in relayed.iter().filter(|r| !r.name.contains("e2e off")) {
        let (vs_direct, vs_stunnel) = if r.name.contains("smol") {
            (RELAY_SMOL_VS_DIRECT, RELAY_SMOL_VS_STUNNEL)
        } else {
            (RELAY_TOKIO_VS_DIRECT, RELAY_TOKIO_VS_STUNNEL)
        };
        let fig = |name: &str| Reading::Rounds(figures.iter().find(|f| f.name == name));
        for (what, reading, goal) in [
            (vs_direct.to_string(), fig(vs_direct), Goal::AtLeast(0.70)),
            (vs_stunnel.to_string(), fig(vs_stunnel), Goal::AtLeast(1.1)),
            (
                format!("{} warm new-flow setup p50 (ms)", r.name),
                Reading::Once(r.p50().map(|us| us / 1000.0)),
                Goal::AtMost(1.0),
            ),
        ] {
            let (v, spread) = reading.value();
            let (val, met) = match v {
                Some(v) => (shown(v, goal), if goal.met(v) { "met" } else { "missed" }),
                None => ("–".into(), "–"),
            };
            o += &format!("| {what} | {val} | {} | {met} | {spread} |\n", goal.text());
        }
    }
    for r in &relayed {
        let Some(s) = &r.slow else { continue };
        let share = s.hub_growth as f64 / s.bound().max(1) as f64;
        line_bound(&mut o, &r.name, share);
    }
    o
}

/// The slow-receiver target line: hub RSS growth as a share of its windows.
fn line_bound(o: &mut String, name: &str, share: f64) {
    let goal = Goal::AtMost(1.0);
    let met = if goal.met(share) { "met" } else { "missed" };
    *o += &format!(
        "| {name} hub RSS growth / window bound, slow receiver | {} | ≤ 1 | {met} | – (one reading) |\n",
        shown(share, goal)
    );
}

/// A target figure's value with two decimals, or three where two would
/// round it across its target (0.697 against ≥ 0.7 would read "0.70 …
/// missed", 1.003 against ≤ 1 "1.00 … missed").
fn shown(v: f64, goal: Goal) -> String {
    let two = format!("{v:.2}");
    let rounded: f64 = two.parse().unwrap_or(v);
    if goal.met(rounded) == goal.met(v) {
        two
    } else {
        format!("{v:.3}")
    }
}

fn memory_table(rows: &[Row]) -> String {
    let mut o = format!(
        "\nRelay RSS growth per flow (KiB; all relay processes together, for warren both agents): idle = every flow echoed 1 byte and sits; busy = every flow echoing {} KiB at once, sampled with the echoes in flight; after = idle again once the echoes were read (what a flow keeps after traffic). Busy and after are measured once, with the most flows. A count in parentheses is the number of flows reached.\n\n",
        BUSY_BYTES / 1024
    );
    o += "| path | idle @1k | busy @1k | after @1k | idle @10k | busy @10k | after @10k | note |\n|---|---|---|---|---|---|---|---|\n";
    for r in rows.iter().filter(|r| r.missing.is_none()) {
        let at = |n: usize| match r.memory_at(n) {
            Some(p) => {
                let reached = if p.flows == n {
                    String::new()
                } else {
                    format!(" ({})", p.flows)
                };
                [Some(p.idle_kib), p.busy_kib, p.after_kib]
                    .map(|k| k.map_or("–".into(), |k| format!("{k:.2}{reached}")))
            }
            None => ["–".to_string(), "–".into(), "–".into()],
        };
        let [i1, b1, a1] = at(1000);
        let [i10, b10, a10] = at(10_000);
        let note = match &r.memory {
            Ok(m) => m.cut.clone().unwrap_or_default(),
            Err(why) => why.clone(),
        };
        o += &format!(
            "| {} | {i1} | {b1} | {a1} | {i10} | {b10} | {a10} | {note} |\n",
            r.name
        );
    }
    o
}

fn versus_table(rows: &[Row]) -> String {
    let mut o = String::from(
        "\nwarren against each peer, same run (throughput and flows/s: warren/peer, higher is better; CPU and setup: warren/peer, lower is better):\n\n",
    );
    o += "| warren | vs peer | 1 flow | 8 flows | %core/Gbit/s | setup p50 | serial flows/s |\n|---|---|---|---|---|---|---|\n";
    for w in rows.iter().filter(|r| r.name.starts_with("warren")) {
        if w.missing.is_some() {
            continue;
        }
        for p in rows.iter().filter(|r| !r.name.starts_with("warren")) {
            if p.missing.is_some() {
                o += &format!("| {} | {} | missing | | | | |\n", w.name, p.name);
                continue;
            }
            o += &format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                w.name,
                p.name,
                ratio(w.one, p.one),
                ratio(w.eight, p.eight),
                ratio(w.cpu, p.cpu),
                ratio(w.p50(), p.p50()),
                ratio(w.per_s(), p.per_s()),
            );
        }
    }
    o
}

/// What a figure of [`targets`] must reach.
#[derive(Clone, Copy)]
enum Goal {
    /// At least this much.
    AtLeast(f64),
    /// At most this much.
    AtMost(f64),
    /// Shown next to a target for comparison; "met" still says whether it
    /// is at least this much.
    Compare(f64),
}

impl Goal {
    fn text(self) -> String {
        match self {
            Goal::AtLeast(x) => format!("≥ {x}"),
            Goal::AtMost(x) => format!("≤ {x}"),
            Goal::Compare(_) => "(for comparison)".into(),
        }
    }

    fn met(self, v: f64) -> bool {
        match self {
            Goal::AtLeast(x) | Goal::Compare(x) => v >= x,
            Goal::AtMost(x) => v <= x,
        }
    }
}

/// A target figure's reading: the median of its interleaved rounds with
/// their min–max, or one reading of this run.
enum Reading<'a> {
    /// Measured in interleaved rounds.
    Rounds(Option<&'a Figure>),
    /// One reading.
    Once(Option<f64>),
}

impl Reading<'_> {
    /// The value, and the min–max column's text.
    fn value(&self) -> (Option<f64>, String) {
        match self {
            Reading::Once(v) => (*v, "– (one reading)".into()),
            Reading::Rounds(None) => (None, "not measured in rounds".into()),
            Reading::Rounds(Some(f)) => match (f.summary(), f.why_none()) {
                (Some(s), _) => (
                    Some(s.median),
                    format!("{:.2}–{:.2} ({} rounds)", s.min, s.max, s.rounds),
                ),
                (None, why) => (None, why.unwrap_or_default()),
            },
        }
    }
}

/// The interleaved figures: median, min–max and rounds, and each path's
/// own median over the rounds; a figure whose path is missing says why.
fn interleaved_table(figures: &[Figure]) -> String {
    let mut o = String::from(
        "\nInterleaved rounds (the issue's target figures): the paths of a figure stay started and are measured alternately in short rounds, even rounds in list order and odd rounds reversed (A B … B A), and the figure is taken per round; median, min–max and number of rounds, and the median of each path's own per-round measurement:\n\n",
    );
    o += "| figure | median | min–max | rounds | measured per round | A | A median | B | B median |\n|---|---|---|---|---|---|---|---|---|\n";
    for f in figures {
        let b = f.b.unwrap_or("–");
        let (Some(s), Ok(rounds)) = (f.summary(), &f.rounds) else {
            o += &format!(
                "| {} | {} | – | – | {} | {} | – | {b} | – |\n",
                f.name,
                f.why_none().unwrap_or_default(),
                f.measure,
                f.a,
            );
            continue;
        };
        let own =
            |v: Vec<f64>| super::rounds::median(&v).map_or("–".into(), |m| format!("{m:.2}"));
        let a_median = own(rounds.iter().map(|r| r.a).collect());
        let b_median = if f.b.is_some() {
            own(rounds.iter().filter_map(|r| r.b).collect())
        } else {
            "–".into()
        };
        o += &format!(
            "| {} | {:.2} | {:.2}–{:.2} | {} | {} | {} | {a_median} | {b} | {b_median} |\n",
            f.name, s.median, s.min, s.max, s.rounds, f.measure, f.a,
        );
    }
    o
}

/// The targets: those measured in interleaved rounds as the median
/// of their rounds, the others from one reading of this run.
fn targets(rows: &[Row], figures: &[Figure]) -> String {
    let mut o = String::from(
        "\nTargets (issue 8), from this run. value: the median over interleaved rounds (the figure's two paths measured alternately, ABBA order), or one reading where the last column says so; last column: min–max of the per-round values and the number of rounds:\n\n| figure | value | target | met | min–max over rounds |\n|---|---|---|---|---|\n",
    );
    let get = |name: &str| find(rows, name);
    let fig = |name: &str| Reading::Rounds(figures.iter().find(|f| f.name == name));
    let tokio = get(super::WARREN_TOKIO);
    let stunnel = get(super::STUNNEL);
    let cold_full = get(super::COLD_TOKIO_FULL);
    let div = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let one = |r: Option<&Row>| r.and_then(|r| r.one);
    let per_s = |r: Option<&Row>| r.and_then(Row::per_s);
    let lines = [
        (ONE_VS_STUNNEL, fig(ONE_VS_STUNNEL), Goal::AtLeast(1.9)),
        (RELAY_CPU, fig(RELAY_CPU), Goal::AtMost(16.0)),
        (ONE_VS_NGHTTPX, fig(ONE_VS_NGHTTPX), Goal::AtLeast(3.0)),
        (WARM_VS_DIRECT, fig(WARM_VS_DIRECT), Goal::AtMost(2.5)),
        (COLD_VS_STUNNEL, fig(COLD_VS_STUNNEL), Goal::AtLeast(2.0)),
        (
            "cold flows/s / stunnel pair, full handshakes (resumption off)",
            Reading::Once(div(per_s(cold_full), per_s(stunnel))),
            Goal::Compare(2.0),
        ),
        (
            "warren tokio idle RSS KiB per flow per agent @1k",
            Reading::Once(
                tokio
                    .and_then(|r| r.memory_at(1000))
                    .map(|p| p.idle_kib / 2.0),
            ),
            Goal::AtMost(2.0),
        ),
        (
            "warren tokio RSS KiB per flow per agent, idle after busy",
            Reading::Once(
                tokio
                    .and_then(Row::memory_last)
                    .and_then(|p| p.after_kib)
                    .map(|k| k / 2.0),
            ),
            Goal::AtMost(2.0),
        ),
        (SMOL_VS_TOKIO, fig(SMOL_VS_TOKIO), Goal::AtLeast(0.9)),
    ];
    for (what, reading, goal) in lines {
        let (v, spread) = reading.value();
        let (val, met) = match v {
            Some(v) => (shown(v, goal), if goal.met(v) { "yes" } else { "no" }),
            None => ("–".into(), "–"),
        };
        o += &format!("| {what} | {val} | {} | {met} | {spread} |\n", goal.text());
    }
    let pair = one(get(super::PLAIN_PAIR));
    if let (Some(pair), Some(st)) = (pair, one(stunnel)) {
        // The 1-flow target is a multiple of a peer; this says what that
        // multiple asks of the machine.
        let share = fig(ONE_VS_PLAIN_PAIR).value().0;
        o += &format!(
            "\nContext for the 1-flow target: two relays with no crypto (socat, 256 KiB buffers, the same three TCP hops) moved {pair:.2} Gbit/s; 1.9 × stunnel is {:.2} Gbit/s ({:.2} × that crypto-free ceiling); warren tokio moved {} of it (median of the interleaved rounds).\n",
            1.9 * st,
            1.9 * st / pair,
            share.map_or("–".into(), |w| format!("{:.0} %", 100.0 * w)),
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::rounds::{median, Rounds};
    use crate::mesh::{STUNNEL, WARREN_SMOL, WARREN_TOKIO};

    /// warren tokio and smol measured in three rounds; stunnel not installed.
    fn figures() -> Vec<Figure> {
        let mut gbps = Rounds::default();
        for (round, (tokio, smol)) in [(10.0, 9.0), (8.0, 8.8), (12.0, 6.0)]
            .into_iter()
            .enumerate()
        {
            gbps.record(WARREN_TOKIO, round, tokio);
            gbps.record(WARREN_SMOL, round, smol);
        }
        gbps.exclude(STUNNEL, "missing: stunnel not installed");
        let figure = |name, a, b| Figure {
            name,
            measure: "1 flow Gbit/s",
            a,
            b: Some(b),
            order: vec![STUNNEL, WARREN_TOKIO, WARREN_SMOL],
            rounds: gbps.ratios(a, b),
        };
        vec![
            figure(ONE_VS_STUNNEL, WARREN_TOKIO, STUNNEL),
            figure(SMOL_VS_TOKIO, WARREN_SMOL, WARREN_TOKIO),
        ]
    }

    fn line<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in\n{text}"))
    }

    #[test]
    fn the_interleaved_table_gives_median_spread_and_rounds_and_says_missing() {
        let t = interleaved_table(&figures());
        // Ratios 0.9, 1.1, 0.5: median 0.9; each path's own median too.
        assert_eq!(
            line(&t, "| smol 1 flow / tokio 1 flow |"),
            "| smol 1 flow / tokio 1 flow | 0.90 | 0.50–1.10 | 3 | 1 flow Gbit/s | warren smol | 8.80 | warren tokio | 10.00 |"
        );
        let missing = line(&t, "| warren tokio 1 flow / stunnel pair |");
        assert!(
            missing.contains("stunnel mTLS pair: missing: stunnel not installed"),
            "{missing}"
        );
    }

    #[test]
    fn the_targets_table_takes_the_interleaved_median_and_names_a_missing_peer() {
        let mut tokio = Row::new(WARREN_TOKIO);
        // The per-path row's pooled reading differs from the rounds' median:
        // the target line must show the median.
        tokio.one = Some(99.0);
        let rows = [Row::new(crate::mesh::DIRECT), tokio];
        let t = targets(&rows, &figures());
        assert!(t.contains("median over interleaved rounds"), "{t}");
        assert_eq!(
            line(&t, "| smol 1 flow / tokio 1 flow |"),
            "| smol 1 flow / tokio 1 flow | 0.90 | ≥ 0.9 | yes | 0.50–1.10 (3 rounds) |"
        );
        assert_eq!(
            line(&t, "| warren tokio 1 flow / stunnel pair |"),
            "| warren tokio 1 flow / stunnel pair | – | ≥ 1.9 | – | stunnel mTLS pair: missing: stunnel not installed |"
        );
        // Figures not run in rounds say so rather than showing a blank.
        assert!(line(&t, "| warm setup p50 / direct TCP connect+echo |")
            .ends_with("| – | ≤ 2.5 | – | not measured in rounds |"));
        assert!(
            line(&t, "| warren tokio idle RSS KiB per flow per agent @1k |")
                .ends_with("| – (one reading) |")
        );
    }

    #[test]
    fn a_figures_json_line_holds_every_round_so_the_median_can_be_recomputed() {
        let figures = figures();
        let mut budget = Budget::new(
            std::time::Duration::from_secs(170),
            std::time::Duration::from_secs(10),
        );
        budget.start("warren tokio", std::time::Duration::from_secs(10));
        budget.end();
        let lines = json_lines(
            &Machine {
                info: BTreeMap::new(),
            },
            &[],
            &figures,
            &budget,
        );
        let parsed: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let smol = parsed
            .iter()
            .find(|v| v["interleaved"] == SMOL_VS_TOKIO)
            .unwrap();
        let per_round: Vec<f64> = smol["per_round"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["a"].as_f64().unwrap() / r["b"].as_f64().unwrap())
            .collect();
        assert_eq!(per_round.len(), 3);
        assert_eq!(smol["rounds"], 3);
        let recomputed = median(&per_round).unwrap();
        assert!((recomputed - smol["median"].as_f64().unwrap()).abs() < 1e-3);
        let stunnel = parsed
            .iter()
            .find(|v| v["interleaved"] == ONE_VS_STUNNEL)
            .unwrap();
        assert_eq!(
            stunnel["missing"],
            "stunnel mTLS pair: missing: stunnel not installed"
        );
        assert!(stunnel.get("median").is_none());
        // The last line: the wall time against the budget, phase by phase.
        let time = &parsed.last().unwrap()["time_budget"];
        assert_eq!(time["budget_s"], 170.0);
        assert_eq!(time["within"], true);
        assert_eq!(time["phases"][0]["phase"], "warren tokio");
        assert_eq!(time["phases"][0]["scale"], 1.0);
        assert!(time["phases"][0]["took_s"].is_number());
    }

    #[test]
    fn relayed_targets_take_the_interleaved_median_not_the_rows_own_ratio() {
        let mut direct = Row::new(WARREN_TOKIO);
        let mut relayed = Row::new(crate::mesh::RELAY_TOKIO);
        // Pooled row readings say 0.5; the rounds say 0.8 (median of 0.7,
        // 0.8, 0.9): the target line shows the rounds' median.
        direct.one = Some(10.0);
        relayed.one = Some(5.0);
        let mut gbps = Rounds::default();
        for (round, r) in [7.0, 8.0, 9.0].into_iter().enumerate() {
            gbps.record(WARREN_TOKIO, round, 10.0);
            gbps.record(crate::mesh::RELAY_TOKIO, round, r);
        }
        let figures = [Figure {
            name: RELAY_TOKIO_VS_DIRECT,
            measure: "1 flow Gbit/s",
            a: crate::mesh::RELAY_TOKIO,
            b: Some(WARREN_TOKIO),
            order: vec![crate::mesh::RELAY_TOKIO, WARREN_TOKIO],
            rounds: gbps.ratios(crate::mesh::RELAY_TOKIO, WARREN_TOKIO),
        }];
        let t = relayed_table(&[direct, relayed], &figures);
        assert_eq!(
            line(&t, "| warren tokio relayed (e2e) 1 flow / direct agent→agent |"),
            "| warren tokio relayed (e2e) 1 flow / direct agent→agent | 0.80 | ≥ 0.7 | met | 0.70–0.90 (3 rounds) |"
        );
        // No stunnel figure: the line says why rather than a ratio.
        assert!(
            line(&t, "| warren tokio relayed (e2e) 1 flow / stunnel pair |")
                .ends_with("| – | ≥ 1.1 | – | not measured in rounds |")
        );
    }

    #[test]
    fn a_bound_share_just_over_one_reads_over_one() {
        // 6.1 MiB of growth against a 6.1 MiB bound rounded to two places
        // read "1.00 … missed"; three places show the excess.
        let mut o = String::new();
        line_bound(&mut o, "x", 1.003);
        assert_eq!(
            o,
            "| x hub RSS growth / window bound, slow receiver | 1.003 | ≤ 1 | missed | – (one reading) |\n"
        );
        o.clear();
        line_bound(&mut o, "x", 1.0);
        assert!(o.contains("| 1.00 | ≤ 1 | met |"), "{o}");
        // Two decimals where they do not hide the outcome.
        assert_eq!(shown(0.684, Goal::AtMost(1.0)), "0.68");
        assert_eq!(shown(0.697, Goal::AtLeast(0.7)), "0.697");
        assert_eq!(shown(0.703, Goal::AtLeast(0.7)), "0.70");
    }
}
