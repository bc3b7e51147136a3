//! Properties of the HTTP/2 frame codec, through its public API only:
//! 1. encode → parse is the identity for every valid frame, padded or not;
//! 2. the decoder finds the same frames however the byte stream is chunked;
//! 3. on arbitrary bytes the decoder never panics and never buffers more
//!    than one frame.

use quickcheck::{quickcheck, Arbitrary, Gen, QuickCheck, TestResult};
use warren_proto::h2::frame::{
    encode, kind, parse, setting, Frame, FrameDecoder, FrameError, FrameHeader, Priority, Setting,
    DEFAULT_MAX_FRAME_SIZE, HEADER_LEN, MAX_MAX_FRAME_SIZE, MAX_WINDOW,
};
use warren_proto::h2::{ErrorCode, StreamId};

/// A frame that owns its bytes, so tests can hold many and compare them.
/// DATA is a whole frame: its pieces are concatenated.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owned {
    Data {
        stream: StreamId,
        data: Vec<u8>,
        flow_len: u32,
        end_stream: bool,
    },
    Headers {
        stream: StreamId,
        end_stream: bool,
        end_headers: bool,
        priority: Option<Priority>,
        fragment: Vec<u8>,
    },
    Priority {
        stream: StreamId,
        priority: Priority,
    },
    RstStream {
        stream: StreamId,
        code: ErrorCode,
    },
    Settings {
        ack: bool,
        settings: Vec<Setting>,
    },
    PushPromise {
        stream: StreamId,
        end_headers: bool,
        promised: StreamId,
        fragment: Vec<u8>,
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    GoAway {
        last: StreamId,
        code: ErrorCode,
        debug: Vec<u8>,
    },
    WindowUpdate {
        stream: StreamId,
        increment: u32,
    },
    Continuation {
        stream: StreamId,
        end_headers: bool,
        fragment: Vec<u8>,
    },
    Unknown {
        kind: u8,
        flags: u8,
        stream: StreamId,
        payload: Vec<u8>,
    },
}

/// Any stream id, 0 included.
fn any_id(g: &mut Gen) -> StreamId {
    let special = [0, 1, 2, MAX_WINDOW, MAX_WINDOW - 1];
    if bool::arbitrary(g) {
        StreamId::new(*g.choose(&special).unwrap_or(&1))
    } else {
        StreamId::new(u32::arbitrary(g))
    }
}

/// A stream id other than 0.
fn stream_id(g: &mut Gen) -> StreamId {
    let id = any_id(g);
    if id.is_connection() {
        StreamId::new(1)
    } else {
        id
    }
}

/// Priority fields that do not make `stream` depend on itself.
fn priority(g: &mut Gen, stream: StreamId) -> Priority {
    let mut dependency = any_id(g);
    if dependency == stream {
        dependency = StreamId::new(stream.get() ^ 1);
    }
    Priority {
        dependency,
        exclusive: bool::arbitrary(g),
        weight: u8::arbitrary(g),
    }
}

/// A setting with a value RFC 9113 §6.5.2 and RFC 8441 accept.
fn valid_setting(g: &mut Gen) -> Setting {
    let ids = [
        setting::HEADER_TABLE_SIZE,
        setting::ENABLE_PUSH,
        setting::MAX_CONCURRENT_STREAMS,
        setting::INITIAL_WINDOW_SIZE,
        setting::MAX_FRAME_SIZE,
        setting::MAX_HEADER_LIST_SIZE,
        setting::ENABLE_CONNECT_PROTOCOL,
    ];
    let id = if bool::arbitrary(g) {
        *g.choose(&ids).unwrap_or(&1)
    } else {
        u16::arbitrary(g)
    };
    let raw = u32::arbitrary(g);
    let value = match id {
        setting::ENABLE_PUSH | setting::ENABLE_CONNECT_PROTOCOL => raw % 2,
        setting::INITIAL_WINDOW_SIZE => raw & MAX_WINDOW,
        setting::MAX_FRAME_SIZE => {
            DEFAULT_MAX_FRAME_SIZE + raw % (MAX_MAX_FRAME_SIZE - DEFAULT_MAX_FRAME_SIZE + 1)
        }
        _ => raw,
    };
    Setting { id, value }
}

