//! One HTTP/2 connection's state machine (RFC 9113), for either role.
//!
//! The host loop:
//! ```text
//! conn.handle_input(now, bytes_from_socket);
//! while let Some(ev) = conn.poll_event() { ... }
//! conn.poll_transmit(now, &mut out); write `out` to the socket
//! wake up at conn.poll_timeout() and call conn.handle_timeout(now)
//! ```
//! `Event::Closed` can become ready during `poll_transmit` (once the final
//! GOAWAY is handed over), so poll events again after transmitting.
//!
//! What the connection does on its own: the preface and SETTINGS exchange
//! (ours carry every non-default value of [`Config`] and ENABLE_PUSH=0, and
//! a WINDOW_UPDATE raises the connection window right after them), SETTINGS
//! and PING acknowledgements, keepalive PINGs, WINDOW_UPDATEs once the
//! application released half a window, stream state checks (RFC 9113 §5.1),
//! HEADERS/CONTINUATION assembly, HPACK, message validation (§8), flow
//! control in both directions, graceful and error GOAWAY, and the protective
//! limits.
//!
//! Defaults ([`Config::default`]), chosen for HBONE tunnels on a mesh:
//!
//! | setting | default | on breach |
//! |---|---|---|
//! | stream / connection receive window | 4 MiB / 16 MiB | FLOW_CONTROL_ERROR |
//! | max frame size we accept | 1 MiB | FRAME_SIZE_ERROR |
//! | max header list size | 64 KiB | 431 or RST_STREAM |
//! | concurrent peer streams | 1000 | RST_STREAM REFUSED_STREAM |
//! | peer streams not yet answered | 1000 | RST_STREAM REFUSED_STREAM |
//! | CONTINUATION frames per block | 32 | GOAWAY ENHANCE_YOUR_CALM |
//! | queued output bytes for `send_data` | 1 MiB | `send_data` accepts less |
//! | queued control frames caused by the peer | 10 000 | GOAWAY ENHANCE_YOUR_CALM |
//! | streams reset by the peer | 1000 per 10 s | GOAWAY ENHANCE_YOUR_CALM |
//! | streams we reset because of the peer | 200 per 10 s | GOAWAY ENHANCE_YOUR_CALM |
//! | PING / SETTINGS from the peer | 100 per 10 s each | GOAWAY ENHANCE_YOUR_CALM |
//! | empty DATA/HEADERS/CONTINUATION | 1000 per 10 s | GOAWAY ENHANCE_YOUR_CALM |
//! | WINDOW_UPDATE from the peer | 10 000 per 1 s | GOAWAY ENHANCE_YOUR_CALM |
//! | SETTINGS acknowledgement | 10 s | GOAWAY SETTINGS_TIMEOUT |
//! | keepalive PING after silence / answer within | 30 s / 10 s | GOAWAY NO_ERROR, closed |
//! | between the two GOAWAYs of a graceful shutdown | 1 s | |
//!
//! Streams the peer opened are refused (RST_STREAM) without an event: the
//! application never saw them. Closed streams are remembered in a bounded
//! ring ([`stream::ClosedStreams`](super::stream)), so frames the peer had in
//! flight after our RST_STREAM are ignored while frames on long-gone or
//! never-opened lower ids are a connection error.

use bytes::Bytes;
use core::ops::Bound;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::config::Config;
use super::flow::{grow, RecvWindow};
use super::frame::{encode, flag, kind, Frame, FrameDecoder, FrameError, FrameRule, SettingsList};
use super::headers::{self, Malformed};
use super::hpack::{self, DecodeError};
use super::rate::RateCounter;
use super::settings::{self, PeerSettings, DEFAULT_WINDOW};
use super::stream::{ClosedHow, ClosedStreams, DataMark, RecvPhase, SendPhase, Stream};
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
    /// The peer's first frame was not SETTINGS (RFC 9113 §3.4).
    SettingsExpected,
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
    /// Kept apart from the rest of the state because a decoded frame borrows
    /// it while the rest handles that frame.
    decoder: FrameDecoder,
    core: Core,
}

/// Everything but the frame decoder.
#[derive(Debug)]
struct Core {
    role: Role,
    config: Config,
    /// Encoded frames not yet taken by `poll_transmit`.
    out: Vec<u8>,
    /// Bumped by every `poll_transmit`: a [`DataMark`] of an older epoch
    /// points at bytes already handed out.
    out_epoch: u64,
    /// Control frames in `out` that the peer caused.
    control_queued: u32,
    events: VecDeque<Event>,
    /// Server: bytes of the client preface still to match.
    preface_left: usize,
    peer_settings_seen: bool,
    peer: PeerSettings,
    /// When our SETTINGS must have been acknowledged; `None` once they are.
    settings_deadline: Option<Instant>,
    /// The receive window new streams start with: our configured one, or
    /// the protocol default while a smaller configured one is unacknowledged.
    recv_initial_window: u32,
    hpack_decoder: hpack::Decoder,
    hpack_encoder: hpack::Encoder,
    /// Reused buffer for encoding header blocks.
    encode_scratch: Vec<u8>,
    /// What we may still send on the connection.
    send_window: i64,
    recv_window: RecvWindow,
    streams: BTreeMap<StreamId, Stream>,
    closed: ClosedStreams,
    next_local_id: u32,
    highest_peer_id: u32,
    /// Open or half-closed streams we opened / the peer opened.
    local_active: u32,
    remote_active: u32,
    /// Server: peer streams the application has not answered.
    pending_answer: u32,
    /// A field block waiting for CONTINUATION frames.
    block: Option<FieldBlock>,
    /// The DATA frame whose pieces are arriving.
    data_in: Option<DataInFlight>,
    /// PINGs sent by `ping()`, oldest first.
    pings: VecDeque<([u8; 8], Instant)>,
    keepalive_ping: Option<([u8; 8], Instant)>,
    ping_seq: u64,
    last_input: Instant,
    shutdown: Shutdown,
    /// Last-stream-id of the latest GOAWAY we sent.
    goaway_sent: Option<StreamId>,
    /// When the second GOAWAY of a graceful shutdown is due.
    grace_deadline: Option<Instant>,
    final_goaway_sent: bool,
    goaway_received: Option<StreamId>,
    closed_emitted: bool,
    /// Streams whose `send_data` was short-changed, waiting for `Writable`.
    writable_waiters: BTreeSet<StreamId>,
    limits: Limits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shutdown {
    Running,
    /// A GOAWAY was sent or received: no new streams of ours, the rest finish.
    Draining,
    /// Nothing more is processed; `Closed` follows once `out` is handed over.
    Done,
}

#[derive(Debug)]
struct FieldBlock {
    stream: StreamId,
    end_stream: bool,
    buf: Vec<u8>,
    continuations: u32,
}

#[derive(Debug)]
struct DataInFlight {
    /// False when the frame's payload is dropped (stream closed or reset).
    keep: bool,
    /// Payload bytes of the frame so far (padding excluded).
    payload: usize,
}

#[derive(Debug)]
struct Limits {
    remote_reset: RateCounter,
    local_reset: RateCounter,
    ping: RateCounter,
    settings: RateCounter,
    empty_frame: RateCounter,
    window_update: RateCounter,
}

/// A connection error: what goes into GOAWAY and `Event::ConnectionError`.
#[derive(Clone, Copy, Debug)]
struct ConnError {
    code: ErrorCode,
    violation: Violation,
    frame_kind: Option<u8>,
}

impl ConnError {
    fn new(code: ErrorCode, violation: Violation, frame_kind: u8) -> ConnError {
        ConnError {
            code,
            violation,
            frame_kind: Some(frame_kind),
        }
    }

