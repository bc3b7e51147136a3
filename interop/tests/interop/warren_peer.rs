//! warren's side of the tests: the engine on its own thread (so both ends
//! get a core), and the client applications the tests run on it.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;

use warren_interop::drive::{drive_blocking, Application};
use warren_proto::h2::{Config, Connection, ErrorCode, Event, Request, Role, StreamId, UsageError};
use warren_proto::time::Instant;

use crate::payload::{Payload, StreamPlan};

/// The most bytes handed to `send_data` at once.
const CHUNK: usize = 64 << 10;

/// The authority every echo stream asks for.
pub const ECHO_AUTHORITY: &str = "echo.test:7";

/// The engine's configuration with both windows at `window`.
pub fn config_with_windows(stream: u32, connection: u32) -> Config {
    Config {
        initial_stream_window: stream,
        initial_connection_window: connection,
        ..Config::default()
    }
}

/// A finished warren connection: its application and how the loop ended.
pub type Finished<A> = (A, io::Result<()>);

/// Runs `app` as a client connected to `addr`, on its own thread.
pub fn spawn_client<A>(addr: SocketAddr, config: Config, mut app: A) -> JoinHandle<Finished<A>>
where
    A: Application + Send + 'static,
{
    std::thread::spawn(move || {
        let result = TcpStream::connect(addr)
            .and_then(|stream| drive_blocking(Role::Client, config, stream, &mut app));
        (app, result)
    })
}

/// Runs `app` as the server of the first connection to a fresh loopback
/// port, on its own thread. Returns the port's address.
pub fn spawn_server<A>(config: Config, mut app: A) -> (SocketAddr, JoinHandle<Finished<A>>)
where
    A: Application + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    let handle = std::thread::spawn(move || {
        let result = listener
            .accept()
            .and_then(|(stream, _)| drive_blocking(Role::Server, config, stream, &mut app));
        (app, result)
    });
    (addr, handle)
}

/// Waits for a warren thread without blocking the async runtime that
/// drives the other end.
pub async fn join<A: Send + 'static>(handle: JoinHandle<Finished<A>>) -> A {
    let (app, result) = tokio::task::spawn_blocking(move || handle.join())
        .await
        .expect("join task")
        .expect("warren thread panicked");
    result.expect("warren connection loop failed");
    app
}

/// A GOAWAY the client received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoAwaySeen {
    pub last_stream_id: StreamId,
    pub code: ErrorCode,
}

/// One echo stream in flight.
#[derive(Debug)]
struct EchoStream {
    to_send: Payload,
    /// Bytes generated from `to_send` that `send_data` has not taken yet.
    unsent: Vec<u8>,
    unsent_at: usize,
    expected: Payload,
    status: Option<u16>,
    finished: bool,
    peer_finished: bool,
}

/// A client that opens one CONNECT stream per plan, sends each plan's
/// payload and checks that exactly the same bytes come back; once every
/// stream is done it closes the connection gracefully.
#[derive(Debug)]
pub struct EchoClient {
    plans: Vec<StreamPlan>,
    opened: usize,
    ended: usize,
    streams: BTreeMap<StreamId, EchoStream>,
    /// Keep every stream's sending side open until a GOAWAY arrives.
    hold_finish_until_goaway: bool,
    /// Every stream that came back complete and byte-exact.
    pub verified: usize,
    /// What went wrong, one line per problem.
    pub failures: Vec<String>,
    /// GOAWAYs received.
    pub goaways: Vec<GoAwaySeen>,
    /// What `send_request` answered right after the first GOAWAY.
    pub open_after_goaway: Option<Result<StreamId, UsageError>>,
}

impl EchoClient {
    pub fn new(plans: Vec<StreamPlan>) -> EchoClient {
        EchoClient {
            plans,
            opened: 0,
            ended: 0,
            streams: BTreeMap::new(),
            hold_finish_until_goaway: false,
            verified: 0,
            failures: Vec::new(),
            goaways: Vec::new(),
            open_after_goaway: None,
        }
    }

    /// Streams send their payload but not END_STREAM until a GOAWAY came.
    pub fn holding_finish_until_goaway(mut self) -> EchoClient {
        self.hold_finish_until_goaway = true;
        self
    }

    /// True once every planned stream has ended, well or not.
    pub fn all_ended(&self) -> bool {
        self.ended == self.plans.len()
    }

    /// Opens the planned streams the peer allows now.
    pub fn open_streams(&mut self, conn: &mut Connection, now: Instant) {
        while self.opened < self.plans.len() && conn.can_open_stream() {
            let plan = self.plans[self.opened];
            let stream = match conn.send_request(&Request::connect(ECHO_AUTHORITY), false) {
                Ok(stream) => stream,
                Err(err) => {
                    self.failures.push(format!("send_request: {err:?}"));
                    return;
                }
            };
            self.opened += 1;
            let echo = EchoStream {
                to_send: plan.payload(),
                unsent: Vec::new(),
                unsent_at: 0,
                expected: plan.payload(),
                status: None,
                finished: false,
                peer_finished: false,
            };
            self.streams.insert(stream, echo);
            self.send_more(conn, stream);
        }
        self.close_if_done(conn, now);
    }

