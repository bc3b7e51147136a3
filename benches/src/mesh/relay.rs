//! The relayed path: agent A (tunnel front) → hub → agent B (export to the
//! target), where B listens nowhere and both agents only dial the hub;
//! three child processes, as deployed. With end-to-end mode (the default
//! per export) A and B run an inner mTLS session through the hub's pair
//! stream; with `plain`, B announces the export `end_to_end = false` and
//! the hub relays the flow's plaintext.
//!
//! Also the hub's memory under a slow receiver: flows whose target never
//! reads, pushed until the path stalls, with the hub's RSS growth set
//! against what its configured windows and buffers allow it to hold.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use warren_proto::control::{AnnouncePolicy, ExportRule, ServiceAllowance, ServicePort};
use warren_proto::front::Target as FrontTarget;
use warren_proto::hub::{AgentLimits, HubLinks, HubRole, Rate, Route};
use warren_proto::node::{FrontConfig, FrontKind, MeshIdentity, NodeConfig};
use warren_proto::policy::{Export, Exports, PrincipalPattern, ServiceName, Target};
use warren_proto::tls::DEFAULT_BUFFER_LIMIT;

use super::agents::{agent_child, ca_epoch, SelfExec};
use super::peers::{Missing, Relay};
use super::procs::tree_rss;
use super::target::{TargetServer, MODE_ECHO, MODE_HOLD};

/// The hub's service account (in the bench namespace, like the agents).
pub const HUB_SA: &str = "hub";
/// What the agents require of the hub's certificate.
const HUB_PATTERN: &str = "spiffe://bench.test/ns/bench/sa/hub*";
/// How long a new relayed path may take to carry its first flow (the
/// agents dial the hub, B announces, A gets the registry).
const READY_WAIT: Duration = Duration::from_secs(10);

/// Starts the hub, agent B (dials the hub, exports `sink.bench:80` →
/// `target`, end to end unless `plain`) and agent A (dials the hub, tunnel
/// front to the service), each a child process on `runtime`; returns once
/// a flow got through. The hub is the relay's first daemon.
pub fn path_relayed(
    me: &SelfExec,
    runtime: &str,
    plain: bool,
    target: SocketAddr,
    dir: &std::path::Path,
) -> Result<Relay, Missing> {
    let now = ca_epoch()?;
    let (hub, hub_addr) = agent_child(me, runtime, &[&now, "hub", "127.0.0.1:0"], dir)?;
    let hub_addr = hub_addr.to_string();
    let target = target.to_string();
    // One argument fewer than a `plain` flag: `warren bench --agent` takes at most five.
    let export = if plain {
        "relay-export-plain"
    } else {
        "relay-export"
    };
    let (b, _) = agent_child(me, runtime, &[&now, export, &hub_addr, &target], dir)?;
    let (a, entry) = agent_child(me, runtime, &[&now, "relay-front", &hub_addr], dir)?;
    let relay = Relay {
        entry,
        daemons: vec![hub, a, b],
    };
    wait_first_flow(entry)?;
    Ok(relay)
}

