//! Relayed end to end (A → hub → B, an inner TLS session inside the pair
//! stream), counted in socket writes: what agent B hands its target per
//! MiB moved. Inner DATA frames arrive at B one TLS record (16 KiB) at a
//! time; if each record's piece became a piece of its own in the stream's
//! receive buffer, B would write the target once per record (64 writes per
//! MiB, the cost the chunked receive buffer brought to the relayed path).

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{addr, pattern, ECHO, TUNNEL};
use node_harness::hubs::HubMesh;
use node_harness::World;

const B: usize = 2;
const MIB: usize = 1024 * 1024;

/// Every write node `n` made to the socket it connected to `target`, in
/// bytes offered (the transcript's `n write sock taken/offered`).
fn writes_to(world: &World, n: usize, target: &str) -> Vec<usize> {
    let connect_suffix = format!(" {}", addr(target));
    let prefix = format!("{n} connect ");
    let socks: Vec<String> = world
        .net
        .transcript
        .iter()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.strip_suffix(&connect_suffix))
        .map(str::to_string)
        .collect();
    assert_eq!(socks.len(), 1, "B connected to its target once");
    let write = format!("{n} write {} ", socks[0]);
    world
        .net
        .transcript
        .iter()
        .filter_map(|line| line.strip_prefix(&write))
        .filter_map(|rest| rest.split('/').nth(1)?.parse().ok())
        .collect()
}

/// A world where reads and pipes are large enough that a frame's records
/// arrive together, as on a busy loopback socket.
fn bulk_world() -> World {
    let mut world = HubMesh::new(&Ca::new(1)).world();
    world.run();
    world.read_size = 256 * 1024;
    world.net.cap = 4 * MIB;
    world
}

#[test]
fn b_writes_its_target_once_per_inner_frame_not_once_per_record() {
    let mut world = bulk_world();
    let data = pattern(4 * MIB, 3);
    let app = world.start_flow(TUNNEL, &data);
    world.run();
    world.assert_echoed(&[(app, data.clone())]);
    let writes = writes_to(&world, B, ECHO);
    let moved: usize = writes.iter().sum();
    assert!(moved >= data.len(), "the target got every byte ({moved})");
    let per_mib = writes.len() * MIB / data.len();
    // An inner DATA frame carries up to 64 KiB (one TLS buffer): 16 frames
    // per MiB, some written in two parts where a turn ended mid-frame (23
    // per MiB here); one write per record would be 64.
    assert!(
        per_mib <= 32,
        "B wrote its target {} times for {} MiB ({per_mib} per MiB, sizes {:?})",
        writes.len(),
        data.len() / MIB,
        &writes[..writes.len().min(12)]
    );
}
