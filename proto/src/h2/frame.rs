//! The HTTP/2 frame layer (RFC 9113 §4 and §6): every frame type, parsed
//! from arbitrary chunk boundaries and encoded into caller buffers.
//!
//! Rooms:
//! - this file: the frame vocabulary (header, [`Frame`], errors);
//! - `rules`: [`parse`], every per-type rule of RFC 9113 §6;
//! - `decoder`: [`FrameDecoder`], which finds frames in a byte stream;
//! - [`encode`]: one function per frame the connection sends.

mod decoder;
pub mod encode;
mod rules;

pub use decoder::FrameDecoder;
pub use rules::parse;

use super::{ErrorCode, StreamId};

/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE before any SETTINGS arrive (RFC 9113 §6.5.2).
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// The largest SETTINGS_MAX_FRAME_SIZE a peer may announce, 2^24 - 1.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest flow-control window, 2^31 - 1 (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = 0x7fff_ffff;
/// The connection preface a client sends first (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame type codes (RFC 9113 §6).
pub mod kind {
    /// DATA
    pub const DATA: u8 = 0x0;
    /// HEADERS
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY (deprecated, still parsed)
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING
    pub const PING: u8 = 0x6;
    /// GOAWAY
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113 §6).
pub mod flag {
    /// END_STREAM on DATA and HEADERS.
    pub const END_STREAM: u8 = 0x1;
    /// ACK on SETTINGS and PING.
    pub const ACK: u8 = 0x1;
    /// END_HEADERS on HEADERS, PUSH_PROMISE and CONTINUATION.
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED on DATA, HEADERS and PUSH_PROMISE.
    pub const PADDED: u8 = 0x8;
    /// PRIORITY on HEADERS.
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS parameter identifiers (RFC 9113 §6.5.2).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441)
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// The fixed 9-byte header in front of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub length: u32,
    /// Frame type code, see [`kind`].
    pub kind: u8,
    /// Flags, see [`flag`].
    pub flags: u8,
    /// Stream id, reserved bit cleared.
    pub stream_id: StreamId,
}

impl FrameHeader {
    /// Parses the 9 header bytes. Never fails: every bit pattern is a header;
    /// whether it is acceptable is decided by [`parse`] and the decoder.
    #[inline]
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> FrameHeader {
        let [l0, l1, l2, kind, flags, s0, s1, s2, s3] = *bytes;
        FrameHeader {
            // One 4-byte load for length and type.
            length: u32::from_be_bytes([l0, l1, l2, kind]) >> 8,
            kind,
            flags,
            stream_id: StreamId::new(u32::from_be_bytes([s0, s1, s2, s3])),
        }
    }

    /// Appends the 9 header bytes to `out`. Only the low 24 bits of
    /// `length` fit on the wire; callers keep lengths within
    /// [`MAX_MAX_FRAME_SIZE`].
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        debug_assert!(
            self.length <= MAX_MAX_FRAME_SIZE,
            "frame length over 24 bits"
        );
        let [_, l0, l1, l2] = self.length.to_be_bytes();
        let [s0, s1, s2, s3] = self.stream_id.get().to_be_bytes();
        out.extend_from_slice(&[l0, l1, l2, self.kind, self.flags, s0, s1, s2, s3]);
    }

    /// True when `flag` (see [`flag`]) is set.
    #[inline]
    pub fn has_flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Stream priority fields of HEADERS and PRIORITY (parsed, otherwise
/// ignored: RFC 9113 §5.3.2 deprecates the scheme).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority {
    /// The stream this one depends on.
    pub dependency: StreamId,
    /// The exclusive flag.
    pub exclusive: bool,
    /// Weight minus one, as on the wire.
    pub weight: u8,
}

/// One SETTINGS parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Identifier, see [`setting`]; unknown ids must be ignored.
    pub id: u16,
    /// Value.
    pub value: u32,
}

/// The parameters of a SETTINGS frame, in wire order, borrowed from the
/// payload (already validated by [`parse`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingsList<'a> {
    raw: &'a [u8],
}

impl<'a> SettingsList<'a> {
    /// Iterates the parameters in wire order.
    pub fn iter(&self) -> impl Iterator<Item = Setting> + 'a {
        let raw = self.raw;
        // `chunks_exact(6)` only yields six-byte chunks, so the indexing
        // below cannot go out of bounds whatever the peer sent.
        raw.chunks_exact(6).map(|c| Setting {
            id: u16::from_be_bytes([c[0], c[1]]),
            value: u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
        })
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.raw.len() / 6
    }

    /// True when the frame carries no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// A parsed frame, borrowing its payload.
