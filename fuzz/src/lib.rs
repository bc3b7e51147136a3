//! Helpers shared by warren's fuzz targets: reading fuzzer bytes as
//! decisions, and an owned, comparable view of decoded frames.

use warren_proto::h2::frame::{Frame, FrameDecoder, FrameError};

/// Fuzzer input read front to back as a series of decisions. Reading past
/// the end yields zeros, so every input is a complete program.
#[derive(Debug)]
pub struct Choices<'a> {
    bytes: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Reads decisions from `bytes`.
    pub fn new(bytes: &'a [u8]) -> Choices<'a> {
        Choices { bytes }
    }

    /// True when every byte has been used.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// One byte.
    pub fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    /// Two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Four bytes, big-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` raw bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        taken
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.bytes.len())
    }
}

/// What a frame decoder produced, with DATA pieces joined into whole
/// frames, so that different chunkings of one input can be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole DATA frame (or the pieces of an unfinished one).
    Data {
        /// Its stream.
        stream: u32,
        /// The payload, padding removed.
        data: Vec<u8>,
        /// Flow-controlled length summed over the pieces.
        flow_len: u64,
        /// END_STREAM.
        end_stream: bool,
        /// True once the last piece was seen.
        complete: bool,
    },
    /// A piece of a header block: HEADERS (`first`) or CONTINUATION.
    Block {
        /// Its stream.
        stream: u32,
        /// The fragment, padding removed.
        fragment: Vec<u8>,
        /// True for HEADERS, false for CONTINUATION.
        first: bool,
        /// END_HEADERS.
        end_headers: bool,
        /// The whole frame's debug form (flags, priority).
        text: String,
    },
    /// Any other frame, by its debug form.
    Other(String),
    /// An error the decoder reported.
    Error(FrameError),
}

/// Feeds `chunks` in order to `decoder` and records what comes out,
/// checking the decoder's own promises on the way: DATA pieces arrive
/// first-to-last, never carry more data than flow-controlled bytes, and the
/// partial-frame buffer stays within `max_frame_size` plus a header.
pub fn decode_chunks<'c>(
    decoder: &mut FrameDecoder,
    max_frame_size: u32,
    chunks: impl IntoIterator<Item = &'c [u8]>,
) -> Vec<Decoded> {
    let mut out = Vec::new();
    'chunks: for chunk in chunks {
        let mut rest = chunk;
        loop {
            match decoder.decode(&mut rest) {
                Ok(Some(frame)) => record(&mut out, &frame),
                Ok(None) => {
                    assert!(rest.is_empty(), "Ok(None) left input unconsumed");
                    break;
                }
                Err(e) => {
                    let fatal = e.is_connection_error();
                    out.push(Decoded::Error(e));
                    if fatal {
                        break 'chunks;
                    }
                }
            }
            assert!(
                decoder.buffered() <= max_frame_size as usize + 9,
                "decoder buffers {} bytes, above the frame limit",
                decoder.buffered()
            );
        }
    }
    out
}

fn record(out: &mut Vec<Decoded>, frame: &Frame<'_>) {
    match *frame {
        Frame::Data {
            stream_id,
            data,
            flow_len,
            first,
            last,
            end_stream,
        } => {
            assert!(
                data.len() as u64 <= flow_len as u64,
                "DATA piece longer than its flow length"
            );
            assert!(!end_stream || last, "END_STREAM before the last piece");
            if !first {
                match out.last_mut() {
                    Some(Decoded::Data {
                        stream,
                        data: joined,
                        flow_len: flow,
                        end_stream: end,
                        complete,
                    }) if *stream == stream_id.get() && !*complete => {
                        joined.extend_from_slice(data);
                        *flow += u64::from(flow_len);
                        *end = end_stream;
                        *complete = last;
                        return;
                    }
                    other => panic!("DATA continuation piece after {other:?}"),
                }
            }
            out.push(Decoded::Data {
                stream: stream_id.get(),
                data: data.to_vec(),
                flow_len: u64::from(flow_len),
                end_stream,
                complete: last,
            });
        }
        Frame::Headers {
            stream_id,
            end_headers,
            fragment,
            ..
        }
        | Frame::Continuation {
            stream_id,
            end_headers,
            fragment,
        } => out.push(Decoded::Block {
            stream: stream_id.get(),
            fragment: fragment.to_vec(),
            first: matches!(frame, Frame::Headers { .. }),
            end_headers,
            text: format!("{frame:?}"),
        }),
        ref other => out.push(Decoded::Other(format!("{other:?}"))),
    }
}
