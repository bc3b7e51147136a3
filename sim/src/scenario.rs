//! Scenarios as TOML: the nodes, applications, network and faults of a
//! run. A seed picks every random choice inside the bounds a scenario
//! sets.
//!
//! ```toml
//! name = "two-node-echo"
//! duration_ms = 20000          # virtual time of the workload
//! heal_ms = 15000              # quiet time after the last fault before liveness probes
//! instant_connects = false     # nodes learn a connect to their own host inside the drain
//!
//! [network]                    # all optional
//! latency_us = 500
//! jitter_us = 100
//! bandwidth = 0                # bytes/s, 0 = unlimited
//! min_segment = 1
//! max_segment = 65536
//!
//! [[node]]
//! name = "a"                   # host 10.0.0.<index+1>
//! identity = "shop/cart"       # namespace/service-account
//! hbone = true                 # serve HBONE on :15008
//! tunnels = ["9000=echo.shop:80"]        # loopback port = mesh service
//! exports = ["echo.shop:80=8080"]        # service:port = loopback target port
//! rules = ["deny secret.shop from */sa/cart", "allow * ns shop"]
//! stream_window = 65535        # optional HTTP/2 stream window, bytes
//! pool_idle_ms = 1000          # optional pool idle timeout
//! connection_window = 262144   # optional HTTP/2 connection window, bytes
//! pool_max_connections = 4     # optional: connections per peer when congested
//! hubs = ["hub0"]              # hub nodes it dials (forward + reverse)
//!
//! [[node]]
//! name = "hub0"
//! identity = "mesh/hub0"
//! hub = true                   # a hub on :15009 (no hbone, tunnels, exports)
//!
//! [[server]]
//! node = "b"
//! port = 8080
//! mode = "echo"                # or "sink"
//! stall_ms = 0                 # optional: leave each connection unread this long
//!
//! [[client]]
//! node = "a"
//! port = 9000                  # a tunnel port of that node
//! bytes = 100000
//! count = 3                    # flows, started every `every_ms` from `start_ms`
//! deadline_ms = 2000           # optional: each must succeed this soon after its start
//! give_up_ms = 150             # optional: each resets its connection if not done this soon
//!
//! [[fault]]
//! at_ms = 1000
//! kind = "partition"           # see FaultKind
//! nodes = ["a"]                # first side (or the node acted on)
//! others = ["b"]               # second side (default: every other node)
//! for_ms = 2000                # then healed / restarted / thawed
//!
//! [random_faults]              # optional: drawn from the seed
//! per_second = 0.5
//! kinds = ["partition", "reset"]
//! until_ms = 10000
//! ```
//!
//! Rules read `allow|deny SERVICE|* [from PRINCIPAL] [ns NAMESPACE]`, with
//! `*` globs; a principal may omit `spiffe://`.
//!
//! A tunnel to a service that some HBONE node exports goes direct (the
//! node's directory names the first such node); one to a service only
//! nodes without a listener export goes through the node's hubs, which
//! accept announcements of services in the announcing identity's own
//! namespace. A hub's `rules` are its own authorization policy.

use serde::{Deserialize, Serialize};

/// Most nodes in one scenario (node addresses count up from 10.0.0.1 and
/// must stay clear of the rogue host's 10.0.9.9).
pub const MAX_NODES: usize = 2000;

/// A whole scenario.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name, for reports.
    pub name: String,
    /// Virtual time of the workload, milliseconds.
    pub duration_ms: u64,
    /// Quiet time after the last fault before the liveness probes start.
    #[serde(default = "default_heal_ms")]
    pub heal_ms: u64,
    /// The trust domain.
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// Nodes learn the result of a connect to their own host (a loopback
    /// target) inside the drain that started it, through
    /// `Host::connect_result_now`, as warren-host does on loopback:
    /// connected if something listens there, refused if not. Off by
    /// default (the result then arrives as a later event).
    #[serde(default, skip_serializing_if = "is_false")]
    pub instant_connects: bool,
    /// Link behaviour.
    #[serde(default)]
    pub network: Network,
    /// Mesh nodes, one per host.
    #[serde(rename = "node", default)]
    pub nodes: Vec<NodeSpec>,
    /// Servers on nodes' hosts.
    #[serde(rename = "server", default)]
    pub servers: Vec<ServerSpec>,
    /// Clients on nodes' hosts.
    #[serde(rename = "client", default)]
    pub clients: Vec<ClientSpec>,
    /// The explicit fault schedule.
    #[serde(rename = "fault", default)]
    pub faults: Vec<FaultSpec>,
    /// Faults drawn from the seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_faults: Option<RandomFaults>,
    /// The proto bug every node of the run carries: chosen on the command
    /// line or by a test, never read from or written to a file.
    #[cfg(feature = "sim-bugs")]
    #[serde(skip)]
    pub inject: Option<warren_proto::sim_bugs::Bug>,
    /// A generated mesh, expanded into nodes, servers and clients on load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh: Option<crate::mesh::MeshSpec>,
}

