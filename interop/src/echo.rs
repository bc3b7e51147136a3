//! The server application behind `h2c-server`.
//!
//! - `GET` and `HEAD`: `200` with a short text body (none for `HEAD`); any
//!   request body is read and dropped. Any other request without a body gets
//!   the same answer.
//! - `CONNECT` to any authority: `200`, then every byte of the stream is
//!   sent back, and END_STREAM answers END_STREAM (a TCP echo service).
//! - Any other method (`POST`, `PUT`, ...) with a body: `200`, then the
//!   request body is streamed back.
//!
//! Echoing takes only what the send window accepts and releases exactly
//! that much receive capacity, so a slow reader slows its own sender down
//! instead of growing a buffer here.

use std::collections::BTreeMap;
use std::fmt;

use warren_proto::h2::{Connection, ErrorCode, Event, Header, Response, StreamId, Violation};
use warren_proto::time::Instant;

use crate::drive::Application;

/// The body of every `GET` answer.
pub const GET_BODY: &[u8] = b"warren h2c-server\n";

/// The most bytes echoed per `send_data` call: a bound on the copy buffer.
const ECHO_CHUNK: usize = 64 << 10;

/// The connection error the engine reported, if the peer broke a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionFailure {
    /// The code of the GOAWAY we sent.
    pub code: ErrorCode,
    /// The rule the peer broke.
    pub violation: Violation,
    /// The type of the frame that broke it, if a frame did.
    pub frame_kind: Option<u8>,
}

impl fmt::Display for ConnectionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GOAWAY {}: {:?}", self.code, self.violation)?;
        if let Some(kind) = self.frame_kind {
            write!(f, " (frame type 0x{kind:x})")?;
        }
        Ok(())
    }
}

/// What we send on one stream.
#[derive(Debug)]
enum Reply {
    /// The peer's bytes, as they arrive.
    Echo,
    /// A fixed body; the peer's bytes are dropped.
    Fixed { body: &'static [u8], sent: usize },
}

impl Reply {
    fn fixed() -> Reply {
        Reply::Fixed {
            body: GET_BODY,
            sent: 0,
        }
    }
}

/// The head of every fixed-body answer.
fn fixed_head() -> Response {
    Response {
        status: 200,
        headers: vec![
            Header::new("content-type", "text/plain"),
            Header::new("content-length", GET_BODY.len().to_string()),
        ],
    }
}

/// One request being answered.
#[derive(Debug)]
struct Exchange {
    reply: Reply,
    peer_finished: bool,
    finished: bool,
}

/// The echo server. See the module docs for what it answers.
#[derive(Debug, Default)]
pub struct EchoServer {
    exchanges: BTreeMap<StreamId, Exchange>,
    scratch: Vec<u8>,
    failure: Option<ConnectionFailure>,
    requests: u64,
}

impl EchoServer {
    /// A server with no stream yet.
    pub fn new() -> EchoServer {
        EchoServer::default()
    }

