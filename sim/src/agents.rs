//! A full mesh of agents on the simulated network: the fixture that node
//! tests build on.
//!
//! Agent `i` runs on host `10.0.0.<i+1>` as `spiffe://mesh.test/ns/shop/sa/agent-<i>`,
//! serves HBONE on port [`HBONE_PORT`], exports `svc<i>.shop:80` to
//! [`SERVICE_PORT`] on its own loopback, and tunnels loopback port
//! `9000 + j` to `svc<j>.shop:80` for every other agent `j`. Tests place
//! servers on an agent's [`SERVICE_PORT`] and clients that dial
//! [`Agents::tunnel`], then step the world and look at both ends and at the
//! nodes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use warren_proto::front::Target as FrontTarget;
use warren_proto::h2;
use warren_proto::identity::SpiffeId;
use warren_proto::node::{Endpoint as MeshEndpoint, FrontConfig, FrontKind, NodeConfig};
use warren_proto::policy::{Export, Exports, ServiceName, Target};

use crate::app::{Endpoint, ServerMode, StreamClient, StreamServer};
use crate::net::{HostId, Net, NetConfig};
use crate::node_host::{NodeHost, SimApp};
use crate::peer::Peer;
use crate::pki::MeshPki;
use crate::rng::Seed;
use crate::world::World;

/// Where every agent serves HBONE.
pub const HBONE_PORT: u16 = 15008;
/// The loopback port every agent's exported service points at.
pub const SERVICE_PORT: u16 = 8080;
/// Tunnel to agent `j` listens on loopback port `TUNNEL_BASE + j`.
pub const TUNNEL_BASE: u16 = 9000;
/// The trust domain of the mesh.
pub const TRUST_DOMAIN: &str = "mesh.test";
/// Certificate lifetime: far beyond any test's virtual time.
const CERT_SECS: u64 = 86_400;

/// Where a test application was placed: its host and its position there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppRef {
    /// The host.
    pub host: HostId,
    /// The application's index among the host's applications.
    pub index: usize,
}

/// `n` agents in a full mesh over one simulated network.
pub struct Agents {
    world: World<SimApp>,
    hosts: Vec<HostId>,
    seed: Seed,
    /// Stream clients started so far (each draws from its own RNG stream).
    clients: u64,
}

fn host_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, (i + 1) as u8))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

fn service(i: usize) -> Result<ServiceName, String> {
    ServiceName::parse(&format!("svc{i}.shop")).map_err(|e| format!("{e:?}"))
}

impl Agents {
    /// The identity of agent `i`.
    pub fn identity(i: usize) -> SpiffeId {
        SpiffeId::new(TRUST_DOMAIN, "shop", &format!("agent-{i}"))
            .unwrap_or_else(|e| unreachable!("a fixed, valid id: {e:?}"))
    }

    /// The loopback address (on any agent's host) of the tunnel to agent `to`.
    pub fn tunnel(to: usize) -> SocketAddr {
        loopback(TUNNEL_BASE + to as u16)
    }

    /// Agent `i`'s configuration, with `h2` for its HTTP/2 connections.
    fn config(
        pki: &mut MeshPki,
        n: usize,
        i: usize,
        h2: &h2::Config,
    ) -> Result<NodeConfig, String> {
        let identity = pki.identity(&Agents::identity(i), &format!("node/{i}/0"), CERT_SECS, 0)?;
        let mut c = NodeConfig::new(identity);
        c.h2 = h2.clone();
        c.hbone_listen = Some(SocketAddr::new(host_ip(i), HBONE_PORT));
        c.exports = Exports::new(vec![Export {
            service: service(i)?,
            port: 80,
            target: Target::Addr(loopback(SERVICE_PORT)),
        }])
        .map_err(|e| format!("exports: {e:?}"))?;
        for j in (0..n).filter(|j| *j != i) {
            let to =
                FrontTarget::parse(&format!("svc{j}.shop:80")).map_err(|e| format!("{e:?}"))?;
            c.fronts.push(FrontConfig {
                listen: Agents::tunnel(j),
                kind: FrontKind::Tunnel { to },
            });
            let endpoint = MeshEndpoint {
                hbone: SocketAddr::new(host_ip(j), HBONE_PORT),
                identity: Agents::identity(j),
            };
            c.directory.insert(service(j)?, vec![endpoint]);
        }
        Ok(c)
    }

