//! `sim/scenarios/slow-readers.toml` catches head-of-line blocking: with
//! the pool's spreading on (the default) every flow meets its deadline;
//! with it off the echo flows wait behind the stalled ones and miss them.

use std::path::Path;

use warren_sim::run::run;
use warren_sim::scenario::Scenario;

fn scenario() -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/slow-readers.toml");
    Scenario::load(&path).unwrap()
}

#[test]
fn echo_flows_meet_their_deadlines_behind_stalled_readers() {
    let s = scenario();
    for seed in 0..3 {
        let report = run(&s, seed);
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}",
            report.violations
        );
        assert_eq!(report.stats.flows_ok, report.stats.flows, "seed {seed}");
        assert_eq!(run(&s, seed).trace_hash, report.trace_hash, "seed {seed}");
    }
}

#[test]
fn without_spreading_the_echo_flows_miss_their_deadlines() {
    let mut s = scenario();
    let cart = s.nodes.iter_mut().find(|n| n.name == "cart").unwrap();
    cart.pool_max_connections = Some(1);
    let report = run(&s, 1);
    let missed = report
        .violations
        .iter()
        .filter(|v| v.starts_with("deadline: "))
        .count();
    assert_eq!(missed, 6, "{:?}", report.violations);
    assert_eq!(missed, report.violations.len(), "{:?}", report.violations);
}
