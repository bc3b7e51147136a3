//! Runs exactly one workload, without criterion, for instruction counts:
//! `valgrind --tool=callgrind target/release/h2-ir WORKLOAD`.
//!
//! Workloads: `hpack-decode`, `hpack-encode`, `churn-N`, `bulk-NMiB`,
//! `idle-streams-N` on warren, and `h2-churn-N`, `h2-bulk-NMiB` on the h2
//! crate; `tls-bulk-NMiB` (mutual TLS alone), `tls-h2-bulk-NMiB` (HTTP/2
//! over it), `node-bulk-NMiB` and `node-churn-N` (two mesh nodes in memory).
//! `compare-bulk-NMiB` is the odd one out: a wall-clock comparison
//! of warren and h2 bulk runs, interleaved (not for callgrind). With `--setup-only` a workload does everything but the measured
//! part, so that the difference of two runs is the work itself
//! (`benches/callgrind.sh` does this subtraction).

use std::process::ExitCode;

use warren_benches::bulk::WarrenBulk;
use warren_benches::mtls::{TlsH2Bulk, TlsPair};
use warren_benches::node::{self, NodePair, TargetMode};
use warren_benches::pair::Pair;
use warren_benches::reference::{self, H2Bulk};
use warren_benches::{churn, corpus, idle, MIB};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let setup_only = args.iter().any(|a| a == "--setup-only");
    let Some(workload) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: h2-ir [--setup-only] WORKLOAD\n{WORKLOADS}");
        return ExitCode::from(2);
    };
    match run(workload, setup_only) {
        Some(summary) => {
            println!(
                "{workload}{}: {summary}",
                if setup_only { " (setup only)" } else { "" }
            );
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("unknown workload {workload:?}\n{WORKLOADS}");
            ExitCode::from(2)
        }
    }
}

const WORKLOADS: &str = "workloads: hpack-decode, hpack-encode, churn-N, bulk-NMiB, \
                         idle-streams-N, h2-churn-N, h2-bulk-NMiB, compare-bulk-NMiB, \
                         tls-bulk-NMiB, tls-h2-bulk-NMiB, node-bulk-NMiB, node-churn-N";

/// Runs `workload`; returns what it did (units the script divides by).
fn run(workload: &str, setup_only: bool) -> Option<String> {
    if workload == "hpack-decode" {
        let stories = corpus::decode_corpus();
        let blocks = corpus::block_count(&stories);
        if !setup_only {
            corpus::decode_all(&stories, |_, _| {});
        }
        return Some(format!("{blocks} blocks"));
    }
    if workload == "hpack-encode" {
        let stories = corpus::encode_corpus();
        let blocks = corpus::block_count(&stories);
        if !setup_only {
            corpus::encode_all(&stories, |_, _| {});
        }
        return Some(format!("{blocks} blocks"));
    }
    if let Some(n) = count(workload, "h2-churn-", "") {
        reference::churn(if setup_only { 0 } else { n });
        return Some(format!("{n} streams"));
    }
    if let Some(mib) = count(workload, "h2-bulk-", "MiB") {
        let mut bulk = H2Bulk::new();
        bulk.transfer(MIB as u64); // warm-up: first-use buffer growth
        if !setup_only {
            bulk.transfer((mib * MIB) as u64);
        }
        return Some(format!("{} bytes", mib * MIB));
    }
    if let Some(n) = count(workload, "churn-", "") {
        churn::run(if setup_only { 0 } else { n });
        return Some(format!("{n} streams"));
    }
    if let Some(mib) = count(workload, "bulk-", "MiB") {
        let mut bulk = WarrenBulk::new();
        bulk.transfer(MIB as u64);
        if !setup_only {
            bulk.transfer((mib * MIB) as u64);
        }
        return Some(format!("{} bytes", mib * MIB));
    }
    if let Some(mib) = count(workload, "compare-bulk-", "MiB") {
        return Some(compare_bulk(
            (mib * MIB) as u64,
            if setup_only { 0 } else { 11 },
        ));
    }
    if let Some(mib) = count(workload, "node-bulk-", "MiB") {
        let mut pair = NodePair::new(TargetMode::Sink);
        let app = pair.open_bulk_flow();
        pair.bulk(app, MIB as u64);
        if !setup_only {
            pair.bulk(app, (mib * MIB) as u64);
        }
        return Some(format!("{} bytes", mib * MIB));
    }
    if let Some(mib) = count(workload, "tls-h2-bulk-", "MiB") {
        let mut bulk = TlsH2Bulk::new();
        bulk.transfer(MIB as u64);
        if !setup_only {
            bulk.transfer((mib * MIB) as u64);
        }
        return Some(format!("{} bytes", mib * MIB));
    }
    if let Some(mib) = count(workload, "tls-bulk-", "MiB") {
        let mut tls = TlsPair::new();
        let chunk = vec![0x5a; MIB];
        tls.transfer(&chunk, MIB as u64);
        if !setup_only {
            tls.transfer(&chunk, (mib * MIB) as u64);
        }
        return Some(format!("{} bytes", mib * MIB));
    }
    if let Some(n) = count(workload, "node-churn-", "") {
        let mut pair = NodePair::new(TargetMode::Echo);
        pair.echo_flow(&churn::PAYLOAD);
        node::churn(&mut pair, if setup_only { 0 } else { n }, &churn::PAYLOAD);
        return Some(format!("{n} streams"));
    }
    if let Some(n) = count(workload, "idle-streams-", "") {
        let mut pair = Pair::new(idle::config(n));
        idle::open(&mut pair, 1);
        if !setup_only {
            idle::open(&mut pair, n);
        }
        return Some(format!("{n} streams"));
    }
    None
}

/// Wall-clock bulk comparison with warren and h2 runs interleaved, so that
/// load changes on a shared machine hit both alike: `reps` transfers of
/// `bytes` each after a 1 GiB warm-up each; returns the medians.
fn compare_bulk(bytes: u64, reps: usize) -> String {
    let mut warren = WarrenBulk::new();
    let mut h2 = H2Bulk::new();
    // Warm-up past glibc's first-connection heap growth and trimming (the
    // anchors saw h2's first 512 MiB run at a fraction of its speed).
    warren.transfer(1 << 30);
    h2.transfer(1 << 30);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let start = std::time::Instant::now();
        warren.transfer(bytes);
        ours.push(start.elapsed());
        let start = std::time::Instant::now();
        h2.transfer(bytes);
        theirs.push(start.elapsed());
    }
    ours.sort();
    theirs.sort();
    let median = |v: &[std::time::Duration]| v.get(v.len() / 2).copied().unwrap_or_default();
    let gbps = |d: std::time::Duration| bytes as f64 / d.as_secs_f64().max(1e-9) / 1e9;
    let (w, h) = (median(&ours), median(&theirs));
    format!(
        "{bytes} bytes x {reps} interleaved: warren {:.2} GB/s, h2 {:.2} GB/s (medians), \
         warren/h2 = {:.2}, GLIBC_TUNABLES={}",
        gbps(w),
        gbps(h),
        h.as_secs_f64() / w.as_secs_f64().max(1e-9),
        std::env::var("GLIBC_TUNABLES").unwrap_or_else(|_| "(unset)".into())
    )
}

/// The number in `workload` between `prefix` and `suffix`, if it has that shape.
fn count(workload: &str, prefix: &str, suffix: &str) -> Option<usize> {
    workload
        .strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}
