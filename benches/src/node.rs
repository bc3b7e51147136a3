//! Two real mesh nodes in one thread, wired in memory: the whole agent
//! path of a tunnel (front end, pool, mutual TLS with ring, HTTP/2, relay)
//! with no sockets.
//!
//! Node A fronts `sink.bench:80` on a tunnel listener; node B exports it
//! to a target. The host here plays every socket: bytes a node writes to
//! a mesh socket are delivered as one read to the other node (one copy,
//! as a kernel would make), bytes for the application or the target are
//! counted (and echoed, for churn) without being kept. `PauseRead` is
//! honoured: reads for a paused socket wait until it resumes. The clock
//! advances one tick per round, and due timers run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use warren_proto::drive::{self, Host};
use warren_proto::front::Target as FrontTarget;
use warren_proto::node::{
    Endpoint, FrontConfig, FrontKind, Input, ListenerId, Node, NodeConfig, NodeEvent, SockId,
};
use warren_proto::policy::{Export, Exports, ServiceName, Target};
use warren_proto::time::Instant;

use crate::mtls::{identities, spiffe};
use crate::MIB;

const A: usize = 0;
const B: usize = 1;
const FRONT: &str = "127.0.0.1:9000";
const HBONE: &str = "10.0.0.2:15008";
const TARGET: &str = "127.0.0.2:8080";
const APP: &str = "127.0.0.1:40000";
/// The most an application write hands node A at once (a socket read).
pub const APP_READ: usize = 256 * 1024;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

/// Something for one node's socket, delivered in order.
#[derive(Debug)]
enum Delivery {
    /// A connection to one of the node's listeners, from the other node's
    /// socket.
    Accept {
        listener: ListenerId,
        from: (usize, SockId),
    },
    Connected,
    Received(Vec<u8>),
    ReadClosed,
    Reset,
}

/// What the target does with the bytes it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetMode {
    /// Count and drop.
    Sink,
    /// Send back, and half-close after the client did.
    Echo,
}

/// The sockets of both nodes and the application and target around them.
#[derive(Debug)]
struct Wires {
    listeners: BTreeMap<SocketAddr, (usize, ListenerId)>,
    /// Mesh sockets: each end's peer.
    links: BTreeMap<(usize, SockId), (usize, SockId)>,
    /// Pending deliveries, in order.
    queue: VecDeque<((usize, SockId), Delivery)>,
    /// Sockets whose reads wait, and what waits for them.
    paused: BTreeSet<(usize, SockId)>,
    parked: BTreeMap<(usize, SockId), VecDeque<Delivery>>,
    /// Node B's sockets to the target.
    targets: BTreeSet<SockId>,
    mode: TargetMode,
    /// Bytes the target got, and the application got back.
    target_bytes: u64,
    app_bytes: u64,
    /// Application sockets on node A that the node half-closed or closed.
    app_done: u64,
    /// Those sockets, so a half-close followed by a close counts once.
    app_ended: BTreeSet<(usize, SockId)>,
    events: Vec<NodeEvent>,
}

/// The `drive::Host` of one node over the shared wires.
struct NodeSide<'a> {
    me: usize,
    wires: &'a mut Wires,
}

impl Host for NodeSide<'_> {
    fn listen(&mut self, listener: ListenerId, addr: SocketAddr) {
        self.wires.listeners.insert(addr, (self.me, listener));
    }

    fn stop_listening(&mut self, listener: ListenerId) {
        let me = self.me;
        self.wires
            .listeners
            .retain(|_, &mut (node, l)| (node, l) != (me, listener));
    }

    /// The bench's configurations name no hosts, so no lookup is ever asked
    /// for; one that were would stay unanswered and fail the run's wait.
    fn resolve(&mut self, _sock: SockId, _host: &str) {}

    fn connect(&mut self, sock: SockId, to: SocketAddr) {
        let me = (self.me, sock);
        match self.wires.listeners.get(&to) {
            Some(&(node, listener)) if node != self.me => {
                self.wires
                    .queue
                    .push_back(((node, sock), Delivery::Accept { listener, from: me }));
            }
            _ => {
                self.wires.targets.insert(sock);
                self.wires.queue.push_back((me, Delivery::Connected));
            }
        }
    }

    fn write(&mut self, sock: SockId, data: &[u8]) -> usize {
        let w = &mut *self.wires;
        if let Some(peer) = w.links.get(&(self.me, sock)) {
            w.queue
                .push_back((*peer, Delivery::Received(data.to_vec())));
        } else if self.me == B && w.targets.contains(&sock) {
            w.target_bytes += data.len() as u64;
            if w.mode == TargetMode::Echo {
                w.queue
                    .push_back(((B, sock), Delivery::Received(data.to_vec())));
            }
        } else {
            w.app_bytes += data.len() as u64;
        }
        data.len()
    }

    fn pause_read(&mut self, sock: SockId) {
        self.wires.paused.insert((self.me, sock));
    }

    fn resume_read(&mut self, sock: SockId) {
        let key = (self.me, sock);
        self.wires.paused.remove(&key);
        // What waited was queued before anything still queued for it.
        if let Some(parked) = self.wires.parked.remove(&key) {
            for d in parked.into_iter().rev() {
                self.wires.queue.push_front((key, d));
            }
        }
    }

    fn shutdown_write(&mut self, sock: SockId) {
        let w = &mut *self.wires;
        if let Some(peer) = w.links.get(&(self.me, sock)) {
            w.queue.push_back((*peer, Delivery::ReadClosed));
        } else if self.me == B && w.targets.contains(&sock) {
            if w.mode == TargetMode::Echo {
                w.queue.push_back(((B, sock), Delivery::ReadClosed));
            }
        } else if w.app_ended.insert((self.me, sock)) {
            w.app_done += 1;
        }
    }

    fn close(&mut self, sock: SockId, reset: bool) {
        let w = &mut *self.wires;
        let key = (self.me, sock);
        w.paused.remove(&key);
        w.parked.remove(&key);
        if let Some(peer) = w.links.remove(&key) {
            w.links.remove(&peer);
            let d = if reset {
                Delivery::Reset
            } else {
                Delivery::ReadClosed
            };
            w.queue.push_back((peer, d));
        } else if self.me == A && !reset && w.app_ended.insert(key) {
            // A graceful close sends the FIN without a shutdown first.
            w.app_done += 1;
        }
        w.targets.remove(&sock);
    }

    fn event(&mut self, event: NodeEvent) {
        if matches!(
            event,
            NodeEvent::HandshakeFailed { .. } | NodeEvent::H2Error { .. }
        ) {
            self.wires.events.push(event);
        }
    }
}