    /// The connection error the engine reported, if any.
    pub fn failure(&self) -> Option<ConnectionFailure> {
        self.failure
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    fn answer(&mut self, conn: &mut Connection, stream: StreamId, method: &[u8], end: bool) {
        self.requests += 1;
        let reply = match method {
            b"HEAD" => {
                let _ = conn.send_response(stream, &fixed_head(), true);
                return;
            }
            b"CONNECT" => Reply::Echo,
            // A request without a body (a bodiless POST, say) gets the fixed
            // body instead of an empty echo: conformance suites send those
            // and expect DATA back.
            b"GET" => Reply::fixed(),
            _ if end => Reply::fixed(),
            _ => Reply::Echo,
        };
        let head = match reply {
            Reply::Echo => Response {
                status: 200,
                headers: Vec::new(),
            },
            Reply::Fixed { .. } => fixed_head(),
        };
        if conn.send_response(stream, &head, false).is_err() {
            return;
        }
        self.track(stream, reply, end);
        self.pump(conn, stream);
    }

    fn track(&mut self, stream: StreamId, reply: Reply, peer_finished: bool) {
        let exchange = Exchange {
            reply,
            peer_finished,
            finished: false,
        };
        self.exchanges.insert(stream, exchange);
    }

    /// Moves as much of `stream` forward as the windows allow now.
    fn pump(&mut self, conn: &mut Connection, stream: StreamId) {
        let Some(exchange) = self.exchanges.get_mut(&stream) else {
            return;
        };
        let moved = match &mut exchange.reply {
            Reply::Echo => echo(conn, stream, &mut self.scratch),
            Reply::Fixed { body, sent } => send_fixed(conn, stream, body, sent),
        };
        let Ok(done_sending) = moved else {
            // The stream is gone under us; its Reset/StreamClosed follows.
            self.exchanges.remove(&stream);
            return;
        };
        let all_sent = match exchange.reply {
            Reply::Echo => exchange.peer_finished && done_sending,
            Reply::Fixed { .. } => done_sending,
        };
        if all_sent && !exchange.finished {
            exchange.finished = true;
            if conn.finish(stream).is_err() {
                self.exchanges.remove(&stream);
            }
        }
    }
}

/// Sends what has arrived on `stream` back, as far as the send window
/// allows. True when nothing received is left to send.
fn echo(
    conn: &mut Connection,
    stream: StreamId,
    scratch: &mut Vec<u8>,
) -> Result<bool, warren_proto::h2::UsageError> {
    loop {
        let pending = conn.recv_data(stream);
        if pending.is_empty() {
            return Ok(true);
        }
        // Offer at least one byte even when the window is shut: only a
        // short `send_data` puts the stream in line for `Writable`.
        let n = pending
            .len()
            .min(ECHO_CHUNK)
            .min(conn.send_capacity(stream).max(1));
        // recv_data borrows the connection, send_data needs it mutably.
        scratch.clear();
        scratch.extend_from_slice(&pending[..n]);
        let sent = conn.send_data(stream, scratch)?;
        conn.release_capacity(stream, sent)?;
        if sent < n {
            return Ok(false);
        }
    }
}

/// Sends the rest of a fixed body and drops whatever the peer sends. True
/// once the whole body is queued.
fn send_fixed(
    conn: &mut Connection,
    stream: StreamId,
    body: &[u8],
    sent: &mut usize,
) -> Result<bool, warren_proto::h2::UsageError> {
    let unread = conn.recv_len(stream);
    if unread > 0 {
        conn.release_capacity(stream, unread)?;
    }
    let rest = body.get(*sent..).unwrap_or_default();
    if !rest.is_empty() {
        *sent += conn.send_data(stream, rest)?;
    }
    Ok(*sent == body.len())
}

impl Application for EchoServer {
    fn handle_event(&mut self, conn: &mut Connection, _now: Instant, event: Event) {
        match event {
            Event::Request {
                stream,
                request,
                end_stream,
            } => self.answer(conn, stream, &request.method, end_stream),
            Event::Data { stream } | Event::Writable { stream } => self.pump(conn, stream),
            Event::PeerFinished { stream } | Event::Trailers { stream, .. } => {
                if let Some(exchange) = self.exchanges.get_mut(&stream) {
                    exchange.peer_finished = true;
                }
                self.pump(conn, stream);
            }
            Event::Reset { stream, .. } | Event::StreamClosed { stream } => {
                self.exchanges.remove(&stream);
            }
            Event::ConnectionError {
                code,
                violation,
                frame_kind,
            } => {
                self.failure = Some(ConnectionFailure {
                    code,
                    violation,
                    frame_kind,
                });
            }
            // A client's GOAWAY only refuses streams we would open, and we
            // open none: it may go on using the connection, and ends it by
            // closing the socket.
            Event::GoAway { .. }
            | Event::Ready
            | Event::Response { .. }
            | Event::PingAck { .. }
            | Event::Closed => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::h2::{Config, Request, Role};

    /// A client connection wired in memory to a server connection running
    /// the echo application.
    struct Pair {
        client: Connection,
        server: Connection,
        echo: EchoServer,
    }

    impl Pair {
        fn new(client_config: Config) -> Pair {
            let mut pair = Pair {
                client: Connection::new(Role::Client, client_config, Instant::ZERO),
                server: Connection::new(Role::Server, Config::default(), Instant::ZERO),
                echo: EchoServer::new(),
            };
            pair.run();
            pair
        }

        /// Moves bytes and events until both sides are quiet; returns the
        /// client's events.
        fn run(&mut self) -> Vec<Event> {
            let now = Instant::ZERO;
            let mut client_events = Vec::new();
            loop {
                let mut wire = Vec::new();
                let mut moved = self.client.poll_transmit(now, &mut wire) > 0;
                self.server.handle_input(now, &wire);
                while let Some(event) = self.server.poll_event() {
                    self.echo.handle_event(&mut self.server, now, event);
                    moved = true;
                }
                wire.clear();
                moved |= self.server.poll_transmit(now, &mut wire) > 0;
                self.client.handle_input(now, &wire);
                while let Some(event) = self.client.poll_event() {
                    client_events.push(event);
                    moved = true;
                }
                if !moved {
                    return client_events;
                }
            }
        }

        /// Takes what the client has received on `stream`.
        fn take_body(&mut self, stream: StreamId) -> Vec<u8> {
            let body: Vec<u8> = self.client.recv_pieces(stream).flatten().copied().collect();
            self.client.release_capacity(stream, body.len()).unwrap();
            body
        }
    }

    fn request(method: &'static str) -> Request {
        Request {
            method: method.into(),
            scheme: Some("http".into()),
            authority: Some("example.test".into()),
            path: Some("/".into()),
            headers: Vec::new(),
        }
    }

    fn status_of(events: &[Event], stream: StreamId) -> Option<(u16, bool)> {
        events.iter().find_map(|event| match event {
            Event::Response {
                stream: s,
                response,
                end_stream,
            } if *s == stream => Some((response.status, *end_stream)),
            _ => None,
        })
    }

    fn finished(events: &[Event], stream: StreamId) -> bool {
        events.contains(&Event::PeerFinished { stream })
    }

    #[test]
    fn get_and_bodiless_post_get_the_fixed_body_and_head_gets_none() {
        let mut pair = Pair::new(Config::default());
        let get = pair.client.send_request(&request("GET"), true).unwrap();
        let post = pair.client.send_request(&request("POST"), true).unwrap();
        let head = pair.client.send_request(&request("HEAD"), true).unwrap();
        let events = pair.run();
        assert_eq!(status_of(&events, get), Some((200, false)));
        assert_eq!(status_of(&events, post), Some((200, false)));
        assert_eq!(status_of(&events, head), Some((200, true)));
        assert!(finished(&events, get) && finished(&events, post));
        assert_eq!(pair.take_body(get), GET_BODY);
        assert_eq!(pair.take_body(post), GET_BODY);
        assert_eq!(pair.echo.requests(), 3);
    }

    #[test]
    fn post_body_and_connect_tunnel_come_back_byte_for_byte() {
        let mut pair = Pair::new(Config::default());
        let post = pair.client.send_request(&request("POST"), false).unwrap();
        let tunnel = pair
            .client
            .send_request(&Request::connect("10.0.0.1:80"), false)
            .unwrap();
        assert_eq!(pair.client.send_data(post, b"posted").unwrap(), 6);
        assert_eq!(pair.client.send_data(tunnel, b"tunneled").unwrap(), 8);
        pair.client.finish(post).unwrap();
        let events = pair.run();
        assert_eq!(status_of(&events, post), Some((200, false)));
        assert_eq!(status_of(&events, tunnel), Some((200, false)));
        assert!(finished(&events, post));
        assert!(
            !finished(&events, tunnel),
            "the tunnel's client side is open"
        );
        assert_eq!(pair.take_body(post), b"posted");
        assert_eq!(pair.take_body(tunnel), b"tunneled");
        pair.client.finish(tunnel).unwrap();
        assert!(finished(&pair.run(), tunnel));
    }

    #[test]
    fn echo_waits_for_window_updates_instead_of_stalling() {
        // The client accepts 1000 bytes at a time, so the server's echo of
        // 50 000 bytes must stop and resume on `Writable` many times.
        let small_window = Config {
            initial_stream_window: 1000,
            ..Config::default()
        };
        let mut pair = Pair::new(small_window);
        let stream = pair.client.send_request(&request("PUT"), false).unwrap();
        let sent: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(pair.client.send_data(stream, &sent).unwrap(), sent.len());
        pair.client.finish(stream).unwrap();
        let mut echoed = Vec::new();
        let mut done = false;
        for _ in 0..10_000 {
            done |= finished(&pair.run(), stream);
            echoed.extend(pair.take_body(stream));
            if done && pair.client.recv_data(stream).is_empty() {
                break;
            }
        }
        assert!(done, "the echo never finished");
        assert_eq!(echoed, sent);
    }
}
