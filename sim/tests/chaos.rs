//! Liveness under faults: streams survive random partitions, one-way cuts,
//! clogs and black holes of a few seconds each, and finish exactly once
//! everything heals.

mod common;

use core::time::Duration;

use common::{assert_echoes_complete, client_server_world};
use warren_sim::app::ServerMode;
use warren_sim::net::{FaultId, HostId, LinkConfig, NetConfig};
use warren_sim::rng::{Seed, SimRng};
use warren_sim::world::RunEnd;

/// A random non-empty subset of `hosts`.
fn subset(rng: &mut SimRng, hosts: &[HostId]) -> Vec<HostId> {
    let picked: Vec<HostId> = hosts.iter().copied().filter(|_| rng.chance(1, 2)).collect();
    if picked.is_empty() {
        vec![*rng.pick(hosts).unwrap()]
    } else {
        picked
    }
}

/// An injected fault, remembered so it can be undone.
enum Fault {
    Cut(FaultId),
    Clog(HostId, HostId),
    Hole(HostId),
}

#[test]
fn streams_finish_exactly_after_random_faults_heal() {
    for seed in 0..24u64 {
        let mut rng = Seed(seed).stream("test.chaos");
        let config = NetConfig {
            link: LinkConfig {
                latency: Duration::from_micros(rng.range_inclusive(100, 20_000)),
                jitter: Duration::from_micros(rng.range_inclusive(0, 5_000)),
                bandwidth: *rng.pick(&[1_000_000u64, 20_000_000, 0]).unwrap(),
                min_segment: 1,
                max_segment: rng.range_usize(1, 20_000),
                coalesce: Duration::from_micros(rng.range_inclusive(0, 1_000)),
            },
            window: rng.range_usize(1_000, 100_000),
            ..NetConfig::default()
        };
        let clients: Vec<(u64, u64, usize)> = (0..6)
            .map(|i| {
                (
                    seed << 8 | i,
                    rng.range_inclusive(8, 400_000),
                    rng.range_usize(1, 40_000),
                )
            })
            .collect();
        let (mut world, server, client_hosts) =
            client_server_world(seed, config, ServerMode::Echo, &clients);
        let mut all = client_hosts.clone();
        all.push(server);
        for _ in 0..rng.range_inclusive(1, 6) {
            let start = world.now() + Duration::from_millis(rng.range_inclusive(0, 100));
            world.run_until(start, 50_000_000);
            let last = Duration::from_millis(rng.range_inclusive(1, 5_000));
            let a = subset(&mut rng, &all);
            let b = subset(&mut rng, &all);
            let net = world.net_mut();
            let fault = match rng.below(4) {
                0 => Fault::Cut(net.partition(&a, &b)),
                1 => Fault::Cut(net.partition_one_way(&a, &b)),
                2 => {
                    net.clog(a[0], b[0]);
                    Fault::Clog(a[0], b[0])
                }
                _ => {
                    net.set_black_hole(a[0], true);
                    Fault::Hole(a[0])
                }
            };
            let end = world.now() + last;
            world.run_until(end, 50_000_000);
            let net = world.net_mut();
            match fault {
                Fault::Cut(id) => net.heal(id),
                Fault::Clog(from, to) => net.unclog(from, to),
                Fault::Hole(host) => net.set_black_hole(host, false),
            }
        }
        assert_eq!(
            world.run_until_idle(50_000_000),
            RunEnd::Idle,
            "seed {seed}"
        );
        assert_echoes_complete(&world, server, &client_hosts, &clients, seed);
    }
}
