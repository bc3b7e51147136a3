//! Hand-written malformed header blocks, each with the error it must get,
//! and the decoder's size-update rules (RFC 7541 §4.2, §6.3).

use warren_proto::h2::hpack::{DecodeError, Decoder, DEFAULT_TABLE_SIZE};
use warren_proto::h2::Header;

fn decode(decoder: &mut Decoder, block: &[u8]) -> Result<Vec<Header>, DecodeError> {
    let mut out = Vec::new();
    decoder.decode(block, usize::MAX, &mut out).map(|()| out)
}

fn fresh(block: &[u8]) -> Result<Vec<Header>, DecodeError> {
    decode(&mut Decoder::new(DEFAULT_TABLE_SIZE), block)
}

fn pairs(headers: &[Header]) -> Vec<(&[u8], &[u8])> {
    headers
        .iter()
        .map(|h| (&h.name[..], &h.value[..]))
        .collect()
}

/// `:path` (static 4) without indexing, value Huffman-coded as `huffman`.
fn path_with_huffman(huffman: &[u8]) -> Vec<u8> {
    let mut block = vec![0x04, 0x80 | huffman.len() as u8];
    block.extend_from_slice(huffman);
    block
}

#[test]
fn huffman_padding_must_be_short_and_all_ones() {
    // '0' is 00000: padded with 111 it is valid.
    assert_eq!(
        pairs(&fresh(&path_with_huffman(&[0x07])).unwrap()),
        [(&b":path"[..], &b"0"[..])]
    );
    // Padded with zeros.
    assert_eq!(
        fresh(&path_with_huffman(&[0x00])),
        Err(DecodeError::InvalidHuffman)
    );
    // Padded with 3 + 8 ones: more than 7 bits.
    assert_eq!(
        fresh(&path_with_huffman(&[0x07, 0xff])),
        Err(DecodeError::InvalidHuffman)
    );
}

#[test]
fn huffman_eos_is_rejected() {
    // EOS is 30 ones; two more bits of padding.
    assert_eq!(
        fresh(&path_with_huffman(&[0xff, 0xff, 0xff, 0xff])),
        Err(DecodeError::InvalidHuffman)
    );
    // After a symbol: '0' then EOS.
    assert_eq!(
        fresh(&path_with_huffman(&[0x07, 0xff, 0xff, 0xff, 0xff])),
        Err(DecodeError::InvalidHuffman)
    );
}

#[test]
fn index_zero_is_invalid() {
    assert_eq!(fresh(&[0x80]), Err(DecodeError::InvalidIndex(0)));
}

#[test]
fn index_past_the_end_is_invalid() {
    // Empty dynamic table: 62 is past the end.
    assert_eq!(fresh(&[0xbe]), Err(DecodeError::InvalidIndex(62)));
    // As a name index too.
    assert_eq!(fresh(&[0x7e, 0x00]), Err(DecodeError::InvalidIndex(62)));
    assert_eq!(
        fresh(&[0x0f, 0x2f, 0x00]),
        Err(DecodeError::InvalidIndex(62))
    );
    // One entry: 62 is fine, 63 is not.
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    let insert = [0x40, 0x01, b'a', 0x01, b'b'];
    decode(&mut decoder, &insert).unwrap();
    assert_eq!(
        pairs(&decode(&mut decoder, &[0xbe]).unwrap()),
        [(&b"a"[..], &b"b"[..])]
    );
    assert_eq!(
        decode(&mut decoder, &[0xbf]),
        Err(DecodeError::InvalidIndex(63))
    );
}

#[test]
fn size_update_above_the_maximum_is_rejected() {
    // 4096 is allowed, 4097 is not.
    assert_eq!(fresh(&[0x3f, 0xe1, 0x1f]), Ok(vec![]));
    assert_eq!(
        fresh(&[0x3f, 0xe2, 0x1f]),
        Err(DecodeError::TableSizeTooLarge {
            requested: 4097,
            max: 4096
        })
    );
}

#[test]
fn size_update_after_a_field_is_misplaced() {
    assert_eq!(
        fresh(&[0x82, 0x20]),
        Err(DecodeError::TableSizeUpdateMisplaced)
    );
    // Two updates at the start are fine.
    assert_eq!(
        pairs(&fresh(&[0x20, 0x3f, 0xe1, 0x1f, 0x82]).unwrap()),
        [(&b":method"[..], &b"GET"[..])]
    );
}

