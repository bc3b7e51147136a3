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

/// Splits `wire` into chunks whose lengths come from a xorshift stream
/// seeded by `seed`: mostly 1 to 24 bytes, sometimes single bytes,
/// sometimes up to 4 KiB, so reads that end anywhere in a message are
/// tried.
pub fn chunks(wire: &[u8], seed: u32) -> Vec<&[u8]> {
    let mut seed = seed | 1;
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let len = match seed % 8 {
            0 => 1,
            1..=5 => (seed >> 8) as usize % 24 + 1,
            _ => (seed >> 8) as usize % 4096 + 1,
        };
        let (chunk, tail) = rest.split_at(len.min(rest.len()));
        out.push(chunk);
        rest = tail;
    }
    out
}

/// A front end the fuzz targets drive: [`Socks5`] or [`HttpConnect`].
///
/// [`Socks5`]: warren_proto::front::Socks5
/// [`HttpConnect`]: warren_proto::front::HttpConnect
pub trait Front {
    /// Its protocol error.
    type Error: Clone + core::fmt::Debug + PartialEq;
    /// `feed` of the front end.
    fn feed<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<warren_proto::front::Step<'a, Self::Error>, warren_proto::front::UsageError>;
    /// `buffered` of the front end.
    fn buffered(&self) -> usize;
    /// `reply` of the front end.
    fn reply(
        &mut self,
        outcome: &warren_proto::front::Outcome,
    ) -> Result<Vec<u8>, warren_proto::front::UsageError>;
}

impl Front for warren_proto::front::Socks5 {
    type Error = warren_proto::front::Socks5Error;
    fn feed<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<warren_proto::front::Step<'a, Self::Error>, warren_proto::front::UsageError> {
        warren_proto::front::Socks5::feed(self, input)
    }
    fn buffered(&self) -> usize {
        warren_proto::front::Socks5::buffered(self)
    }
    fn reply(
        &mut self,
        outcome: &warren_proto::front::Outcome,
    ) -> Result<Vec<u8>, warren_proto::front::UsageError> {
        warren_proto::front::Socks5::reply(self, outcome)
    }
}

impl Front for warren_proto::front::HttpConnect {
    type Error = warren_proto::front::HttpConnectError;
    fn feed<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<warren_proto::front::Step<'a, Self::Error>, warren_proto::front::UsageError> {
        warren_proto::front::HttpConnect::feed(self, input)
    }
    fn buffered(&self) -> usize {
        warren_proto::front::HttpConnect::buffered(self)
    }
    fn reply(
        &mut self,
        outcome: &warren_proto::front::Outcome,
    ) -> Result<Vec<u8>, warren_proto::front::UsageError> {
        warren_proto::front::HttpConnect::reply(self, outcome)
    }
}

/// Where a front end's request ended after all chunks were fed.
#[derive(Clone, Debug, PartialEq)]
pub enum FrontEnd<E> {
    /// Still reading.
    NeedMore,
    /// Complete.
    Ready(warren_proto::front::Target),
    /// Rejected with this error.
    Rejected(E),
}

/// What feeding a front end some chunks produced, comparable across
/// chunkings.
#[derive(Clone, Debug, PartialEq)]
pub struct FrontRun<E> {
    /// Everything the front end asked to send, in order.
    pub sent: Vec<u8>,
    /// Where the request ended.
    pub end: FrontEnd<E>,
    /// After a complete request: the leftover of the last feed followed
    /// by the chunks never fed, bytes that belong to the tunnel. Empty
    /// otherwise (after a rejection nothing more is read).
    pub after: Vec<u8>,
}

/// Feeds `chunks` to `front` until it stops reading, checking that a
/// finished front end refuses further feeds. Also returns the most the
/// front end buffered between feeds.
pub fn run_front<F: Front>(front: &mut F, chunks: &[&[u8]]) -> (FrontRun<F::Error>, usize) {
    use warren_proto::front::{Progress, UsageError};
    let mut run = FrontRun {
        sent: Vec::new(),
        end: FrontEnd::NeedMore,
        after: Vec::new(),
    };
    let mut max_buffered = 0;
    let mut fed = 0;
    for chunk in chunks {
        fed += 1;
        let step = front.feed(chunk).expect("feed while reading");
        run.sent.extend_from_slice(&step.send);
        max_buffered = max_buffered.max(front.buffered());
        match step.progress {
            Progress::NeedMore => continue,
            Progress::Ready { target, leftover } => {
                run.after.extend_from_slice(leftover);
                run.end = FrontEnd::Ready(target);
                assert_eq!(
                    front.feed(b"x").err(),
                    Some(UsageError::RequestAlreadyParsed)
                );
            }
            Progress::Rejected(e) => {
                run.end = FrontEnd::Rejected(e);
                assert_eq!(front.feed(b"x").err(), Some(UsageError::AlreadyRejected));
                assert_eq!(
                    front
                        .reply(&warren_proto::front::Outcome::Connected { bound: None })
                        .err(),
                    Some(UsageError::AlreadyRejected)
                );
            }
        }
        break;
    }
    if run.end == FrontEnd::NeedMore {
        assert_eq!(
            front
                .reply(&warren_proto::front::Outcome::Connected { bound: None })
                .err(),
            Some(UsageError::NoRequest)
        );
    }
    if let FrontEnd::Ready(_) = run.end {
        for chunk in &chunks[fed..] {
            run.after.extend_from_slice(chunk);
        }
    }
    (run, max_buffered)
}

/// An outcome chosen by one byte, with a bound address from `addr`.
pub fn outcome(choice: u8, addr: [u8; 18]) -> warren_proto::front::Outcome {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use warren_proto::front::{Outcome, Refusal};
    let port = u16::from_be_bytes([addr[16], addr[17]]);
    let v6: [u8; 16] = addr[..16].try_into().expect("16 bytes");
    match choice % 8 {
        0 => Outcome::Connected { bound: None },
        1 => Outcome::Connected {
            bound: Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
                port,
            )),
        },
        2 => Outcome::Connected {
            bound: Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(v6)), port)),
        },
        3 => Outcome::Refused(Refusal::Denied {
            rule: String::from_utf8_lossy(&addr[..(addr[0] % 17) as usize]).into_owned(),
        }),
        4 => Outcome::Refused(Refusal::Unreachable),
        5 => Outcome::Refused(Refusal::Refused),
        6 => Outcome::Refused(Refusal::Timeout),
        _ => Outcome::Refused(Refusal::GeneralFailure),
    }
}