    fn calm(limit: Limit, frame_kind: u8) -> ConnError {
        ConnError::new(
            ErrorCode::ENHANCE_YOUR_CALM,
            Violation::Limit(limit),
            frame_kind,
        )
    }

    fn protocol(violation: Violation, frame_kind: u8) -> ConnError {
        ConnError::new(ErrorCode::PROTOCOL_ERROR, violation, frame_kind)
    }
}

type Handled = Result<(), ConnError>;

/// One piece of a DATA frame, as the decoder hands it out.
struct DataPiece<'a> {
    stream: StreamId,
    data: &'a [u8],
    flow_len: u32,
    first: bool,
    last: bool,
    end_stream: bool,
}

/// Memory of closed streams: enough to cover the frames a peer can have in
/// flight after we reset a burst of streams.
const CLOSED_STREAMS_REMEMBERED: usize = 1024;
/// `ping()` PINGs remembered for matching their ACKs.
const PINGS_REMEMBERED: usize = 16;

fn kind_of(frame: &Frame<'_>) -> u8 {
    match frame {
        Frame::Data { .. } => kind::DATA,
        Frame::Headers { .. } => kind::HEADERS,
        Frame::Priority { .. } => kind::PRIORITY,
        Frame::RstStream { .. } => kind::RST_STREAM,
        Frame::Settings { .. } => kind::SETTINGS,
        Frame::PushPromise { .. } => kind::PUSH_PROMISE,
        Frame::Ping { .. } => kind::PING,
        Frame::GoAway { .. } => kind::GOAWAY,
        Frame::WindowUpdate { .. } => kind::WINDOW_UPDATE,
        Frame::Continuation { .. } => kind::CONTINUATION,
        Frame::Unknown { header, .. } => header.kind,
    }
}

fn window_of(n: u32) -> i64 {
    i64::from(n)
}

impl Connection {
    /// A new connection in `role`. A client queues the preface and SETTINGS
    /// immediately; a server queues its SETTINGS and waits for the preface.
    pub fn new(role: Role, config: Config, now: Instant) -> Connection {
        let config = settings::clamp(config);
        let mut out = Vec::new();
        if role == Role::Client {
            out.extend_from_slice(super::frame::PREFACE);
        }
        encode::settings(&mut out, false, &settings::local_settings(&config));
        let connection_target = config.initial_connection_window.max(DEFAULT_WINDOW);
        if connection_target > DEFAULT_WINDOW {
            encode::window_update(
                &mut out,
                StreamId::CONNECTION,
                connection_target - DEFAULT_WINDOW,
            );
        }
        // Larger limits apply at once (the peer can only use them after it
        // saw our SETTINGS); smaller ones only once acknowledged.
        let default_table = hpack::DEFAULT_TABLE_SIZE as u32;
        let mut hpack_decoder =
            hpack::Decoder::new(config.header_table_size.max(default_table) as usize);
        hpack_decoder.set_max_string_len(config.max_header_list_size as usize);
        let mut hpack_encoder = hpack::Encoder::new();
        if config.max_encoder_table_size < default_table {
            hpack_encoder.set_max_table_size(config.max_encoder_table_size as usize);
        }
        let limits = Limits {
            remote_reset: RateCounter::new(config.remote_reset_rate),
            local_reset: RateCounter::new(config.local_reset_rate),
            ping: RateCounter::new(config.ping_rate),
            settings: RateCounter::new(config.settings_rate),
            empty_frame: RateCounter::new(config.empty_frame_rate),
            window_update: RateCounter::new(config.window_update_rate),
        };
        let core = Core {
            role,
            out,
            out_epoch: 0,
            control_queued: 0,
            events: VecDeque::new(),
            preface_left: if role == Role::Server {
                super::frame::PREFACE.len()
            } else {
                0
            },
            peer_settings_seen: false,
            peer: PeerSettings::default(),
            settings_deadline: Some(now + config.settings_timeout),
            recv_initial_window: config.initial_stream_window.max(DEFAULT_WINDOW),
            hpack_decoder,
            hpack_encoder,
            encode_scratch: Vec::new(),
            send_window: window_of(DEFAULT_WINDOW),
            recv_window: RecvWindow::new(
                window_of(connection_target),
                window_of(connection_target),
            ),
            streams: BTreeMap::new(),
            closed: ClosedStreams::new(CLOSED_STREAMS_REMEMBERED),
            next_local_id: if role == Role::Client { 1 } else { 2 },
            highest_peer_id: 0,
            local_active: 0,
            remote_active: 0,
            pending_answer: 0,
            block: None,
            data_in: None,
            pings: VecDeque::new(),
            keepalive_ping: None,
            ping_seq: 0,
            last_input: now,
            shutdown: Shutdown::Running,
            goaway_sent: None,
            grace_deadline: None,
            final_goaway_sent: false,
            goaway_received: None,
            closed_emitted: false,
            writable_waiters: BTreeSet::new(),
            limits,
            config,
        };
        Connection {
            decoder: FrameDecoder::new(core.config.max_frame_size),
            core,
        }
    }