    /// `n` agents (at most 254) on a network with `net`'s settings, each
    /// node with `h2` as its HTTP/2 configuration. Certificates, TLS
    /// randomness and the network's choices all come from `seed`.
    pub fn new(seed: u64, n: usize, net: NetConfig, h2: h2::Config) -> Result<Agents, String> {
        if n > 254 {
            return Err(format!("{n} agents: at most 254"));
        }
        let mut pki = MeshPki::new(seed, TRUST_DOMAIN)?;
        let mut network = Net::new(Seed(seed), net);
        let mut hosts = Vec::new();
        for i in 0..n {
            hosts.push(network.add_host(host_ip(i)).map_err(|e| e.to_string())?);
        }
        let mut world = World::new(network);
        for (i, host) in hosts.iter().enumerate() {
            let config = Agents::config(&mut pki, n, i, &h2)?;
            world.place(*host, SimApp::Node(Box::new(NodeHost::new(config, false))));
        }
        Ok(Agents {
            world,
            hosts,
            seed: Seed(seed),
            clients: 0,
        })
    }

    /// How many agents.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Agent `i`'s host.
    pub fn host(&self, i: usize) -> HostId {
        self.hosts[i]
    }

    /// Agent `i`'s node.
    pub fn node(&self, i: usize) -> &NodeHost {
        self.world
            .app(self.hosts[i])
            .and_then(SimApp::node)
            .unwrap_or_else(|| unreachable!("every agent's host runs its node first"))
    }

    /// The world, for stepping and for the network.
    pub fn world(&self) -> &World<SimApp> {
        &self.world
    }

    /// The world, mutably.
    pub fn world_mut(&mut self) -> &mut World<SimApp> {
        &mut self.world
    }

    /// Places a test application on agent `i`'s host.
    pub fn place(&mut self, i: usize, app: Endpoint) -> AppRef {
        let host = self.hosts[i];
        self.world.place(host, SimApp::Endpoint(Box::new(app)));
        AppRef {
            host,
            index: self.world.apps(host).len() - 1,
        }
    }

    /// A checking server (echo or sink) on agent `i`'s service port.
    pub fn serve(&mut self, i: usize, mode: ServerMode) -> AppRef {
        self.place(i, Endpoint::Server(StreamServer::new(SERVICE_PORT, mode)))
    }

    /// A scripted peer on agent `i`'s service port.
    pub fn serve_peer(&mut self, i: usize, peer: Peer) -> AppRef {
        self.place(i, Endpoint::Peer(peer))
    }

    /// A client on agent `from`'s host sending `bytes` of a seeded stream
    /// through the tunnel to agent `to`, in writes of up to `max_write`.
    pub fn stream(&mut self, from: usize, to: usize, bytes: u64, max_write: usize) -> AppRef {
        let k = self.clients;
        self.clients += 1;
        let stream_seed = self.seed.stream_indexed("agents.stream", k).next_u64();
        let rng = self.seed.stream_indexed("agents.writes", k);
        let client = StreamClient::new(Agents::tunnel(to), stream_seed, bytes, max_write, rng);
        self.place(from, Endpoint::Client(client))
    }

    /// A scripted peer on agent `from`'s host (it dials what it was made
    /// with, usually [`Agents::tunnel`]).
    pub fn dial_peer(&mut self, from: usize, peer: Peer) -> AppRef {
        self.place(from, Endpoint::Peer(peer))
    }

    /// The test application at `at`.
    pub fn app(&self, at: AppRef) -> &Endpoint {
        self.world
            .apps(at.host)
            .get(at.index)
            .and_then(SimApp::endpoint)
            .unwrap_or_else(|| unreachable!("an AppRef names a placed test application"))
    }

    /// The stream client at `at`.
    pub fn client(&self, at: AppRef) -> &StreamClient {
        self.app(at)
            .client()
            .unwrap_or_else(|| panic!("{at:?} is not a stream client"))
    }

    /// The stream server at `at`.
    pub fn server(&self, at: AppRef) -> &StreamServer {
        self.app(at)
            .server()
            .unwrap_or_else(|| panic!("{at:?} is not a stream server"))
    }

    /// The scripted peer at `at`.
    pub fn peer(&self, at: AppRef) -> &Peer {
        self.app(at)
            .peer()
            .unwrap_or_else(|| panic!("{at:?} is not a scripted peer"))
    }

    /// Steps the world up to virtual time `until_ns` (or `max_steps`
    /// steps), calling `check` after every step; returns the steps taken.
    pub fn run_checked(
        &mut self,
        until_ns: u64,
        max_steps: u64,
        mut check: impl FnMut(&Agents),
    ) -> u64 {
        let deadline = warren_proto::time::Instant::from_nanos(until_ns);
        let mut steps = 0;
        while steps < max_steps {
            match self.world.next_time() {
                Some(t) if t <= deadline => {
                    self.world.step();
                    steps += 1;
                    check(self);
                }
                _ => break,
            }
        }
        steps
    }

    /// Steps the world up to virtual time `until_ns` (or `max_steps` steps).
    pub fn run(&mut self, until_ns: u64, max_steps: u64) -> u64 {
        self.run_checked(until_ns, max_steps, |_| {})
    }
}