/// Node A (client agent) and node B (exporting agent) and the wires.
pub struct NodePair {
    nodes: [Node; 2],
    deadlines: [Option<Instant>; 2],
    wires: Wires,
    now: Instant,
    front: ListenerId,
    chunk: Vec<u8>,
}

impl NodePair {
    /// Two nodes whose target is a sink or an echo; listeners bound, no
    /// mesh connection yet.
    pub fn new(mode: TargetMode) -> NodePair {
        let (id_a, id_b) = identities();
        let service = ServiceName::parse("sink.bench").expect("service");
        let mut a = NodeConfig::new(id_a);
        a.h2 = crate::bulk::config();
        a.fronts.push(FrontConfig {
            listen: addr(FRONT),
            kind: FrontKind::Tunnel {
                to: FrontTarget::parse("sink.bench:80").expect("target"),
            },
        });
        a.directory.insert(
            service.clone(),
            vec![Endpoint {
                hbone: addr(HBONE),
                identity: spiffe("server"),
            }],
        );
        let mut b = NodeConfig::new(id_b);
        b.h2 = crate::bulk::config();
        b.hbone_listen = Some(addr(HBONE));
        b.exports = Exports::new(vec![Export {
            service,
            port: 80,
            target: Target::Addr(addr(TARGET)),
        }])
        .expect("exports");
        let now = Instant::ZERO;
        let mut pair = NodePair {
            nodes: [Node::new(a, now), Node::new(b, now)],
            deadlines: [None; 2],
            wires: Wires {
                listeners: BTreeMap::new(),
                links: BTreeMap::new(),
                queue: VecDeque::new(),
                paused: BTreeSet::new(),
                parked: BTreeMap::new(),
                targets: BTreeSet::new(),
                mode,
                target_bytes: 0,
                app_bytes: 0,
                app_done: 0,
                app_ended: BTreeSet::new(),
                events: Vec::new(),
            },
            now,
            front: ListenerId(0),
            chunk: (0..MIB).map(|i| i as u8).collect(),
        };
        for n in [A, B] {
            pair.drain(n);
        }
        pair.front = pair
            .wires
            .listeners
            .get(&addr(FRONT))
            .map(|(_, l)| *l)
            .expect("node A listens on its front");
        pair
    }

    fn drain(&mut self, n: usize) {
        let mut side = NodeSide {
            me: n,
            wires: &mut self.wires,
        };
        self.deadlines[n] = drive::drain(&mut self.nodes[n], &mut side, self.now).expect("drain");
    }

    fn input(&mut self, n: usize, input: Input<'_>) {
        let mut side = NodeSide {
            me: n,
            wires: &mut self.wires,
        };
        self.deadlines[n] =
            drive::step(&mut self.nodes[n], &mut side, self.now, input).expect("node input");
    }

    /// Advances the clock one tick and runs due timers.
    fn tick(&mut self) {
        self.now = self.now + crate::pair::TICK;
        for n in [A, B] {
            if self.deadlines[n].is_some_and(|d| d <= self.now) {
                self.input(n, Input::Timeout);
            }
        }
    }

