//! The end-to-end suite every runtime adapter must pass, written once
//! (feature `suite`). An adapter's test file expands
//! [`suite_tests!`](crate::suite_tests) with its [`Reactor`].
//!
//! Two real nodes on 127.0.0.1 with ephemeral ports and mTLS: node A
//! ("shop/cart") has a plain tunnel front end to `echo.shop:80`; node B
//! ("shop/echo") exports it to a blocking std TCP server. The test client
//! and the target servers use std sockets and threads, so nothing here
//! depends on the runtime under test.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warren_proto::front::Target as FrontTarget;
use warren_proto::identity::{MeshTlsParams, MeshTrust, SpiffeId, TrustDomain};
use warren_proto::node::{
    CloseReason, Endpoint, FrontConfig, FrontKind, HandshakeError, ListenError, MeshIdentity,
    NodeConfig, NodeEvent, SockId,
};
use warren_proto::policy::{
    Action, AuthzPolicy, AuthzRule, Conditions, Export, Exports, PrincipalPattern, RuleName,
    ServiceName, Target,
};
use warren_sim::certs::{SimCa, Validity};

use crate::{Handle, LoopOptions, Notice, Reactor};

mod accept;
mod admin;
mod reads;
mod stop;
pub use accept::{accept_errors_back_off, FailingAccept};
pub use admin::admin_endpoints;
pub use reads::{emptied_sockets_are_not_read_again, ReadTracking};
pub use stop::inspect_while_stopping;

/// How long a test waits for a byte or an event before it calls the run
/// hung. A guard against hanging forever, not a performance assertion.
const HANG: Duration = Duration::from_secs(120);
const TD: &str = "mesh.test";

/// One `#[test]` per case of the suite for reactor `$rt`.
#[macro_export]
macro_rules! suite_tests {
    ($rt:ty) => {
        #[test]
        fn echo_0_bytes() {
            $crate::suite::echo::<$rt>(0);
        }
        #[test]
        fn echo_1_byte() {
            $crate::suite::echo::<$rt>(1);
        }
        #[test]
        fn echo_1_mib() {
            $crate::suite::echo::<$rt>(1 << 20);
        }
        #[test]
        fn echo_64_mib() {
            $crate::suite::echo::<$rt>(64 << 20);
        }
        #[test]
        fn concurrent_flows_share_the_mesh() {
            $crate::suite::concurrent::<$rt>(32, 256 << 10);
        }
        #[test]
        fn spinning_nodes_carry_flows() {
            $crate::suite::spinning::<$rt>();
        }
        #[test]
        fn denied_flow_never_reaches_the_target() {
            $crate::suite::denied::<$rt>();
        }
        #[test]
        fn half_close_lets_the_reply_through() {
            $crate::suite::half_close::<$rt>();
        }
        #[test]
        fn stalled_target_keeps_the_client_node_bounded() {
            $crate::suite::stalled_target::<$rt>();
        }
        #[test]
        fn new_policy_denies_new_flows() {
            $crate::suite::reconfigure::<$rt>();
        }
        #[test]
        fn busy_port_fails_the_start() {
            $crate::suite::busy_port::<$rt>();
        }
        #[test]
        fn silent_peer_times_out() {
            $crate::suite::silent_peer::<$rt>();
        }
        #[test]
        fn refused_peer_closes_the_flow() {
            $crate::suite::refused_peer::<$rt>();
        }
        #[test]
        fn export_target_by_name_is_resolved() {
            $crate::suite::export_by_name::<$rt>();
        }
        #[test]
        fn moved_front_end_on_a_busy_port_is_reported() {
            $crate::suite::listener_moved_to_busy_port::<$rt>();
        }
        #[test]
        fn admin_endpoints_show_the_flow() {
            $crate::suite::admin_endpoints::<$rt>();
        }
        #[test]
        fn accept_errors_back_off() {
            $crate::suite::accept_errors_back_off::<$rt>();
        }
        #[test]
        fn inspect_returns_while_the_node_stops() {
            $crate::suite::inspect_while_stopping::<$rt>();
        }
        #[test]
        fn emptied_sockets_are_not_read_again() {
            $crate::suite::emptied_sockets_are_not_read_again::<$rt>();
        }
    };
}

/// Starts `config`'s node on `R` with its events sent to `events`;
/// returns the bound listeners (HBONE first, then the front ends) and it.
fn start<R: Reactor>(
    config: NodeConfig,
    events: Sender<NodeEvent>,
) -> std::io::Result<(Vec<SocketAddr>, Handle)> {
    start_with::<R>(config, LoopOptions::default(), events)
}

