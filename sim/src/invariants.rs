//! What must hold after (and, cheaply, during) every run.
//!
//! - integrity: every byte any receiver checked matched its stream (seeded
//!   content, verified without storing); a flow the client saw succeed
//!   (connected, orderly EOF, no reset) delivered all its bytes exactly
//!   once to the server, and all of the echo back;
//! - policy: a flow the oracle ([`crate::oracle`]) denies under every
//!   policy in force during its life carried no byte either way; a flow
//!   that a policy change denies gets no byte to its server once the
//!   change took hold ([`Revocations`]);
//! - liveness: every probe flow (started after the faults stopped and a
//!   heal period passed) that the oracle allows succeeds; in a run without
//!   faults every allowed flow succeeds, and in any run every allowed flow
//!   none of whose nodes a disruptive fault touched (see
//!   [`Observed::disrupted`]);
//! - no leaks: at the end no node holds flows (unless a client still
//!   waits), its sockets are exactly the adapter's, and only mesh
//!   connections hold sockets; no host error;
//! - deadlines: a client with `deadline_ms` succeeded that soon after
//!   its start (a flow stuck behind others on a shared connection does
//!   not);
//! - memory: no node ever held more than a bound for one socket, and no
//!   hub more than two of its stream windows for one relayed flow,
//!   measured after every input the node handled (see
//!   [`NodeHost::peak_buffered`](crate::node_host::NodeHost::peak_buffered)).
//!
//! Relayed flows (through a hub) are checked like direct ones: the same
//! seeded bytes, and the oracle asks both the target's and the hubs'
//! policies.
//!
//! Each violation reads `kind: details`.

use std::collections::{BTreeMap, BTreeSet};

use crate::app::Endpoint;
use crate::net::{HostId, SocketId};
use crate::node_host::SimApp;
use crate::oracle;
use crate::scenario::{Mode, RuleSpec, Scenario};
use crate::world::World;

/// Bytes a node may hold for one socket: one read (at most the net's
/// 256 KiB window) or one ciphertext batch (256 KiB plus TLS's buffer),
/// with room. More is unbounded buffering.
pub const MAX_BUFFERED_PER_SOCKET: usize = 1 << 20;

/// A client flow as the run started it.
#[derive(Clone, Debug)]
pub struct ClientMeta {
    /// The node whose tunnel it dials.
    pub node: usize,
    /// The tunnel port.
    pub port: u16,
    /// Bytes it sends.
    pub bytes: u64,
    /// When it started, ms.
    pub start_ms: u64,
    /// A liveness probe.
    pub probe: bool,
    /// It must have succeeded this long after its start, ms.
    pub deadline_ms: Option<u64>,
    /// It resets its connection if not done in time (`give_up_ms`): it
    /// need not succeed, only deliver nothing wrong.
    pub gives_up: bool,
}

/// Everything the end-of-run checks read.
pub struct Observed<'a> {
    /// The world.
    pub world: &'a World<SimApp>,
    /// Node hosts, by node index.
    pub hosts: &'a [HostId],
    /// Applications of crashed hosts.
    pub archive: &'a [Endpoint],
    /// Client flows by client socket.
    pub clients: &'a BTreeMap<SocketId, (u64, ClientMeta)>,
    /// (ms, node, rules) in order.
    pub policy_history: &'a [(u64, usize, Vec<RuleSpec>)],
    /// The scenario.
    pub scenario: &'a Scenario,
    /// When probes started, ms.
    pub probe_at: u64,
    /// No fault was scheduled in the whole run.
    pub fault_free: bool,
    /// Nodes some disruptive fault acted on during the run (every kind but
    /// `rotate` and `garbage`, which no flow may notice): an allowed flow
    /// whose nodes (client, target, the hubs it may cross) are all outside
    /// this set must succeed, faults elsewhere or not.
    pub disrupted: &'a BTreeSet<usize>,
    /// Node pairs (lower index first) whose link a partition, one-way
    /// partition or clog acted on: a flow crossing none of them, and none
    /// of the nodes in `disrupted`, must succeed.
    pub disrupted_links: &'a BTreeSet<(usize, usize)>,
}

