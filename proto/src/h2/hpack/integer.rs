//! Prefix-coded integers (RFC 7541 §5.1).

use super::DecodeError;

/// The largest integer we accept. Indices, lengths and table sizes never
/// need more; RFC 7541 §5.1 lets decoders reject integers past their
/// limits, in value or in octet length.
const MAX_VALUE: u64 = u32::MAX as u64;
/// Continuation octets allowed after the prefix: five carry 35 bits, more
/// than `MAX_VALUE` needs, so more are only ever zero padding or overflow.
const MAX_CONTINUATION_SHIFT: u32 = 28;

/// Appends `value` with an `prefix_bits`-bit prefix; `flags` fills the high
/// bits of the first octet.
#[inline]
pub(super) fn encode(dst: &mut Vec<u8>, flags: u8, prefix_bits: u32, value: usize) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        dst.push(flags | value as u8);
        return;
    }
    dst.push(flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        dst.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.push(rest as u8);
}

/// Reads an integer with a `prefix_bits`-bit prefix starting at `*pos`
/// (the first octet's high bits are the caller's), advancing `*pos`.
#[inline]
pub(super) fn decode(src: &[u8], pos: &mut usize, prefix_bits: u32) -> Result<usize, DecodeError> {
    let first = *src.get(*pos).ok_or(DecodeError::Truncated)?;
    *pos += 1;
    let max_prefix = u8::MAX >> (8 - prefix_bits);
    let prefix = first & max_prefix;
    if prefix < max_prefix {
        return Ok(usize::from(prefix));
    }
    decode_continuation(src, pos, u64::from(max_prefix))
}

#[cold]
fn decode_continuation(src: &[u8], pos: &mut usize, base: u64) -> Result<usize, DecodeError> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    loop {
        let octet = *src.get(*pos).ok_or(DecodeError::Truncated)?;
        *pos += 1;
        value |= u64::from(octet & 0x7f) << shift;
        if octet & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > MAX_CONTINUATION_SHIFT {
            return Err(DecodeError::IntegerOverflow);
        }
    }
    let value = value + base;
    if value > MAX_VALUE {
        return Err(DecodeError::IntegerOverflow);
    }
    usize::try_from(value).map_err(|_| DecodeError::IntegerOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::QuickCheck;

    fn enc(prefix_bits: u32, value: usize) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, 0, prefix_bits, value);
        out
    }

    #[test]
    fn rfc_examples() {
        // RFC 7541 C.1.1, C.1.2, C.1.3.
        assert_eq!(enc(5, 10), [0b01010]);
        assert_eq!(enc(5, 1337), [0b11111, 0b1001_1010, 0b0000_1010]);
        assert_eq!(enc(8, 42), [42]);
        let mut pos = 0;
        assert_eq!(decode(&[0b11111, 0x9a, 0x0a], &mut pos, 5), Ok(1337));
        assert_eq!(pos, 3);
    }

    #[test]
    fn flags_are_kept_and_ignored() {
        let mut out = Vec::new();
        encode(&mut out, 0xe0, 5, 3);
        assert_eq!(out, [0xe3]);
        let mut pos = 0;
        assert_eq!(decode(&out, &mut pos, 5), Ok(3));
    }

    #[test]
    fn boundaries() {
        assert_eq!(enc(7, 126), [126]);
        assert_eq!(enc(7, 127), [127, 0]);
        assert_eq!(enc(7, 128), [127, 1]);
        let max = u32::MAX as usize;
        let bytes = enc(4, max);
        let mut pos = 0;
        assert_eq!(decode(&bytes, &mut pos, 4), Ok(max));
    }

    #[test]
    fn overflow_and_truncation() {
        // One past u32::MAX with a 8-bit prefix: 255 + (2^32 - 255).
        let mut too_big = enc(8, 0);
        too_big.clear();
        too_big.push(0xff);
        let mut rest: u64 = (1u64 << 32) - 255;
        while rest >= 0x80 {
            too_big.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        too_big.push(rest as u8);
        let mut pos = 0;
        assert_eq!(
            decode(&too_big, &mut pos, 8),
            Err(DecodeError::IntegerOverflow)
        );
        // Endless continuation octets are cut off, not read forever.
        let padded = [0x1f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        let mut pos = 0;
        assert_eq!(
            decode(&padded, &mut pos, 5),
            Err(DecodeError::IntegerOverflow)
        );
        // Truncation in the prefix and in the continuation.
        let mut pos = 0;
        assert_eq!(decode(&[], &mut pos, 5), Err(DecodeError::Truncated));
        let mut pos = 0;
        assert_eq!(
            decode(&[0x1f, 0x80], &mut pos, 5),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn prop_round_trip() {
        fn prop(value: u32, prefix: u8) -> bool {
            let prefix_bits = u32::from(prefix % 8) + 1;
            let bytes = enc(prefix_bits, value as usize);
            let mut pos = 0;
            decode(&bytes, &mut pos, prefix_bits) == Ok(value as usize) && pos == bytes.len()
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(u32, u8) -> bool);
    }
}
