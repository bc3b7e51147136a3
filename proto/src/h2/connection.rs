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
//! | parameters in one SETTINGS frame | 32 | GOAWAY ENHANCE_YOUR_CALM |
//! | empty DATA/HEADERS/CONTINUATION | 1000 per 10 s | GOAWAY ENHANCE_YOUR_CALM |
//! | WINDOW_UPDATE from the peer | 10 000 per 1 s | GOAWAY ENHANCE_YOUR_CALM |
//! | GOAWAY from the peer | 10 per 10 s | GOAWAY ENHANCE_YOUR_CALM |
//! | SETTINGS acknowledgement | 10 s | GOAWAY SETTINGS_TIMEOUT |
//! | keepalive PING after silence / answer within | 30 s / 10 s | GOAWAY NO_ERROR, closed |
//! | between the two GOAWAYs of a graceful shutdown | 1 s | |
//!
//! Streams the peer opened are refused (RST_STREAM) without an event: the
//! application never saw them. Closed streams are remembered in a bounded
//! ring (`stream::ClosedStreams`), so frames the peer had in
//! flight after our RST_STREAM are ignored while frames on long-gone or
//! never-opened lower ids are a connection error.

use bytes::Bytes;
use core::time::Duration;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::config::Config;
use super::flow::RecvWindow;
use super::frame::{encode, flag, kind, Frame, FrameDecoder, FrameRule};
use super::headers;
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
    /// `max_settings_per_frame`
    SettingsParameters,
    /// `empty_frame_rate`
    EmptyFrameRate,
    /// `window_update_rate`
    WindowUpdateRate,
    /// `goaway_rate`
    GoAwayRate,
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
    /// `violation`. Nothing more can be sent; payload of a peer that had
    /// already finished (PeerFinished/Trailers seen) stays readable with
    /// `recv_data`, anything else is gone.
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
pub(super) struct Core {
    pub(super) role: Role,
    pub(super) config: Config,
    /// Encoded frames not yet taken by `poll_transmit`.
    pub(super) out: Vec<u8>,
    /// Bumped by every `poll_transmit`: a [`DataMark`] of an older epoch
    /// points at bytes already handed out.
    pub(super) out_epoch: u64,
    /// Control frames in `out` that the peer caused.
    pub(super) control_queued: u32,
    pub(super) events: VecDeque<Event>,
    /// Server: bytes of the client preface still to match.
    pub(super) preface_left: usize,
    pub(super) peer_settings_seen: bool,
    pub(super) peer: PeerSettings,
    /// When our SETTINGS must have been acknowledged; `None` once they are.
    pub(super) settings_deadline: Option<Instant>,
    /// The receive window new streams start with: our configured one, or
    /// the protocol default while a smaller configured one is unacknowledged.
    pub(super) recv_initial_window: u32,
    pub(super) hpack_decoder: hpack::Decoder,
    pub(super) hpack_encoder: hpack::Encoder,
    /// Reused buffer for encoding header blocks.
    pub(super) encode_scratch: Vec<u8>,
    /// What we may still send on the connection.
    pub(super) send_window: i64,
    pub(super) recv_window: RecvWindow,
    /// Boxed: stream ids only grow, which leaves B-tree leaves about half
    /// full, so inline streams would cost nearly twice their size each.
    pub(super) streams: BTreeMap<StreamId, Box<Stream>>,
    pub(super) closed: ClosedStreams,
    pub(super) next_local_id: u32,
    pub(super) highest_peer_id: u32,
    /// Open or half-closed streams we opened / the peer opened.
    pub(super) local_active: u32,
    pub(super) remote_active: u32,
    /// Server: peer streams the application has not answered.
    pub(super) pending_answer: u32,
    /// A field block waiting for CONTINUATION frames.
    pub(super) block: Option<FieldBlock>,
    /// The DATA frame whose pieces are arriving.
    pub(super) data_in: Option<DataInFlight>,
    /// PINGs sent by `ping()`, oldest first.
    pub(super) pings: VecDeque<([u8; 8], Instant)>,
    pub(super) keepalive_ping: Option<([u8; 8], Instant)>,
    pub(super) ping_seq: u64,
    pub(super) last_input: Instant,
    pub(super) shutdown: Shutdown,
    /// Last-stream-id of the latest GOAWAY we sent.
    pub(super) goaway_sent: Option<StreamId>,
    /// When the second GOAWAY of a graceful shutdown is due.
    pub(super) grace_deadline: Option<Instant>,
    pub(super) final_goaway_sent: bool,
    pub(super) goaway_received: Option<StreamId>,
    pub(super) closed_emitted: bool,
    /// Streams whose `send_data` was short-changed, waiting for `Writable`
    /// (those last seen held by their own send window are in
    /// `window_waiters` instead).
    pub(super) writable_waiters: BTreeSet<StreamId>,
    /// Waiters held by their own send window: only that window growing
    /// (WINDOW_UPDATE, SETTINGS) can wake them, so the scans on every
    /// connection credit skip them.
    pub(super) window_waiters: BTreeSet<StreamId>,
    pub(super) limits: Limits,
    /// The bug the simulator injected, if any.
    #[cfg(feature = "sim-bugs")]
    pub(super) bug: Option<crate::sim_bugs::Bug>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shutdown {
    Running,
    /// A GOAWAY was sent or received: no new streams of ours, the rest finish.
    Draining,
    /// Nothing more is processed; `Closed` follows once `out` is handed over.
    Done,
}

#[derive(Debug)]
pub(super) struct FieldBlock {
    pub(super) stream: StreamId,
    pub(super) end_stream: bool,
    pub(super) buf: Vec<u8>,
    pub(super) continuations: u32,
}

#[derive(Debug)]
pub(super) struct DataInFlight {
    /// False when the frame's payload is dropped (stream closed or reset).
    pub(super) keep: bool,
    /// Payload bytes of the frame so far (padding excluded).
    pub(super) payload: usize,
}

#[derive(Debug)]
pub(super) struct Limits {
    pub(super) remote_reset: RateCounter,
    pub(super) local_reset: RateCounter,
    pub(super) ping: RateCounter,
    pub(super) settings: RateCounter,
    pub(super) empty_frame: RateCounter,
    pub(super) window_update: RateCounter,
    pub(super) goaway: RateCounter,
}

/// A connection error: what goes into GOAWAY and `Event::ConnectionError`.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConnError {
    pub(super) code: ErrorCode,
    pub(super) violation: Violation,
    pub(super) frame_kind: Option<u8>,
}