fn default_heal_ms() -> u64 {
    15_000
}

fn default_trust_domain() -> String {
    "mesh.test".to_string()
}

/// Link behaviour shared by every pair of hosts.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// One-way latency, microseconds.
    pub latency_us: u64,
    /// Extra random delay up to this, microseconds.
    pub jitter_us: u64,
    /// Bytes per second, 0 for unlimited.
    pub bandwidth: u64,
    /// Smallest segment.
    pub min_segment: usize,
    /// Largest segment.
    pub max_segment: usize,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency_us: 500,
            jitter_us: 100,
            bandwidth: 0,
            min_segment: 1,
            max_segment: 64 * 1024,
        }
    }
}

/// One mesh node.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Its name (faults and applications refer to it).
    pub name: String,
    /// `namespace/service-account`.
    pub identity: String,
    /// Serve HBONE on port 15008.
    #[serde(default)]
    pub hbone: bool,
    /// `PORT=service.namespace:port`: loopback tunnel fronts.
    #[serde(default)]
    pub tunnels: Vec<String>,
    /// `service.namespace:port=TARGET_PORT`: exported services.
    #[serde(default)]
    pub exports: Vec<String>,
    /// Compact authorization rules (see the module docs).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Certificate lifetime, seconds.
    #[serde(default = "default_cert_secs")]
    pub cert_secs: u64,
    /// HTTP/2 stream receive window, bytes (default 4 MiB; at least
    /// 65535): small windows make flow control work on every flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_window: Option<u32>,
    /// Close pooled connections idle this long, ms (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_idle_ms: Option<u64>,
    /// HTTP/2 connection receive window, bytes (default 16 MiB; at least
    /// 65535): small ones let a few stalled streams hold all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_window: Option<u32>,
    /// Connections per peer the pool may spread flows over when one is
    /// congested (default 4; 1 turns spreading off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_max_connections: Option<u32>,
    /// Serve as a hub on port 15009: a relay and registry for agents.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hub: bool,
    /// The hub nodes this node keeps a forward and a reverse connection
    /// to; services no HBONE node exports are reached through them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hubs: Vec<String>,
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn default_cert_secs() -> u64 {
    86_400
}

/// What a server does with what it gets.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Echo every byte back.
    Echo,
    /// Check and drop.
    Sink,
}

/// A server on a node's loopback.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// The node whose host runs it.
    pub node: String,
    /// Its loopback port.
    pub port: u16,
    /// Echo or sink.
    pub mode: Mode,
    /// Leave each accepted connection unread this long, ms, then read it
    /// as usual (a receiver that stops reading for a while).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stall_ms: u64,
}

/// Clients opening flows through a node's tunnel.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// The node whose host runs them.
    pub node: String,
    /// The tunnel port they dial.
    pub port: u16,
    /// Bytes each sends (at least 8).
    pub bytes: u64,
    /// How many flows.
    #[serde(default = "one")]
    pub count: u32,
    /// When the first starts, ms.
    #[serde(default)]
    pub start_ms: u64,
    /// Gap between starts, ms.
    #[serde(default = "default_every")]
    pub every_ms: u64,
    /// Largest single write.
    #[serde(default = "default_max_write")]
    pub max_write: usize,
    /// Each flow must have succeeded within this long of its start, ms
    /// (checked at the end of the run; none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Each flow resets its connection if the server has not finished
    /// this long after its connect, ms, as a client that gives up waiting
    /// does; such flows need not succeed, and a port only such clients
    /// use gets no liveness probe (none by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

fn default_every() -> u64 {
    100
}

fn default_max_write() -> usize {
    16 * 1024
}

