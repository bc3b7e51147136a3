//! Host-level faults: a frozen process and a skewed clock.

mod common;

use core::time::Duration;

use common::{client_server_world, run_quiet, two_hosts};
use warren_proto::time::Instant;
use warren_sim::app::ServerMode;
use warren_sim::net::{HostId, Net, NetConfig, NetEvent};
use warren_sim::world::{Application, RunEnd, World};

#[test]
fn a_frozen_reader_fills_its_window_and_catches_up_at_thaw() {
    let config = NetConfig {
        window: 50_000,
        ..NetConfig::default()
    };
    let total = 1_000_000;
    let (mut world, server, clients) =
        client_server_world(1, config, ServerMode::Sink, &[(5, total, 7_000)]);
    let client = clients[0];
    world.run_until(Instant(2_000_000), 1_000_000);
    world.net_mut().freeze_host(server);
    world.run_until(Instant(10_000_000_000), 1_000_000);
    let verified = world.app(server).unwrap().server().unwrap().verified();
    let written = world.app(client).unwrap().client().unwrap().written();
    assert!(verified < total);
    assert_eq!(
        written - verified,
        config.window as u64,
        "exactly one window waits"
    );
    world.net_mut().thaw_host(server);
    assert_eq!(world.run_until_idle(1_000_000), RunEnd::Idle);
    assert_eq!(
        world.app(server).unwrap().server().unwrap().verified(),
        total
    );
    assert_eq!(world.net().open_connections(), 0);
}

#[test]
fn a_frozen_host_hears_of_connections_only_at_thaw() {
    let (mut net, a, b) = two_hosts(2, NetConfig::default());
    net.listen(b, 80).unwrap();
    net.freeze_host(b);
    let c = net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    let log = run_quiet(&mut net);
    // The kernel completes the handshake; the process knows nothing.
    assert_eq!(
        log,
        vec![(
            a,
            NetEvent::Connected {
                sock: c,
                result: Ok(())
            }
        )]
    );
    net.write(c, b"while you were out").unwrap();
    assert!(run_quiet(&mut net).is_empty());
    net.thaw_host(b);
    let log = run_quiet(&mut net);
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(matches!(log[0], (h, NetEvent::Accepted { .. }) if h == b));
    assert!(
        matches!(&log[1], (h, NetEvent::Received { data, .. }) if *h == b && data == b"while you were out")
    );
}

/// Records when its timer fired; ticks every 500 ms.
struct Ticker {
    next: Instant,
    fired: Vec<Instant>,
}

impl Application for Ticker {
    fn start(&mut self, _net: &mut Net, _host: HostId) {}
    fn on_event(&mut self, _net: &mut Net, _host: HostId, _event: NetEvent) {}
    fn poll_timeout(&self) -> Option<Instant> {
        (self.fired.len() < 8).then_some(self.next)
    }
    fn on_timeout(&mut self, net: &mut Net, _host: HostId) {
        self.fired.push(net.now());
        self.next = net.now() + Duration::from_millis(500);
    }
}

#[test]
fn a_frozen_host_s_timers_wait_for_the_thaw() {
    let (net, a, _b) = two_hosts(3, NetConfig::default());
    let mut world = World::new(net);
    world.place(
        a,
        Ticker {
            next: Instant(500_000_000),
            fired: Vec::new(),
        },
    );
    world.run_until(Instant(1_200_000_000), 1_000);
    world.net_mut().freeze_host(a);
    world.run_until(Instant(3_000_000_000), 1_000);
    world.net_mut().thaw_host(a);
    assert_eq!(world.run_until_idle(1_000), RunEnd::Idle);
    let ms: Vec<u64> = world
        .app(a)
        .unwrap()
        .fired
        .iter()
        .map(|t| t.as_nanos() / 1_000_000)
        .collect();
    assert_eq!(ms, [500, 1000, 3000, 3500, 4000, 4500, 5000, 5500]);
}