    /// Feeds bytes read from the transport. Every byte is consumed; errors
    /// in them become events and GOAWAY/RST_STREAM frames, never `Err`.
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) {
        let core = &mut self.core;
        if core.shutdown == Shutdown::Done || input.is_empty() {
            return;
        }
        core.last_input = now;
        let mut rest = input;
        if core.preface_left > 0 {
            if let Err(e) = core.match_preface(&mut rest) {
                core.fail(e);
                return;
            }
        }
        // Frames decoded without consuming input in a row; a decoder that
        // keeps doing so has a bug, and must not spin us forever.
        let mut stalled = 0;
        while !rest.is_empty() && self.core.shutdown != Shutdown::Done {
            let mut cursor: &[u8] = rest;
            let before = cursor.len();
            let (result, more) = match self.decoder.decode(&mut cursor) {
                Ok(Some(frame)) => (self.core.on_frame(now, frame), true),
                Ok(None) => (Ok(()), false),
                Err(e) => (self.core.on_frame_error(now, e), true),
            };
            let used = before - cursor.len();
            rest = rest.get(used..).unwrap_or_default();
            if let Err(e) = result {
                self.core.fail(e);
            }
            if !more {
                break;
            }
            stalled = if used == 0 { stalled + 1 } else { 0 };
            if stalled > 2 {
                self.core.fail(ConnError {
                    code: ErrorCode::INTERNAL_ERROR,
                    violation: Violation::StreamState { frame_kind: 0xff },
                    frame_kind: None,
                });
            }
        }
        self.core.check_drained();
    }

    /// The transport reached EOF: streams still open are reset, `Closed`
    /// follows.
    pub fn handle_eof(&mut self, now: Instant) {
        let _ = now;
        let core = &mut self.core;
        if core.shutdown == Shutdown::Done {
            return;
        }
        core.reset_all(ErrorCode::CANCEL, true, None);
        // Nobody is left to read what we had queued.
        core.out.clear();
        core.enter_done();
    }

    /// Appends queued output to `out` (swapping buffers instead of copying
    /// when `out` is empty). Returns the number of bytes added.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> usize {
        let _ = now;
        let core = &mut self.core;
        core.check_drained();
        let n = core.out.len();
        if n > 0 {
            if out.is_empty() {
                core::mem::swap(out, &mut core.out);
            } else {
                out.extend_from_slice(&core.out);
                core.out.clear();
            }
            core.out_epoch += 1;
            core.control_queued = 0;
            core.wake_writable();
        }
        core.maybe_closed();
        n
    }

    /// Bytes waiting for `poll_transmit`.
    pub fn pending_transmit(&self) -> usize {
        self.core.out.len()
    }

    /// Bytes of peer input held inside the connection: partial frames,
    /// an unfinished field block and unreleased stream payload. With
    /// [`pending_transmit`](Self::pending_transmit) this is the memory a
    /// peer can make the connection hold.
    pub fn buffered_bytes(&self) -> usize {
        let core = &self.core;
        self.decoder.buffered()
            + core.block.as_ref().map_or(0, |b| b.buf.len())
            + core.streams.values().map(|s| s.buf.len()).sum::<usize>()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let core = &mut self.core;
        if core.events.is_empty() {
            core.check_drained();
            core.maybe_closed();
        }
        let event = core.events.pop_front()?;
        if let Event::Data { stream } = event {
            if let Some(s) = core.streams.get_mut(&stream) {
                s.data_event_queued = false;
            }
        }
        Some(event)
    }

    /// When `handle_timeout` must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let core = &self.core;
        if core.shutdown == Shutdown::Done {
            return None;
        }
        [
            core.settings_deadline,
            core.keepalive_deadline(),
            core.grace_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs timers due at `now`: SETTINGS ack timeout, keepalive, GOAWAY grace.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
    }

    /// Client: opens a stream with `request`. With `end_stream` the request
    /// has no body.
    pub fn send_request(
        &mut self,
        request: &Request,
        end_stream: bool,
    ) -> Result<StreamId, UsageError> {
        let core = &mut self.core;
        if core.shutdown == Shutdown::Done {
            return Err(UsageError::Closed);
        }
        if core.next_local_id > StreamId::MAX.get() {
            return Err(UsageError::StreamIdsExhausted);
        }
        if !core.can_open_stream() {
            return Err(UsageError::CannotOpenStream);
        }
        let id = StreamId::new(core.next_local_id);
        core.next_local_id += 2;
        let pseudo = headers::request_pseudo(request);
        core.write_headers(id, &pseudo, &request.headers, end_stream);
        let mut stream = Stream::new(
            if end_stream {
                SendPhase::Done
            } else {
                SendPhase::Body
            },
            RecvPhase::Head,
            window_of(core.peer.initial_window_size),
            core.new_recv_window(),
        );
        stream.body_unchecked = &request.method[..] == b"HEAD" || &request.method[..] == b"CONNECT";
        core.streams.insert(id, stream);
        core.local_active += 1;
        Ok(id)
    }

    /// Server: answers `stream`. A 1xx status sends an interim head (then
    /// `end_stream` must be false) and the final answer still follows.
    pub fn send_response(
        &mut self,
        stream: StreamId,
        response: &Response,
        end_stream: bool,
    ) -> Result<(), UsageError> {
        let core = &mut self.core;
        let interim = response.status < 200;
        let s = core.usable_stream(stream)?;
        if core.role != Role::Server || s.send != SendPhase::Head || interim && end_stream {
            return Err(UsageError::InvalidState(stream));
        }
        core.write_headers(
            stream,
            &[headers::status_field(response.status)],
            &response.headers,
            end_stream,
        );
        if interim {
            return Ok(());
        }
        if let Some(s) = core.streams.get_mut(&stream) {
            s.send = if end_stream {
                SendPhase::Done
            } else {
                SendPhase::Body
            };
            if s.awaiting_answer {
                s.awaiting_answer = false;
                core.pending_answer -= 1;
            }
        }
        core.close_if_finished(stream);
        Ok(())
    }

    /// Sends trailers, which end our side of `stream`.
    pub fn send_trailers(
        &mut self,
        stream: StreamId,
        headers: &[Header],
    ) -> Result<(), UsageError> {
        let core = &mut self.core;
        if core.usable_stream(stream)?.send != SendPhase::Body {
            return Err(UsageError::InvalidState(stream));
        }
        core.write_headers(stream, &[], headers, true);
        core.end_local(stream);
        Ok(())
    }

    /// Queues as much of `data` as the stream and connection windows and
    /// `max_send_buffer` allow, copying it once into the output. Returns the
    /// bytes accepted; when fewer than `data.len()`, `Writable` follows once
    /// more can be sent.
    pub fn send_data(&mut self, stream: StreamId, data: &[u8]) -> Result<usize, UsageError> {
        let core = &mut self.core;
        let capacity = core.capacity_of(stream)?;
        let n = capacity.min(data.len());
        if n < data.len() {
            core.writable_waiters.insert(stream);
        }
        let Some(payload) = data.get(..n).filter(|p| !p.is_empty()) else {
            return Ok(0);
        };
        let max_frame = (core.peer.max_frame_size as usize).max(1);
        let epoch = core.out_epoch;
        let out = &mut core.out;
        let Some(s) = core.streams.get_mut(&stream) else {
            return Err(UsageError::UnknownStream(stream));
        };
        out.reserve(n + super::frame::HEADER_LEN * n.div_ceil(max_frame));
        for chunk in payload.chunks(max_frame) {
            let offset = out.len();
            encode::data_header(out, stream, chunk.len() as u32, false);
            out.extend_from_slice(chunk);
            s.last_data = Some(DataMark { epoch, offset });
        }
        let sent = n as i64;
        s.send_window -= sent;
        core.send_window -= sent;
        debug_assert!(s.send_window >= 0 && core.send_window >= 0);
        Ok(n)
    }

    /// How many bytes `send_data` would accept now.
    pub fn send_capacity(&self, stream: StreamId) -> usize {
        self.core.capacity_of(stream).unwrap_or(0)
    }

    /// Ends our side of `stream` (END_STREAM; a TCP half-close for CONNECT).
    pub fn finish(&mut self, stream: StreamId) -> Result<(), UsageError> {
        let core = &mut self.core;
        let s = core.usable_stream(stream)?;
        if s.send != SendPhase::Body {
            return Err(UsageError::InvalidState(stream));
        }
        // The stream's last DATA frame, if not handed out yet, can carry the
        // flag itself. Frames queued after it belong to other streams or are
        // this stream's WINDOW_UPDATEs, which may follow END_STREAM.
        let flags_at = s
            .last_data
            .filter(|mark| mark.epoch == core.out_epoch)
            .map(|mark| mark.offset + 4);
        match flags_at.and_then(|at| core.out.get_mut(at)) {
            Some(flags) => *flags |= flag::END_STREAM,
            None => encode::data_header(&mut core.out, stream, 0, true),
        }
        core.end_local(stream);
        Ok(())
    }

    /// Resets `stream` with `code`.
    pub fn reset(&mut self, stream: StreamId, code: ErrorCode) -> Result<(), UsageError> {
        let core = &mut self.core;
        if core.shutdown == Shutdown::Done {
            return Err(UsageError::Closed);
        }
        let s = core
            .streams
            .get(&stream)
            .ok_or(UsageError::UnknownStream(stream))?;
        if s.is_active() {
            encode::rst_stream(&mut core.out, stream, code);
            core.closed.insert(stream.get(), ClosedHow::ResetByUs);
        }
        core.remove_stream(stream);
        Ok(())
    }

    /// The received payload of `stream` not yet released, as one contiguous
    /// slice (empty if none).
    pub fn recv_data(&self, stream: StreamId) -> &[u8] {
        self.core
            .streams
            .get(&stream)
            .map_or(&[], |s| s.buf.as_slice())
    }

    /// The application took `n` bytes of `stream`'s received payload: they
    /// are dropped from the buffer and, once enough accumulated, credited
    /// back to the peer with WINDOW_UPDATE (stream and connection).
    pub fn release_capacity(&mut self, stream: StreamId, n: usize) -> Result<(), UsageError> {
        let core = &mut self.core;
        let done = core.shutdown == Shutdown::Done;
        let s = core
            .streams
            .get_mut(&stream)
            .ok_or(UsageError::UnknownStream(stream))?;
        if n > s.buf.len() {
            return Err(UsageError::InvalidState(stream));
        }
        s.buf.release(n);
        // A finished peer sends nothing more on the stream: no stream credit.
        if s.recv != RecvPhase::Done && !done {
            if let Some(increment) = s.recv_window.release(n) {
                encode::window_update(&mut core.out, stream, increment);
            }
        }
        if !s.is_active() && s.buf.len() == 0 {
            core.streams.remove(&stream);
        }
        core.credit_connection(n);
        Ok(())
    }

    /// Sends a PING; its ACK yields `PingAck`.
    pub fn ping(&mut self, now: Instant) {
        let core = &mut self.core;
        if core.shutdown == Shutdown::Done {
            return;
        }
        let payload = core.next_ping_payload();
        encode::ping(&mut core.out, false, payload);
        core.pings.push_back((payload, now));
        if core.pings.len() > PINGS_REMEMBERED {
            core.pings.pop_front();
        }
    }

    /// Starts a graceful shutdown: GOAWAY with last-stream-id 2^31-1 now,
    /// the real last-stream-id after `goaway_grace`; `Closed` once every
    /// remaining stream is done.
    pub fn go_away(&mut self, now: Instant) {
        let core = &mut self.core;
        if core.shutdown == Shutdown::Done || core.goaway_sent.is_some() {
            return;
        }
        encode::goaway(&mut core.out, StreamId::MAX, ErrorCode::NO_ERROR, &[]);
        core.goaway_sent = Some(StreamId::MAX);
        core.grace_deadline = Some(now + core.config.goaway_grace);
        core.shutdown = Shutdown::Draining;
    }

    /// Ends the connection at once with GOAWAY(`code`), resetting streams.
    pub fn abort(&mut self, code: ErrorCode, debug: &[u8]) {
        let core = &mut self.core;
        if core.shutdown == Shutdown::Done {
            return;
        }
        let last = StreamId::new(core.highest_peer_id);
        encode::goaway(&mut core.out, last, code, debug);
        core.reset_all(code, false, None);
        core.enter_done();
    }

    /// Streams currently open (any state but idle and closed).
    pub fn open_streams(&self) -> usize {
        (self.core.local_active + self.core.remote_active) as usize
    }

    /// True if a new stream could be opened now.
    pub fn can_open_stream(&self) -> bool {
        self.core.can_open_stream()
    }

    /// True once `Closed` has been emitted.
    pub fn is_closed(&self) -> bool {
        self.core.closed_emitted
    }
}

