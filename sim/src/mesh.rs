//! A generated ztunnel-style mesh: the `[mesh]` section of a scenario.
//!
//! Writing a thousand `[[node]]` tables by hand (or committing a generated
//! file of them) is no way to describe "1000 nodes, each talking to four
//! others". The section names the shape instead, and [`MeshSpec::expand`]
//! turns it into ordinary nodes, servers and clients when the scenario is
//! loaded, so the rest of the simulator never knows the difference (and a
//! minimized scenario writes them out explicitly).
//!
//! ```toml
//! [mesh]
//! nodes = 1000          # m0 .. m999, identity mesh/m<i>, HBONE on
//! destinations = 4      # services each node dials (TLS connections stay O(n))
//! flows = 10000         # client flows in all, spread over nodes and destinations
//! bytes = 8192          # bytes each flow sends (and gets echoed back)
//! hubs = 2              # optional: hub nodes h0, h1 (identity mesh/hub<k>)
//! listeners = 5         # with hubs: only m0..m4 keep an HBONE listener
//! start_ms = 1500       # optional: first flow (hub links and registries settle)
//! stream_window = 65535 # optional: every node's HTTP/2 stream window
//! ```
//!
//! With `hubs`, every member dials every hub and the members past
//! `listeners` have no listener at all: flows to their services go through
//! a hub, flows to the others go direct.
//!
//! Node `i` exports `s<i>.mesh:80` to an echo server on its port 8080 and
//! tunnels loopback port `9000 + k` to the service of node
//! `(i + 1 + k * (nodes - 1) / destinations) % nodes`: distinct peers spread
//! around the ring, so each node has `destinations` outgoing and as many
//! incoming peers. Flow `j` starts on node `j % nodes` towards destination
//! `(j / nodes) % destinations`; the flows of one (node, destination) pair
//! start `duration_ms / count` apart, the pairs staggered across the first
//! gap so the mesh never starts everything in one instant. No random choice
//! is made here: the seed still picks segment sizes, jitter and writes.

use serde::{Deserialize, Serialize};

use crate::scenario::{ClientSpec, Mode, NodeSpec, ServerSpec};

/// Port of each node's echo server.
const SERVER_PORT: u16 = 8080;
/// First tunnel port; destination `k` uses `TUNNEL_BASE + k`.
const TUNNEL_BASE: u16 = 9000;
/// Most destinations per node (keeps tunnel ports in a small range).
pub const MAX_DESTINATIONS: u32 = 64;

/// The shape of a generated mesh.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MeshSpec {
    /// How many nodes.
    pub nodes: u32,
    /// How many other nodes each node dials (capped at `nodes - 1`).
    #[serde(default = "default_destinations")]
    pub destinations: u32,
    /// Client flows in all.
    pub flows: u64,
    /// Bytes each flow sends (at least 8).
    #[serde(default = "default_bytes")]
    pub bytes: u64,
    /// Largest single client write.
    #[serde(default = "default_max_write")]
    pub max_write: usize,
    /// Hub nodes every member dials (0: none, every member listens).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hubs: u32,
    /// With hubs, how many members keep an HBONE listener (the first
    /// ones); default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<u32>,
    /// When the first flow may start, ms.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub start_ms: u64,
    /// Every node's HTTP/2 stream window, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_window: Option<u32>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn default_destinations() -> u32 {
    4
}

fn default_bytes() -> u64 {
    8192
}

fn default_max_write() -> usize {
    16 * 1024
}

/// What a mesh section adds to a scenario.
#[derive(Debug, Default, PartialEq)]
pub struct Expanded {
    /// One node per mesh member.
    pub nodes: Vec<NodeSpec>,
    /// One echo server per node.
    pub servers: Vec<ServerSpec>,
    /// One client spec per (node, destination) pair that has flows.
    pub clients: Vec<ClientSpec>,
}

impl MeshSpec {
    /// The node name of member `i`.
    pub fn node_name(i: u32) -> String {
        format!("m{i}")
    }

    /// The destinations actually used: at most `nodes - 1`.
    pub fn fan_out(&self) -> u32 {
        self.destinations
            .min(self.nodes.saturating_sub(1))
            .min(MAX_DESTINATIONS)
    }

