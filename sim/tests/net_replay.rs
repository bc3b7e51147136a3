//! A seed fixes the whole run: the same seed replays the same trace, a
//! different seed makes different choices.

mod common;

use core::time::Duration;

use common::client_server_world;
use warren_sim::app::ServerMode;
use warren_sim::net::{LinkConfig, NetConfig};
use warren_sim::rng::Seed;
use warren_sim::trace::TraceHash;
use warren_sim::world::RunEnd;

/// Three echo clients over a jittery link, with a partition placed and
/// healed at seed-chosen times. Returns the trace hash and the bytes the
/// server verified.
fn scenario(seed: u64) -> (TraceHash, u64) {
    let config = NetConfig {
        link: LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::from_micros(800),
            bandwidth: 20_000_000,
            min_segment: 1,
            max_segment: 9_000,
            coalesce: Duration::from_micros(200),
        },
        window: 32 * 1024,
        ..NetConfig::default()
    };
    let clients = [(1, 100_000, 5_000), (2, 70_000, 30_000), (3, 8, 8)];
    let (mut world, server, hosts) = client_server_world(seed, config, ServerMode::Echo, &clients);
    let mut rng = Seed(seed).stream("test.faults");
    let cut_at = world.now() + Duration::from_micros(rng.range_inclusive(0, 5_000));
    world.run_until(cut_at, 10_000_000);
    let fault = world.net_mut().partition(&[server], &hosts[..2]);
    let heal_at = world.now() + Duration::from_millis(rng.range_inclusive(1, 3_000));
    world.run_until(heal_at, 10_000_000);
    world.net_mut().heal(fault);
    assert_eq!(world.run_until_idle(10_000_000), RunEnd::Idle);
    let verified = world.app(server).unwrap().server().unwrap().verified();
    (world.net().trace_hash(), verified)
}

#[test]
fn same_seed_same_trace_different_seed_different_trace() {
    let mut hashes = Vec::new();
    for seed in 0..6u64 {
        let first = scenario(seed);
        let second = scenario(seed);
        println!("seed {seed} {}", first.0);
        assert_eq!(first, second, "seed {seed} did not replay");
        assert_eq!(first.1, 100_000 + 70_000 + 8, "seed {seed}");
        hashes.push(first.0);
    }
    let mut distinct = hashes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), hashes.len(), "two seeds gave one trace");
}
