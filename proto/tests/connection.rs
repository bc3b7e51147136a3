//! The HTTP/2 connection state machine, end to end: two `Connection`s wired
//! in memory with virtual time (`Pair`), and raw peers that craft frames with
//! `frame::encode` to attack a server connection.

use core::time::Duration;

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use warren_proto::h2::frame::{self, encode, kind, Frame, FrameDecoder, Setting};
use warren_proto::h2::hpack;
use warren_proto::h2::{
    Config, Connection, ErrorCode, Event, Header, Limit, RateLimit, Request, Response, Role,
    StreamId, UsageError, Violation,
};
use warren_proto::time::Instant;

// ---------------------------------------------------------------- harness

/// A small deterministic generator for chunk sizes (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x % n.max(1) as u64) as usize
    }
}

/// Two connections wired in memory, with virtual time.
struct Pair {
    client: Connection,
    server: Connection,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    now: Instant,
    /// Deliver bytes in random chunk sizes when set.
    chunks: Option<Rng>,
}

impl Pair {
    fn new(client: Config, server: Config) -> Pair {
        let now = Instant::from_nanos(1_000_000_000);
        Pair {
            client: Connection::new(Role::Client, client, now),
            server: Connection::new(Role::Server, server, now),
            client_events: Vec::new(),
            server_events: Vec::new(),
            now,
            chunks: None,
        }
    }

    /// A pair after the handshake, with the Ready events consumed.
    fn ready(client: Config, server: Config) -> Pair {
        let mut p = Pair::new(client, server);
        p.drive();
        assert_eq!(
            p.client_events.drain(..).collect::<Vec<_>>(),
            [Event::Ready]
        );
        assert_eq!(
            p.server_events.drain(..).collect::<Vec<_>>(),
            [Event::Ready]
        );
        p
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    fn deliver(conn: &mut Connection, now: Instant, bytes: &[u8], chunks: &mut Option<Rng>) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = match chunks {
                Some(rng) => 1 + rng.below(rest.len().min(40_000)),
                None => rest.len(),
            };
            let (head, tail) = rest.split_at(n);
            conn.handle_input(now, head);
            rest = tail;
        }
    }

    /// Moves every queued byte one way each; true if any moved.
    fn step(&mut self) -> bool {
        self.drain_events();
        let mut to_server = Vec::new();
        let mut to_client = Vec::new();
        self.client.poll_transmit(self.now, &mut to_server);
        self.server.poll_transmit(self.now, &mut to_client);
        Pair::deliver(&mut self.server, self.now, &to_server, &mut self.chunks);
        Pair::deliver(&mut self.client, self.now, &to_client, &mut self.chunks);
        self.drain_events();
        !to_server.is_empty() || !to_client.is_empty()
    }

    fn drive(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the pair never went idle");
    }

    /// Asserts the client's next deadline is `after` from now, moves the
    /// clock there (the server hears nothing) and lets the client's timer
    /// fire.
    fn client_timer_fires_after(&mut self, after: Duration) {
        assert_eq!(self.client.poll_timeout(), Some(self.now + after));
        self.now = self.now + after;
        self.client.handle_timeout(self.now);
        self.drain_events();
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now + d;
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }

    /// Client opens a CONNECT stream and the server answers 200.
    fn open_tunnel(&mut self) -> StreamId {
        let id = self
            .client
            .send_request(&Request::connect("10.0.0.1:80"), false)
            .unwrap();
        self.drive();
        let req = self.server_events.iter().position(
            |e| matches!(e, Event::Request { stream, end_stream: false, .. } if *stream == id),
        );
        self.server_events.remove(req.expect("the request arrives"));
        self.server
            .send_response(id, &response(200), false)
            .unwrap();
        self.drive();
        let resp = self.client_events.iter().position(|e| matches!(e,
            Event::Response { stream, response, end_stream: false } if *stream == id && response.status == 200));
        self.client_events
            .remove(resp.expect("the response arrives"));
        id
    }
}

fn response(status: u16) -> Response {
    Response {
        status,
        headers: Vec::new(),
    }
}

fn get(path: &'static str) -> Request {
    Request {
        method: "GET".into(),
        scheme: Some("https".into()),
        authority: Some("example.com".into()),
        path: Some(path.into()),
        headers: vec![Header::new("accept", "*/*")],
    }
}

/// Reads everything readable on `stream` and releases it.
fn read_all(conn: &mut Connection, stream: StreamId) -> Vec<u8> {
    let data: Vec<u8> = conn.recv_pieces(stream).flatten().copied().collect();
    conn.release_capacity(stream, data.len()).unwrap();
    data
}

fn has(events: &[Event], want: &Event) -> bool {
    events.iter().any(|e| e == want)
}

// ---------------------------------------------------------------- basics

#[test]
fn handshake_both_roles() {
    let mut p = Pair::ready(Config::default(), Config::default());
    assert!(p.client.can_open_stream());
    assert!(!p.server.can_open_stream());
    // Settings are acknowledged: the only timer left is keepalive.
    let keepalive = p.now + Duration::from_secs(30);
    assert_eq!(p.client.poll_timeout(), Some(keepalive));
    assert_eq!(p.server.poll_timeout(), Some(keepalive));
    assert!(!p.step());
}

#[test]
fn connect_tunnel_data_both_ways_and_half_close() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p.open_tunnel();
    assert_eq!(p.client.send_data(id, b"ping from client").unwrap(), 16);
    assert_eq!(p.server.send_data(id, b"pong").unwrap(), 4);
    p.drive();
    assert!(has(&p.server_events, &Event::Data { stream: id }));
    assert!(has(&p.client_events, &Event::Data { stream: id }));
    assert_eq!(read_all(&mut p.server, id), b"ping from client");
    assert_eq!(read_all(&mut p.client, id), b"pong");
    p.client_events.clear();
    p.server_events.clear();

    // Client half-closes; the server can still send.
    p.client.finish(id).unwrap();
    p.drive();
    assert_eq!(p.server_events, [Event::PeerFinished { stream: id }]);
    assert_eq!(
        p.client.send_data(id, b"x"),
        Err(UsageError::InvalidState(id))
    );
    assert_eq!(p.server.send_data(id, b"more").unwrap(), 4);
    p.server.finish(id).unwrap();
    p.drive();
    assert_eq!(
        p.client_events,
        [
            Event::Data { stream: id },
            Event::PeerFinished { stream: id },
            Event::StreamClosed { stream: id }
        ]
    );
    assert!(has(&p.server_events, &Event::StreamClosed { stream: id }));
    // The client can still read after the stream closed.
    assert_eq!(read_all(&mut p.client, id), b"more");
    assert_eq!(p.client.open_streams(), 0);
    assert_eq!(p.server.open_streams(), 0);
}

#[test]
fn finish_sets_end_stream_on_the_last_queued_data_frame() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p.open_tunnel();
    p.client.send_data(id, b"abc").unwrap();
    p.client.finish(id).unwrap();
    let mut out = Vec::new();
    p.client.poll_transmit(p.now, &mut out);
    // One DATA frame of 3 bytes with END_STREAM, no empty frame.
    assert_eq!(out.len(), frame::HEADER_LEN + 3);
    assert_eq!(out[3], kind::DATA);
    assert_eq!(out[4], frame::flag::END_STREAM);
}

#[test]
fn server_half_closes_first() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p.open_tunnel();
    p.server.send_data(id, b"bye").unwrap();
    p.server.finish(id).unwrap();
    p.drive();
    assert!(has(&p.client_events, &Event::PeerFinished { stream: id }));
    p.client.send_data(id, b"still here").unwrap();
    p.client.finish(id).unwrap();
    p.drive();
    assert_eq!(read_all(&mut p.server, id), b"still here");
    assert!(has(&p.server_events, &Event::StreamClosed { stream: id }));
    assert!(has(&p.client_events, &Event::StreamClosed { stream: id }));
}

#[test]
fn reset_each_way() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let a = p.open_tunnel();
    let b = p.open_tunnel();
    p.client.reset(a, ErrorCode::CANCEL).unwrap();
    p.server.reset(b, ErrorCode::CONNECT_ERROR).unwrap();
    p.drive();
    assert!(has(
        &p.server_events,
        &Event::Reset {
            stream: a,
            code: ErrorCode::CANCEL,
            remote: true,
            violation: None
        }
    ));
    assert!(has(
        &p.client_events,
        &Event::Reset {
            stream: b,
            code: ErrorCode::CONNECT_ERROR,
            remote: true,
            violation: None
        }
    ));
    assert_eq!(p.client.open_streams(), 0);
    assert_eq!(p.server.open_streams(), 0);
    assert_eq!(
        p.client.send_data(a, b"x"),
        Err(UsageError::UnknownStream(a))
    );
    // Data the peer had in flight on a reset stream is ignored.
    let c = p.open_tunnel();
    p.client.send_data(c, b"in flight").unwrap();
    p.server.reset(c, ErrorCode::CANCEL).unwrap();
    p.drive();
    assert!(has(
        &p.client_events,
        &Event::Reset {
            stream: c,
            code: ErrorCode::CANCEL,
            remote: true,
            violation: None
        }
    ));
    assert!(!p
        .server_events
        .iter()
        .any(|e| matches!(e, Event::ConnectionError { .. })));
}

