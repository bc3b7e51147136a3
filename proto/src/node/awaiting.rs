//! Whether the node waits for an answer that should come soon: what a host
//! asks before it decides to keep polling instead of parking (warren-host's
//! spin), so that only a node with something in flight burns CPU waiting.

use core::time::Duration;

use super::flow::Phase;
use super::Node;
use crate::time::Instant;

/// How long after a flow started its first answer still counts as due
/// soon. A warm flow's setup takes 0.1–0.3 ms on loopback (benches/
/// WARREN-BENCH.md, "Warm setup: wake-ups"); a flow still silent a
/// millisecond in waits for something slower than a spin could cover (a
/// remote target, a server that speaks only when asked twice), and
/// flows older than this are not looked at, so the query costs one look
/// per flow started in the last millisecond, however many flows are open.
pub const AWAIT_HORIZON: Duration = Duration::from_millis(1);

impl Node {
    /// Whether the node is waiting, as of `now`, for a peer's answer that
    /// should come soon. True exactly when a mesh connection's TLS
    /// handshake is under way, or a flow started within [`AWAIT_HORIZON`]
    /// before `now` is still opening (its front end reading the request,
    /// its tunnel waiting for the 200, its target connect under way) or
    /// has carried bytes in at most one direction (it waits for the first
    /// bytes back). A node whose turns only moved bulk data or finished
    /// flows, or that has been quiet for a millisecond, is not waiting.
    ///
    /// Cost: one look per mesh connection and per flow started within the
    /// horizon (flow ids grow with the time they were opened, so the scan
    /// stops at the first older one).
    pub fn awaiting_peer(&self, now: Instant) -> bool {
        if self.handshaking() {
            return true;
        }
        self.flows
            .values()
            .rev()
            .take_while(|flow| now.saturating_duration_since(flow.started) <= AWAIT_HORIZON)
            .any(|flow| {
                flow.phase != Phase::Relay || flow.bytes_sent == 0 || flow.bytes_received == 0
            })
    }
}
