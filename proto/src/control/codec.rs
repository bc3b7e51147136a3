//! Framing: `[version: u8][length: u32 big-endian][postcard payload]`.
//!
//! The version sits in the frame header, outside the payload, so a peer
//! rejects a frame of a version it does not speak before reading (or even
//! buffering) a byte of its body, and says so precisely. The length is
//! checked against the receiver's limit as soon as the header is complete,
//! so an oversized frame is refused before it is buffered.

use super::message::{ErrorCode, Message};
use core::fmt;

/// The control protocol version this build speaks. Version 2 added the
/// end-to-end flag ([`super::Announce::relay_plaintext`],
/// [`super::RegistryEntry::end_to_end`]), which a version-1 peer would
/// misread.
pub const PROTOCOL_VERSION: u8 = 2;

/// Bytes in a frame header: version and length.
pub const HEADER_LEN: usize = 5;

/// The default limit on a frame's payload: a registry snapshot of about
/// 700 rows with realistic names (~90 bytes each) fits in one frame;
/// larger ones go as several ([`super::encode_split`]).
pub const DEFAULT_MAX_FRAME_LEN: usize = 64 * 1024;

/// Why a message could not be framed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload is longer than the limit the receiver is known to take.
    TooLong {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// postcard refused the value (cannot happen for [`Message`], which
    /// holds nothing postcard cannot encode; kept so no error is hidden).
    Serialize(postcard::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::TooLong { len, max } => {
                write!(
                    f,
                    "control message of {len} bytes exceeds the {max}-byte limit"
                )
            }
            EncodeError::Serialize(e) => write!(f, "control message did not serialize: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Appends one framed message to `out`. On error `out` is unchanged.
pub fn encode(message: &Message, max_len: usize, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let payload = postcard::to_allocvec(message).map_err(EncodeError::Serialize)?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|_| payload.len() <= max_len)
        .ok_or(EncodeError::TooLong {
            len: payload.len(),
            max: max_len,
        })?;
    out.reserve(HEADER_LEN + payload.len());
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// Why a byte stream is not a sequence of control frames. Every one is
/// fatal to the connection: framing is lost, so the decoder stays failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame's version byte is not [`PROTOCOL_VERSION`].
    UnsupportedVersion {
        /// The version the peer sent.
        got: u8,
    },
    /// The header announced a payload longer than the limit.
    FrameTooLong {
        /// The announced length.
        len: u32,
        /// The limit.
        max: usize,
    },
    /// The payload is not a valid message (unknown tag, truncated field,
    /// invalid name or id, ...).
    Malformed(postcard::Error),
    /// A message decoded but bytes of the payload were left over.
    TrailingBytes {
        /// How many.
        unused: usize,
    },
    /// The payload decodes, but is not the one encoding this side would
    /// send for that message (an over-long varint, say: postcard accepts
    /// `90 00` for 16). Refused so every message has exactly one form on
    /// the wire and a peer cannot vary its bytes unnoticed.
    NotCanonical,
}

impl DecodeError {
    /// The code to report to the peer in a [`Message::Error`].
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            DecodeError::FrameTooLong { .. } => ErrorCode::FrameTooLong,
            DecodeError::Malformed(_)
            | DecodeError::TrailingBytes { .. }
            | DecodeError::NotCanonical => ErrorCode::Malformed,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnsupportedVersion { got } => write!(
                f,
                "control frame version {got}, this side speaks {PROTOCOL_VERSION}"
            ),
            DecodeError::FrameTooLong { len, max } => {
                write!(
                    f,
                    "control frame of {len} bytes exceeds the {max}-byte limit"
                )
            }
            DecodeError::Malformed(e) => write!(f, "malformed control message: {e}"),
            DecodeError::TrailingBytes { unused } => {
                write!(f, "{unused} bytes left over after a control message")
            }
            DecodeError::NotCanonical => {
                f.write_str("control message not in its canonical encoding")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// A streaming frame decoder fed arbitrary chunks of a byte stream.
///
/// It buffers at most one frame ([`HEADER_LEN`] + the limit) and takes
/// from the input only up to the end of the frame it is assembling, so the
/// caller keeps any further bytes (and the backpressure on them).
#[derive(Debug)]
pub struct FrameDecoder {
    max_len: usize,
    buf: Vec<u8>,
    failed: Option<DecodeError>,
}

impl FrameDecoder {
    /// A decoder refusing payloads longer than `max_len` bytes.
    pub fn new(max_len: usize) -> FrameDecoder {
        FrameDecoder {
            max_len,
            buf: Vec::new(),
            failed: None,
        }
    }

    /// Bytes held for the frame being assembled.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The most this decoder ever buffers.
    pub fn capacity_limit(&self) -> usize {
        HEADER_LEN.saturating_add(self.max_len)
    }

    /// Takes bytes from the front of `input` (advancing it) up to the end
    /// of one frame. Returns the message once a frame is complete,
    /// `Ok(None)` when `input` ran out first. After an error every later
    /// call returns the same error and takes nothing.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Message>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.step(input) {
            Err(e) => {
                self.buf = Vec::new();
                self.failed = Some(e.clone());
                Err(e)
            }
            ok => ok,
        }
    }

    fn step(&mut self, input: &mut &[u8]) -> Result<Option<Message>, DecodeError> {
        if self.buf.len() < HEADER_LEN {
            self.take(input, HEADER_LEN);
            let Some(header) = self.buf.first_chunk::<HEADER_LEN>() else {
                return Ok(None);
            };
            let [version, l0, l1, l2, l3] = *header;
            if version != PROTOCOL_VERSION {
                return Err(DecodeError::UnsupportedVersion { got: version });
            }
            let len = u32::from_be_bytes([l0, l1, l2, l3]);
            if usize::try_from(len).map_or(true, |l| l > self.max_len) {
                return Err(DecodeError::FrameTooLong {
                    len,
                    max: self.max_len,
                });
            }
        }
        let Some(&[_, l0, l1, l2, l3]) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        // Checked against max_len (a usize) above, so this fits.
        let frame_len = HEADER_LEN.saturating_add(u32::from_be_bytes([l0, l1, l2, l3]) as usize);
        self.take(input, frame_len);
        if self.buf.len() < frame_len {
            return Ok(None);
        }
        let frame = core::mem::take(&mut self.buf);
        let payload = frame.get(HEADER_LEN..).unwrap_or_default();
        let (message, rest) =
            postcard::take_from_bytes::<Message>(payload).map_err(DecodeError::Malformed)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes { unused: rest.len() });
        }
        let canonical =
            postcard::serialize_with_flavor(&message, SameBytes(payload)).unwrap_or(false);
        if !canonical {
            return Err(DecodeError::NotCanonical);
        }
        Ok(Some(message))
    }

    /// Moves bytes from `input` into the buffer until it holds `upto`.
    fn take(&mut self, input: &mut &[u8], upto: usize) {
        let want = upto.saturating_sub(self.buf.len()).min(input.len());
        let (now, later) = input.split_at(want);
        self.buf.extend_from_slice(now);
        *input = later;
    }
}

/// A postcard output that stores nothing: it checks the bytes an encoding
/// produces against `.0`, the payload a message was decoded from, failing
/// at the first difference, so the check allocates nothing. Its output is
/// whether the encoding used every byte.
struct SameBytes<'a>(&'a [u8]);

impl postcard::ser_flavors::Flavor for SameBytes<'_> {
    type Output = bool;

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        match self.0.split_first() {
            Some((&expected, rest)) if expected == byte => {
                self.0 = rest;
                Ok(())
            }
            _ => Err(postcard::Error::SerializeBufferFull),
        }
    }

    fn finalize(self) -> postcard::Result<bool> {
        Ok(self.0.is_empty())
    }
}
