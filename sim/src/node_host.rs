//! A `proto::node::Node` hosted on the simulated network.
//!
//! [`NodeHost`] is an [`Application`]: it owns the node and the two id maps
//! between the node's sockets and listeners and the net's (see the table in
//! [`crate::world`]), and implements `drive::Host` over [`Net`] for the
//! length of one input. The node's clock is its host's skewed clock, never
//! allowed to run backwards (a skew change must not hand the node an
//! earlier `now` than it has seen).
//!
//! [`SimApp`] lets a node and the test applications share one world.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use warren_proto::drive::{self, Host};
use warren_proto::node::{
    ConnectError as NodeConnectError, Input, ListenerId as NodeListenerId, Node, NodeConfig,
    NodeEvent, ResolveError, SockId,
};
use warren_proto::time::Instant;

use crate::app::Endpoint;
use crate::net::{ConnectError, HostId, ListenerId, Net, NetEvent, SocketId};
use crate::world::Application;

/// The id maps between a node and the net, kept apart from the node so
/// both can be borrowed during one `drive` call.
#[derive(Debug, Default)]
struct IdMaps {
    socks: BTreeMap<SockId, SocketId>,
    net_socks: BTreeMap<SocketId, SockId>,
    listeners: BTreeMap<ListenerId, NodeListenerId>,
    /// Connects the net refused outright; reported as failed after the
    /// current drain.
    failed_connects: Vec<SockId>,
    /// Names asked for: the simulated network has no DNS, so every lookup
    /// is reported `NotFound` after the current drain.
    failed_resolves: Vec<SockId>,
    /// Host calls the net refused (a node asking for something wrong).
    misuse: Vec<String>,
}

impl IdMaps {
    fn bind(&mut self, sock: SockId, net: SocketId) {
        self.socks.insert(sock, net);
        self.net_socks.insert(net, sock);
    }

    fn forget(&mut self, sock: SockId) {
        if let Some(net) = self.socks.remove(&sock) {
            self.net_socks.remove(&net);
        }
    }
}

/// Records of what a node reported, for invariants and replay.
#[derive(Debug, Default)]
pub struct NodeLog {
    /// Every event with the (network) time it came, when `keep` is on.
    pub lines: Vec<(Instant, String)>,
    /// Keep the event lines (replay); off in sweeps, to bound memory.
    pub keep: bool,
    /// Events seen, of any kind.
    pub events: u64,
    /// `PolicyDenied` events.
    pub denied: u64,
    /// `FlowOpened` events.
    pub opened: u64,
}

/// The `drive::Host` of one input: the net, seen from one host.
struct NetHost<'a> {
    net: &'a mut Net,
    host: HostId,
    maps: &'a mut IdMaps,
    log: &'a mut NodeLog,
    /// Sockets this input wrote to or paused/resumed: with the input's own
    /// socket, the only ones whose buffered bytes can have grown.
    touched: &'a mut Vec<SockId>,
    /// Answer `connect_result_now` when the net knows the result at once.
    instant_connects: bool,
}

