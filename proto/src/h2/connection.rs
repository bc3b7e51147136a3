//! One HTTP/2 connection's state machine, for either role.
//!
//! CONTRACT NOTE (remove when implemented): the public signatures below are
//! what the interop crate and the mesh node are written against. Bodies are
//! `todo!()` until the connection lands. Private submodules (stream states,
//! flow control, rate limiters, header validation) are the implementer's.
//!
//! The host loop:
//! ```text
//! conn.handle_input(now, bytes_from_socket);
//! while let Some(ev) = conn.poll_event() { ... }
//! conn.poll_transmit(now, &mut out); write `out` to the socket
//! wake up at conn.poll_timeout() and call conn.handle_timeout(now)
//! ```

use bytes::Bytes;
use core::time::Duration;

use super::config::Config;
use super::frame::FrameRule;
use super::hpack::DecodeError;
use super::{ErrorCode, Header, StreamId};
use crate::time::Instant;

/// Which end of the connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We sent the preface and open odd streams.
    Client,
    /// We accept the preface and answer requests.
    Server,
}

/// A request head. For CONNECT (RFC 9113 §8.5) only `method` and
/// `authority` are set; ordinary requests also carry `scheme` and `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `:method`
    pub method: Bytes,
    /// `:scheme`
    pub scheme: Option<Bytes>,
    /// `:authority`
    pub authority: Option<Bytes>,
    /// `:path`
    pub path: Option<Bytes>,
    /// Regular (non-pseudo) fields, in order.
    pub headers: Vec<Header>,
}

impl Request {
    /// A CONNECT request to `authority` (e.g. `10.0.0.1:8080`).
    pub fn connect(authority: impl Into<Bytes>) -> Request {
        Request {
            method: Bytes::from_static(b"CONNECT"),
            scheme: None,
            authority: Some(authority.into()),
            path: None,
            headers: Vec::new(),
        }
    }
}

/// A response head (final, status >= 200; interim 1xx heads are skipped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// `:status`
    pub status: u16,
    /// Regular fields, in order.
    pub headers: Vec<Header>,
}

/// A protective limit of [`Config`] that the peer tripped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `max_concurrent_streams`
    ConcurrentStreams,
    /// `max_header_list_size`
    HeaderListSize,
    /// `max_continuation_frames`
    ContinuationFrames,
    /// `max_pending_accept`
    PendingAccept,
    /// `max_pending_control_frames`
    PendingControlFrames,
    /// `remote_reset_rate`
    RemoteResetRate,
    /// `local_reset_rate`
    LocalResetRate,
    /// `ping_rate`
    PingRate,
    /// `settings_rate`
    SettingsRate,
    /// `empty_frame_rate`
    EmptyFrameRate,
    /// `window_update_rate`
    WindowUpdateRate,
    /// `settings_timeout`
    SettingsTimeout,
    /// `keepalive_timeout`
    KeepaliveTimeout,
}

/// What the peer did wrong: the rule behind an RST_STREAM or GOAWAY we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The client preface was wrong.
    BadPreface,
    /// A frame broke a frame-level rule.
    Frame(FrameRule),
    /// A header block could not be decoded.
    Hpack(DecodeError),
    /// A protective limit was exceeded.
    Limit(Limit),
    /// A frame arrived that the stream's state does not allow (RFC 9113 §5.1).
    StreamState {
        /// The frame type.
        frame_kind: u8,
    },
    /// A stream id was reused or went backwards.
    StreamIdOrder,
    /// The peer sent more than a window allowed.
    FlowControlOverrun,
    /// A WINDOW_UPDATE or SETTINGS_INITIAL_WINDOW_SIZE pushed a window past 2^31-1.
    WindowOverflow,
    /// Something other than CONTINUATION arrived inside a field block.
    ExpectedContinuation,
    /// A malformed request or response (RFC 9113 §8.1.1): pseudo-headers,
    /// uppercase names, connection-specific fields, content-length mismatch.
    MalformedMessage,
    /// PUSH_PROMISE while push is disabled, or sent by a client.
    PushNotAllowed,
}

