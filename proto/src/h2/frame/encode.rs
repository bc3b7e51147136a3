//! Frame encoders. Each appends one complete frame to `out` (except
//! [`headers`], which appends one field block: HEADERS plus the
//! CONTINUATION frames it needs).
//!
//! Arguments are the engine's own values, not peer input: lengths above
//! [`MAX_MAX_FRAME_SIZE`] and window increments outside 1 ..= 2^31-1 are
//! caller bugs, caught by debug assertions.

use super::{
    flag, kind, Frame, FrameHeader, Priority, Setting, HEADER_LEN, MAX_MAX_FRAME_SIZE, MAX_WINDOW,
};
use crate::h2::{ErrorCode, StreamId};

/// Appends a frame header for a payload of `length` bytes.
fn header(out: &mut Vec<u8>, length: usize, kind: u8, flags: u8, stream_id: StreamId) {
    FrameHeader {
        length: u32::try_from(length).unwrap_or(u32::MAX),
        kind,
        flags,
        stream_id,
    }
    .encode(out);
}

/// `flag` when `on`, else no flag.
fn flag_if(on: bool, flag: u8) -> u8 {
    if on {
        flag
    } else {
        0
    }
}

/// A DATA frame header for `len` payload bytes; the caller appends the
/// payload itself (so it is copied once, straight into the output).
pub fn data_header(out: &mut Vec<u8>, stream_id: StreamId, len: u32, end_stream: bool) {
    FrameHeader {
        length: len,
        kind: kind::DATA,
        flags: flag_if(end_stream, flag::END_STREAM),
        stream_id,
    }
    .encode(out);
}

/// A field block as HEADERS followed by as many CONTINUATION frames as
/// `max_frame_size` requires. An empty block is one empty HEADERS frame. A
/// `max_frame_size` of 0 is taken as 1 (the peer's value is at least
/// 16384 once validated; smaller ones only occur in tests).
pub fn headers(
    out: &mut Vec<u8>,
    stream_id: StreamId,
    block: &[u8],
    end_stream: bool,
    max_frame_size: u32,
) {
    let max = max_frame_size.clamp(1, MAX_MAX_FRAME_SIZE) as usize;
    let (first, mut rest) = block.split_at(block.len().min(max));
    out.reserve(block.len() + HEADER_LEN * (1 + rest.len().div_ceil(max)));
    let flags = flag_if(end_stream, flag::END_STREAM) | flag_if(rest.is_empty(), flag::END_HEADERS);
    header(out, first.len(), kind::HEADERS, flags, stream_id);
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(max));
        rest = after;
        let flags = flag_if(rest.is_empty(), flag::END_HEADERS);
        header(out, chunk.len(), kind::CONTINUATION, flags, stream_id);
        out.extend_from_slice(chunk);
    }
}

/// RST_STREAM.
pub fn rst_stream(out: &mut Vec<u8>, stream_id: StreamId, code: ErrorCode) {
    header(out, 4, kind::RST_STREAM, 0, stream_id);
    out.extend_from_slice(&code.0.to_be_bytes());
}

/// SETTINGS with the given parameters, or an ACK when `ack` (then
/// `settings` must be empty; it is ignored).
pub fn settings(out: &mut Vec<u8>, ack: bool, settings: &[Setting]) {
    debug_assert!(!ack || settings.is_empty(), "SETTINGS ACK with parameters");
    let settings = if ack { &[] } else { settings };
    header(
        out,
        settings.len() * 6,
        kind::SETTINGS,
        flag_if(ack, flag::ACK),
        StreamId::CONNECTION,
    );
    for s in settings {
        out.extend_from_slice(&s.id.to_be_bytes());
        out.extend_from_slice(&s.value.to_be_bytes());
    }
}

/// PING.
pub fn ping(out: &mut Vec<u8>, ack: bool, payload: [u8; 8]) {
    header(
        out,
        8,
        kind::PING,
        flag_if(ack, flag::ACK),
        StreamId::CONNECTION,
    );
    out.extend_from_slice(&payload);
}

