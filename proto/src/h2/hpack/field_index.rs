//! The encoder's lookup structure over its dynamic table: which entries
//! hold a given name, and a given name and value, without scanning the
//! table.
//!
//! Keys map to the sequence number of the newest entry that has them.
//! Eviction is oldest first, so when the entry a key points at is evicted,
//! every older entry with that key is already gone and the key can go too.
//! Ordered maps keep the encoder deterministic and need no hash seed.

use bytes::Bytes;
use std::collections::BTreeMap;

/// Index over (name) and (name, value) of the dynamic table's entries.
#[derive(Debug, Default)]
pub(super) struct FieldIndex {
    names: BTreeMap<Bytes, NameSlot>,
}

#[derive(Debug)]
struct NameSlot {
    /// Newest entry with this name.
    newest: u64,
    /// Newest entry with this name and each value.
    values: BTreeMap<Bytes, u64>,
}

/// What the index knows of a field: sequence numbers of the newest entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// An entry with the same name and value.
    Field(u64),
    /// An entry with the same name, a different value.
    Name(u64),
}

impl FieldIndex {
    pub(super) fn find(&self, name: &[u8], value: &[u8]) -> Option<Found> {
        let slot = self.names.get(name)?;
        Some(match slot.values.get(value) {
            Some(&seq) => Found::Field(seq),
            None => Found::Name(slot.newest),
        })
    }

    /// The name as the index holds it, to share its storage with a new entry.
    pub(super) fn name(&self, name: &[u8]) -> Option<&Bytes> {
        self.names.get_key_value(name).map(|(key, _)| key)
    }

    /// Records the newest entry `seq`.
    pub(super) fn insert(&mut self, name: &Bytes, value: &Bytes, seq: u64) {
        let slot = self.names.entry(name.clone()).or_insert_with(|| NameSlot {
            newest: seq,
            values: BTreeMap::new(),
        });
        slot.newest = seq;
        slot.values.insert(value.clone(), seq);
    }

    /// Forgets entry `seq`, which was just evicted.
    pub(super) fn remove(&mut self, name: &[u8], value: &[u8], seq: u64) {
        let Some(slot) = self.names.get_mut(name) else {
            return;
        };
        if slot.values.get(value) == Some(&seq) {
            slot.values.remove(value);
        }
        if slot.newest == seq {
            self.names.remove(name);
        }
    }
}
