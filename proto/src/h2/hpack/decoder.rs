//! The header block decoder (RFC 7541 §3, §6).

use super::dynamic_table::{DynamicTable, Entry, ENTRY_OVERHEAD};
use super::string::Literal;
use super::{chunk, integer, static_table, DecodeError};
use crate::h2::Header;
use bytes::{Bytes, BytesMut};

/// The default limit on one string literal after Huffman decoding.
pub const DEFAULT_MAX_STRING_LEN: usize = 64 * 1024;

/// Decodes header blocks from one peer, keeping the dynamic table between
/// blocks.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Our SETTINGS_HEADER_TABLE_SIZE: the most a size update may ask for.
    max_table_size: usize,
    /// Set when our maximum dropped below the table's capacity: the next
    /// block must start with a size update to at most this (RFC 7541 §4.2).
    required_update: Option<usize>,
    max_string_len: usize,
    /// Where table entries' strings are decoded and split off (see
    /// [`chunk`]).
    entry_chunk: BytesMut,
    /// Where unindexed fields' strings are decoded and split off. Kept
    /// apart from `entry_chunk` so that a long-lived entry never keeps a
    /// large unindexed string alive.
    field_chunk: BytesMut,
}

/// Running total of the decoded list against the caller's limit.
struct ListSize {
    size: usize,
    max: usize,
}

impl ListSize {
    /// Counts a field of `size`; false once the list is over the limit.
    #[inline]
    fn admit(&mut self, size: usize) -> bool {
        self.size = self.size.saturating_add(size);
        self.size <= self.max
    }

    fn over(&self) -> bool {
        self.size > self.max
    }
}