fn bytes(g: &mut Gen) -> Vec<u8> {
    Vec::<u8>::arbitrary(g)
}

impl Arbitrary for Owned {
    fn arbitrary(g: &mut Gen) -> Owned {
        match u8::arbitrary(g) % 11 {
            0 => {
                let data = bytes(g);
                Owned::Data {
                    stream: stream_id(g),
                    flow_len: data.len() as u32,
                    data,
                    end_stream: bool::arbitrary(g),
                }
            }
            1 => {
                let stream = stream_id(g);
                let priority = if bool::arbitrary(g) {
                    Some(priority(g, stream))
                } else {
                    None
                };
                Owned::Headers {
                    stream,
                    end_stream: bool::arbitrary(g),
                    end_headers: bool::arbitrary(g),
                    priority,
                    fragment: bytes(g),
                }
            }
            2 => {
                let stream = stream_id(g);
                Owned::Priority {
                    stream,
                    priority: priority(g, stream),
                }
            }
            3 => Owned::RstStream {
                stream: stream_id(g),
                code: ErrorCode(u32::arbitrary(g)),
            },
            4 => {
                let ack = bool::arbitrary(g);
                let count = if ack { 0 } else { usize::arbitrary(g) % 8 };
                Owned::Settings {
                    ack,
                    settings: (0..count).map(|_| valid_setting(g)).collect(),
                }
            }
            5 => Owned::PushPromise {
                stream: stream_id(g),
                end_headers: bool::arbitrary(g),
                promised: any_id(g),
                fragment: bytes(g),
            },
            6 => Owned::Ping {
                ack: bool::arbitrary(g),
                payload: <[u8; 8]>::arbitrary(g),
            },
            7 => Owned::GoAway {
                last: any_id(g),
                code: ErrorCode(u32::arbitrary(g)),
                debug: bytes(g),
            },
            8 => Owned::WindowUpdate {
                stream: any_id(g),
                increment: (u32::arbitrary(g) & MAX_WINDOW).max(1),
            },
            9 => Owned::Continuation {
                stream: stream_id(g),
                end_headers: bool::arbitrary(g),
                fragment: bytes(g),
            },
            _ => Owned::Unknown {
                kind: u8::arbitrary(g).max(kind::CONTINUATION + 1),
                flags: u8::arbitrary(g),
                stream: any_id(g),
                payload: bytes(g),
            },
        }
    }
}

impl Owned {
    /// Takes a parsed frame (a DATA frame as one piece) into an owned one.
    fn from_frame(frame: &Frame<'_>) -> Owned {
        match *frame {
            Frame::Data {
                stream_id,
                data,
                flow_len,
                end_stream,
                ..
            } => Owned::Data {
                stream: stream_id,
                data: data.to_vec(),
                flow_len,
                end_stream,
            },
            Frame::Headers {
                stream_id,
                end_stream,
                end_headers,
                priority,
                fragment,
            } => Owned::Headers {
                stream: stream_id,
                end_stream,
                end_headers,
                priority,
                fragment: fragment.to_vec(),
            },
            Frame::Priority {
                stream_id,
                priority,
            } => Owned::Priority {
                stream: stream_id,
                priority,
            },
            Frame::RstStream {
                stream_id,
                error_code,
            } => Owned::RstStream {
                stream: stream_id,
                code: error_code,
            },
            Frame::Settings { ack, settings } => Owned::Settings {
                ack,
                settings: settings.iter().collect(),
            },
            Frame::PushPromise {
                stream_id,
                end_headers,
                promised_id,
                fragment,
            } => Owned::PushPromise {
                stream: stream_id,
                end_headers,
                promised: promised_id,
                fragment: fragment.to_vec(),
            },
            Frame::Ping { ack, payload } => Owned::Ping { ack, payload },
            Frame::GoAway {
                last_stream_id,
                error_code,
                debug_data,
            } => Owned::GoAway {
                last: last_stream_id,
                code: error_code,
                debug: debug_data.to_vec(),
            },
            Frame::WindowUpdate {
                stream_id,
                increment,
            } => Owned::WindowUpdate {
                stream: stream_id,
                increment,
            },
            Frame::Continuation {
                stream_id,
                end_headers,
                fragment,
            } => Owned::Continuation {
                stream: stream_id,
                end_headers,
                fragment: fragment.to_vec(),
            },
            Frame::Unknown { header, payload } => Owned::Unknown {
                kind: header.kind,
                flags: header.flags,
                stream: header.stream_id,
                payload: payload.to_vec(),
            },
        }
    }