/// GOAWAY.
pub fn goaway(out: &mut Vec<u8>, last_stream_id: StreamId, code: ErrorCode, debug: &[u8]) {
    header(out, 8 + debug.len(), kind::GOAWAY, 0, StreamId::CONNECTION);
    out.extend_from_slice(&last_stream_id.get().to_be_bytes());
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(debug);
}

/// WINDOW_UPDATE.
pub fn window_update(out: &mut Vec<u8>, stream_id: StreamId, increment: u32) {
    debug_assert!(
        (1..=MAX_WINDOW).contains(&increment),
        "window increment {increment} out of range"
    );
    header(out, 4, kind::WINDOW_UPDATE, 0, stream_id);
    out.extend_from_slice(&(increment & MAX_WINDOW).to_be_bytes());
}

/// The 5 bytes of stream dependency, exclusive bit and weight.
fn priority_fields(priority: Priority) -> [u8; 5] {
    let exclusive = if priority.exclusive { 0x8000_0000 } else { 0 };
    let dependency = priority.dependency.get() | exclusive;
    let [d0, d1, d2, d3] = dependency.to_be_bytes();
    [d0, d1, d2, d3, priority.weight]
}

/// A frame whose payload is `fixed` then `body`, PADDED with `padding`
/// zero bytes when given.
fn padded(
    out: &mut Vec<u8>,
    head: (u8, u8, StreamId),
    fixed: &[u8],
    body: &[u8],
    padding: Option<u8>,
) {
    let (kind, flags, stream_id) = head;
    let len = fixed.len() + body.len();
    match padding {
        None => header(out, len, kind, flags, stream_id),
        Some(pad_len) => {
            let len = 1 + len + usize::from(pad_len);
            header(out, len, kind, flags | flag::PADDED, stream_id);
            out.push(pad_len);
        }
    }
    out.extend_from_slice(fixed);
    out.extend_from_slice(body);
    if let Some(pad_len) = padding {
        out.resize(out.len() + usize::from(pad_len), 0);
    }
}