    /// Offers the stream's next bytes until `send_data` takes fewer than
    /// offered (then `Writable` follows), and ends the stream once all are
    /// taken. Checks that `send_data` takes exactly what `send_capacity`
    /// promised.
    fn send_more(&mut self, conn: &mut Connection, stream: StreamId) {
        let Some(echo) = self.streams.get_mut(&stream) else {
            return;
        };
        loop {
            if echo.unsent_at == echo.unsent.len() {
                let n = echo.to_send.remaining().min(CHUNK as u64) as usize;
                if n == 0 {
                    break;
                }
                echo.unsent.resize(n, 0);
                echo.to_send.fill(&mut echo.unsent);
                echo.unsent_at = 0;
            }
            let offer = &echo.unsent[echo.unsent_at..];
            let promised = conn.send_capacity(stream).min(offer.len());
            match conn.send_data(stream, offer) {
                Ok(sent) if sent == promised => echo.unsent_at += sent,
                other => {
                    self.failures.push(format!(
                        "stream {stream}: send_data of {} bytes gave {other:?}, send_capacity promised {promised}",
                        offer.len()
                    ));
                    return;
                }
            }
            if echo.unsent_at < echo.unsent.len() {
                break;
            }
        }
        let all_taken = echo.to_send.remaining() == 0 && echo.unsent_at == echo.unsent.len();
        let hold = self.hold_finish_until_goaway && self.goaways.is_empty();
        if all_taken && !echo.finished && !hold {
            echo.finished = true;
            if let Err(err) = conn.finish(stream) {
                self.failures
                    .push(format!("stream {stream}: finish: {err:?}"));
            }
        }
    }

    fn receive(&mut self, conn: &mut Connection, stream: StreamId) {
        let Some(echo) = self.streams.get_mut(&stream) else {
            self.failures
                .push(format!("stream {stream}: data on an unknown stream"));
            return;
        };
        // The buffer comes in pieces: check and release each in turn.
        loop {
            let data = conn.recv_data(stream);
            let n = data.len();
            if n == 0 {
                break;
            }
            if let Err(err) = echo.expected.check(data) {
                self.failures.push(format!("stream {stream}: {err}"));
            }
            if let Err(err) = conn.release_capacity(stream, n) {
                self.failures
                    .push(format!("stream {stream}: release_capacity: {err:?}"));
                break;
            }
        }
    }

    fn stream_ended(&mut self, conn: &mut Connection, now: Instant) {
        self.ended += 1;
        self.open_streams(conn, now);
    }

    fn close_if_done(&mut self, conn: &mut Connection, now: Instant) {
        if self.all_ended() && !conn.is_closed() {
            conn.go_away(now);
        }
    }
}

impl Application for EchoClient {
    fn handle_event(&mut self, conn: &mut Connection, now: Instant, event: Event) {
        match event {
            Event::Ready => self.open_streams(conn, now),
            Event::Response {
                stream,
                response,
                end_stream,
            } => {
                if response.status != 200 || end_stream {
                    self.failures.push(format!(
                        "stream {stream}: response {} (end_stream {end_stream})",
                        response.status
                    ));
                }
                if let Some(echo) = self.streams.get_mut(&stream) {
                    echo.status = Some(response.status);
                }
            }
            Event::Data { stream } => self.receive(conn, stream),
            Event::Writable { stream } => self.send_more(conn, stream),
            Event::PeerFinished { stream } => {
                if let Some(echo) = self.streams.get_mut(&stream) {
                    echo.peer_finished = true;
                    if let Err(err) = echo.expected.check_complete() {
                        self.failures.push(format!("stream {stream}: {err}"));
                    }
                }
            }
            Event::StreamClosed { stream } => {
                match self.streams.remove(&stream) {
                    Some(echo)
                        if echo.finished && echo.peer_finished && echo.status == Some(200) =>
                    {
                        if echo.expected.check_complete().is_ok() {
                            self.verified += 1;
                        }
                    }
                    other => self
                        .failures
                        .push(format!("stream {stream}: closed unfinished: {other:?}")),
                }
                self.stream_ended(conn, now);
            }
            Event::Reset {
                stream,
                code,
                remote,
                violation,
            } => {
                self.failures.push(format!(
                    "stream {stream}: reset {code} (remote {remote}, {violation:?})"
                ));
                if self.streams.remove(&stream).is_some() {
                    self.stream_ended(conn, now);
                }
            }
            Event::GoAway {
                last_stream_id,
                code,
                ..
            } => {
                let first = self.goaways.is_empty();
                self.goaways.push(GoAwaySeen {
                    last_stream_id,
                    code,
                });
                if first {
                    self.open_after_goaway =
                        Some(conn.send_request(&Request::connect(ECHO_AUTHORITY), false));
                    let open: Vec<StreamId> = self.streams.keys().copied().collect();
                    for stream in open {
                        self.send_more(conn, stream);
                    }
                }
            }
            Event::ConnectionError {
                code, violation, ..
            } => self
                .failures
                .push(format!("connection error {code}: {violation:?}")),
            Event::Trailers { stream, .. } => self
                .failures
                .push(format!("stream {stream}: unexpected trailers")),
            Event::Request { stream, .. } => self
                .failures
                .push(format!("stream {stream}: a request sent to a client")),
            Event::PingAck { .. } | Event::Closed => {}
        }
    }
}
