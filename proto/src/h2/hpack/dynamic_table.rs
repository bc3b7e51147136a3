//! The dynamic table (RFC 7541 §2.3.2, §4): a FIFO of fields in a ring
//! buffer, newest first, evicting the oldest to stay within its capacity.

use bytes::Bytes;
use std::collections::VecDeque;

/// Overhead RFC 7541 §4.1 adds to each entry's name and value lengths.
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// Entries reserved on the first insertion.
const INITIAL_ENTRIES: usize = 128;

/// One field in the table. Cloning the halves is a reference-count bump.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    pub(super) name: Bytes,
    pub(super) value: Bytes,
}

impl Entry {
    /// The entry's size in RFC 7541 §4.1 terms.
    pub(super) fn size(&self) -> usize {
        entry_size(&self.name, &self.value)
    }
}

/// RFC 7541 §4.1 size of a field.
pub(super) fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + ENTRY_OVERHEAD
}

/// The table. Every entry gets a sequence number when inserted (0, 1, ...),
/// which stays fixed while its HPACK index shifts; the encoder's lookup
/// structure keys on it.
#[derive(Debug)]
pub(super) struct DynamicTable {
    /// `entries[0]` is the newest (HPACK index 62).
    entries: VecDeque<Entry>,
    size: usize,
    capacity: usize,
    /// Entries inserted so far; the newest entry's sequence number plus one.
    inserted: u64,
}

impl DynamicTable {
    pub(super) fn new(capacity: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            capacity,
            inserted: 0,
        }
    }

    /// The entry at `i`, 0 being the newest.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<&Entry> {
        self.entries.get(i)
    }

    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The entries, newest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Position (0 = newest) of the entry with sequence number `seq`, if it
    /// is still in the table.
    pub(super) fn position_of(&self, seq: u64) -> Option<usize> {
        let back = self.inserted.checked_sub(seq)?.checked_sub(1)?;
        usize::try_from(back)
            .ok()
            .filter(|&i| i < self.entries.len())
    }

    /// Changes the capacity, evicting the oldest entries until they fit.
    /// `evicted` sees each evicted entry with its sequence number.
    pub(super) fn set_capacity(&mut self, capacity: usize, evicted: impl FnMut(&Entry, u64)) {
        self.capacity = capacity;
        self.evict_to(capacity, evicted);
    }

    /// Adds a field as the newest entry, first evicting what must go. An
    /// entry larger than the capacity empties the table and is not added
    /// (RFC 7541 §4.4); returns the new entry's sequence number if added.
    pub(super) fn insert(
        &mut self,
        entry: Entry,
        mut evicted: impl FnMut(&Entry, u64),
    ) -> Option<u64> {
        let size = entry.size();
        if size > self.capacity {
            self.evict_to(0, &mut evicted);
            return None;
        }
        self.evict_to(self.capacity - size, &mut evicted);
        if self.entries.capacity() == 0 {
            // Room for a typical table's entries at once (4096 / 32 is the
            // most a default table holds); a larger one grows by doubling.
            self.entries
                .reserve((self.capacity / ENTRY_OVERHEAD).min(INITIAL_ENTRIES));
        }
        self.entries.push_front(entry);
        self.size += size;
        self.inserted += 1;
        Some(self.inserted - 1)
    }

    fn evict_to(&mut self, target: usize, mut evicted: impl FnMut(&Entry, u64)) {
        while self.size > target {
            let seq = self.inserted - self.entries.len() as u64;
            let Some(oldest) = self.entries.pop_back() else {
                break;
            };
            self.size -= oldest.size();
            evicted(&oldest, seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &'static str, value: &'static str) -> Entry {
        Entry {
            name: Bytes::from_static(name.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
        }
    }

    #[test]
    fn eviction_is_oldest_first_and_sizes_add_up() {
        let mut table = DynamicTable::new(100);
        let mut gone = Vec::new();
        assert_eq!(
            table.insert(entry("a", "1"), |e, s| gone.push((e.name.clone(), s))),
            Some(0)
        );
        assert_eq!(
            table.insert(entry("b", "2"), |e, s| gone.push((e.name.clone(), s))),
            Some(1)
        );
        assert_eq!(table.size(), 68);
        assert!(gone.is_empty());
        assert_eq!(
            table.insert(entry("c", "3"), |e, s| gone.push((e.name.clone(), s))),
            Some(2)
        );
        assert_eq!(gone, [(Bytes::from_static(b"a"), 0)]);
        assert_eq!(table.iter().count(), 2);
        assert_eq!(&table.get(0).unwrap().name[..], b"c");
        assert_eq!(&table.get(1).unwrap().name[..], b"b");
        assert_eq!(table.position_of(2), Some(0));
        assert_eq!(table.position_of(1), Some(1));
        assert_eq!(table.position_of(0), None);
        assert_eq!(table.position_of(3), None);
        table.set_capacity(40, |e, s| gone.push((e.name.clone(), s)));
        assert_eq!(gone.len(), 2);
        assert_eq!(gone[1], (Bytes::from_static(b"b"), 1));
        assert_eq!(table.size(), 34);
        // Too large: empties the table, is not added.
        assert_eq!(
            table.insert(entry("long-name", "long-value"), |_, _| {}),
            None
        );
        assert_eq!((table.iter().count(), table.size()), (0, 0));
    }
}
