//! (a) warren's engine as the client, the `h2` crate as the server.

use std::future::Future;
use std::time::Instant as WallClock;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use tokio::net::TcpListener;
use warren_interop::drive::Application;
use warren_proto::h2::{Config, Connection, ErrorCode, Event, Request, StreamId, UsageError};
use warren_proto::time::Instant;

use crate::h2_peer::{echo, server_builder, Windows};
use crate::payload::{plans, StreamPlan};
use crate::warren_peer::{config_with_windows, join, spawn_client, EchoClient};

/// What one h2 request handler reports: the reset it saw, if any.
type HandlerResult = Result<Option<Reason>, String>;

/// What the h2 server saw over the whole connection.
#[derive(Debug, Default)]
struct Served {
    accepted: usize,
    /// Per request, in arrival order: its authority and its handler's result.
    outcomes: Vec<(String, HandlerResult)>,
    connection_error: Option<String>,
}

/// Accepts one connection on `listener` and runs `handler` for each of its
/// requests until the connection ends. With `shutdown_after`, starts a
/// graceful shutdown once that many requests have arrived.
async fn serve<F, Fut>(
    listener: TcpListener,
    windows: Windows,
    shutdown_after: Option<usize>,
    handler: F,
) -> Served
where
    F: Fn(http::Request<RecvStream>, SendResponse<Bytes>) -> Fut,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    let (tcp, _) = listener.accept().await.expect("accept");
    // Without it Nagle holds h2's small WINDOW_UPDATEs for a delayed ACK
    // (40 ms each): the 64 KiB-window test would take minutes.
    tcp.set_nodelay(true).unwrap();
    let mut conn = server_builder(windows)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2 server handshake");
    let mut served = Served::default();
    let mut tasks = Vec::new();
    while let Some(next) = conn.accept().await {
        let (request, respond) = match next {
            Ok(accepted) => accepted,
            Err(err) => {
                served.connection_error = Some(err.to_string());
                break;
            }
        };
        served.accepted += 1;
        if shutdown_after == Some(served.accepted) {
            conn.graceful_shutdown();
        }
        let authority = request.uri().to_string();
        tasks.push((authority, tokio::spawn(handler(request, respond))));
    }
    for (authority, task) in tasks {
        let outcome = task.await.expect("handler task");
        served.outcomes.push((authority, outcome));
    }
    served
}

/// Answers a CONNECT with 200 and echoes the tunnel.
async fn echo_tunnel(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> HandlerResult {
    if request.method() != http::Method::CONNECT {
        return Err(format!("expected CONNECT, got {}", request.method()));
    }
    let send = respond
        .send_response(http::Response::new(()), false)
        .map_err(|e| format!("send_response: {e}"))?;
    echo(request.into_body(), send).await.map(|()| None)
}

fn assert_all_echoed(served: &Served, client: &EchoClient, streams: usize) {
    assert_eq!(client.failures, Vec::<String>::new());
    assert_eq!(client.verified, streams);
    assert_eq!(served.connection_error, None);
    assert_eq!(served.accepted, streams);
    for (authority, outcome) in &served.outcomes {
        assert_eq!(outcome, &Ok(None), "h2 handler for {authority}");
    }
}

#[tokio::test]
async fn thousand_concurrent_connect_streams_echo_byte_exact() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = EchoClient::new(plans(0x1000_c0de, 1000, 1 << 20));
    let client = spawn_client(listener.local_addr().unwrap(), Config::default(), client);
    let served = serve(listener, Windows::LARGE, None, echo_tunnel).await;
    let client = join(client).await;
    assert_all_echoed(&served, &client, 1000);
}