#[test]
fn get_with_trailers_and_post_with_content_length() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p.client.send_request(&get("/index.html"), true).unwrap();
    p.drive();
    match p.server_events.remove(0) {
        Event::Request {
            stream,
            request,
            end_stream,
        } => {
            assert_eq!(stream, id);
            assert!(end_stream);
            assert_eq!(request, get("/index.html"));
        }
        other => panic!("unexpected {other:?}"),
    }
    p.server.send_response(id, &response(100), false).unwrap();
    p.server.send_response(id, &response(200), false).unwrap();
    p.server.send_data(id, b"body").unwrap();
    p.server
        .send_trailers(id, &[Header::new("grpc-status", "0")])
        .unwrap();
    p.drive();
    assert_eq!(
        p.client_events,
        [
            Event::Response {
                stream: id,
                response: response(200),
                end_stream: false
            },
            Event::Data { stream: id },
            Event::Trailers {
                stream: id,
                headers: vec![Header::new("grpc-status", "0")]
            },
            Event::StreamClosed { stream: id },
        ]
    );

    let mut post = get("/upload");
    post.method = "POST".into();
    post.headers.push(Header::new("content-length", "5"));
    let id = p.client.send_request(&post, false).unwrap();
    p.client.send_data(id, b"12345").unwrap();
    p.client.finish(id).unwrap();
    p.drive();
    assert!(has(&p.server_events, &Event::PeerFinished { stream: id }));

    // A body longer than its content-length is malformed: stream error.
    let id = p.client.send_request(&post, false).unwrap();
    p.client.send_data(id, b"123456").unwrap();
    p.drive();
    assert!(has(
        &p.client_events,
        &Event::Reset {
            stream: id,
            code: ErrorCode::PROTOCOL_ERROR,
            remote: true,
            violation: None
        }
    ));
}

#[test]
fn a_thousand_concurrent_streams() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let mut ids = Vec::new();
    for _ in 0..1000 {
        ids.push(
            p.client
                .send_request(&Request::connect("svc:1"), false)
                .unwrap(),
        );
    }
    assert!(!p.client.can_open_stream() || p.client.open_streams() == 1000);
    p.drive();
    assert_eq!(p.server.open_streams(), 1000);
    // The peer announced 1000: the 1001st cannot be opened.
    assert_eq!(
        p.client.send_request(&Request::connect("svc:1"), false),
        Err(UsageError::CannotOpenStream)
    );
    for &id in &ids {
        p.server.send_response(id, &response(200), false).unwrap();
        p.server.send_data(id, &id.get().to_be_bytes()).unwrap();
        p.server.finish(id).unwrap();
        p.client.send_data(id, &id.get().to_be_bytes()).unwrap();
        p.client.finish(id).unwrap();
    }
    p.drive();
    for &id in &ids {
        assert_eq!(read_all(&mut p.client, id), id.get().to_be_bytes());
        assert_eq!(read_all(&mut p.server, id), id.get().to_be_bytes());
    }
    assert_eq!(p.client.open_streams(), 0);
    assert_eq!(p.server.open_streams(), 0);
    assert!(p.client.can_open_stream());
}

fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((offset + i) % 251) as u8)
        .collect()
}

#[test]
fn bulk_transfer_with_small_windows_and_a_slow_reader() {
    let window = 64 << 10;
    let cfg = Config {
        initial_stream_window: window,
        initial_connection_window: window,
        max_frame_size: 16_384,
        ..Config::default()
    };
    let mut p = Pair::ready(cfg.clone(), cfg);
    p.chunks = Some(Rng(7));
    let id = p.open_tunnel();
    let total: u64 = 64 << 20;
    let mut sent = 0u64;
    let mut received = 0u64;
    let block = pattern(0, 251 * 1024);
    let mut steps = 0;
    while received < total {
        steps += 1;
        assert!(steps < 1_000_000, "stalled at {received}");
        if sent < total {
            let start = (sent % 251) as usize;
            let want = ((total - sent) as usize).min(200_000);
            let n = p.client.send_data(id, &block[start..start + want]).unwrap();
            sent += n as u64;
            if sent == total {
                p.client.finish(id).unwrap();
            }
        }
        p.step();
        let buffered = p.server.recv_len(id);
        assert!(buffered <= window as usize, "buffered {buffered} > window");
        assert!(p.server.buffered_bytes() <= window as usize + 16_384 + 9);
        // The reader takes at most 7 KiB per step.
        let take = p.server.recv_data(id).len().min(7 * 1024);
        let got = &p.server.recv_data(id)[..take];
        assert_eq!(
            got,
            &pattern(received, take)[..],
            "bytes out of order at {received}"
        );
        received += take as u64;
        p.server.release_capacity(id, take).unwrap();
    }
    p.drive();
    assert!(has(&p.server_events, &Event::PeerFinished { stream: id }));
    assert!(any_writable(&p.client_events));
}

#[test]
fn graceful_goaway_with_streams_in_flight() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p.open_tunnel();
    p.server.go_away(p.now);
    p.drive();
    assert!(p.client_events.iter().any(|e| matches!(e,
        Event::GoAway { last_stream_id, code: ErrorCode::NO_ERROR, .. } if *last_stream_id == StreamId::MAX)));
    assert!(!p.client.can_open_stream());
    assert_eq!(
        p.client.send_request(&Request::connect("a:1"), false),
        Err(UsageError::CannotOpenStream)
    );
    // After the grace period the real last-stream-id follows.
    p.advance(Duration::from_secs(1));
    p.drive();
    assert!(p.client_events.iter().any(|e| matches!(e,
        Event::GoAway { last_stream_id, .. } if *last_stream_id == id)));
    // The stream in flight still works and finishes.
    p.client.send_data(id, b"last words").unwrap();
    p.client.finish(id).unwrap();
    p.server.finish(id).unwrap();
    p.drive();
    assert_eq!(read_all(&mut p.server, id), b"last words");
    assert!(has(&p.server_events, &Event::Closed));
    assert!(has(&p.client_events, &Event::Closed));
    assert!(p.server.is_closed() && p.client.is_closed());
}

#[test]
fn goaway_refuses_streams_above_last_id() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let a = p.open_tunnel();
    let b = p
        .client
        .send_request(&Request::connect("b:1"), false)
        .unwrap();
    // A raw GOAWAY naming only `a` as processed, as if b never arrived.
    let mut raw = Vec::new();
    encode::goaway(&mut raw, a, ErrorCode::NO_ERROR, b"bye");
    p.client.handle_input(p.now, &raw);
    p.drain_events();
    assert!(has(
        &p.client_events,
        &Event::Reset {
            stream: b,
            code: ErrorCode::REFUSED_STREAM,
            remote: true,
            violation: None
        }
    ));
    assert!(has(
        &p.client_events,
        &Event::GoAway {
            last_stream_id: a,
            code: ErrorCode::NO_ERROR,
            debug_data: "bye".into()
        }
    ));
    assert_eq!(p.client.open_streams(), 1);
}

#[test]
fn keepalive_ping_and_timeout() {
    let cfg = Config {
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_timeout: Duration::from_secs(10),
        ..Config::default()
    };
    let mut p = Pair::ready(cfg.clone(), cfg);
    // An answered keepalive keeps the connection.
    p.advance(Duration::from_secs(30));
    p.drive();
    assert!(p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::PingAck { .. })));
    // Now the server goes silent: its bytes are dropped.
    let start = p.now;
    p.now = start + Duration::from_secs(30);
    p.client.handle_timeout(p.now);
    let mut lost = Vec::new();
    p.client.poll_transmit(p.now, &mut lost);
    p.client_timer_fires_after(Duration::from_secs(10));
    assert!(has(
        &p.client_events,
        &Event::ConnectionError {
            code: ErrorCode::NO_ERROR,
            violation: Violation::Limit(Limit::KeepaliveTimeout),
            frame_kind: None
        }
    ));
    p.client.poll_transmit(p.now, &mut lost);
    p.drain_events();
    assert!(p.client.is_closed());
}

#[test]
fn user_ping_gets_its_rtt() {
    let mut p = Pair::ready(Config::default(), Config::default());
    p.client.ping(p.now);
    p.step();
    p.now = p.now + Duration::from_millis(3);
    p.drive();
    assert!(has(
        &p.client_events,
        &Event::PingAck {
            rtt: Duration::from_millis(3)
        }
    ));
}

#[test]
fn settings_timeout() {
    let mut p = Pair::new(Config::default(), Config::default());
    // The server never answers.
    let mut out = Vec::new();
    p.client.poll_transmit(p.now, &mut out);
    p.client_timer_fires_after(Duration::from_secs(10));
    assert_eq!(
        p.client_events[0],
        Event::ConnectionError {
            code: ErrorCode::SETTINGS_TIMEOUT,
            violation: Violation::Limit(Limit::SettingsTimeout),
            frame_kind: None
        }
    );
}

#[test]
fn eof_resets_open_streams_and_closes() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p.open_tunnel();
    p.server.handle_eof(p.now);
    p.drain_events();
    assert_eq!(
        p.server_events,
        [
            Event::Reset {
                stream: id,
                code: ErrorCode::CANCEL,
                remote: true,
                violation: None
            },
            Event::Closed
        ]
    );
}

#[test]
fn abort_sends_goaway_and_resets() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p.open_tunnel();
    p.client.abort(ErrorCode::INTERNAL_ERROR, b"shutting down");
    p.drive();
    assert!(has(
        &p.server_events,
        &Event::GoAway {
            last_stream_id: StreamId::CONNECTION,
            code: ErrorCode::INTERNAL_ERROR,
            debug_data: "shutting down".into()
        }
    ));
    assert!(p.client.is_closed());
    assert_eq!(p.client.send_data(id, b"x"), Err(UsageError::Closed));
}

// ---------------------------------------------------------------- raw peers

/// One frame of the server's output, summarised.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    kind: u8,
    stream: u32,
    /// RST_STREAM / GOAWAY error code; 0 otherwise.
    code: u32,
}

/// A hand-driven client: frames crafted with `frame::encode`, fed to a
/// server `Connection` whose host drains events after every input.
struct RawClient {
    server: Connection,
    now: Instant,
    encoder: hpack::Encoder,
    events: Vec<Event>,
    /// Largest `pending_transmit + buffered_bytes` seen.
    peak_memory: usize,
}

