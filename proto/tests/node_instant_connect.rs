//! A host that knows a connect's result at once (`Host::connect_result_now`,
//! as warren-host does on loopback) hands it to the node in the same drain.
//! The node must not hear it for a socket it gave up in that same input:
//! HEADERS and RST_STREAM for one stream, read together, start the
//! target's connect and abandon it before the host has run it.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{pattern, DirectPair, TUNNEL};

const B: usize = 1;

#[test]
fn a_connect_abandoned_in_the_input_that_started_it_is_never_run() {
    let mut world = DirectPair::new(&Ca::new(1)).world();
    world.net.instant_connects = true;
    world.run();
    // A warm flow: the connection to B is up and instant connects work.
    let data = pattern(3_000, 1);
    let first = world.flow(TUNNEL, &data);
    assert_eq!(world.net.apps[first].received, data);
    let servers = world.net.server_apps.len();
    // B reads nothing while A sends a flow's HEADERS and DATA, then (the
    // client reset) its RST_STREAM: B gets all three in one read.
    world.net.held.insert(B);
    let app = world.open_flow(TUNNEL, b"early");
    world.app_reset(app);
    world.run();
    world.net.held.remove(&B);
    world.run();
    assert_eq!(
        world.net.server_apps.len(),
        servers,
        "the abandoned connect never reached the target"
    );
    // B goes on: the next flow is served.
    let data = pattern(5_000, 2);
    let next = world.flow(TUNNEL, &data);
    assert_eq!(world.net.apps[next].received, data);
}
