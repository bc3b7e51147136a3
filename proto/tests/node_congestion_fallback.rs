//! A flow sent to a new connection because the agent's only connection to
//! its peer is congested must not be refused when that new connection
//! fails before it comes up (its TCP connect refused or timing out, its
//! TLS handshake failing): the congested connection still has room, and
//! the flow falls back to it, waits there for the window, and completes.
//!
//! The windows are scaled down as in `node_congestion.rs`: four stalled
//! readers of 400 KiB hold the whole 1 MiB connection window.

mod node_harness;

use core::time::Duration;

use node_harness::certs::Ca;
use node_harness::config::{addr, pattern, DirectPair, HBONE_B, TUNNEL};
use node_harness::World;
use warren_proto::h2;
use warren_proto::node::{CloseReason, DialFailure, NodeConfig, NodeEvent};
use warren_proto::pool::PoolConfig;

const AGENT: usize = 0;
const B: usize = 1;

fn scaled_h2() -> h2::Config {
    h2::Config {
        initial_stream_window: 256 << 10,
        initial_connection_window: 1 << 20,
        ..h2::Config::default()
    }
}

/// The pair with scaled windows, the agent allowed four connections to B;
/// returns the pair's configurations too (to change B's later).
fn world() -> (World, DirectPair) {
    let mut pair = DirectPair::new(&Ca::new(1));
    pair.a.h2 = scaled_h2();
    pair.b.h2 = scaled_h2();
    // The agent gives up on a stalled handshake (2 s) well before B's own
    // timers for it (10 s) run out: only the agent ends it.
    pair.a.timeouts.tls_handshake = Duration::from_secs(2);
    pair.a.pool = PoolConfig {
        congestion_window: 64 << 10,
        max_connections_per_endpoint: 4,
        ..PoolConfig::default()
    };
    let mut world = pair.world();
    world.run();
    (world, pair)
}

/// The agent's fallback events, as (cause, streams already on the
/// connection that took the flow).
fn fallbacks(world: &World) -> Vec<(DialFailure, usize)> {
    world
        .events_of(AGENT)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::PoolFallback { cause, streams, .. } => Some((*cause, *streams)),
            _ => None,
        })
        .collect()
}

/// Stalls four readers (the agent's connection to B is congested), then
/// lets `break_dial` break what the agent's next dial to B will meet,
/// starts a fifth flow of 100 KiB (which asks for a second connection)
/// and runs, advancing time past the handshake timeout when `wait`, then
/// lets `repair` undo what must not outlive the failure. Checks that the
/// fifth flow fell back to the congested connection and completes once
/// the readers resume. Returns the world for more checks.
fn fifth_flow_survives(
    break_dial: impl FnOnce(&mut World, &DirectPair),
    wait: bool,
    repair: impl FnOnce(&mut World),
) -> World {
    let (mut world, pair) = world();
    let stalled = world.stall_readers(TUNNEL, 4, 400 << 10);
    assert_eq!(world.dials(AGENT, addr(HBONE_B)), 1);
    break_dial(&mut world, &pair);
    let data = pattern(100_000, 9);
    let fifth = world.connect_app(addr(TUNNEL));
    world.app_write(fifth, &data);
    world.app_shutdown(fifth);
    world.run();
    assert_eq!(
        world.dials(AGENT, addr(HBONE_B)),
        2,
        "the congestion asked for a second connection"
    );
    if wait {
        let late = world.now + pair.a.timeouts.tls_handshake + Duration::from_millis(1);
        world.advance_to(late);
        world.run();
    }
    repair(&mut world);
    world.run();
    assert_eq!(
        world.close_reasons(AGENT),
        Vec::<CloseReason>::new(),
        "no flow refused"
    );
    assert_eq!(
        fallbacks(&world),
        vec![(DialFailure::Failed, 4)],
        "one fallback, onto the stalled readers' connection"
    );
    assert_eq!(world.streams_per_connection(AGENT), vec![5]);
    assert_eq!(
        world.dials(AGENT, addr(HBONE_B)),
        2,
        "no redial for the flow"
    );
    world.resume_readers(&stalled);
    assert!(world.net.apps[fifth].received == data, "echoed byte-exact");
    assert!(world.net.apps[fifth].eof);
    for (i, (app, data)) in stalled.iter().enumerate() {
        assert!(world.net.apps[*app].received == *data, "flow {i} echoed");
    }
    assert_eq!(world.close_reasons(AGENT), vec![CloseReason::Done; 5]);
    world
}

/// B with its configuration changed by `change`.
fn reconfigure_b(world: &mut World, pair: &DirectPair, change: impl FnOnce(&mut NodeConfig)) {
    let mut b = pair.b.clone();
    change(&mut b);
    world.apply_config(B, b);
    world.run();
}

#[test]
fn a_refused_connect_sends_the_waiting_flow_back_to_the_congested_connection() {
    // B stops listening: the next connect to it is refused (RST); the
    // connection already accepted lives on.
    fifth_flow_survives(
        |world, pair| reconfigure_b(world, pair, |b| b.hbone_listen = None),
        false,
        |_| {},
    );
}

#[test]
fn a_connect_that_times_out_sends_the_waiting_flow_back_to_the_congested_connection() {
    // B's address swallows new connects: the agent gives up after its
    // handshake timeout.
    fifth_flow_survives(
        |world, _| {
            world.net.blackhole.insert(addr(HBONE_B));
        },
        true,
        |_| {},
    );
}

#[test]
fn a_handshake_that_times_out_sends_the_waiting_flow_back_to_the_congested_connection() {
    // B reads nothing for a while: the new connection's TCP connect
    // completes but its ClientHello goes unanswered until the agent's
    // handshake timeout. Then B reads again.
    fifth_flow_survives(
        |world, _| {
            world.net.held.insert(B);
        },
        true,
        |world| {
            world.net.held.remove(&B);
        },
    );
}

#[test]
fn a_failed_handshake_sends_the_waiting_flow_back_to_the_congested_connection() {
    // B now presents an identity the agent does not expect from it: the
    // new connection's handshake fails; the old one proved shop/echo.
    let world = fifth_flow_survives(
        |world, pair| {
            let impostor = Ca::new(1).identity(3, "shop", "impostor");
            reconfigure_b(world, pair, |b| b.identity = impostor);
        },
        false,
        |_| {},
    );
    let failed_handshakes = world
        .events_of(AGENT)
        .into_iter()
        .filter(|e| matches!(e, NodeEvent::HandshakeFailed { .. }))
        .count();
    assert_eq!(failed_handshakes, 1);
}

#[test]
fn without_a_connection_with_room_the_flow_is_still_refused() {
    // Nothing congested and nothing to fall back to: the first connection
    // to B fails and the flow is refused as before.
    let (mut world, _) = world();
    world.net.blackhole.insert(addr(HBONE_B));
    let app = world.connect_app(addr(TUNNEL));
    world.app_write(app, b"hello");
    world.run();
    let late = world.now + Duration::from_secs(3);
    world.advance_to(late);
    world.run();
    assert!(fallbacks(&world).is_empty());
    assert_eq!(
        world.close_reasons(AGENT),
        vec![CloseReason::NoHealthyEndpoint { endpoints: 1 }]
    );
}