    /// The member node `i` dials as its destination `k`.
    pub fn peer(&self, i: u32, k: u32) -> u32 {
        let n = u64::from(self.nodes.max(1));
        let d = u64::from(self.fan_out().max(1));
        let offset = 1 + u64::from(k) * (n - 1) / d;
        ((u64::from(i) + offset) % n) as u32
    }

    /// The node name of hub `k`.
    pub fn hub_name(k: u32) -> String {
        format!("h{k}")
    }

    /// The nodes, servers and clients of the mesh, flows spread over
    /// `duration_ms` from `start_ms`.
    pub fn expand(&self, duration_ms: u64) -> Expanded {
        let d = self.fan_out();
        let mut out = Expanded::default();
        let hubs: Vec<String> = (0..self.hubs).map(Self::hub_name).collect();
        let listeners = if self.hubs == 0 {
            self.nodes
        } else {
            self.listeners.unwrap_or(self.nodes)
        };
        for i in 0..self.nodes {
            let tunnels = (0..d)
                .map(|k| format!("{}=s{}.mesh:80", TUNNEL_BASE + k as u16, self.peer(i, k)))
                .collect();
            out.nodes.push(NodeSpec {
                name: Self::node_name(i),
                identity: format!("mesh/m{i}"),
                hbone: i < listeners,
                tunnels,
                exports: vec![format!("s{i}.mesh:80={SERVER_PORT}")],
                rules: Vec::new(),
                cert_secs: 86_400,
                stream_window: self.stream_window,
                pool_idle_ms: None,
                connection_window: None,
                pool_max_connections: None,
                hub: false,
                hubs: hubs.clone(),
            });
            out.servers.push(ServerSpec {
                node: Self::node_name(i),
                port: SERVER_PORT,
                mode: Mode::Echo,
                stall_ms: 0,
            });
        }
        for k in 0..self.hubs {
            out.nodes.push(NodeSpec {
                name: Self::hub_name(k),
                identity: format!("mesh/hub{k}"),
                hbone: false,
                tunnels: Vec::new(),
                exports: Vec::new(),
                rules: Vec::new(),
                cert_secs: 86_400,
                stream_window: self.stream_window,
                pool_idle_ms: None,
                connection_window: None,
                pool_max_connections: None,
                hub: true,
                hubs: Vec::new(),
            });
        }
        if d == 0 {
            return out;
        }
        let pairs = u64::from(self.nodes) * u64::from(d);
        for i in 0..self.nodes {
            for k in 0..d {
                // Flow j goes to pair (j % nodes, (j / nodes) % d): pair p =
                // k * nodes + i gets every flow j ≡ p (mod pairs).
                let p = u64::from(k) * u64::from(self.nodes) + u64::from(i);
                let count = self.flows / pairs + u64::from(p < self.flows % pairs);
                let Ok(count) = u32::try_from(count) else {
                    continue;
                };
                if count == 0 {
                    continue;
                }
                let span = duration_ms.saturating_sub(self.start_ms);
                let every_ms = (span / u64::from(count)).max(1);
                out.clients.push(ClientSpec {
                    node: Self::node_name(i),
                    port: TUNNEL_BASE + k as u16,
                    bytes: self.bytes,
                    count,
                    start_ms: self.start_ms + p * every_ms / pairs,
                    every_ms,
                    max_write: self.max_write,
                    deadline_ms: None,
                    give_up_ms: None,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    fn spec(nodes: u32, destinations: u32, flows: u64) -> MeshSpec {
        MeshSpec {
            nodes,
            destinations,
            flows,
            bytes: 100,
            max_write: 64,
            hubs: 0,
            listeners: None,
            start_ms: 0,
            stream_window: None,
        }
    }

    #[test]
    fn peers_are_distinct_and_never_the_node_itself() {
        fn prop(nodes: u16, destinations: u8) -> TestResult {
            let s = spec(u32::from(nodes % 2000) + 1, u32::from(destinations), 0);
            for i in 0..s.nodes {
                let mut peers: Vec<u32> = (0..s.fan_out()).map(|k| s.peer(i, k)).collect();
                if peers.iter().any(|p| *p == i || *p >= s.nodes) {
                    return TestResult::failed();
                }
                peers.sort();
                peers.dedup();
                if peers.len() as u32 != s.fan_out() {
                    return TestResult::failed();
                }
            }
            TestResult::passed()
        }
        quickcheck(prop as fn(u16, u8) -> TestResult);
    }

    #[test]
    fn every_flow_is_placed_once_and_inside_the_duration() {
        fn prop(nodes: u8, destinations: u8, flows: u16, duration: u16) -> bool {
            let s = spec(
                u32::from(nodes) + 1,
                u32::from(destinations % 10),
                u64::from(flows),
            );
            let duration_ms = u64::from(duration) + 1;
            let e = s.expand(duration_ms);
            let placed: u64 = e.clients.iter().map(|c| u64::from(c.count)).sum();
            let expected = if s.fan_out() == 0 { 0 } else { s.flows };
            placed == expected
                && e.nodes.len() == s.nodes as usize
                && e.servers.len() == s.nodes as usize
                && e.clients.iter().all(|c| {
                    let last = c.start_ms + u64::from(c.count - 1) * c.every_ms;
                    c.count > 0 && last <= duration_ms.max(u64::from(c.count))
                })
        }
        quickcheck(prop as fn(u8, u8, u16, u16) -> bool);
    }

    #[test]
    fn hubs_join_the_mesh_and_only_the_first_members_listen() {
        let s = MeshSpec {
            hubs: 2,
            listeners: Some(3),
            start_ms: 500,
            stream_window: Some(65_535),
            ..spec(10, 2, 40)
        };
        let e = s.expand(4500);
        assert_eq!(e.nodes.len(), 12);
        let hubs: Vec<&NodeSpec> = e.nodes.iter().filter(|n| n.hub).collect();
        assert_eq!(
            hubs.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
            ["h0", "h1"]
        );
        assert!(hubs
            .iter()
            .all(|h| !h.hbone && h.exports.is_empty() && h.tunnels.is_empty()));
        let members = &e.nodes[..10];
        let listening: Vec<bool> = members.iter().map(|n| n.hbone).collect();
        assert_eq!(
            listening,
            [true, true, true, false, false, false, false, false, false, false]
        );
        assert!(members.iter().all(|n| n.hubs == ["h0", "h1"]));
        assert!(e.nodes.iter().all(|n| n.stream_window == Some(65_535)));
        // Flows start at start_ms and stay inside the duration.
        assert!(
            e.clients
                .iter()
                .all(|c| c.start_ms >= 500
                    && c.start_ms + u64::from(c.count - 1) * c.every_ms <= 4500)
        );
        // The generated scenario passes the cross-reference checks.
        let text = "name = \"m\"\nduration_ms = 4500\n[mesh]\nnodes = 10\ndestinations = 2\nflows = 40\nhubs = 2\nlisteners = 3\n";
        let loaded = crate::scenario::Scenario::from_toml(text).unwrap();
        assert_eq!(loaded.nodes.len(), 12);
    }

    #[test]
    fn a_small_mesh_reads_as_expected() {
        let e = spec(3, 4, 5).expand(1000);
        let tunnels: Vec<&[String]> = e.nodes.iter().map(|n| n.tunnels.as_slice()).collect();
        assert_eq!(
            tunnels,
            vec![
                &["9000=s1.mesh:80".to_string(), "9001=s2.mesh:80".to_string()][..],
                &["9000=s2.mesh:80".to_string(), "9001=s0.mesh:80".to_string()][..],
                &["9000=s0.mesh:80".to_string(), "9001=s1.mesh:80".to_string()][..],
            ]
        );
        // 5 flows over 6 pairs: pairs 0..5 (k * 3 + i) get one each.
        let placed: Vec<(String, u16, u32)> = e
            .clients
            .iter()
            .map(|c| (c.node.clone(), c.port, c.count))
            .collect();
        assert_eq!(
            placed,
            vec![
                ("m0".into(), 9000, 1),
                ("m0".into(), 9001, 1),
                ("m1".into(), 9000, 1),
                ("m1".into(), 9001, 1),
                ("m2".into(), 9000, 1),
            ]
        );
    }
}