impl ConnError {
    pub(super) fn new(code: ErrorCode, violation: Violation, frame_kind: u8) -> ConnError {
        ConnError {
            code,
            violation,
            frame_kind: Some(frame_kind),
        }
    }

    pub(super) fn calm(limit: Limit, frame_kind: u8) -> ConnError {
        ConnError::new(
            ErrorCode::ENHANCE_YOUR_CALM,
            Violation::Limit(limit),
            frame_kind,
        )
    }

    pub(super) fn protocol(violation: Violation, frame_kind: u8) -> ConnError {
        ConnError::new(ErrorCode::PROTOCOL_ERROR, violation, frame_kind)
    }
}

pub(super) type Handled = Result<(), ConnError>;

/// One piece of a DATA frame, as the decoder hands it out.
pub(super) struct DataPiece<'a> {
    pub(super) stream: StreamId,
    pub(super) data: &'a [u8],
    pub(super) flow_len: u32,
    pub(super) first: bool,
    pub(super) last: bool,
    pub(super) end_stream: bool,
}

/// Memory of closed streams: enough to cover the frames a peer can have in
/// flight after we reset a burst of streams.
const CLOSED_STREAMS_REMEMBERED: usize = 1024;
/// `ping()` PINGs remembered for matching their ACKs.
const PINGS_REMEMBERED: usize = 16;

