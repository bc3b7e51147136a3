//! Huffman encoding with a 64-bit bit accumulator.

use super::code::CODES;

/// Length in octets of `src` once Huffman-coded, padding included.
pub(crate) fn encoded_len(src: &[u8]) -> usize {
    let bits: usize = src
        .iter()
        .map(|&b| usize::from(CODES[usize::from(b)].1))
        .sum();
    bits.div_ceil(8)
}

/// Appends the Huffman coding of `src` to `dst`, padded with the most
/// significant bits of EOS (all ones) to an octet boundary. Callers know
/// the length from [`encoded_len`] and reserve it.
pub(crate) fn encode(src: &[u8], dst: &mut Vec<u8>) {
    // `acc` holds `bits` pending bits in its low end. Codes are at most 30
    // bits and we flush whenever 32 are pending, so `bits` stays below 62.
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &byte in src {
        let (code, len) = CODES[usize::from(byte)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        if bits >= 32 {
            bits -= 32;
            // Truncation keeps exactly the 32 oldest pending bits.
            dst.extend_from_slice(&((acc >> bits) as u32).to_be_bytes());
        }
    }
    while bits >= 8 {
        bits -= 8;
        dst.push((acc >> bits) as u8);
    }
    if bits > 0 {
        let pad = 8 - bits;
        dst.push(((acc << pad) | ((1 << pad) - 1)) as u8);
    }
}