///
/// DATA is special: the decoder streams its payload, so one DATA frame may
/// arrive as several [`Frame::Data`] pieces (see its fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A piece of a DATA frame's payload (padding removed).
    Data {
        /// The stream (never 0: checked).
        stream_id: StreamId,
        /// Payload bytes of this piece; may be empty.
        data: &'a [u8],
        /// Bytes of this piece that count against flow control: its data plus
        /// its share of the pad-length byte and padding. Summed over all
        /// pieces of one frame this equals the frame's length.
        flow_len: u32,
        /// True on the frame's first piece.
        first: bool,
        /// True on the frame's last piece.
        last: bool,
        /// END_STREAM; only ever true on the last piece.
        end_stream: bool,
    },
    /// A HEADERS frame: the first fragment of a field block.
    Headers {
        /// The stream (never 0: checked).
        stream_id: StreamId,
        /// END_STREAM flag.
        end_stream: bool,
        /// END_HEADERS flag: no CONTINUATION follows.
        end_headers: bool,
        /// Priority fields, if the PRIORITY flag was set.
        priority: Option<Priority>,
        /// The field block fragment (padding removed).
        fragment: &'a [u8],
    },
    /// PRIORITY.
    Priority {
        /// The stream (never 0: checked).
        stream_id: StreamId,
        /// The priority fields.
        priority: Priority,
    },
    /// RST_STREAM.
    RstStream {
        /// The stream (never 0: checked).
        stream_id: StreamId,
        /// Why the stream ends.
        error_code: ErrorCode,
    },
    /// SETTINGS.
    Settings {
        /// ACK flag (then the list is empty: checked).
        ack: bool,
        /// The parameters; known ones have valid values (checked).
        settings: SettingsList<'a>,
    },
    /// PUSH_PROMISE (a client that disabled push treats it as an error).
    PushPromise {
        /// The stream the promise is associated with.
        stream_id: StreamId,
        /// END_HEADERS flag.
        end_headers: bool,
        /// The promised stream id.
        promised_id: StreamId,
        /// The field block fragment (padding removed).
        fragment: &'a [u8],
    },
    /// PING.
    Ping {
        /// ACK flag.
        ack: bool,
        /// Opaque data.
        payload: [u8; 8],
    },
    /// GOAWAY.
    GoAway {
        /// Highest peer-initiated stream the sender may have processed.
        last_stream_id: StreamId,
        /// Why.
        error_code: ErrorCode,
        /// Additional debug data.
        debug_data: &'a [u8],
    },
    /// WINDOW_UPDATE. An increment of 0 is reported as an error, never here.
    WindowUpdate {
        /// 0 for the connection window.
        stream_id: StreamId,
        /// 1 ..= 2^31-1.
        increment: u32,
    },
    /// CONTINUATION.
    Continuation {
        /// The stream (never 0: checked).
        stream_id: StreamId,
        /// END_HEADERS flag.
        end_headers: bool,
        /// The field block fragment.
        fragment: &'a [u8],
    },
    /// A frame of an unknown type: must be ignored (RFC 9113 §5.5), except
    /// in the middle of a field block, which the connection checks.
    Unknown {
        /// Its header.
        header: FrameHeader,
        /// Its payload.
        payload: &'a [u8],
    },
}

/// Which rule a frame broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameRule {
    /// Length above our SETTINGS_MAX_FRAME_SIZE.
    TooLarge {
        /// Announced length.
        length: u32,
        /// Our limit.
        max: u32,
    },
    /// Length not what the frame type requires (e.g. PING not 8 bytes).
    BadLength,
    /// Pad length not smaller than the payload.
    PaddingTooLong,
    /// A frame type that needs a stream arrived on stream 0.
    StreamIdRequired,
    /// A frame type that belongs to the connection arrived on a stream.
    StreamIdForbidden,
    /// WINDOW_UPDATE with increment 0.
    ZeroIncrement,
    /// A SETTINGS ACK with a payload.
    SettingsAckWithPayload,
    /// A known setting with an invalid value.
    InvalidSetting {
        /// The setting id.
        id: u16,
        /// The value sent.
        value: u32,
    },
    /// A HEADERS or PRIORITY frame that makes a stream depend on itself.
    SelfDependency,
}

/// A frame that breaks RFC 9113. `stream_id` is 0 for a connection error
/// (GOAWAY) and the stream's id for a stream error (RST_STREAM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameError {
    /// The rule.
    pub rule: FrameRule,
    /// The error code the RFC prescribes.
    pub code: ErrorCode,
    /// 0 = connection error; otherwise a stream error on that stream.
    pub stream_id: StreamId,
    /// Type code of the offending frame.
    pub frame_kind: u8,
}

impl FrameError {
    /// True when the whole connection must end (GOAWAY).
    pub fn is_connection_error(&self) -> bool {
        self.stream_id.is_connection()
    }
}

impl FrameError {
    /// A connection error (GOAWAY with `code`).
    fn connection(rule: FrameRule, code: ErrorCode, frame_kind: u8) -> FrameError {
        FrameError {
            rule,
            code,
            stream_id: StreamId::CONNECTION,
            frame_kind,
        }
    }

    /// A stream error on `stream_id` (RST_STREAM with `code`); on stream 0
    /// this is a connection error, since there is no stream to reset.
    fn stream(rule: FrameRule, code: ErrorCode, frame_kind: u8, stream_id: StreamId) -> FrameError {
        FrameError {
            rule,
            code,
            stream_id,
            frame_kind,
        }
    }
}