impl Core {
    // ----- input: preface and frame dispatch -----

    fn match_preface(&mut self, input: &mut &[u8]) -> Handled {
        let preface = super::frame::PREFACE;
        let offset = preface.len() - self.preface_left;
        let expected = preface.get(offset..).unwrap_or_default();
        let n = expected.len().min(input.len());
        let (head, tail) = input.split_at(n);
        if expected.get(..n) != Some(head) {
            return Err(ConnError {
                code: ErrorCode::PROTOCOL_ERROR,
                violation: Violation::BadPreface,
                frame_kind: None,
            });
        }
        self.preface_left -= n;
        *input = tail;
        Ok(())
    }

    fn on_frame(&mut self, now: Instant, frame: Frame<'_>) -> Handled {
        let frame_kind = kind_of(&frame);
        if !self.peer_settings_seen && !matches!(frame, Frame::Settings { ack: false, .. }) {
            return Err(ConnError::protocol(Violation::SettingsExpected, frame_kind));
        }
        if self.block.is_some() && frame_kind != kind::CONTINUATION {
            return Err(ConnError::protocol(
                Violation::ExpectedContinuation,
                frame_kind,
            ));
        }
        match frame {
            Frame::Data {
                stream_id,
                data,
                flow_len,
                first,
                last,
                end_stream,
            } => self.on_data(
                now,
                DataPiece {
                    stream: stream_id,
                    data,
                    flow_len,
                    first,
                    last,
                    end_stream,
                },
            ),
            Frame::Headers {
                stream_id,
                end_stream,
                end_headers,
                fragment,
                ..
            } => self.on_headers(now, stream_id, end_stream, end_headers, fragment),
            Frame::Continuation {
                stream_id,
                end_headers,
                fragment,
            } => self.on_continuation(now, stream_id, end_headers, fragment),
            // PRIORITY is deprecated (RFC 9113 §5.3.2) and may name any
            // stream; unknown frame types must be ignored (§5.5).
            Frame::Priority { .. } | Frame::Unknown { .. } => Ok(()),
            Frame::RstStream {
                stream_id,
                error_code,
            } => self.on_rst_stream(now, stream_id, error_code),
            Frame::Settings { ack: true, .. } => {
                self.on_settings_ack();
                Ok(())
            }
            Frame::Settings {
                ack: false,
                settings,
            } => self.on_settings(now, settings),
            Frame::PushPromise { .. } => Err(ConnError::protocol(
                Violation::PushNotAllowed,
                kind::PUSH_PROMISE,
            )),
            Frame::Ping { ack, payload } => self.on_ping(now, ack, payload),
            Frame::GoAway {
                last_stream_id,
                error_code,
                debug_data,
            } => {
                self.on_goaway(last_stream_id, error_code, debug_data);
                Ok(())
            }
            Frame::WindowUpdate {
                stream_id,
                increment,
            } => self.on_window_update(now, stream_id, increment),
        }
    }

    fn on_frame_error(&mut self, now: Instant, e: FrameError) -> Handled {
        let violation = Violation::Frame(e.rule);
        if e.is_connection_error() {
            return Err(ConnError::new(e.code, violation, e.frame_kind));
        }
        if !self.peer_settings_seen {
            return Err(ConnError::protocol(
                Violation::SettingsExpected,
                e.frame_kind,
            ));
        }
        if self.block.is_some() && e.frame_kind != kind::CONTINUATION {
            return Err(ConnError::protocol(
                Violation::ExpectedContinuation,
                e.frame_kind,
            ));
        }
        let id = e.stream_id;
        if e.frame_kind == kind::HEADERS
            && self.is_peer_initiated(id)
            && id.get() > self.highest_peer_id
        {
            // The stream went from idle to closed.
            self.highest_peer_id = id.get();
        }
        self.stream_error(now, id, e.code, violation, e.frame_kind)
    }

    // ----- stream identity -----

    fn is_peer_initiated(&self, id: StreamId) -> bool {
        match self.role {
            Role::Server => id.is_client_initiated(),
            Role::Client => id.is_server_initiated(),
        }
    }

    /// Idle: never opened (RFC 9113 §5.1.1: ids only go up).
    fn is_idle(&self, id: StreamId) -> bool {
        if self.is_peer_initiated(id) {
            id.get() > self.highest_peer_id
        } else {
            id.get() >= self.next_local_id
        }
    }

    fn new_recv_window(&self) -> RecvWindow {
        let initial = window_of(self.recv_initial_window);
        RecvWindow::new(initial, initial)
    }

    // ----- DATA -----

    fn on_data(&mut self, now: Instant, piece: DataPiece<'_>) -> Handled {
        if piece.first {
            let keep = self.accept_data(now, piece.stream)?;
            self.data_in = Some(DataInFlight { keep, payload: 0 });
        }
        // Every DATA byte counts against the connection window, whatever
        // becomes of the stream.
        if !self.recv_window.consume(piece.flow_len) {
            return Err(ConnError::new(
                ErrorCode::FLOW_CONTROL_ERROR,
                Violation::FlowControlOverrun,
                kind::DATA,
            ));
        }
        let mut keep = false;
        if let Some(d) = self.data_in.as_mut() {
            d.payload = d.payload.saturating_add(piece.data.len());
            keep = d.keep;
        }
        if keep {
            keep = self.buffer_data(now, &piece)?;
            if let Some(d) = self.data_in.as_mut() {
                d.keep = keep;
            }
        } else {
            self.credit_connection(piece.flow_len as usize);
        }
        if piece.last {
            let payload = self.data_in.take().map_or(0, |d| d.payload);
            if payload == 0 && !piece.end_stream {
                self.count_empty_frame(now, kind::DATA)?;
            }
            if keep && piece.end_stream {
                self.end_remote(now, piece.stream, kind::DATA)?;
            }
        }
        Ok(())
    }