impl RawClient {
    fn new(config: Config) -> RawClient {
        let now = Instant::from_nanos(1);
        let mut raw = RawClient {
            server: Connection::new(Role::Server, config, now),
            now,
            encoder: hpack::Encoder::new(),
            events: Vec::new(),
            peak_memory: 0,
        };
        let mut hello = frame::PREFACE.to_vec();
        encode::settings(&mut hello, false, &[]);
        encode::settings(&mut hello, true, &[]);
        raw.send(&hello);
        assert_eq!(raw.events, [Event::Ready]);
        raw.events.clear();
        raw.output();
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.server.handle_input(self.now, bytes);
        while let Some(e) = self.server.poll_event() {
            self.events.push(e);
        }
        let memory = self.server.pending_transmit() + self.server.buffered_bytes();
        self.peak_memory = self.peak_memory.max(memory);
    }

    fn block(&mut self, fields: &[Header]) -> Vec<u8> {
        let mut block = Vec::new();
        self.encoder.encode(fields, &mut block);
        block
    }

    fn headers(&mut self, id: u32, fields: &[Header], end_stream: bool) -> Vec<u8> {
        let block = self.block(fields);
        let mut out = Vec::new();
        encode::headers(&mut out, StreamId::new(id), &block, end_stream, 16_384);
        out
    }

    fn connect(&mut self, id: u32) -> Vec<u8> {
        self.headers(id, &connect_fields(), false)
    }

    /// Everything the server sent since the last call.
    fn output(&mut self) -> Vec<Seen> {
        let mut out = Vec::new();
        self.server.poll_transmit(self.now, &mut out);
        while let Some(e) = self.server.poll_event() {
            self.events.push(e);
        }
        let mut decoder = FrameDecoder::new(frame::MAX_MAX_FRAME_SIZE);
        let mut input = &out[..];
        let mut seen = Vec::new();
        while let Ok(Some(f)) = decoder.decode(&mut input) {
            let (kind, stream, code) = match f {
                Frame::RstStream {
                    stream_id,
                    error_code,
                } => (kind::RST_STREAM, stream_id.get(), error_code.0),
                Frame::GoAway { error_code, .. } => (kind::GOAWAY, 0, error_code.0),
                Frame::Headers { stream_id, .. } => (kind::HEADERS, stream_id.get(), 0),
                Frame::Data {
                    stream_id,
                    first: true,
                    ..
                } => (kind::DATA, stream_id.get(), 0),
                Frame::Data { .. } => continue,
                other => (kind_of(&other), 0, 0),
            };
            seen.push(Seen { kind, stream, code });
        }
        seen
    }

    fn goaway(&mut self) -> Option<ErrorCode> {
        self.output()
            .iter()
            .find(|s| s.kind == kind::GOAWAY)
            .map(|s| ErrorCode(s.code))
    }

    fn connection_error(&self) -> Option<(ErrorCode, Violation)> {
        self.events.iter().find_map(|e| match e {
            Event::ConnectionError {
                code, violation, ..
            } => Some((*code, *violation)),
            _ => None,
        })
    }

    /// Sends `message(self, i)` for each `i` below `n`, one read each,
    /// stopping once the connection has failed.
    fn send_until_failed(
        &mut self,
        n: u32,
        mut message: impl FnMut(&mut RawClient, u32) -> Vec<u8>,
    ) {
        for i in 0..n {
            let bytes = message(self, i);
            self.send(&bytes);
            if self.connection_error().is_some() {
                break;
            }
        }
    }

    /// Sends `opening` and then `copies` of `frame`, all in one read, and
    /// asserts the server gave up with ENHANCE_YOUR_CALM naming `limit`.
    fn assert_flood_calmed(&mut self, opening: Vec<u8>, frame: &[u8], copies: usize, limit: Limit) {
        let mut bytes = opening;
        for _ in 0..copies {
            bytes.extend_from_slice(frame);
        }
        self.send(&bytes);
        self.assert_failed(ErrorCode::ENHANCE_YOUR_CALM, calm(limit));
    }

    /// Asserts the server reset stream 1 with `code` for `violation` (a
    /// stream error) and the connection lives on.
    fn assert_only_stream_1_reset(&self, code: ErrorCode, violation: Violation) {
        assert!(self.events.contains(&Event::Reset {
            stream: StreamId::new(1),
            code,
            remote: false,
            violation: Some(violation)
        }));
        assert_eq!(self.connection_error(), None);
    }

    /// Asserts a GOAWAY with `code` went out and the event names `violation`.
    fn assert_failed(&mut self, code: ErrorCode, violation: Violation) {
        assert_eq!(
            self.connection_error(),
            Some((code, violation)),
            "{:?}",
            self.events
        );
        assert_eq!(self.goaway(), Some(code));
        assert!(
            self.events.contains(&Event::Closed) || {
                let _ = self.output();
                self.events.contains(&Event::Closed)
            }
        );
    }
}

fn kind_of(f: &Frame<'_>) -> u8 {
    match f {
        Frame::Settings { .. } => kind::SETTINGS,
        Frame::Ping { .. } => kind::PING,
        Frame::WindowUpdate { .. } => kind::WINDOW_UPDATE,
        Frame::Continuation { .. } => kind::CONTINUATION,
        Frame::Priority { .. } => kind::PRIORITY,
        Frame::PushPromise { .. } => kind::PUSH_PROMISE,
        _ => 0xff,
    }
}

fn connect_fields() -> Vec<Header> {
    vec![
        Header::new(":method", "CONNECT"),
        Header::new(":authority", "10.1.1.1:80"),
    ]
}

fn calm(limit: Limit) -> Violation {
    Violation::Limit(limit)
}

fn data_frame(id: u32, data: &[u8], end_stream: bool) -> Vec<u8> {
    let mut out = Vec::new();
    encode::data_header(&mut out, StreamId::new(id), data.len() as u32, end_stream);
    out.extend_from_slice(data);
    out
}

// ---------------------------------------------------------------- attacks

const MEMORY_BOUND: usize = 1 << 20;

#[test]
fn attack_rapid_reset() {
    let mut raw = RawClient::new(Config::default());
    raw.send_until_failed(1500, |raw, i| {
        let id = 2 * i + 1;
        let mut bytes = raw.connect(id);
        encode::rst_stream(&mut bytes, StreamId::new(id), ErrorCode::CANCEL);
        bytes
    });
    raw.assert_failed(ErrorCode::ENHANCE_YOUR_CALM, calm(Limit::RemoteResetRate));
    let requests = raw
        .events
        .iter()
        .filter(|e| matches!(e, Event::Request { .. }))
        .count();
    assert_eq!(requests, 1001);
    assert!(raw.peak_memory < MEMORY_BOUND);
}

#[test]
fn attack_made_you_reset_with_malformed_requests() {
    let mut raw = RawClient::new(Config::default());
    let mut fields = connect_fields();
    fields.push(Header::new("Upper-Case", "x"));
    let mut resets = 0;
    for i in 0..1000u32 {
        let bytes = raw.headers(2 * i + 1, &fields, false);
        raw.send(&bytes);
        resets += raw
            .output()
            .iter()
            .filter(|s| s.kind == kind::RST_STREAM && s.code == ErrorCode::PROTOCOL_ERROR.0)
            .count();
        if raw.connection_error().is_some() {
            break;
        }
    }
    assert_eq!(resets, 201);
    assert_eq!(
        raw.connection_error(),
        Some((ErrorCode::ENHANCE_YOUR_CALM, calm(Limit::LocalResetRate)))
    );
    // The application never saw the malformed requests.
    assert!(!raw
        .events
        .iter()
        .any(|e| matches!(e, Event::Request { .. })));
    assert!(raw.peak_memory < MEMORY_BOUND);
}

#[test]
fn attack_made_you_reset_with_window_overflow() {
    let mut raw = RawClient::new(Config::default());
    raw.send_until_failed(1000, |raw, i| {
        let id = StreamId::new(2 * i + 1);
        let mut bytes = raw.connect(id.get());
        encode::window_update(&mut bytes, id, frame::MAX_WINDOW);
        bytes
    });
    assert_eq!(
        raw.connection_error(),
        Some((ErrorCode::ENHANCE_YOUR_CALM, calm(Limit::LocalResetRate)))
    );
    let resets = raw
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Reset {
                    code: ErrorCode::FLOW_CONTROL_ERROR,
                    violation: Some(Violation::WindowOverflow),
                    ..
                }
            )
        })
        .count();
    // 200 allowed, the 201st trips the limit.
    assert_eq!(resets, 201);
}

#[test]
fn attack_ping_flood() {
    let mut raw = RawClient::new(Config::default());
    let mut bytes = Vec::new();
    for i in 0..200u64 {
        encode::ping(&mut bytes, false, i.to_be_bytes());
    }
    raw.send(&bytes);
    let acks = raw.output().iter().filter(|s| s.kind == kind::PING).count();
    assert_eq!(acks, 100);
    assert_eq!(
        raw.connection_error(),
        Some((ErrorCode::ENHANCE_YOUR_CALM, calm(Limit::PingRate)))
    );
}

#[test]
fn attack_settings_flood() {
    let mut raw = RawClient::new(Config::default());
    let mut settings = Vec::new();
    encode::settings(&mut settings, false, &[]);
    raw.assert_flood_calmed(Vec::new(), &settings, 200, Limit::SettingsRate);
}

#[test]
fn attack_empty_data_frames() {
    let mut raw = RawClient::new(Config::default());
    let opening = raw.connect(1);
    let empty = data_frame(1, b"", false);
    raw.assert_flood_calmed(opening, &empty, 2000, Limit::EmptyFrameRate);
}

#[test]
fn attack_empty_continuation_frames() {
    let cfg = Config {
        max_continuation_frames: 1_000_000,
        ..Config::default()
    };
    let mut raw = RawClient::new(cfg);
    let empty = continuation(1, b"", false);
    raw.assert_flood_calmed(open_block(1, b""), &empty, 5000, Limit::EmptyFrameRate);
}

#[test]
fn attack_window_update_flood() {
    let mut raw = RawClient::new(Config::default());
    let mut update = Vec::new();
    encode::window_update(&mut update, StreamId::CONNECTION, 1);
    raw.assert_flood_calmed(Vec::new(), &update, 20_000, Limit::WindowUpdateRate);
}

