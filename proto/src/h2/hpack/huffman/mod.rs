//! The HPACK Huffman code (RFC 7541 §5.2, Appendix B): encoding, and a
//! table-driven decoder that consumes four bits per lookup.

mod code;
mod decode;
mod encode;

pub(super) use decode::{decode, decoded_len};
pub(super) use encode::{encode, encoded_len};