    /// Appends the frame's wire form with `padding` (where the type has
    /// padding), and returns what parsing it must give back: the frame
    /// itself, with DATA's flow_len counting the padding.
    fn encode(&self, out: &mut Vec<u8>, padding: Option<u8>) -> Owned {
        let mut expected = self.clone();
        match self {
            Owned::Settings { ack, settings } => encode::settings(out, *ack, settings),
            Owned::Data {
                stream,
                data,
                end_stream,
                ..
            } => {
                let f = Frame::Data {
                    stream_id: *stream,
                    data,
                    flow_len: 0,
                    first: true,
                    last: true,
                    end_stream: *end_stream,
                };
                encode::frame(out, &f, padding);
                let pad = padding.map_or(0, |p| 1 + u32::from(p));
                expected = Owned::Data {
                    stream: *stream,
                    data: data.clone(),
                    flow_len: data.len() as u32 + pad,
                    end_stream: *end_stream,
                };
            }
            other => encode::frame(out, &other.as_frame(), padding),
        }
        expected
    }

    /// The borrowed form, for every type but SETTINGS (whose list has no
    /// public constructor: it only comes out of `parse`) and DATA.
    fn as_frame(&self) -> Frame<'_> {
        match self {
            Owned::Headers {
                stream,
                end_stream,
                end_headers,
                priority,
                fragment,
            } => Frame::Headers {
                stream_id: *stream,
                end_stream: *end_stream,
                end_headers: *end_headers,
                priority: *priority,
                fragment,
            },
            Owned::Priority { stream, priority } => Frame::Priority {
                stream_id: *stream,
                priority: *priority,
            },
            Owned::RstStream { stream, code } => Frame::RstStream {
                stream_id: *stream,
                error_code: *code,
            },
            Owned::PushPromise {
                stream,
                end_headers,
                promised,
                fragment,
            } => Frame::PushPromise {
                stream_id: *stream,
                end_headers: *end_headers,
                promised_id: *promised,
                fragment,
            },
            Owned::Ping { ack, payload } => Frame::Ping {
                ack: *ack,
                payload: *payload,
            },
            Owned::GoAway { last, code, debug } => Frame::GoAway {
                last_stream_id: *last,
                error_code: *code,
                debug_data: debug,
            },
            Owned::WindowUpdate { stream, increment } => Frame::WindowUpdate {
                stream_id: *stream,
                increment: *increment,
            },
            Owned::Continuation {
                stream,
                end_headers,
                fragment,
            } => Frame::Continuation {
                stream_id: *stream,
                end_headers: *end_headers,
                fragment,
            },
            Owned::Unknown {
                kind,
                flags,
                stream,
                payload,
            } => Frame::Unknown {
                header: FrameHeader {
                    length: payload.len() as u32,
                    kind: *kind,
                    flags: *flags,
                    stream_id: *stream,
                },
                payload,
            },
            Owned::Data { .. } | Owned::Settings { .. } => {
                unreachable!("encoded without a borrowed form")
            }
        }
    }
}

/// Parses one encoded frame that must fill `bytes` exactly.
fn parse_one(bytes: &[u8]) -> Result<Owned, String> {
    let (head, payload) = bytes
        .split_first_chunk::<HEADER_LEN>()
        .ok_or("shorter than a header")?;
    let header = FrameHeader::parse(head);
    if header.length as usize != payload.len() {
        return Err(format!(
            "length {} for {} bytes",
            header.length,
            payload.len()
        ));
    }
    parse(header, payload)
        .map(|f| Owned::from_frame(&f))
        .map_err(|e| format!("{e:?}"))
}

// ---- 1. encode → parse roundtrip