fn continuation(id: u32, fragment: &[u8], end_headers: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let f = Frame::Continuation {
        stream_id: StreamId::new(id),
        end_headers,
        fragment,
    };
    encode::frame(&mut out, &f, None);
    out
}

fn open_block(id: u32, fragment: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let f = Frame::Headers {
        stream_id: StreamId::new(id),
        end_stream: false,
        end_headers: false,
        priority: None,
        fragment,
    };
    encode::frame(&mut out, &f, None);
    out
}

#[test]
fn attack_continuation_flood() {
    let mut raw = RawClient::new(Config::default());
    let block = raw.block(&connect_fields());
    let field = continuation(1, b"\x40\x01a\x01b", false);
    raw.assert_flood_calmed(
        open_block(1, &block),
        &field,
        100,
        Limit::ContinuationFrames,
    );
    assert!(raw.peak_memory < MEMORY_BOUND);
}

#[test]
fn attack_oversized_field_block() {
    let mut raw = RawClient::new(Config::default());
    let chunk = vec![b'a'; 100_000];
    let more = continuation(1, &chunk, false);
    raw.assert_flood_calmed(open_block(1, &chunk), &more, 20, Limit::HeaderListSize);
    assert!(raw.peak_memory < 300_000, "{}", raw.peak_memory);
}

#[test]
fn attack_control_frames_while_output_is_not_drained() {
    let cfg = Config {
        ping_rate: RateLimit {
            max: 1_000_000,
            per: Duration::from_secs(1),
        },
        max_pending_control_frames: 100,
        ..Config::default()
    };
    let mut raw = RawClient::new(cfg);
    // The host never calls poll_transmit.
    raw.send_until_failed(10_000, |_, i| {
        let mut bytes = Vec::new();
        encode::ping(&mut bytes, false, u64::from(i).to_be_bytes());
        bytes
    });
    assert_eq!(
        raw.connection_error(),
        Some((
            ErrorCode::ENHANCE_YOUR_CALM,
            calm(Limit::PendingControlFrames)
        ))
    );
    assert!(raw.peak_memory < 4096, "{}", raw.peak_memory);
}

#[test]
fn too_many_concurrent_streams_are_refused() {
    let cfg = Config {
        max_concurrent_streams: 10,
        ..Config::default()
    };
    let mut raw = RawClient::new(cfg);
    for i in 0..11u32 {
        let bytes = raw.connect(2 * i + 1);
        raw.send(&bytes);
    }
    let out = raw.output();
    assert_eq!(
        out,
        [Seen {
            kind: kind::RST_STREAM,
            stream: 21,
            code: ErrorCode::REFUSED_STREAM.0
        }]
    );
    assert_eq!(raw.server.open_streams(), 10);
    assert_eq!(raw.connection_error(), None);
}

#[test]
fn unanswered_streams_beyond_pending_accept_are_refused() {
    let cfg = Config {
        max_pending_accept: 3,
        ..Config::default()
    };
    let mut raw = RawClient::new(cfg);
    for id in [1, 3, 5, 7] {
        let bytes = raw.connect(id);
        raw.send(&bytes);
    }
    assert_eq!(
        raw.output(),
        [Seen {
            kind: kind::RST_STREAM,
            stream: 7,
            code: ErrorCode::REFUSED_STREAM.0
        }]
    );
    // Answering one makes room.
    raw.server
        .send_response(StreamId::new(1), &response(200), false)
        .unwrap();
    let bytes = raw.connect(9);
    raw.send(&bytes);
    assert!(raw
        .events
        .iter()
        .any(|e| matches!(e, Event::Request { stream, .. } if stream.get() == 9)));
}

#[test]
fn oversized_header_list_gets_431_and_the_connection_lives() {
    let mut raw = RawClient::new(Config::default());
    let mut fields = connect_fields();
    fields.push(Header::new("x-big", vec![b'v'; 70_000]));
    let bytes = raw.headers(1, &fields, false);
    raw.send(&bytes);
    assert_eq!(
        raw.output(),
        [
            Seen {
                kind: kind::HEADERS,
                stream: 1,
                code: 0
            },
            Seen {
                kind: kind::RST_STREAM,
                stream: 1,
                code: ErrorCode::NO_ERROR.0
            }
        ]
    );
    let bytes = raw.connect(3);
    raw.send(&bytes);
    assert!(raw
        .events
        .iter()
        .any(|e| matches!(e, Event::Request { stream, .. } if stream.get() == 3)));
    assert_eq!(raw.connection_error(), None);
}

// ---------------------------------------------------------------- protocol errors

#[test]
fn bad_preface() {
    let mut server = Connection::new(Role::Server, Config::default(), Instant::ZERO);
    server.handle_input(Instant::ZERO, b"PRI * HTTP/2.0\r\n\r\nXX");
    assert_eq!(
        server.poll_event(),
        Some(Event::ConnectionError {
            code: ErrorCode::PROTOCOL_ERROR,
            violation: Violation::BadPreface,
            frame_kind: None
        })
    );
}

#[test]
fn first_frame_must_be_settings() {
    let mut server = Connection::new(Role::Server, Config::default(), Instant::ZERO);
    let mut bytes = frame::PREFACE.to_vec();
    encode::ping(&mut bytes, false, [0; 8]);
    server.handle_input(Instant::ZERO, &bytes);
    assert_eq!(
        server.poll_event(),
        Some(Event::ConnectionError {
            code: ErrorCode::PROTOCOL_ERROR,
            violation: Violation::SettingsExpected,
            frame_kind: Some(kind::PING)
        })
    );
}

fn state_violation(kind: u8) -> Violation {
    Violation::StreamState { frame_kind: kind }
}

#[test]
fn data_on_idle_stream_is_a_connection_error() {
    let mut raw = RawClient::new(Config::default());
    raw.send(&data_frame(1, b"x", false));
    raw.assert_failed(ErrorCode::PROTOCOL_ERROR, state_violation(kind::DATA));
}

#[test]
fn headers_on_half_closed_remote_is_stream_closed() {
    let mut raw = RawClient::new(Config::default());
    let mut bytes = raw.headers(1, &connect_fields(), true);
    bytes.extend(raw.headers(1, &[Header::new("x", "y")], true));
    raw.send(&bytes);
    assert_eq!(
        raw.output(),
        [Seen {
            kind: kind::RST_STREAM,
            stream: 1,
            code: ErrorCode::STREAM_CLOSED.0
        }]
    );
    assert_eq!(raw.connection_error(), None);
}

#[test]
fn data_after_both_sides_finished_is_a_connection_error() {
    let mut raw = RawClient::new(Config::default());
    let bytes = raw.headers(1, &connect_fields(), true);
    raw.send(&bytes);
    raw.server
        .send_response(StreamId::new(1), &response(200), true)
        .unwrap();
    raw.output();
    raw.send(&data_frame(1, b"x", false));
    raw.assert_failed(ErrorCode::STREAM_CLOSED, state_violation(kind::DATA));
}

#[test]
fn lower_stream_id_is_a_connection_error() {
    let mut raw = RawClient::new(Config::default());
    let mut bytes = raw.connect(5);
    bytes.extend(raw.connect(3));
    raw.send(&bytes);
    raw.assert_failed(ErrorCode::PROTOCOL_ERROR, Violation::StreamIdOrder);
}

#[test]
fn even_stream_from_client_is_a_connection_error() {
    let mut raw = RawClient::new(Config::default());
    let bytes = raw.connect(2);
    raw.send(&bytes);
    raw.assert_failed(ErrorCode::PROTOCOL_ERROR, state_violation(kind::HEADERS));
}

#[test]
fn frame_inside_a_field_block_is_a_connection_error() {
    let mut raw = RawClient::new(Config::default());
    let block = raw.block(&connect_fields());
    let mut bytes = open_block(1, &block);
    encode::ping(&mut bytes, false, [1; 8]);
    raw.send(&bytes);
    raw.assert_failed(ErrorCode::PROTOCOL_ERROR, Violation::ExpectedContinuation);
}

#[test]
fn continuation_completes_a_block() {
    let mut raw = RawClient::new(Config::default());
    let block = raw.block(&connect_fields());
    let (a, b) = block.split_at(block.len() / 2);
    let mut bytes = open_block(1, a);
    bytes.extend(continuation(1, b, true));
    raw.send(&bytes);
    assert!(
        matches!(&raw.events[..], [Event::Request { request, .. }] if *request == Request::connect("10.1.1.1:80"))
    );
}

#[test]
fn flow_control_violations() {
    let cfg = Config {
        initial_stream_window: 65_535,
        initial_connection_window: 100_000,
        ..Config::default()
    };
    // Stream window: stream error.
    let mut raw = RawClient::new(cfg.clone());
    let mut bytes = raw.connect(1);
    bytes.extend(data_frame(1, &vec![0; 65_535], false));
    bytes.extend(data_frame(1, b"!", false));
    raw.send(&bytes);
    raw.assert_only_stream_1_reset(ErrorCode::FLOW_CONTROL_ERROR, Violation::FlowControlOverrun);
    // Connection window: connection error.
    let mut raw = RawClient::new(cfg);
    let mut bytes = raw.connect(1);
    bytes.extend(raw.connect(3));
    bytes.extend(data_frame(1, &vec![0; 60_000], false));
    bytes.extend(data_frame(3, &vec![0; 60_000], false));
    raw.send(&bytes);
    raw.assert_failed(ErrorCode::FLOW_CONTROL_ERROR, Violation::FlowControlOverrun);
}

