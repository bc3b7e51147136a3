//! Byte streams arrive exactly as sent, whatever the segmentation, latency,
//! jitter, bandwidth and window.

mod common;

use core::time::Duration;

use common::{assert_echoes_complete, client_server_world, drain, run_quiet, two_hosts};
use warren_sim::app::{fill_stream, ServerMode};
use warren_sim::net::{LinkConfig, NetConfig, NetEvent};
use warren_sim::rng::{Seed, SimRng};
use warren_sim::world::RunEnd;

/// A network configuration drawn from `rng`, from tiny windows and
/// one-byte segments to fast links with large ones.
fn random_config(rng: &mut SimRng) -> NetConfig {
    let max_segment = *rng.pick(&[1usize, 7, 536, 1460, 16_384, 70_000]).unwrap();
    NetConfig {
        link: LinkConfig {
            latency: Duration::from_micros(rng.range_inclusive(0, 5_000)),
            jitter: Duration::from_micros(rng.range_inclusive(0, 3_000)),
            bandwidth: *rng.pick(&[0u64, 1_000_000, 100_000_000]).unwrap(),
            min_segment: rng.range_usize(1, max_segment),
            max_segment,
            coalesce: Duration::from_micros(rng.range_inclusive(0, 500)),
        },
        window: *rng.pick(&[1usize, 100, 4096, 65_536, 1 << 20]).unwrap(),
        ..NetConfig::default()
    }
}

/// Property over seeds: for every random network, every client's stream
/// reaches the echo server byte for byte, the echo returns byte for byte,
/// both sides see the half-close, and no connection is left behind.
#[test]
fn echo_streams_arrive_exactly_over_random_networks() {
    for seed in 0..200u64 {
        let mut rng = Seed(seed).stream("test.config");
        let config = random_config(&mut rng);
        // Small windows and one-byte segments make every byte an event; keep
        // those runs short.
        let cap = if config.window < 4096 || config.link.max_segment < 100 {
            3_000
        } else {
            200_000
        };
        let clients: Vec<(u64, u64, usize)> = (0..rng.range_inclusive(1, 3))
            .map(|i| {
                (
                    seed * 100 + i,
                    rng.range_inclusive(8, cap),
                    rng.range_usize(1, 50_000),
                )
            })
            .collect();
        let (mut world, server, client_hosts) =
            client_server_world(seed, config, ServerMode::Echo, &clients);
        assert_eq!(
            world.run_until_idle(50_000_000),
            RunEnd::Idle,
            "seed {seed}"
        );
        assert_echoes_complete(&world, server, &client_hosts, &clients, seed);
    }
}

/// Several clients share one sink and the links' bandwidth.
#[test]
fn sink_verifies_concurrent_streams() {
    let config = NetConfig {
        link: LinkConfig {
            bandwidth: 10_000_000,
            ..LinkConfig::default()
        },
        ..NetConfig::default()
    };
    let clients = [(11, 300_000, 9_000), (12, 1, 1), (13, 120_000, 65_536)];
    let (mut world, server, _) = client_server_world(5, config, ServerMode::Sink, &clients);
    assert_eq!(world.run_until_idle(10_000_000), RunEnd::Idle);
    let srv = world.app(server).unwrap().server().unwrap();
    // The one-byte client never completes its header: 1 byte checked.
    assert_eq!(srv.verified(), 300_000 + 1 + 120_000);
    let stats = world.net().stats();
    assert_eq!(stats.bytes_delivered, srv.verified());
    assert_eq!((stats.connects, stats.accepted, stats.resets), (3, 3, 0));
    assert!(srv.flows.values().all(|f| f.verifier.mismatch().is_none()));
    assert_eq!(world.net().open_connections(), 0);
    // 420 kB over 10 MB/s links cannot have taken less than 30 ms.
    assert!(world.now().as_nanos() >= 30_000_000);
}

/// Random segmentation both splits single writes and merges neighbouring
/// ones, and bandwidth spaces the segments out in time.
#[test]
fn write_boundaries_are_split_and_merged() {
    let config = NetConfig {
        link: LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::ZERO,
            bandwidth: 1_000_000,
            min_segment: 1,
            max_segment: 3_000,
            coalesce: Duration::ZERO,
        },
        ..NetConfig::default()
    };
    let (mut net, a, b) = two_hosts(3, config);
    net.listen(b, 80).unwrap();
    let sock = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    let log = run_quiet(&mut net);
    assert!(log.iter().any(|(h, e)| *h == a
        && *e
            == NetEvent::Connected {
                sock,
                result: Ok(())
            }));
    let start = net.now();
    let mut sent = vec![0u8; 100_000];
    fill_stream(9, 0, &mut sent);
    for chunk in sent.chunks(1_000) {
        assert_eq!(net.write(sock, chunk), Ok(1_000));
    }
    let mut sizes = Vec::new();
    let mut got = Vec::new();
    while net.step() {
        for (h, ev) in drain(&mut net) {
            if let (true, NetEvent::Received { data, .. }) = (h == b, ev) {
                sizes.push(data.len());
                got.extend(data);
            }
        }
    }
    assert_eq!(got, sent);
    assert!(sizes.iter().any(|n| *n < 1_000), "no write was split");
    assert!(sizes.iter().any(|n| *n > 1_000), "no writes were merged");
    // 100 kB at 1 MB/s: at least 100 ms on the wire plus 1 ms latency.
    let took = net.now().as_nanos() - start.as_nanos();
    assert!(took >= 101_000_000, "took {took} ns");
}

