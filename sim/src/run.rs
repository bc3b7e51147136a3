//! Running a scenario: build the world from the seed, play the workload
//! and the fault schedule in virtual time, check the invariants, and
//! report. Also sweeping seeds on threads, replaying with a readable log,
//! and minimizing a failing seed's scenario.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use warren_proto::control::{AnnouncePolicy, ExportRule, ServiceAllowance};
use warren_proto::front::Target as FrontTarget;
use warren_proto::hub::{HubLinks, HubRole};
use warren_proto::identity::SpiffeId;
use warren_proto::node::{Endpoint as MeshEndpoint, FrontConfig, FrontKind, NodeConfig};
use warren_proto::policy::{
    Action, AuthzPolicy, AuthzRule, Conditions, Export, Exports, Glob, PrincipalPattern, RuleName,
    Scope, ServiceName, Target,
};
use warren_proto::time::Instant;

use crate::app::{Endpoint, ServerMode, StreamClient, StreamServer};
use crate::invariants::{self, ClientMeta, Observed, Revocations, REVOKE_GRACE_MS};
use crate::net::{FaultId, HostId, LinkConfig, Net, NetConfig, NetStats};
use crate::node_host::{NodeHost, SimApp};
use crate::pki::{MeshPki, EPOCH_UNIX};
use crate::rng::Seed;
use crate::scenario::{FaultKind, FaultSpec, Mode, RuleSpec, Scenario};
use crate::trace::TraceHash;
use crate::world::World;

/// The HBONE port of every node.
const HBONE_PORT: u16 = 15008;
/// The port of every hub.
const HUB_PORT: u16 = warren_proto::hub::DEFAULT_HUB_PORT;
/// Longest hub redial delay: a restarted hub is found again well inside
/// a scenario's heal period.
const HUB_BACKOFF_MAX: Duration = Duration::from_secs(4);
/// Bytes a liveness probe sends.
const PROBE_BYTES: u64 = 4096;
/// How long probes get to finish, ms.
const PROBE_WINDOW_MS: u64 = 20_000;
/// Steps a run may take at most (a livelock guard).
const MAX_STEPS: u64 = 20_000_000;

/// What a run found.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The hash of the network trace: same scenario and seed, same hash.
    pub trace_hash: TraceHash,
    /// Invariant violations, each `kind: details`.
    pub violations: Vec<String>,
    /// Counters.
    pub stats: RunStats,
    /// The readable event log (replay only).
    pub log: Vec<String>,
}

/// Counters of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    /// World steps taken.
    pub steps: u64,
    /// Virtual time at the end, ms.
    pub virtual_ms: u64,
    /// The most bytes any node held for one socket (live nodes at the end).
    pub peak_buffered: usize,
    /// The most payload bytes a hub held for one relayed flow (live hubs
    /// at the end).
    pub peak_relay: usize,
    /// Client flows started (probes included).
    pub flows: u64,
    /// Flows the client saw succeed.
    pub flows_ok: u64,
    /// Faults applied.
    pub faults: u64,
    /// Network counters.
    pub net: NetStats,
}

/// Something to do at a time.
#[derive(Clone, Debug)]
enum Planned {
    StartClient {
        node: usize,
        port: u16,
        bytes: u64,
        max_write: usize,
        probe: bool,
        deadline_ms: Option<u64>,
        give_up_ms: Option<u64>,
    },
    Fault(FaultSpec),
    Undo(FaultSpec, Vec<FaultId>),
    /// A policy change has taken hold: note what revoked flows delivered.
    RevocationBaseline,
}

/// The live state of one run.
struct Sim<'a> {
    scenario: &'a Scenario,
    seed: u64,
    world: World<SimApp>,
    pki: MeshPki,
    hosts: Vec<HostId>,
    rogue: HostId,
    generation: Vec<u32>,
    /// Each node's certificate-clock skew, seconds.
    cert_skew: Vec<i64>,
    /// Rules in force per node, with the history of changes (ms, node, rules).
    rules: Vec<Vec<RuleSpec>>,
    policy_history: Vec<(u64, usize, Vec<RuleSpec>)>,
    revocations: Revocations,
    clients: BTreeMap<crate::net::SocketId, (u64, ClientMeta)>,
    next_client: u64,
    /// Applications taken off crashed hosts.
    archive: Vec<Endpoint>,
    /// Every HBONE node exporting each service, in node order: built once,
    /// so a node's directory costs O(its tunnels), not a walk over the
    /// whole mesh per node.
    exporters: BTreeMap<ServiceName, Vec<(usize, MeshEndpoint)>>,
    keep_log: bool,
    log: Vec<String>,
    violations: Vec<String>,
    stats: RunStats,
    /// Nodes a disruptive fault acted on (see [`Observed::disrupted`]).
    disrupted: std::collections::BTreeSet<usize>,
    /// Node pairs whose link a fault acted on, lower index first.
    disrupted_links: std::collections::BTreeSet<(usize, usize)>,
}