/// A node's per-socket high-water mark against the bound (the node
/// measures it after every input it handles). Also called when a node
/// leaves the world (crash), so no peak goes unchecked.
pub fn check_bounded(violations: &mut Vec<String>, node: usize, host: &crate::node_host::NodeHost) {
    let peak = host.peak_buffered();
    if peak.bytes > MAX_BUFFERED_PER_SOCKET {
        violations.push(format!(
            "memory: node {node} held {} bytes for one socket at {} ms",
            peak.bytes,
            peak.at.as_nanos() / 1_000_000
        ));
    }
    // A hub holds a relayed flow's bytes only in its two legs' receive
    // buffers, each bounded by the stream window the hub advertises.
    let window = host.node().config().h2.initial_stream_window as usize;
    let relay = host.relay_peak();
    if relay.bytes > 2 * window {
        violations.push(format!(
            "memory: hub node {node} held {} bytes for one relayed flow at {} ms (bound: two {window}-byte stream windows)",
            relay.bytes,
            relay.at.as_nanos() / 1_000_000
        ));
    }
}

/// What servers received, by stream seed: (bytes verified, flows).
#[derive(Default)]
struct Received {
    bytes: u64,
    flows: u32,
}

/// Where a client's tunnel leads.
#[derive(Clone, Debug, Default)]
struct Route {
    /// The node serving the service.
    target: Option<usize>,
    /// `name.namespace`.
    service: String,
    /// The target exports it on the tunnel's port.
    exported: bool,
    /// An echo server is behind it.
    echo: bool,
    /// The hubs the flow may cross (every hub of the client, empty for a
    /// direct flow), each of which authorizes it too.
    hubs: Vec<usize>,
    /// Every hub of the client reaches the target (the client spreads
    /// flows over its hubs, and one that does not know the service
    /// answers 503).
    via_any_hub: bool,
}

/// Every server on the nodes' hosts (and those archived from crashed
/// hosts): what they received, by stream seed.
fn received_by_seed(
    world: &World<SimApp>,
    hosts: &[HostId],
    archive: &[Endpoint],
) -> BTreeMap<u64, Received> {
    let live = hosts
        .iter()
        .flat_map(|h| world.apps(*h).iter().filter_map(SimApp::endpoint));
    let mut received: BTreeMap<u64, Received> = BTreeMap::new();
    for server in archive.iter().chain(live).filter_map(Endpoint::server) {
        for flow in server.flows.values() {
            if let Some(seed) = flow.verifier.seed() {
                let r = received.entry(seed).or_default();
                r.bytes += flow.verifier.verified();
                r.flows += 1;
            }
        }
    }
    received
}

/// How long after a policy change a flow it denies may still deliver bytes
/// to its server (the node applies the change at once; this covers bytes
/// already on the loopback wire), ms.
pub const REVOKE_GRACE_MS: u64 = 1000;

/// Client flows that a policy change denied while they lived: the node
/// must close them, so once the change took hold their server gets no
/// more bytes, until a later change allows them again.
#[derive(Debug, Default)]
pub struct Revocations {
    watches: Vec<Revoked>,
}

#[derive(Debug)]
struct Revoked {
    seed: u64,
    name: String,
    node: usize,
    meta: ClientMeta,
    at_ms: u64,
    /// Server bytes once the change took hold.
    baseline: Option<u64>,
}

impl Revocations {
    /// Node `node` took `rules` at `now_ms`. Watches every client flow to
    /// it that they deny; ends the watch (checking it) of every flow they
    /// allow again.
    #[allow(clippy::too_many_arguments)] // the run's parts, borrowed apart
    pub fn policy_changed(
        &mut self,
        world: &World<SimApp>,
        hosts: &[HostId],
        archive: &[Endpoint],
        scenario: &Scenario,
        clients: &BTreeMap<SocketId, (u64, ClientMeta)>,
        node: usize,
        rules: &[RuleSpec],
        now_ms: u64,
        violations: &mut Vec<String>,
    ) {
        let allows = |meta: &ClientMeta| {
            let r = route(scenario, meta);
            oracle::allowed(rules, r.exported, &source_of(scenario, meta), &r.service)
        };
        let (ended, kept): (Vec<Revoked>, Vec<Revoked>) = std::mem::take(&mut self.watches)
            .into_iter()
            .partition(|w| w.node == node && allows(&w.meta));
        self.watches = kept;
        if !ended.is_empty() {
            let received = received_by_seed(world, hosts, archive);
            for w in &ended {
                w.check(&received, violations);
            }
        }
        for (seed, meta) in clients.values() {
            if route(scenario, meta).target == Some(node) && !allows(meta) {
                self.watches.push(Revoked {
                    seed: *seed,
                    name: format!(
                        "client seed={seed:#x} node={} port={} start={}ms",
                        meta.node, meta.port, meta.start_ms
                    ),
                    node,
                    meta: meta.clone(),
                    at_ms: now_ms,
                    baseline: None,
                });
            }
        }
    }

