//! [`parse`]: one complete frame checked against the per-type rules of
//! RFC 9113 §6, each broken rule answered with the error code and scope
//! (connection or stream) that the RFC text of that frame type prescribes.

use super::{
    flag, kind, setting, Frame, FrameError, FrameHeader, FrameRule, Priority, Setting,
    SettingsList, DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, MAX_WINDOW,
};
use crate::h2::{ErrorCode, StreamId};

/// Parses one complete frame (not DATA-streaming: a DATA frame comes back as
/// one piece with `first` and `last` set). `payload.len()` must equal
/// `header.length` (a mismatch is reported as a FRAME_SIZE_ERROR). Checks
/// every per-frame rule of RFC 9113 §6 except the max-frame-size limit,
/// which is the decoder's.
///
/// A HEADERS frame whose priority makes the stream depend on itself is a
/// stream error (RFC 9113 §5.3.1); its field block fragment is not returned,
/// so the connection cannot keep its HPACK state in step and should answer
/// it as a connection error (RFC 9113 §5.4.1 allows that for any stream
/// error).
pub fn parse(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    if payload.len() != header.length as usize {
        return Err(bad_length(header.kind));
    }
    match header.kind {
        kind::DATA => data(header, payload),
        kind::HEADERS => headers(header, payload),
        kind::PRIORITY => priority(header, payload),
        kind::RST_STREAM => rst_stream(header, payload),
        kind::SETTINGS => settings(header, payload),
        kind::PUSH_PROMISE => push_promise(header, payload),
        kind::PING => ping(header, payload),
        kind::GOAWAY => goaway(header, payload),
        kind::WINDOW_UPDATE => window_update(header, payload),
        kind::CONTINUATION => continuation(header, payload),
        _ => Ok(Frame::Unknown { header, payload }),
    }
}

/// DATA, HEADERS, PRIORITY, RST_STREAM, PUSH_PROMISE and CONTINUATION
/// belong to a stream: on stream 0 they are a connection error of type
/// PROTOCOL_ERROR (RFC 9113 §6.1, §6.2, §6.3, §6.4, §6.6, §6.10).
pub(super) fn require_stream(header: FrameHeader) -> Result<StreamId, FrameError> {
    if header.stream_id.is_connection() {
        return Err(FrameError::connection(
            FrameRule::StreamIdRequired,
            ErrorCode::PROTOCOL_ERROR,
            header.kind,
        ));
    }
    Ok(header.stream_id)
}

/// SETTINGS, PING and GOAWAY belong to the connection: on a stream they are
/// a connection error of type PROTOCOL_ERROR (RFC 9113 §6.5, §6.7, §6.8).
fn forbid_stream(header: FrameHeader) -> Result<(), FrameError> {
    if !header.stream_id.is_connection() {
        return Err(FrameError::connection(
            FrameRule::StreamIdForbidden,
            ErrorCode::PROTOCOL_ERROR,
            header.kind,
        ));
    }
    Ok(())
}

/// A frame too short for its mandatory fields, or of a length its type
/// forbids: FRAME_SIZE_ERROR, as a connection error (RFC 9113 §4.2: every
/// frame type with this answer either carries a field block, concerns the
/// connection, or is RST_STREAM/WINDOW_UPDATE, which §6.4 and §6.9 make
/// connection errors).
pub(super) fn bad_length(frame_kind: u8) -> FrameError {
    FrameError::connection(
        FrameRule::BadLength,
        ErrorCode::FRAME_SIZE_ERROR,
        frame_kind,
    )
}

/// Padding longer than the room left for it: a connection error of type
/// PROTOCOL_ERROR (RFC 9113 §6.1, §6.2, §6.6).
pub(super) fn padding_too_long(frame_kind: u8) -> FrameError {
    FrameError::connection(
        FrameRule::PaddingTooLong,
        ErrorCode::PROTOCOL_ERROR,
        frame_kind,
    )
}

/// Strips the pad-length byte and padding of a frame that may be PADDED,
/// keeping at least `fixed` bytes of fixed fields in front of the body.
fn unpad(header: FrameHeader, payload: &[u8], fixed: usize) -> Result<&[u8], FrameError> {
    if !header.has_flag(flag::PADDED) {
        return if payload.len() < fixed {
            Err(bad_length(header.kind))
        } else {
            Ok(payload)
        };
    }
    let Some((&pad_len, rest)) = payload.split_first() else {
        return Err(bad_length(header.kind));
    };
    if rest.len() < fixed {
        return Err(bad_length(header.kind));
    }
    match rest.len().checked_sub(usize::from(pad_len)) {
        Some(keep) if keep >= fixed => Ok(rest.get(..keep).unwrap_or_default()),
        _ => Err(padding_too_long(header.kind)),
    }
}