    /// Decides, on a DATA frame's first piece, whether its payload goes to
    /// the stream (`true`) or is dropped.
    fn accept_data(&mut self, now: Instant, id: StreamId) -> Result<bool, ConnError> {
        let state_error = Violation::StreamState {
            frame_kind: kind::DATA,
        };
        if let Some(stream) = self.streams.get(&id) {
            return match stream.recv {
                RecvPhase::Body => Ok(true),
                RecvPhase::Head => {
                    // A response must start with HEADERS.
                    self.stream_error(now, id, ErrorCode::PROTOCOL_ERROR, state_error, kind::DATA)?;
                    Ok(false)
                }
                RecvPhase::Done if stream.is_active() => {
                    self.stream_error(now, id, ErrorCode::STREAM_CLOSED, state_error, kind::DATA)?;
                    Ok(false)
                }
                RecvPhase::Done => Err(ConnError::new(
                    ErrorCode::STREAM_CLOSED,
                    state_error,
                    kind::DATA,
                )),
            };
        }
        if self.is_idle(id) {
            return Err(ConnError::protocol(state_error, kind::DATA));
        }
        match self.closed.get(id.get()) {
            Some(ClosedHow::ResetByPeer) => {
                self.stream_error(now, id, ErrorCode::STREAM_CLOSED, state_error, kind::DATA)?;
                Ok(false)
            }
            Some(ClosedHow::Finished) => Err(ConnError::new(
                ErrorCode::STREAM_CLOSED,
                state_error,
                kind::DATA,
            )),
            // Ours to ignore: frames the peer sent before it saw our reset.
            Some(ClosedHow::ResetByUs) | None => Ok(false),
        }
    }

    /// Copies a DATA piece into its stream. `false` when the stream had to
    /// be reset instead.
    fn buffer_data(&mut self, now: Instant, piece: &DataPiece<'_>) -> Result<bool, ConnError> {
        let id = piece.stream;
        let Some(stream) = self.streams.get_mut(&id) else {
            self.credit_connection(piece.flow_len as usize);
            return Ok(false);
        };
        let violation = if !stream.recv_window.consume(piece.flow_len) {
            Some((ErrorCode::FLOW_CONTROL_ERROR, Violation::FlowControlOverrun))
        } else {
            stream.received = stream.received.saturating_add(piece.data.len() as u64);
            stream
                .content_length
                .is_some_and(|length| stream.received > length)
                .then_some((ErrorCode::PROTOCOL_ERROR, Violation::MalformedMessage))
        };
        if let Some((code, violation)) = violation {
            self.credit_connection(piece.flow_len as usize);
            self.stream_error(now, id, code, violation, kind::DATA)?;
            return Ok(false);
        }
        stream.buf.push(piece.data);
        debug_assert!(stream.recv_window.available() <= super::flow::MAX_WINDOW);
        debug_assert!(
            stream.buf.len() <= self.config.initial_stream_window.max(DEFAULT_WINDOW) as usize
        );
        if !piece.data.is_empty() && !stream.data_event_queued {
            stream.data_event_queued = true;
            self.events.push_back(Event::Data { stream: id });
        }
        // Padding is never read by anyone: credit it back at once.
        let padding = (piece.flow_len as usize).saturating_sub(piece.data.len());
        if padding > 0 {
            if let Some(increment) = stream.recv_window.release(padding) {
                encode::window_update(&mut self.out, id, increment);
            }
            self.credit_connection(padding);
        }
        Ok(true)
    }

    /// The peer's END_STREAM arrived on a stream in the map (DATA).
    fn end_remote(&mut self, now: Instant, id: StreamId, frame_kind: u8) -> Handled {
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if stream
            .content_length
            .is_some_and(|length| length != stream.received)
        {
            return self.stream_error(
                now,
                id,
                ErrorCode::PROTOCOL_ERROR,
                Violation::MalformedMessage,
                frame_kind,
            );
        }
        stream.recv = RecvPhase::Done;
        self.events.push_back(Event::PeerFinished { stream: id });
        self.close_if_finished(id);
        Ok(())
    }

    fn count_empty_frame(&mut self, now: Instant, frame_kind: u8) -> Handled {
        if self.limits.empty_frame.record(now) {
            Ok(())
        } else {
            Err(ConnError::calm(Limit::EmptyFrameRate, frame_kind))
        }
    }

    /// Gives `n` bytes back to the connection window (WINDOW_UPDATE once
    /// enough accumulated).
    fn credit_connection(&mut self, n: usize) {
        if n == 0 || self.shutdown == Shutdown::Done {
            return;
        }
        if let Some(increment) = self.recv_window.release(n) {
            encode::window_update(&mut self.out, StreamId::CONNECTION, increment);
        }
    }

    // ----- HEADERS and CONTINUATION -----

    /// The largest field block we assemble. A block encodes each field in
    /// at most about its RFC 9113 size, so twice the header list limit plus
    /// room for table size updates is generous for honest peers.
    fn max_block_size(&self) -> usize {
        (self.config.max_header_list_size as usize)
            .saturating_mul(2)
            .saturating_add(4096)
    }

    fn on_headers(
        &mut self,
        now: Instant,
        id: StreamId,
        end_stream: bool,
        end_headers: bool,
        fragment: &[u8],
    ) -> Handled {
        if end_headers {
            return self.on_field_block(now, id, end_stream, fragment);
        }
        if fragment.is_empty() {
            self.count_empty_frame(now, kind::HEADERS)?;
        }
        if fragment.len() > self.max_block_size() {
            return Err(ConnError::calm(Limit::HeaderListSize, kind::HEADERS));
        }
        self.block = Some(FieldBlock {
            stream: id,
            end_stream,
            buf: fragment.to_vec(),
            continuations: 0,
        });
        Ok(())
    }

    fn on_continuation(
        &mut self,
        now: Instant,
        id: StreamId,
        end_headers: bool,
        fragment: &[u8],
    ) -> Handled {
        let max_size = self.max_block_size();
        let max_frames = self.config.max_continuation_frames;
        let Some(block) = self.block.as_mut() else {
            return Err(ConnError::protocol(
                Violation::StreamState {
                    frame_kind: kind::CONTINUATION,
                },
                kind::CONTINUATION,
            ));
        };
        if block.stream != id {
            return Err(ConnError::protocol(
                Violation::ExpectedContinuation,
                kind::CONTINUATION,
            ));
        }
        block.continuations += 1;
        if block.continuations > max_frames {
            return Err(ConnError::calm(
                Limit::ContinuationFrames,
                kind::CONTINUATION,
            ));
        }
        if block.buf.len().saturating_add(fragment.len()) > max_size {
            return Err(ConnError::calm(Limit::HeaderListSize, kind::CONTINUATION));
        }
        block.buf.extend_from_slice(fragment);
        if !end_headers {
            if fragment.is_empty() {
                self.count_empty_frame(now, kind::CONTINUATION)?;
            }
            return Ok(());
        }
        match self.block.take() {
            Some(block) => self.on_field_block(now, block.stream, block.end_stream, &block.buf),
            None => Ok(()),
        }
    }

