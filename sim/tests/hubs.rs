//! Relayed flows under the simulator's invariants: a hub's own policy is
//! part of the oracle, and a hub's bytes per relayed flow are measured
//! against its stream windows.

use std::path::Path;

use warren_sim::run::run;
use warren_sim::scenario::Scenario;

/// cart reaches echo (no listener) only through hub h0; `hub_rules` are
/// the hub's policy. Fault-free: every flow the oracle allows must succeed.
fn relayed(hub_rules: &str) -> Scenario {
    Scenario::from_toml(&format!(
        r#"
name = "relayed"
duration_ms = 3000
heal_ms = 500
[[node]]
name = "cart"
identity = "shop/cart"
tunnels = ["9000=echo.shop:80"]
hubs = ["h0"]
[[node]]
name = "web"
identity = "web/front"
tunnels = ["9000=echo.shop:80"]
hubs = ["h0"]
[[node]]
name = "echo"
identity = "shop/echo"
exports = ["echo.shop:80=8080"]
hubs = ["h0"]
[[node]]
name = "h0"
identity = "mesh/hub0"
hub = true
rules = [{hub_rules}]
[[server]]
node = "echo"
port = 8080
mode = "echo"
[[client]]
node = "cart"
port = 9000
bytes = 30000
count = 4
start_ms = 1000
[[client]]
node = "web"
port = 9000
bytes = 30000
count = 4
start_ms = 1000
"#
    ))
    .unwrap()
}

#[test]
fn a_hub_rule_denies_relayed_flows_and_the_oracle_agrees() {
    let open = run(&relayed(""), 0);
    assert!(open.violations.is_empty(), "{:?}", open.violations);
    // 8 flows and 2 probes, all relayed.
    assert_eq!((open.stats.flows, open.stats.flows_ok), (10, 10));
    // The hub refuses cart: were the hub's rules not in the oracle, the
    // refused flows would be liveness violations (fault-free run).
    let closed = run(&relayed("\"deny * from */sa/cart\""), 0);
    assert!(closed.violations.is_empty(), "{:?}", closed.violations);
    assert_eq!((closed.stats.flows, closed.stats.flows_ok), (10, 5));
}

#[test]
fn a_relayed_flow_holds_at_most_two_hub_windows() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/hub-partition.toml");
    let s = Scenario::load(&path).unwrap();
    for seed in 0..3 {
        let report = run(&s, seed);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        // Flows of 200-300 KB against 64 KiB windows fill the hub's legs.
        let held = report.stats.peak_relay;
        assert!(held > 32 * 1024, "seed {seed}: the hub held only {held}");
        assert!(held <= 2 * 65_535, "seed {seed}: {held}");
    }
}