fn roundtrip(frame: Owned, padding: Option<u8>) -> TestResult {
    let mut out = Vec::new();
    let expected = frame.encode(&mut out, padding);
    match parse_one(&out) {
        Ok(got) if got == expected => {}
        Ok(got) => return TestResult::error(format!("got {got:?}, expected {expected:?}")),
        Err(e) => return TestResult::error(format!("{e} for {expected:?}")),
    }
    // The specific encoders agree with `encode::frame` (unpadded).
    let mut specific = Vec::new();
    match &frame {
        Owned::Data {
            stream,
            data,
            end_stream,
            ..
        } => {
            encode::data_header(&mut specific, *stream, data.len() as u32, *end_stream);
            specific.extend_from_slice(data);
        }
        Owned::RstStream { stream, code } => encode::rst_stream(&mut specific, *stream, *code),
        Owned::Ping { ack, payload } => encode::ping(&mut specific, *ack, *payload),
        Owned::GoAway { last, code, debug } => encode::goaway(&mut specific, *last, *code, debug),
        Owned::WindowUpdate { stream, increment } => {
            encode::window_update(&mut specific, *stream, *increment)
        }
        Owned::Settings { .. } => {
            // SETTINGS goes the other way: what `parse` returns,
            // `encode::frame` writes back byte for byte.
            let (head, payload) = out.split_first_chunk::<HEADER_LEN>().unwrap();
            let parsed = parse(FrameHeader::parse(head), payload).unwrap();
            encode::frame(&mut specific, &parsed, padding);
        }
        _ => return TestResult::passed(),
    }
    let mut reference = Vec::new();
    if matches!(frame, Owned::Settings { .. }) {
        reference = out;
    } else {
        frame.encode(&mut reference, None);
    }
    if specific != reference {
        return TestResult::error(format!("specific encoder differs for {frame:?}"));
    }
    TestResult::passed()
}

#[test]
fn prop_encode_parse_roundtrip() {
    QuickCheck::new()
        .tests(2000)
        .quickcheck(roundtrip as fn(Owned, Option<u8>) -> TestResult);
}

/// The roundtrip property is not vacuous: a changed byte is noticed.
#[test]
fn roundtrip_detects_a_wrong_encoding() {
    let frame = Owned::Ping {
        ack: false,
        payload: *b"abcdefgh",
    };
    let mut out = Vec::new();
    let expected = frame.encode(&mut out, None);
    out[HEADER_LEN] ^= 1;
    assert_ne!(parse_one(&out), Ok(expected));
}

fn headers_split(block: Vec<u8>, end_stream: bool, max: u8, stream: u32) -> TestResult {
    let max = u32::from(max % 64) + 1;
    let stream = StreamId::new(stream.max(1));
    let mut out = Vec::new();
    encode::headers(&mut out, stream, &block, end_stream, max);
    let mut rest = &out[..];
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let Some((head, _)) = rest.split_first_chunk::<HEADER_LEN>() else {
            return TestResult::error("trailing bytes");
        };
        let len = HEADER_LEN + FrameHeader::parse(head).length as usize;
        if len > rest.len() || len - HEADER_LEN > max as usize {
            return TestResult::error(format!("frame of {len} bytes, max {max}"));
        }
        match parse_one(&rest[..len]) {
            Ok(f) => frames.push(f),
            Err(e) => return TestResult::error(e),
        }
        rest = &rest[len..];
    }
    let expected_count = block.len().div_ceil(max as usize).max(1);
    if frames.len() != expected_count {
        return TestResult::error(format!(
            "{} frames, expected {expected_count}",
            frames.len()
        ));
    }
    let mut joined = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let last = i + 1 == frames.len();
        match f {
            Owned::Headers {
                stream: s,
                end_stream: es,
                end_headers,
                priority: None,
                fragment,
            } if i == 0 && *s == stream && *es == end_stream && *end_headers == last => {
                joined.extend_from_slice(fragment)
            }
            Owned::Continuation {
                stream: s,
                end_headers,
                fragment,
            } if i > 0 && *s == stream && *end_headers == last && !fragment.is_empty() => {
                joined.extend_from_slice(fragment)
            }
            other => return TestResult::error(format!("frame {i}: {other:?}")),
        }
    }
    TestResult::from_bool(joined == block)
}

