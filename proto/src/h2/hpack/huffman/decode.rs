//! Table-driven Huffman decoding: a finite state machine over nibbles.
//!
//! The states are the 256 internal nodes of the code tree (257 leaves). For
//! every state and every 4-bit input there is one precomputed [`Step`]: the
//! state after those bits, and the symbol completed on the way, if any (the
//! shortest code has 5 bits, so at most one). The tables are built at
//! compile time from [`CODES`] by `const fn`, so they cannot drift from the
//! code table.

use super::code::{CODES, EOS};
use crate::h2::hpack::DecodeError;
use bytes::BytesMut;

/// Number of internal nodes in the code tree, hence of decoder states.
const STATES: usize = 256;
/// Marks a tree link as a leaf; the low bits are the symbol.
const LEAF: u16 = 0x8000;
/// One transition of the decoder, packed in a `u32` so that one load
/// fetches it: bits 0-7 the next state, 8-15 the symbol, 16-17 the flags.
type Step = u32;
/// Step flag: the symbol completes here.
const EMIT: u32 = 1 << 16;
/// Step flag: the bits spell EOS, which a string must not contain.
const FAIL: u32 = 2 << 16;

/// The code tree: `[node][bit]` is a child node id, or `LEAF | symbol`.
/// Node 0 is the root; 0 never appears as a child, so it marks "empty".
const fn build_tree() -> [[u16; 2]; STATES] {
    let mut child = [[0u16; 2]; STATES];
    let mut next_node: u16 = 1;
    let mut sym = 0;
    while sym <= EOS {
        let (code, len) = CODES[sym];
        let mut node = 0usize;
        let mut i = len;
        while i > 0 {
            i -= 1;
            let bit = ((code >> i) & 1) as usize;
            if i == 0 {
                child[node][bit] = LEAF | sym as u16;
            } else {
                if child[node][bit] == 0 {
                    // Indexing panics at compile time if the table were not a
                    // prefix code with exactly 256 internal nodes.
                    child[node][bit] = next_node;
                    next_node += 1;
                }
                node = child[node][bit] as usize;
            }
        }
        sym += 1;
    }
    child
}

const TREE: [[u16; 2]; STATES] = build_tree();

const fn build_steps() -> [[Step; 16]; STATES] {
    let mut steps = [[0; 16]; STATES];
    let mut state = 0;
    while state < STATES {
        let mut nibble = 0;
        while nibble < 16 {
            let mut node = state;
            let mut step: Step = 0;
            let mut b = 4;
            while b > 0 {
                b -= 1;
                let link = TREE[node][(nibble >> b) & 1];
                if link & LEAF != 0 {
                    let sym = (link & !LEAF) as usize;
                    if sym == EOS {
                        step |= FAIL;
                    } else {
                        step |= EMIT | ((sym as u32) << 8);
                    }
                    node = 0;
                } else {
                    node = link as usize;
                }
            }
            steps[state][nibble] = step | node as u32;
            nibble += 1;
        }
        state += 1;
    }
    steps
}

static STEPS: [[Step; 16]; STATES] = build_steps();

/// States in which a string may end: the root (the last symbol ended on an
/// octet boundary) and the prefixes of EOS up to 7 bits long, which is
/// exactly valid padding (RFC 7541 §5.2).
const fn build_accepting() -> [bool; STATES] {
    let mut accepting = [false; STATES];
    accepting[0] = true;
    let mut node = 0usize;
    let mut depth = 0;
    while depth < 7 {
        node = TREE[node][1] as usize;
        accepting[node] = true;
        depth += 1;
    }
    accepting
}

static ACCEPTING: [bool; STATES] = build_accepting();

/// Feeds one nibble to the state machine.
#[inline(always)]
fn advance(
    state: &mut u8,
    nibble: u8,
    emit: &mut impl FnMut(u8) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let step = STEPS[usize::from(*state)][usize::from(nibble & 0x0f)];
    if step >= EMIT {
        if step & FAIL != 0 {
            return Err(DecodeError::InvalidHuffman);
        }
        emit((step >> 8) as u8)?;
    }
    *state = step as u8;
    Ok(())
}

/// Runs the state machine over `src`, handing each decoded octet to `emit`.
#[inline(always)]
fn run(src: &[u8], mut emit: impl FnMut(u8) -> Result<(), DecodeError>) -> Result<(), DecodeError> {
    let mut state = 0u8;
    for &byte in src {
        advance(&mut state, byte >> 4, &mut emit)?;
        advance(&mut state, byte, &mut emit)?;
    }
    if ACCEPTING[usize::from(state)] {
        Ok(())
    } else {
        Err(DecodeError::InvalidHuffman)
    }
}

