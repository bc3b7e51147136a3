//! Arbitrary bytes, in arbitrary chunks, into the control-frame decoder a
//! hub and an agent run on each other's control stream.
//!
//! Input: a frame-length limit, a chunking seed, then the stream. Checks
//! beyond "no panic":
//! - the same messages, then the same error, whatever the chunking;
//! - an error is final: later calls return it again and take nothing;
//! - never more than `HEADER_LEN` + the limit buffered;
//! - every decoded message re-encodes to exactly the frame it came from
//!   (one encoding per message: no frame a peer could vary without the
//!   receiver noticing), and `encode_split` of it decodes back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_fuzz::{chunks, Choices};
use warren_proto::control::{
    encode, encode_split, DecodeError, FrameDecoder, Message, DEFAULT_MAX_FRAME_LEN,
};

/// What decoding a stream produced.
#[derive(Debug, PartialEq)]
struct Decoded {
    messages: Vec<Message>,
    error: Option<DecodeError>,
}

fn decode(max_len: usize, pieces: &[&[u8]], frames: Option<&mut Vec<Vec<u8>>>) -> Decoded {
    let mut decoder = FrameDecoder::new(max_len);
    let mut out = Decoded {
        messages: Vec::new(),
        error: None,
    };
    let mut frames = frames;
    let mut frame = Vec::new();
    'pieces: for piece in pieces {
        let mut rest: &[u8] = piece;
        loop {
            let before = rest;
            let result = decoder.decode(&mut rest);
            frame.extend_from_slice(&before[..before.len() - rest.len()]);
            assert!(decoder.buffered() <= decoder.capacity_limit());
            match result {
                Ok(Some(message)) => {
                    if let Some(frames) = frames.as_deref_mut() {
                        frames.push(core::mem::take(&mut frame));
                    }
                    out.messages.push(message);
                }
                Ok(None) => {
                    assert!(rest.is_empty(), "Ok(None) with input left");
                    break;
                }
                Err(e) => {
                    let mut again: &[u8] = b"\x02\x00\x00\x00\x00";
                    assert_eq!(decoder.decode(&mut again).as_ref(), Err(&e));
                    assert_eq!(again.len(), 5, "a failed decoder took input");
                    assert_eq!(decoder.buffered(), 0);
                    out.error = Some(e);
                    break 'pieces;
                }
            }
        }
    }
    out
}

fuzz_target!(|bytes: &[u8]| {
    let mut choices = Choices::new(bytes);
    let max_len = match choices.u8() % 4 {
        0 => DEFAULT_MAX_FRAME_LEN,
        1 => choices.u8() as usize,
        _ => choices.u16() as usize,
    };
    let seed = choices.u32();
    let wire = choices.rest();

    let mut frames = Vec::new();
    let whole = decode(max_len, &[wire], Some(&mut frames));
    let chunked = decode(max_len, &chunks(wire, seed), None);
    assert_eq!(whole, chunked, "chunking changed what was decoded");
    let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(
        whole,
        decode(max_len, &bytewise, None),
        "byte-at-a-time reads"
    );

    for (message, frame) in whole.messages.iter().zip(&frames) {
        let mut again = Vec::new();
        encode(message, max_len, &mut again).expect("a decoded message fits its own limit");
        assert_eq!(&again, frame, "{message:?} re-encodes differently");

        let mut split = Vec::new();
        encode_split(message, max_len, &mut split).expect("fits");
        assert_eq!(split, again, "encode_split of a message that fits");
    }
});