fn data(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    let stream_id = require_stream(header)?;
    let data = unpad(header, payload, 0)?;
    Ok(Frame::Data {
        stream_id,
        data,
        flow_len: header.length,
        first: true,
        last: true,
        end_stream: header.has_flag(flag::END_STREAM),
    })
}

/// Reads the 5 bytes of stream dependency, exclusive bit and weight.
fn read_priority(bytes: &[u8; 5]) -> Priority {
    let [d0, d1, d2, d3, weight] = *bytes;
    let dependency = u32::from_be_bytes([d0, d1, d2, d3]);
    Priority {
        dependency: StreamId::new(dependency),
        exclusive: dependency & 0x8000_0000 != 0,
        weight,
    }
}

/// A stream that depends on itself: a stream error of type PROTOCOL_ERROR
/// (RFC 9113 §5.3.1).
fn check_dependency(header: FrameHeader, priority: Priority) -> Result<Priority, FrameError> {
    if priority.dependency == header.stream_id {
        return Err(FrameError::stream(
            FrameRule::SelfDependency,
            ErrorCode::PROTOCOL_ERROR,
            header.kind,
            header.stream_id,
        ));
    }
    Ok(priority)
}

fn headers(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    let stream_id = require_stream(header)?;
    let has_priority = header.has_flag(flag::PRIORITY);
    let body = unpad(header, payload, if has_priority { 5 } else { 0 })?;
    let (priority, fragment) = if has_priority {
        let (fields, fragment) = body
            .split_first_chunk::<5>()
            .ok_or_else(|| bad_length(header.kind))?;
        (
            Some(check_dependency(header, read_priority(fields))?),
            fragment,
        )
    } else {
        (None, body)
    };
    Ok(Frame::Headers {
        stream_id,
        end_stream: header.has_flag(flag::END_STREAM),
        end_headers: header.has_flag(flag::END_HEADERS),
        priority,
        fragment,
    })
}

fn priority(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    let stream_id = require_stream(header)?;
    // RFC 9113 §6.3: the one frame-size error that is only a stream error.
    let fields = <&[u8; 5]>::try_from(payload).map_err(|_| {
        FrameError::stream(
            FrameRule::BadLength,
            ErrorCode::FRAME_SIZE_ERROR,
            header.kind,
            stream_id,
        )
    })?;
    let priority = check_dependency(header, read_priority(fields))?;
    Ok(Frame::Priority {
        stream_id,
        priority,
    })
}

fn rst_stream(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    let stream_id = require_stream(header)?;
    let code = <[u8; 4]>::try_from(payload).map_err(|_| bad_length(header.kind))?;
    Ok(Frame::RstStream {
        stream_id,
        error_code: ErrorCode(u32::from_be_bytes(code)),
    })
}

/// The value rules of RFC 9113 §6.5.2 and RFC 8441 §3; unknown ids pass.
fn check_setting(entry: Setting) -> Result<(), ErrorCode> {
    let valid = match entry.id {
        setting::ENABLE_PUSH | setting::ENABLE_CONNECT_PROTOCOL => entry.value <= 1,
        setting::INITIAL_WINDOW_SIZE => {
            return if entry.value <= MAX_WINDOW {
                Ok(())
            } else {
                Err(ErrorCode::FLOW_CONTROL_ERROR)
            };
        }
        setting::MAX_FRAME_SIZE => {
            (DEFAULT_MAX_FRAME_SIZE..=MAX_MAX_FRAME_SIZE).contains(&entry.value)
        }
        _ => true,
    };
    if valid {
        Ok(())
    } else {
        Err(ErrorCode::PROTOCOL_ERROR)
    }
}

