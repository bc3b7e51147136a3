//! The receiving half of [`Connection`](super::Connection): the client
//! preface, then every frame the decoder hands out, checked against the
//! stream states of RFC 9113 §5.1, flow control (§5.2, §6.9), the field
//! block rules (§4.3, §6.10, §8) and the protective limits.

use bytes::Bytes;
use core::ops::Bound;

use super::connection::{
    kind_of, max_block_size, window_of, ConnError, Core, DataInFlight, DataPiece, Event,
    FieldBlock, Handled, Limit, Role, Shutdown, Violation,
};
use super::flow::grow;
use super::frame::{encode, kind, Frame, FrameError, FrameRule, SettingsList};
use super::headers::{self, Malformed};
use super::hpack::{self, DecodeError};
use super::settings::DEFAULT_WINDOW;
use super::stream::{ClosedHow, RecvPhase, SendPhase, Stream};
use super::{ErrorCode, Header, StreamId};
use crate::time::Instant;

impl Core {
    // ----- input: preface and frame dispatch -----

    pub(super) fn match_preface(&mut self, input: &mut &[u8]) -> Handled {
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

    pub(super) fn on_frame(&mut self, now: Instant, frame: Frame<'_>) -> Handled {
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
                if !self.limits.goaway.record(now) {
                    return Err(ConnError::calm(Limit::GoAwayRate, kind::GOAWAY));
                }
                self.on_goaway(last_stream_id, error_code, debug_data);
                Ok(())
            }
            Frame::WindowUpdate {
                stream_id,
                increment,
            } => self.on_window_update(now, stream_id, increment),
        }
    }

    pub(super) fn on_frame_error(&mut self, now: Instant, e: FrameError) -> Handled {
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

    // ----- DATA -----

    pub(super) fn on_data(&mut self, now: Instant, piece: DataPiece<'_>) -> Handled {
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
    pub(super) fn accept_data(&mut self, now: Instant, id: StreamId) -> Result<bool, ConnError> {
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
    pub(super) fn buffer_data(
        &mut self,
        now: Instant,
        piece: &DataPiece<'_>,
    ) -> Result<bool, ConnError> {
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
    pub(super) fn end_remote(&mut self, now: Instant, id: StreamId, frame_kind: u8) -> Handled {
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

    pub(super) fn count_empty_frame(&mut self, now: Instant, frame_kind: u8) -> Handled {
        if self.limits.empty_frame.record(now) {
            Ok(())
        } else {
            Err(ConnError::calm(Limit::EmptyFrameRate, frame_kind))
        }
    }

    // ----- HEADERS and CONTINUATION -----

    pub(super) fn max_block_size(&self) -> usize {
        max_block_size(&self.config)
    }

    pub(super) fn on_headers(
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

    pub(super) fn on_continuation(
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
        block.continuations = block.continuations.saturating_add(1);
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
    pub(super) fn on_field_block(
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
    pub(super) fn open_peer_stream(
        &mut self,
        now: Instant,
        id: StreamId,
        end_stream: bool,
        fields: Vec<Header>,
        too_large: bool,
    ) -> Handled {
        self.highest_peer_id = id.get();
        if self.goaway_sent.is_some_and(|last| id > last) {
            // After our final GOAWAY: not processed, ignored (RFC 9113 §6.8),
            // and so is whatever else the peer sends on it.
            self.closed.insert(id.get(), ClosedHow::ResetByUs);
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
        self.streams.insert(id, Box::new(stream));
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
    pub(super) fn answer_too_large(
        &mut self,
        now: Instant,
        id: StreamId,
        end_stream: bool,
    ) -> Handled {
        self.write_headers(id, &[headers::status_field(431)], &[], true);
        if !end_stream {
            encode::rst_stream(&mut self.out, id, ErrorCode::NO_ERROR);
        }
        self.closed.insert(id.get(), ClosedHow::ResetByUs);
        self.note_control_frame(kind::HEADERS)?;
        self.count_local_reset(now, kind::HEADERS)
    }

    /// HEADERS on a stream in the map: a response, or trailers.
    pub(super) fn on_stream_headers(
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

    /// For a frame naming a stream we do not track: one already closed may
    /// cross our reset and is ignored, but one never opened (idle, RFC 9113
    /// §5.1) makes the frame a connection error.
    fn refuse_if_idle(&self, id: StreamId, frame_kind: u8) -> Handled {
        if self.is_idle(id) {
            return Err(ConnError::protocol(
                Violation::StreamState { frame_kind },
                frame_kind,
            ));
        }
        Ok(())
    }

    pub(super) fn on_rst_stream(&mut self, now: Instant, id: StreamId, code: ErrorCode) -> Handled {
        if let Some(stream) = self.streams.get(&id) {
            if stream.is_active() {
                if !self.limits.remote_reset.record(now) {
                    return Err(ConnError::calm(Limit::RemoteResetRate, kind::RST_STREAM));
                }
                self.end_stream_abruptly(id);
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
        self.refuse_if_idle(id, kind::RST_STREAM)
    }

    pub(super) fn on_settings(&mut self, now: Instant, list: SettingsList<'_>) -> Handled {
        use super::frame::setting;
        if !self.limits.settings.record(now) {
            return Err(ConnError::calm(Limit::SettingsRate, kind::SETTINGS));
        }
        // Checked before any parameter is applied: the cost of a frame is
        // its parameters times the open streams (see `set_peer_initial_window`).
        if list.len() > self.config.max_settings_per_frame as usize {
            return Err(ConnError::calm(Limit::SettingsParameters, kind::SETTINGS));
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
        self.rescan_window_waiters();
        self.wake_writable();
        Ok(())
    }

    /// RFC 9113 §6.9.2: a new initial window shifts every stream's send
    /// window by the difference, possibly below zero.
    pub(super) fn set_peer_initial_window(&mut self, value: u32) -> Handled {
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
    pub(super) fn on_settings_ack(&mut self) {
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

    pub(super) fn on_ping(&mut self, now: Instant, ack: bool, payload: [u8; 8]) -> Handled {
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

    pub(super) fn on_goaway(&mut self, last: StreamId, code: ErrorCode, debug: &[u8]) {
        // A later GOAWAY may lower the last id, never raise it.
        let last = self
            .goaway_received
            .map_or(last, |previous| previous.min(last));
        self.goaway_received = Some(last);
        // A client's GOAWAY only refuses streams a server would open: the
        // client may go on opening its own (RFC 9113 §6.8), so only a
        // client starts draining here.
        if self.shutdown == Shutdown::Running && self.role == Role::Client {
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

    pub(super) fn on_window_update(
        &mut self,
        now: Instant,
        id: StreamId,
        increment: u32,
    ) -> Handled {
        // Only small increments count against the rate: they are the data
        // dribble attack (CVE-2019-9511). A peer with 64 KiB windows
        // legitimately sends two 32 KiB updates per 32 KiB we send, tens of
        // thousands a second on a fast link.
        const DRIBBLE_INCREMENT: u32 = 1024;
        if increment < DRIBBLE_INCREMENT && !self.limits.window_update.record(now) {
            return Err(ConnError::calm(
                Limit::WindowUpdateRate,
                kind::WINDOW_UPDATE,
            ));
        }
        let increment = window_of(increment);
        if id.is_connection() {
            let was_exhausted = self.send_window <= 0;
            self.send_window = grow(self.send_window, increment).ok_or(ConnError::new(
                ErrorCode::FLOW_CONTROL_ERROR,
                Violation::WindowOverflow,
                kind::WINDOW_UPDATE,
            ))?;
            // While the connection window is open, whoever still waits is
            // held by its own stream window or by the send buffer (see
            // `wake_writable`): only reopening it can wake anyone. Scanning
            // the waiters on every credit let a peer holding 1000 streams
            // at zero window buy 1000 lookups per 13-byte frame.
            if was_exhausted {
                self.wake_writable();
            }
            return Ok(());
        }
        if let Some(stream) = self.streams.get_mut(&id) {
            if stream.send == SendPhase::Done {
                // Nothing more to send: a late credit is harmless.
                return Ok(());
            }
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
            self.wake_stream(id);
            return Ok(());
        }
        self.refuse_if_idle(id, kind::WINDOW_UPDATE)
    }
}
