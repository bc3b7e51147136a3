//! Faults delay or cut connections but never corrupt a stream: partitions
//! (full and one-way), clogged links, black holes.

mod common;

use core::time::Duration;

use common::{client_server_world, run_quiet, two_hosts};
use warren_sim::app::{Endpoint, ServerMode};
use warren_sim::net::HostId;
use warren_sim::net::{ConnectError, LinkConfig, NetConfig, NetEvent};
use warren_sim::world::{RunEnd, World};

/// 1 MB/s links, so a transfer of a few hundred kB is still running when
/// the fault strikes.
fn slow_config() -> NetConfig {
    NetConfig {
        link: LinkConfig {
            bandwidth: 1_000_000,
            latency: Duration::from_millis(2),
            ..LinkConfig::default()
        },
        window: 64 * 1024,
        ..NetConfig::default()
    }
}

fn at(world: &World<Endpoint>, plus: Duration) -> warren_proto::time::Instant {
    world.now() + plus
}

/// (bytes the server verified, bytes of echo the client verified)
fn progress(world: &World<Endpoint>, server: HostId, client: HostId) -> (u64, u64) {
    let s = world.app(server).unwrap().server().unwrap().verified();
    let c = world.app(client).unwrap().client().unwrap().echo.verified();
    (s, c)
}

#[test]
fn partition_stops_a_stream_and_healing_completes_it() {
    let total = 500_000;
    let (mut world, server, clients) =
        client_server_world(1, slow_config(), ServerMode::Echo, &[(42, total, 10_000)]);
    let client = clients[0];
    world.run_until(at(&world, Duration::from_millis(100)), 10_000_000);
    let fault = world.net_mut().partition(&[server], &[client]);
    // What was in flight lands within a few latencies; after that nothing.
    world.run_until(at(&world, Duration::from_secs(1)), 10_000_000);
    let frozen = progress(&world, server, client);
    assert!(frozen.0 > 0 && frozen.0 < total, "{frozen:?}");
    assert_eq!(
        world.run_until(at(&world, Duration::from_secs(30)), 10_000_000),
        RunEnd::Idle,
        "a partitioned stream schedules nothing"
    );
    assert_eq!(progress(&world, server, client), frozen);
    world.net_mut().heal(fault);
    assert_eq!(world.run_until_idle(10_000_000), RunEnd::Idle);
    assert_eq!(progress(&world, server, client), (total, total));
    let c = world.app(client).unwrap().client().unwrap();
    assert!(c.read_closed && !c.reset && c.echo.mismatch().is_none());
    assert_eq!(world.net().open_connections(), 0);
}

#[test]
fn one_way_partition_stops_only_its_direction() {
    let total = 300_000;
    let (mut world, server, clients) =
        client_server_world(2, slow_config(), ServerMode::Sink, &[(43, total, 4_000)]);
    let client = clients[0];
    world.run_until(at(&world, Duration::from_millis(50)), 10_000_000);
    let fault = world.net_mut().partition_one_way(&[server], &[client]);
    world.run_until(at(&world, Duration::from_secs(20)), 10_000_000);
    // Upstream completes; the server's FIN cannot reach the client.
    assert_eq!(progress(&world, server, client).0, total);
    let c = world.app(client).unwrap().client().unwrap();
    assert!(!c.read_closed);
    world.net_mut().heal(fault);
    assert_eq!(world.run_until_idle(10_000_000), RunEnd::Idle);
    assert!(world.app(client).unwrap().client().unwrap().read_closed);
    assert_eq!(world.net().open_connections(), 0);
}