impl Decoder {
    /// A decoder whose table starts at, and is limited to, `max_table_size`
    /// (our SETTINGS_HEADER_TABLE_SIZE).
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_table_size),
            max_table_size,
            required_update: None,
            max_string_len: DEFAULT_MAX_STRING_LEN,
            entry_chunk: BytesMut::new(),
            field_chunk: BytesMut::new(),
        }
    }

    /// Sets the maximum table size the peer may use.
    ///
    /// Call it when the peer may start using the new value: for an increase
    /// as soon as our SETTINGS frame is sent, for a decrease when the peer
    /// acknowledges it. If the maximum falls below the table's current
    /// capacity, the table is cut down at once (the peer's encoder has done
    /// the same) and the next block must begin with a size update to at
    /// most the new maximum.
    pub fn set_max_table_size(&mut self, max: usize) {
        self.max_table_size = max;
        if max < self.table.capacity() {
            self.required_update = Some(self.required_update.map_or(max, |r| r.min(max)));
            self.table.set_capacity(max, |_, _| {});
        }
    }

    /// Limits string literals (after Huffman decoding) to `max` octets.
    pub fn set_max_string_len(&mut self, max: usize) {
        self.max_string_len = max;
    }

    /// Decodes one complete header block, appending fields to `out` in wire
    /// order. Stops storing (but not decoding) once the list size exceeds
    /// `max_list_size`, then returns [`DecodeError::HeaderListTooLarge`].
    /// Memory held is bounded by the table size plus `max_list_size`: the
    /// decoder keeps its table and two buffers of at most 4 KiB that
    /// strings are split from; `out` gets fields up to the limit (the
    /// field that crosses it is decoded, then dropped).
    ///
    /// The returned strings share storage with the decoder's table and
    /// with each other; holding one keeps at most a 4 KiB buffer, or the
    /// string's own, alive.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        out: &mut Vec<Header>,
    ) -> Result<(), DecodeError> {
        // A field takes at least one octet; most take a few.
        out.reserve((block.len() / 6).min(max_list_size / ENTRY_OVERHEAD) + 1);
        self.decode_with(block, max_list_size, |header| out.push(header))
    }

    /// Like [`Decoder::decode`], but hands each field to `emit` in wire
    /// order instead of collecting them; `emit` is not called again once
    /// the list exceeds `max_list_size`.
    pub fn decode_with(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        mut emit: impl FnMut(Header),
    ) -> Result<(), DecodeError> {
        let pos = self.decode_size_updates(block)?;
        let mut list = ListSize {
            size: 0,
            max: max_list_size,
        };
        let result = self.decode_fields(block, pos, &mut list, &mut emit);
        if result.is_err() {
            // Drop whatever a failed string left half-written.
            self.entry_chunk.clear();
            self.field_chunk.clear();
        }
        chunk::trim(&mut self.entry_chunk);
        chunk::trim(&mut self.field_chunk);
        result?;
        if list.over() {
            return Err(DecodeError::HeaderListTooLarge {
                size: list.size,
                max: list.max,
            });
        }
        Ok(())
    }

    /// Decodes the fields after the opening size updates.
    fn decode_fields(
        &mut self,
        block: &[u8],
        mut pos: usize,
        list: &mut ListSize,
        emit: &mut impl FnMut(Header),
    ) -> Result<(), DecodeError> {
        while let Some(&first) = block.get(pos) {
            if first & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = integer::decode(block, &mut pos, 7)?;
                let (name, value) = self.field_at(index)?;
                if list.admit(name.len() + value.len() + ENTRY_OVERHEAD) {
                    emit(Header {
                        name,
                        value,
                        sensitive: false,
                    });
                }
            } else if first & 0x40 != 0 {
                // Literal with incremental indexing (§6.2.1).
                let index = integer::decode(block, &mut pos, 6)?;
                let entry = self.literal_entry(block, &mut pos, index)?;
                let admitted = list.admit(entry.size());
                let header = Header {
                    name: entry.name.clone(),
                    value: entry.value.clone(),
                    sensitive: false,
                };
                self.table.insert(entry, |_, _| {});
                if admitted {
                    emit(header);
                }
            } else if first & 0x20 != 0 {
                return Err(DecodeError::TableSizeUpdateMisplaced);
            } else {
                // Literal without indexing (§6.2.2) or never indexed (§6.2.3).
                let sensitive = first & 0x10 != 0;
                let index = integer::decode(block, &mut pos, 4)?;
                match self.literal_unindexed(block, &mut pos, index, list)? {
                    Unindexed::Field(name, value) => {
                        if list.admit(name.len() + value.len() + ENTRY_OVERHEAD) {
                            emit(Header {
                                name,
                                value,
                                sensitive,
                            });
                        }
                    }
                    Unindexed::Skipped(size) => {
                        list.admit(size);
                    }
                }
            }
        }
        Ok(())
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

    /// Applies the size updates that open a block and returns the position
    /// of the first field. Enforces the §4.2 rules: each update within our
    /// maximum, and a pending required update present.
    fn decode_size_updates(&mut self, block: &[u8]) -> Result<usize, DecodeError> {
        let mut pos = 0;
        while let Some(&first) = block.get(pos) {
            if first & 0xe0 != 0x20 {
                break;
            }
            let size = integer::decode(block, &mut pos, 5)?;
            if size > self.max_table_size {
                return Err(DecodeError::TableSizeTooLarge {
                    requested: size,
                    max: self.max_table_size,
                });
            }
            if self.required_update.is_some_and(|r| size <= r) {
                self.required_update = None;
            }
            self.table.set_capacity(size, |_, _| {});
        }
        if self.required_update.is_some() {
            return Err(DecodeError::TableSizeUpdateMisplaced);
        }
        Ok(pos)
    }

    /// The field at HPACK `index`, static or dynamic.
    #[inline]
    fn field_at(&self, index: usize) -> Result<(Bytes, Bytes), DecodeError> {
        if let Some((name, value)) = static_table::get(index) {
            return Ok((Bytes::from_static(name), Bytes::from_static(value)));
        }
        match self.dynamic_at(index) {
            Some(entry) => Ok((entry.name.clone(), entry.value.clone())),
            None => Err(DecodeError::InvalidIndex(index)),
        }
    }

    /// The name at HPACK `index` (non-zero), static or dynamic.
    #[inline]
    fn name_at(&self, index: usize) -> Result<Bytes, DecodeError> {
        if let Some((name, _)) = static_table::get(index) {
            return Ok(Bytes::from_static(name));
        }
        match self.dynamic_at(index) {
            Some(entry) => Ok(entry.name.clone()),
            None => Err(DecodeError::InvalidIndex(index)),
        }
    }

    fn dynamic_at(&self, index: usize) -> Option<&Entry> {
        self.table.get(index.checked_sub(static_table::LEN + 1)?)
    }

    /// Reads the name (literal when `index` is 0) and value of a field that
    /// goes into the table; its strings are split off `entry_chunk`.
    fn literal_entry(
        &mut self,
        block: &[u8],
        pos: &mut usize,
        index: usize,
    ) -> Result<Entry, DecodeError> {
        let max = self.max_string_len;
        let name = if index == 0 {
            FieldName::Literal(Literal::read(block, pos)?)
        } else {
            FieldName::Indexed(self.name_at(index)?)
        };
        let value = Literal::read(block, pos)?;
        let chunk = chunk::room(
            &mut self.entry_chunk,
            name.bound(max) + value.decoded_bound(max),
            0,
        );
        let name = name.decode(chunk, max)?;
        value.decode_into(chunk, max)?;
        Ok(Entry {
            name,
            value: chunk.split().freeze(),
        })
    }

    /// Reads a field that is not indexed; its strings are split off
    /// `field_chunk`. Once the list is over its limit the strings are only
    /// validated.
    fn literal_unindexed(
        &mut self,
        block: &[u8],
        pos: &mut usize,
        index: usize,
        list: &ListSize,
    ) -> Result<Unindexed, DecodeError> {
        let max = self.max_string_len;
        let name = if index == 0 {
            FieldName::Literal(Literal::read(block, pos)?)
        } else {
            FieldName::Indexed(self.name_at(index)?)
        };
        let value = Literal::read(block, pos)?;
        if list.over() {
            let name_len = match name {
                FieldName::Literal(literal) => literal.check(max)?,
                FieldName::Indexed(name) => name.len(),
            };
            let value_len = value.check(max)?;
            return Ok(Unindexed::Skipped(name_len + value_len + ENTRY_OVERHEAD));
        }
        // Size a new chunk for the rest of the block if that is small:
        // every remaining string fits in 8/5 of the remaining octets.
        let rest = block.len().saturating_sub(*pos).saturating_mul(8) / 5;
        let chunk = chunk::room(
            &mut self.field_chunk,
            name.bound(max) + value.decoded_bound(max),
            rest,
        );
        let name = name.decode(chunk, max)?;
        value.decode_into(chunk, max)?;
        Ok(Unindexed::Field(name, chunk.split().freeze()))
    }
}

/// A field name: a literal still to decode, or a table entry's name.
enum FieldName<'a> {
    Literal(Literal<'a>),
    Indexed(Bytes),
}

impl FieldName<'_> {
    /// Room the name needs in a chunk.
    fn bound(&self, max_len: usize) -> usize {
        match self {
            FieldName::Literal(literal) => literal.decoded_bound(max_len),
            FieldName::Indexed(_) => 0,
        }
    }

    /// The name, decoding a literal into `chunk`.
    fn decode(self, chunk: &mut BytesMut, max_len: usize) -> Result<Bytes, DecodeError> {
        match self {
            FieldName::Literal(literal) => {
                literal.decode_into(chunk, max_len)?;
                Ok(chunk.split().freeze())
            }
            FieldName::Indexed(name) => Ok(name),
        }
    }
}

/// What [`Decoder::literal_unindexed`] made of a field.
enum Unindexed {
    /// The decoded name and value.
    Field(Bytes, Bytes),
    /// Validated but not kept (the list is over its limit); its size.
    Skipped(usize),
}