/// [`start`] with loop `options`.
fn start_with<R: Reactor>(
    config: NodeConfig,
    options: LoopOptions,
    events: Sender<NodeEvent>,
) -> std::io::Result<(Vec<SocketAddr>, Handle)> {
    let handle = crate::spawn_with::<R, _>(config, options, move |notice| {
        if let Notice::Event(e) = notice {
            let _ = events.send(e);
        }
    })?;
    Ok((handle.local_addrs().to_vec(), handle))
}

fn spiffe(sa: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://{TD}/ns/shop/sa/{sa}")).unwrap()
}

/// A CA valid around the real clock, and identities it signs.
struct Pki {
    ca: SimCa,
    validity: Validity,
}

impl Pki {
    fn new() -> Pki {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let validity = Validity {
            not_before: now - 3600,
            not_after: now + 86_400,
        };
        Pki {
            ca: SimCa::new([7; 32], "runtime test CA", 1, validity).unwrap(),
            validity,
        }
    }

    fn identity(&self, sa: &str, serial: u64) -> MeshIdentity {
        let leaf = self.ca.issue(&spiffe(sa), serial, self.validity).unwrap();
        let trust = MeshTrust::new(TrustDomain::new(TD).unwrap(), &[self.ca.cert().clone()]);
        let params = MeshTlsParams::new(
            Arc::new(rustls::crypto::ring::default_provider()),
            Arc::new(rustls::time_provider::DefaultTimeProvider),
            Arc::new(trust.unwrap()),
            leaf.chain.clone(),
            leaf.key(),
        );
        MeshIdentity::new(params.unwrap()).unwrap()
    }
}

/// How the target server behind node B behaves.
#[derive(Clone, Copy)]
enum Server {
    /// Writes back what it reads; half-closes after EOF.
    Echo,
    /// Reads to EOF, then answers "pong" and closes.
    PongAfterEof,
    /// Accepts and never reads.
    Stalled,
}

/// The target server: counts connections, hands each one's input to the test.
struct TargetServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    received: Receiver<Vec<u8>>,
}

fn target_server(kind: Server) -> TargetServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, received) = mpsc::channel();
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let tx = tx.clone();
            std::thread::spawn(move || {
                if let Server::Stalled = kind {
                    // Holds the connection open, unread, for the rest of the process.
                    loop {
                        std::thread::park();
                    }
                }
                conn.set_read_timeout(Some(HANG)).unwrap();
                conn.set_write_timeout(Some(HANG)).unwrap();
                let mut got = Vec::new();
                let mut buf = vec![0; 64 * 1024];
                loop {
                    let n = match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if let Server::Echo = kind {
                        if conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    } else {
                        got.extend_from_slice(&buf[..n]);
                    }
                }
                if let Server::PongAfterEof = kind {
                    let _ = conn.write_all(b"pong");
                }
                let _ = conn.shutdown(Shutdown::Write);
                let _ = tx.send(got);
            });
        }
    });
    TargetServer {
        addr,
        accepted,
        received,
    }
}

/// Node A: a tunnel front end to `echo.shop:80`, served by the node at `hbone`.
fn client_config(pki: &Pki, hbone: SocketAddr) -> NodeConfig {
    let mut a = NodeConfig::new(pki.identity("cart", 2));
    a.fronts.push(FrontConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        kind: FrontKind::Tunnel {
            to: FrontTarget::parse("echo.shop:80").unwrap(),
        },
    });
    a.directory.insert(
        ServiceName::parse("echo.shop").unwrap(),
        vec![Endpoint {
            hbone,
            identity: spiffe("echo"),
        }],
    );
    a
}

/// Node B: exports `echo.shop:80` → `target` under `authz`.
fn server_config(pki: &Pki, target: SocketAddr, authz: AuthzPolicy) -> NodeConfig {
    let mut b = NodeConfig::new(pki.identity("echo", 3));
    b.hbone_listen = Some("127.0.0.1:0".parse().unwrap());
    b.exports = Exports::new(vec![Export {
        service: ServiceName::parse("echo.shop").unwrap(),
        port: 80,
        target: Target::Addr(target),
    }])
    .unwrap();
    b.authz = authz;
    b
}

/// Two nodes and a target: the client dials `tunnel`.
struct Mesh {
    pki: Pki,
    tunnel: SocketAddr,
    target: TargetServer,
    events: [Receiver<NodeEvent>; 2],
    nodes: [Handle; 2],
}

fn mesh<R: Reactor>(server: Server, authz: AuthzPolicy) -> Mesh {
    mesh_with::<R>(server, authz, LoopOptions::default())
}

