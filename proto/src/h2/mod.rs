//! The HTTP/2 engine (RFC 9113, RFC 7541), sans-IO.
//!
//! Rooms:
//! - [`frame`]: the wire format of every frame type, parsing and encoding.
//! - [`hpack`]: header compression.
//! - [`Connection`]: one connection's state machine, for either role.
//!
//! The types in this file are shared by all rooms.

mod config;
mod connection;
mod flow;
pub mod frame;
mod headers;
pub mod hpack;
mod rate;
mod recv;
mod settings;
mod stream;

pub use config::{Config, RateLimit};
pub use connection::{Connection, Event, Limit, Request, Response, Role, UsageError, Violation};

use bytes::Bytes;
use core::fmt;

/// An HTTP/2 stream identifier (31 bits; the reserved high bit is never set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(u32);

impl StreamId {
    /// Stream 0: frames that concern the whole connection.
    pub const CONNECTION: StreamId = StreamId(0);
    /// The largest valid stream id, 2^31 - 1.
    pub const MAX: StreamId = StreamId(0x7fff_ffff);

    /// Builds a stream id, clearing the reserved high bit as RFC 9113 §4.1
    /// requires of receivers.
    pub const fn new(id: u32) -> StreamId {
        StreamId(id & 0x7fff_ffff)
    }

    /// The numeric value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// True for stream 0.
    pub const fn is_connection(self) -> bool {
        self.0 == 0
    }

    /// True for streams a client opens (odd ids).
    pub const fn is_client_initiated(self) -> bool {
        self.0 % 2 == 1
    }

    /// True for streams a server opens (even, non-zero ids).
    pub const fn is_server_initiated(self) -> bool {
        self.0 != 0 && self.0 % 2 == 0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An HTTP/2 error code (RFC 9113 §7). Unknown codes are kept as they are,
/// since a receiver must not treat them as special.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// Graceful shutdown, or no error.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// Unspecific protocol violation.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// Unexpected internal error.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// The peer violated flow control.
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    /// SETTINGS were not acknowledged in time.
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    /// A frame arrived on a half-closed (remote) or closed stream.
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    /// A frame had an invalid size.
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    /// The stream was refused before any processing.
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// The stream is no longer needed.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// The HPACK context cannot be maintained.
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    /// A CONNECT tunnel's TCP connection was reset or failed.
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    /// The peer is generating excessive load.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    /// The transport does not meet minimum security requirements.
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    /// HTTP/1.1 is required instead.
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);

    /// The RFC name of a known code, or `None`.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:x}", self.0),
        }
    }
}

/// One header field: a name and a value, as raw bytes.
///
/// Names are lowercase on the wire in HTTP/2; the codec does not change
/// case, the connection validates it. `sensitive` asks the HPACK encoder for
/// the never-indexed representation (RFC 7541 §7.1.3), and the decoder sets
/// it when the peer sent that representation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// The field name, e.g. `:authority` or `content-type`.
    pub name: Bytes,
    /// The field value.
    pub value: Bytes,
    /// Never index this field (it holds a secret such as a cookie or token).
    pub sensitive: bool,
}

impl Header {
    /// A header that may be indexed.
    pub fn new(name: impl Into<Bytes>, value: impl Into<Bytes>) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
            sensitive: false,
        }
    }

    /// The size HPACK and SETTINGS_MAX_HEADER_LIST_SIZE count for this field:
    /// name length + value length + 32 (RFC 7541 §4.1, RFC 9113 §6.5.2).
    pub fn hpack_size(&self) -> usize {
        self.name.len() + self.value.len() + 32
    }
}
