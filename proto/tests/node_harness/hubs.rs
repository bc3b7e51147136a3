//! Hub meshes: hubs and the two agents that dial them, built the way the
//! hub tests share.

use warren_proto::control::{AnnouncePolicy, ExportRule, ServiceAllowance, ServicePort};
use warren_proto::h2;
use warren_proto::hub::{HubLinks, HubRole, Route};
use warren_proto::node::NodeConfig;
use warren_proto::policy::{PrincipalPattern, ServiceName};

use super::certs::Ca;
use super::config::{addr, exports, tunnel, ECHO, TUNNEL};
use super::World;

/// Where hub 0 and hub 1 listen for agents.
pub const HUB_ADDRS: [&str; 2] = ["10.0.0.9:15009", "10.0.0.10:15009"];

/// A hub role that lets every agent announce the services of its own
/// namespace, with the default limits.
pub fn hub_role() -> HubRole {
    HubRole {
        announce: AnnouncePolicy::new(vec![ExportRule {
            principals: vec![PrincipalPattern::new("*").unwrap()],
            services: vec![ServiceAllowance::OwnNamespace],
        }]),
        ..HubRole::default()
    }
}

/// A hub `mesh/<sa>` with the key of `seed`, listening at `listen`, in
/// [`hub_role`].
pub fn hub_node(ca: &Ca, seed: u8, sa: &str, listen: &str) -> NodeConfig {
    let mut hub = NodeConfig::new(ca.identity(seed, "mesh", sa));
    hub.hbone_listen = Some(addr(listen));
    hub.hub = Some(hub_role());
    hub
}

/// An agent's links to the hubs at `hubs`: any `mesh/hub*` identity,
/// direct paths first, seed 7.
pub fn hub_links(hubs: &[&str]) -> HubLinks {
    HubLinks {
        hubs: hubs.iter().map(|h| addr(h)).collect(),
        identities: vec![PrincipalPattern::new("spiffe://mesh.test/ns/mesh/sa/hub*").unwrap()],
        route: Route::DirectFirst,
        seed: 7,
        ..HubLinks::default()
    }
}

/// echo.shop:80, the service agent B serves.
pub fn echo_port() -> ServicePort {
    ServicePort {
        service: ServiceName::parse("echo.shop").unwrap(),
        port: 80,
    }
}

/// Hubs and two agents, before any is in a world.
///
/// By default ([`HubMesh::new`]): one hub `mesh/hub` (key 9) at
/// `HUB_ADDRS[0]` in [`hub_role`]; agent A (`shop/cart`, key 2) tunnels
/// 127.0.0.1:9000 → echo.shop:80; agent B (`shop/echo`, key 3, no
/// listener) exports echo.shop:80 → an echo server at 127.0.0.2:8080, end
/// to end; both agents dial every hub ([`hub_links`]). Tests change the
/// fields they are about before [`HubMesh::world`].
pub struct HubMesh {
    /// Nodes `0..hubs.len()`.
    pub hubs: Vec<NodeConfig>,
    /// The node after the hubs.
    pub a: NodeConfig,
    /// The node after A.
    pub b: NodeConfig,
}

impl HubMesh {
    /// One hub and the two agents.
    pub fn new(ca: &Ca) -> HubMesh {
        let hub = hub_node(ca, 9, "hub", HUB_ADDRS[0]);
        HubMesh::around(ca, vec![hub], &HUB_ADDRS[..1])
    }

    /// Two hubs, `mesh/hub0` and `mesh/hub1` (keys 9 and 10) at
    /// [`HUB_ADDRS`], and the two agents dialling both.
    pub fn two_hubs(ca: &Ca) -> HubMesh {
        let hubs = vec![
            hub_node(ca, 9, "hub0", HUB_ADDRS[0]),
            hub_node(ca, 10, "hub1", HUB_ADDRS[1]),
        ];
        HubMesh::around(ca, hubs, &HUB_ADDRS)
    }

    fn around(ca: &Ca, hubs: Vec<NodeConfig>, hub_addrs: &[&str]) -> HubMesh {
        let mut a = NodeConfig::new(ca.identity(2, "shop", "cart"));
        a.fronts = vec![tunnel(TUNNEL, "echo.shop:80")];
        a.hub_links = hub_links(hub_addrs);
        let mut b = NodeConfig::new(ca.identity(3, "shop", "echo"));
        b.exports = exports("echo.shop", ECHO);
        b.hub_links = hub_links(hub_addrs);
        HubMesh { hubs, a, b }
    }

    /// B relays echo.shop:80 in plaintext (end-to-end off): each hub flow
    /// is then one hub relay.
    pub fn plaintext(mut self) -> HubMesh {
        self.b.relay_plaintext.insert(echo_port());
        self
    }

    /// Every node, hubs included, with HTTP/2 settings `h2`.
    pub fn h2(mut self, h2: h2::Config) -> HubMesh {
        for node in self.hubs.iter_mut() {
            node.h2 = h2.clone();
        }
        self.a.h2 = h2.clone();
        self.b.h2 = h2;
        self
    }

    /// The configs in node order: the hubs, A, B.
    pub fn configs(&self) -> Vec<NodeConfig> {
        let mut all = self.hubs.clone();
        all.push(self.a.clone());
        all.push(self.b.clone());
        all
    }

    /// A world of the hubs, A, B and the echo server; nothing has run
    /// yet, so no agent is connected to a hub.
    pub fn world(&self) -> World {
        let mut world = World::new();
        for node in self.configs() {
            world.add_node(node);
        }
        world.add_echo_server(addr(ECHO));
        world
    }
}

impl World {
    /// In a [`HubMesh::two_hubs`] world, hub 0 dies: its address stops
    /// answering and its links to A (node 2) and B (node 3) reset. Nothing
    /// runs yet.
    pub fn first_hub_dies(&mut self) {
        self.net.blackhole.insert(addr(HUB_ADDRS[0]));
        self.reset_links(0, 2);
        self.reset_links(0, 3);
    }

    /// The apps among `apps` whose flows were neither reset nor ended.
    pub fn live_apps(&self, apps: &[usize]) -> Vec<usize> {
        apps.iter()
            .copied()
            .filter(|app| !self.net.apps[*app].reset && !self.net.apps[*app].eof)
            .collect()
    }
}