#[test]
fn size_update_evicts() {
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decode(&mut decoder, &[0x40, 0x01, b'a', 0x01, b'b']).unwrap();
    assert_eq!(decoder.table_size(), 34);
    // Update to 33: the 34-octet entry goes.
    decode(&mut decoder, &[0x3f, 0x02]).unwrap();
    assert_eq!(decoder.table_size(), 0);
    assert_eq!(
        decode(&mut decoder, &[0xbe]),
        Err(DecodeError::InvalidIndex(62))
    );
}

#[test]
fn update_required_after_our_maximum_shrank() {
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decode(&mut decoder, &[0x40, 0x01, b'a', 0x01, b'b']).unwrap();
    decoder.set_max_table_size(100);
    // The table (34 octets) fits, but the peer must still acknowledge.
    assert_eq!(decoder.table_size(), 34);
    assert_eq!(
        decode(&mut decoder, &[0x82]),
        Err(DecodeError::TableSizeUpdateMisplaced)
    );
    // An empty block does not begin with the update either.
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decoder.set_max_table_size(100);
    assert_eq!(
        decode(&mut decoder, &[]),
        Err(DecodeError::TableSizeUpdateMisplaced)
    );
    // 101 is above the new maximum.
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decoder.set_max_table_size(100);
    assert_eq!(
        decode(&mut decoder, &[0x3f, 0x46, 0x82]),
        Err(DecodeError::TableSizeTooLarge {
            requested: 101,
            max: 100
        })
    );
    // 100 satisfies it, once; later blocks need none.
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decoder.set_max_table_size(100);
    assert_eq!(
        decode(&mut decoder, &[0x3f, 0x45, 0x82]).map(|h| h.len()),
        Ok(1)
    );
    assert_eq!(decode(&mut decoder, &[0x82]).map(|h| h.len()), Ok(1));
}

#[test]
fn update_to_the_minimum_required_when_max_went_down_then_up() {
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decoder.set_max_table_size(0);
    decoder.set_max_table_size(DEFAULT_TABLE_SIZE);
    // Only the final size: the dip to 0 was not signalled.
    assert_eq!(
        decode(&mut decoder, &[0x3f, 0xe1, 0x1f, 0x82]),
        Err(DecodeError::TableSizeUpdateMisplaced)
    );
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decoder.set_max_table_size(0);
    decoder.set_max_table_size(DEFAULT_TABLE_SIZE);
    decode(
        &mut decoder,
        &[0x20, 0x3f, 0xe1, 0x1f, 0x40, 0x01, b'a', 0x01, b'b'],
    )
    .unwrap();
    assert_eq!(decoder.table_size(), 34);
}

#[test]
fn growing_the_maximum_needs_no_update() {
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decoder.set_max_table_size(8192);
    assert_eq!(decode(&mut decoder, &[0x82]).map(|h| h.len()), Ok(1));
    // And the peer may now use it.
    assert_eq!(decode(&mut decoder, &[0x3f, 0xe1, 0x3f]), Ok(vec![]));
}

