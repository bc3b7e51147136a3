//! The simulator finds real bugs: with each of proto's injectable bugs
//! (feature `sim-bugs`), a sweep of a suitable scenario reports an
//! invariant violation within 1000 seeds, and the violation is of the kind
//! the bug should cause. (Without any bug the same scenarios run clean:
//! `sim/ci.sh` sweeps them 1000 seeds with a build without the feature.)
//!
//! Run: `cargo test -p warren-sim --features sim-bugs --test bug_injection -- --nocapture`
//! (prints how many seeds each bug needed).

#![cfg(feature = "sim-bugs")]

use std::path::Path;

use warren_proto::sim_bugs::Bug;
use warren_sim::run::sweep_all;
use warren_sim::scenario::Scenario;

/// Seeds a bug may need at most.
const MAX_SEEDS: u64 = 1000;
/// Seeds run per batch (on two threads) before looking for a violation.
const BATCH: u64 = 8;

fn scenario(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).expect("scenario loads")
}

/// The scenario that exposes `bug`, and the kind of violation expected.
fn case(bug: Bug) -> (&'static str, &'static str) {
    match bug {
        // A stalled stream never finishes: a fault-free run must not have one.
        Bug::LostWindowUpdate => ("small-windows", "liveness"),
        // The echo is cut short although the flow ended cleanly.
        Bug::HalfCloseAsFullClose => ("small-windows", "integrity"),
        // A revoked flow keeps delivering after the change.
        Bug::PolicySkippedAfterReload => ("policy-revoke", "policy"),
        // A flow sent to a draining connection is refused without a fault.
        Bug::PoolReuseAfterGoaway => ("small-windows", "liveness"),
        // A repeated byte breaks the seeded stream (partial sends need a
        // stream that takes less than a read: a stalled one).
        Bug::RelayOffByOne => ("stalled-upload", "integrity"),
        // The node buffers a whole upload the stream cannot take yet.
        Bug::MissingPauseRead => ("stalled-upload", "memory"),
        // The hub loses the part of a chunk the far leg could not take yet
        // (only a relayed flow several stream windows long has such
        // partial sends; no direct scenario crosses a hub). Services go
        // end to end by default, so the lost bytes are inner TLS records:
        // the inner session fails and resets its flows, and the client
        // sees a reset (liveness), never wrong bytes (integrity).
        Bug::HubRelayDropsUnsent => ("hub-partition", "liveness"),
        // A connect started and abandoned in one input (HEADERS and
        // RST_STREAM read together) is reported to the node for a socket
        // it forgot: only a host that answers connects at once
        // (`instant_connects`) does that, so no other scenario sees it.
        Bug::AbandonedConnectNotTakenBack => ("instant-connects", "host-error"),
    }
}

/// The first failing seed of `scenario` with `bug`, and its violations.
fn first_failure(scenario: &Scenario) -> Option<(u64, Vec<String>)> {
    let mut start = 0;
    while start < MAX_SEEDS {
        let end = (start + BATCH).min(MAX_SEEDS);
        let failing = sweep_all(scenario, start..end, 2)
            .into_iter()
            .find(|o| !o.violations.is_empty());
        if let Some(o) = failing {
            return Some((o.seed, o.violations));
        }
        start = end;
    }
    None
}

#[test]
fn every_injected_bug_is_caught_within_1000_seeds() {
    let mut report = Vec::new();
    for bug in Bug::ALL {
        let (name, kind) = case(bug);
        let mut s = scenario(name);
        s.inject = Some(bug);
        let Some((seed, violations)) = first_failure(&s) else {
            panic!("{bug} on {name}: no violation in {MAX_SEEDS} seeds");
        };
        assert!(
            violations.iter().any(|v| v.starts_with(kind)),
            "{bug} on {name} seed {seed}: expected a {kind} violation, got {violations:?}"
        );
        report.push(format!(
            "{bug}: caught on {name} after {} seed(s): {}",
            seed + 1,
            violations[0]
        ));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn without_an_injected_bug_the_same_scenarios_run_clean() {
    for name in [
        "small-windows",
        "policy-revoke",
        "stalled-upload",
        "instant-connects",
    ] {
        let s = scenario(name);
        assert_eq!(s.inject, None);
        for o in sweep_all(&s, 0..8, 2) {
            assert!(
                o.violations.is_empty(),
                "{name} seed {}: {:?}",
                o.seed,
                o.violations
            );
        }
    }
}