#[test]
fn window_overflows() {
    let mut raw = RawClient::new(Config::default());
    let mut bytes = Vec::new();
    encode::window_update(&mut bytes, StreamId::CONNECTION, frame::MAX_WINDOW);
    raw.send(&bytes);
    raw.assert_failed(ErrorCode::FLOW_CONTROL_ERROR, Violation::WindowOverflow);

    let mut raw = RawClient::new(Config::default());
    let mut bytes = raw.connect(1);
    encode::window_update(
        &mut bytes,
        StreamId::new(1),
        frame::MAX_WINDOW - 65_535 - 1000,
    );
    encode::settings(
        &mut bytes,
        false,
        &[Setting {
            id: frame::setting::INITIAL_WINDOW_SIZE,
            value: 100_000,
        }],
    );
    raw.send(&bytes);
    raw.assert_failed(ErrorCode::FLOW_CONTROL_ERROR, Violation::WindowOverflow);
}

#[test]
fn hpack_garbage_is_a_compression_error() {
    let mut raw = RawClient::new(Config::default());
    let mut bytes = Vec::new();
    encode::headers(
        &mut bytes,
        StreamId::new(1),
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        false,
        16_384,
    );
    raw.send(&bytes);
    assert!(matches!(
        raw.connection_error(),
        Some((ErrorCode::COMPRESSION_ERROR, Violation::Hpack(_)))
    ));
}

#[test]
fn push_promise_to_a_server_is_a_protocol_error() {
    let mut raw = RawClient::new(Config::default());
    let mut bytes = raw.connect(1);
    let f = Frame::PushPromise {
        stream_id: StreamId::new(1),
        end_headers: true,
        promised_id: StreamId::new(2),
        fragment: &[0x82],
    };
    encode::frame(&mut bytes, &f, None);
    raw.send(&bytes);
    raw.assert_failed(ErrorCode::PROTOCOL_ERROR, Violation::PushNotAllowed);
}

#[test]
fn connection_specific_header_is_malformed() {
    let mut raw = RawClient::new(Config::default());
    let mut fields = connect_fields();
    fields.push(Header::new("transfer-encoding", "chunked"));
    let bytes = raw.headers(1, &fields, true);
    raw.send(&bytes);
    assert_eq!(
        raw.output(),
        [Seen {
            kind: kind::RST_STREAM,
            stream: 1,
            code: ErrorCode::PROTOCOL_ERROR.0
        }]
    );
}

#[test]
fn frames_after_our_reset_are_ignored() {
    let mut raw = RawClient::new(Config::default());
    let bytes = raw.connect(1);
    raw.send(&bytes);
    raw.server
        .reset(StreamId::new(1), ErrorCode::CANCEL)
        .unwrap();
    raw.output();
    let mut bytes = data_frame(1, &[7; 1000], false);
    encode::window_update(&mut bytes, StreamId::new(1), 10);
    encode::rst_stream(&mut bytes, StreamId::new(1), ErrorCode::CANCEL);
    raw.send(&bytes);
    assert_eq!(raw.output(), []);
    assert_eq!(raw.connection_error(), None);
    assert_eq!(raw.server.buffered_bytes(), 0);
}

// ---------------------------------------------------------------- properties

/// What a connection made of some input: events (without `Data`, whose
/// coalescing depends on when the host polls), received bytes per stream,
/// and output bytes.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    received: Vec<(StreamId, Vec<u8>)>,
    output: Vec<u8>,
}

fn feed_chunked(conn: &mut Connection, bytes: &[u8], sizes: &[u16]) -> Outcome {
    let now = Instant::from_nanos(1);
    let mut events = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(rest.len(), |s| 1 + *s as usize);
        i += 1;
        let (head, tail) = rest.split_at(size.min(rest.len()));
        conn.handle_input(now, head);
        rest = tail;
        while let Some(e) = conn.poll_event() {
            if !matches!(e, Event::Data { .. }) {
                events.push(e);
            }
        }
    }
    let received = (1..12)
        .map(StreamId::new)
        .map(|id| (id, conn.recv_pieces(id).flatten().copied().collect()))
        .collect();
    let mut output = Vec::new();
    conn.poll_transmit(now, &mut output);
    Outcome {
        events,
        received,
        output,
    }
}

/// A client that opens several kinds of streams before it heard anything.
fn scripted_client() -> Connection {
    let now = Instant::from_nanos(1);
    let mut c = Connection::new(Role::Client, Config::default(), now);
    let tunnel = c.send_request(&Request::connect("a:1"), false).unwrap();
    c.send_data(tunnel, &pattern(0, 30_000)).unwrap();
    c.send_trailers(tunnel, &[Header::new("x-sum", "30000")])
        .unwrap();
    c.send_request(&get("/"), true).unwrap();
    let mut post = get("/p");
    post.method = "POST".into();
    post.headers.push(Header::new("content-length", "10"));
    let upload = c.send_request(&post, false).unwrap();
    c.send_data(upload, b"0123456789").unwrap();
    c.finish(upload).unwrap();
    let cancelled = c.send_request(&Request::connect("b:2"), false).unwrap();
    c.send_data(cancelled, b"xyz").unwrap();
    c.reset(cancelled, ErrorCode::CANCEL).unwrap();
    c.ping(now);
    c
}

fn client_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    scripted_client().poll_transmit(Instant::from_nanos(1), &mut out);
    out
}

/// The server's whole answer to `client_bytes`.
fn server_bytes() -> Vec<u8> {
    let now = Instant::from_nanos(1);
    let mut server = Connection::new(Role::Server, Config::default(), now);
    server.handle_input(now, &client_bytes());
    let mut requests = Vec::new();
    while let Some(e) = server.poll_event() {
        match e {
            Event::Request { stream, .. } => requests.push(stream),
            Event::Reset { stream, .. } => requests.retain(|id| *id != stream),
            _ => {}
        }
    }
    for id in requests {
        server.send_response(id, &response(200), false).unwrap();
        server
            .send_data(id, &pattern(u64::from(id.get()), 20_000))
            .unwrap();
        server.finish(id).unwrap();
    }
    let mut out = Vec::new();
    server.poll_transmit(now, &mut out);
    out
}

fn replay_both_ways(sizes: &[u16]) -> (Outcome, Outcome) {
    let server = feed_chunked(
        &mut Connection::new(Role::Server, Config::default(), Instant::from_nanos(1)),
        &client_bytes(),
        sizes,
    );
    let client = feed_chunked(&mut scripted_client(), &server_bytes(), sizes);
    (server, client)
}

#[test]
fn same_bytes_in_any_chunking_give_the_same_events() {
    let (server, client) = replay_both_ways(&[]);
    // The scenario does something worth comparing.
    let requests = server
        .events
        .iter()
        .filter(|e| matches!(e, Event::Request { .. }));
    assert_eq!(requests.count(), 4);
    assert!(server
        .events
        .iter()
        .any(|e| matches!(e, Event::Trailers { .. })));
    assert!(client
        .events
        .iter()
        .any(|e| matches!(e, Event::StreamClosed { .. })));
    assert!(client.received.iter().any(|(_, r)| r.len() == 20_000));
    fn prop(sizes: Vec<u16>) -> TestResult {
        let sizes: Vec<u16> = sizes.into_iter().map(|s| s % 3000).collect();
        TestResult::from_bool(replay_both_ways(&sizes) == replay_both_ways(&[]))
    }
    QuickCheck::new()
        .tests(200)
        .quickcheck(prop as fn(Vec<u16>) -> TestResult);
}

/// One step of a random interleaving on three streams.
#[derive(Clone, Debug)]
enum Op {
    /// The sender offers `len` bytes on a stream.
    Send(usize, usize),
    /// The receiver reads and releases up to `len` bytes of a stream.
    Release(usize, usize),
    /// The peer raises a window (`None` = the connection's).
    WindowUpdate(Option<usize>, u32),
    /// The peer announces a new SETTINGS_INITIAL_WINDOW_SIZE.
    InitialWindow(u32),
    /// Bytes move (in random chunks).
    Step,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let stream = usize::arbitrary(g) % 3;
        match u8::arbitrary(g) % 6 {
            0 | 1 => Op::Send(stream, usize::arbitrary(g) % 40_000),
            2 => Op::Release(stream, usize::arbitrary(g) % 40_000),
            3 => Op::WindowUpdate(
                bool::arbitrary(g).then_some(stream),
                1 + u32::arbitrary(g) % 100_000,
            ),
            4 => Op::InitialWindow(u32::arbitrary(g) % 200_000),
            _ => Op::Step,
        }
    }
}

/// Three tunnels over one ready pair whose bytes travel in random chunks,
/// and per stream how many bytes the client accepted and the server
/// delivered (each stream carries [`pattern`] from offset 0).
struct ThreeStreams {
    p: Pair,
    ids: Vec<StreamId>,
    accepted: [u64; 3],
    delivered: [u64; 3],
}

impl ThreeStreams {
    /// Both sides with `cfg`, chunked by a generator seeded from `seed`.
    fn new(cfg: Config, seed: u64) -> ThreeStreams {
        let mut p = Pair::ready(cfg.clone(), cfg);
        p.chunks = Some(Rng(seed | 1));
        let ids = (0..3).map(|_| p.open_tunnel()).collect();
        ThreeStreams {
            p,
            ids,
            accepted: [0; 3],
            delivered: [0; 3],
        }
    }

    /// The server reads at most `max` of stream `i`'s bytes and returns
    /// their credit; false when they are not the next bytes sent.
    fn read(&mut self, i: usize, max: usize) -> bool {
        let data = self.p.server.recv_data(self.ids[i]);
        let n = data.len().min(max);
        let ok = data[..n] == pattern(self.delivered[i], n)[..];
        self.p.server.release_capacity(self.ids[i], n).unwrap();
        self.delivered[i] += n as u64;
        ok
    }

    /// Whether either side saw a connection error or a reset stream.
    fn broken(&self) -> bool {
        self.p
            .server_events
            .iter()
            .chain(&self.p.client_events)
            .any(|e| matches!(e, Event::ConnectionError { .. } | Event::Reset { .. }))
    }

