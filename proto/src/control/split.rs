//! Registry messages larger than one frame, sent as several.
//!
//! A snapshot of a big mesh does not fit the frame limit the receiver
//! enforces (the limit is what keeps the receiver's buffer bounded, so it
//! is not simply raised). The hub sends it in parts that old and new
//! agents already understand: a [`Message::Registry`] with the first rows,
//! then [`Message::RegistryDelta`]s from the snapshot's epoch to the same
//! epoch adding the rest. A large delta is split the same way: every part
//! but the last stays at the base epoch, the last moves to the new one, so
//! an agent that applies them in order ends exactly where one big message
//! would have left it, and a part lost in between shows as an epoch gap.

use super::codec::{encode, EncodeError};
use super::message::{Message, RegistryDelta, RegistryEntry, RegistrySnapshot};

/// Bytes a registry message needs besides its rows: the tag, two epochs
/// and two row counts as postcard varints (at most 1 + 10 + 10 + 5 + 5).
const MESSAGE_OVERHEAD: usize = 31;

/// Appends `message` to `out` as one frame, or as several when it is a
/// registry snapshot or delta longer than `max_len`. On error `out` is
/// unchanged.
pub fn encode_split(
    message: &Message,
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let whole = encode(message, max_len, out);
    let parts = match (whole, message) {
        (Err(EncodeError::TooLong { .. }), Message::Registry(snapshot)) => {
            snapshot_parts(snapshot, max_len)?
        }
        (Err(EncodeError::TooLong { .. }), Message::RegistryDelta(delta)) => {
            delta_parts(delta, max_len)?
        }
        (result, _) => return result,
    };
    let start = out.len();
    for part in &parts {
        if let Err(e) = encode(part, max_len, out) {
            out.truncate(start);
            return Err(e);
        }
    }
    Ok(())
}

/// Rows grouped so each group's message fits `max_len`.
fn groups(rows: &[RegistryEntry], max_len: usize) -> Result<Vec<Vec<RegistryEntry>>, EncodeError> {
    let budget = max_len.saturating_sub(MESSAGE_OVERHEAD);
    let mut out = Vec::new();
    let mut group = Vec::new();
    let mut used = 0usize;
    for row in rows {
        let len = postcard::to_allocvec(row)
            .map_err(EncodeError::Serialize)?
            .len();
        if len > budget {
            return Err(EncodeError::TooLong { len, max: max_len });
        }
        if used.saturating_add(len) > budget {
            out.push(core::mem::take(&mut group));
            used = 0;
        }
        group.push(row.clone());
        used = used.saturating_add(len);
    }
    out.push(group);
    Ok(out)
}

fn snapshot_parts(
    snapshot: &RegistrySnapshot,
    max_len: usize,
) -> Result<Vec<Message>, EncodeError> {
    let epoch = snapshot.epoch;
    let mut parts = groups(&snapshot.entries, max_len)?.into_iter();
    let first = Message::Registry(RegistrySnapshot {
        epoch,
        entries: parts.next().unwrap_or_default(),
    });
    let rest = parts.map(|added| {
        Message::RegistryDelta(RegistryDelta {
            base: epoch,
            epoch,
            added,
            removed: Vec::new(),
        })
    });
    Ok(core::iter::once(first).chain(rest).collect())
}

fn delta_parts(delta: &RegistryDelta, max_len: usize) -> Result<Vec<Message>, EncodeError> {
    let base = delta.base;
    let removals = groups(&delta.removed, max_len)?
        .into_iter()
        .map(|removed| RegistryDelta {
            base,
            epoch: base,
            added: Vec::new(),
            removed,
        });
    let additions = groups(&delta.added, max_len)?
        .into_iter()
        .map(|added| RegistryDelta {
            base,
            epoch: base,
            added,
            removed: Vec::new(),
        });
    let mut parts: Vec<RegistryDelta> = removals
        .chain(additions)
        .filter(|d| !d.added.is_empty() || !d.removed.is_empty())
        .collect();
    match parts.last_mut() {
        Some(last) => last.epoch = delta.epoch,
        None => parts.push(delta.clone()),
    }
    Ok(parts.into_iter().map(Message::RegistryDelta).collect())
}