#[test]
fn prop_headers_split_into_continuations() {
    QuickCheck::new()
        .tests(1000)
        .quickcheck(headers_split as fn(Vec<u8>, bool, u8, u32) -> TestResult);
}

// ---- 2. chunking does not change what the decoder finds

/// Feeds `chunks` to a decoder and collects its frames, DATA pieces joined
/// per frame, checking the decoder's contract on the way.
fn decode_chunks(max: u32, chunks: &[&[u8]]) -> Result<Vec<Owned>, String> {
    let mut dec = FrameDecoder::new(max);
    let mut frames = Vec::new();
    let mut data: Option<Owned> = None;
    for chunk in chunks {
        let mut input = *chunk;
        loop {
            let (got, piece_flags) = match dec.decode(&mut input) {
                Ok(Some(frame)) => {
                    let flags = match frame {
                        Frame::Data { first, last, .. } => Some((first, last)),
                        _ => None,
                    };
                    (Owned::from_frame(&frame), flags)
                }
                Ok(None) if input.is_empty() => break,
                Ok(None) => return Err(format!("Ok(None) with {} bytes left", input.len())),
                Err(e) => return Err(format!("{e:?}")),
            };
            match piece_flags {
                Some((first, last)) => join_piece(&mut data, &mut frames, got, first, last)?,
                None if data.is_some() => return Err("frame inside a DATA frame".into()),
                None => frames.push(got),
            }
        }
        if dec.buffered() > HEADER_LEN + max as usize {
            return Err(format!("buffered {}", dec.buffered()));
        }
    }
    if data.is_some() || dec.buffered() != 0 {
        return Err("stream ended inside a frame".into());
    }
    Ok(frames)
}

fn join_piece(
    data: &mut Option<Owned>,
    frames: &mut Vec<Owned>,
    piece: Owned,
    first: bool,
    last: bool,
) -> Result<(), String> {
    let Owned::Data {
        stream,
        data: bytes,
        flow_len,
        end_stream,
    } = piece
    else {
        return Err("not DATA".into());
    };
    if first != data.is_none() {
        return Err(format!("first = {first} with a frame open: {data:?}"));
    }
    if end_stream && !last {
        return Err("END_STREAM on a piece that is not the last".into());
    }
    let open = data.get_or_insert(Owned::Data {
        stream,
        data: Vec::new(),
        flow_len: 0,
        end_stream: false,
    });
    let Owned::Data {
        stream: s,
        data: d,
        flow_len: f,
        end_stream: e,
    } = open
    else {
        return Err("not DATA".into());
    };
    if *s != stream {
        return Err("stream changed between pieces".into());
    }
    d.extend_from_slice(&bytes);
    *f += flow_len;
    *e = end_stream;
    if last {
        frames.extend(data.take());
    }
    Ok(())
}

/// Splits `bytes` into chunks whose sizes come from `sizes` (0 allowed: an
/// empty input), then one chunk with the rest; all 1-byte chunks when
/// `bytewise`.
fn chunk<'a>(bytes: &'a [u8], sizes: &[u8], bytewise: bool) -> Vec<&'a [u8]> {
    if bytewise {
        return bytes.chunks(1).collect();
    }
    let mut chunks = Vec::new();
    let mut rest = bytes;
    for &size in sizes {
        let (c, r) = rest.split_at(rest.len().min(usize::from(size % 48)));
        chunks.push(c);
        rest = r;
    }
    chunks.push(rest);
    chunks
}

fn chunking_invariant(
    frames: Vec<(Owned, Option<u8>)>,
    sizes: Vec<u8>,
    bytewise: bool,
) -> TestResult {
    let mut wire = Vec::new();
    let expected: Vec<Owned> = frames
        .iter()
        .map(|(f, pad)| f.encode(&mut wire, *pad))
        .collect();
    let max = DEFAULT_MAX_FRAME_SIZE;
    let whole = match decode_chunks(max, &[&wire]) {
        Ok(whole) => whole,
        Err(e) => return TestResult::error(format!("all at once: {e}")),
    };
    if whole != expected {
        return TestResult::error(format!("all at once: {whole:?}\nexpected {expected:?}"));
    }
    match decode_chunks(max, &chunk(&wire, &sizes, bytewise)) {
        Ok(chunked) if chunked == whole => TestResult::passed(),
        Ok(chunked) => TestResult::error(format!("chunked: {chunked:?}\nwhole: {whole:?}")),
        Err(e) => TestResult::error(format!("chunked: {e}")),
    }
}