#[test]
fn integer_overflow_is_rejected() {
    // Index with endless continuation octets.
    assert_eq!(
        fresh(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
        Err(DecodeError::IntegerOverflow)
    );
    // A string length of 2^32 + 126 (u32::MAX is the limit).
    assert_eq!(
        fresh(&[0x04, 0x7f, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Err(DecodeError::IntegerOverflow)
    );
    // A size update that large.
    assert_eq!(
        fresh(&[0x3f, 0xff, 0xff, 0xff, 0xff, 0x7f]),
        Err(DecodeError::IntegerOverflow)
    );
}

#[test]
fn truncated_blocks_are_rejected() {
    for block in [
        &[0xff][..],               // index continuation missing
        &[0x41],                   // value missing
        &[0x40, 0x01, b'a'],       // new name, value missing
        &[0x40, 0x05, b'a'],       // name shorter than its length
        &[0x04, 0x03, b'/', b'a'], // value shorter than its length
        &[0x04, 0x7f],             // length continuation missing
        &[0x3f],                   // size update continuation missing
    ] {
        assert_eq!(fresh(block), Err(DecodeError::Truncated), "{block:02x?}");
    }
}

#[test]
fn strings_longer_than_the_limit_are_rejected() {
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decoder.set_max_string_len(3);
    assert_eq!(
        decode(&mut decoder, &[0x04, 0x03, b'a', b'b', b'c']).map(|h| h.len()),
        Ok(1)
    );
    assert_eq!(
        decode(&mut decoder, &[0x04, 0x04, b'a', b'b', b'c', b'd']),
        Err(DecodeError::StringTooLong)
    );
    // A literal name, in the indexed representation.
    assert_eq!(
        decode(&mut decoder, &[0x40, 0x04, b'a', b'b', b'c', b'd', 0x00]),
        Err(DecodeError::StringTooLong)
    );
    // Huffman: "0000" is 20 bits (3 octets) and decodes to 4 > 3 octets.
    assert_eq!(
        decode(&mut decoder, &[0x04, 0x83, 0x00, 0x00, 0x0f]),
        Err(DecodeError::StringTooLong)
    );
    // "000" fits.
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    decoder.set_max_string_len(3);
    assert_eq!(
        pairs(&decode(&mut decoder, &[0x04, 0x82, 0x00, 0x01]).unwrap()),
        [(&b":path"[..], &b"000"[..])]
    );
}

#[test]
fn default_string_limit_is_64_kib() {
    let value = vec![b'v'; 64 * 1024 + 1];
    let mut block = vec![0x04, 0x7f];
    let mut rest = value.len() - 127;
    while rest >= 0x80 {
        block.push(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    block.push(rest as u8);
    block.extend_from_slice(&value);
    assert_eq!(fresh(&block), Err(DecodeError::StringTooLong));
    block.pop();
    // One octet short of its length now.
    assert_eq!(fresh(&block), Err(DecodeError::Truncated));
}

#[test]
fn list_too_large_still_decodes_the_whole_block() {
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    // Three literals with incremental indexing: "a: 1", "b: 2", "c: 3"
    // (34 octets each), then one without indexing.
    let block = [
        0x40, 0x01, b'a', 0x01, b'1', //
        0x40, 0x01, b'b', 0x01, b'2', //
        0x40, 0x01, b'c', 0x01, b'3', //
        0x00, 0x01, b'd', 0x01, b'4',
    ];
    let mut out = Vec::new();
    let err = decoder.decode(&block, 70, &mut out).unwrap_err();
    assert_eq!(err, DecodeError::HeaderListTooLarge { size: 136, max: 70 });
    assert!(!err.is_connection_error());
    // Only what fit was stored.
    assert_eq!(
        pairs(&out),
        [(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])]
    );
    // Every insertion happened: a following block can use all three.
    assert_eq!(decoder.table_size(), 102);
    let next = decode(&mut decoder, &[0xbe, 0xbf, 0xc0]).unwrap();
    assert_eq!(
        pairs(&next),
        [
            (&b"c"[..], &b"3"[..]),
            (&b"b"[..], &b"2"[..]),
            (&b"a"[..], &b"1"[..])
        ]
    );
}

#[test]
fn list_too_large_still_finds_errors_after_the_limit() {
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    // Over the limit at the first field, then a field with bad Huffman.
    let mut block = vec![0x82];
    block.extend_from_slice(&path_with_huffman(&[0x00]));
    let mut out = Vec::new();
    assert_eq!(
        decoder.decode(&block, 10, &mut out),
        Err(DecodeError::InvalidHuffman)
    );
    assert!(out.is_empty());
}

#[test]
fn never_indexed_fields_are_marked_sensitive() {
    // RFC 7541 C.2.3.
    let block = b"\x10\x08password\x06secret";
    let headers = fresh(block).unwrap();
    assert_eq!(pairs(&headers), [(&b"password"[..], &b"secret"[..])]);
    assert!(headers[0].sensitive);
    // Without indexing is not sensitive; neither is stored.
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    let headers = decode(&mut decoder, b"\x00\x08password\x06secret").unwrap();
    assert!(!headers[0].sensitive);
    assert_eq!(decoder.table_size(), 0);
}

#[test]
fn only_list_too_large_keeps_the_connection() {
    for err in [
        DecodeError::Truncated,
        DecodeError::IntegerOverflow,
        DecodeError::StringTooLong,
        DecodeError::InvalidIndex(0),
        DecodeError::InvalidHuffman,
        DecodeError::TableSizeTooLarge {
            requested: 1,
            max: 0,
        },
        DecodeError::TableSizeUpdateMisplaced,
    ] {
        assert!(err.is_connection_error(), "{err:?}");
    }
}