/// [`mesh`] with both nodes' loops run with `options`.
fn mesh_with<R: Reactor>(server: Server, authz: AuthzPolicy, options: LoopOptions) -> Mesh {
    let pki = Pki::new();
    let target = target_server(server);

    let b = server_config(&pki, target.addr, authz);
    let (b_tx, b_events) = mpsc::channel();
    let (b_addrs, b_node) = start_with::<R>(b, options, b_tx).unwrap();

    let a = client_config(&pki, b_addrs[0]);
    let (a_tx, a_events) = mpsc::channel();
    let (a_addrs, a_node) = start_with::<R>(a, options, a_tx).unwrap();
    Mesh {
        pki,
        tunnel: a_addrs[0],
        target,
        events: [a_events, b_events],
        nodes: [a_node, b_node],
    }
}

impl Mesh {
    /// Waits for node `n`'s next event that `pick` accepts.
    fn wait_for<T>(&self, n: usize, mut pick: impl FnMut(NodeEvent) -> Option<T>) -> T {
        loop {
            let event = self.events[n]
                .recv_timeout(HANG)
                .unwrap_or_else(|_| panic!("node {n}: no such event"));
            if let Some(t) = pick(event) {
                return t;
            }
        }
    }

    fn closed(&self, n: usize) -> (CloseReason, u64, u64) {
        self.wait_for(n, |e| match e {
            NodeEvent::FlowClosed {
                reason,
                bytes_sent,
                bytes_received,
                ..
            } => Some((reason, bytes_sent, bytes_received)),
            _ => None,
        })
    }
}

/// Connects to `addr`, writes `data` and half-closes from one thread while
/// reading to EOF on another; returns what came back.
fn exchange(addr: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(HANG)).unwrap();
    conn.set_write_timeout(Some(HANG)).unwrap();
    let mut writer = conn.try_clone().unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            // The far end may close first (a denied flow): not this test's business.
            let _ = writer.write_all(data);
            let _ = writer.shutdown(Shutdown::Write);
        });
        let mut got = Vec::new();
        match conn.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("client read: {e}"),
        }
        got
    })
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// `size` bytes through the tunnel and back, byte for byte, and both
/// nodes log the flow as done with the right counts.
pub fn echo<R: Reactor>(size: usize) {
    let mesh = mesh::<R>(Server::Echo, AuthzPolicy::default());
    let data = pattern(size);
    let got = exchange(mesh.tunnel, &data);
    assert_eq!(got.len(), size, "echo length");
    assert!(got == data, "echo of {size} B came back altered");
    let size = size as u64;
    assert_eq!(mesh.closed(0), (CloseReason::Done, size, size), "node A");
    assert_eq!(mesh.closed(1), (CloseReason::Done, size, size), "node B");
}

/// Nodes that spin before parking ([`LoopOptions::spin`]) carry flows
/// like parking ones: one after another (each new flow finds the nodes
/// spinning after the last one) and many at once, byte for byte.
pub fn spinning<R: Reactor>() {
    let options = LoopOptions {
        spin: Duration::from_micros(200),
    };
    let mesh = mesh_with::<R>(Server::Echo, AuthzPolicy::default(), options);
    for size in [1, 1 << 20, 3] {
        let data = pattern(size);
        let got = exchange(mesh.tunnel, &data);
        assert!(got == data, "echo of {size} B came back altered");
        let size = size as u64;
        assert_eq!(mesh.closed(0), (CloseReason::Done, size, size), "node A");
        assert_eq!(mesh.closed(1), (CloseReason::Done, size, size), "node B");
    }
    std::thread::scope(|s| {
        for i in 0..8 {
            let tunnel = mesh.tunnel;
            s.spawn(move || {
                let data: Vec<u8> = pattern(64 << 10).iter().map(|b| b ^ i).collect();
                assert!(exchange(tunnel, &data) == data, "flow {i}");
            });
        }
    });
}

/// `flows` clients at once, each with its own bytes, over one mesh: every
/// one gets exactly its own bytes back and every flow ends done.
pub fn concurrent<R: Reactor>(flows: usize, size: usize) {
    let mesh = mesh::<R>(Server::Echo, AuthzPolicy::default());
    std::thread::scope(|s| {
        for i in 0..flows {
            let tunnel = mesh.tunnel;
            s.spawn(move || {
                let data: Vec<u8> = pattern(size + i).split_off(i);
                let got = exchange(tunnel, &data);
                assert!(
                    got == data,
                    "flow {i}: {} B of {} came back right",
                    got.len(),
                    size
                );
            });
        }
    });
    for n in 0..2 {
        for _ in 0..flows {
            let (reason, sent, received) = mesh.closed(n);
            assert_eq!(reason, CloseReason::Done, "node {n}");
            assert_eq!((sent, received), (size as u64, size as u64), "node {n}");
        }
    }
}