fn settings(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    forbid_stream(header)?;
    let ack = header.has_flag(flag::ACK);
    if ack && !payload.is_empty() {
        return Err(FrameError::connection(
            FrameRule::SettingsAckWithPayload,
            ErrorCode::FRAME_SIZE_ERROR,
            header.kind,
        ));
    }
    if payload.len() % 6 != 0 {
        return Err(bad_length(header.kind));
    }
    let settings = SettingsList { raw: payload };
    for entry in settings.iter() {
        check_setting(entry).map_err(|code| {
            FrameError::connection(
                FrameRule::InvalidSetting {
                    id: entry.id,
                    value: entry.value,
                },
                code,
                header.kind,
            )
        })?;
    }
    Ok(Frame::Settings { ack, settings })
}

fn push_promise(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    let stream_id = require_stream(header)?;
    let body = unpad(header, payload, 4)?;
    let (promised, fragment) = body
        .split_first_chunk::<4>()
        .ok_or_else(|| bad_length(header.kind))?;
    Ok(Frame::PushPromise {
        stream_id,
        end_headers: header.has_flag(flag::END_HEADERS),
        promised_id: StreamId::new(u32::from_be_bytes(*promised)),
        fragment,
    })
}

fn ping(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    forbid_stream(header)?;
    let payload = <[u8; 8]>::try_from(payload).map_err(|_| bad_length(header.kind))?;
    Ok(Frame::Ping {
        ack: header.has_flag(flag::ACK),
        payload,
    })
}

fn goaway(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    forbid_stream(header)?;
    let (fixed, debug_data) = payload
        .split_first_chunk::<8>()
        .ok_or_else(|| bad_length(header.kind))?;
    let [s0, s1, s2, s3, c0, c1, c2, c3] = *fixed;
    Ok(Frame::GoAway {
        last_stream_id: StreamId::new(u32::from_be_bytes([s0, s1, s2, s3])),
        error_code: ErrorCode(u32::from_be_bytes([c0, c1, c2, c3])),
        debug_data,
    })
}

fn window_update(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    let raw = <[u8; 4]>::try_from(payload).map_err(|_| bad_length(header.kind))?;
    let increment = u32::from_be_bytes(raw) & MAX_WINDOW;
    if increment == 0 {
        // RFC 9113 §6.9: a stream error on a stream, a connection error on
        // stream 0 (`FrameError::stream` on stream 0 is exactly that).
        return Err(FrameError::stream(
            FrameRule::ZeroIncrement,
            ErrorCode::PROTOCOL_ERROR,
            header.kind,
            header.stream_id,
        ));
    }
    Ok(Frame::WindowUpdate {
        stream_id: header.stream_id,
        increment,
    })
}