/// One direction of the quickcheck property's transfer.
struct Flow {
    sent: Vec<u8>,
    written: usize,
    blocked: bool,
    shut: bool,
    got: Vec<u8>,
    eof: bool,
    paused: bool,
}

impl Flow {
    fn new(seed: u64, len: usize) -> Flow {
        let mut sent = vec![0u8; len];
        fill_stream(seed, 0, &mut sent);
        Flow {
            sent,
            written: 0,
            blocked: false,
            shut: false,
            got: Vec::new(),
            eof: false,
            paused: false,
        }
    }
}

/// Quickcheck property: both directions of one connection, with writers
/// offering random chunks and readers pausing and resuming at random,
/// over a random network. At every step the bytes a writer got in minus
/// the bytes its reader was handed never exceed the window; in the end
/// each side received exactly what the other sent, then end of stream.
#[test]
fn quickcheck_both_directions_with_random_pauses() {
    fn prop(seed: u64, window: u16, max_segment: u16, len_a: u16, len_b: u16) -> bool {
        let window = usize::from(window % 5000) + 1;
        let max_segment = usize::from(max_segment % 3000) + 1;
        let config = NetConfig {
            link: LinkConfig {
                max_segment,
                bandwidth: 5_000_000,
                ..LinkConfig::default()
            },
            window,
            ..NetConfig::default()
        };
        let (mut net, a, b) = two_hosts(seed, config);
        net.listen(b, 80).unwrap();
        let ca = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
        let log = run_quiet(&mut net);
        let Some(cb) = log.iter().find_map(|(_, e)| match e {
            NetEvent::Accepted { sock, .. } => Some(*sock),
            _ => None,
        }) else {
            return false;
        };
        let socks = [ca, cb];
        // flows[i] goes from socks[i] to socks[1 - i].
        let mut flows = [
            Flow::new(seed, usize::from(len_a) * 4),
            Flow::new(!seed, usize::from(len_b) * 4),
        ];
        let mut rng = Seed(seed).stream("test.driver");
        for _ in 0..2_000_000 {
            for i in 0..2 {
                let f = &mut flows[i];
                if !f.blocked && f.written < f.sent.len() {
                    let n = rng.range_usize(1, 3 * window).min(f.sent.len() - f.written);
                    let took = net
                        .write(socks[i], &f.sent[f.written..f.written + n])
                        .unwrap();
                    f.written += took;
                    f.blocked = took < n;
                }
                if f.written == f.sent.len() && !f.shut {
                    f.shut = true;
                    net.shutdown_write(socks[i]).unwrap();
                }
                if rng.chance(1, 10) {
                    let reader = socks[1 - i];
                    let f = &mut flows[i];
                    f.paused = !f.paused;
                    if f.paused {
                        net.pause_read(reader).unwrap();
                    } else {
                        net.resume_read(reader).unwrap();
                    }
                }
            }
            let progressed = net.step();
            for (_, ev) in drain(&mut net) {
                match ev {
                    NetEvent::Received { sock, data } => {
                        flows[usize::from(sock == socks[0])].got.extend(data)
                    }
                    NetEvent::ReadClosed { sock } => {
                        flows[usize::from(sock == socks[0])].eof = true
                    }
                    NetEvent::Writable { sock } => {
                        flows[usize::from(sock == socks[1])].blocked = false
                    }
                    _ => return false,
                }
            }
            if flows.iter().any(|f| f.written - f.got.len() > window) {
                return false;
            }
            if !progressed {
                // Quiet: only paused readers can hold things up.
                for i in 0..2 {
                    if flows[i].paused {
                        flows[i].paused = false;
                        net.resume_read(socks[1 - i]).unwrap();
                    }
                }
                if flows.iter().all(|f| f.eof) {
                    break;
                }
            }
        }
        flows
            .iter()
            .all(|f| f.eof && f.got == f.sent && f.written == f.sent.len())
    }
    quickcheck::QuickCheck::new()
        .tests(150)
        .quickcheck(prop as fn(u64, u16, u16, u16, u16) -> bool);
}