impl Host for NetHost<'_> {
    fn listen(&mut self, listener: NodeListenerId, addr: SocketAddr) {
        match self.net.listen_on(self.host, addr) {
            Ok(l) => {
                self.maps.listeners.insert(l, listener);
            }
            Err(e) => self.maps.misuse.push(format!("listen {addr}: {e}")),
        }
    }

    fn stop_listening(&mut self, listener: NodeListenerId) {
        let mine: Vec<ListenerId> = self
            .maps
            .listeners
            .iter()
            .filter(|(_, l)| **l == listener)
            .map(|(net, _)| *net)
            .collect();
        for net in mine {
            self.maps.listeners.remove(&net);
            self.net.unlisten(net);
        }
    }

    fn connect(&mut self, sock: SockId, addr: SocketAddr) {
        match self.net.connect(self.host, addr) {
            Ok(s) => self.maps.bind(sock, s),
            Err(_) => self.maps.failed_connects.push(sock),
        }
    }

    fn connect_result_now(&mut self, sock: SockId) -> Option<Result<(), NodeConnectError>> {
        if !self.instant_connects {
            return None;
        }
        let net_sock = *self.maps.socks.get(&sock)?;
        let result = self.net.connect_result_now(net_sock)?;
        if result.is_err() {
            self.maps.forget(sock);
        }
        Some(result.map_err(node_connect_error))
    }

    fn resolve(&mut self, sock: SockId, _host: &str) {
        self.maps.failed_resolves.push(sock);
    }

    fn write(&mut self, sock: SockId, data: &[u8]) -> usize {
        self.touched.push(sock);
        let Some(s) = self.maps.socks.get(&sock) else {
            return 0;
        };
        // Err: the socket is gone and its Reset is on the way.
        self.net.write(*s, data).unwrap_or(0)
    }

    fn pause_read(&mut self, sock: SockId) {
        self.touched.push(sock);
        if let Some(s) = self.maps.socks.get(&sock) {
            let _ = self.net.pause_read(*s);
        }
    }

    fn resume_read(&mut self, sock: SockId) {
        self.touched.push(sock);
        if let Some(s) = self.maps.socks.get(&sock) {
            let _ = self.net.resume_read(*s);
        }
    }

    fn shutdown_write(&mut self, sock: SockId) {
        if let Some(s) = self.maps.socks.get(&sock) {
            let _ = self.net.shutdown_write(*s);
        }
    }

    fn close(&mut self, sock: SockId, reset: bool) {
        if let Some(s) = self.maps.socks.get(&sock).copied() {
            if reset {
                self.net.abort(s);
            } else {
                self.net.close(s);
            }
        }
        self.maps.forget(sock);
    }

    fn event(&mut self, event: NodeEvent) {
        self.log.events += 1;
        match event {
            NodeEvent::PolicyDenied { .. } => self.log.denied += 1,
            NodeEvent::FlowOpened { .. } => self.log.opened += 1,
            _ => {}
        }
        if self.log.keep {
            self.log.lines.push((self.net.now(), event.to_string()));
        }
    }
}

/// The node's name for the net's connect failure.
fn node_connect_error(e: ConnectError) -> NodeConnectError {
    match e {
        ConnectError::Refused => NodeConnectError::Refused,
        ConnectError::TimedOut => NodeConnectError::TimedOut,
        ConnectError::Unreachable => NodeConnectError::Unreachable,
    }
}

/// The most bytes a node held for one socket, and when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferedPeak {
    /// Bytes.
    pub bytes: usize,
    /// When (network time).
    pub at: Instant,
}

/// A mesh node on a simulated host.
#[derive(Debug)]
pub struct NodeHost {
    node: Node,
    maps: IdMaps,
    /// Scratch for [`NetHost::touched`], kept to reuse its allocation.
    touched: Vec<SockId>,
    /// The per-socket high-water mark, measured after every input.
    peak: BufferedPeak,
    /// A hub's per-relayed-flow high-water mark, measured after every input.
    relay_peak: BufferedPeak,
    /// The node's next deadline, in network time.
    deadline: Option<Instant>,
    /// A configuration to apply at a network time.
    pending_config: Option<(Instant, NodeConfig)>,
    /// The latest `now` handed to the node.
    last_now: Instant,
    /// What the node reported.
    pub log: NodeLog,
    /// `HostError`s the node returned: bugs in this adapter or the node.
    pub host_errors: Vec<String>,
    /// Connects the net can answer at once (to the node's own host) are
    /// answered inside the drain (`Host::connect_result_now`), as
    /// warren-host does on loopback; off by default.
    instant_connects: bool,
}