/// Decodes `src` onto the end of `dst`. Fails with
/// [`DecodeError::StringTooLong`] if more than `max_len` octets would come
/// out; `dst` never grows past that.
pub(crate) fn decode(src: &[u8], dst: &mut BytesMut, max_len: usize) -> Result<(), DecodeError> {
    // Every code is at least 5 bits long, so 8/5 octets per input octet
    // bound the output: running out of room means exceeding `max_len`.
    let bound = (src.len().saturating_mul(8) / 5).min(max_len);
    let start = dst.len();
    dst.resize(start + bound, 0);
    // `start` is at most the new length: this slice is in bounds.
    let out = &mut dst[start..];
    let mut written = 0;
    let result = run(src, |sym| {
        let slot = out.get_mut(written).ok_or(DecodeError::StringTooLong)?;
        *slot = sym;
        written += 1;
        Ok(())
    });
    dst.truncate(start + written);
    result
}

/// Checks `src` like [`decode`] but keeps nothing; returns the decoded length.
pub(crate) fn decoded_len(src: &[u8], max_len: usize) -> Result<usize, DecodeError> {
    let mut len = 0usize;
    run(src, |_| {
        if len >= max_len {
            return Err(DecodeError::StringTooLong);
        }
        len += 1;
        Ok(())
    })?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::super::encode::{encode, encoded_len};
    use super::*;
    use quickcheck::{QuickCheck, TestResult};

    fn decode_vec(src: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut dst = BytesMut::new();
        decode(src, &mut dst, usize::MAX)?;
        Ok(dst.to_vec())
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc_examples() {
        // RFC 7541 C.4.1 and C.4.2.
        let www = hex("f1e3c2e5f23a6ba0ab90f4ff");
        assert_eq!(decode_vec(&www).unwrap(), b"www.example.com");
        assert_eq!(decode_vec(&hex("a8eb10649cbf")).unwrap(), b"no-cache");
        let mut out = Vec::new();
        encode(b"www.example.com", &mut out);
        assert_eq!(out, www);
        assert_eq!(encoded_len(b"www.example.com"), www.len());
    }

    #[test]
    fn empty_string() {
        assert_eq!(decode_vec(&[]).unwrap(), b"");
        let mut out = Vec::new();
        encode(b"", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn padding_rules() {
        // '0' is 00000; padded with 111 is valid.
        assert_eq!(decode_vec(&[0b0000_0111]).unwrap(), b"0");
        // Padding with a zero bit is not EOS's prefix.
        assert_eq!(decode_vec(&[0b0000_0110]), Err(DecodeError::InvalidHuffman));
        // A whole octet of ones after a symbol: padding longer than 7 bits.
        assert_eq!(
            decode_vec(&[0b0000_0111, 0xff]),
            Err(DecodeError::InvalidHuffman)
        );
        // Only padding, seven ones... needs a full octet, which is 8 ones.
        assert_eq!(decode_vec(&[0xff]), Err(DecodeError::InvalidHuffman));
        // A truncated long code (first 16 bits of a 19-bit code).
        assert_eq!(decode_vec(&[0xff, 0xfe]), Err(DecodeError::InvalidHuffman));
    }

    #[test]
    fn eos_is_rejected() {
        // 30 ones (EOS) then 2 bits of padding.
        assert_eq!(
            decode_vec(&[0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::InvalidHuffman)
        );
        // EOS after a symbol: '0' (00000), EOS (30 ones), 5 ones of padding.
        assert_eq!(
            decode_vec(&[0x07, 0xff, 0xff, 0xff, 0xff]),
            Err(DecodeError::InvalidHuffman)
        );
    }

    #[test]
    fn length_limit() {
        let mut src = Vec::new();
        encode(b"abcdef", &mut src);
        let mut dst = BytesMut::new();
        assert_eq!(decode(&src, &mut dst, 5), Err(DecodeError::StringTooLong));
        assert!(dst.len() <= 5);
        assert_eq!(decoded_len(&src, 5), Err(DecodeError::StringTooLong));
        assert_eq!(decoded_len(&src, 6), Ok(6));
        let mut dst = BytesMut::new();
        decode(&src, &mut dst, 6).unwrap();
        assert_eq!(&dst[..], b"abcdef");
    }

    #[test]
    fn every_symbol_round_trips_alone() {
        for b in 0..=255u8 {
            let mut out = Vec::new();
            encode(&[b], &mut out);
            assert_eq!(decode_vec(&out).unwrap(), [b]);
        }
    }

    #[test]
    fn prop_round_trip() {
        fn prop(data: Vec<u8>) -> bool {
            let mut out = Vec::new();
            encode(&data, &mut out);
            out.len() == encoded_len(&data)
                && decode_vec(&out).as_deref() == Ok(&data[..])
                && decoded_len(&out, usize::MAX) == Ok(data.len())
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Vec<u8>) -> bool);
    }

    #[test]
    fn prop_decoding_arbitrary_bytes_agrees_with_reencoding() {
        // Whatever decodes must re-encode to the same bytes: the code is a
        // bijection on valid strings (padding is fully determined).
        fn prop(data: Vec<u8>) -> TestResult {
            match decode_vec(&data) {
                Ok(plain) => {
                    let mut again = Vec::new();
                    encode(&plain, &mut again);
                    TestResult::from_bool(again == data)
                }
                Err(e) => TestResult::from_bool(e == DecodeError::InvalidHuffman),
            }
        }
        QuickCheck::new()
            .tests(5000)
            .quickcheck(prop as fn(Vec<u8>) -> TestResult);
    }
}
