//! Shared set-up for the network tests.
#![allow(dead_code)] // each test file uses a different part

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use warren_sim::agents::Agents;
use warren_sim::app::{Endpoint, ServerMode, StreamClient, StreamServer};
use warren_sim::net::{HostId, Net, NetConfig, NetEvent};
use warren_sim::rng::Seed;
use warren_sim::world::World;

/// The virtual address of host number `n`.
pub fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
}

/// A network with hosts 10.0.0.1 (returned first) and 10.0.0.2.
pub fn two_hosts(seed: u64, config: NetConfig) -> (Net, HostId, HostId) {
    let mut net = Net::new(Seed(seed), config);
    let a = net.add_host(ip(1)).unwrap();
    let b = net.add_host(ip(2)).unwrap();
    (net, a, b)
}

/// Every event now waiting, in order.
pub fn drain(net: &mut Net) -> Vec<(HostId, NetEvent)> {
    std::iter::from_fn(|| net.poll_event()).collect()
}

/// Steps the network until quiet, collecting every event on the way.
pub fn run_quiet(net: &mut Net) -> Vec<(HostId, NetEvent)> {
    let mut log = drain(net);
    let mut steps = 0u64;
    while net.step() {
        log.extend(drain(net));
        steps += 1;
        assert!(steps < 10_000_000, "network never went quiet");
    }
    log
}

/// The bytes delivered to `host` in `log`, concatenated.
pub fn received_by(log: &[(HostId, NetEvent)], host: HostId) -> Vec<u8> {
    let mut out = Vec::new();
    for (h, ev) in log {
        if let (true, NetEvent::Received { data, .. }) = (*h == host, ev) {
            out.extend_from_slice(data);
        }
    }
    out
}

/// A world with an echo or sink server on host 10.0.0.1:port 7 and one
/// stream client per seed on the following hosts.
pub fn client_server_world(
    seed: u64,
    config: NetConfig,
    mode: ServerMode,
    clients: &[(u64, u64, usize)],
) -> (World<Endpoint>, HostId, Vec<HostId>) {
    let mut net = Net::new(Seed(seed), config);
    let server = net.add_host(ip(1)).unwrap();
    let mut client_hosts = Vec::new();
    for i in 0..clients.len() {
        client_hosts.push(net.add_host(ip(2 + i as u8)).unwrap());
    }
    let mut world = World::new(net);
    world.place(server, Endpoint::Server(StreamServer::new(7, mode)));
    for (i, (stream_seed, total, max_write)) in clients.iter().enumerate() {
        let rng = Seed(seed).stream_indexed("test.client.writes", i as u64);
        let client = StreamClient::new(
            SocketAddr::new(ip(1), 7),
            *stream_seed,
            *total,
            *max_write,
            rng,
        );
        world.place(client_hosts[i], Endpoint::Client(client));
    }
    (world, server, client_hosts)
}

/// Asserts that every client of an echo world completed: connected, the
/// server checked each stream whole and saw its FIN, each client got its
/// whole stream back and the FIN, nothing reset, no connection left.
pub fn assert_echoes_complete(
    world: &World<Endpoint>,
    server: HostId,
    client_hosts: &[HostId],
    clients: &[(u64, u64, usize)],
    seed: u64,
) {
    let srv = world.app(server).unwrap().server().unwrap();
    assert_eq!(srv.flows.len(), clients.len(), "seed {seed}");
    for flow in srv.flows.values() {
        let v = &flow.verifier;
        assert_eq!(v.mismatch(), None, "seed {seed}");
        let (_, total, _) = clients
            .iter()
            .find(|(s, _, _)| Some(*s) == v.seed())
            .expect("a stream the server did not expect");
        assert_eq!(v.verified(), *total, "seed {seed}");
        assert!(flow.read_closed && !flow.reset, "seed {seed}");
    }
    for (host, (stream_seed, total, _)) in client_hosts.iter().zip(clients) {
        let c = world.app(*host).unwrap().client().unwrap();
        assert_eq!(c.connected, Some(Ok(())), "seed {seed}");
        assert_eq!(c.written(), *total, "seed {seed}");
        assert_eq!(c.echo.seed(), Some(*stream_seed), "seed {seed}");
        assert_eq!(c.echo.verified(), *total, "seed {seed}");
        assert_eq!(c.echo.mismatch(), None, "seed {seed}");
        assert!(c.read_closed && !c.reset, "seed {seed}");
    }
    assert_eq!(world.net().open_connections(), 0, "seed {seed}: leak");
}

/// Every agent has closed all its flows and its host saw no error.
pub fn assert_no_flows_left(agents: &Agents) {
    for i in 0..agents.len() {
        let host = agents.node(i);
        assert_eq!(host.node().flow_count(), 0, "agent {i} leaks flows");
        assert!(
            host.host_errors.is_empty(),
            "agent {i}: {:?}",
            host.host_errors
        );
    }
}