/// Something the application should know. Drained with
/// [`Connection::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer's first SETTINGS arrived; streams may be opened.
    Ready,
    /// Server: the peer opened `stream` with a request.
    Request {
        /// The new stream.
        stream: StreamId,
        /// Its head.
        request: Request,
        /// The peer already ended its side (no body).
        end_stream: bool,
    },
    /// Client: the final response to a request.
    Response {
        /// The stream.
        stream: StreamId,
        /// Its head.
        response: Response,
        /// The peer already ended its side.
        end_stream: bool,
    },
    /// Trailers; the peer's side is now finished.
    Trailers {
        /// The stream.
        stream: StreamId,
        /// The trailer fields.
        headers: Vec<Header>,
    },
    /// New payload is readable with [`Connection::recv_data`].
    Data {
        /// The stream.
        stream: StreamId,
    },
    /// The peer sent END_STREAM: after the buffered data, nothing more comes.
    PeerFinished {
        /// The stream.
        stream: StreamId,
    },
    /// The stream was reset, by the peer (`remote`) or by us because of
    /// `violation`. The stream is gone.
    Reset {
        /// The stream.
        stream: StreamId,
        /// The code sent or received.
        code: ErrorCode,
        /// True if the peer sent the RST_STREAM.
        remote: bool,
        /// Why we reset it, if we did because of the peer.
        violation: Option<Violation>,
    },
    /// Both sides finished and the stream is gone.
    StreamClosed {
        /// The stream.
        stream: StreamId,
    },
    /// `stream` can accept more data with [`Connection::send_data`] after it
    /// had returned less than asked.
    Writable {
        /// The stream.
        stream: StreamId,
    },
    /// The peer sent GOAWAY: streams above `last_stream_id` that we opened
    /// were not processed (they get `Reset` with REFUSED_STREAM); no new
    /// streams may be opened.
    GoAway {
        /// Highest stream of ours the peer may process.
        last_stream_id: StreamId,
        /// The code.
        code: ErrorCode,
        /// Debug data, as sent.
        debug_data: Bytes,
    },
    /// We end the connection because of the peer (GOAWAY sent with `code`).
    ConnectionError {
        /// The code sent.
        code: ErrorCode,
        /// The rule broken.
        violation: Violation,
        /// The frame type that broke it, if one did.
        frame_kind: Option<u8>,
    },
    /// A PING we sent was acknowledged.
    PingAck {
        /// Round trip time.
        rtt: Duration,
    },
    /// Nothing more will happen: every stream is gone and the final frames
    /// have been handed to `poll_transmit`. The host may close the socket.
    Closed,
}

/// Misuse of the API by the host (never caused by peer bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageError {
    /// No such stream, or it is closed.
    UnknownStream(StreamId),
    /// The operation does not fit the stream's state (e.g. data before
    /// headers, data after finish, a response on a client).
    InvalidState(StreamId),
    /// No new stream can be opened now: the peer's concurrency limit is
    /// reached, or a GOAWAY was sent or received.
    CannotOpenStream,
    /// Stream ids are exhausted; open a new connection.
    StreamIdsExhausted,
    /// The connection is closed.
    Closed,
}

/// One HTTP/2 connection. See the module docs for the host loop.
#[derive(Debug)]
pub struct Connection {
    _todo: (),
}

impl Connection {
    /// A new connection in `role`. A client queues the preface and SETTINGS
    /// immediately; a server queues its SETTINGS and waits for the preface.
    pub fn new(role: Role, config: Config, now: Instant) -> Connection {
        todo!("connection")
    }