    /// Delivers everything queued (and what that causes) until quiet;
    /// returns whether anything was delivered.
    fn settle(&mut self) -> bool {
        let mut any = false;
        while let Some(((n, sock), d)) = self.wires.queue.pop_front() {
            any = true;
            let is_read = matches!(d, Delivery::Received(_) | Delivery::ReadClosed);
            if is_read && self.wires.paused.contains(&(n, sock)) {
                self.wires.parked.entry((n, sock)).or_default().push_back(d);
                continue;
            }
            match d {
                Delivery::Accept { listener, from } => {
                    let mut side = NodeSide {
                        me: n,
                        wires: &mut self.wires,
                    };
                    // Wired before the drain, which may already write.
                    let register = |side: &mut NodeSide<'_>, accepted| {
                        side.wires.links.insert(from, (n, accepted));
                        side.wires.links.insert((n, accepted), from);
                    };
                    let (_, deadline) = drive::accept(
                        &mut self.nodes[n],
                        &mut side,
                        self.now,
                        listener,
                        addr(APP),
                        register,
                    )
                    .expect("accept");
                    self.deadlines[n] = deadline;
                    self.wires.queue.push_back((from, Delivery::Connected));
                }
                Delivery::Connected => self.input(
                    n,
                    Input::Connected {
                        sock,
                        result: Ok(()),
                    },
                ),
                Delivery::Received(data) => self.input(n, Input::Received { sock, data: &data }),
                Delivery::ReadClosed => self.input(n, Input::ReadClosed { sock }),
                Delivery::Reset => self.input(n, Input::Reset { sock }),
            }
        }
        any
    }

    /// An application connects to node A's tunnel; returns its socket on A.
    fn connect_app(&mut self) -> SockId {
        let mut side = NodeSide {
            me: A,
            wires: &mut self.wires,
        };
        let (sock, deadline) = drive::accept(
            &mut self.nodes[A],
            &mut side,
            self.now,
            self.front,
            addr(APP),
            |_, _| {},
        )
        .expect("accept on the front");
        self.deadlines[A] = deadline;
        sock
    }

    /// One flow through the tunnel that sends `total` bytes (to a sink
    /// target) in reads of [`APP_READ`]; returns once the target has them
    /// all. The flow stays open, so calls continue the same stream.
    pub fn bulk(&mut self, app: SockId, total: u64) {
        let goal = self.wires.target_bytes + total;
        let mut sent = 0u64;
        while self.wires.target_bytes < goal {
            self.tick();
            let mut moved = false;
            while sent < total && !self.wires.paused.contains(&(A, app)) {
                let offset = (sent % MIB as u64) as usize;
                let want = (total - sent).min(APP_READ.min(MIB - offset) as u64) as usize;
                let chunk = std::mem::take(&mut self.chunk);
                self.input(
                    A,
                    Input::Received {
                        sock: app,
                        data: &chunk[offset..offset + want],
                    },
                );
                self.chunk = chunk;
                sent += want as u64;
                moved = true;
            }
            moved |= self.settle();
            assert!(moved, "node bulk stalled at {}", self.wires.target_bytes);
        }
        self.check_events();
    }

    /// Opens the long-lived flow the bulk runs use and waits for its
    /// tunnel; returns the application's socket on node A.
    pub fn open_bulk_flow(&mut self) -> SockId {
        let app = self.connect_app();
        self.bulk(app, 1);
        app
    }

    /// One flow: connect, send `payload`, half-close, read the echo until
    /// the node half-closes back. Returns the echoed bytes.
    pub fn echo_flow(&mut self, payload: &[u8]) -> u64 {
        let (before, done) = (self.wires.app_bytes, self.wires.app_done);
        let app = self.connect_app();
        self.input(
            A,
            Input::Received {
                sock: app,
                data: payload,
            },
        );
        self.input(A, Input::ReadClosed { sock: app });
        while self.wires.app_done == done {
            self.tick();
            assert!(self.settle(), "echo flow stalled");
        }
        // Let both nodes finish the flow (closing frames, target socket).
        self.settle();
        self.check_events();
        self.wires.app_bytes - before
    }

    /// Flows alive on both nodes.
    pub fn flows(&self) -> usize {
        self.nodes.iter().map(Node::flow_count).sum()
    }

    /// Mesh connections node A opened (the pool).
    pub fn pooled_connections(&self) -> usize {
        self.nodes[A].connection_count()
    }

    fn check_events(&self) {
        assert!(self.wires.events.is_empty(), "{:?}", self.wires.events);
    }
}

/// `flows` echo flows of `payload` one after another on a warm pool;
/// returns the echoed bytes (checked: `flows * payload.len()`).
pub fn churn(pair: &mut NodePair, flows: usize, payload: &[u8]) -> u64 {
    let total: u64 = (0..flows).map(|_| pair.echo_flow(payload)).sum();
    assert_eq!(total, (flows * payload.len()) as u64, "echo lost bytes");
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_reaches_the_target_and_flows_reuse_one_connection() {
        let mut pair = NodePair::new(TargetMode::Sink);
        let app = pair.open_bulk_flow();
        pair.bulk(app, 20 * MIB as u64 + 3);
        assert_eq!(pair.wires.target_bytes, 20 * MIB as u64 + 4);
        assert_eq!(pair.flows(), 2, "the flow is open on both nodes");

        let mut echo = NodePair::new(TargetMode::Echo);
        assert_eq!(churn(&mut echo, 50, &[0x5a; 100]), 5000);
        assert_eq!(echo.flows(), 0, "every flow closed on both nodes");
        assert_eq!(echo.pooled_connections(), 1, "the pool kept one connection");
    }
}
