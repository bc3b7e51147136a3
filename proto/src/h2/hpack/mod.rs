//! HPACK header compression (RFC 7541), sans-IO.
//!
//! CONTRACT NOTE (remove when implemented): the public signatures below are
//! what `connection` is written against. Bodies are `todo!()` until HPACK
//! lands. Submodules (static table, dynamic table, huffman, integer and
//! string primitives) are the implementer's to lay out.

use super::Header;

/// The default SETTINGS_HEADER_TABLE_SIZE, 4096 octets.
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// Why a header block could not be decoded. Every variant except
/// [`DecodeError::HeaderListTooLarge`] is a COMPRESSION_ERROR for the
/// connection (RFC 9113 §4.3): the decoder's table can no longer be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The block ended in the middle of a representation.
    Truncated,
    /// An integer does not fit the decoder's limit.
    IntegerOverflow,
    /// A string literal is longer than the decoder's limit.
    StringTooLong,
    /// An index is 0 or past the end of the static + dynamic table.
    InvalidIndex(usize),
    /// Huffman data with invalid padding or an EOS symbol.
    InvalidHuffman,
    /// A dynamic table size update above the allowed maximum.
    TableSizeTooLarge {
        /// Size requested.
        requested: usize,
        /// Maximum we allow (our SETTINGS_HEADER_TABLE_SIZE).
        max: usize,
    },
    /// A dynamic table size update after the first field of a block, or a
    /// missing one at the start of the first block after our maximum shrank
    /// (RFC 7541 §4.2).
    TableSizeUpdateMisplaced,
    /// The decoded list exceeds the caller's limit. The block *was* decoded
    /// to the end, so the dynamic table is still in sync: this is a stream
    /// error (or a 431), not a connection error.
    HeaderListTooLarge {
        /// Size of the list counted per RFC 9113 §6.5.2, at least up to the limit.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl DecodeError {
    /// True when the HPACK context is broken and the connection must end.
    pub fn is_connection_error(&self) -> bool {
        !matches!(self, DecodeError::HeaderListTooLarge { .. })
    }
}

/// Decodes header blocks from one peer, keeping the dynamic table between
/// blocks.
#[derive(Debug)]
pub struct Decoder {
    _todo: (),
}

impl Decoder {
    /// A decoder whose table starts at, and is limited to, `max_table_size`
    /// (our SETTINGS_HEADER_TABLE_SIZE).
    pub fn new(max_table_size: usize) -> Decoder {
        todo!("hpack")
    }

    /// Sets the maximum table size the peer may use (call when our new
    /// SETTINGS_HEADER_TABLE_SIZE is acknowledged). If it shrank below the
    /// current size, the next block must begin with a size update.
    pub fn set_max_table_size(&mut self, max: usize) {
        todo!("hpack")
    }

    /// Limits string literals (after Huffman decoding) to `max` octets.
    pub fn set_max_string_len(&mut self, max: usize) {
        todo!("hpack")
    }

    /// Decodes one complete header block, appending fields to `out` in wire
    /// order. Stops storing (but not decoding) once the list size exceeds
    /// `max_list_size`, then returns [`DecodeError::HeaderListTooLarge`].
    /// Memory held is bounded by the table size plus `max_list_size`.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        out: &mut Vec<Header>,
    ) -> Result<(), DecodeError> {
        todo!("hpack")
    }

    /// Current dynamic table size in RFC 7541 §4.1 terms.
    pub fn table_size(&self) -> usize {
        todo!("hpack")
    }
}

/// How the encoder codes string literals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HuffmanMode {
    /// Huffman-code every string.
    Always,
    /// Never Huffman-code.
    Never,
    /// Huffman-code a string only when that is shorter.
    WhenShorter,
}

/// How one field is represented (RFC 7541 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Representation {
    /// The encoder's own choice: indexed if the whole field is in a table,
    /// else literal with incremental indexing (never-indexed for sensitive
    /// fields).
    Auto,
    /// Literal without indexing.
    WithoutIndexing,
    /// Literal never indexed.
    NeverIndexed,
}

/// Encodes header blocks for one peer, keeping the dynamic table between
/// blocks.
#[derive(Debug)]
pub struct Encoder {
    _todo: (),
}

impl Encoder {
    /// An encoder with the default 4096-octet table, Huffman when shorter.
    pub fn new() -> Encoder {
        todo!("hpack")
    }

    /// Sets how strings are coded.
    pub fn set_huffman(&mut self, mode: HuffmanMode) {
        todo!("hpack")
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed: the encoder will use at
    /// most `max` (it may choose less) and emits the size update(s) at the
    /// start of the next block (RFC 7541 §4.2).
    pub fn set_max_table_size(&mut self, max: usize) {
        todo!("hpack")
    }

    /// Sets the table capacity without emitting a size update; for tests that
    /// start from a state the RFC assumes (Appendix C.5/C.6).
    pub fn set_capacity_silently(&mut self, capacity: usize) {
        todo!("hpack")
    }

    /// Encodes a whole header block, appending to `out`.
    pub fn encode<'h>(&mut self, headers: impl IntoIterator<Item = &'h Header>, out: &mut Vec<u8>) {
        todo!("hpack")
    }

    /// Encodes one field with an explicit representation (pending size
    /// updates are emitted first). Blocks built this way are complete when
    /// the caller says so; the encoder keeps no per-block state beyond that.
    pub fn encode_field(&mut self, header: &Header, repr: Representation, out: &mut Vec<u8>) {
        todo!("hpack")
    }

    /// Current dynamic table size in RFC 7541 §4.1 terms.
    pub fn table_size(&self) -> usize {
        todo!("hpack")
    }
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}