    /// Applies `ops` in order (a send is `send`'s to make: stream, length),
    /// asking `healthy` after each, then drains; the first error ends it.
    fn run(
        &mut self,
        ops: Vec<Op>,
        mut send: impl FnMut(&mut ThreeStreams, usize, usize) -> Result<(), TestResult>,
        healthy: impl Fn(&ThreeStreams) -> Result<(), TestResult>,
    ) -> Result<(), TestResult> {
        for op in ops {
            match op {
                Op::Send(i, len) => send(self, i, len)?,
                Op::Release(i, len) => {
                    if !self.read(i, len) {
                        return Err(TestResult::error("bytes out of order"));
                    }
                }
                Op::Step | Op::WindowUpdate(..) | Op::InitialWindow(_) => {
                    self.p.step();
                }
            }
            healthy(self)?;
        }
        self.drain(healthy)
    }

    /// Finishes the three streams and steps until every accepted byte
    /// arrived (10 000 steps at most), reading everything after each step
    /// and asking `healthy`, whose error ends the drain.
    fn drain(
        &mut self,
        healthy: impl Fn(&ThreeStreams) -> Result<(), TestResult>,
    ) -> Result<(), TestResult> {
        for id in &self.ids {
            self.p.client.finish(*id).unwrap();
        }
        for _ in 0..10_000 {
            self.p.step();
            for i in 0..3 {
                if !self.read(i, usize::MAX) {
                    return Err(TestResult::error("bytes out of order"));
                }
            }
            healthy(self)?;
            if self.delivered == self.accepted && self.p.server.pending_transmit() == 0 {
                break;
            }
        }
        Ok(())
    }
}

/// `frame_data` (a frame the caller transmits itself) mixed with queued
/// `send_data`: it frames nothing while output is queued, never exceeds a
/// window (three stream windows sum past the connection's, so both bind),
/// and every accepted byte arrives once, in order, with END_STREAM after
/// the last (even when the last DATA went out directly).
#[test]
fn frames_sent_directly_keep_order_and_windows() {
    fn prop(ops: Vec<Op>, seed: u64) -> TestResult {
        let cfg = Config {
            initial_stream_window: 65_535,
            initial_connection_window: 100_000,
            max_frame_size: 16_384,
            ..Config::default()
        };
        let mut t = ThreeStreams::new(cfg, seed);
        let intact = |t: &ThreeStreams| {
            if t.broken() {
                Err(TestResult::error("a window was exceeded"))
            } else {
                Ok(())
            }
        };
        // Even lengths try the direct path first, as a mesh connection
        // does; the rest is queued.
        let send = |t: &mut ThreeStreams, i: usize, len: usize| {
            let data = pattern(t.accepted[i], len);
            let queued = t.p.client.pending_transmit() > 0;
            let mut header = Vec::new();
            let direct = match len % 2 {
                0 => t.p.client.frame_data(t.ids[i], len, &mut header).unwrap(),
                _ => 0,
            };
            if queued && direct > 0 {
                return Err(TestResult::error("framed directly behind queued output"));
            }
            if direct > 0 {
                if header.len() != frame::HEADER_LEN || direct > 16_384 {
                    return Err(TestResult::error("bad direct frame"));
                }
                header.extend_from_slice(&data[..direct]);
                Pair::deliver(&mut t.p.server, t.p.now, &header, &mut t.p.chunks);
                t.p.drain_events();
            }
            let rest = t.p.client.send_data(t.ids[i], &data[direct..]).unwrap();
            t.accepted[i] += (direct + rest) as u64;
            Ok(())
        };
        if let Err(failed) = t.run(ops, send, intact) {
            return failed;
        }
        let finished = t
            .ids
            .iter()
            .all(|id| has(&t.p.server_events, &Event::PeerFinished { stream: *id }));
        TestResult::from_bool(t.delivered == t.accepted && finished)
    }
    QuickCheck::new()
        .tests(100)
        .quickcheck(prop as fn(Vec<Op>, u64) -> TestResult);
}

/// Receive side, two real connections: the receiver never buffers more than
/// its windows, and every accepted byte arrives once, in order.
#[test]
fn flow_control_receive_invariants() {
    fn prop(ops: Vec<Op>, seed: u64) -> TestResult {
        let stream_window = 16_384;
        let connection_window = 100_000;
        let cfg = Config {
            initial_stream_window: stream_window,
            initial_connection_window: connection_window,
            max_frame_size: 16_384,
            ..Config::default()
        };
        let mut t = ThreeStreams::new(cfg, seed);
        let within_windows = |t: &ThreeStreams| {
            let buffered: Vec<usize> = t.ids.iter().map(|id| t.p.server.recv_len(*id)).collect();
            let ok = buffered.iter().all(|b| *b <= stream_window as usize)
                && buffered.iter().sum::<usize>() <= connection_window as usize
                && !t.broken();
            if ok {
                Ok(())
            } else {
                Err(TestResult::failed())
            }
        };
        let send = |t: &mut ThreeStreams, i: usize, len: usize| {
            let data = pattern(t.accepted[i], len);
            t.accepted[i] += t.p.client.send_data(t.ids[i], &data).unwrap() as u64;
            Ok(())
        };
        // Everything accepted arrives once the streams are drained.
        if let Err(failed) = t.run(ops, send, within_windows) {
            return failed;
        }
        TestResult::from_bool(t.delivered == t.accepted)
    }
    QuickCheck::new()
        .tests(100)
        .quickcheck(prop as fn(Vec<Op>, u64) -> TestResult);
}

/// Send side against a model peer that keeps its own account of the windows
/// it granted (RFC 9113 §6.9): the sender never exceeds them, even when a
/// SETTINGS change takes them below zero.
#[test]
fn flow_control_send_never_exceeds_the_peer_windows() {
    fn prop(ops: Vec<Op>) -> TestResult {
        let now = Instant::from_nanos(1);
        let mut client = Connection::new(Role::Client, Config::default(), now);
        let mut initial: i64 = 65_535;
        let mut hello = Vec::new();
        encode::settings(&mut hello, false, &[]);
        encode::settings(&mut hello, true, &[]);
        client.handle_input(now, &hello);
        let ids: Vec<StreamId> = (0..3)
            .map(|_| {
                client
                    .send_request(&Request::connect("m:1"), false)
                    .unwrap()
            })
            .collect();
        // The preface, SETTINGS and the requests: no DATA yet.
        client.poll_transmit(now, &mut Vec::new());
        let mut conn_window: i64 = 65_535;
        let mut windows = [initial; 3];
        let mut accepted = [0u64; 3];
        let mut seen = [0u64; 3];
        let mut decoder = FrameDecoder::new(frame::MAX_MAX_FRAME_SIZE);
        // Reads the client's output, charging DATA to the model's windows.
        let mut drain = |client: &mut Connection,
                         conn_window: &mut i64,
                         windows: &mut [i64; 3],
                         seen: &mut [u64; 3]| {
            let mut out = Vec::new();
            client.poll_transmit(now, &mut out);
            let mut input = &out[..];
            while let Ok(Some(f)) = decoder.decode(&mut input) {
                if let Frame::Data {
                    stream_id,
                    data,
                    flow_len,
                    ..
                } = f
                {
                    let Some(i) = ids.iter().position(|id| *id == stream_id) else {
                        return false;
                    };
                    let len = i64::from(flow_len);
                    if len > windows[i]
                        || len > *conn_window
                        || data != &pattern(seen[i], data.len())[..]
                    {
                        return false;
                    }
                    windows[i] -= len;
                    *conn_window -= len;
                    seen[i] += data.len() as u64;
                }
            }
            true
        };
        for op in ops {
            let mut input = Vec::new();
            match op {
                Op::Send(i, len) => {
                    let data = pattern(accepted[i], len);
                    let capacity = client.send_capacity(ids[i]);
                    let n = client.send_data(ids[i], &data).unwrap();
                    if n != capacity.min(len) {
                        return TestResult::failed();
                    }
                    accepted[i] += n as u64;
                }
                Op::Release(..) | Op::Step => {
                    if !drain(&mut client, &mut conn_window, &mut windows, &mut seen) {
                        return TestResult::failed();
                    }
                }
                Op::WindowUpdate(target, increment) => {
                    let increment = i64::from(increment);
                    let (window, id) = match target {
                        Some(i) => (&mut windows[i], ids[i]),
                        None => (&mut conn_window, StreamId::CONNECTION),
                    };
                    if *window + increment > i64::from(frame::MAX_WINDOW) {
                        continue; // an honest peer never overflows
                    }
                    *window += increment;
                    encode::window_update(&mut input, id, increment as u32);
                }
                Op::InitialWindow(value) => {
                    // Frames sent before the change were charged under the
                    // old value.
                    if !drain(&mut client, &mut conn_window, &mut windows, &mut seen) {
                        return TestResult::failed();
                    }
                    let delta = i64::from(value) - initial;
                    if windows
                        .iter()
                        .any(|w| w + delta > i64::from(frame::MAX_WINDOW))
                    {
                        continue;
                    }
                    initial = i64::from(value);
                    windows.iter_mut().for_each(|w| *w += delta);
                    let s = Setting {
                        id: frame::setting::INITIAL_WINDOW_SIZE,
                        value,
                    };
                    encode::settings(&mut input, false, &[s]);
                }
            }
            client.handle_input(now, &input);
            while let Some(e) = client.poll_event() {
                if matches!(e, Event::ConnectionError { .. } | Event::Reset { .. }) {
                    return TestResult::error(format!("{e:?}"));
                }
            }
        }
        if !drain(&mut client, &mut conn_window, &mut windows, &mut seen) {
            return TestResult::failed();
        }
        TestResult::from_bool(seen == accepted)
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(Vec<Op>) -> TestResult);
}

// ---------------------------------------------------------------- more stream rules

