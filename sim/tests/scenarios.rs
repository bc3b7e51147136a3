//! Every committed scenario and regression runs clean, and a seed replays
//! to the same trace hash.

use std::path::Path;

use warren_sim::run::run;
use warren_sim::scenario::Scenario;

fn scenarios(dir: &str) -> Vec<(String, Scenario)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.display().to_string(), Scenario::load(&p).unwrap()))
        .collect()
}

fn clean(dir: &str, seeds: std::ops::Range<u64>) {
    let all = scenarios(dir);
    assert!(!all.is_empty(), "no scenario in {dir}");
    for (path, s) in all {
        for seed in seeds.clone() {
            let report = run(&s, seed);
            assert!(
                report.violations.is_empty(),
                "{path} seed {seed}: {:?}",
                report.violations
            );
            assert!(
                report.stats.flows_ok > 0,
                "{path} seed {seed}: no flow succeeded"
            );
        }
    }
}

#[test]
fn scenarios_run_clean() {
    clean("scenarios", 0..3);
}

#[test]
fn regressions_run_clean() {
    clean("regressions", 0..10);
}

#[test]
fn a_seed_replays_to_the_same_hash_and_another_differs() {
    for (path, s) in scenarios("scenarios") {
        let a = run(&s, 5).trace_hash;
        assert_eq!(a, run(&s, 5).trace_hash, "{path}");
        assert_ne!(a, run(&s, 6).trace_hash, "{path}");
    }
}