impl NodeHost {
    /// A node built from `config` when placed; `keep_log` keeps every event
    /// line (for replay).
    pub fn new(config: NodeConfig, keep_log: bool) -> NodeHost {
        NodeHost {
            node: Node::new(config, Instant::ZERO),
            maps: IdMaps::default(),
            touched: Vec::new(),
            peak: BufferedPeak::default(),
            relay_peak: BufferedPeak::default(),
            deadline: None,
            pending_config: None,
            last_now: Instant::ZERO,
            log: NodeLog {
                keep: keep_log,
                ..NodeLog::default()
            },
            host_errors: Vec::new(),
            instant_connects: false,
        }
    }

    /// Whether the node hears connects to its own host complete inside
    /// the drain that started them (scenario key `instant_connects`).
    pub fn set_instant_connects(&mut self, on: bool) {
        self.instant_connects = on;
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Sockets the adapter still maps (a leak check: the node's own count
    /// and this one agree once the world is quiet).
    pub fn mapped_sockets(&self) -> usize {
        self.maps.socks.len()
    }

    /// The net sockets the node holds (for resets injected by a fault).
    pub fn net_sockets(&self) -> Vec<SocketId> {
        self.maps.socks.values().copied().collect()
    }

    /// The most bytes the node held for any one socket after any input
    /// so far. Measured on every input, at a cost proportional to the
    /// input's own work (only sockets it touched can have grown), not to
    /// the node's socket count.
    pub fn peak_buffered(&self) -> BufferedPeak {
        self.peak
    }

    /// The most payload bytes a hub held for any one relayed flow after
    /// any input so far (zero for a node that is no hub).
    pub fn relay_peak(&self) -> BufferedPeak {
        self.relay_peak
    }

    /// Injects a proto bug into the node (see `warren_proto::sim_bugs`).
    #[cfg(feature = "sim-bugs")]
    pub fn inject_bug(&mut self, bug: Option<warren_proto::sim_bugs::Bug>) {
        self.node.inject_bug(bug);
    }

    /// Raises the high-water mark from the sockets the last input touched.
    fn measure(&mut self, at: Instant) {
        for sock in self.touched.drain(..) {
            let bytes = self.node.buffered(sock);
            if bytes > self.peak.bytes {
                self.peak = BufferedPeak { bytes, at };
            }
        }
        // A hub's relays are few next to its inputs: read them all.
        if self.node.config().hub.is_some() {
            let bytes = self.node.relay_held_max();
            if bytes > self.relay_peak.bytes {
                self.relay_peak = BufferedPeak { bytes, at };
            }
        }
    }

    /// Host calls the net refused.
    pub fn misuse(&self) -> &[String] {
        &self.maps.misuse
    }

    fn now(&mut self, net: &Net, host: HostId) -> Instant {
        self.last_now = self.last_now.max(net.host_now(host));
        self.last_now
    }

    /// Feeds one input (or, with `None`, only drains) and keeps the
    /// deadline; then reports connects the net refused.
    fn feed(&mut self, net: &mut Net, host: HostId, input: Option<Input<'_>>) {
        let now = self.now(net, host);
        if let Some(sock) = input.as_ref().and_then(input_sock) {
            self.touched.push(sock);
        }
        let mut h = NetHost {
            net,
            host,
            maps: &mut self.maps,
            log: &mut self.log,
            touched: &mut self.touched,
            instant_connects: self.instant_connects,
        };
        let result = match input {
            Some(input) => drive::step(&mut self.node, &mut h, now, input),
            None => drive::drain(&mut self.node, &mut h, now),
        };
        let deadline = match result {
            Ok(deadline) => deadline,
            Err(e) => {
                self.host_errors.push(e.to_string());
                self.node.poll_timeout()
            }
        };
        self.deadline = deadline.map(|d| net.to_net_time(host, d));
        self.measure(net.now());
        while let Some(sock) = self.maps.failed_connects.pop() {
            let input = Input::Connected {
                sock,
                result: Err(NodeConnectError::Other),
            };
            self.feed(net, host, Some(input));
        }
        while let Some(sock) = self.maps.failed_resolves.pop() {
            let input = Input::Resolved {
                sock,
                result: Err(ResolveError::NotFound),
            };
            self.feed(net, host, Some(input));
        }
    }

    /// Applies a new configuration (policy change, certificate rotation)
    /// at network time `at`, through the world's timer (the world owns the
    /// net, so the node cannot be fed from outside a world step).
    pub fn schedule_config(&mut self, config: NodeConfig, at: Instant) {
        self.pending_config = Some((at, config));
    }

    fn accept(&mut self, net: &mut Net, host: HostId, listener: ListenerId, sock: SocketId) {
        let (Some(l), Some(peer)) = (
            self.maps.listeners.get(&listener).copied(),
            net.peer_addr(sock),
        ) else {
            net.abort(sock);
            return;
        };
        let now = self.now(net, host);
        let mut h = NetHost {
            net,
            host,
            maps: &mut self.maps,
            log: &mut self.log,
            touched: &mut self.touched,
            instant_connects: self.instant_connects,
        };
        // The socket is mapped before the drain, which may already write
        // to it or close it.
        let register = |h: &mut NetHost<'_>, id| {
            h.maps.bind(id, sock);
            h.touched.push(id);
        };
        match drive::accept(&mut self.node, &mut h, now, l, peer, register) {
            // The rest (deadline, refused connects) as after any input.
            Ok(_) => self.feed(net, host, None),
            Err(e) => {
                self.host_errors.push(e.to_string());
                net.abort(sock);
            }
        }
    }
}

impl Application for NodeHost {
    fn start(&mut self, net: &mut Net, host: HostId) {
        self.last_now = net.host_now(host);
        self.feed(net, host, None);
    }