/// With the echo direction cut, backpressure stops the upstream too: the
/// server holds at most its echo window plus one delivery beyond what the
/// client got back.
#[test]
fn one_way_partition_backpressures_an_echo() {
    let total = 2_000_000;
    let config = slow_config();
    let (mut world, server, clients) =
        client_server_world(2, config, ServerMode::Echo, &[(44, total, 4_000)]);
    let client = clients[0];
    world.run_until(at(&world, Duration::from_millis(50)), 10_000_000);
    let fault = world.net_mut().partition_one_way(&[server], &[client]);
    world.run_until(at(&world, Duration::from_secs(5)), 10_000_000);
    let (up, down) = progress(&world, server, client);
    assert!(up > down, "the server received after the cut");
    assert!(up - down <= 2 * config.window as u64, "{up} - {down}");
    assert_eq!(
        world.run_until(at(&world, Duration::from_secs(60)), 10_000_000),
        RunEnd::Idle
    );
    assert_eq!(progress(&world, server, client), (up, down));
    world.net_mut().heal(fault);
    assert_eq!(world.run_until_idle(10_000_000), RunEnd::Idle);
    assert_eq!(progress(&world, server, client), (total, total));
    assert_eq!(world.net().open_connections(), 0);
}

#[test]
fn clogged_link_holds_bytes_until_unclogged() {
    let (mut net, a, b) = two_hosts(3, NetConfig::default());
    net.listen(b, 80).unwrap();
    let c = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    run_quiet(&mut net);
    net.clog(a, b);
    net.write(c, b"held back").unwrap();
    assert!(run_quiet(&mut net).is_empty());
    net.unclog(a, b);
    let log = run_quiet(&mut net);
    assert_eq!(common::received_by(&log, b), b"held back");
}

#[test]
fn connect_retries_through_a_partition_that_heals_in_time() {
    let (mut net, a, b) = two_hosts(4, NetConfig::default());
    net.listen(b, 80).unwrap();
    let fault = net.partition(&[a], &[b]);
    let c = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    // Retries at 1 s, 2 s, 4 s... run to 3.5 s, heal, and the 7 s retry wins.
    while net
        .next_event_time()
        .is_some_and(|t| t.as_nanos() < 3_500_000_000)
    {
        net.step();
        assert!(common::drain(&mut net).is_empty());
    }
    net.heal(fault);
    let mut connected_at = None;
    while net.step() {
        for (h, ev) in common::drain(&mut net) {
            if h == a
                && ev
                    == (NetEvent::Connected {
                        sock: c,
                        result: Ok(()),
                    })
            {
                connected_at = Some(net.now());
            }
        }
    }
    let t = connected_at.expect("never connected").as_nanos();
    assert!(
        (7_000_000_000..8_000_000_000).contains(&t),
        "connected at {t}"
    );
    // SYNs at 0 s, 1 s and 3 s met the partition; the one at 7 s got through.
    assert_eq!(net.stats().syn_drops, 3);
    assert_eq!((net.stats().connects, net.stats().accepted), (1, 1));
}

#[test]
fn black_holes_time_out_and_unknown_addresses_are_unreachable() {
    let config = NetConfig::default();
    let (mut net, a, b) = two_hosts(5, config);
    net.listen(b, 80).unwrap();
    net.set_black_hole(b, true);
    let to_hole = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    let to_nowhere = net.connect(a, "10.9.9.9:80".parse().unwrap()).unwrap();
    let log = run_quiet(&mut net);
    let failed = |sock, error| {
        (
            a,
            NetEvent::Connected {
                sock,
                result: Err(error),
            },
        )
    };
    assert_eq!(
        log,
        vec![
            failed(to_nowhere, ConnectError::Unreachable),
            failed(to_hole, ConnectError::TimedOut)
        ]
    );
    assert_eq!(
        net.now().as_nanos(),
        config.connect_timeout.as_nanos() as u64,
        "SYN retries stop at the deadline"
    );
    assert_eq!(net.open_connections(), 0);
    assert_eq!(net.stats().connect_failures, 2);
    // Once the host is back, connecting works.
    net.set_black_hole(b, false);
    let again = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    let log = run_quiet(&mut net);
    assert!(log.contains(&(
        a,
        NetEvent::Connected {
            sock: again,
            result: Ok(())
        }
    )));
}
