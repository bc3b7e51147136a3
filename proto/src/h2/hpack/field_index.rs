//! The encoder's lookup structure over its dynamic table: which entries
//! hold a given name, and a given name and value, without scanning the
//! table.
//!
//! Keys map to the sequence number of the newest entry that has them.
//! Eviction is oldest first, so when the entry a key points at is evicted,
//! every older entry with that key is already gone and the key can go too.
//!
//! The maps are only looked up, never iterated, so their order cannot reach
//! the output. They hash with a fixed function, not a random seed: keys
//! number at most the table's entries (capacity / 32), so even keys chosen
//! to collide cost no more than scanning the table.

use bytes::Bytes;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Index over (name) and (name, value) of the dynamic table's entries.
#[derive(Debug, Default)]
pub(super) struct FieldIndex {
    names: HashMap<Bytes, NameSlot, BuildHasherDefault<WordHasher>>,
}

#[derive(Debug, Default)]
struct NameSlot {
    /// Newest entry with this name.
    newest: u64,
    /// Newest entry with this name and each value.
    values: HashMap<Bytes, u64, BuildHasherDefault<WordHasher>>,
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
        let slot = match self.names.get_mut(&name[..]) {
            Some(slot) => slot,
            None => self.names.entry(name.clone()).or_default(),
        };
        slot.newest = seq;
        slot.values.insert(value.clone(), seq);
    }

    /// Forgets entry `seq`, which was just evicted.
    pub(super) fn remove(&mut self, name: &[u8], value: &[u8], seq: u64) {
        let Some(slot) = self.names.get_mut(name) else {
            return;
        };
        if slot.newest == seq {
            self.names.remove(name);
        } else if slot.values.get(value) == Some(&seq) {
            slot.values.remove(value);
        }
    }

    /// Names and (name, value) pairs held; for tests of boundedness.
    #[cfg(test)]
    pub(super) fn counts(&self) -> (usize, usize) {
        let pairs = self.names.values().map(|slot| slot.values.len()).sum();
        (self.names.len(), pairs)
    }
}

/// A fast, fixed hash over 8-octet words (the multiply-rotate scheme of
/// rustc's FxHasher). Not collision resistant, which the bounded key count
/// makes harmless (see the module comment).
#[derive(Default)]
struct WordHasher {
    hash: u64,
}

impl WordHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(word);
            self.add(u64::from_le_bytes(buf));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}