/// Retries one echo flow until it works (the registry reached A).
fn wait_first_flow(entry: SocketAddr) -> Result<(), Missing> {
    let t0 = Instant::now();
    loop {
        let attempt = || -> io::Result<()> {
            let mut c = TcpStream::connect(entry)?;
            c.set_read_timeout(Some(Duration::from_secs(2)))?;
            c.write_all(&[MODE_ECHO])?;
            c.read_exact(&mut [0u8; 1])
        };
        match attempt() {
            Ok(()) => return Ok(()),
            Err(e) if t0.elapsed() > READY_WAIT => {
                return Err(format!("no relayed flow within {READY_WAIT:?}: {e}"))
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The node configuration of a relayed-path role, or None when `role` is
/// not one: `hub <listen>`, `relay-export <hub> <target>`,
/// `relay-export-plain <hub> <target>` (the export's `end_to_end = false`),
/// `relay-front <hub>`. `identity` makes the role's identity from a
/// service account name.
pub fn relay_config(
    role: &str,
    addr: SocketAddr,
    rest: &[String],
    service: ServiceName,
    identity: &dyn Fn(&str, u64) -> Result<MeshIdentity, String>,
) -> Option<Result<NodeConfig, String>> {
    let build = || -> Result<NodeConfig, String> {
        let pattern = |p: &str| PrincipalPattern::new(p).map_err(|e| format!("{e:?}"));
        let links = || -> Result<HubLinks, String> {
            Ok(HubLinks {
                hubs: vec![addr],
                identities: vec![pattern(HUB_PATTERN)?],
                route: Route::HubOnly,
                ..HubLinks::default()
            })
        };
        match (role, rest) {
            ("hub", []) => {
                let mut h = NodeConfig::new(identity(HUB_SA, 4)?);
                h.hbone_listen = Some(addr);
                h.hub = Some(HubRole {
                    announce: AnnouncePolicy::new(vec![ExportRule {
                        principals: vec![pattern("spiffe://bench.test/*")?],
                        services: vec![ServiceAllowance::OwnNamespace],
                    }]),
                    // The default (200 CONNECTs/s per agent, burst 400) would
                    // refuse the setup loop's plaintext flows: the bench
                    // measures the relay, not the limiter.
                    limits: AgentLimits {
                        connects: Rate {
                            per_second: 1_000_000,
                            burst: 1_000_000,
                        },
                        ..AgentLimits::default()
                    },
                    ..HubRole::default()
                });
                Ok(h)
            }
            ("relay-export" | "relay-export-plain", [target]) => {
                let mut b = NodeConfig::new(identity("sink", 3)?);
                b.hub_links = links()?;
                let target: SocketAddr = target.parse().map_err(|_| "bad target")?;
                if role == "relay-export-plain" {
                    b.relay_plaintext.insert(ServicePort {
                        service: service.clone(),
                        port: 80,
                    });
                }
                b.exports = Exports::new(vec![Export {
                    service,
                    port: 80,
                    target: Target::Addr(target),
                }])
                .map_err(|e| format!("{e:?}"))?;
                Ok(b)
            }
            ("relay-front", []) => {
                let mut a = NodeConfig::new(identity("client", 2)?);
                a.hub_links = links()?;
                a.fronts.push(FrontConfig {
                    listen: ([127, 0, 0, 1], 0).into(),
                    kind: FrontKind::Tunnel {
                        to: FrontTarget::parse("sink.bench:80").map_err(|e| format!("{e:?}"))?,
                    },
                });
                Ok(a)
            }
            _ => Err(format!("bad arguments for {role}: {rest:?}")),
        }
    };
    matches!(
        role,
        "hub" | "relay-export" | "relay-export-plain" | "relay-front"
    )
    .then(build)
}

/// The hub's memory with flows whose receiver never reads.
#[derive(Clone, Debug)]
pub struct SlowReceiver {
    /// Flows opened.
    pub flows: usize,
    /// Hub streams the flows ride: one per flow relayed in plaintext, one
    /// pair stream for all of them end to end.
    pub hub_streams: usize,
    /// Bytes the clients got into the path before every flow stalled.
    pub pushed: u64,
    /// Flows that stalled before reaching the per-flow cap (a flow that
    /// reached it did not fill the path; the figure wants all stalled).
    pub stalled: usize,
    /// Bytes pushed that had not reached the target when the drain wait
    /// ended (0: the next measurement had the path to itself).
    pub undrained: u64,
    /// How long the drain took, seconds.
    pub drain_s: f64,
    /// The hub process's RSS growth over the run, bytes.
    pub hub_growth: u64,
    /// The hub's configured stream window (receive), bytes.
    pub stream_window: u64,
    /// The hub's configured connection window (receive), bytes.
    pub connection_window: u64,
    /// What one hub connection may hold on its way out: the HTTP/2 send
    /// buffer plus the TLS session's outgoing buffer, bytes.
    pub send_buffer: u64,
}

impl SlowReceiver {
    /// Hub RSS growth per flow, KiB.
    pub fn kib_per_flow(&self) -> f64 {
        self.hub_growth as f64 / self.flows.max(1) as f64 / 1024.0
    }

    /// The most the hub may hold if its configuration bounds it: each
    /// stalled stream's bytes wait in the receiving leg (one stream window
    /// per hub stream, one connection window for A's forward connection),
    /// plus what the two legs' connections buffer on the way out.
    pub fn bound(&self) -> u64 {
        (self.hub_streams as u64 * self.stream_window).min(self.connection_window)
            + 2 * self.send_buffer
    }
}

/// No byte moved on any slow-receiver flow for this long: the path is full.
const STALLED: Duration = Duration::from_millis(100);

/// Opens `flows` flows through `path` (end to end or not: `e2e`) whose
/// target never reads, pushes up to `per_flow` bytes on each until the path
/// stops taking them, and reads the hub's RSS (the path's first daemon)
/// before and after; then lets the target read again and waits (at most
/// `drain_wait`) until every byte pushed arrived, so the path's windows
/// and socket buffers are empty for the next measurement.
pub fn slow_receiver(
    path: &Relay,
    target: &TargetServer,
    e2e: bool,
    flows: usize,
    per_flow: u64,
    drain_wait: Duration,
) -> io::Result<SlowReceiver> {
    let hub = path
        .daemons
        .first()
        .map(|d| d.child.id())
        .ok_or_else(|| io::Error::other("no hub"))?;
    target.release_holds.store(false, Ordering::Relaxed);
    target.drained.store(0, Ordering::Relaxed);
    let before = tree_rss(&[hub]);
    let mut conns = Vec::with_capacity(flows);
    for _ in 0..flows {
        let mut c = TcpStream::connect(path.entry)?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.write_all(&[MODE_HOLD])?;
        // The target's `!`: the flow is set up end to end.
        c.read_exact(&mut [0u8; 1])?;
        c.set_nonblocking(true)?;
        conns.push(c);
    }
    let chunk = vec![0x5a; 64 * 1024];
    // Round-robin over the flows, each write taking what its socket takes
    // now, until every flow reached `per_flow` or nothing moved on any of
    // them for [`STALLED`]: every flow fills while the others wait.
    let mut sent = vec![0u64; conns.len()];
    let mut moved_at = Instant::now();
    while sent.iter().any(|&s| s < per_flow) && moved_at.elapsed() < STALLED {
        let mut moved = false;
        for (c, so_far) in conns.iter_mut().zip(sent.iter_mut()) {
            let want = per_flow.saturating_sub(*so_far).min(chunk.len() as u64) as usize;
            if want == 0 {
                continue;
            }
            match c.write(chunk.get(..want).unwrap_or(&chunk)) {
                Ok(n) => {
                    *so_far += n as u64;
                    moved |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if moved {
            moved_at = Instant::now();
        } else {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let pushed: u64 = sent.iter().sum();
    // Nothing moved for [`STALLED`]: the hub holds what it will hold.
    let after = tree_rss(&[hub]);
    target.release_holds.store(true, Ordering::Relaxed);
    drop(conns);
    let t0 = Instant::now();
    while target.drained.load(Ordering::Relaxed) < pushed && t0.elapsed() < drain_wait {
        thread::sleep(Duration::from_millis(5));
    }
    let h2 = warren_proto::h2::Config::default();
    Ok(SlowReceiver {
        flows,
        hub_streams: if e2e { 1 } else { flows },
        pushed,
        stalled: sent.iter().filter(|&&s| s < per_flow).count(),
        undrained: pushed.saturating_sub(target.drained.load(Ordering::Relaxed)),
        drain_s: t0.elapsed().as_secs_f64(),
        hub_growth: after.saturating_sub(before),
        stream_window: u64::from(h2.initial_stream_window),
        connection_window: u64::from(h2.initial_connection_window),
        send_buffer: u64::from(h2.max_send_buffer) + DEFAULT_BUFFER_LIMIT as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_sim::certs::{SimCa, Validity};

    const MIB: u64 = 1 << 20;

    fn slow(hub_streams: usize) -> SlowReceiver {
        SlowReceiver {
            flows: 64,
            hub_streams,
            pushed: 0,
            stalled: 64,
            undrained: 0,
            drain_s: 0.0,
            hub_growth: 0,
            stream_window: 4 * MIB,
            connection_window: 16 * MIB,
            send_buffer: MIB,
        }
    }

    #[test]
    fn bound_is_stream_windows_capped_by_the_connection_window_plus_two_send_buffers() {
        // End to end: one pair stream.
        assert_eq!(slow(1).bound(), 4 * MIB + 2 * MIB);
        assert_eq!(slow(3).bound(), 12 * MIB + 2 * MIB);
        // Plaintext, many flows: A's forward connection window caps it.
        assert_eq!(slow(64).bound(), 16 * MIB + 2 * MIB);
        let grown = SlowReceiver {
            hub_growth: 64 * MIB,
            ..slow(64)
        };
        assert!((grown.kib_per_flow() - 1024.0).abs() < 1e-9);
    }

    fn configs(role: &str, rest: &[&str]) -> Option<Result<NodeConfig, String>> {
        let validity = Validity {
            not_before: 1_700_000_000,
            not_after: 1_700_086_400,
        };
        let ca = SimCa::new([9; 32], "bench CA", 1, validity).expect("CA");
        let make =
            |sa: &str, serial: u64| super::super::agents::identity(&ca, validity, sa, serial);
        let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
        let service = ServiceName::parse("sink.bench").expect("service");
        relay_config(role, ([127, 0, 0, 1], 9).into(), &rest, service, &make)
    }

    #[test]
    fn roles_configure_hub_and_agents_for_the_relayed_path() {
        let hub = configs("hub", &[]).expect("a role").expect("a config");
        let role = hub.hub.expect("serves as a hub");
        assert_eq!(role.limits.connects.per_second, 1_000_000);
        assert!(hub.hbone_listen.is_some());

        let b = configs("relay-export", &["127.0.0.1:80"])
            .expect("a role")
            .expect("a config");
        assert!(b.hbone_listen.is_none(), "B listens nowhere");
        assert!(b.relay_plaintext.is_empty(), "end to end by default");
        assert_eq!(b.hub_links.route, Route::HubOnly);

        let plain = configs("relay-export-plain", &["127.0.0.1:80"])
            .expect("a role")
            .expect("a config");
        assert_eq!(plain.relay_plaintext.len(), 1);

        let a = configs("relay-front", &[])
            .expect("a role")
            .expect("a config");
        assert_eq!(a.fronts.len(), 1);
        assert!(a.directory.is_empty(), "A knows B only from the hub");

        assert!(configs("export", &["127.0.0.1:80"]).is_none());
        assert!(configs("relay-front", &["extra"]).expect("a role").is_err());
    }
}
