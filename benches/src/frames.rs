//! A buffer of mixed frames for the frame decoder benchmark.

use warren_proto::h2::frame::{encode, setting, Frame, FrameDecoder, Setting};
use warren_proto::h2::{ErrorCode, StreamId};

/// The decoder's limit: warren's default SETTINGS_MAX_FRAME_SIZE.
pub const MAX_FRAME_SIZE: u32 = 1 << 20;

/// How many frames one round of [`mixed`] holds.
pub const FRAMES_PER_ROUND: usize = 10;

/// `rounds` repetitions of ten frames on a new stream each: HEADERS,
/// DATA of 100 B and 1000 B, WINDOW_UPDATE on the stream and on the
/// connection, PING, SETTINGS and its ACK, DATA of 16 KiB with END_STREAM,
/// and RST_STREAM: the mix of a busy HBONE connection.
pub fn mixed(rounds: usize) -> Vec<u8> {
    let block = [0x82u8; 60];
    let data = vec![0xabu8; 16 << 10];
    let settings = [
        Setting {
            id: setting::MAX_CONCURRENT_STREAMS,
            value: 1000,
        },
        Setting {
            id: setting::INITIAL_WINDOW_SIZE,
            value: 4 << 20,
        },
        Setting {
            id: setting::MAX_FRAME_SIZE,
            value: 1 << 20,
        },
    ];
    let mut out = Vec::new();
    for round in 0..rounds {
        let stream = StreamId::new(2 * round as u32 + 1);
        encode::headers(&mut out, stream, &block, false, MAX_FRAME_SIZE);
        for len in [100usize, 1000] {
            encode::data_header(&mut out, stream, len as u32, false);
            out.extend_from_slice(&data[..len]);
        }
        encode::window_update(&mut out, stream, 1000);
        encode::window_update(&mut out, StreamId::CONNECTION, 1100);
        encode::ping(&mut out, false, [round as u8; 8]);
        encode::settings(&mut out, false, &settings);
        encode::settings(&mut out, true, &[]);
        encode::data_header(&mut out, stream, data.len() as u32, true);
        out.extend_from_slice(&data);
        encode::rst_stream(&mut out, stream, ErrorCode::CANCEL);
    }
    out
}

/// Decodes every frame of `input` with `decoder` and returns the number of
/// whole frames seen (a DATA frame counts once, at its last piece).
pub fn count(decoder: &mut FrameDecoder, input: &[u8]) -> usize {
    let mut rest = input;
    let mut frames = 0;
    loop {
        match decoder.decode(&mut rest) {
            Ok(Some(frame)) => {
                let whole = !matches!(frame, Frame::Data { last: false, .. });
                frames += usize::from(whole);
            }
            Ok(None) => return frames,
            Err(e) => panic!("frame decoder rejected a valid frame: {e:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_buffer_decodes_to_its_frame_count_in_any_chunking() {
        let input = mixed(7);
        let mut decoder = FrameDecoder::new(MAX_FRAME_SIZE);
        assert_eq!(count(&mut decoder, &input), 7 * FRAMES_PER_ROUND);
        let mut decoder = FrameDecoder::new(MAX_FRAME_SIZE);
        let pieces: usize = input.chunks(1000).map(|c| count(&mut decoder, c)).sum();
        assert_eq!(pieces, 7 * FRAMES_PER_ROUND);
    }
}
