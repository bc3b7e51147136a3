//! The header block encoder (RFC 7541 §6, §4.2).

use super::dynamic_table::{entry_size, DynamicTable, Entry};
use super::field_index::{FieldIndex, Found};
use super::{
    chunk, integer, static_table, string, HuffmanMode, Representation, DEFAULT_TABLE_SIZE,
};
use crate::h2::Header;
use bytes::{Bytes, BytesMut};

/// The most table the encoder uses, whatever the peer allows: a bigger
/// table costs memory for little gain (nghttp2 makes the same choice).
pub const ENCODER_TABLE_LIMIT: usize = DEFAULT_TABLE_SIZE;

/// Encodes header blocks for one peer, keeping the dynamic table between
/// blocks.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    index: FieldIndex,
    huffman: HuffmanMode,
    /// The capacity the peer's decoder last heard of.
    signaled: usize,
    /// The smallest capacity used since then: if below `signaled`, the
    /// peer must hear of it too, or its table keeps entries ours evicted.
    lowest: usize,
    /// Where copies of table entries' strings are split off (see [`chunk`]).
    entry_chunk: BytesMut,
}

/// Where a field's name or whole field sits, as an HPACK index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lookup {
    Field(usize),
    Name(usize),
    Nothing,
}

impl Encoder {
    /// An encoder with the default 4096-octet table, Huffman when shorter.
    pub fn new() -> Encoder {
        Encoder {
            table: DynamicTable::new(DEFAULT_TABLE_SIZE),
            index: FieldIndex::default(),
            huffman: HuffmanMode::WhenShorter,
            signaled: DEFAULT_TABLE_SIZE,
            lowest: DEFAULT_TABLE_SIZE,
            entry_chunk: BytesMut::new(),
        }
    }

    /// Sets how strings are coded.
    pub fn set_huffman(&mut self, mode: HuffmanMode) {
        self.huffman = mode;
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed: the encoder will use at
    /// most `max` (it may choose less; it never uses more than
    /// [`ENCODER_TABLE_LIMIT`]) and emits the size update(s) at the start of
    /// the next block (RFC 7541 §4.2).
    pub fn set_max_table_size(&mut self, max: usize) {
        let capacity = max.min(ENCODER_TABLE_LIMIT);
        self.resize(capacity);
        self.lowest = self.lowest.min(capacity);
    }

    /// Sets the table capacity without emitting a size update; for tests that
    /// start from a state the RFC assumes (Appendix C.5/C.6).
    pub fn set_capacity_silently(&mut self, capacity: usize) {
        self.resize(capacity);
        self.signaled = capacity;
        self.lowest = capacity;
    }

    /// Encodes a whole header block, appending to `out`.
    pub fn encode<'h>(&mut self, headers: impl IntoIterator<Item = &'h Header>, out: &mut Vec<u8>) {
        self.emit_size_updates(out);
        for header in headers {
            self.encode_one(header, Representation::Auto, out);
        }
    }

    /// Encodes one field with an explicit representation (pending size
    /// updates are emitted first). Blocks built this way are complete when
    /// the caller says so; the encoder keeps no per-block state beyond that.
    pub fn encode_field(&mut self, header: &Header, repr: Representation, out: &mut Vec<u8>) {
        self.emit_size_updates(out);
        self.encode_one(header, repr, out);
    }

