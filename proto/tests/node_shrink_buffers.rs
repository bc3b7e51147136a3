//! What a node keeps after a burst: `Node::shrink_buffers` gives back the
//! room that many flows moving bytes at once grew its shared buffers to
//! (HTTP/2 output, TLS plaintext and ciphertext, the output queue), and
//! shrinking at any moment loses no byte.
//!
//! Why: `Vec::clear` keeps capacity, so an agent whose thousand flows each
//! echoed 64 KiB kept 2.5 MB of drained connection buffers for good,
//! 2.5 KiB per idle flow (benches/WARREN-BENCH.md, "Idle after busy: what
//! stays").

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::{DirectPair, TUNNEL};

/// Flows in the burst, and bytes each echoes.
const FLOWS: usize = 40;
const BYTES: usize = 64 * 1024;

#[test]
fn a_quiet_node_gives_back_what_a_burst_grew() {
    let ca = Ca::new(1);
    let mut world = DirectPair::new(&ca).world();
    let flows = world.flows_of_sizes(TUNNEL, &[BYTES; FLOWS]);
    world.assert_echoed(&flows);
    let mut grown = Vec::new();
    for (i, node) in world.nodes.iter_mut().enumerate() {
        assert_eq!(node.held_bytes(), 0, "node {i} drained");
        grown.push(node.buffer_capacity());
        node.shrink_buffers();
        let kept = node.buffer_capacity();
        assert_eq!(kept, 0, "node {i} keeps {kept} of {} bytes", grown[i]);
    }
    // The burst grew A's buffers past one flow's share (the echoes all
    // arrive at once there), so the test is not vacuous.
    assert!(grown[0] > BYTES, "the burst grew only {grown:?} bytes");
    // The buffers grow again for the next burst.
    let again = world.flows_of_sizes(TUNNEL, &[BYTES; FLOWS]);
    world.assert_echoed(&again);
}

/// Shrinking while bytes wait (readers stalled, windows full, output
/// queued) keeps every byte, in order.
#[test]
fn shrinking_while_bytes_wait_loses_no_byte() {
    let ca = Ca::new(1);
    let mut world = DirectPair::new(&ca).world();
    let stalled = world.stall_readers(TUNNEL, 4, 400 << 10);
    let held: Vec<usize> = world.nodes.iter().map(|n| n.held_bytes()).collect();
    assert!(held.iter().any(|&h| h > 0), "bytes wait somewhere");
    for node in world.nodes.iter_mut() {
        node.shrink_buffers();
    }
    let after: Vec<usize> = world.nodes.iter().map(|n| n.held_bytes()).collect();
    assert_eq!(after, held, "shrinking drops no held byte");
    world.resume_readers(&stalled);
    world.assert_echoed(&stalled);
}