    /// Notes what the servers got so far for every watch whose change has
    /// taken hold by `now_ms`.
    pub fn take_baselines(
        &mut self,
        world: &World<SimApp>,
        hosts: &[HostId],
        archive: &[Endpoint],
        now_ms: u64,
    ) {
        let due = |w: &Revoked| w.baseline.is_none() && w.at_ms + REVOKE_GRACE_MS <= now_ms;
        if !self.watches.iter().any(due) {
            return;
        }
        let received = received_by_seed(world, hosts, archive);
        for w in self.watches.iter_mut().filter(|w| due(w)) {
            w.baseline = Some(received.get(&w.seed).map_or(0, |r| r.bytes));
        }
    }

    /// The end of the run: every watch still open is checked.
    pub fn check_end(&self, o: &Observed<'_>, violations: &mut Vec<String>) {
        let received = received_by_seed(o.world, o.hosts, o.archive);
        for w in &self.watches {
            w.check(&received, violations);
        }
    }
}

impl Revoked {
    fn check(&self, received: &BTreeMap<u64, Received>, violations: &mut Vec<String>) {
        let Some(baseline) = self.baseline else {
            return;
        };
        let now = received.get(&self.seed).map_or(0, |r| r.bytes);
        if now > baseline {
            violations.push(format!(
                "policy: {}: {} bytes reached the server after a policy change at {} ms denied the flow",
                self.name,
                now - baseline,
                self.at_ms
            ));
        }
    }
}

/// The SPIFFE id of a client's node.
fn source_of(s: &Scenario, meta: &ClientMeta) -> String {
    let (ns, sa) = s.nodes[meta.node]
        .identity
        .split_once('/')
        .unwrap_or(("", ""));
    format!("spiffe://{}/ns/{ns}/sa/{sa}", s.trust_domain)
}

/// Where a client's tunnel leads: the first other HBONE node exporting
/// the service (the directory's choice), else the first node without a
/// listener that exports it and shares a hub with the client (relayed).
fn route(s: &Scenario, meta: &ClientMeta) -> Route {
    let client = &s.nodes[meta.node];
    let to = client
        .tunnels
        .iter()
        .filter_map(|t| t.split_once('='))
        .find(|(p, _)| p.parse() == Ok(meta.port))
        .map(|(_, to)| to.to_string())
        .unwrap_or_default();
    let (service, port) = to.rsplit_once(':').unwrap_or((&to, ""));
    let shares_hub = |n: &crate::scenario::NodeSpec| n.hubs.iter().any(|h| client.hubs.contains(h));
    for relayed in [false, true] {
        for (j, n) in s.nodes.iter().enumerate() {
            let reachable = if relayed {
                !n.hbone && shares_hub(n)
            } else {
                n.hbone
            };
            if j == meta.node || !reachable {
                continue;
            }
            for e in &n.exports {
                let Some((svc, target)) = e.split_once('=') else {
                    continue;
                };
                let Some((name, eport)) = svc.rsplit_once(':') else {
                    continue;
                };
                if name == service {
                    let echo = s.servers.iter().any(|sv| {
                        sv.node == n.name && sv.mode == Mode::Echo && target.parse() == Ok(sv.port)
                    });
                    let hubs = if relayed {
                        client.hubs.iter().filter_map(|h| s.node_index(h)).collect()
                    } else {
                        Vec::new()
                    };
                    let via_any_hub = client.hubs.iter().all(|h| n.hubs.contains(h));
                    return Route {
                        target: Some(j),
                        service: service.to_string(),
                        exported: eport == port,
                        echo,
                        hubs,
                        via_any_hub,
                    };
                }
            }
        }
    }
    Route {
        service: service.to_string(),
        ..Route::default()
    }
}

/// The policies of node `j` in force from `from_ms` on (the one in force
/// then, and every later one), oldest first.
fn policies_from<'a>(o: &Observed<'a>, j: usize, from_ms: u64) -> Vec<&'a Vec<RuleSpec>> {
    let start = o
        .policy_history
        .iter()
        .enumerate()
        .rfind(|(_, (t, n, _))| *n == j && *t <= from_ms)
        .map(|(k, _)| k);
    o.policy_history
        .iter()
        .enumerate()
        .filter(|(k, (_, n, _))| *n == j && Some(*k) >= start)
        .map(|(_, (_, _, r))| r)
        .collect()
}