/// The kinds of fault.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Packets between `nodes` and `others` are dropped both ways.
    Partition,
    /// Packets from `nodes` to `others` are dropped.
    OneWay,
    /// Links from `nodes` to `others` hold packets until unclogged.
    Clog,
    /// Every connection of `nodes` is reset.
    Reset,
    /// `nodes` crash (every socket gone) and restart after `for_ms`.
    Crash,
    /// `nodes` are frozen for `for_ms`.
    Pause,
    /// `nodes`' clocks jump by `skew_ms` (certificate clocks too).
    Skew,
    /// `nodes` take `rules` as their new policy.
    Policy,
    /// `nodes` get certificates that expire after `for_ms`, and are not
    /// renewed until 2×`for_ms`.
    CertExpiry,
    /// `nodes` get fresh certificates (new keys).
    Rotate,
    /// A rogue host sends random bytes to `nodes`' HBONE ports.
    Garbage,
}

/// One scheduled fault.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// When, ms.
    pub at_ms: u64,
    /// What.
    pub kind: FaultKind,
    /// The nodes acted on (first side of a partition).
    pub nodes: Vec<String>,
    /// The other side (default: every other node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub others: Vec<String>,
    /// How long until it is undone, ms.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub for_ms: u64,
    /// Clock jump for `skew`, ms (signed).
    #[serde(default, skip_serializing_if = "is_zero_i")]
    pub skew_ms: i64,
    /// New rules for `policy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_i(v: &i64) -> bool {
    *v == 0
}

/// Faults drawn from the seed.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RandomFaults {
    /// Mean faults per virtual second.
    pub per_second: f64,
    /// Which kinds to draw from (only node-level kinds without extra
    /// arguments: partition, one-way, clog, reset, crash, pause, rotate,
    /// garbage).
    pub kinds: Vec<FaultKind>,
    /// Draw faults starting before this time, ms.
    pub until_ms: u64,
    /// Longest fault, ms.
    #[serde(default = "default_max_fault")]
    pub max_for_ms: u64,
}

fn default_max_fault() -> u64 {
    3_000
}

/// A compact rule, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    /// Allow (true) or deny.
    pub allow: bool,
    /// `service.namespace`, or `None` for every service.
    pub service: Option<String>,
    /// Principal glob, `spiffe://` included.
    pub principal: Option<String>,
    /// Namespace glob.
    pub namespace: Option<String>,
}

impl RuleSpec {
    /// Parses `allow|deny SERVICE|* [from PRINCIPAL] [ns NAMESPACE]`.
    pub fn parse(s: &str) -> Result<RuleSpec, String> {
        let mut words = s.split_whitespace();
        let allow = match words.next() {
            Some("allow") => true,
            Some("deny") => false,
            other => return Err(format!("rule {s:?}: expected allow|deny, got {other:?}")),
        };
        let service = match words.next() {
            Some("*") => None,
            Some(svc) => Some(svc.to_string()),
            None => return Err(format!("rule {s:?}: missing service")),
        };
        let mut rule = RuleSpec {
            allow,
            service,
            principal: None,
            namespace: None,
        };
        while let Some(word) = words.next() {
            let value = words
                .next()
                .ok_or_else(|| format!("rule {s:?}: {word} needs a value"))?;
            match word {
                "from" if value.starts_with("spiffe://") => rule.principal = Some(value.into()),
                "from" => rule.principal = Some(format!("spiffe://{value}")),
                "ns" => rule.namespace = Some(value.into()),
                _ => return Err(format!("rule {s:?}: unknown word {word:?}")),
            }
        }
        Ok(rule)
    }
}

/// Why a scenario is unusable.
#[derive(Debug)]
pub struct ScenarioError(pub String);

impl core::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