/// Bytes node A holds: read but not passed on, or produced but not yet
/// taken by a socket. Ids are small integers shared by every kind of
/// object, so a scan of the first thousand finds every socket of a test.
fn held_by(node: &Handle) -> usize {
    node.inspect(|n| (1..1000).map(|i| n.buffered(SockId(i))).sum())
        .unwrap()
}

/// A target that never reads: node A must pause its client socket (the
/// adapter must then stop reading it) instead of holding what the client
/// keeps writing. The client offers 64 MiB; A may hold about one read per
/// socket plus one TLS buffer, whenever it is sampled.
pub fn stalled_target<R: Reactor>() {
    let mesh = mesh::<R>(Server::Stalled, AuthzPolicy::default());
    let conn = TcpStream::connect(mesh.tunnel).unwrap();
    conn.set_write_timeout(Some(HANG)).unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let mut writer = conn.try_clone().unwrap();
    let count = Arc::clone(&written);
    let writing = std::thread::spawn(move || {
        let chunk = pattern(64 * 1024);
        for _ in 0..1024 {
            if writer.write_all(&chunk).is_err() {
                return;
            }
            count.fetch_add(chunk.len(), Ordering::SeqCst);
        }
    });
    let mut most = 0;
    for _ in 0..100 {
        most = most.max(held_by(&mesh.nodes[0]));
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = conn.shutdown(Shutdown::Both);
    writing.join().unwrap();
    assert!(
        written.load(Ordering::SeqCst) < 64 << 20,
        "a target that never reads took all 64 MiB"
    );
    assert!(most <= 256 * 1024, "node A held {most} B");
}

/// A new policy handed to the running server applies to the next flow.
pub fn reconfigure<R: Reactor>() {
    let mesh = mesh::<R>(Server::Echo, AuthzPolicy::default());
    assert_eq!(exchange(mesh.tunnel, b"before"), b"before");
    let config = server_config(&mesh.pki, mesh.target.addr, deny_cart());
    mesh.nodes[1].reconfigure(config).unwrap();
    mesh.wait_for(1, |e| {
        matches!(e, NodeEvent::ConfigApplied { .. }).then_some(())
    });
    assert!(exchange(mesh.tunnel, b"after").is_empty());
    mesh.wait_for(1, |e| {
        matches!(e, NodeEvent::PolicyDenied { .. }).then_some(())
    });
    assert_eq!(mesh.target.accepted.load(Ordering::SeqCst), 1);
}

fn deny_cart() -> AuthzPolicy {
    let mut rule = AuthzRule::new(RuleName::new("no-cart").unwrap(), Action::Deny);
    rule.when = Conditions {
        principals: vec![PrincipalPattern::new(spiffe("cart").as_str()).unwrap()],
        ..Conditions::default()
    };
    AuthzPolicy::new(vec![rule])
}

/// An export whose target is `localhost:PORT`: the runtime resolves the
/// name (whatever order `::1` and `127.0.0.1` come in, the node tries
/// the next address) and the bytes reach the target on 127.0.0.1.
pub fn export_by_name<R: Reactor>() {
    let pki = Pki::new();
    let target = target_server(Server::Echo);
    let mut b = server_config(&pki, target.addr, AuthzPolicy::default());
    b.exports = Exports::new(vec![Export {
        service: ServiceName::parse("echo.shop").unwrap(),
        port: 80,
        target: Target::Host {
            host: "localhost".into(),
            port: target.addr.port(),
        },
    }])
    .unwrap();
    let (b_tx, b_events) = mpsc::channel();
    let (b_addrs, _b_node) = start::<R>(b, b_tx).unwrap();
    let (a_tx, _a_events) = mpsc::channel();
    let (a_addrs, _a_node) = start::<R>(client_config(&pki, b_addrs[0]), a_tx).unwrap();
    assert_eq!(exchange(a_addrs[0], b"by name"), b"by name");
    assert_eq!(target.accepted.load(Ordering::SeqCst), 1);
    let reason = loop {
        match b_events.recv_timeout(HANG).expect("node B's FlowClosed") {
            NodeEvent::FlowClosed { reason, .. } => break reason,
            _ => continue,
        }
    };
    assert_eq!(reason, CloseReason::Done);
}

/// A flow the policy denies gets no byte through, never reaches the target,
/// and the server names the rule.
pub fn denied<R: Reactor>() {
    let mesh = mesh::<R>(Server::Echo, deny_cart());
    let got = exchange(mesh.tunnel, b"secret");
    assert!(got.is_empty(), "a denied flow carried {} B", got.len());
    let rule = mesh.wait_for(1, |e| match e {
        NodeEvent::PolicyDenied { decision, .. } => Some(decision.rule),
        _ => None,
    });
    assert_eq!(
        rule.map(|r| r.as_str().to_owned()).as_deref(),
        Some("no-cart")
    );
    let (reason, sent, received) = mesh.closed(0);
    assert_eq!(reason, CloseReason::Refused { status: 401 });
    assert_eq!(received, 0);
    assert!(sent <= 6);
    assert_eq!(mesh.target.accepted.load(Ordering::SeqCst), 0);
}

/// The client's FIN reaches the target while the other direction stays
/// open: the target answers only after EOF, and the answer arrives.
pub fn half_close<R: Reactor>() {
    let mesh = mesh::<R>(Server::PongAfterEof, AuthzPolicy::default());
    let got = exchange(mesh.tunnel, b"ping");
    assert_eq!(got, b"pong");
    let at_target = mesh.target.received.recv_timeout(HANG).unwrap();
    assert_eq!(at_target, b"ping");
    assert_eq!(mesh.closed(0), (CloseReason::Done, 4, 4), "node A");
    assert_eq!(mesh.closed(1), (CloseReason::Done, 4, 4), "node B");
}

/// Node A alone, its mesh peer at `hbone`; returns the tunnel address, the
/// events and the node.
fn lone_client<R: Reactor>(
    hbone: SocketAddr,
    handshake: Duration,
) -> (SocketAddr, Receiver<NodeEvent>, Handle) {
    let mut a = client_config(&Pki::new(), hbone);
    a.timeouts.tls_handshake = handshake;
    let (tx, events) = mpsc::channel();
    let (addrs, node) = start::<R>(a, tx).unwrap();
    (addrs[0], events, node)
}

fn handshake_failure(events: &Receiver<NodeEvent>) -> HandshakeError {
    loop {
        match events.recv_timeout(HANG).expect("a HandshakeFailed event") {
            NodeEvent::HandshakeFailed { error, .. } => return error,
            _ => continue,
        }
    }
}

/// A peer that accepts TCP but never answers the TLS handshake: the
/// node's handshake deadline (a runtime timer) ends it and the client's
/// connection closes without data.
pub fn silent_peer<R: Reactor>() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let (tunnel, events, _node) =
        lone_client::<R>(silent.local_addr().unwrap(), Duration::from_millis(200));
    let got = exchange(tunnel, b"hello");
    assert!(got.is_empty());
    assert_eq!(handshake_failure(&events), HandshakeError::Timeout);
    // Held until here so the connection stays silent rather than refused.
    drop(silent);
}

