//! Config pieces node tests fill the same way: addresses, test payloads,
//! tunnel fronts, exports and directory endpoints, and the two-agent pair
//! most flow tests start from.

use std::net::SocketAddr;
use std::time::Duration;

use warren_proto::front::Target as FrontTarget;
use warren_proto::identity::Resumption;
use warren_proto::node::{Endpoint, FrontConfig, FrontKind, MeshIdentity, NodeConfig};
use warren_proto::policy::{
    Action, AuthzPolicy, Cidr, Destination, EgressRule, Export, Exports, PortRange, RuleName,
    ServiceName, Target,
};

use super::certs::{spiffe, Ca, Leaf};
use super::World;

/// Agent A's tunnel front.
pub const TUNNEL: &str = "127.0.0.1:9000";
/// Agent B's HBONE listener in a [`DirectPair`].
pub const HBONE_B: &str = "10.0.0.2:15008";
/// The echo server behind B's export.
pub const ECHO: &str = "127.0.0.2:8080";
/// The SOCKS5 front of [`proxy_fronts`].
pub const SOCKS: &str = "127.0.0.1:1080";
/// The HTTP CONNECT front of [`proxy_fronts`].
pub const HTTP: &str = "127.0.0.1:3128";

/// A socket address written the usual way; the tests only write valid ones.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// `n` bytes that differ with `salt` and do not repeat with a short
/// period, so a lost, reordered or foreign chunk shows in a comparison.
pub fn pattern(n: usize, salt: usize) -> Vec<u8> {
    (0..n)
        .map(|i| (i * 7 + salt * 13 + i / 251) as u8)
        .collect()
}

/// A tunnel front listening at `listen` that sends every flow to `to`
/// (`service:port`).
pub fn tunnel(listen: &str, to: &str) -> FrontConfig {
    FrontConfig {
        listen: addr(listen),
        kind: FrontKind::Tunnel {
            to: FrontTarget::parse(to).unwrap(),
        },
    }
}

/// A SOCKS5 front at [`SOCKS`] and an HTTP CONNECT front with default
/// limits at [`HTTP`]: what the proxy-front tests give agent A instead of
/// its tunnel.
pub fn proxy_fronts() -> Vec<FrontConfig> {
    vec![
        FrontConfig {
            listen: addr(SOCKS),
            kind: FrontKind::Socks5,
        },
        FrontConfig {
            listen: addr(HTTP),
            kind: FrontKind::HttpConnect(Default::default()),
        },
    ]
}

/// Egress rule "lab": allows 198.51.100.0/24 (the outside hosts of the
/// proxy-front tests) on port 7.
pub fn lab_rule() -> EgressRule {
    let mut rule = EgressRule::new(RuleName::new("lab").unwrap(), Action::Allow);
    rule.destinations = vec![Destination::Cidr(Cidr::parse("198.51.100.0/24").unwrap())];
    rule.ports = vec![PortRange::new(7, 7).unwrap()];
    rule
}

/// One export: `service` port 80 served by the TCP server at `target`.
pub fn export(service: &str, target: &str) -> Export {
    Export {
        service: ServiceName::parse(service).unwrap(),
        port: 80,
        target: Target::Addr(addr(target)),
    }
}

/// Exactly one export, [`export`]`(service, target)`.
pub fn exports(service: &str, target: &str) -> Exports {
    Exports::new(vec![export(service, target)]).unwrap()
}

/// A directory endpoint: HBONE at `hbone`, identity `shop/<sa>`.
pub fn endpoint(hbone: &str, sa: &str) -> Endpoint {
    Endpoint {
        hbone: addr(hbone),
        identity: spiffe("shop", sa),
    }
}

/// Endpoint `i` of a service several nodes serve: HBONE at
/// 10.0.1.`i`:15008, identity `shop/echo<i>`.
pub fn echo_endpoint(i: usize) -> Endpoint {
    endpoint(&format!("10.0.1.{i}:15008"), &format!("echo{i}"))
}

/// The node behind [`echo_endpoint`]`(i)`: `shop/echo<i>` with key
/// `10 + i`, listening at the endpoint's HBONE address and exporting
/// `service` port 80 → `target`.
pub fn endpoint_node(ca: &Ca, i: u8, service: &str, target: &str) -> NodeConfig {
    let mut node = NodeConfig::new(ca.identity(10 + i, "shop", &format!("echo{i}")));
    node.hbone_listen = Some(echo_endpoint(usize::from(i)).hbone);
    node.exports = exports(service, target);
    node
}

/// The agent of the several-endpoint tests: `shop/cart` with key 2,
/// tunnelling [`TUNNEL`] → echo.shop:80, its directory listing
/// `endpoints` for echo.shop.
pub fn cart_over(ca: &Ca, endpoints: Vec<Endpoint>) -> NodeConfig {
    let mut agent = NodeConfig::new(ca.identity(2, "shop", "cart"));
    agent.fronts = vec![tunnel(TUNNEL, "echo.shop:80")];
    agent
        .directory
        .insert(ServiceName::parse("echo.shop").unwrap(), endpoints);
    agent
}

