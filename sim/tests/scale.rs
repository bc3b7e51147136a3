//! Generated meshes (`[mesh]`) load, run clean and replay; the benchmark
//! files in sim/bench/ parse and describe the meshes the README quotes.

use std::path::Path;

use warren_sim::run::run;
use warren_sim::scenario::Scenario;

const SMALL_MESH: &str = r#"
name = "small-mesh"
duration_ms = 3000
heal_ms = 500

[network]
latency_us = 200
jitter_us = 50
max_segment = 3000

[mesh]
nodes = 6
destinations = 3
flows = 40
bytes = 5000
"#;

#[test]
fn a_generated_mesh_runs_clean_and_replays() {
    let s = Scenario::from_toml(SMALL_MESH).unwrap();
    assert_eq!(s.nodes.len(), 6);
    assert!(s.mesh.is_none(), "expanded on load");
    let a = run(&s, 11);
    assert!(a.violations.is_empty(), "{:?}", a.violations);
    // 40 flows plus one liveness probe per (node, tunnel) pair.
    assert_eq!(a.stats.flows, 40 + 6 * 3);
    assert_eq!(a.stats.flows_ok, a.stats.flows);
    assert_eq!(a.trace_hash, run(&s, 11).trace_hash);
    assert_ne!(a.trace_hash, run(&s, 12).trace_hash);
}

#[test]
fn an_expanded_mesh_writes_out_as_plain_nodes() {
    let s = Scenario::from_toml(SMALL_MESH).unwrap();
    let text = s.to_toml();
    assert!(!text.contains("[mesh]"), "{text}");
    assert_eq!(Scenario::from_toml(&text).unwrap(), s);
}

#[test]
fn more_than_250_nodes_get_distinct_addresses() {
    // 300 nodes, one flow each to the next: the run only succeeds if
    // addresses past 10.0.0.254 reach the right hosts.
    let text = SMALL_MESH
        .replace("nodes = 6", "nodes = 300")
        .replace("destinations = 3", "destinations = 1")
        .replace("flows = 40", "flows = 300");
    let s = Scenario::from_toml(&text).unwrap();
    let r = run(&s, 1);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.stats.flows_ok, r.stats.flows);
}

#[test]
fn the_benchmarks_describe_the_meshes_the_readme_quotes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench");
    for (file, nodes, clients) in [
        ("mesh-10.toml", 10, 1000),
        ("mesh-100.toml", 100, 5000),
        ("mesh-1000.toml", 1000, 10_000),
        ("per-node/mesh-10.toml", 10, 100),
        ("per-node/mesh-100.toml", 100, 1000),
    ] {
        let s = Scenario::load(&dir.join(file)).unwrap();
        assert_eq!(s.nodes.len(), nodes, "{file}");
        let flows: u32 = s.clients.iter().map(|c| c.count).sum();
        assert_eq!(flows, clients, "{file}");
        assert_eq!(s.duration_ms, 60_000, "{file}");
    }
}
