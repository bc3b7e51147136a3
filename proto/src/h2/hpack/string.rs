//! String literals (RFC 7541 §5.2): an H bit, a 7-bit-prefix length, then
//! raw or Huffman-coded octets.

use super::{huffman, integer, DecodeError, HuffmanMode};
use bytes::BytesMut;

/// A string literal located in a header block, not yet decoded.
#[derive(Clone, Copy)]
pub(super) struct Literal<'a> {
    huffman: bool,
    data: &'a [u8],
}

impl<'a> Literal<'a> {
    /// Reads the literal's header at `*pos` and advances past its data.
    #[inline]
    pub(super) fn read(src: &'a [u8], pos: &mut usize) -> Result<Literal<'a>, DecodeError> {
        let huffman = src.get(*pos).ok_or(DecodeError::Truncated)? & 0x80 != 0;
        let len = integer::decode(src, pos, 7)?;
        let end = pos.checked_add(len).ok_or(DecodeError::Truncated)?;
        let data = src.get(*pos..end).ok_or(DecodeError::Truncated)?;
        *pos = end;
        Ok(Literal { huffman, data })
    }

    /// An upper bound on the decoded length, capped at `max_len` (decoding
    /// fails past that anyway).
    #[inline]
    pub(super) fn decoded_bound(&self, max_len: usize) -> usize {
        let bound = if self.huffman {
            // No code is shorter than 5 bits.
            self.data.len().saturating_mul(8) / 5
        } else {
            self.data.len()
        };
        bound.min(max_len)
    }

    /// Appends the decoded string to `dst`.
    #[inline]
    pub(super) fn decode_into(
        &self,
        dst: &mut BytesMut,
        max_len: usize,
    ) -> Result<(), DecodeError> {
        if self.huffman {
            huffman::decode(self.data, dst, max_len)
        } else if self.data.len() > max_len {
            Err(DecodeError::StringTooLong)
        } else {
            dst.extend_from_slice(self.data);
            Ok(())
        }
    }

    /// Validates the literal without keeping it; returns its decoded length.
    pub(super) fn check(&self, max_len: usize) -> Result<usize, DecodeError> {
        if self.huffman {
            huffman::decoded_len(self.data, max_len)
        } else if self.data.len() > max_len {
            Err(DecodeError::StringTooLong)
        } else {
            Ok(self.data.len())
        }
    }
}

/// Appends `s` as a string literal, Huffman-coded as `mode` says.
pub(super) fn encode(dst: &mut Vec<u8>, s: &[u8], mode: HuffmanMode) {
    let huffman_len = match mode {
        HuffmanMode::Never => None,
        HuffmanMode::Always => Some(huffman::encoded_len(s)),
        HuffmanMode::WhenShorter => Some(huffman::encoded_len(s)).filter(|&n| n < s.len()),
    };
    // Room for the string and its length prefix (a few octets).
    match huffman_len {
        Some(len) => {
            dst.reserve(len + 5);
            integer::encode(dst, 0x80, 7, len);
            huffman::encode(s, dst);
        }
        None => {
            dst.reserve(s.len() + 5);
            integer::encode(dst, 0, 7, s.len());
            dst.extend_from_slice(s);
        }
    }
}