/// The oracle's answers under each policy of the target (and of every hub
/// a relayed flow may cross) in force from the client's start on: (any
/// allowed, allowed by the last). A relayed flow is allowed when its hub
/// and its target both allow it: some hub for "any", every hub (each
/// reaching the target) for "the last" (the agent spreads flows over its
/// hubs).
fn decisions(o: &Observed<'_>, meta: &ClientMeta, r: &Route) -> (bool, bool) {
    let source = source_of(o.scenario, meta);
    let Some(j) = r.target else {
        return (false, false);
    };
    let at_target = |rules: &Vec<RuleSpec>| oracle::allowed(rules, r.exported, &source, &r.service);
    // A hub relays only what some agent announced: the target's export.
    let at_hub = |rules: &Vec<RuleSpec>| oracle::allowed(rules, true, &source, &r.service);
    let live = policies_from(o, j, meta.start_ms);
    let mut any = live.iter().any(|p| at_target(p));
    let mut last = live.last().is_some_and(|p| at_target(p));
    if !r.hubs.is_empty() {
        any &= r.hubs.iter().any(|h| {
            policies_from(o, *h, meta.start_ms)
                .iter()
                .any(|p| at_hub(p))
        });
        last &= r.via_any_hub
            && r.hubs.iter().all(|h| {
                policies_from(o, *h, meta.start_ms)
                    .last()
                    .is_some_and(|p| at_hub(p))
            });
    }
    (any, last)
}

/// Whether no disruptive fault touched a node or a link of the flow from
/// `client` along `r`.
fn untouched(o: &Observed<'_>, client: usize, r: &Route) -> bool {
    let Some(target) = r.target else {
        return false;
    };
    let link = |x: usize, y: usize| o.disrupted_links.contains(&(x.min(y), x.max(y)));
    let links_clear = if r.hubs.is_empty() {
        !link(client, target)
    } else {
        r.hubs
            .iter()
            .all(|h| !link(client, *h) && !link(*h, target))
    };
    links_clear
        && [client, target]
            .iter()
            .chain(&r.hubs)
            .all(|n| !o.disrupted.contains(n))
}