#[test]
fn prop_chunking_does_not_change_frames() {
    QuickCheck::new().tests(1000).quickcheck(
        chunking_invariant as fn(Vec<(Owned, Option<u8>)>, Vec<u8>, bool) -> TestResult,
    );
}

// ---- 3. arbitrary bytes: no panic, bounded buffer

/// Decodes until the input ends or a connection error; returns how many
/// frames, pieces and stream errors came out.
fn feed_arbitrary(max: u32, chunks: &[&[u8]]) -> Result<usize, String> {
    let mut dec = FrameDecoder::new(max);
    let bound = HEADER_LEN + max as usize;
    let mut events = 0;
    let mut failed: Option<FrameError> = None;
    for chunk in chunks {
        let mut input = *chunk;
        // Every call consumes a byte or ends the loop; the +1 is for the
        // final Ok(None) (and a zero-length DATA piece, which consumes its
        // header bytes in the same call).
        for _ in 0..=2 * chunk.len() + 1 {
            let result = dec.decode(&mut input);
            let outcome = match result {
                Ok(Some(_)) => None,
                Ok(None) => Some(Ok(())),
                Err(e) => Some(Err(e)),
            };
            if dec.buffered() > bound {
                return Err(format!("buffered {} > {bound}", dec.buffered()));
            }
            match outcome {
                None => events += 1,
                Some(Ok(())) if input.is_empty() => break,
                Some(Ok(())) => return Err("Ok(None) before the input ended".into()),
                Some(Err(e)) if e.is_connection_error() => {
                    failed = Some(e);
                    break;
                }
                Some(Err(_)) => events += 1,
            }
        }
        if let Some(e) = failed {
            let mut more = &b"\0\0\0\x04\0\0\0\0\0"[..];
            if dec.decode(&mut more) != Err(e) || more.len() != HEADER_LEN {
                return Err("a failed decoder went on".into());
            }
            return Ok(events);
        }
        if !input.is_empty() {
            return Err("decoder stopped making progress".into());
        }
    }
    Ok(events)
}

fn arbitrary_bytes(
    frames: Vec<(Owned, Option<u8>)>,
    flips: Vec<(u16, u8)>,
    noise: Vec<u8>,
    sizes: Vec<u8>,
    max: u16,
) -> TestResult {
    let mut wire = Vec::new();
    for (f, pad) in &frames {
        f.encode(&mut wire, *pad);
    }
    // Mutate a valid stream so that headers mostly stay plausible.
    for (at, xor) in flips {
        if !wire.is_empty() {
            let at = usize::from(at) % wire.len();
            wire[at] ^= xor;
        }
    }
    wire.extend(noise);
    let max = u32::from(max % 300);
    match feed_arbitrary(max, &chunk(&wire, &sizes, false)) {
        Ok(_) => TestResult::passed(),
        Err(e) => TestResult::error(e),
    }
}

#[test]
fn prop_arbitrary_bytes_never_panic_and_stay_bounded() {
    QuickCheck::new().tests(2000).quickcheck(
        arbitrary_bytes
            as fn(Vec<(Owned, Option<u8>)>, Vec<(u16, u8)>, Vec<u8>, Vec<u8>, u16) -> TestResult,
    );
}

fn pure_noise(noise: Vec<u8>, sizes: Vec<u8>, bytewise: bool, max: u32) -> TestResult {
    let max = max % (MAX_MAX_FRAME_SIZE + 1);
    match feed_arbitrary(max, &chunk(&noise, &sizes, bytewise)) {
        Ok(_) => TestResult::passed(),
        Err(e) => TestResult::error(e),
    }
}

#[test]
fn prop_pure_noise() {
    quickcheck(pure_noise as fn(Vec<u8>, Vec<u8>, bool, u32) -> TestResult);
}
