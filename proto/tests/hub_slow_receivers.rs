//! The hub under many slow receivers at once, the case `warren bench`
//! measures (its slow-receiver figure: 16 or 64 flows whose targets never
//! read): what the hub holds must stay within one connection window of
//! received bytes plus the two legs' send and TLS buffers, however many
//! flows are stalled, and every byte must still arrive once the targets
//! read again. Windows are scaled down 16× from the defaults (same ratios:
//! the flows' stream windows together exceed the connection window), so
//! that the test moves megabytes, not hundreds of them.

mod node_harness;

use node_harness::certs::Ca;
use node_harness::config::TUNNEL;
use node_harness::hubs::HubMesh;
use node_harness::World;
use warren_proto::h2;

const HUB: usize = 0;
const STREAM_WINDOW: u32 = 256 << 10;
const CONNECTION_WINDOW: u32 = 1 << 20;
const SEND_BUFFER: u32 = 64 << 10;
/// A TLS fill and the TLS session's outgoing buffer, per connection (as in
/// `hub_relay.rs` and `hub_e2e.rs`).
const TLS: usize = (256 << 10) + (64 << 10);

fn windows() -> h2::Config {
    h2::Config {
        initial_stream_window: STREAM_WINDOW,
        initial_connection_window: CONNECTION_WINDOW,
        max_send_buffer: SEND_BUFFER,
        ..h2::Config::default()
    }
}

/// Stalls `flows` flows of `bytes` each with the hub's holdings checked
/// after every step against `bound`; then lets the targets read and checks
/// that every flow's bytes came back (the targets echo) in order. Returns
/// the hub's peak holding.
fn stall_and_release(mut world: World, flows: usize, bytes: usize, bound: usize) -> usize {
    world.run();
    let peak = world.bound_buffered(HUB, bound);
    let stalled = world.stall_readers(TUNNEL, flows, bytes);
    let at_stall = peak.get();
    world.resume_readers(&stalled);
    for (app, data) in &stalled {
        assert!(
            world.net.apps[*app].received == *data,
            "flow {app} got {} of {} bytes back",
            world.net.apps[*app].received.len(),
            data.len()
        );
    }
    at_stall
}

#[test]
fn many_stalled_plaintext_flows_hold_one_connection_window_at_the_hub() {
    let world = HubMesh::new(&Ca::new(1)).plaintext().h2(windows()).world();
    // 16 flows × 256 KiB stream windows = 4 MiB of stream credit: A's
    // forward connection window (1 MiB) is what bounds the hub, plus one
    // send buffer and TLS per leg.
    let bound = CONNECTION_WINDOW as usize + 2 * (SEND_BUFFER as usize + TLS);
    let peak = stall_and_release(world, 16, 512 << 10, bound);
    // The check can fail: the flows did fill the hub past one stream window.
    assert!(peak > STREAM_WINDOW as usize, "peak {peak}");
}

#[test]
fn many_stalled_end_to_end_flows_hold_one_pair_stream_window_at_the_hub() {
    let world = HubMesh::new(&Ca::new(1)).h2(windows()).world();
    // End to end every flow rides the one pair stream: one stream window.
    // (At step boundaries the hub holds little here: B keeps reading the
    // pair stream into its inner windows, and A's inner flow control stops
    // the flows before the pair stream's window fills. The bound is
    // checked after every step all the same.)
    let bound = STREAM_WINDOW as usize + 2 * (SEND_BUFFER as usize + TLS);
    stall_and_release(world, 16, 512 << 10, bound);
}
