//! Criterion benchmarks of warren's HTTP/2 engine, with the `h2` crate run
//! side by side as the yardstick.
//!
//! Groups: `hpack` (decode and encode over the story corpus, blocks/s),
//! `frames` (FrameDecoder over mixed frames, frames/s), `bulk` (one stream,
//! bytes/s) and `churn` (1000 CONNECT open/echo/close cycles, streams/s).
//! `bulk` and `churn` print warren's speed over h2's at the end of the group.
//!
//! Copy-heavy figures move with buffer alignment under glibc's `rep movsb`
//! (see `shared/notes/rust-anchors.md`); compare runs made with the same
//! `GLIBC_TUNABLES`, which this bench prints.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use warren_benches::bulk::WarrenBulk;
use warren_benches::reference::{self, H2Bulk};
use warren_benches::samples::Samples;
use warren_benches::{churn, corpus, frames, MIB};
use warren_proto::h2::frame::FrameDecoder;

/// Bytes moved per bulk iteration.
const BULK_BYTES: u64 = 64 * MIB as u64;
/// Streams per churn iteration (one fresh connection each).
const CHURN_STREAMS: usize = 1000;

fn hpack(c: &mut Criterion) {
    print_tunables();
    let decode = corpus::decode_corpus();
    let encode = corpus::encode_corpus();
    corpus::verify(&decode, &encode);
    let mut group = c.benchmark_group("hpack");
    group.throughput(Throughput::Elements(corpus::block_count(&decode) as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            corpus::decode_all(black_box(&decode), |_, fields| {
                black_box(fields);
            })
        })
    });
    group.throughput(Throughput::Elements(corpus::block_count(&encode) as u64));
    group.bench_function("encode", |b| {
        b.iter(|| {
            corpus::encode_all(black_box(&encode), |_, block| {
                black_box(block);
            })
        })
    });
    group.finish();
}

fn frame_decoding(c: &mut Criterion) {
    const ROUNDS: usize = 1000;
    let input = frames::mixed(ROUNDS);
    let expected = ROUNDS * frames::FRAMES_PER_ROUND;
    assert_eq!(
        frames::count(&mut FrameDecoder::new(frames::MAX_FRAME_SIZE), &input),
        expected
    );
    let mut group = c.benchmark_group("frames");
    group.throughput(Throughput::Elements(expected as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut decoder = FrameDecoder::new(frames::MAX_FRAME_SIZE);
            frames::count(&mut decoder, black_box(&input))
        })
    });
    group.finish();
}

fn heavy_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group
}

fn bulk(c: &mut Criterion) {
    let mut group = heavy_group(c, "bulk");
    group.throughput(Throughput::Bytes(BULK_BYTES));
    let (mut ours, mut theirs) = (Samples::default(), Samples::default());
    let mut warren = WarrenBulk::new();
    group.bench_function("warren", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                warren.transfer(BULK_BYTES);
            }
            ours.record(iters, start.elapsed())
        })
    });
    let mut h2 = H2Bulk::new();
    group.bench_function("h2", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                h2.transfer(BULK_BYTES);
            }
            theirs.record(iters, start.elapsed())
        })
    });
    group.finish();
    let gbps = |d: Duration| BULK_BYTES as f64 / d.as_secs_f64() / 1e9;
    let (w, h) = (ours.median(), theirs.median());
    println!(
        "bulk: warren {:.2} GB/s, h2 {:.2} GB/s (medians), warren/h2 = {:.2}",
        gbps(w),
        gbps(h),
        h.as_secs_f64() / w.as_secs_f64()
    );
}

fn stream_churn(c: &mut Criterion) {
    let mut group = heavy_group(c, "churn");
    group.throughput(Throughput::Elements(CHURN_STREAMS as u64));
    let (mut ours, mut theirs) = (Samples::default(), Samples::default());
    group.bench_function("warren", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(churn::run(CHURN_STREAMS));
            }
            ours.record(iters, start.elapsed())
        })
    });
    group.bench_function("h2", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(reference::churn(CHURN_STREAMS));
            }
            theirs.record(iters, start.elapsed())
        })
    });
    group.finish();
    let rate = |d: Duration| CHURN_STREAMS as f64 / d.as_secs_f64();
    let (w, h) = (ours.median(), theirs.median());
    println!(
        "churn: warren {:.0} streams/s, h2 {:.0} streams/s (medians), warren/h2 = {:.2}",
        rate(w),
        rate(h),
        h.as_secs_f64() / w.as_secs_f64()
    );
}

fn print_tunables() {
    println!(
        "GLIBC_TUNABLES={}",
        std::env::var("GLIBC_TUNABLES").unwrap_or_else(|_| "(unset)".into())
    );
}

criterion_group!(benches, hpack, frame_decoding, bulk, stream_churn);
criterion_main!(benches);
