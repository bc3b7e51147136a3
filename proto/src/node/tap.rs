//! The plaintext tap: an opt-in, bounded copy of every byte the node's
//! mesh connections carried as plaintext (HTTP/2 frames in both directions,
//! after TLS decryption and before TLS encryption).
//!
//! It exists to *prove* what a node can see: a hub relaying end-to-end
//! flows must never hold their application bytes, and a test writes a
//! marker through a flow and looks for it here. Off unless asked for; when
//! on, it keeps at most its limit and counts the rest.

use crate::pool::ConnId;

use super::Node;

/// What the tap holds.
#[derive(Debug, Default)]
pub(super) struct Tap {
    bytes: Vec<u8>,
    limit: usize,
    dropped: u64,
}

impl Node {
    /// Starts keeping a copy of the plaintext of every mesh connection
    /// (at most `limit` bytes; later bytes are only counted). Meant for
    /// tests and debugging: it shows what this node could read.
    pub fn record_plaintext(&mut self, limit: usize) {
        self.tap = Some(Tap {
            bytes: Vec::new(),
            limit,
            dropped: 0,
        });
    }

    /// The plaintext recorded since [`Node::record_plaintext`], and how
    /// many bytes did not fit its limit.
    pub fn recorded_plaintext(&self) -> (&[u8], u64) {
        self.tap
            .as_ref()
            .map_or((&[][..], 0), |t| (&t.bytes[..], t.dropped))
    }

    /// Moves what connection `c` copied into the tap (and makes it copy
    /// from now on).
    pub(super) fn collect_tap(&mut self, c: ConnId) {
        let (Some(tap), Some(m)) = (self.tap.as_mut(), self.conns.get_mut(&c)) else {
            return;
        };
        let copied = m.tapped.get_or_insert_with(Vec::new);
        let room = tap.limit.saturating_sub(tap.bytes.len()).min(copied.len());
        tap.bytes
            .extend_from_slice(copied.get(..room).unwrap_or(&[]));
        tap.dropped = tap
            .dropped
            .saturating_add((copied.len().saturating_sub(room)) as u64);
        copied.clear();
    }
}