impl Scenario {
    /// Parses TOML; errors name the line, column and key.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let mut s: Scenario = toml::from_str(text).map_err(|e| ScenarioError(e.to_string()))?;
        if let Some(mesh) = s.mesh.take() {
            let more = mesh.expand(s.duration_ms);
            s.nodes.extend(more.nodes);
            s.servers.extend(more.servers);
            s.clients.extend(more.clients);
        }
        s.check()?;
        Ok(s)
    }

    /// Reads and parses a file.
    pub fn load(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError(format!("{}: {e}", path.display())))?;
        Scenario::from_toml(&text).map_err(|e| ScenarioError(format!("{}: {e}", path.display())))
    }

    /// Writes the scenario as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Index of a node by name.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Cross-references that serde cannot check.
    fn check(&self) -> Result<(), ScenarioError> {
        let err = |m: String| Err(ScenarioError(m));
        if self.nodes.is_empty() || self.nodes.len() > MAX_NODES {
            return err(format!("a scenario needs 1..={MAX_NODES} nodes"));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if self.nodes[..i].iter().any(|m| m.name == n.name) {
                return err(format!("node[{i}]: duplicate name {:?}", n.name));
            }
            if n.identity.split('/').count() != 2 {
                return err(format!("node {:?}: identity must be ns/sa", n.name));
            }
            for r in &n.rules {
                RuleSpec::parse(r).map_err(|e| ScenarioError(format!("node {:?}: {e}", n.name)))?;
            }
            if n.hub && (n.hbone || !n.tunnels.is_empty() || !n.exports.is_empty()) {
                return err(format!(
                    "node {:?}: a hub has no hbone listener, tunnels or exports",
                    n.name
                ));
            }
            for h in &n.hubs {
                if !self.nodes.iter().any(|m| &m.name == h && m.hub) {
                    return err(format!("node {:?}: {h:?} is not a hub node", n.name));
                }
            }
        }
        let known = |what: &str, name: &str| -> Result<(), ScenarioError> {
            match self.node_index(name) {
                Some(_) => Ok(()),
                None => Err(ScenarioError(format!("{what}: unknown node {name:?}"))),
            }
        };
        for (i, s) in self.servers.iter().enumerate() {
            known(&format!("server[{i}]"), &s.node)?;
        }
        for (i, c) in self.clients.iter().enumerate() {
            known(&format!("client[{i}]"), &c.node)?;
            if c.bytes < 8 {
                return err(format!("client[{i}]: bytes must be at least 8"));
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            for n in f.nodes.iter().chain(&f.others) {
                known(&format!("fault[{i}]"), n)?;
            }
            for r in &f.rules {
                RuleSpec::parse(r).map_err(|e| ScenarioError(format!("fault[{i}]: {e}")))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_line_and_key() {
        let text = "name = \"x\"\nduration_ms = 10\n[[node]]\nname = \"a\"\nidentity = \"a/b\"\nbogus = 1\n";
        let e = Scenario::from_toml(text).unwrap_err().0;
        assert!(e.contains("line 6") && e.contains("bogus"), "{e}");
        let bad_node = "name = \"x\"\nduration_ms = 10\n[[node]]\nname = \"a\"\nidentity = \"a/b\"\n[[client]]\nnode = \"zz\"\nport = 1\nbytes = 9\n";
        let e = Scenario::from_toml(bad_node).unwrap_err().0;
        assert!(e.contains("client[0]") && e.contains("zz"), "{e}");
    }

    #[test]
    fn hub_references_are_checked() {
        let base = "name = \"x\"\nduration_ms = 10\n[[node]]\nname = \"a\"\nidentity = \"a/b\"\n";
        let not_a_hub =
            format!("{base}hubs = [\"b\"]\n[[node]]\nname = \"b\"\nidentity = \"m/h\"\n");
        let e = Scenario::from_toml(&not_a_hub).unwrap_err().0;
        assert!(e.contains("\"b\" is not a hub node"), "{e}");
        let hub_with_exports = format!(
            "{base}hubs = [\"b\"]\n[[node]]\nname = \"b\"\nidentity = \"m/h\"\nhub = true\nexports = [\"s.m:80=8080\"]\n"
        );
        let e = Scenario::from_toml(&hub_with_exports).unwrap_err().0;
        assert!(e.contains("a hub has no hbone listener"), "{e}");
        let good = format!(
            "{base}hubs = [\"b\"]\n[[node]]\nname = \"b\"\nidentity = \"m/h\"\nhub = true\n"
        );
        let s = Scenario::from_toml(&good).unwrap();
        assert!(s.nodes[1].hub && s.nodes[0].hubs == ["b"]);
        assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s);
    }

    #[test]
    fn rules_parse_and_round_trip() {
        let r = RuleSpec::parse("deny secret.shop from mesh.test/ns/*/sa/cart ns shop").unwrap();
        assert!(!r.allow);
        assert_eq!(r.service.as_deref(), Some("secret.shop"));
        assert_eq!(
            r.principal.as_deref(),
            Some("spiffe://mesh.test/ns/*/sa/cart")
        );
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert!(RuleSpec::parse("permit x").is_err());
        assert!(RuleSpec::parse("allow x from").is_err());
        let text = "name = \"x\"\nduration_ms = 10\n[[node]]\nname = \"a\"\nidentity = \"a/b\"\n[[fault]]\nat_ms = 5\nkind = \"one-way\"\nnodes = [\"a\"]\n";
        let s = Scenario::from_toml(text).unwrap();
        assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s);
    }
}