    /// A complete field block: decode it (always, to keep the HPACK context
    /// in sync), then apply it to its stream.
    fn on_field_block(
        &mut self,
        now: Instant,
        id: StreamId,
        end_stream: bool,
        block: &[u8],
    ) -> Handled {
        let mut fields = Vec::new();
        let max_list = self.config.max_header_list_size as usize;
        let too_large = match self.hpack_decoder.decode(block, max_list, &mut fields) {
            Ok(()) => false,
            Err(DecodeError::HeaderListTooLarge { .. }) => true,
            Err(e) => {
                return Err(ConnError::new(
                    ErrorCode::COMPRESSION_ERROR,
                    Violation::Hpack(e),
                    kind::HEADERS,
                ))
            }
        };
        let state_error = Violation::StreamState {
            frame_kind: kind::HEADERS,
        };
        if self.streams.contains_key(&id) {
            return self.on_stream_headers(now, id, end_stream, fields, too_large);
        }
        if self.is_idle(id) {
            if self.role == Role::Server && self.is_peer_initiated(id) {
                return self.open_peer_stream(now, id, end_stream, fields, too_large);
            }
            // A client-opened stream with an even id, a server opening a
            // stream (push is off), or one of our ids we never used.
            return Err(ConnError::protocol(state_error, kind::HEADERS));
        }
        match self.closed.get(id.get()) {
            Some(ClosedHow::ResetByUs) => Ok(()),
            Some(ClosedHow::ResetByPeer) => self.stream_error(
                now,
                id,
                ErrorCode::STREAM_CLOSED,
                state_error,
                kind::HEADERS,
            ),
            Some(ClosedHow::Finished) => Err(ConnError::new(
                ErrorCode::STREAM_CLOSED,
                state_error,
                kind::HEADERS,
            )),
            None if self.is_peer_initiated(id) => {
                Err(ConnError::protocol(Violation::StreamIdOrder, kind::HEADERS))
            }
            None => Ok(()),
        }
    }

    /// Server: HEADERS opening a new peer stream.
    fn open_peer_stream(
        &mut self,
        now: Instant,
        id: StreamId,
        end_stream: bool,
        fields: Vec<Header>,
        too_large: bool,
    ) -> Handled {
        self.highest_peer_id = id.get();
        if self.goaway_sent.is_some_and(|last| id > last) {
            // After our final GOAWAY: not processed, ignored (RFC 9113 §6.8).
            return Ok(());
        }
        if too_large {
            return self.answer_too_large(now, id, end_stream);
        }
        let Ok(parsed) = headers::parse_request(fields) else {
            return self.stream_error(
                now,
                id,
                ErrorCode::PROTOCOL_ERROR,
                Violation::MalformedMessage,
                kind::HEADERS,
            );
        };
        let refuse = |limit| Some((ErrorCode::REFUSED_STREAM, Violation::Limit(limit)));
        let problem = if self.remote_active >= self.config.max_concurrent_streams {
            refuse(Limit::ConcurrentStreams)
        } else if self.pending_answer >= self.config.max_pending_accept {
            refuse(Limit::PendingAccept)
        } else if end_stream && parsed.content_length.is_some_and(|l| l != 0) {
            Some((ErrorCode::PROTOCOL_ERROR, Violation::MalformedMessage))
        } else {
            None
        };
        if let Some((code, violation)) = problem {
            return self.stream_error(now, id, code, violation, kind::HEADERS);
        }
        let connect = &parsed.request.method[..] == b"CONNECT";
        let mut stream = Stream::new(
            SendPhase::Head,
            if end_stream {
                RecvPhase::Done
            } else {
                RecvPhase::Body
            },
            window_of(self.peer.initial_window_size),
            self.new_recv_window(),
        );
        stream.body_unchecked = connect;
        stream.content_length = parsed.content_length.filter(|_| !connect);
        stream.awaiting_answer = true;
        self.streams.insert(id, stream);
        self.remote_active += 1;
        self.pending_answer += 1;
        self.events.push_back(Event::Request {
            stream: id,
            request: parsed.request,
            end_stream,
        });
        Ok(())
    }

    /// Server: a request whose header list exceeds our limit gets 431 and,
    /// if the client is still sending, RST_STREAM(NO_ERROR) (RFC 9113 §8.1).
    fn answer_too_large(&mut self, now: Instant, id: StreamId, end_stream: bool) -> Handled {
        self.write_headers(id, &[headers::status_field(431)], &[], true);
        if !end_stream {
            encode::rst_stream(&mut self.out, id, ErrorCode::NO_ERROR);
        }
        self.closed.insert(id.get(), ClosedHow::ResetByUs);
        self.note_control_frame(kind::HEADERS)?;
        self.count_local_reset(now, kind::HEADERS)
    }