/// Any frame, including padding where the type allows it (DATA, HEADERS,
/// PUSH_PROMISE; other types ignore `padding`), for tests and fuzzing (the
/// connection uses the specific encoders above). A [`Frame::Data`] piece is
/// encoded as a whole DATA frame; a [`Frame::Unknown`] keeps its header's
/// type, flags and stream, with the length of its payload.
pub fn frame(out: &mut Vec<u8>, frame: &Frame<'_>, padding: Option<u8>) {
    match *frame {
        Frame::Data {
            stream_id,
            data,
            end_stream,
            ..
        } => {
            let flags = flag_if(end_stream, flag::END_STREAM);
            padded(out, (kind::DATA, flags, stream_id), &[], data, padding);
        }
        Frame::Headers {
            stream_id,
            end_stream,
            end_headers,
            priority,
            fragment,
        } => {
            let flags = flag_if(end_stream, flag::END_STREAM)
                | flag_if(end_headers, flag::END_HEADERS)
                | flag_if(priority.is_some(), flag::PRIORITY);
            let fields = priority.map(priority_fields);
            let fixed = fields.as_ref().map_or(&[][..], |f| &f[..]);
            padded(
                out,
                (kind::HEADERS, flags, stream_id),
                fixed,
                fragment,
                padding,
            );
        }
        Frame::Priority {
            stream_id,
            priority,
        } => {
            header(out, 5, kind::PRIORITY, 0, stream_id);
            out.extend_from_slice(&priority_fields(priority));
        }
        Frame::RstStream {
            stream_id,
            error_code,
        } => rst_stream(out, stream_id, error_code),
        Frame::Settings { ack, settings } => {
            let flags = flag_if(ack, flag::ACK);
            header(
                out,
                settings.raw.len(),
                kind::SETTINGS,
                flags,
                StreamId::CONNECTION,
            );
            out.extend_from_slice(settings.raw);
        }
        Frame::PushPromise {
            stream_id,
            end_headers,
            promised_id,
            fragment,
        } => {
            let flags = flag_if(end_headers, flag::END_HEADERS);
            let promised = promised_id.get().to_be_bytes();
            let head = (kind::PUSH_PROMISE, flags, stream_id);
            padded(out, head, &promised, fragment, padding);
        }
        Frame::Ping { ack, payload } => ping(out, ack, payload),
        Frame::GoAway {
            last_stream_id,
            error_code,
            debug_data,
        } => goaway(out, last_stream_id, error_code, debug_data),
        Frame::WindowUpdate {
            stream_id,
            increment,
        } => window_update(out, stream_id, increment),
        Frame::Continuation {
            stream_id,
            end_headers,
            fragment,
        } => {
            let flags = flag_if(end_headers, flag::END_HEADERS);
            header(out, fragment.len(), kind::CONTINUATION, flags, stream_id);
            out.extend_from_slice(fragment);
        }
        Frame::Unknown {
            header: head,
            payload,
        } => {
            header(out, payload.len(), head.kind, head.flags, head.stream_id);
            out.extend_from_slice(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::{setting, SettingsList};

    fn encoded(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = b"previous".to_vec();
        f(&mut out);
        // Encoders append; they never touch what is already there.
        assert_eq!(&out[..8], b"previous");
        out.split_off(8)
    }

    const S1: StreamId = StreamId::new(1);

    #[test]
    fn data_header_bytes() {
        let out = encoded(|o| data_header(o, S1, 0x01_0203, true));
        assert_eq!(out, [0x01, 0x02, 0x03, 0x00, 0x01, 0, 0, 0, 1]);
        let out = encoded(|o| data_header(o, StreamId::MAX, 0, false));
        assert_eq!(out, [0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn headers_fitting_one_frame() {
        let out = encoded(|o| headers(o, S1, b"abc", true, 16_384));
        assert_eq!(out, b"\0\0\x03\x01\x05\0\0\0\x01abc");
    }

    #[test]
    fn headers_empty_block_is_one_headers_frame() {
        let out = encoded(|o| headers(o, S1, b"", false, 16_384));
        assert_eq!(out, b"\0\0\0\x01\x04\0\0\0\x01");
    }

    #[test]
    fn headers_split_into_continuations() {
        let out = encoded(|o| headers(o, StreamId::new(3), b"abcdefg", true, 3));
        let expected: &[u8] = b"\0\0\x03\x01\x01\0\0\0\x03abc\
            \0\0\x03\x09\x00\0\0\0\x03def\
            \0\0\x01\x09\x04\0\0\0\x03g";
        assert_eq!(out, expected);
    }

    #[test]
    fn headers_exact_multiple_has_no_empty_continuation() {
        let out = encoded(|o| headers(o, S1, b"abcdef", false, 3));
        let expected: &[u8] = b"\0\0\x03\x01\x00\0\0\0\x01abc\0\0\x03\x09\x04\0\0\0\x01def";
        assert_eq!(out, expected);
    }

    #[test]
    fn headers_zero_max_frame_size_does_not_loop() {
        let out = encoded(|o| headers(o, S1, b"ab", false, 0));
        assert_eq!(out.len(), 2 * (HEADER_LEN + 1));
    }

    #[test]
    fn rst_stream_bytes() {
        let out = encoded(|o| rst_stream(o, StreamId::new(5), ErrorCode::CANCEL));
        assert_eq!(out, b"\0\0\x04\x03\0\0\0\0\x05\0\0\0\x08");
    }

    #[test]
    fn settings_bytes() {
        let list = [
            Setting {
                id: setting::ENABLE_PUSH,
                value: 0,
            },
            Setting {
                id: setting::MAX_FRAME_SIZE,
                value: 1 << 20,
            },
        ];
        let out = encoded(|o| settings(o, false, &list));
        assert_eq!(out, b"\0\0\x0c\x04\0\0\0\0\0\0\x02\0\0\0\0\0\x05\0\x10\0\0");
        let out = encoded(|o| settings(o, true, &[]));
        assert_eq!(out, b"\0\0\0\x04\x01\0\0\0\0");
    }

    #[test]
    fn ping_bytes() {
        let out = encoded(|o| ping(o, true, *b"pingpong"));
        assert_eq!(out, b"\0\0\x08\x06\x01\0\0\0\0pingpong");
    }

    #[test]
    fn goaway_bytes() {
        let out = encoded(|o| goaway(o, StreamId::new(9), ErrorCode::PROTOCOL_ERROR, b"why"));
        assert_eq!(out, b"\0\0\x0b\x07\0\0\0\0\0\0\0\0\x09\0\0\0\x01why");
    }

    #[test]
    fn window_update_bytes() {
        let out = encoded(|o| window_update(o, StreamId::new(3), MAX_WINDOW));
        assert_eq!(out, b"\0\0\x04\x08\0\0\0\0\x03\x7f\xff\xff\xff");
    }

    #[test]
    fn frame_padded_data() {
        let f = Frame::Data {
            stream_id: S1,
            data: b"hi",
            flow_len: 2,
            first: true,
            last: true,
            end_stream: true,
        };
        let out = encoded(|o| frame(o, &f, Some(2)));
        assert_eq!(out, b"\0\0\x05\0\x09\0\0\0\x01\x02hi\0\0");
    }

    #[test]
    fn frame_headers_with_priority_and_padding() {
        let f = Frame::Headers {
            stream_id: StreamId::new(5),
            end_stream: false,
            end_headers: true,
            priority: Some(Priority {
                dependency: StreamId::new(3),
                exclusive: true,
                weight: 15,
            }),
            fragment: b"AB",
        };
        let out = encoded(|o| frame(o, &f, Some(1)));
        assert_eq!(out, b"\0\0\x09\x01\x2c\0\0\0\x05\x01\x80\0\0\x03\x0fAB\0");
    }

    #[test]
    fn frame_priority_push_promise_settings_continuation_unknown() {
        let out = encoded(|o| {
            let p = Priority {
                dependency: StreamId::new(1),
                exclusive: false,
                weight: 255,
            };
            frame(
                o,
                &Frame::Priority {
                    stream_id: StreamId::new(3),
                    priority: p,
                },
                Some(9),
            )
        });
        assert_eq!(out, b"\0\0\x05\x02\0\0\0\0\x03\0\0\0\x01\xff");
        let f = Frame::PushPromise {
            stream_id: S1,
            end_headers: false,
            promised_id: StreamId::new(2),
            fragment: b"x",
        };
        let out = encoded(|o| frame(o, &f, None));
        assert_eq!(out, b"\0\0\x05\x05\0\0\0\0\x01\0\0\0\x02x");
        let f = Frame::Settings {
            ack: false,
            settings: SettingsList {
                raw: b"\0\x03\0\0\0\x64",
            },
        };
        let out = encoded(|o| frame(o, &f, None));
        assert_eq!(out, b"\0\0\x06\x04\0\0\0\0\0\0\x03\0\0\0\x64");
        let f = Frame::Continuation {
            stream_id: S1,
            end_headers: true,
            fragment: b"yz",
        };
        let out = encoded(|o| frame(o, &f, Some(3)));
        assert_eq!(out, b"\0\0\x02\x09\x04\0\0\0\x01yz");
        let f = Frame::Unknown {
            header: FrameHeader {
                length: 999,
                kind: 0x42,
                flags: 0x81,
                stream_id: StreamId::new(7),
            },
            payload: b"??",
        };
        let out = encoded(|o| frame(o, &f, None));
        assert_eq!(out, b"\0\0\x02\x42\x81\0\0\0\x07??");
    }
}