pub(super) fn kind_of(frame: &Frame<'_>) -> u8 {
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

/// The largest field block we assemble. A block encodes each field in at
/// most about its RFC 9113 size, so twice the header list limit plus room
/// for table size updates is generous for honest peers.
pub(super) fn max_block_size(config: &Config) -> usize {
    (config.max_header_list_size as usize)
        .saturating_mul(2)
        .saturating_add(4096)
}

pub(super) fn window_of(n: u32) -> i64 {
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
        // Strings are bounded by the field block (see `max_block_size`), so an
        // oversized header fails on the list limit (a stream error, 431) rather
        // than on the string limit (which breaks the connection). Huffman
        // decodes to at most 8/5 of its input.
        hpack_decoder.set_max_string_len(max_block_size(&config).saturating_mul(2));
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
            goaway: RateCounter::new(config.goaway_rate),
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
            window_waiters: BTreeSet::new(),
            limits,
            config,
            #[cfg(feature = "sim-bugs")]
            bug: None,
        };
        Connection {
            decoder: FrameDecoder::new(core.config.max_frame_size),
            core,
        }
    }

    /// Injects `bug` (or none) into this connection.
    #[cfg(feature = "sim-bugs")]
    pub fn inject_bug(&mut self, bug: Option<crate::sim_bugs::Bug>) {
        self.core.bug = bug;
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
            let before = rest.len();
            let (result, more) = match self.decoder.decode(&mut rest) {
                Ok(Some(frame)) => (self.core.on_frame(now, frame), true),
                Ok(None) => (Ok(()), false),
                Err(e) => (self.core.on_frame_error(now, e), true),
            };
            let used = before - rest.len();
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
        core.out_epoch += 1;
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
        core.streams.insert(id, Box::new(stream));
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
            // Sorted by what holds it at the next scan.
            core.window_waiters.remove(&stream);
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

    /// Frames up to `max` bytes of payload as one DATA frame on `stream` that
    /// the caller transmits itself, so the payload skips the copy into the
    /// output (`send_data`'s only copy). Only while no output is queued, so
    /// the frame keeps its place in what the peer reads. Charges the windows
    /// like `send_data`, appends the frame header to `header` and returns the
    /// payload length it announces: the caller must transmit the header and
    /// exactly that many bytes of its payload before anything else this
    /// connection outputs. Returns 0 (and arms nothing) when output is
    /// queued or there is no capacity: the caller then offers the bytes to
    /// `send_data`, which queues them or arms `Writable`.
    pub fn frame_data(
        &mut self,
        stream: StreamId,
        max: usize,
        header: &mut Vec<u8>,
    ) -> Result<usize, UsageError> {
        let core = &mut self.core;
        if !core.out.is_empty() {
            return Ok(0);
        }
        let max_frame = (core.peer.max_frame_size as usize).max(1);
        let n = core.capacity_of(stream)?.min(max).min(max_frame);
        if n == 0 {
            return Ok(0);
        }
        let Some(s) = core.streams.get_mut(&stream) else {
            return Err(UsageError::UnknownStream(stream));
        };
        // No DataMark: this frame is not in the output, so `finish` cannot
        // flag it and sends its own empty END_STREAM frame instead.
        encode::data_header(header, stream, n as u32, false);
        let sent = n as i64;
        s.send_window -= sent;
        core.send_window -= sent;
        debug_assert!(s.send_window >= 0 && core.send_window >= 0);
        Ok(n)
    }

    /// How many bytes `send_data` would accept now.
    ///
    /// A query only: a 0 here does not arm `Writable`. Only a `send_data`
    /// call that accepts less than it was offered registers the stream for
    /// `Writable`, so a sender that finds no capacity should still offer its
    /// data to `send_data` (which then returns 0 and arms the event) rather
    /// than wait on this value.
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

    /// The first contiguous piece of `stream`'s received payload not yet
    /// released: empty only when nothing is unread. The buffer is a queue
    /// of chunks, so more may follow this piece ([`Connection::recv_len`]
    /// says how much in all); releasing the piece brings the next one to
    /// the front.
    pub fn recv_data(&self, stream: StreamId) -> &[u8] {
        self.core
            .streams
            .get(&stream)
            .map_or(&[], |s| s.buf.first_piece())
    }

    /// All of `stream`'s received payload not yet released, piece by piece
    /// in order (the first is [`Connection::recv_data`]); for a reader that
    /// wants it all without releasing, such as a vectored write.
    pub fn recv_pieces(&self, stream: StreamId) -> impl Iterator<Item = &[u8]> + '_ {
        self.core
            .streams
            .get(&stream)
            .into_iter()
            .flat_map(|s| s.buf.pieces())
    }

    /// A copy of up to `max` of `stream`'s unread bytes, gathered across
    /// pieces (for a reader that copies anyway and wants large batches).
    pub fn recv_copy(&self, stream: StreamId, max: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.recv_len(stream).min(max));
        for piece in self.recv_pieces(stream) {
            let take = piece.len().min(max.saturating_sub(out.len()));
            out.extend_from_slice(piece.get(..take).unwrap_or_default());
            if out.len() >= max {
                break;
            }
        }
        out
    }

    /// All of `stream`'s received payload not yet released, in bytes (0 if
    /// the stream is unknown).
    pub fn recv_len(&self, stream: StreamId) -> usize {
        self.core.streams.get(&stream).map_or(0, |s| s.buf.len())
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
                // Injected bug: the update of a release that empties the buffer is lost.
                #[cfg(feature = "sim-bugs")]
                let lost =
                    core.bug == Some(crate::sim_bugs::Bug::LostWindowUpdate) && s.buf.len() == 0;
                #[cfg(not(feature = "sim-bugs"))]
                let lost = false;
                if !lost {
                    encode::window_update(&mut core.out, stream, increment);
                }
            }
        }
        if s.buf.len() == 0 && !s.is_active() {
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

    /// The connection-level send window: DATA bytes the peer lets all our
    /// streams together send now (RFC 9113 §6.9.1). Only WINDOW_UPDATE on
    /// stream 0 raises it; no SETTINGS changes it.
    pub fn send_window(&self) -> i64 {
        self.core.send_window
    }

    /// The send window a stream opened now starts with: the peer's
    /// SETTINGS_INITIAL_WINDOW_SIZE (65,535 until its SETTINGS arrive).
    pub fn initial_stream_send_window(&self) -> u32 {
        self.core.peer.initial_window_size
    }

    /// The streams the peer lets us have open at once: its
    /// SETTINGS_MAX_CONCURRENT_STREAMS, `u32::MAX` while it announced none.
    pub fn peer_max_concurrent_streams(&self) -> u32 {
        self.core.peer.max_concurrent_streams
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
    // ----- stream identity -----

    pub(super) fn is_peer_initiated(&self, id: StreamId) -> bool {
        match self.role {
            Role::Server => id.is_client_initiated(),
            Role::Client => id.is_server_initiated(),
        }
    }

    /// Idle: never opened (RFC 9113 §5.1.1: ids only go up).
    pub(super) fn is_idle(&self, id: StreamId) -> bool {
        if self.is_peer_initiated(id) {
            id.get() > self.highest_peer_id
        } else {
            id.get() >= self.next_local_id
        }
    }

    pub(super) fn new_recv_window(&self) -> RecvWindow {
        let initial = window_of(self.recv_initial_window);
        RecvWindow::new(initial, initial)
    }

    // ----- stream lifecycle -----
    /// Gives `n` bytes back to the connection window (WINDOW_UPDATE once
    /// enough accumulated).
    pub(super) fn credit_connection(&mut self, n: usize) {
        if n == 0 || self.shutdown == Shutdown::Done {
            return;
        }
        if let Some(increment) = self.recv_window.release(n) {
            encode::window_update(&mut self.out, StreamId::CONNECTION, increment);
        }
    }

    /// A stream error because of the peer: RST_STREAM, the stream is gone.
    pub(super) fn stream_error(
        &mut self,
        now: Instant,
        id: StreamId,
        code: ErrorCode,
        violation: Violation,
        frame_kind: u8,
    ) -> Handled {
        encode::rst_stream(&mut self.out, id, code);
        // A closed stream keeps its unread payload: only open ones go.
        let open = self.streams.get(&id).is_some_and(|s| s.is_active());
        if open && self.remove_stream(id).is_some() {
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
    pub(super) fn count_local_reset(&mut self, now: Instant, frame_kind: u8) -> Handled {
        if self.limits.local_reset.record(now) {
            Ok(())
        } else {
            Err(ConnError::calm(Limit::LocalResetRate, frame_kind))
        }
    }

    pub(super) fn note_control_frame(&mut self, frame_kind: u8) -> Handled {
        self.control_queued = self.control_queued.saturating_add(1);
        if self.control_queued > self.config.max_pending_control_frames {
            return Err(ConnError::calm(Limit::PendingControlFrames, frame_kind));
        }
        Ok(())
    }

    /// Removes a stream for good (reset), fixing the counters and giving
    /// its unread bytes back to the connection window.
    pub(super) fn remove_stream(&mut self, id: StreamId) -> Option<Stream> {
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
        self.forget_waiter(id);
        self.credit_connection(stream.buf.len());
        Some(*stream)
    }

    /// Ends a stream that the peer reset or that dies with the connection.
    /// Payload of a peer that had already finished stays readable (RFC 9113
    /// §8.1: a complete response must not be discarded because of a later
    /// RST_STREAM); anything else goes.
    pub(super) fn end_stream_abruptly(&mut self, id: StreamId) {
        let keep = self
            .streams
            .get(&id)
            .is_some_and(|s| s.recv == RecvPhase::Done && s.buf.len() > 0);
        if !keep {
            self.remove_stream(id);
            return;
        }
        let peer_initiated = self.is_peer_initiated(id);
        if let Some(stream) = self.streams.get_mut(&id) {
            if stream.is_active() {
                if peer_initiated {
                    self.remote_active -= 1;
                } else {
                    self.local_active -= 1;
                }
            }
            if stream.awaiting_answer {
                stream.awaiting_answer = false;
                self.pending_answer -= 1;
            }
            stream.send = SendPhase::Done;
        }
        self.forget_waiter(id);
    }

    /// Our END_STREAM was queued on `id`.
    pub(super) fn end_local(&mut self, id: StreamId) {
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.send = SendPhase::Done;
            stream.last_data = None;
        }
        self.forget_waiter(id);
        self.close_if_finished(id);
    }

    /// If both halves of `id` are done: `StreamClosed`, remembered as
    /// finished; the entry stays while unread payload remains.
    pub(super) fn close_if_finished(&mut self, id: StreamId) {
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
        self.forget_waiter(id);
        self.closed.insert(id.get(), ClosedHow::Finished);
        self.events.push_back(Event::StreamClosed { stream: id });
    }

    /// Resets every open stream (connection error, abort or EOF).
    pub(super) fn reset_all(
        &mut self,
        code: ErrorCode,
        remote: bool,
        violation: Option<Violation>,
    ) {
        let open: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.is_active())
            .map(|(id, _)| *id)
            .collect();
        for id in open {
            self.end_stream_abruptly(id);
            self.events.push_back(Event::Reset {
                stream: id,
                code,
                remote,
                violation,
            });
        }
    }

    // ----- sending -----

    pub(super) fn write_headers(
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
    pub(super) fn usable_stream(&self, id: StreamId) -> Result<&Stream, UsageError> {
        if self.shutdown == Shutdown::Done {
            return Err(UsageError::Closed);
        }
        self.streams
            .get(&id)
            .map(|s| &**s)
            .ok_or(UsageError::UnknownStream(id))
    }

    pub(super) fn capacity_of(&self, id: StreamId) -> Result<usize, UsageError> {
        let stream = self.usable_stream(id)?;
        if stream.send != SendPhase::Body {
            return Err(UsageError::InvalidState(id));
        }
        debug_assert!(stream.send_window <= super::flow::MAX_WINDOW);
        debug_assert!(self.send_window <= super::flow::MAX_WINDOW);
        let window = stream.send_window.min(self.send_window).max(0);
        let room = (self.config.max_send_buffer as usize).saturating_sub(self.out.len());
        Ok(usize::try_from(window).unwrap_or(0).min(room))
    }

    pub(super) fn can_open_stream(&self) -> bool {
        self.role == Role::Client
            && self.shutdown == Shutdown::Running
            && self.next_local_id <= StreamId::MAX.get()
            && self.local_active < self.peer.max_concurrent_streams
    }

    /// `Writable` for every waiting stream that can send again.
    ///
    /// Afterwards no waiter can send: each is held by its stream window,
    /// the connection window or a full send buffer, and `send_data` adds
    /// a stream only when one of them stops it. So a waiter becomes ready
    /// only when its own window grows ([`Core::wake_stream`]), the
    /// connection window reopens or the buffer drains (a scan here). The
    /// scan moves waiters held by their own window aside, so a peer that
    /// keeps many at zero window does not make every scan pay for them.
    pub(super) fn wake_writable(&mut self) {
        if !self.may_wake_any() {
            return;
        }
        let mut ready = Vec::new();
        let mut held = Vec::new();
        for id in &self.writable_waiters {
            match self.streams.get(id) {
                Some(s) if s.send == SendPhase::Body && s.send_window > 0 => ready.push(*id),
                Some(s) if s.send == SendPhase::Body => held.push(*id),
                _ => {}
            }
        }
        for id in held {
            self.writable_waiters.remove(&id);
            self.window_waiters.insert(id);
        }
        for id in ready {
            self.writable_waiters.remove(&id);
            self.events.push_back(Event::Writable { stream: id });
        }
    }

    /// `Writable` for `id` if it waits and can send again (its own send
    /// window grew).
    pub(super) fn wake_stream(&mut self, id: StreamId) {
        let open = self
            .streams
            .get(&id)
            .is_some_and(|s| s.send_window > 0 && s.send == SendPhase::Body);
        if !open {
            return;
        }
        if self.window_waiters.remove(&id) {
            self.writable_waiters.insert(id);
        }
        if self.may_wake_any() && self.writable_waiters.remove(&id) {
            self.events.push_back(Event::Writable { stream: id });
        }
    }

    /// Every waiter back in the scanned set: the peer's SETTINGS may have
    /// opened every stream's window at once.
    pub(super) fn rescan_window_waiters(&mut self) {
        self.writable_waiters.append(&mut self.window_waiters);
    }

    /// `id` no longer waits for `Writable` (it ended or stopped sending).
    pub(super) fn forget_waiter(&mut self, id: StreamId) {
        self.writable_waiters.remove(&id);
        self.window_waiters.remove(&id);
    }

    /// Someone waits, and neither the connection window nor the send buffer
    /// holds every sender back.
    fn may_wake_any(&self) -> bool {
        !self.writable_waiters.is_empty()
            && self.send_window > 0
            && self.out.len() < self.config.max_send_buffer as usize
    }

    pub(super) fn next_ping_payload(&mut self) -> [u8; 8] {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        self.ping_seq.to_be_bytes()
    }

    // ----- timers and shutdown -----

    pub(super) fn keepalive_deadline(&self) -> Option<Instant> {
        let interval = self.config.keepalive_interval?;
        Some(match self.keepalive_ping {
            Some((_, sent)) => sent + self.config.keepalive_timeout,
            None => self.last_input + interval,
        })
    }

    pub(super) fn handle_timeout(&mut self, now: Instant) {
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
    pub(super) fn check_drained(&mut self) {
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

    pub(super) fn enter_done(&mut self) {
        self.shutdown = Shutdown::Done;
        self.block = None;
        self.data_in = None;
        self.settings_deadline = None;
        self.keepalive_ping = None;
        self.grace_deadline = None;
        self.writable_waiters.clear();
        self.window_waiters.clear();
    }

    /// `Closed` once done and every final byte was handed out.
    pub(super) fn maybe_closed(&mut self) {
        if self.shutdown == Shutdown::Done && self.out.is_empty() && !self.closed_emitted {
            self.closed_emitted = true;
            self.events.push_back(Event::Closed);
        }
    }

    /// A connection error: GOAWAY, the event, every stream reset.
    pub(super) fn fail(&mut self, e: ConnError) {
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