#[test]
fn second_headers_without_end_stream_is_malformed() {
    let mut raw = RawClient::new(Config::default());
    let mut bytes = raw.connect(1);
    bytes.extend(raw.headers(1, &[Header::new("x-trailer", "1")], false));
    raw.send(&bytes);
    raw.assert_only_stream_1_reset(ErrorCode::PROTOCOL_ERROR, Violation::MalformedMessage);
}

#[test]
fn pseudo_headers_in_trailers_are_malformed() {
    let mut raw = RawClient::new(Config::default());
    let mut bytes = raw.connect(1);
    bytes.extend(raw.headers(1, &[Header::new(":path", "/")], true));
    raw.send(&bytes);
    assert!(raw.events.iter().any(|e| matches!(
        e,
        Event::Reset {
            violation: Some(Violation::MalformedMessage),
            ..
        }
    )));
}

#[test]
fn streams_after_the_final_goaway_are_ignored() {
    let mut raw = RawClient::new(Config::default());
    let bytes = raw.connect(1);
    raw.send(&bytes);
    raw.server.go_away(raw.now);
    // During the grace period new streams are still taken.
    let bytes = raw.connect(3);
    raw.send(&bytes);
    raw.now = raw.now + Duration::from_secs(1);
    raw.server.handle_timeout(raw.now);
    let mut bytes = raw.connect(5);
    bytes.extend(data_frame(5, b"ignored", true));
    raw.send(&bytes);
    let requests: Vec<u32> = raw
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Request { stream, .. } => Some(stream.get()),
            _ => None,
        })
        .collect();
    assert_eq!(requests, [1, 3]);
    assert_eq!(raw.connection_error(), None);
    let goaways = raw
        .output()
        .iter()
        .filter(|s| s.kind == kind::GOAWAY)
        .count();
    assert_eq!(goaways, 2);
}

#[test]
fn client_rejects_push_and_data_before_the_response() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p
        .client
        .send_request(&Request::connect("a:1"), false)
        .unwrap();
    p.drive();
    // DATA before any response head: stream error.
    let mut raw = Vec::new();
    encode::data_header(&mut raw, id, 1, false);
    raw.push(b'!');
    p.client.handle_input(p.now, &raw);
    p.drain_events();
    assert!(has(
        &p.client_events,
        &Event::Reset {
            stream: id,
            code: ErrorCode::PROTOCOL_ERROR,
            remote: false,
            violation: Some(Violation::StreamState {
                frame_kind: kind::DATA
            })
        }
    ));
    let id = p
        .client
        .send_request(&Request::connect("a:1"), false)
        .unwrap();
    let mut raw = Vec::new();
    let f = Frame::PushPromise {
        stream_id: id,
        end_headers: true,
        promised_id: StreamId::new(2),
        fragment: &[0x82],
    };
    encode::frame(&mut raw, &f, None);
    p.client.handle_input(p.now, &raw);
    p.drain_events();
    assert!(p.client_events.iter().any(|e| matches!(
        e,
        Event::ConnectionError {
            code: ErrorCode::PROTOCOL_ERROR,
            violation: Violation::PushNotAllowed,
            ..
        }
    )));
}

/// A ready pair whose server grants 65,535 bytes a stream, and a tunnel
/// whose client has sent the first `len` (at least 65,535) bytes of `len`:
/// its whole window, so its send capacity is 0.
fn tunnel_with_its_window_used(len: usize) -> (Pair, StreamId, Vec<u8>) {
    let cfg = Config {
        initial_stream_window: 65_535,
        ..Config::default()
    };
    let mut p = Pair::ready(Config::default(), cfg);
    let id = p.open_tunnel();
    let big = vec![1u8; len];
    assert_eq!(p.client.send_data(id, &big).unwrap(), 65_535);
    assert_eq!(p.client.send_capacity(id), 0);
    (p, id, big)
}

/// Whether `events` hold a `Writable` for any stream.
fn any_writable(events: &[Event]) -> bool {
    events.iter().any(|e| matches!(e, Event::Writable { .. }))
}

#[test]
fn writable_follows_a_window_update() {
    let (mut p, id, big) = tunnel_with_its_window_used(100_000);
    assert_eq!(p.client.send_data(id, &big).unwrap(), 0);
    p.drive();
    assert!(!any_writable(&p.client_events));
    // A small read does not yet announce credit; half the window does.
    read_some(&mut p.server, id, 1000);
    p.drive();
    assert!(!any_writable(&p.client_events));
    read_some(&mut p.server, id, 40_000);
    p.drive();
    assert!(has(&p.client_events, &Event::Writable { stream: id }));
    assert_eq!(p.client.send_capacity(id), 41_000);
}

/// `send_capacity` is a query: a 0 from it alone never arms `Writable`;
/// the `send_data` that is short-changed afterwards does.
#[test]
fn send_capacity_alone_does_not_arm_writable() {
    let (mut p, id, big) = tunnel_with_its_window_used(65_535);
    p.drive();
    read_some(&mut p.server, id, 40_000);
    p.drive();
    assert!(p.client.send_capacity(id) > 0);
    assert!(!any_writable(&p.client_events));
    // Use up the credit, then offer more than fits: that arms it.
    let credit = p.client.send_capacity(id);
    assert_eq!(p.client.send_data(id, &big).unwrap(), credit);
    p.drive();
    read_some(&mut p.server, id, 65_535);
    p.drive();
    assert!(has(&p.client_events, &Event::Writable { stream: id }));
}

fn read_some(conn: &mut Connection, stream: StreamId, n: usize) {
    let n = n.min(conn.recv_len(stream));
    conn.release_capacity(stream, n).unwrap();
}

#[test]
fn usage_errors() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p.open_tunnel();
    assert_eq!(
        p.server.send_request(&Request::connect("a:1"), false),
        Err(UsageError::CannotOpenStream)
    );
    assert_eq!(
        p.server.send_response(id, &response(200), false),
        Err(UsageError::InvalidState(id))
    );
    assert_eq!(
        p.client.release_capacity(id, 1),
        Err(UsageError::InvalidState(id))
    );
    let unknown = StreamId::new(99);
    assert_eq!(
        p.client.finish(unknown),
        Err(UsageError::UnknownStream(unknown))
    );
    assert_eq!(p.client.recv_data(unknown), b"");
    p.client.finish(id).unwrap();
    assert_eq!(p.client.finish(id), Err(UsageError::InvalidState(id)));
}

#[test]
fn a_complete_response_survives_a_later_reset() {
    let mut p = Pair::ready(Config::default(), Config::default());
    let id = p.open_tunnel();
    p.client.send_data(id, b"upload still going").unwrap();
    // RFC 9113 §8.1: the server answers in full, then stops the upload.
    p.server.send_data(id, b"complete answer").unwrap();
    p.server.finish(id).unwrap();
    p.server.reset(id, ErrorCode::NO_ERROR).unwrap();
    p.drive();
    assert!(has(
        &p.client_events,
        &Event::Reset {
            stream: id,
            code: ErrorCode::NO_ERROR,
            remote: true,
            violation: None
        }
    ));
    assert_eq!(p.client.open_streams(), 0);
    assert_eq!(
        p.client.send_data(id, b"x"),
        Err(UsageError::InvalidState(id))
    );
    assert_eq!(read_all(&mut p.client, id), b"complete answer");
    // Drained: the stream is gone for good.
    assert_eq!(
        p.client.release_capacity(id, 0),
        Err(UsageError::UnknownStream(id))
    );
}

// ---------------------------------------------------------------- fuzzing by property

/// What a hostile or buggy client may do, one frame (or application
/// action on the server side) at a time.
#[derive(Clone, Debug)]
enum Move {
    Request(u32, bool),
    RawHeaders(u32, bool, bool, Vec<u8>),
    Continuation(u32, bool, Vec<u8>),
    Data(u32, u16, bool, Option<u8>),
    Reset(u32, u32),
    Settings(Vec<(u16, u32)>),
    Ping(bool),
    GoAway(u32),
    WindowUpdate(u32, u32),
    Priority(u32, u32),
    Unknown(u8, u32),
    /// The server application answers, sends, reads or resets stream `n`.
    Answer(u32),
    Send(u32, u16),
    Read(u32),
    ResetLocal(u32),
    Finish(u32),
    Tick(u16),
}

impl Arbitrary for Move {
    fn arbitrary(g: &mut Gen) -> Move {
        // Mostly the client's own (odd) streams, so runs get past the
        // first frame; sometimes anything.
        let id = if u8::arbitrary(g) % 20 == 0 {
            RAW_ID + u32::arbitrary(g) % 12
        } else {
            u32::arbitrary(g) % 8
        };
        let small = |g: &mut Gen| {
            Vec::<u8>::arbitrary(g)
                .into_iter()
                .take(40)
                .collect::<Vec<u8>>()
        };
        match u8::arbitrary(g) % 17 {
            0 | 1 => Move::Request(id, bool::arbitrary(g)),
            2 => Move::RawHeaders(id, bool::arbitrary(g), bool::arbitrary(g), small(g)),
            3 => {
                if u8::arbitrary(g) % 4 == 0 {
                    Move::Continuation(id, bool::arbitrary(g), small(g))
                } else {
                    Move::Priority(id, u32::arbitrary(g) % 12)
                }
            }
            4 | 5 => Move::Data(
                id,
                u16::arbitrary(g),
                bool::arbitrary(g),
                Option::arbitrary(g),
            ),
            6 => Move::Reset(id, u32::arbitrary(g) % 16),
            7 => Move::Settings(
                Vec::<(u16, u32)>::arbitrary(g)
                    .into_iter()
                    .take(if u8::arbitrary(g) % 8 == 0 { 40 } else { 4 })
                    .map(|(k, v)| (k % 9, if bool::arbitrary(g) { v % 70_000 } else { v }))
                    .collect(),
            ),
            8 => Move::Ping(bool::arbitrary(g)),
            9 => {
                if u8::arbitrary(g) % 4 == 0 {
                    Move::GoAway(id)
                } else {
                    Move::Unknown(u8::arbitrary(g), id)
                }
            }
            10 => Move::WindowUpdate(id, u32::arbitrary(g) % 0x8000_0000),
            11 => Move::Priority(id, u32::arbitrary(g) % 12),
            12 => Move::Unknown(u8::arbitrary(g), id),
            13 => Move::Answer(id),
            14 => {
                if bool::arbitrary(g) {
                    Move::Send(id, u16::arbitrary(g))
                } else {
                    Move::Read(id)
                }
            }
            15 => {
                if bool::arbitrary(g) {
                    Move::ResetLocal(id)
                } else {
                    Move::Finish(id)
                }
            }
            _ => Move::Tick(u16::arbitrary(g)),
        }
    }
}