    /// Current dynamic table size in RFC 7541 §4.1 terms.
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// The dynamic table's entries as `(name, value)`, newest (HPACK index
    /// 62) first; for tests and diagnostics.
    pub fn table_entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.table.iter().map(|e| (&e.name[..], &e.value[..]))
    }

    fn resize(&mut self, capacity: usize) {
        let index = &mut self.index;
        self.table
            .set_capacity(capacity, |e, seq| index.remove(&e.name, &e.value, seq));
    }

    /// Emits the updates owed to the peer: the lowest capacity since the last
    /// signal if the table dipped below it, then the current one.
    fn emit_size_updates(&mut self, out: &mut Vec<u8>) {
        let capacity = self.table.capacity();
        let dipped = self.lowest < self.signaled;
        if dipped && self.lowest < capacity {
            integer::encode(out, 0x20, 5, self.lowest);
        }
        if dipped || capacity != self.signaled {
            integer::encode(out, 0x20, 5, capacity);
        }
        self.signaled = capacity;
        self.lowest = capacity;
    }

    fn encode_one(&mut self, header: &Header, repr: Representation, out: &mut Vec<u8>) {
        let repr = if header.sensitive {
            Representation::NeverIndexed
        } else {
            repr
        };
        let lookup = self.lookup(&header.name, &header.value);
        let name_index = match lookup {
            Lookup::Field(i) | Lookup::Name(i) => i,
            Lookup::Nothing => 0,
        };
        match repr {
            Representation::Auto => {
                if let Lookup::Field(index) = lookup {
                    integer::encode(out, 0x80, 7, index);
                } else if entry_size(&header.name, &header.value) <= self.table.capacity() {
                    self.literal(0x40, 6, name_index, header, out);
                    self.insert(header, name_index);
                } else {
                    // It would only empty the table.
                    self.literal(0x00, 4, name_index, header, out);
                }
            }
            Representation::WithoutIndexing => self.literal(0x00, 4, name_index, header, out),
            Representation::NeverIndexed => self.literal(0x10, 4, name_index, header, out),
        }
    }

    /// Finds the field: a whole match in the static, then the dynamic table;
    /// else the name, preferring the static table (as RFC 7541 Appendix C
    /// does) and otherwise the newest dynamic entry.
    fn lookup(&self, name: &[u8], value: &[u8]) -> Lookup {
        let in_static = static_table::find(name, value);
        if let Some(static_table::Match::Field(i)) = in_static {
            return Lookup::Field(i);
        }
        let in_dynamic = self.index.find(name, value).and_then(|found| {
            let (seq, whole) = match found {
                Found::Field(seq) => (seq, true),
                Found::Name(seq) => (seq, false),
            };
            let index = static_table::LEN + 1 + self.table.position_of(seq)?;
            Some((index, whole))
        });
        match (in_static, in_dynamic) {
            (_, Some((index, true))) => Lookup::Field(index),
            (Some(static_table::Match::Name(i)), _) => Lookup::Name(i),
            (_, Some((index, false))) => Lookup::Name(index),
            _ => Lookup::Nothing,
        }
    }

    fn literal(
        &self,
        flags: u8,
        prefix_bits: u32,
        name_index: usize,
        header: &Header,
        out: &mut Vec<u8>,
    ) {
        integer::encode(out, flags, prefix_bits, name_index);
        if name_index == 0 {
            string::encode(out, &header.name, self.huffman);
        }
        string::encode(out, &header.value, self.huffman);
    }

    /// Adds the field to the table. Its bytes are copied into a chunk of
    /// table strings (the name shared with a table entry where there is
    /// one), so the table never keeps a caller's larger buffer alive.
    fn insert(&mut self, header: &Header, name_index: usize) {
        let shared_name = match static_table::get(name_index) {
            Some((name, _)) => Some(Bytes::from_static(name)),
            None => self.index.name(&header.name).cloned(),
        };
        let needed = header.value.len() + shared_name.as_ref().map_or(header.name.len(), |_| 0);
        let chunk = chunk::room(&mut self.entry_chunk, needed, 0);
        let name = shared_name.unwrap_or_else(|| {
            chunk.extend_from_slice(&header.name);
            chunk.split().freeze()
        });
        chunk.extend_from_slice(&header.value);
        let value = chunk.split().freeze();
        chunk::trim(&mut self.entry_chunk);
        let entry = Entry {
            name: name.clone(),
            value: value.clone(),
        };
        let index = &mut self.index;
        // Callers check the entry fits, so it is always added; were it not,
        // the eviction callback would already have emptied the index.
        if let Some(seq) = self
            .table
            .insert(entry, |e, seq| index.remove(&e.name, &e.value, seq))
        {
            self.index.insert(&name, &value, seq);
        }
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn updates(encoder: &mut Encoder) -> Vec<u8> {
        let mut out = Vec::new();
        encoder.encode(std::iter::empty(), &mut out);
        out
    }

    fn update(size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        integer::encode(&mut out, 0x20, 5, size);
        out
    }

    #[test]
    fn size_updates_signal_the_minimum_then_the_final_size() {
        let mut encoder = Encoder::new();
        assert_eq!(updates(&mut encoder), []);
        encoder.set_max_table_size(100);
        encoder.set_max_table_size(DEFAULT_TABLE_SIZE);
        assert_eq!(updates(&mut encoder), [update(100), update(4096)].concat());
        // Signalled once only.
        assert_eq!(updates(&mut encoder), []);
        // Down twice: only the final (smallest) size.
        encoder.set_max_table_size(2000);
        encoder.set_max_table_size(1000);
        assert_eq!(updates(&mut encoder), update(1000));
        // Up, beyond the encoder's own limit: it stops at the limit.
        encoder.set_max_table_size(1 << 20);
        assert_eq!(updates(&mut encoder), update(ENCODER_TABLE_LIMIT));
        encoder.set_max_table_size(1 << 20);
        assert_eq!(updates(&mut encoder), []);
        // Down and back to where it was: the dip must still be heard.
        encoder.set_max_table_size(0);
        encoder.set_max_table_size(ENCODER_TABLE_LIMIT);
        assert_eq!(updates(&mut encoder), [update(0), update(4096)].concat());
        // Up then down to below the start: the minimum alone.
        encoder.set_max_table_size(3000);
        encoder.set_max_table_size(3500);
        encoder.set_max_table_size(50);
        assert_eq!(updates(&mut encoder), update(50));
    }

    #[test]
    fn updates_lead_encode_field_once() {
        let mut encoder = Encoder::new();
        encoder.set_max_table_size(0);
        let header = Header::new(&b":method"[..], &b"GET"[..]);
        let mut out = Vec::new();
        encoder.encode_field(&header, Representation::Auto, &mut out);
        encoder.encode_field(&header, Representation::Auto, &mut out);
        assert_eq!(out, [0x20, 0x82, 0x82]);
    }

    #[test]
    fn index_tracks_the_table_and_stays_bounded() {
        let mut encoder = Encoder::new();
        encoder.set_huffman(HuffmanMode::Never);
        for i in 0..5000u32 {
            // Five names stay in the table while their values come and
            // go; the others leave it again.
            let (name, value) = if i % 2 == 0 {
                (format!("x-{}", i % 5), format!("{}", i % 300))
            } else {
                (format!("y-{i}"), String::new())
            };
            let mut out = Vec::new();
            encoder.encode([&Header::new(name, value)], &mut out);
            let names: BTreeSet<&[u8]> = encoder.table_entries().map(|(n, _)| n).collect();
            let pairs: BTreeSet<(&[u8], &[u8])> = encoder.table_entries().collect();
            assert_eq!(
                encoder.index.counts(),
                (names.len(), pairs.len()),
                "after {i}"
            );
        }
        // Every entry is found where it is.
        for (position, entry) in encoder.table.iter().enumerate() {
            let newest = encoder
                .table
                .iter()
                .position(|e| e.name == entry.name && e.value == entry.value);
            if newest == Some(position) {
                assert_eq!(
                    encoder.lookup(&entry.name, &entry.value),
                    Lookup::Field(static_table::LEN + 1 + position)
                );
            }
        }
    }

    #[test]
    fn oversized_fields_are_not_indexed() {
        let mut encoder = Encoder::new();
        encoder.set_huffman(HuffmanMode::Never);
        let mut out = Vec::new();
        encoder.encode([&Header::new(&b"a"[..], &b"b"[..])], &mut out);
        assert_eq!(encoder.table_size(), 34);
        let big = Header::new(&b"x"[..], vec![b'v'; 5000]);
        let mut out = Vec::new();
        encoder.encode([&big], &mut out);
        // Literal without indexing, new name; the table is untouched.
        assert_eq!(out[0], 0x00);
        assert_eq!(encoder.table_size(), 34);
    }
}