/// The end-of-run checks; returns how many client flows succeeded.
pub fn check_end(o: &Observed<'_>, violations: &mut Vec<String>) -> u64 {
    // (endpoint, died with its host): a crashed client cannot finish.
    let mut endpoints: Vec<(&Endpoint, bool)> = o.archive.iter().map(|e| (e, true)).collect();
    for h in o.hosts {
        let live = o.world.apps(*h).iter().filter_map(SimApp::endpoint);
        endpoints.extend(live.map(|e| (e, false)));
    }
    for server in endpoints.iter().filter_map(|(e, _)| e.server()) {
        for flow in server.flows.values() {
            if let Some(at) = flow.verifier.mismatch() {
                violations.push(format!(
                    "integrity: a server got a wrong byte at offset {at}"
                ));
            }
        }
    }
    let received = received_by_seed(o.world, o.hosts, o.archive);
    let mut ok = 0;
    let mut hung = 0;
    // A route walks every node's exports: once per (node, port), not once
    // per client, or the end check of a 1000-node mesh costs O(flows × nodes).
    let mut routes: BTreeMap<(usize, u16), Route> = BTreeMap::new();
    let end_ms = o.world.now().as_nanos() / 1_000_000;
    for (client, crashed) in endpoints
        .iter()
        .filter_map(|(e, crashed)| Some((e.client()?, *crashed)))
    {
        let Some((seed, meta)) = client.sock().and_then(|s| o.clients.get(&s)) else {
            continue;
        };
        let r: &Route = routes
            .entry((meta.node, meta.port))
            .or_insert_with(|| route(o.scenario, meta));
        let echo = r.echo;
        let (any_allow, last_allow) = decisions(o, meta, r);
        let got = received.get(seed);
        let server_bytes = got.map_or(0, |r| r.bytes);
        let name = format!(
            "client seed={seed:#x} node={} port={} start={}ms",
            meta.node, meta.port, meta.start_ms
        );
        // A refused plain-tunnel flow ends with FIN, not RST (the node
        // closes gracefully so SOCKS/HTTP replies flush): a clean end that
        // delivered nothing either way is a refusal, not a success.
        let nothing_moved = server_bytes == 0 && client.echo.verified() == 0;
        let success = client.connected == Some(Ok(()))
            && client.read_closed
            && !client.reset
            && !nothing_moved;
        let finished = client.read_closed
            || client.reset
            || client.gave_up
            || matches!(client.connected, Some(Err(_)));
        if let Some(at) = client.echo.mismatch() {
            violations.push(format!("integrity: {name}: wrong echo byte at offset {at}"));
        }
        if got.is_some_and(|r| r.flows > 1) {
            violations.push(format!(
                "integrity: {name}: delivered on {} server flows",
                got.map_or(0, |r| r.flows)
            ));
        }
        if server_bytes > meta.bytes {
            violations.push(format!(
                "integrity: {name}: server got {server_bytes} of {} bytes",
                meta.bytes
            ));
        }
        if !any_allow && (server_bytes > 0 || client.echo.verified() > 0) {
            violations.push(format!(
                "policy: {name}: denied flow carried bytes (server {server_bytes}, echo {})",
                client.echo.verified()
            ));
        }
        if success {
            ok += 1;
            if server_bytes != meta.bytes {
                violations.push(format!(
                    "integrity: {name}: succeeded but the server got {server_bytes} of {} bytes",
                    meta.bytes
                ));
            } else if echo && client.echo.verified() != meta.bytes {
                violations.push(format!(
                    "integrity: {name}: succeeded but {} of {} echo bytes came back",
                    client.echo.verified(),
                    meta.bytes
                ));
            }
        }
        let untouched = untouched(o, meta.node, r);
        if let Some(deadline) = meta
            .deadline_ms
            .filter(|_| last_allow && (o.fault_free || untouched) && !meta.gives_up)
        {
            let done_ms = client.finished_at.map(|t| t.as_nanos() / 1_000_000);
            let took = done_ms.map(|t| t.saturating_sub(meta.start_ms));
            if !success || took.is_none_or(|t| t > deadline) {
                violations.push(format!(
                    "deadline: {name}: not done within {deadline} ms (took {took:?} ms, success={success})"
                ));
            }
        }
        if (o.fault_free || untouched) && last_allow && !success && !crashed && !meta.gives_up {
            violations.push(format!(
                "liveness: {name}: allowed flow failed though no fault touched its nodes (connected={:?} read_closed={} reset={} echo={} server={server_bytes})",
                client.connected, client.read_closed, client.reset, client.echo.verified()
            ));
        } else if meta.probe && last_allow && !success {
            violations.push(format!(
                "liveness: {name}: allowed probe did not succeed (connected={:?} read_closed={} reset={} echo={})",
                client.connected, client.read_closed, client.reset, client.echo.verified()
            ));
        }
        if !finished && !crashed {
            hung += 1;
            if meta.probe || meta.start_ms + 60_000 < end_ms {
                violations.push(format!("hung: {name}: never finished"));
            }
        }
    }
    let (mut hub_pairs, mut agent_pairs) = (0usize, 0usize);
    for (i, h) in o.hosts.iter().enumerate() {
        let Some(n) = o.world.app(*h).and_then(SimApp::node) else {
            continue;
        };
        check_bounded(violations, i, n);
        let node = n.node();
        if hung == 0 && node.flow_count() > 0 {
            violations.push(format!(
                "leak: node {i} holds {} flows at the end",
                node.flow_count()
            ));
        }
        // An end-to-end pair stream carries a pooled inner connection, and
        // pooled connections rightly outlive their flows (until the pool's
        // idle timeout, longer than a run): only flow relays must be gone.
        // Pair streams are checked against the agents' below.
        let flow_relays = node.relay_count().saturating_sub(node.pair_relay_count());
        if hung == 0 && flow_relays > 0 {
            violations.push(format!(
                "leak: hub node {i} relays {flow_relays} flows at the end"
            ));
        }
        hub_pairs += node.pair_relay_count();
        agent_pairs += node.pair_stream_count();
        if node.sock_count() != n.mapped_sockets() {
            violations.push(format!(
                "leak: node {i} has {} sockets, the net {}",
                node.sock_count(),
                n.mapped_sockets()
            ));
        }
        if hung == 0 && node.sock_count() > node.connection_count() {
            violations.push(format!(
                "leak: node {i} has {} sockets for {} mesh connections and no flow",
                node.sock_count(),
                node.connection_count()
            ));
        }
        for e in n.host_errors.iter().chain(n.misuse()) {
            violations.push(format!("host-error: node {i}: {e}"));
        }
    }
    // Every pair stream a hub relays joins two agents' pair streams (A's
    // and B's); one the agents both dropped is a leak at the hub.
    if hung == 0 && hub_pairs.saturating_mul(2) > agent_pairs {
        violations.push(format!(
            "leak: hubs relay {hub_pairs} pair streams at the end, the agents hold {agent_pairs} ends"
        ));
    }
    ok
}
