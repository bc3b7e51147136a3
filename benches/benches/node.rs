//! Criterion benchmarks of a whole mesh node: two real `proto::Node`s
//! wired in memory (no sockets), one tunnel, mutual TLS with ring.
//!
//! Groups, each printing its figures side by side at the end:
//! - `tunnel-bulk`: 64 MiB per iteration on one long-lived flow, as
//!   HTTP/2 alone (the engine bench's `bulk`), TLS alone, HTTP/2 over TLS
//!   without a node, and the node pair. The node's overhead is its time
//!   over HTTP/2 + TLS (target: under 15 %).
//! - `tunnel-churn`: 1000 flows per iteration, each opened, echoing
//!   100 B and closed, on a warm pool; beside it the engine bench's
//!   `churn` (1000 streams, 100 B echo, on one fresh connection, no TLS).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use warren_benches::bulk::WarrenBulk;
use warren_benches::mtls::{TlsH2Bulk, TlsPair};
use warren_benches::node::{self, NodePair, TargetMode};
use warren_benches::samples::Samples;
use warren_benches::{churn, MIB};

/// Bytes per bulk iteration: the engine bench's.
const BULK_BYTES: u64 = 64 * MIB as u64;
/// Flows (and engine streams) per churn iteration.
const FLOWS: usize = 1000;

/// Runs `work` under criterion as `name` in `group`, keeping its samples.
fn timed(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut work: impl FnMut(),
) -> Duration {
    let mut samples = Samples::default();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                work();
            }
            samples.record(iters, start.elapsed())
        })
    });
    samples.median()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn tunnel_bulk(c: &mut Criterion) {
    let mut group = c.benchmark_group("tunnel-bulk");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(BULK_BYTES));
    let mut h2 = WarrenBulk::new();
    let h2_only = timed(&mut group, "h2", || h2.transfer(BULK_BYTES));
    let mut tls = TlsPair::new();
    let chunk = vec![0x5a; MIB];
    let tls_only = timed(&mut group, "tls", || {
        black_box(tls.transfer(&chunk, BULK_BYTES));
    });
    let mut stack = TlsH2Bulk::new();
    let tls_h2 = timed(&mut group, "tls+h2", || stack.transfer(BULK_BYTES));
    let mut pair = NodePair::new(TargetMode::Sink);
    let app = pair.open_bulk_flow();
    let whole = timed(&mut group, "node", || pair.bulk(app, BULK_BYTES));
    group.finish();
    let gbps = |d: Duration| BULK_BYTES as f64 / d.as_secs_f64() / 1e9;
    println!(
        "tunnel-bulk (GB/s, medians, load {}): h2 {:.2} | tls {:.2} | tls+h2 {:.2} | node {:.2}; \
         node over tls+h2 = {:+.0} % time (target < 15 %)",
        load_average(),
        gbps(h2_only),
        gbps(tls_only),
        gbps(tls_h2),
        gbps(whole),
        100.0 * (whole.as_secs_f64() / tls_h2.as_secs_f64() - 1.0),
    );
}

fn tunnel_churn(c: &mut Criterion) {
    let mut group = c.benchmark_group("tunnel-churn");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(FLOWS as u64));
    let engine = timed(&mut group, "h2", || {
        black_box(churn::run(FLOWS));
    });
    let mut pair = NodePair::new(TargetMode::Echo);
    // Warm the pool: the first flow pays for the mTLS handshake.
    pair.echo_flow(&churn::PAYLOAD);
    let whole = timed(&mut group, "node", || {
        black_box(node::churn(&mut pair, FLOWS, &churn::PAYLOAD));
    });
    group.finish();
    let rate = |d: Duration| FLOWS as f64 / d.as_secs_f64();
    println!(
        "tunnel-churn (per second, medians, load {}): h2 streams {:.0} | node flows {:.0} \
         on {} pooled connection(s)",
        load_average(),
        rate(engine),
        rate(whole),
        pair.pooled_connections(),
    );
}

criterion_group!(benches, tunnel_bulk, tunnel_churn);
criterion_main!(benches);