fn node_ip(i: usize) -> IpAddr {
    // 10.0.0.1 upwards, carrying into the third octet past 254 nodes.
    IpAddr::V4(Ipv4Addr::from(0x0A00_0001 + i as u32))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// The proto rule for a compact one.
fn authz_rule(i: usize, r: &RuleSpec) -> Result<AuthzRule, String> {
    let name = RuleName::new(&format!("rule-{i}")).map_err(|e| format!("{e:?}"))?;
    let mut rule = AuthzRule::new(name, if r.allow { Action::Allow } else { Action::Deny });
    if let Some(s) = &r.service {
        rule.scope = Scope::Service(ServiceName::parse(s).map_err(|e| format!("{s}: {e:?}"))?);
    }
    let mut when = Conditions::default();
    if let Some(p) = &r.principal {
        when.principals = vec![PrincipalPattern::new(p).map_err(|e| format!("{p}: {e:?}"))?];
    }
    if let Some(n) = &r.namespace {
        when.namespaces = vec![Glob::new(n).map_err(|e| format!("{n}: {e:?}"))?];
    }
    rule.when = when;
    Ok(rule)
}

/// `service.ns:port=target` → (service, port, target port).
fn parse_export(s: &str) -> Result<(String, u16, u16), String> {
    let (svc, target) = s.split_once('=').ok_or(format!("export {s:?}: no ="))?;
    let (name, port) = svc
        .rsplit_once(':')
        .ok_or(format!("export {s:?}: no port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("export {s:?}: bad port"))?;
    let target = target
        .parse()
        .map_err(|_| format!("export {s:?}: bad target"))?;
    Ok((name.to_string(), port, target))
}

/// `PORT=service.ns:port` → (port, target).
fn parse_tunnel(s: &str) -> Result<(u16, String), String> {
    let (port, to) = s.split_once('=').ok_or(format!("tunnel {s:?}: no ="))?;
    let port = port
        .parse()
        .map_err(|_| format!("tunnel {s:?}: bad port"))?;
    Ok((port, to.to_string()))
}

impl<'a> Sim<'a> {
    fn new(scenario: &'a Scenario, seed: u64, keep_log: bool) -> Result<Sim<'a>, String> {
        let n = &scenario.network;
        let link = LinkConfig {
            latency: Duration::from_micros(n.latency_us),
            jitter: Duration::from_micros(n.jitter_us),
            bandwidth: n.bandwidth,
            min_segment: n.min_segment.max(1),
            max_segment: n.max_segment.max(n.min_segment.max(1)),
            ..LinkConfig::default()
        };
        let config = NetConfig {
            link,
            trace_keep: if keep_log { 200_000 } else { 0 },
            ..NetConfig::default()
        };
        let mut net = Net::new(Seed(seed), config);
        let mut hosts = Vec::new();
        for i in 0..scenario.nodes.len() {
            hosts.push(net.add_host(node_ip(i)).map_err(|e| e.to_string())?);
        }
        let rogue = net
            .add_host(IpAddr::V4(Ipv4Addr::new(10, 0, 9, 9)))
            .map_err(|e| e.to_string())?;
        let mut sim = Sim {
            scenario,
            seed,
            world: World::new(net),
            pki: MeshPki::new(seed, &scenario.trust_domain)?,
            hosts,
            rogue,
            generation: vec![0; scenario.nodes.len()],
            cert_skew: vec![0; scenario.nodes.len()],
            rules: Vec::new(),
            policy_history: Vec::new(),
            revocations: Revocations::default(),
            clients: BTreeMap::new(),
            next_client: 0,
            archive: Vec::new(),
            exporters: BTreeMap::new(),
            keep_log,
            log: Vec::new(),
            violations: Vec::new(),
            stats: RunStats::default(),
            disrupted: std::collections::BTreeSet::new(),
            disrupted_links: std::collections::BTreeSet::new(),
        };
        for (i, node) in scenario.nodes.iter().enumerate() {
            let rules = node
                .rules
                .iter()
                .map(|r| RuleSpec::parse(r))
                .collect::<Result<Vec<_>, _>>()?;
            sim.policy_history.push((0, i, rules.clone()));
            sim.rules.push(rules);
        }
        for (j, node) in scenario.nodes.iter().enumerate() {
            if !node.hbone {
                continue;
            }
            for e in &node.exports {
                let (name, _, _) = parse_export(e)?;
                let name = ServiceName::parse(&name).map_err(|e| format!("{name}: {e:?}"))?;
                let endpoint = MeshEndpoint {
                    hbone: SocketAddr::new(node_ip(j), HBONE_PORT),
                    identity: sim.spiffe(j)?,
                };
                sim.exporters.entry(name).or_default().push((j, endpoint));
            }
        }
        for i in 0..scenario.nodes.len() {
            sim.start_host(i)?;
        }
        Ok(sim)
    }

    fn spiffe(&self, i: usize) -> Result<SpiffeId, String> {
        let (ns, sa) = self.scenario.nodes[i]
            .identity
            .split_once('/')
            .ok_or("identity must be ns/sa")?;
        SpiffeId::new(&self.scenario.trust_domain, ns, sa).map_err(|e| format!("{e:?}"))
    }

    /// Node `i`'s configuration with its current rules and a fresh
    /// certificate valid `cert_secs`.
    fn config(&mut self, i: usize, cert_secs: u64) -> Result<NodeConfig, String> {
        let spec = &self.scenario.nodes[i];
        let label = format!(
            "node/{}/{}/{}",
            spec.name, self.generation[i], self.stats.faults
        );
        let skew = self.cert_skew[i];
        let identity = self
            .pki
            .identity(&self.spiffe(i)?, &label, cert_secs, skew)?;
        let mut c = NodeConfig::new(identity);
        if let Some(window) = spec.stream_window {
            c.h2.initial_stream_window = window;
        }
        if let Some(ms) = spec.pool_idle_ms {
            c.pool.idle_timeout = Duration::from_millis(ms);
        }
        if let Some(window) = spec.connection_window {
            c.h2.initial_connection_window = window;
        }
        if let Some(n) = spec.pool_max_connections {
            c.pool.max_connections_per_endpoint = n;
        }
        if spec.hbone {
            c.hbone_listen = Some(SocketAddr::new(node_ip(i), HBONE_PORT));
        }
        if spec.hub {
            c.hbone_listen = Some(SocketAddr::new(node_ip(i), HUB_PORT));
            c.hub = Some(HubRole {
                announce: AnnouncePolicy::new(vec![ExportRule {
                    principals: vec![PrincipalPattern::new("*").map_err(|e| format!("{e:?}"))?],
                    services: vec![ServiceAllowance::OwnNamespace],
                }]),
                seed: Seed(self.seed)
                    .stream_indexed("hub.role", i as u64)
                    .next_u64(),
                ..HubRole::default()
            });
        }
        if !spec.hubs.is_empty() {
            let mut links = HubLinks {
                backoff_max: HUB_BACKOFF_MAX,
                seed: Seed(self.seed)
                    .stream_indexed("hub.links", i as u64)
                    .next_u64(),
                ..HubLinks::default()
            };
            for j in self.nodes_of(&spec.hubs) {
                links.hubs.push(SocketAddr::new(node_ip(j), HUB_PORT));
                let id = self.spiffe(j)?;
                links
                    .identities
                    .push(PrincipalPattern::new(id.as_str()).map_err(|e| format!("{e:?}"))?);
            }
            c.hub_links = links;
        }
        for t in &spec.tunnels {
            let (port, to) = parse_tunnel(t)?;
            // The directory needs only the services this node's tunnels
            // name (the one front kind here): the first other node that
            // exports each.
            let service = to.rsplit_once(':').map_or(to.as_str(), |(s, _)| s);
            if let Ok(name) = ServiceName::parse(service) {
                let first = self
                    .exporters
                    .get(&name)
                    .and_then(|all| all.iter().find(|(j, _)| *j != i));
                if let Some((_, endpoint)) = first {
                    c.directory.insert(name, vec![endpoint.clone()]);
                }
            }
            let to = FrontTarget::parse(&to).map_err(|e| format!("tunnel {t:?}: {e:?}"))?;
            c.fronts.push(FrontConfig {
                listen: loopback(port),
                kind: FrontKind::Tunnel { to },
            });
        }
        let mut exports = Vec::new();
        for e in &spec.exports {
            let (name, port, target) = parse_export(e)?;
            exports.push(Export {
                service: ServiceName::parse(&name).map_err(|e| format!("{name}: {e:?}"))?,
                port,
                target: Target::Addr(loopback(target)),
            });
        }
        c.exports = Exports::new(exports).map_err(|e| format!("exports: {e:?}"))?;
        let rules = self.rules[i]
            .iter()
            .enumerate()
            .map(|(k, r)| authz_rule(k, r))
            .collect::<Result<Vec<_>, _>>()?;
        c.authz = AuthzPolicy::new(rules);
        Ok(c)
    }

    /// Places node `i` and its servers on its host.
    fn start_host(&mut self, i: usize) -> Result<(), String> {
        let config = self.config(i, self.scenario.nodes[i].cert_secs)?;
        let host = self.hosts[i];
        let mut node = NodeHost::new(config, self.keep_log);
        node.set_instant_connects(self.scenario.instant_connects);
        #[cfg(feature = "sim-bugs")]
        node.inject_bug(self.scenario.inject);
        self.world.place(host, SimApp::Node(Box::new(node)));
        let name = &self.scenario.nodes[i].name;
        for s in self.scenario.servers.iter().filter(|s| &s.node == name) {
            let mode = match s.mode {
                Mode::Echo => ServerMode::Echo,
                Mode::Sink => ServerMode::Sink,
            };
            let stall = Duration::from_millis(s.stall_ms);
            let server = StreamServer::new(s.port, mode).stalling(stall);
            self.world
                .place(host, SimApp::Endpoint(Box::new(Endpoint::Server(server))));
        }
        Ok(())
    }

    fn node_mut(&mut self, i: usize) -> Option<&mut NodeHost> {
        self.world.app_mut(self.hosts[i]).and_then(SimApp::node_mut)
    }

    fn now_ms(&self) -> u64 {
        self.world.now().as_nanos() / 1_000_000
    }

    fn note(&mut self, what: String) {
        if self.keep_log {
            self.log.push(format!("{:>10} ms  {what}", self.now_ms()));
        }
    }

    fn reconfigure(&mut self, i: usize, cert_secs: u64) -> Result<(), String> {
        let config = self.config(i, cert_secs)?;
        let now = self.world.now();
        if let Some(node) = self.node_mut(i) {
            node.schedule_config(config, now);
        }
        Ok(())
    }

    fn nodes_of(&self, names: &[String]) -> Vec<usize> {
        names
            .iter()
            .filter_map(|n| self.scenario.node_index(n))
            .collect()
    }

    fn others_of(&self, f: &FaultSpec) -> Vec<usize> {
        if f.others.is_empty() {
            let mine = self.nodes_of(&f.nodes);
            (0..self.hosts.len())
                .filter(|i| !mine.contains(i))
                .collect()
        } else {
            self.nodes_of(&f.others)
        }
    }

    /// Applies a fault; returns what undoing it needs.
    fn apply(&mut self, f: &FaultSpec) -> Result<Vec<FaultId>, String> {
        self.stats.faults += 1;
        self.note(format!(
            "fault {:?} {:?} for {} ms",
            f.kind, f.nodes, f.for_ms
        ));
        let mine = self.nodes_of(&f.nodes);
        match f.kind {
            // No flow may notice a new certificate or a stranger's junk.
            FaultKind::Rotate | FaultKind::Garbage => {}
            // These act on the links between the two sides only.
            FaultKind::Partition | FaultKind::OneWay | FaultKind::Clog => {
                for x in &mine {
                    for y in self.others_of(f) {
                        self.disrupted_links.insert(((*x).min(y), (*x).max(y)));
                    }
                }
            }
            _ => self.disrupted.extend(&mine),
        }
        let hosts = |v: &[usize]| v.iter().map(|i| self.hosts[*i]).collect::<Vec<_>>();
        let (a, b) = (hosts(&mine), hosts(&self.others_of(f)));
        let mut ids = Vec::new();
        match f.kind {
            FaultKind::Partition => ids.push(self.world.net_mut().partition(&a, &b)),
            FaultKind::OneWay => ids.push(self.world.net_mut().partition_one_way(&a, &b)),
            FaultKind::Clog => {
                for x in &a {
                    for y in &b {
                        self.world.net_mut().clog(*x, *y);
                    }
                }
            }
            FaultKind::Reset => {
                for i in &mine {
                    let socks = self
                        .node_mut(*i)
                        .map(|n| n.net_sockets())
                        .unwrap_or_default();
                    for s in socks {
                        self.world.net_mut().reset_connection(s);
                    }
                }
            }
            FaultKind::Crash => {
                for i in &mine {
                    let h = self.hosts[*i];
                    for app in self.world.remove_apps(h) {
                        match app {
                            SimApp::Endpoint(e) => self.archive.push(*e),
                            SimApp::Node(n) => {
                                invariants::check_bounded(&mut self.violations, *i, &n)
                            }
                        }
                    }
                    self.world.net_mut().crash_host(h);
                }
            }
            FaultKind::Pause => {
                for h in &a {
                    self.world.net_mut().freeze_host(*h);
                }
            }
            FaultKind::Skew => {
                for i in &mine {
                    let ns = f.skew_ms.saturating_mul(1_000_000);
                    let h = self.hosts[*i];
                    self.world.net_mut().set_clock_offset(h, ns);
                    // The certificate clock is skewed too (rustls reads it).
                    self.cert_skew[*i] = f.skew_ms / 1000;
                    self.reconfigure(*i, self.scenario.nodes[*i].cert_secs)?;
                }
            }
            FaultKind::Policy => {
                let rules = f
                    .rules
                    .iter()
                    .map(|r| RuleSpec::parse(r))
                    .collect::<Result<Vec<_>, _>>()?;
                for i in &mine {
                    self.rules[*i] = rules.clone();
                    self.policy_history.push((self.now_ms(), *i, rules.clone()));
                    self.reconfigure(*i, self.scenario.nodes[*i].cert_secs)?;
                    self.revocations.policy_changed(
                        &self.world,
                        &self.hosts,
                        &self.archive,
                        self.scenario,
                        &self.clients,
                        *i,
                        &rules,
                        self.now_ms(),
                        &mut self.violations,
                    );
                }
            }
            FaultKind::CertExpiry => {
                for i in &mine {
                    self.reconfigure(*i, f.for_ms.div_ceil(1000))?;
                }
            }
            FaultKind::Rotate => {
                for i in &mine {
                    self.reconfigure(*i, self.scenario.nodes[*i].cert_secs)?;
                }
            }
            FaultKind::Garbage => {
                for i in &mine {
                    let to = SocketAddr::new(node_ip(*i), HBONE_PORT);
                    let rng = Seed(self.seed).stream_indexed("garbage", self.stats.faults);
                    let junk = StreamClient::new(to, self.stats.faults, 20_000, 4096, rng);
                    let rogue = self.rogue;
                    self.world
                        .place(rogue, SimApp::Endpoint(Box::new(Endpoint::Client(junk))));
                }
            }
        }
        self.world.dispatch();
        Ok(ids)
    }

    fn undo(&mut self, f: &FaultSpec, ids: &[FaultId]) -> Result<(), String> {
        self.note(format!("undo {:?} {:?}", f.kind, f.nodes));
        let mine = self.nodes_of(&f.nodes);
        let others = self.others_of(f);
        match f.kind {
            FaultKind::Partition | FaultKind::OneWay => {
                for id in ids {
                    self.world.net_mut().heal(*id);
                }
            }
            FaultKind::Clog => {
                for x in &mine {
                    for y in &others {
                        let (hx, hy) = (self.hosts[*x], self.hosts[*y]);
                        self.world.net_mut().unclog(hx, hy);
                    }
                }
            }
            FaultKind::Crash => {
                for i in &mine {
                    self.generation[*i] += 1;
                    self.start_host(*i)?;
                }
            }
            FaultKind::Pause => {
                for i in &mine {
                    let h = self.hosts[*i];
                    self.world.net_mut().thaw_host(h);
                }
            }
            FaultKind::CertExpiry => {
                for i in &mine {
                    self.reconfigure(*i, self.scenario.nodes[*i].cert_secs)?;
                }
            }
            FaultKind::Skew => {
                for i in &mine {
                    let h = self.hosts[*i];
                    self.world.net_mut().set_clock_offset(h, 0);
                    self.cert_skew[*i] = 0;
                    self.reconfigure(*i, self.scenario.nodes[*i].cert_secs)?;
                }
            }
            FaultKind::Reset | FaultKind::Policy | FaultKind::Rotate | FaultKind::Garbage => {}
        }
        self.world.dispatch();
        Ok(())
    }

    /// Starts a client flow; `kind` is (a liveness probe, its deadline,
    /// how long after its connect it gives up, ms).
    fn start_client(
        &mut self,
        node: usize,
        port: u16,
        bytes: u64,
        max_write: usize,
        (probe, deadline_ms, give_up_after): (bool, Option<u64>, Option<u64>),
    ) {
        let k = self.next_client;
        self.next_client += 1;
        let mut seed_rng = Seed(self.seed).stream_indexed("client.seed", k);
        let stream_seed = seed_rng.next_u64();
        let rng = Seed(self.seed).stream_indexed("client.writes", k);
        let client = StreamClient::new(loopback(port), stream_seed, bytes, max_write, rng)
            .giving_up_after(give_up_after.map(Duration::from_millis));
        let meta = ClientMeta {
            node,
            port,
            bytes,
            start_ms: self.now_ms(),
            probe,
            deadline_ms,
            gives_up: give_up_after.is_some(),
        };
        self.stats.flows += 1;
        self.note(format!(
            "client {k} on node {node} port {port} bytes {bytes}"
        ));
        let host = self.hosts[node];
        self.world
            .place(host, SimApp::Endpoint(Box::new(Endpoint::Client(client))));
        let sock = self
            .world
            .apps(host)
            .last()
            .and_then(SimApp::endpoint)
            .and_then(Endpoint::client)
            .and_then(StreamClient::sock);
        if let Some(sock) = sock {
            self.clients.insert(sock, (stream_seed, meta));
        }
    }

    /// Runs the world up to `until_ms`, keeping the certificate clock with
    /// virtual time.
    fn run_to(&mut self, until_ms: u64) {
        let deadline = Instant::from_nanos(until_ms.saturating_mul(1_000_000));
        while let Some(t) = self.world.next_time() {
            if t > deadline || self.stats.steps >= MAX_STEPS {
                break;
            }
            self.pki
                .clock()
                .set(EPOCH_UNIX + t.as_nanos() / 1_000_000_000);
            self.world.step();
            self.stats.steps += 1;
        }
        if self.stats.steps >= MAX_STEPS {
            self.violations
                .push(format!("livelock: step limit {MAX_STEPS} reached"));
        }
        self.world.net_mut().advance_to(deadline);
        self.pki.clock().set(EPOCH_UNIX + until_ms / 1000);
    }

    /// Builds the timeline of client starts and faults.
    fn timeline(&self, faults: &[FaultSpec]) -> (Vec<(u64, Planned)>, u64, u64) {
        let mut plan: Vec<(u64, Planned)> = Vec::new();
        for c in &self.scenario.clients {
            let Some(node) = self.scenario.node_index(&c.node) else {
                continue;
            };
            for k in 0..u64::from(c.count) {
                let at = c.start_ms + k * c.every_ms;
                let start = Planned::StartClient {
                    node,
                    port: c.port,
                    bytes: c.bytes,
                    max_write: c.max_write,
                    probe: false,
                    deadline_ms: c.deadline_ms,
                    give_up_ms: c.give_up_ms,
                };
                plan.push((at, start));
            }
        }
        let mut quiet = 0;
        for f in faults {
            plan.push((f.at_ms, Planned::Fault(f.clone())));
            let lasts = match f.kind {
                FaultKind::CertExpiry => 2 * f.for_ms,
                _ => f.for_ms,
            };
            quiet = quiet.max(f.at_ms + lasts);
        }
        let probe_at = quiet.max(self.scenario.duration_ms) + self.scenario.heal_ms;
        // Ports only clients that give up use need not work: no probe.
        let mut probes: Vec<(usize, u16)> = self
            .scenario
            .clients
            .iter()
            .filter(|c| c.give_up_ms.is_none())
            .filter_map(|c| Some((self.scenario.node_index(&c.node)?, c.port)))
            .collect();
        probes.sort();
        probes.dedup();
        for (node, port) in probes {
            let start = Planned::StartClient {
                node,
                port,
                bytes: PROBE_BYTES,
                max_write: 1024,
                probe: true,
                deadline_ms: None,
                give_up_ms: None,
            };
            plan.push((probe_at, start));
        }
        plan.sort_by_key(|(t, _)| *t);
        (plan, probe_at, probe_at + PROBE_WINDOW_MS)
    }
}

/// The explicit faults plus those drawn from the seed.
pub fn fault_schedule(scenario: &Scenario, seed: u64) -> Vec<FaultSpec> {
    let mut faults = scenario.faults.clone();
    if let Some(r) = &scenario.random_faults {
        let mut rng = Seed(seed).stream("faults");
        let per_tick = (r.per_second * 100.0).clamp(0.0, 1000.0) as u64; // per 100 ms, in 1/1000
        let mut t = 0;
        while t < r.until_ms {
            if !r.kinds.is_empty() && rng.chance(per_tick, 1000) {
                let kind = r.kinds[rng.below(r.kinds.len() as u64) as usize];
                let node = &scenario.nodes[rng.below(scenario.nodes.len() as u64) as usize];
                faults.push(FaultSpec {
                    at_ms: t,
                    kind,
                    nodes: vec![node.name.clone()],
                    others: Vec::new(),
                    for_ms: rng.range_inclusive(100, r.max_for_ms.max(100)),
                    skew_ms: 0,
                    rules: Vec::new(),
                });
            }
            t += 100;
        }
    }
    faults.sort_by_key(|f| f.at_ms);
    faults
}

/// Runs `scenario` with `seed`.
pub fn run(scenario: &Scenario, seed: u64) -> RunReport {
    run_with(scenario, seed, false)
}

/// Runs with the readable log kept (the net trace and every node event).
pub fn replay(scenario: &Scenario, seed: u64) -> RunReport {
    run_with(scenario, seed, true)
}

fn run_with(scenario: &Scenario, seed: u64, keep_log: bool) -> RunReport {
    let mut sim = match Sim::new(scenario, seed, keep_log) {
        Ok(sim) => sim,
        Err(e) => {
            return RunReport {
                trace_hash: TraceHash(0),
                violations: vec![format!("setup: {e}")],
                stats: RunStats::default(),
                log: Vec::new(),
            }
        }
    };
    let faults = fault_schedule(scenario, seed);
    let (plan, probe_at, end) = sim.timeline(&faults);
    // Undo actions join the plan as time goes. Actions run by time, ties
    // in the order they joined: keyed (time, joining order), so picking the
    // next costs O(log n), not a scan of the whole plan.
    let mut joined = 0u64;
    let mut pending: BTreeMap<(u64, u64), Planned> = BTreeMap::new();
    for (at, action) in plan {
        pending.insert((at, joined), action);
        joined += 1;
    }
    while let Some(((at, _), action)) = pending.pop_first() {
        sim.run_to(at);
        let done = match action {
            Planned::StartClient {
                node,
                port,
                bytes,
                max_write,
                probe,
                deadline_ms,
                give_up_ms,
            } => {
                let kind = (probe, deadline_ms, give_up_ms);
                sim.start_client(node, port, bytes, max_write, kind);
                Ok(())
            }
            Planned::Fault(f) => sim.apply(&f).map(|ids| {
                if f.kind == FaultKind::Policy {
                    pending.insert((at + REVOKE_GRACE_MS, joined), Planned::RevocationBaseline);
                    joined += 1;
                }
                if f.for_ms > 0 || f.kind == FaultKind::Crash {
                    let lasts = match f.kind {
                        FaultKind::CertExpiry => 2 * f.for_ms,
                        _ => f.for_ms,
                    };
                    pending.insert((at + lasts, joined), Planned::Undo(f, ids));
                    joined += 1;
                }
            }),
            Planned::Undo(f, ids) => sim.undo(&f, &ids),
            Planned::RevocationBaseline => {
                let now_ms = sim.now_ms();
                sim.revocations
                    .take_baselines(&sim.world, &sim.hosts, &sim.archive, now_ms);
                Ok(())
            }
        };
        if let Err(e) = done {
            sim.violations.push(format!("setup: {e}"));
        }
    }
    sim.run_to(end);
    let observed = Observed {
        world: &sim.world,
        hosts: &sim.hosts,
        archive: &sim.archive,
        clients: &sim.clients,
        policy_history: &sim.policy_history,
        scenario,
        probe_at,
        fault_free: faults.is_empty(),
        disrupted: &sim.disrupted,
        disrupted_links: &sim.disrupted_links,
    };
    let mut violations = std::mem::take(&mut sim.violations);
    let ok = invariants::check_end(&observed, &mut violations);
    sim.revocations.check_end(&observed, &mut violations);
    sim.stats.flows_ok = ok;
    sim.stats.virtual_ms = sim.now_ms();
    sim.stats.peak_buffered = sim
        .hosts
        .iter()
        .filter_map(|h| sim.world.app(*h).and_then(SimApp::node))
        .map(|n| n.peak_buffered().bytes)
        .max()
        .unwrap_or(0);
    sim.stats.peak_relay = sim
        .hosts
        .iter()
        .filter_map(|h| sim.world.app(*h).and_then(SimApp::node))
        .map(|n| n.relay_peak().bytes)
        .max()
        .unwrap_or(0);
    sim.stats.net = sim.world.net().stats();
    let mut log = std::mem::take(&mut sim.log);
    if keep_log {
        for host in &sim.hosts {
            for app in sim.world.apps(*host) {
                if let Some(n) = app.node() {
                    for (at, line) in &n.log.lines {
                        log.push(format!(
                            "{:>10} ms  node {}: {line}",
                            at.as_nanos() / 1_000_000,
                            host.0
                        ));
                    }
                }
            }
        }
        for r in sim.world.net().trace().recent() {
            log.push(format!(
                "{:>10} ms  net {:?}",
                r.at.as_nanos() / 1_000_000,
                r.entry
            ));
        }
        log.sort_by(|a, b| a[..10].cmp(&b[..10]));
    }
    RunReport {
        trace_hash: sim.world.net().trace_hash(),
        violations,
        stats: sim.stats,
        log,
    }
}

/// One seed's outcome in a sweep.
#[derive(Clone, Debug)]
pub struct SeedOutcome {
    /// The seed.
    pub seed: u64,
    /// Its trace hash.
    pub trace_hash: TraceHash,
    /// Its violations.
    pub violations: Vec<String>,
}

/// Runs every seed in `seeds` on `jobs` threads; every outcome, in seed
/// order.
pub fn sweep_all(
    scenario: &Scenario,
    seeds: std::ops::Range<u64>,
    jobs: usize,
) -> Vec<SeedOutcome> {
    let jobs = jobs.max(1) as u64;
    let mut all: Vec<SeedOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|j| {
                let seeds = seeds.clone();
                s.spawn(move || {
                    seeds
                        .filter(|seed| seed % jobs == j)
                        .map(|seed| {
                            let report = run(scenario, seed);
                            SeedOutcome {
                                seed,
                                trace_hash: report.trace_hash,
                                violations: report.violations,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    all.sort_by_key(|o| o.seed);
    all
}

/// Runs every seed in `seeds` on `jobs` threads; returns the failing seeds
/// with their first violation, in seed order.
pub fn sweep(scenario: &Scenario, seeds: std::ops::Range<u64>, jobs: usize) -> Vec<(u64, String)> {
    sweep_all(scenario, seeds, jobs)
        .into_iter()
        .filter_map(|o| o.violations.first().map(|v| (o.seed, v.clone())))
        .collect()
}

/// The kind of a violation (the text before its first `:`).
fn kind_of(violation: &str) -> &str {
    violation.split(':').next().unwrap_or(violation)
}

/// Shrinks the scenario while `seed` still shows the same kind of
/// violation as its first one: drops faults one by one, then clients,
/// then halves client counts and sizes. Returns the smaller scenario (its
/// random faults made explicit), or `None` if the seed passes.
pub fn minimize(scenario: &Scenario, seed: u64) -> Option<Scenario> {
    let first = run(scenario, seed).violations.into_iter().next()?;
    let kind = kind_of(&first).to_string();
    let mut best = scenario.clone();
    best.faults = fault_schedule(scenario, seed);
    best.random_faults = None;
    best.name = format!("{}-min-{seed}", scenario.name);
    let fails = |s: &Scenario| run(s, seed).violations.iter().any(|v| kind_of(v) == kind);
    if !fails(&best) {
        return Some(best);
    }
    let mut i = 0;
    while i < best.faults.len() {
        let mut t = best.clone();
        t.faults.remove(i);
        if fails(&t) {
            best = t;
        } else {
            i += 1;
        }
    }
    let mut i = 0;
    while i < best.clients.len() && best.clients.len() > 1 {
        let mut t = best.clone();
        t.clients.remove(i);
        if fails(&t) {
            best = t;
        } else {
            i += 1;
        }
    }
    for i in 0..best.clients.len() {
        loop {
            let mut t = best.clone();
            let c = &mut t.clients[i];
            if c.count > 1 {
                c.count /= 2;
            } else if c.bytes > 64 {
                c.bytes /= 2;
            } else {
                break;
            }
            if fails(&t) {
                best = t;
            } else {
                break;
            }
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scenario whose node cannot be configured: every seed fails with a
    /// `setup` violation, whatever the faults and clients.
    fn broken() -> Scenario {
        Scenario::from_toml(
            r#"
name = "broken"
duration_ms = 1000
heal_ms = 100
[[node]]
name = "a"
identity = "ns/a"
tunnels = ["9000=not a target"]
[[node]]
name = "b"
identity = "ns/b"
hbone = true
[[client]]
node = "a"
port = 9000
bytes = 1000
count = 4
[[client]]
node = "a"
port = 9000
bytes = 10
[[fault]]
at_ms = 10
kind = "reset"
nodes = ["a"]
[[fault]]
at_ms = 20
kind = "partition"
nodes = ["b"]
for_ms = 30
"#,
        )
        .unwrap()
    }

    #[test]
    fn sweep_lists_failing_seeds_and_minimize_shrinks_while_the_violation_stays() {
        let s = broken();
        let failing = sweep(&s, 0..4, 2);
        assert_eq!(
            failing.iter().map(|f| f.0).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert!(failing[0].1.starts_with("setup:"), "{failing:?}");
        let small = minimize(&s, 1).expect("seed 1 fails");
        assert!(small.faults.is_empty(), "{:?}", small.faults);
        assert_eq!(small.clients.len(), 1);
        assert_eq!(small.clients[0].count, 1);
        assert!(run(&small, 1).violations[0].starts_with("setup:"));
        // The written scenario reads back the same.
        assert_eq!(Scenario::from_toml(&small.to_toml()).unwrap(), small);
    }

    #[test]
    fn random_faults_follow_the_seed() {
        let mut s = broken();
        s.random_faults = Some(crate::scenario::RandomFaults {
            per_second: 2.0,
            kinds: vec![FaultKind::Partition, FaultKind::Crash],
            until_ms: 5000,
            max_for_ms: 500,
        });
        let a = fault_schedule(&s, 1);
        assert_eq!(a, fault_schedule(&s, 1));
        assert_ne!(a, fault_schedule(&s, 2));
        assert!(a.len() > s.faults.len());
        assert!(a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
    }
}