/// Ids from `RAW_ID` on are used as they are (minus `RAW_ID`); smaller ones
/// pick one of the streams opened so far.
const RAW_ID: u32 = 1000;

#[test]
fn arbitrary_frame_sequences_never_panic_and_stay_bounded() {
    fn prop(moves: Vec<Move>) -> TestResult {
        let cfg = Config {
            initial_stream_window: 70_000,
            initial_connection_window: 200_000,
            max_header_list_size: 8 << 10,
            ..Config::default()
        };
        let mut raw = RawClient::new(cfg);
        let mut closed = false;
        let opening = raw.connect(1);
        raw.send(&opening);
        let mut next = 3;
        for m in moves {
            let mut bytes = Vec::new();
            let opened = next / 2;
            let pick = |id: u32| match id {
                raw_id if raw_id >= RAW_ID => raw_id - RAW_ID,
                _ if opened == 0 => 1,
                id => 2 * (id % opened) + 1,
            };
            let sid = |id: u32| StreamId::new(pick(id));
            match m {
                Move::Request(id, end) => {
                    let id = if id >= RAW_ID { id - RAW_ID } else { next };
                    next = next.max(id + 2);
                    bytes = raw.headers(id, &connect_fields(), end);
                }
                Move::RawHeaders(id, end_stream, end_headers, fragment) => {
                    let f = Frame::Headers {
                        stream_id: sid(id),
                        end_stream,
                        end_headers,
                        priority: None,
                        fragment: &fragment,
                    };
                    encode::frame(&mut bytes, &f, None);
                }
                Move::Continuation(id, end, fragment) => {
                    bytes = continuation(pick(id), &fragment, end);
                }
                Move::Data(id, len, end, padding) => {
                    let data = vec![0x5a; usize::from(len)];
                    let f = Frame::Data {
                        stream_id: sid(id),
                        data: &data,
                        flow_len: 0,
                        first: true,
                        last: true,
                        end_stream: end,
                    };
                    encode::frame(&mut bytes, &f, padding);
                }
                Move::Reset(id, code) => encode::rst_stream(&mut bytes, sid(id), ErrorCode(code)),
                Move::Settings(list) => {
                    let list: Vec<Setting> = list
                        .into_iter()
                        .map(|(id, value)| Setting { id, value })
                        .collect();
                    encode::settings(&mut bytes, false, &list);
                }
                Move::Ping(ack) => encode::ping(&mut bytes, ack, [9; 8]),
                Move::GoAway(id) => encode::goaway(&mut bytes, sid(id), ErrorCode::NO_ERROR, b""),

                Move::WindowUpdate(id, inc) => {
                    // Zero increments are the decoder's business; encode by hand.
                    bytes.extend_from_slice(&[0, 0, 4, kind::WINDOW_UPDATE, 0]);
                    bytes.extend_from_slice(&pick(id).to_be_bytes());
                    bytes.extend_from_slice(&inc.to_be_bytes());
                }
                Move::Priority(id, dep) => {
                    bytes.extend_from_slice(&[0, 0, 5, kind::PRIORITY, 0]);
                    bytes.extend_from_slice(&pick(id).to_be_bytes());
                    bytes.extend_from_slice(&dep.to_be_bytes());
                    bytes.push(16);
                }
                Move::Unknown(k, id) => {
                    bytes.extend_from_slice(&[0, 0, 1, k.max(10), 0]);
                    bytes.extend_from_slice(&pick(id).to_be_bytes());
                    bytes.push(0);
                }
                Move::Answer(id) => {
                    let _ = raw.server.send_response(sid(id), &response(200), false);
                }
                Move::Send(id, len) => {
                    let _ = raw.server.send_data(sid(id), &vec![1; usize::from(len)]);
                }
                Move::Read(id) => {
                    let n = raw.server.recv_len(sid(id));
                    if n > 0 {
                        raw.server.release_capacity(sid(id), n).unwrap();
                    }
                }
                Move::ResetLocal(id) => {
                    let _ = raw.server.reset(sid(id), ErrorCode::CANCEL);
                }
                Move::Finish(id) => {
                    let _ = raw.server.finish(sid(id));
                }
                Move::Tick(ms) => {
                    raw.now = raw.now + Duration::from_millis(u64::from(ms) * 10);
                    raw.server.handle_timeout(raw.now);
                }
            }
            if closed {
                raw.events.clear();
            }
            let before = raw.events.len();
            raw.send(&bytes);
            let seen = raw.output();
            if let Some(unanswered) =
                unanswered_error(raw.events.get(before..).unwrap_or(&[]), &seen)
            {
                return TestResult::error(format!(
                    "{unanswered:?} not answered on the wire: {seen:?}"
                ));
            }
            if closed && !raw.events.is_empty() {
                return TestResult::error(format!("events after Closed: {:?}", raw.events));
            }
            closed |= raw.server.is_closed();
            if raw.server.open_streams() > 1000 || raw.peak_memory > 2 << 20 {
                return TestResult::failed();
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(3000)
        .quickcheck(prop as fn(Vec<Move>) -> TestResult);
}

/// The first error event that went out without its frame: a connection
/// error without a GOAWAY of its code, or a stream reset for a peer's
/// violation without an RST_STREAM of its code (or the GOAWAY of that code
/// that closed the connection, which covers every stream).
fn unanswered_error<'a>(events: &'a [Event], seen: &[Seen]) -> Option<&'a Event> {
    let sent = |kind: u8, stream: u32, code: ErrorCode| {
        seen.iter()
            .any(|s| s.kind == kind && s.stream == stream && s.code == code.0)
    };
    events.iter().find(|e| match e {
        Event::ConnectionError { code, .. } => !sent(kind::GOAWAY, 0, *code),
        Event::Reset {
            stream,
            code,
            remote: false,
            violation: Some(_),
        } => !sent(kind::RST_STREAM, stream.get(), *code) && !sent(kind::GOAWAY, 0, *code),
        _ => false,
    })
}

/// Liveness of the `Writable` contract: a sender that only retries after
/// `Writable` still gets every byte across, whatever the windows, the send
/// buffer limit, the chunking and the reader's pace.
#[test]
fn writable_driven_senders_never_stall() {
    fn prop(seed: u64, window: u16, send_buffer: u16, reads: Vec<u16>) -> TestResult {
        let cfg = Config {
            initial_stream_window: 1000 + u32::from(window),
            initial_connection_window: 70_000 + u32::from(window) * 3,
            max_send_buffer: 100 + u32::from(send_buffer),
            ..Config::default()
        };
        let mut p = Pair::ready(cfg.clone(), cfg);
        p.chunks = Some(Rng(seed | 1));
        let ids: Vec<StreamId> = (0..4).map(|_| p.open_tunnel()).collect();
        let total = 60_000u64;
        let mut sent = [0u64; 4];
        let mut received = [0u64; 4];
        let mut wants = [true; 4];
        for step in 0..200_000usize {
            for (i, id) in ids.iter().enumerate() {
                if wants[i] && sent[i] < total {
                    let data = pattern(sent[i], (total - sent[i]).min(50_000) as usize);
                    let n = p.client.send_data(*id, &data).unwrap();
                    sent[i] += n as u64;
                    // Short-changed: wait for Writable, never poll.
                    wants[i] = n == data.len();
                    if sent[i] == total {
                        p.client.finish(*id).unwrap();
                    }
                }
            }
            p.step();
            for e in p.client_events.drain(..) {
                if let Event::Writable { stream } = e {
                    if let Some(i) = ids.iter().position(|id| *id == stream) {
                        wants[i] = true;
                    }
                }
            }
            let pace = reads
                .get(step % reads.len().max(1))
                .map_or(usize::MAX, |r| 200 + usize::from(*r));
            for (i, id) in ids.iter().enumerate() {
                let data = p.server.recv_data(*id);
                let n = data.len().min(pace);
                if data[..n] != pattern(received[i], n)[..] {
                    return TestResult::error("bytes out of order");
                }
                p.server.release_capacity(*id, n).unwrap();
                received[i] += n as u64;
            }
            if received.iter().all(|r| *r == total) {
                return TestResult::passed();
            }
        }
        TestResult::error(format!("stalled: sent {sent:?} received {received:?}"))
    }
    QuickCheck::new()
        .tests(40)
        .quickcheck(prop as fn(u64, u16, u16, Vec<u16>) -> TestResult);
}

#[test]
fn a_smaller_header_table_applies_once_acknowledged() {
    let cfg = Config {
        header_table_size: 0,
        ..Config::default()
    };
    // RawClient acknowledges the server's SETTINGS at once, so the peer's
    // next block must start with a table size update (RFC 7541 §4.2); an
    // encoder that ignores our SETTINGS breaks the HPACK context.
    let mut raw = RawClient::new(cfg.clone());
    let bytes = raw.connect(1);
    raw.send(&bytes);
    assert!(matches!(
        raw.connection_error(),
        Some((ErrorCode::COMPRESSION_ERROR, Violation::Hpack(_)))
    ));
    // An encoder that honours it is fine.
    let mut raw = RawClient::new(cfg);
    raw.encoder.set_max_table_size(0);
    let bytes = raw.connect(1);
    raw.send(&bytes);
    assert_eq!(raw.connection_error(), None);
    assert!(matches!(&raw.events[..], [Event::Request { .. }]));
}