#[test]
fn skewed_clocks_convert_both_ways() {
    let (mut net, a, b) = two_hosts(4, NetConfig::default());
    net.listen(b, 80).unwrap();
    net.connect(a, "10.0.0.2:80".parse().unwrap()).unwrap();
    run_quiet(&mut net);
    let now = net.now();
    net.set_clock_offset(a, 5_000_000_000);
    net.set_clock_offset(b, -(now.as_nanos() as i64) - 1);
    assert_eq!(net.host_now(a).as_nanos(), now.as_nanos() + 5_000_000_000);
    assert_eq!(net.host_now(b), Instant::ZERO, "saturates at the origin");
    let deadline = net.host_now(a) + Duration::from_secs(1);
    assert_eq!(net.to_net_time(a, deadline), now + Duration::from_secs(1));
}

/// A host can run several applications; each gets only its own events.
#[test]
fn applications_share_a_host_over_loopback() {
    use std::net::SocketAddr;
    use warren_sim::app::{Endpoint, StreamClient, StreamServer};
    use warren_sim::rng::Seed;

    let (net, a, b) = two_hosts(5, NetConfig::default());
    let mut world = World::new(net);
    let rng = |i| Seed(5).stream_indexed("writes", i);
    world.place(a, Endpoint::Server(StreamServer::new(7, ServerMode::Echo)));
    let local: SocketAddr = "127.0.0.1:7".parse().unwrap();
    let remote: SocketAddr = "10.0.0.1:7".parse().unwrap();
    world.place(
        a,
        Endpoint::Client(StreamClient::new(local, 1, 90_000, 5_000, rng(0))),
    );
    world.place(
        a,
        Endpoint::Client(StreamClient::new(local, 2, 70_000, 9_000, rng(1))),
    );
    world.place(
        b,
        Endpoint::Client(StreamClient::new(remote, 3, 50_000, 3_000, rng(2))),
    );
    assert_eq!(world.run_until_idle(1_000_000), RunEnd::Idle);
    let server = world.app(a).unwrap().server().unwrap();
    assert_eq!(server.flows.len(), 3);
    assert_eq!(server.verified(), 90_000 + 70_000 + 50_000);
    let clients = world.apps(a)[1..].iter().chain(world.apps(b));
    for (c, (seed, total)) in clients.zip([(1, 90_000), (2, 70_000), (3, 50_000)]) {
        let c = c.client().unwrap();
        assert_eq!((c.echo.seed(), c.echo.verified()), (Some(seed), total));
        assert!(c.read_closed && !c.reset);
    }
    assert_eq!(world.net().open_connections(), 0);
}

/// Crash and restart: the old connection resets, a new one works.
#[test]
fn a_restarted_server_serves_new_connections() {
    use std::net::SocketAddr;
    use warren_sim::app::{Endpoint, StreamClient, StreamServer};
    use warren_sim::rng::Seed;

    let (mut world, server, clients) = client_server_world(
        6,
        NetConfig::default(),
        ServerMode::Sink,
        &[(1, 50_000_000, 60_000)],
    );
    world.run_until(Instant(5_000_000), 1_000_000);
    world.net_mut().crash_host(server);
    let old = world.remove_apps(server);
    assert!(old[0].server().unwrap().verified() > 0);
    world.place(
        server,
        Endpoint::Server(StreamServer::new(7, ServerMode::Sink)),
    );
    assert_eq!(world.run_until_idle(1_000_000), RunEnd::Idle);
    let first = world.app(clients[0]).unwrap().client().unwrap();
    assert!(first.reset && first.written() < 50_000_000);
    assert!(world
        .app(server)
        .unwrap()
        .server()
        .unwrap()
        .flows
        .is_empty());
    let to: SocketAddr = "10.0.0.1:7".parse().unwrap();
    let rng = Seed(6).stream("second");
    world.place(
        clients[0],
        Endpoint::Client(StreamClient::new(to, 2, 10_000, 999, rng)),
    );
    assert_eq!(world.run_until_idle(1_000_000), RunEnd::Idle);
    assert_eq!(
        world.app(server).unwrap().server().unwrap().verified(),
        10_000
    );
    assert_eq!(world.net().open_connections(), 0);
}