/// A peer address where nothing listens: the failed connect reaches the
/// node and the client's connection closes without data.
pub fn refused_peer<R: Reactor>() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let (tunnel, events, _node) = lone_client::<R>(addr, Duration::from_secs(60));
    let got = exchange(tunnel, b"hello");
    assert!(got.is_empty());
    assert_eq!(handshake_failure(&events), HandshakeError::Transport);
}

/// A running node told to move its front end to a port that is taken:
/// the old listener closes (connections there are refused), and the
/// failed bind is an event naming the address and the error, not the end
/// of the node.
pub fn listener_moved_to_busy_port<R: Reactor>() {
    let (tunnel, events, node) = lone_client::<R>("127.0.0.1:1".parse().unwrap(), HANG);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let mut moved = client_config(&Pki::new(), "127.0.0.1:1".parse().unwrap());
    moved.fronts[0].listen = busy;
    node.reconfigure(moved).unwrap();
    let failed = loop {
        match events.recv_timeout(HANG).expect("a ListenFailed event") {
            NodeEvent::ListenFailed { addr, error } => break (addr, error),
            _ => continue,
        }
    };
    assert_eq!(failed, (busy, ListenError::AddrInUse));
    // Stopped before the failed bind was even tried (one drain, in order).
    let refused = TcpStream::connect(tunnel).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // Still running: it answers a look.
    assert_eq!(node.inspect(|n| n.flow_count()).unwrap(), 0);
}

/// A front-end port that is taken: starting the node fails with the
/// bind error instead of running without the listener.
pub fn busy_port<R: Reactor>() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a = client_config(&Pki::new(), "127.0.0.1:1".parse().unwrap());
    a.fronts[0].listen = taken.local_addr().unwrap();
    let (tx, _events) = mpsc::channel();
    match start::<R>(a, tx) {
        Ok(_) => panic!("a node started on a port that is in use"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}"),
    }
}
