//! HPACK header compression (RFC 7541), sans-IO.
//!
//! One [`Decoder`] per connection for the peer's header blocks and one
//! [`Encoder`] for ours. SETTINGS_HEADER_TABLE_SIZE reaches them so:
//! - ours (what the peer's encoder may use): raise it in the decoder with
//!   [`Decoder::set_max_table_size`] when our SETTINGS frame is sent, and
//!   lower it when the peer acknowledges it; the peer's first block after a
//!   decrease must start with a size update, or decoding fails.
//! - the peer's: pass it to [`Encoder::set_max_table_size`] when it
//!   arrives; the next block starts with the size update(s) it requires.
//!
//! Every [`DecodeError`] except [`DecodeError::HeaderListTooLarge`] leaves
//! the decoder out of step with the peer: end the connection with
//! COMPRESSION_ERROR and drop the decoder.
//!
//! Rooms:
//! - [`Decoder`] and [`Encoder`]: one direction's header blocks each.
//! - `static_table`, `dynamic_table`: the two halves of the index space;
//!   `field_index`: the encoder's lookup over its dynamic table.
//! - `huffman`, `integer`, `string`: the wire primitives; `chunk`: the
//!   shared buffers decoded strings are split from.

mod chunk;
mod decoder;
mod dynamic_table;
mod encoder;
mod field_index;
mod huffman;
mod integer;
mod static_table;
mod string;

pub use decoder::{Decoder, DEFAULT_MAX_STRING_LEN};
pub use encoder::{Encoder, ENCODER_TABLE_LIMIT};

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
