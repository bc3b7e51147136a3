//! Arbitrary bytes in arbitrary chunks into `FrameDecoder`.
//!
//! Input: a max-frame-size choice, a chunking seed, then the wire bytes.
//! Checks beyond "no panic": the frames (DATA pieces joined) and errors are
//! the same whatever the chunking, and every non-DATA frame re-encodes to
//! bytes that parse back to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_fuzz::{chunks, decode_chunks, Choices, Decoded};
use warren_proto::h2::frame::{self, encode, FrameDecoder, FrameHeader, HEADER_LEN};

fuzz_target!(|bytes: &[u8]| {
    let mut choices = Choices::new(bytes);
    let max_frame_size = match choices.u8() % 4 {
        0 => frame::DEFAULT_MAX_FRAME_SIZE,
        1 => 64,
        2 => 1 << 20,
        _ => frame::MAX_MAX_FRAME_SIZE,
    };
    let seed = choices.u32();
    let wire = choices.rest();

    let whole = settled(decode_chunks(
        &mut FrameDecoder::new(max_frame_size),
        max_frame_size,
        [wire],
    ));

    // Chunk lengths from a xorshift stream: mostly small, sometimes large.
    let chunks = chunks(wire, seed);
    let pieces = settled(decode_chunks(
        &mut FrameDecoder::new(max_frame_size),
        max_frame_size,
        chunks,
    ));
    assert_eq!(whole, pieces, "chunking changed what was decoded");

    // Re-encoding: parse every complete non-DATA frame again from its own
    // encoding (checked on the whole-input pass's frames).
    let mut rest = wire;
    while rest.len() >= HEADER_LEN {
        let header = FrameHeader::parse(rest[..HEADER_LEN].try_into().expect("9 bytes"));
        let Some(end) = HEADER_LEN.checked_add(header.length as usize) else {
            break;
        };
        if end > rest.len() || header.length > max_frame_size {
            break;
        }
        let payload = &rest[HEADER_LEN..end];
        if let Ok(parsed) = frame::parse(header, payload) {
            if !matches!(parsed, frame::Frame::Data { .. }) {
                let mut again = Vec::new();
                encode::frame(&mut again, &parsed, None);
                let header2 = FrameHeader::parse(again[..HEADER_LEN].try_into().expect("9 bytes"));
                let reparsed = frame::parse(header2, &again[HEADER_LEN..]);
                assert_eq!(reparsed, Ok(parsed), "re-encoding changed the frame");
            }
        }
        rest = &rest[end..];
    }
});

/// Drops what may legitimately depend on where the input stopped: a DATA
/// frame cut off by the end of the input has delivered the same payload
/// bytes whatever the chunking, but may have reported its padding's flow
/// control sooner or later (the sum is only fixed once the frame is whole).
fn settled(mut decoded: Vec<Decoded>) -> Vec<Decoded> {
    if let Some(Decoded::Data {
        data,
        flow_len,
        complete: false,
        ..
    }) = decoded.last_mut()
    {
        if data.is_empty() {
            decoded.pop();
        } else {
            *flow_len = 0;
        }
    }
    decoded
}