    /// Feeds bytes read from the transport. Every byte is consumed; errors
    /// in them become events and GOAWAY/RST_STREAM frames, never `Err`.
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) {
        todo!("connection")
    }

    /// The transport reached EOF: streams still open are reset, `Closed`
    /// follows.
    pub fn handle_eof(&mut self, now: Instant) {
        todo!("connection")
    }

    /// Appends queued output to `out` (swapping buffers instead of copying
    /// when `out` is empty). Returns the number of bytes added.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> usize {
        todo!("connection")
    }

    /// Bytes waiting for `poll_transmit`.
    pub fn pending_transmit(&self) -> usize {
        todo!("connection")
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!("connection")
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!("connection")
    }

    /// Runs timers due at `now`: SETTINGS ack timeout, keepalive, GOAWAY grace.
    pub fn handle_timeout(&mut self, now: Instant) {
        todo!("connection")
    }

    /// Client: opens a stream with `request`. With `end_stream` the request
    /// has no body.
    pub fn send_request(
        &mut self,
        request: &Request,
        end_stream: bool,
    ) -> Result<StreamId, UsageError> {
        todo!("connection")
    }

    /// Server: answers `stream`.
    pub fn send_response(
        &mut self,
        stream: StreamId,
        response: &Response,
        end_stream: bool,
    ) -> Result<(), UsageError> {
        todo!("connection")
    }

    /// Sends trailers, which end our side of `stream`.
    pub fn send_trailers(
        &mut self,
        stream: StreamId,
        headers: &[Header],
    ) -> Result<(), UsageError> {
        todo!("connection")
    }

    /// Queues as much of `data` as the stream and connection windows and
    /// `max_send_buffer` allow, copying it once into the output. Returns the
    /// bytes accepted; when fewer than `data.len()`, `Writable` follows once
    /// more can be sent.
    pub fn send_data(&mut self, stream: StreamId, data: &[u8]) -> Result<usize, UsageError> {
        todo!("connection")
    }

    /// How many bytes `send_data` would accept now.
    pub fn send_capacity(&self, stream: StreamId) -> usize {
        todo!("connection")
    }

    /// Ends our side of `stream` (END_STREAM; a TCP half-close for CONNECT).
    pub fn finish(&mut self, stream: StreamId) -> Result<(), UsageError> {
        todo!("connection")
    }

    /// Resets `stream` with `code`.
    pub fn reset(&mut self, stream: StreamId, code: ErrorCode) -> Result<(), UsageError> {
        todo!("connection")
    }

    /// The received payload of `stream` not yet released, as one contiguous
    /// slice (empty if none).
    pub fn recv_data(&self, stream: StreamId) -> &[u8] {
        todo!("connection")
    }

    /// The application took `n` bytes of `stream`'s received payload: they
    /// are dropped from the buffer and, once enough accumulated, credited
    /// back to the peer with WINDOW_UPDATE (stream and connection).
    pub fn release_capacity(&mut self, stream: StreamId, n: usize) -> Result<(), UsageError> {
        todo!("connection")
    }

    /// Sends a PING; its ACK yields `PingAck`.
    pub fn ping(&mut self, now: Instant) {
        todo!("connection")
    }

    /// Starts a graceful shutdown: GOAWAY with last-stream-id 2^31-1 now,
    /// the real last-stream-id after `goaway_grace`; `Closed` once every
    /// remaining stream is done.
    pub fn go_away(&mut self, now: Instant) {
        todo!("connection")
    }

    /// Ends the connection at once with GOAWAY(`code`), resetting streams.
    pub fn abort(&mut self, code: ErrorCode, debug: &[u8]) {
        todo!("connection")
    }

    /// Streams currently open (any state but idle and closed).
    pub fn open_streams(&self) -> usize {
        todo!("connection")
    }

    /// True if a new stream could be opened now.
    pub fn can_open_stream(&self) -> bool {
        todo!("connection")
    }

    /// True once `Closed` has been emitted.
    pub fn is_closed(&self) -> bool {
        todo!("connection")
    }
}