/// Two agents that talk directly, before either is in a world.
///
/// By default: A (`shop/cart`, key 2) tunnels [`TUNNEL`] → echo.shop:80
/// and its directory lists B at [`HBONE_B`]; B (`shop/echo`, key 3)
/// listens at [`HBONE_B`] and exports echo.shop:80 → [`ECHO`]. Everything
/// else is `NodeConfig::new`'s default; tests change the fields they are
/// about before [`DirectPair::world`].
pub struct DirectPair {
    /// Node 0, the agent the test's clients use.
    pub a: NodeConfig,
    /// Node 1, the agent serving echo.shop.
    pub b: NodeConfig,
}

impl DirectPair {
    /// The default pair, with identities from `ca`.
    pub fn new(ca: &Ca) -> DirectPair {
        DirectPair::with_identities(
            ca.identity(2, "shop", "cart"),
            ca.identity(3, "shop", "echo"),
        )
    }

    /// The default pair with identities made elsewhere (for leaves with
    /// their own clock or resumption); `b` must prove `shop/echo`.
    pub fn with_identities(a: MeshIdentity, b: MeshIdentity) -> DirectPair {
        let mut a = NodeConfig::new(a);
        a.fronts.push(tunnel(TUNNEL, "echo.shop:80"));
        a.directory.insert(
            ServiceName::parse("echo.shop").unwrap(),
            vec![endpoint(HBONE_B, "echo")],
        );
        let mut b = NodeConfig::new(b);
        b.hbone_listen = Some(addr(HBONE_B));
        b.exports = exports("echo.shop", ECHO);
        DirectPair { a, b }
    }

    /// A world of A (node 0), B (node 1) and the echo server at [`ECHO`];
    /// nothing has run yet.
    pub fn world(&self) -> World {
        let mut world = World::new();
        world.add_node(self.a.clone());
        world.add_node(self.b.clone());
        world.add_echo_server(addr(ECHO));
        world
    }
}

impl World {
    /// One flow through the front at `listen`: a client writes `data`,
    /// half-closes, and the world runs until quiet. Returns the client app.
    pub fn flow(&mut self, listen: &str, data: &[u8]) -> usize {
        let app = self.start_flow(listen, data);
        self.run();
        app
    }

    /// [`World::flow`] without the run: a client connects to the front at
    /// `listen`, writes `data` and half-closes; nothing moves until the
    /// test runs the world. Returns the client app.
    pub fn start_flow(&mut self, listen: &str, data: &[u8]) -> usize {
        let app = self.connect_app(addr(listen));
        self.app_write(app, data);
        self.app_shutdown(app);
        app
    }

    /// [`World::flow`] without the half-close: a client connects to the
    /// front at `listen`, writes `data` and keeps its side open while the
    /// world runs until quiet. Returns the client app.
    pub fn open_flow(&mut self, listen: &str, data: &[u8]) -> usize {
        let app = self.connect_app(addr(listen));
        self.app_write(app, data);
        self.run();
        app
    }

    /// One [`World::start_flow`] through `listen` per size, flow `i`
    /// writing `pattern(sizes[i], i)`, all at once; then the world runs
    /// until quiet. Returns (client app, data) per flow.
    pub fn flows_of_sizes(&mut self, listen: &str, sizes: &[usize]) -> Vec<(usize, Vec<u8>)> {
        let flows = sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let data = pattern(size, i);
                (self.start_flow(listen, &data), data)
            })
            .collect();
        self.run();
        flows
    }

    /// Asserts each flow's client got its data back whole, byte for byte,
    /// and then the end of the stream.
    pub fn assert_echoed(&self, flows: &[(usize, Vec<u8>)]) {
        for (app, data) in flows {
            let got = &self.net.apps[*app].received;
            assert_eq!(got.len(), data.len());
            assert!(got == data, "bytes differ");
            assert!(self.net.apps[*app].eof);
        }
    }

    /// `n` flows through the front at `listen` whose servers read nothing:
    /// flow `i`'s client writes `pattern(bytes, i)` and the world runs
    /// until their windows are full. Returns (client app, data) per flow;
    /// servers connected later read as usual.
    pub fn stall_readers(&mut self, listen: &str, n: usize, bytes: usize) -> Vec<(usize, Vec<u8>)> {
        self.net.slow_servers = Some(0);
        let stalled = (0..n)
            .map(|i| {
                let data = pattern(bytes, i);
                let app = self.connect_app(addr(listen));
                self.app_write(app, &data);
                (app, data)
            })
            .collect();
        self.run();
        self.net.slow_servers = None;
        stalled
    }

    /// Every server reads again, the [`World::stall_readers`] clients
    /// half-close, and the world runs until quiet.
    pub fn resume_readers(&mut self, stalled: &[(usize, Vec<u8>)]) {
        for app in self.net.server_apps.clone() {
            self.net.apps[app].read_per_round = None;
        }
        for (app, _) in stalled {
            self.app_shutdown(*app);
        }
        self.run();
    }
}

/// The pair the cold-flow tests start from: both leaves with `resumption`,
/// A's pool closing a connection 1 s after its last stream (so a flow after
/// a longer pause is a cold one), and B allowing every caller.
pub fn cold_pair(resumption: Resumption) -> DirectPair {
    let ca = Ca::new(1);
    let leaf = || Leaf {
        resumption,
        ..Leaf::default()
    };
    let mut pair = DirectPair::with_identities(
        ca.identity_with(2, "shop", "cart", leaf()),
        ca.identity_with(3, "shop", "echo", leaf()),
    );
    pair.a.pool.idle_timeout = Duration::from_secs(1);
    pair.b.authz = AuthzPolicy::default();
    pair
}
