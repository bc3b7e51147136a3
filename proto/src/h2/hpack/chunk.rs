//! Buffers that many short strings are split from, so that they share one
//! allocation and a clone is a reference-count bump.
//!
//! A string split from a chunk keeps the whole chunk alive. Table entries
//! are evicted in insertion order, so if a chunk only ever receives table
//! entries, the chunks still alive hold the live entries plus at most one
//! partly dead chunk at either end: memory stays within the table size plus
//! two chunks.

use bytes::BytesMut;

/// The size of a new chunk, unless one string needs more.
pub(super) const CHUNK: usize = 4096;

/// Makes sure `chunk` has room for `needed` more octets, starting a new
/// chunk (of at least `needed + extra`, or [`CHUNK`]) when it has not.
pub(super) fn room(chunk: &mut BytesMut, needed: usize, extra: usize) -> &mut BytesMut {
    if chunk.capacity() - chunk.len() < needed {
        let size = needed.saturating_add(extra.min(CHUNK)).max(CHUNK);
        *chunk = BytesMut::with_capacity(size);
    }
    chunk
}

/// Drops the rest of a chunk that was sized for one long string, so that it
/// is not kept alive for the short strings that follow.
pub(super) fn trim(chunk: &mut BytesMut) {
    if chunk.capacity() > CHUNK {
        *chunk = BytesMut::new();
    }
}