#[tokio::test]
async fn quarter_gib_on_one_stream_through_64k_windows() {
    let started = WallClock::now();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plan = StreamPlan {
        seed: 0x256,
        len: 256 << 20,
    };
    let client = spawn_client(
        listener.local_addr().unwrap(),
        config_with_windows(65_535, 65_535),
        EchoClient::new(vec![plan]),
    );
    let served = serve(listener, Windows::SMALL, None, echo_tunnel).await;
    let client = join(client).await;
    assert_all_echoed(&served, &client, 1);
    eprintln!(
        "warren client -> h2 server: 256 MiB echoed through 64 KiB windows in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn graceful_goaway_lets_open_streams_finish_and_refuses_new_ones() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let streams = 10;
    // Every stream keeps its sending side open until the GOAWAY arrives, so
    // all of them are in flight when it does.
    let client = EchoClient::new(plans(0x90a, streams, 256 << 10)).holding_finish_until_goaway();
    let client = spawn_client(listener.local_addr().unwrap(), Config::default(), client);
    let served = serve(listener, Windows::LARGE, Some(streams), echo_tunnel).await;
    let client = join(client).await;
    assert_all_echoed(&served, &client, streams);
    assert!(!client.goaways.is_empty(), "no GOAWAY reached the client");
    let last_opened = StreamId::new(2 * streams as u32 - 1);
    for goaway in &client.goaways {
        assert_eq!(goaway.code, ErrorCode::NO_ERROR);
        assert!(goaway.last_stream_id >= last_opened, "{goaway:?}");
    }
    assert_eq!(
        client.open_after_goaway,
        Some(Err(UsageError::CannotOpenStream))
    );
}

const RESET_BY_SERVER: &str = "reset-by-server.test:1";
const RESET_BY_CLIENT: &str = "reset-by-client.test:1";

/// The h2 side of the reset test: resets one tunnel itself, reports the
/// reset the client sends on another, echoes the rest.
async fn resetting_handler(
    request: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) -> HandlerResult {
    let authority = request.uri().to_string();
    if authority == RESET_BY_SERVER {
        let mut send = respond
            .send_response(http::Response::new(()), false)
            .map_err(|e| format!("send_response: {e}"))?;
        send.send_reset(Reason::CONNECT_ERROR);
        return Ok(None);
    }
    if authority != RESET_BY_CLIENT {
        return echo_tunnel(request, respond).await;
    }
    let _send = respond
        .send_response(http::Response::new(()), false)
        .map_err(|e| format!("send_response: {e}"))?;
    let mut body = request.into_body();
    while let Some(chunk) = body.data().await {
        match chunk {
            Ok(chunk) => {
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Err(err) => return Ok(err.reason()),
        }
    }
    Err("the client's stream ended without a reset".into())
}

/// Opens a tunnel the server resets and one it resets itself; once both
/// resets happened, runs one echo stream to show the connection lives on.
struct ResetClient {
    by_server: Option<StreamId>,
    by_client: Option<StreamId>,
    server_reset: Option<(ErrorCode, bool)>,
    client_reset_sent: bool,
    echo: EchoClient,
    echo_started: bool,
    failures: Vec<String>,
}

impl ResetClient {
    fn new() -> ResetClient {
        ResetClient {
            by_server: None,
            by_client: None,
            server_reset: None,
            client_reset_sent: false,
            echo: EchoClient::new(plans(0x4e5e7, 1, 100_000)),
            echo_started: false,
            failures: Vec::new(),
        }
    }

    fn ours(&self, stream: StreamId) -> bool {
        Some(stream) == self.by_server || Some(stream) == self.by_client
    }

    fn start_echo_once_both_reset(&mut self, conn: &mut Connection, now: Instant) {
        if self.server_reset.is_some() && self.client_reset_sent && !self.echo_started {
            self.echo_started = true;
            self.echo.open_streams(conn, now);
        }
    }
}

impl Application for ResetClient {
    fn handle_event(&mut self, conn: &mut Connection, now: Instant, event: Event) {
        match event {
            Event::Ready => {
                self.by_server = conn
                    .send_request(&Request::connect(RESET_BY_SERVER), false)
                    .ok();
                self.by_client = conn
                    .send_request(&Request::connect(RESET_BY_CLIENT), false)
                    .ok();
            }
            Event::Response {
                stream, response, ..
            } if Some(stream) == self.by_client => {
                assert_eq!(response.status, 200);
                if let Err(err) = conn.send_data(stream, b"doomed bytes") {
                    self.failures.push(format!("send_data: {err:?}"));
                }
                if let Err(err) = conn.reset(stream, ErrorCode::CANCEL) {
                    self.failures.push(format!("reset: {err:?}"));
                }
                self.client_reset_sent = true;
                self.start_echo_once_both_reset(conn, now);
            }
            Event::Reset {
                stream,
                code,
                remote,
                ..
            } if Some(stream) == self.by_server => {
                self.server_reset = Some((code, remote));
                self.start_echo_once_both_reset(conn, now);
            }
            Event::Data { stream } if self.ours(stream) => {
                let n = conn.recv_len(stream);
                let _ = conn.release_capacity(stream, n);
            }
            Event::StreamClosed { stream } if self.ours(stream) => self
                .failures
                .push(format!("stream {stream} closed instead of being reset")),
            Event::Response { stream, .. }
            | Event::PeerFinished { stream }
            | Event::Writable { stream }
            | Event::Reset { stream, .. }
                if self.ours(stream) => {}
            other => self.echo.handle_event(conn, now, other),
        }
    }
}

#[tokio::test]
async fn rst_stream_from_each_side_reaches_the_other_with_its_code() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = spawn_client(
        listener.local_addr().unwrap(),
        Config::default(),
        ResetClient::new(),
    );
    let served = serve(listener, Windows::LARGE, None, resetting_handler).await;
    let client = join(client).await;

    assert_eq!(client.failures, Vec::<String>::new());
    assert_eq!(client.server_reset, Some((ErrorCode::CONNECT_ERROR, true)));
    assert_eq!(client.echo.failures, Vec::<String>::new());
    assert_eq!(
        client.echo.verified, 1,
        "the connection outlived both resets"
    );

    assert_eq!(served.connection_error, None);
    let by_client = served
        .outcomes
        .iter()
        .find(|(authority, _)| authority == RESET_BY_CLIENT)
        .map(|(_, outcome)| outcome.clone());
    assert_eq!(by_client, Some(Ok(Some(Reason::CANCEL))));
}