    /// HEADERS on a stream in the map: a response, or trailers.
    fn on_stream_headers(
        &mut self,
        now: Instant,
        id: StreamId,
        end_stream: bool,
        fields: Vec<Header>,
        too_large: bool,
    ) -> Handled {
        let Some(stream) = self.streams.get(&id) else {
            return Ok(());
        };
        let malformed = (ErrorCode::PROTOCOL_ERROR, Violation::MalformedMessage);
        let too_large_error = (
            ErrorCode::PROTOCOL_ERROR,
            Violation::Limit(Limit::HeaderListSize),
        );
        let outcome = match stream.recv {
            RecvPhase::Done => {
                let closed = Violation::StreamState {
                    frame_kind: kind::HEADERS,
                };
                if !stream.is_active() {
                    return Err(ConnError::new(
                        ErrorCode::STREAM_CLOSED,
                        closed,
                        kind::HEADERS,
                    ));
                }
                Err((ErrorCode::STREAM_CLOSED, closed))
            }
            RecvPhase::Head if too_large => Err(too_large_error),
            RecvPhase::Head => match headers::parse_response(fields) {
                Err(Malformed) => Err(malformed),
                Ok(p) if p.response.status < 200 => {
                    if end_stream || p.response.status == 101 {
                        Err(malformed)
                    } else {
                        // Interim responses are skipped.
                        return Ok(());
                    }
                }
                Ok(p) => {
                    let status = p.response.status;
                    let unchecked = stream.body_unchecked || status == 204 || status == 304;
                    let length = p.content_length.filter(|_| !unchecked);
                    if end_stream && length.is_some_and(|l| l != 0) {
                        Err(malformed)
                    } else {
                        Ok(Event::Response {
                            stream: id,
                            response: p.response,
                            end_stream,
                        })
                        .map(|event| (event, length))
                    }
                }
            },
            RecvPhase::Body if !end_stream => Err(malformed),
            RecvPhase::Body if too_large => Err(too_large_error),
            RecvPhase::Body => {
                if headers::check_trailers(&fields).is_err()
                    || stream
                        .content_length
                        .is_some_and(|length| length != stream.received)
                {
                    Err(malformed)
                } else {
                    Ok((
                        Event::Trailers {
                            stream: id,
                            headers: fields,
                        },
                        stream.content_length,
                    ))
                }
            }
        };
        match outcome {
            Err((code, violation)) => self.stream_error(now, id, code, violation, kind::HEADERS),
            Ok((event, length)) => {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.content_length = length;
                    stream.recv = if end_stream {
                        RecvPhase::Done
                    } else {
                        RecvPhase::Body
                    };
                }
                self.events.push_back(event);
                if end_stream {
                    self.close_if_finished(id);
                }
                Ok(())
            }
        }
    }

    // ----- RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE -----

    fn on_rst_stream(&mut self, now: Instant, id: StreamId, code: ErrorCode) -> Handled {
        if let Some(stream) = self.streams.get(&id) {
            if stream.is_active() {
                if !self.limits.remote_reset.record(now) {
                    return Err(ConnError::calm(Limit::RemoteResetRate, kind::RST_STREAM));
                }
                self.remove_stream(id);
                self.closed.insert(id.get(), ClosedHow::ResetByPeer);
                self.events.push_back(Event::Reset {
                    stream: id,
                    code,
                    remote: true,
                    violation: None,
                });
            }
            return Ok(());
        }
        if self.is_idle(id) {
            return Err(ConnError::protocol(
                Violation::StreamState {
                    frame_kind: kind::RST_STREAM,
                },
                kind::RST_STREAM,
            ));
        }
        Ok(())
    }

    fn on_settings(&mut self, now: Instant, list: SettingsList<'_>) -> Handled {
        use super::frame::setting;
        if !self.limits.settings.record(now) {
            return Err(ConnError::calm(Limit::SettingsRate, kind::SETTINGS));
        }
        for s in list.iter() {
            match s.id {
                setting::HEADER_TABLE_SIZE => {
                    let size = s.value.min(self.config.max_encoder_table_size);
                    self.hpack_encoder.set_max_table_size(size as usize);
                }
                setting::ENABLE_PUSH if self.role == Role::Client && s.value != 0 => {
                    return Err(ConnError::protocol(
                        Violation::Frame(FrameRule::InvalidSetting {
                            id: s.id,
                            value: s.value,
                        }),
                        kind::SETTINGS,
                    ));
                }
                setting::MAX_CONCURRENT_STREAMS => self.peer.max_concurrent_streams = s.value,
                setting::INITIAL_WINDOW_SIZE => self.set_peer_initial_window(s.value)?,
                setting::MAX_FRAME_SIZE => {
                    self.peer.max_frame_size = s.value.clamp(
                        super::frame::DEFAULT_MAX_FRAME_SIZE,
                        super::frame::MAX_MAX_FRAME_SIZE,
                    );
                }
                _ => {}
            }
        }
        encode::settings(&mut self.out, true, &[]);
        self.note_control_frame(kind::SETTINGS)?;
        if !self.peer_settings_seen {
            self.peer_settings_seen = true;
            self.events.push_back(Event::Ready);
        }
        self.wake_writable();
        Ok(())
    }

    /// RFC 9113 §6.9.2: a new initial window shifts every stream's send
    /// window by the difference, possibly below zero.
    fn set_peer_initial_window(&mut self, value: u32) -> Handled {
        let delta = window_of(value) - window_of(self.peer.initial_window_size);
        self.peer.initial_window_size = value;
        for stream in self.streams.values_mut() {
            stream.send_window = grow(stream.send_window, delta).ok_or(ConnError::new(
                ErrorCode::FLOW_CONTROL_ERROR,
                Violation::WindowOverflow,
                kind::SETTINGS,
            ))?;
        }
        Ok(())
    }

    /// Our SETTINGS took effect at the peer: smaller limits now apply.
    fn on_settings_ack(&mut self) {
        if self.settings_deadline.take().is_none() {
            return; // nothing outstanding; ignore
        }
        if (self.config.header_table_size as usize) < hpack::DEFAULT_TABLE_SIZE {
            self.hpack_decoder
                .set_max_table_size(self.config.header_table_size as usize);
        }
        let target = self.config.initial_stream_window;
        if target < self.recv_initial_window {
            self.recv_initial_window = target;
            for stream in self.streams.values_mut() {
                stream.recv_window.retarget(window_of(target));
            }
        }
    }

    fn on_ping(&mut self, now: Instant, ack: bool, payload: [u8; 8]) -> Handled {
        if ack {
            let sent = if self.keepalive_ping.is_some_and(|(p, _)| p == payload) {
                self.keepalive_ping.take().map(|(_, at)| at)
            } else {
                let position = self.pings.iter().position(|(p, _)| *p == payload);
                position
                    .and_then(|i| self.pings.remove(i))
                    .map(|(_, at)| at)
            };
            if let Some(at) = sent {
                self.events.push_back(Event::PingAck {
                    rtt: now.saturating_duration_since(at),
                });
            }
            return Ok(());
        }
        if !self.limits.ping.record(now) {
            return Err(ConnError::calm(Limit::PingRate, kind::PING));
        }
        encode::ping(&mut self.out, true, payload);
        self.note_control_frame(kind::PING)
    }

    fn on_goaway(&mut self, last: StreamId, code: ErrorCode, debug: &[u8]) {
        // A later GOAWAY may lower the last id, never raise it.
        let last = self
            .goaway_received
            .map_or(last, |previous| previous.min(last));
        self.goaway_received = Some(last);
        if self.shutdown == Shutdown::Running {
            self.shutdown = Shutdown::Draining;
        }
        let refused: Vec<StreamId> = self
            .streams
            .range((Bound::Excluded(last), Bound::Unbounded))
            .filter(|(id, s)| !self.is_peer_initiated(**id) && s.is_active())
            .map(|(id, _)| *id)
            .collect();
        for id in refused {
            self.remove_stream(id);
            self.closed.insert(id.get(), ClosedHow::ResetByUs);
            self.events.push_back(Event::Reset {
                stream: id,
                code: ErrorCode::REFUSED_STREAM,
                remote: true,
                violation: None,
            });
        }
        self.events.push_back(Event::GoAway {
            last_stream_id: last,
            code,
            debug_data: Bytes::copy_from_slice(debug),
        });
    }

    fn on_window_update(&mut self, now: Instant, id: StreamId, increment: u32) -> Handled {
        if !self.limits.window_update.record(now) {
            return Err(ConnError::calm(
                Limit::WindowUpdateRate,
                kind::WINDOW_UPDATE,
            ));
        }
        let increment = window_of(increment);
        if id.is_connection() {
            self.send_window = grow(self.send_window, increment).ok_or(ConnError::new(
                ErrorCode::FLOW_CONTROL_ERROR,
                Violation::WindowOverflow,
                kind::WINDOW_UPDATE,
            ))?;
            self.wake_writable();
            return Ok(());
        }
        if let Some(stream) = self.streams.get_mut(&id) {
            match grow(stream.send_window, increment) {
                Some(window) => stream.send_window = window,
                None => {
                    return self.stream_error(
                        now,
                        id,
                        ErrorCode::FLOW_CONTROL_ERROR,
                        Violation::WindowOverflow,
                        kind::WINDOW_UPDATE,
                    )
                }
            }
            if self.writable_waiters.contains(&id) {
                self.wake_writable();
            }
            return Ok(());
        }
        if self.is_idle(id) {
            return Err(ConnError::protocol(
                Violation::StreamState {
                    frame_kind: kind::WINDOW_UPDATE,
                },
                kind::WINDOW_UPDATE,
            ));
        }
        Ok(())
    }

    // ----- stream lifecycle -----

    /// A stream error because of the peer: RST_STREAM, the stream is gone.
    fn stream_error(
        &mut self,
        now: Instant,
        id: StreamId,
        code: ErrorCode,
        violation: Violation,
        frame_kind: u8,
    ) -> Handled {
        encode::rst_stream(&mut self.out, id, code);
        if self.remove_stream(id).is_some() {
            self.events.push_back(Event::Reset {
                stream: id,
                code,
                remote: false,
                violation: Some(violation),
            });
        }
        self.closed.insert(id.get(), ClosedHow::ResetByUs);
        self.note_control_frame(frame_kind)?;
        self.count_local_reset(now, frame_kind)
    }

    /// MadeYouReset (CVE-2025-8671): the peer makes us reset streams.
    fn count_local_reset(&mut self, now: Instant, frame_kind: u8) -> Handled {
        if self.limits.local_reset.record(now) {
            Ok(())
        } else {
            Err(ConnError::calm(Limit::LocalResetRate, frame_kind))
        }
    }

    fn note_control_frame(&mut self, frame_kind: u8) -> Handled {
        self.control_queued = self.control_queued.saturating_add(1);
        if self.control_queued > self.config.max_pending_control_frames {
            return Err(ConnError::calm(Limit::PendingControlFrames, frame_kind));
        }
        Ok(())
    }

    /// Removes a stream for good (reset), fixing the counters and giving
    /// its unread bytes back to the connection window.
    fn remove_stream(&mut self, id: StreamId) -> Option<Stream> {
        let stream = self.streams.remove(&id)?;
        if stream.is_active() {
            if self.is_peer_initiated(id) {
                self.remote_active -= 1;
            } else {
                self.local_active -= 1;
            }
        }
        if stream.awaiting_answer {
            self.pending_answer -= 1;
        }
        self.writable_waiters.remove(&id);
        self.credit_connection(stream.buf.len());
        Some(stream)
    }

    /// Our END_STREAM was queued on `id`.
    fn end_local(&mut self, id: StreamId) {
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.send = SendPhase::Done;
            stream.last_data = None;
        }
        self.writable_waiters.remove(&id);
        self.close_if_finished(id);
    }

    /// If both halves of `id` are done: `StreamClosed`, remembered as
    /// finished; the entry stays while unread payload remains.
    fn close_if_finished(&mut self, id: StreamId) {
        let Some(stream) = self.streams.get(&id) else {
            return;
        };
        if stream.is_active() {
            return;
        }
        let drained = stream.buf.len() == 0;
        if self.is_peer_initiated(id) {
            self.remote_active -= 1;
        } else {
            self.local_active -= 1;
        }
        if drained {
            self.streams.remove(&id);
        }
        self.writable_waiters.remove(&id);
        self.closed.insert(id.get(), ClosedHow::Finished);
        self.events.push_back(Event::StreamClosed { stream: id });
    }

    /// Resets every open stream (connection error, abort or EOF).
    fn reset_all(&mut self, code: ErrorCode, remote: bool, violation: Option<Violation>) {
        let open: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.is_active())
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            self.remove_stream(id);
            self.events.push_back(Event::Reset {
                stream: id,
                code,
                remote,
                violation,
            });
        }
    }

    // ----- sending -----

    fn write_headers(
        &mut self,
        id: StreamId,
        pseudo: &[Header],
        regular: &[Header],
        end_stream: bool,
    ) {
        self.encode_scratch.clear();
        self.hpack_encoder
            .encode(pseudo.iter().chain(regular), &mut self.encode_scratch);
        encode::headers(
            &mut self.out,
            id,
            &self.encode_scratch,
            end_stream,
            self.peer.max_frame_size,
        );
    }

    /// A stream the application may act on.
    fn usable_stream(&self, id: StreamId) -> Result<&Stream, UsageError> {
        if self.shutdown == Shutdown::Done {
            return Err(UsageError::Closed);
        }
        self.streams.get(&id).ok_or(UsageError::UnknownStream(id))
    }

    fn capacity_of(&self, id: StreamId) -> Result<usize, UsageError> {
        let stream = self.usable_stream(id)?;
        if stream.send != SendPhase::Body {
            return Err(UsageError::InvalidState(id));
        }
        let window = stream.send_window.min(self.send_window).max(0);
        let room = (self.config.max_send_buffer as usize).saturating_sub(self.out.len());
        Ok(usize::try_from(window).unwrap_or(0).min(room))
    }

    fn can_open_stream(&self) -> bool {
        self.role == Role::Client
            && self.shutdown == Shutdown::Running
            && self.next_local_id <= StreamId::MAX.get()
            && self.local_active < self.peer.max_concurrent_streams
    }

    /// `Writable` for every waiting stream that can send again.
    fn wake_writable(&mut self) {
        if self.writable_waiters.is_empty()
            || self.send_window <= 0
            || self.out.len() >= self.config.max_send_buffer as usize
        {
            return;
        }
        let ready: Vec<StreamId> = self
            .writable_waiters
            .iter()
            .filter(|id| {
                self.streams
                    .get(id)
                    .is_some_and(|s| s.send_window > 0 && s.send == SendPhase::Body)
            })
            .copied()
            .collect();
        for id in ready {
            self.writable_waiters.remove(&id);
            self.events.push_back(Event::Writable { stream: id });
        }
    }

    fn next_ping_payload(&mut self) -> [u8; 8] {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        self.ping_seq.to_be_bytes()
    }

    // ----- timers and shutdown -----

    fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self.config.keepalive_interval?;
        Some(match self.keepalive_ping {
            Some((_, sent)) => sent + self.config.keepalive_timeout,
            None => self.last_input + interval,
        })
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.shutdown == Shutdown::Done {
            return;
        }
        if self.settings_deadline.is_some_and(|d| now >= d) {
            self.fail(ConnError {
                code: ErrorCode::SETTINGS_TIMEOUT,
                violation: Violation::Limit(Limit::SettingsTimeout),
                frame_kind: None,
            });
            return;
        }
        if self.keepalive_deadline().is_some_and(|d| now >= d) {
            if self.keepalive_ping.is_some() {
                // The peer is gone; there is no RFC code for it.
                self.fail(ConnError {
                    code: ErrorCode::NO_ERROR,
                    violation: Violation::Limit(Limit::KeepaliveTimeout),
                    frame_kind: None,
                });
                return;
            }
            let payload = self.next_ping_payload();
            encode::ping(&mut self.out, false, payload);
            self.keepalive_ping = Some((payload, now));
        }
        if self.grace_deadline.is_some_and(|d| now >= d) {
            self.grace_deadline = None;
            let last = StreamId::new(self.highest_peer_id);
            encode::goaway(&mut self.out, last, ErrorCode::NO_ERROR, &[]);
            self.goaway_sent = Some(last);
            self.final_goaway_sent = true;
        }
        self.check_drained();
    }

    /// A draining connection with no open stream left says its final
    /// GOAWAY and is done.
    fn check_drained(&mut self) {
        if self.shutdown != Shutdown::Draining
            || self.grace_deadline.is_some()
            || self.local_active + self.remote_active > 0
        {
            return;
        }
        if !self.final_goaway_sent {
            let last = StreamId::new(self.highest_peer_id);
            encode::goaway(&mut self.out, last, ErrorCode::NO_ERROR, &[]);
            self.goaway_sent = Some(last);
            self.final_goaway_sent = true;
        }
        self.enter_done();
    }

    fn enter_done(&mut self) {
        self.shutdown = Shutdown::Done;
        self.block = None;
        self.data_in = None;
        self.settings_deadline = None;
        self.keepalive_ping = None;
        self.grace_deadline = None;
        self.writable_waiters.clear();
    }

    /// `Closed` once done and every final byte was handed out.
    fn maybe_closed(&mut self) {
        if self.shutdown == Shutdown::Done && self.out.is_empty() && !self.closed_emitted {
            self.closed_emitted = true;
            self.events.push_back(Event::Closed);
        }
    }

    /// A connection error: GOAWAY, the event, every stream reset.
    fn fail(&mut self, e: ConnError) {
        if self.shutdown == Shutdown::Done {
            return;
        }
        let last = StreamId::new(self.highest_peer_id);
        let debug = format!("{:?}", e.violation);
        encode::goaway(&mut self.out, last, e.code, debug.as_bytes());
        self.events.push_back(Event::ConnectionError {
            code: e.code,
            violation: e.violation,
            frame_kind: e.frame_kind,
        });
        self.reset_all(e.code, false, Some(e.violation));
        self.enter_done();
    }
}