fn continuation(header: FrameHeader, payload: &[u8]) -> Result<Frame<'_>, FrameError> {
    let stream_id = require_stream(header)?;
    Ok(Frame::Continuation {
        stream_id,
        end_headers: header.has_flag(flag::END_HEADERS),
        fragment: payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire bytes of a frame: header then payload, as RFC 9113 §4.1 lays
    /// them out, written by hand rather than by the encoder.
    fn wire(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn parse_wire(bytes: &[u8]) -> Result<Frame<'_>, FrameError> {
        let (head, payload) = bytes.split_first_chunk::<9>().unwrap();
        parse(FrameHeader::parse(head), payload)
    }

    fn ok(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Frame<'static> {
        let bytes: &'static [u8] = wire(kind, flags, stream, payload).leak();
        parse_wire(bytes).unwrap()
    }

    fn err(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> FrameError {
        parse_wire(&wire(kind, flags, stream, payload)).unwrap_err()
    }

    /// Asserts a connection error with this rule and code.
    fn assert_conn(e: FrameError, rule: FrameRule, code: ErrorCode, frame_kind: u8) {
        assert_eq!(
            e,
            FrameError {
                rule,
                code,
                stream_id: StreamId::CONNECTION,
                frame_kind
            }
        );
        assert!(e.is_connection_error());
    }

    /// Asserts a stream error on `stream` with this rule and code.
    fn assert_stream(e: FrameError, rule: FrameRule, code: ErrorCode, frame_kind: u8, stream: u32) {
        assert_eq!(
            e,
            FrameError {
                rule,
                code,
                stream_id: StreamId::new(stream),
                frame_kind
            }
        );
        assert!(!e.is_connection_error());
    }

    #[test]
    fn header_parse_reads_every_field_and_clears_reserved_bit() {
        let h = FrameHeader::parse(&[0x12, 0x34, 0x56, 0x07, 0xa5, 0x80, 0, 0, 3]);
        assert_eq!(
            h,
            FrameHeader {
                length: 0x12_3456,
                kind: 7,
                flags: 0xa5,
                stream_id: StreamId::new(3),
            }
        );
        assert_eq!(h.stream_id.get(), 3);
    }

    #[test]
    fn header_encode_is_inverse_of_parse() {
        let bytes = [0x00, 0x40, 0x00, 0x01, 0x25, 0x7f, 0xff, 0xff, 0xff];
        let mut out = Vec::new();
        FrameHeader::parse(&bytes).encode(&mut out);
        assert_eq!(out, bytes);
    }

    #[test]
    fn payload_length_mismatch_is_frame_size_error() {
        let h = FrameHeader {
            length: 8,
            kind: kind::PING,
            flags: 0,
            stream_id: StreamId::CONNECTION,
        };
        let e = parse(h, &[0; 7]).unwrap_err();
        assert_conn(
            e,
            FrameRule::BadLength,
            ErrorCode::FRAME_SIZE_ERROR,
            kind::PING,
        );
    }

    // ---- DATA (§6.1)

    #[test]
    fn data_plain() {
        assert_eq!(
            ok(kind::DATA, flag::END_STREAM, 1, b"hello"),
            Frame::Data {
                stream_id: StreamId::new(1),
                data: b"hello",
                flow_len: 5,
                first: true,
                last: true,
                end_stream: true,
            }
        );
    }

    #[test]
    fn data_padded_strips_padding_and_counts_it_in_flow_len() {
        assert_eq!(
            ok(kind::DATA, flag::PADDED, 3, b"\x02hi\0\0"),
            Frame::Data {
                stream_id: StreamId::new(3),
                data: b"hi",
                flow_len: 5,
                first: true,
                last: true,
                end_stream: false,
            }
        );
    }

    #[test]
    fn data_padding_may_fill_all_but_the_pad_length_byte() {
        let f = ok(kind::DATA, flag::PADDED, 3, b"\x03\0\0\0");
        assert!(matches!(
            f,
            Frame::Data {
                data: b"",
                flow_len: 4,
                ..
            }
        ));
    }

    #[test]
    fn data_pad_length_equal_to_payload_is_protocol_error() {
        let e = err(kind::DATA, flag::PADDED, 3, b"\x04\0\0\0");
        assert_conn(
            e,
            FrameRule::PaddingTooLong,
            ErrorCode::PROTOCOL_ERROR,
            kind::DATA,
        );
    }

    #[test]
    fn data_padded_without_pad_length_byte_is_frame_size_error() {
        let e = err(kind::DATA, flag::PADDED, 3, b"");
        assert_conn(
            e,
            FrameRule::BadLength,
            ErrorCode::FRAME_SIZE_ERROR,
            kind::DATA,
        );
    }

    #[test]
    fn data_on_stream_zero_is_protocol_error() {
        let e = err(kind::DATA, 0, 0, b"x");
        assert_conn(
            e,
            FrameRule::StreamIdRequired,
            ErrorCode::PROTOCOL_ERROR,
            kind::DATA,
        );
    }

    #[test]
    fn data_ignores_unknown_flags_and_reserved_bit() {
        let f = ok(kind::DATA, 0xf6, 0x8000_0005, b"ab");
        assert_eq!(
            f,
            Frame::Data {
                stream_id: StreamId::new(5),
                data: b"ab",
                flow_len: 2,
                first: true,
                last: true,
                end_stream: false,
            }
        );
    }

    // ---- HEADERS (§6.2)

    #[test]
    fn headers_plain() {
        assert_eq!(
            ok(kind::HEADERS, flag::END_HEADERS, 1, b"\x82\x84"),
            Frame::Headers {
                stream_id: StreamId::new(1),
                end_stream: false,
                end_headers: true,
                priority: None,
                fragment: b"\x82\x84",
            }
        );
    }

    #[test]
    fn headers_padded_with_priority() {
        // pad length 2 | E + dependency 3 | weight 15 | fragment | padding
        let payload = b"\x02\x80\x00\x00\x03\x0fAB\0\0";
        let all = flag::PADDED | flag::PRIORITY | flag::END_STREAM | flag::END_HEADERS;
        assert_eq!(
            ok(kind::HEADERS, all, 5, payload),
            Frame::Headers {
                stream_id: StreamId::new(5),
                end_stream: true,
                end_headers: true,
                priority: Some(Priority {
                    dependency: StreamId::new(3),
                    exclusive: true,
                    weight: 15,
                }),
                fragment: b"AB",
            }
        );
    }

    #[test]
    fn headers_empty_fragment_is_fine() {
        let f = ok(kind::HEADERS, 0, 1, b"");
        assert!(matches!(
            f,
            Frame::Headers {
                fragment: b"",
                end_headers: false,
                ..
            }
        ));
    }

    #[test]
    fn headers_on_stream_zero_is_protocol_error() {
        let e = err(kind::HEADERS, flag::END_HEADERS, 0, b"\x82");
        assert_conn(
            e,
            FrameRule::StreamIdRequired,
            ErrorCode::PROTOCOL_ERROR,
            kind::HEADERS,
        );
    }

    #[test]
    fn headers_padding_too_long_is_protocol_error() {
        let e = err(kind::HEADERS, flag::PADDED, 1, b"\x03ab");
        assert_conn(
            e,
            FrameRule::PaddingTooLong,
            ErrorCode::PROTOCOL_ERROR,
            kind::HEADERS,
        );
    }

    #[test]
    fn headers_padding_eating_priority_fields_is_protocol_error() {
        // 1 + 5 + 0 fragment bytes, pad length 1: the padding has no room.
        let e = err(
            kind::HEADERS,
            flag::PADDED | flag::PRIORITY,
            1,
            b"\x01\0\0\0\x03\x0f",
        );
        assert_conn(
            e,
            FrameRule::PaddingTooLong,
            ErrorCode::PROTOCOL_ERROR,
            kind::HEADERS,
        );
    }

    #[test]
    fn headers_too_short_for_priority_is_frame_size_error() {
        let e = err(kind::HEADERS, flag::PRIORITY, 1, b"\0\0\0");
        assert_conn(
            e,
            FrameRule::BadLength,
            ErrorCode::FRAME_SIZE_ERROR,
            kind::HEADERS,
        );
        let e = err(
            kind::HEADERS,
            flag::PRIORITY | flag::PADDED,
            1,
            b"\0\0\0\0\0",
        );
        assert_conn(
            e,
            FrameRule::BadLength,
            ErrorCode::FRAME_SIZE_ERROR,
            kind::HEADERS,
        );
    }

    #[test]
    fn headers_depending_on_itself_is_stream_protocol_error() {
        let e = err(kind::HEADERS, flag::PRIORITY, 7, b"\x80\0\0\x07\x10abc");
        assert_stream(
            e,
            FrameRule::SelfDependency,
            ErrorCode::PROTOCOL_ERROR,
            kind::HEADERS,
            7,
        );
    }

    // ---- PRIORITY (§6.3)

    #[test]
    fn priority_frame() {
        assert_eq!(
            ok(kind::PRIORITY, 0, 3, b"\x00\x00\x00\x01\xff"),
            Frame::Priority {
                stream_id: StreamId::new(3),
                priority: Priority {
                    dependency: StreamId::new(1),
                    exclusive: false,
                    weight: 255,
                },
            }
        );
    }

    #[test]
    fn priority_on_stream_zero_is_protocol_error() {
        let e = err(kind::PRIORITY, 0, 0, b"\0\0\0\x01\x10");
        assert_conn(
            e,
            FrameRule::StreamIdRequired,
            ErrorCode::PROTOCOL_ERROR,
            kind::PRIORITY,
        );
    }

    #[test]
    fn priority_bad_length_is_stream_frame_size_error() {
        for len in [0, 4, 6] {
            let e = err(kind::PRIORITY, 0, 9, &vec![0; len]);
            assert_stream(
                e,
                FrameRule::BadLength,
                ErrorCode::FRAME_SIZE_ERROR,
                kind::PRIORITY,
                9,
            );
        }
    }

    #[test]
    fn priority_depending_on_itself_is_stream_protocol_error() {
        let e = err(kind::PRIORITY, 0, 9, b"\0\0\0\x09\x10");
        assert_stream(
            e,
            FrameRule::SelfDependency,
            ErrorCode::PROTOCOL_ERROR,
            kind::PRIORITY,
            9,
        );
    }

    // ---- RST_STREAM (§6.4)

    #[test]
    fn rst_stream_frame() {
        assert_eq!(
            ok(kind::RST_STREAM, 0, 5, b"\x00\x00\x00\x08"),
            Frame::RstStream {
                stream_id: StreamId::new(5),
                error_code: ErrorCode::CANCEL,
            }
        );
    }

    #[test]
    fn rst_stream_keeps_unknown_codes() {
        let f = ok(kind::RST_STREAM, 0, 5, b"\xde\xad\xbe\xef");
        assert!(matches!(
            f,
            Frame::RstStream {
                error_code: ErrorCode(0xdead_beef),
                ..
            }
        ));
    }

    #[test]
    fn rst_stream_on_stream_zero_is_protocol_error() {
        let e = err(kind::RST_STREAM, 0, 0, b"\0\0\0\x08");
        assert_conn(
            e,
            FrameRule::StreamIdRequired,
            ErrorCode::PROTOCOL_ERROR,
            kind::RST_STREAM,
        );
    }

    #[test]
    fn rst_stream_bad_length_is_connection_frame_size_error() {
        for len in [0, 3, 5] {
            let e = err(kind::RST_STREAM, 0, 5, &vec![0; len]);
            assert_conn(
                e,
                FrameRule::BadLength,
                ErrorCode::FRAME_SIZE_ERROR,
                kind::RST_STREAM,
            );
        }
    }

    // ---- SETTINGS (§6.5)

    #[test]
    fn settings_frame_lists_parameters_in_wire_order() {
        let payload = b"\x00\x04\x00\x40\x00\x00\x00\x2a\x00\x00\x00\x07\x00\x05\x00\xff\xff\xff";
        let f = ok(kind::SETTINGS, 0, 0, payload);
        let Frame::Settings { ack, settings } = f else {
            panic!("not SETTINGS: {f:?}");
        };
        assert!(!ack);
        assert_eq!(settings.len(), 3);
        assert!(!settings.is_empty());
        let list: Vec<Setting> = settings.iter().collect();
        assert_eq!(
            list,
            [
                Setting {
                    id: 4,
                    value: 0x0040_0000
                },
                Setting { id: 0x2a, value: 7 },
                Setting {
                    id: 5,
                    value: MAX_MAX_FRAME_SIZE
                },
            ]
        );
    }

    #[test]
    fn settings_ack() {
        let f = ok(kind::SETTINGS, flag::ACK, 0, b"");
        assert!(matches!(f, Frame::Settings { ack: true, settings } if settings.is_empty()));
    }

    #[test]
    fn settings_on_a_stream_is_protocol_error() {
        let e = err(kind::SETTINGS, 0, 1, b"");
        assert_conn(
            e,
            FrameRule::StreamIdForbidden,
            ErrorCode::PROTOCOL_ERROR,
            kind::SETTINGS,
        );
    }

    #[test]
    fn settings_ack_with_payload_is_frame_size_error() {
        let e = err(kind::SETTINGS, flag::ACK, 0, b"\0\x02\0\0\0\0");
        assert_conn(
            e,
            FrameRule::SettingsAckWithPayload,
            ErrorCode::FRAME_SIZE_ERROR,
            kind::SETTINGS,
        );
    }

    #[test]
    fn settings_length_not_multiple_of_six_is_frame_size_error() {
        for len in [1, 5, 7, 13] {
            let e = err(kind::SETTINGS, 0, 0, &vec![0; len]);
            assert_conn(
                e,
                FrameRule::BadLength,
                ErrorCode::FRAME_SIZE_ERROR,
                kind::SETTINGS,
            );
        }
    }

    fn one_setting(id: u16, value: u32) -> Vec<u8> {
        let mut p = id.to_be_bytes().to_vec();
        p.extend_from_slice(&value.to_be_bytes());
        p
    }

    #[test]
    fn settings_value_rules() {
        use setting::*;
        let cases: &[(u16, u32, Option<ErrorCode>)] = &[
            (ENABLE_PUSH, 0, None),
            (ENABLE_PUSH, 1, None),
            (ENABLE_PUSH, 2, Some(ErrorCode::PROTOCOL_ERROR)),
            (ENABLE_CONNECT_PROTOCOL, 1, None),
            (ENABLE_CONNECT_PROTOCOL, 2, Some(ErrorCode::PROTOCOL_ERROR)),
            (INITIAL_WINDOW_SIZE, MAX_WINDOW, None),
            (
                INITIAL_WINDOW_SIZE,
                MAX_WINDOW + 1,
                Some(ErrorCode::FLOW_CONTROL_ERROR),
            ),
            (MAX_FRAME_SIZE, 16_383, Some(ErrorCode::PROTOCOL_ERROR)),
            (MAX_FRAME_SIZE, 16_384, None),
            (MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE, None),
            (
                MAX_FRAME_SIZE,
                MAX_MAX_FRAME_SIZE + 1,
                Some(ErrorCode::PROTOCOL_ERROR),
            ),
            (HEADER_TABLE_SIZE, u32::MAX, None),
            (MAX_CONCURRENT_STREAMS, u32::MAX, None),
            (MAX_HEADER_LIST_SIZE, 0, None),
            (0x7777, u32::MAX, None),
        ];
        for &(id, value, expected) in cases {
            let bytes = wire(kind::SETTINGS, 0, 0, &one_setting(id, value));
            let got = parse_wire(&bytes);
            match expected {
                None => assert!(got.is_ok(), "{id} = {value}: {got:?}"),
                Some(code) => assert_conn(
                    got.unwrap_err(),
                    FrameRule::InvalidSetting { id, value },
                    code,
                    kind::SETTINGS,
                ),
            }
        }
    }

    #[test]
    fn settings_invalid_value_after_valid_ones_is_found() {
        let mut payload = one_setting(setting::ENABLE_PUSH, 0);
        payload.extend(one_setting(setting::ENABLE_PUSH, 7));
        let e = err(kind::SETTINGS, 0, 0, &payload);
        assert_eq!(e.rule, FrameRule::InvalidSetting { id: 2, value: 7 });
    }

    // ---- PUSH_PROMISE (§6.6)

    #[test]
    fn push_promise_padded() {
        let f = ok(
            kind::PUSH_PROMISE,
            flag::PADDED | flag::END_HEADERS,
            1,
            b"\x01\x80\x00\x00\x02\x82\0",
        );
        assert_eq!(
            f,
            Frame::PushPromise {
                stream_id: StreamId::new(1),
                end_headers: true,
                promised_id: StreamId::new(2),
                fragment: b"\x82",
            }
        );
    }

    #[test]
    fn push_promise_on_stream_zero_is_protocol_error() {
        let e = err(kind::PUSH_PROMISE, 0, 0, b"\0\0\0\x02");
        assert_conn(
            e,
            FrameRule::StreamIdRequired,
            ErrorCode::PROTOCOL_ERROR,
            kind::PUSH_PROMISE,
        );
    }

    #[test]
    fn push_promise_too_short_is_frame_size_error() {
        let e = err(kind::PUSH_PROMISE, 0, 1, b"\0\0\x02");
        assert_conn(
            e,
            FrameRule::BadLength,
            ErrorCode::FRAME_SIZE_ERROR,
            kind::PUSH_PROMISE,
        );
    }

    #[test]
    fn push_promise_padding_too_long_is_protocol_error() {
        let e = err(kind::PUSH_PROMISE, flag::PADDED, 1, b"\x01\0\0\0\x02");
        assert_conn(
            e,
            FrameRule::PaddingTooLong,
            ErrorCode::PROTOCOL_ERROR,
            kind::PUSH_PROMISE,
        );
    }

    // ---- PING (§6.7)

    #[test]
    fn ping_frame() {
        assert_eq!(
            ok(kind::PING, flag::ACK, 0, b"12345678"),
            Frame::Ping {
                ack: true,
                payload: *b"12345678",
            }
        );
    }

    #[test]
    fn ping_on_a_stream_is_protocol_error() {
        let e = err(kind::PING, 0, 3, b"12345678");
        assert_conn(
            e,
            FrameRule::StreamIdForbidden,
            ErrorCode::PROTOCOL_ERROR,
            kind::PING,
        );
    }

    #[test]
    fn ping_bad_length_is_frame_size_error() {
        for len in [0, 7, 9] {
            let e = err(kind::PING, 0, 0, &vec![0; len]);
            assert_conn(
                e,
                FrameRule::BadLength,
                ErrorCode::FRAME_SIZE_ERROR,
                kind::PING,
            );
        }
    }

    // ---- GOAWAY (§6.8)

    #[test]
    fn goaway_frame() {
        assert_eq!(
            ok(kind::GOAWAY, 0, 0, b"\x80\x00\x00\x07\x00\x00\x00\x0bcalm"),
            Frame::GoAway {
                last_stream_id: StreamId::new(7),
                error_code: ErrorCode::ENHANCE_YOUR_CALM,
                debug_data: b"calm",
            }
        );
    }

    #[test]
    fn goaway_on_a_stream_is_protocol_error() {
        let e = err(kind::GOAWAY, 0, 1, &[0; 8]);
        assert_conn(
            e,
            FrameRule::StreamIdForbidden,
            ErrorCode::PROTOCOL_ERROR,
            kind::GOAWAY,
        );
    }

    #[test]
    fn goaway_shorter_than_eight_is_frame_size_error() {
        let e = err(kind::GOAWAY, 0, 0, &[0; 7]);
        assert_conn(
            e,
            FrameRule::BadLength,
            ErrorCode::FRAME_SIZE_ERROR,
            kind::GOAWAY,
        );
    }

    // ---- WINDOW_UPDATE (§6.9)

    #[test]
    fn window_update_ignores_reserved_bit() {
        assert_eq!(
            ok(kind::WINDOW_UPDATE, 0, 0, b"\xff\xff\xff\xff"),
            Frame::WindowUpdate {
                stream_id: StreamId::CONNECTION,
                increment: MAX_WINDOW,
            }
        );
        assert_eq!(
            ok(kind::WINDOW_UPDATE, 0, 3, b"\x00\x00\x00\x01"),
            Frame::WindowUpdate {
                stream_id: StreamId::new(3),
                increment: 1,
            }
        );
    }

    #[test]
    fn window_update_zero_on_stream_is_stream_error() {
        // The reserved bit set does not make the increment non-zero.
        let e = err(kind::WINDOW_UPDATE, 0, 3, b"\x80\0\0\0");
        assert_stream(
            e,
            FrameRule::ZeroIncrement,
            ErrorCode::PROTOCOL_ERROR,
            kind::WINDOW_UPDATE,
            3,
        );
    }

    #[test]
    fn window_update_zero_on_connection_is_connection_error() {
        let e = err(kind::WINDOW_UPDATE, 0, 0, b"\0\0\0\0");
        assert_conn(
            e,
            FrameRule::ZeroIncrement,
            ErrorCode::PROTOCOL_ERROR,
            kind::WINDOW_UPDATE,
        );
    }

    #[test]
    fn window_update_bad_length_is_connection_frame_size_error() {
        for (stream, len) in [(0, 3), (3, 5), (3, 0)] {
            let e = err(kind::WINDOW_UPDATE, 0, stream, &vec![1; len]);
            assert_conn(
                e,
                FrameRule::BadLength,
                ErrorCode::FRAME_SIZE_ERROR,
                kind::WINDOW_UPDATE,
            );
        }
    }

    // ---- CONTINUATION (§6.10)

    #[test]
    fn continuation_frame_ignores_padded_flag() {
        assert_eq!(
            ok(
                kind::CONTINUATION,
                flag::END_HEADERS | flag::PADDED,
                1,
                b"\x05ab"
            ),
            Frame::Continuation {
                stream_id: StreamId::new(1),
                end_headers: true,
                fragment: b"\x05ab",
            }
        );
    }

    #[test]
    fn continuation_on_stream_zero_is_protocol_error() {
        let e = err(kind::CONTINUATION, 0, 0, b"");
        assert_conn(
            e,
            FrameRule::StreamIdRequired,
            ErrorCode::PROTOCOL_ERROR,
            kind::CONTINUATION,
        );
    }

    // ---- unknown types (§4.1, §5.5)

    #[test]
    fn unknown_type_is_passed_through_on_any_stream() {
        for stream in [0, 1, 0x7fff_ffff] {
            let bytes = wire(0xfa, 0xff, stream, b"opaque");
            let f = parse_wire(&bytes).unwrap();
            assert_eq!(
                f,
                Frame::Unknown {
                    header: FrameHeader {
                        length: 6,
                        kind: 0xfa,
                        flags: 0xff,
                        stream_id: StreamId::new(stream),
                    },
                    payload: b"opaque",
                }
            );
        }
    }

    #[test]
    fn connection_frames_ignore_unknown_flags() {
        let f = ok(kind::PING, 0xfe, 0, b"abcdefgh");
        assert!(matches!(f, Frame::Ping { ack: false, .. }));
        let f = ok(kind::SETTINGS, 0xfe, 0, b"");
        assert!(matches!(f, Frame::Settings { ack: false, .. }));
    }
}