    fn claims(&self, event: &NetEvent) -> bool {
        match event {
            NetEvent::Accepted { listener, .. } => self.maps.listeners.contains_key(listener),
            other => self.maps.net_socks.contains_key(&other.sock()),
        }
    }

    fn on_event(&mut self, net: &mut Net, host: HostId, event: NetEvent) {
        if let NetEvent::Accepted { listener, sock, .. } = event {
            return self.accept(net, host, listener, sock);
        }
        let Some(sock) = self.maps.net_socks.get(&event.sock()).copied() else {
            return;
        };
        match event {
            NetEvent::Connected { result, .. } => {
                let result = result.map_err(node_connect_error);
                if result.is_err() {
                    self.maps.forget(sock);
                }
                self.feed(net, host, Some(Input::Connected { sock, result }));
            }
            NetEvent::Received { data, .. } => {
                self.feed(net, host, Some(Input::Received { sock, data: &data }))
            }
            NetEvent::Writable { .. } => self.feed(net, host, Some(Input::Writable { sock })),
            NetEvent::ReadClosed { .. } => self.feed(net, host, Some(Input::ReadClosed { sock })),
            NetEvent::Reset { .. } => {
                self.maps.forget(sock);
                self.feed(net, host, Some(Input::Reset { sock }));
            }
            NetEvent::Accepted { .. } => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let config = self.pending_config.as_ref().map(|(at, _)| *at);
        match (self.deadline, config) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_timeout(&mut self, net: &mut Net, host: HostId) {
        if self
            .pending_config
            .as_ref()
            .is_some_and(|(at, _)| *at <= net.now())
        {
            if let Some((_, config)) = self.pending_config.take() {
                self.feed(net, host, Some(Input::Config(Box::new(config))));
            }
        }
        if self.deadline.is_some_and(|d| d <= net.now()) {
            self.feed(net, host, Some(Input::Timeout));
        }
    }
}

/// The socket an input is about, if any.
fn input_sock(input: &Input<'_>) -> Option<SockId> {
    match input {
        Input::Connected { sock, .. }
        | Input::Received { sock, .. }
        | Input::Writable { sock }
        | Input::ReadClosed { sock }
        | Input::Reset { sock } => Some(*sock),
        _ => None,
    }
}

/// Anything that runs on a simulated host: a mesh node or a test
/// application.
#[derive(Debug)]
pub enum SimApp {
    /// A mesh node.
    Node(Box<NodeHost>),
    /// A client or server.
    Endpoint(Box<Endpoint>),
}

impl SimApp {
    /// The node, if this is one.
    pub fn node(&self) -> Option<&NodeHost> {
        match self {
            SimApp::Node(n) => Some(n),
            SimApp::Endpoint(_) => None,
        }
    }

    /// The node, mutably, if this is one.
    pub fn node_mut(&mut self) -> Option<&mut NodeHost> {
        match self {
            SimApp::Node(n) => Some(n),
            SimApp::Endpoint(_) => None,
        }
    }

    /// The test application, if this is one.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            SimApp::Endpoint(e) => Some(e),
            SimApp::Node(_) => None,
        }
    }
}

impl Application for SimApp {
    fn start(&mut self, net: &mut Net, host: HostId) {
        match self {
            SimApp::Node(n) => n.start(net, host),
            SimApp::Endpoint(e) => e.start(net, host),
        }
    }

