//! Header blocks into an HPACK `Decoder`, with table size changes and
//! limits driven by the input.
//!
//! Input: a series of operations (change the allowed table size, change the
//! string limit, decode a block of the next N bytes under a list limit).
//! Checks beyond "no panic": a decoded list respects its limit, the table
//! respects the allowed size, and re-encoding each decoded list with an
//! `Encoder` decodes, on a second decoder, to the same list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_fuzz::Choices;
use warren_proto::h2::hpack::{DecodeError, Decoder, Encoder, DEFAULT_TABLE_SIZE};
use warren_proto::h2::Header;

fuzz_target!(|bytes: &[u8]| {
    let mut choices = Choices::new(bytes);
    let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
    let mut allowed = DEFAULT_TABLE_SIZE;
    // The round trip: our encoder talks to a decoder of its own.
    let mut encoder = Encoder::new();
    let mut mirror = Decoder::new(DEFAULT_TABLE_SIZE);
    let mut list = Vec::new();
    let mut again = Vec::new();
    let mut block = Vec::new();
    while !choices.is_empty() {
        match choices.u8() % 8 {
            0 => {
                allowed = usize::from(choices.u16());
                decoder.set_max_table_size(allowed);
            }
            1 => decoder.set_max_string_len(usize::from(choices.u16())),
            _ => {
                let len = usize::from(choices.u16() % 2048);
                let max_list_size = match choices.u8() % 4 {
                    0 => 64,
                    1 => 4096,
                    _ => 1 << 20,
                };
                let wire = choices.bytes(len);
                list.clear();
                match decoder.decode(wire, max_list_size, &mut list) {
                    Ok(()) => {
                        let size: usize = list.iter().map(Header::hpack_size).sum();
                        assert!(
                            size <= max_list_size,
                            "list of {size} above its limit {max_list_size}"
                        );
                        round_trip(&mut encoder, &mut mirror, &list, &mut block, &mut again);
                    }
                    Err(DecodeError::HeaderListTooLarge { size, max }) => {
                        assert_eq!(max, max_list_size);
                        assert!(size > max, "too large at {size} under {max}");
                    }
                    // The context is broken: a connection would end here.
                    Err(_) => return,
                }
                assert!(
                    decoder.table_size() <= allowed,
                    "table at {} above the allowed {allowed}",
                    decoder.table_size()
                );
            }
        }
    }
});

fn round_trip(
    encoder: &mut Encoder,
    mirror: &mut Decoder,
    list: &[Header],
    block: &mut Vec<u8>,
    again: &mut Vec<Header>,
) {
    block.clear();
    encoder.encode(list, block);
    again.clear();
    if let Err(e) = mirror.decode(block, usize::MAX, again) {
        panic!("our own block does not decode: {e:?}");
    }
    assert_eq!(
        list.len(),
        again.len(),
        "round trip changed the field count"
    );
    for (want, got) in list.iter().zip(again.iter()) {
        assert_eq!((&want.name, &want.value), (&got.name, &got.value));
        // A never-indexed field must stay never-indexed (RFC 7541 §7.1.3).
        assert!(!want.sensitive || got.sensitive, "sensitive flag lost");
    }
    assert!(mirror.table_size() <= DEFAULT_TABLE_SIZE);
}