    fn claims(&self, event: &NetEvent) -> bool {
        match self {
            SimApp::Node(n) => n.claims(event),
            SimApp::Endpoint(e) => e.claims(event),
        }
    }

    fn on_event(&mut self, net: &mut Net, host: HostId, event: NetEvent) {
        match self {
            SimApp::Node(n) => n.on_event(net, host, event),
            SimApp::Endpoint(e) => e.on_event(net, host, event),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            SimApp::Node(n) => n.poll_timeout(),
            SimApp::Endpoint(e) => e.poll_timeout(),
        }
    }

    fn on_timeout(&mut self, net: &mut Net, host: HostId) {
        match self {
            SimApp::Node(n) => n.on_timeout(net, host),
            SimApp::Endpoint(e) => e.on_timeout(net, host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{ServerMode, StreamClient, StreamServer};
    use crate::net::NetConfig;
    use crate::pki::MeshPki;
    use crate::rng::Seed;
    use crate::world::{RunEnd, World};
    use warren_proto::front::Target as FrontTarget;
    use warren_proto::identity::SpiffeId;
    use warren_proto::node::{Endpoint as MeshEndpoint, FrontConfig, FrontKind};
    use warren_proto::policy::{
        Action, AuthzPolicy, AuthzRule, Export, Exports, RuleName, Scope, ServiceName, Target,
    };

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn tunnel(listen: &str, to: &str) -> FrontConfig {
        FrontConfig {
            listen: addr(listen),
            kind: FrontKind::Tunnel {
                to: FrontTarget::parse(to).unwrap(),
            },
        }
    }

    /// Node a (10.0.0.1) tunnels 9000 → echo.shop:80 and 9001 → secret.shop:80;
    /// node b (10.0.0.2) exports both, to echo servers on its loopback, and
    /// denies secret.shop to everyone.
    fn two_nodes(seed: u64) -> World<SimApp> {
        let mut pki = MeshPki::new(seed, "mesh.test").unwrap();
        let id_a = SpiffeId::new("mesh.test", "shop", "cart").unwrap();
        let id_b = SpiffeId::new("mesh.test", "shop", "echo").unwrap();
        let mut a = NodeConfig::new(pki.identity(&id_a, "node/a/0", 86_400, 0).unwrap());
        a.fronts = vec![
            tunnel("127.0.0.1:9000", "echo.shop:80"),
            tunnel("127.0.0.1:9001", "secret.shop:80"),
        ];
        for svc in ["echo.shop", "secret.shop"] {
            a.directory.insert(
                ServiceName::parse(svc).unwrap(),
                vec![MeshEndpoint {
                    hbone: addr("10.0.0.2:15008"),
                    identity: id_b.clone(),
                }],
            );
        }
        let mut b = NodeConfig::new(pki.identity(&id_b, "node/b/0", 86_400, 0).unwrap());
        b.hbone_listen = Some(addr("10.0.0.2:15008"));
        let export = |svc: &str, target: &str| Export {
            service: ServiceName::parse(svc).unwrap(),
            port: 80,
            target: Target::Addr(addr(target)),
        };
        b.exports = Exports::new(vec![
            export("echo.shop", "127.0.0.1:8080"),
            export("secret.shop", "127.0.0.1:8081"),
        ])
        .unwrap();
        let mut deny = AuthzRule::new(RuleName::new("no-secrets").unwrap(), Action::Deny);
        deny.scope = Scope::Service(ServiceName::parse("secret.shop").unwrap());
        b.authz = AuthzPolicy::new(vec![deny]);

        let mut net = crate::net::Net::new(Seed(seed), NetConfig::default());
        let ha = net.add_host(addr("10.0.0.1:0").ip()).unwrap();
        let hb = net.add_host(addr("10.0.0.2:0").ip()).unwrap();
        let mut world = World::new(net);
        world.place(ha, SimApp::Node(Box::new(NodeHost::new(a, false))));
        world.place(hb, SimApp::Node(Box::new(NodeHost::new(b, false))));
        for port in [8080, 8081] {
            let server = StreamServer::new(port, ServerMode::Echo);
            world.place(hb, SimApp::Endpoint(Box::new(Endpoint::Server(server))));
        }
        let rng = |i| Seed(seed).stream_indexed("test.client", i);
        let ok = StreamClient::new(addr("127.0.0.1:9000"), 11, 300_000, 20_000, rng(0));
        let denied = StreamClient::new(addr("127.0.0.1:9001"), 12, 50_000, 20_000, rng(1));
        world.place(ha, SimApp::Endpoint(Box::new(Endpoint::Client(ok))));
        world.place(ha, SimApp::Endpoint(Box::new(Endpoint::Client(denied))));
        world
    }

    #[test]
    fn echo_through_two_nodes_is_byte_exact_and_a_denied_flow_carries_nothing() {
        let mut world = two_nodes(7);
        let end = world.run_until(Instant::from_nanos(30_000_000_000), 1_000_000);
        assert_ne!(end, RunEnd::StepLimit);
        let (ha, hb) = (HostId(0), HostId(1));
        let apps = world.apps(ha);
        let ok = apps[1].endpoint().and_then(Endpoint::client).unwrap();
        assert!(ok.read_closed && !ok.reset, "the allowed flow ends cleanly");
        assert_eq!(ok.echo.verified(), 300_000);
        assert_eq!(ok.echo.mismatch(), None);
        let denied = apps[2].endpoint().and_then(Endpoint::client).unwrap();
        assert_eq!(denied.echo.verified(), 0, "nothing comes back");
        assert!(denied.reset || denied.read_closed);
        let servers = world.apps(hb);
        let echo = servers[1].endpoint().and_then(Endpoint::server).unwrap();
        assert_eq!(echo.verified(), 300_000);
        let secret = servers[2].endpoint().and_then(Endpoint::server).unwrap();
        assert!(
            secret.flows.is_empty(),
            "the denied target was never dialled"
        );
        let b = world.apps(hb)[0].node().unwrap();
        assert_eq!(b.log.denied, 1);
        // Nothing leaks once the world is quiet.
        for host in [ha, hb] {
            let n = world.apps(host)[0].node().unwrap();
            assert_eq!(n.node().flow_count(), 0);
            assert!(n.host_errors.is_empty(), "{:?}", n.host_errors);
            assert!(n.misuse().is_empty(), "{:?}", n.misuse());
            // Measured after every input: the relay held bytes, within the bound.
            let peak = n.peak_buffered().bytes;
            assert!(peak > 0, "host {host:?}: nothing measured");
            assert!(peak <= crate::invariants::MAX_BUFFERED_PER_SOCKET, "{peak}");
        }
    }

    #[test]
    fn same_seed_same_trace_hash() {
        let run = |seed| {
            let mut world = two_nodes(seed);
            world.run_until(Instant::from_nanos(30_000_000_000), 1_000_000);
            world.net().trace_hash()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
