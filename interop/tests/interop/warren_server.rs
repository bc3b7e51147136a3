//! (b) the `h2` crate as the client, warren's echo server as the server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant as WallClock};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::Reason;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use warren_interop::drive::Application;
use warren_interop::echo::EchoServer;
use warren_proto::h2::{Config, Connection, ErrorCode, Event, Response, StreamId};
use warren_proto::time::Instant;

use crate::h2_peer::{client_builder, connect_request, receive_payload, send_payload, Windows};
use crate::payload::{plans, StreamPlan};
use crate::warren_peer::{config_with_windows, join, spawn_server, ECHO_AUTHORITY};

/// An h2 client connection to `addr`, its connection future running on a
/// task of its own.
async fn h2_client(
    addr: SocketAddr,
    windows: Windows,
) -> (SendRequest<Bytes>, JoinHandle<Result<(), h2::Error>>) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.set_nodelay(true).unwrap();
    let (send_request, conn) = client_builder(windows)
        .handshake(tcp)
        .await
        .expect("h2 client handshake");
    (send_request, tokio::spawn(conn))
}

/// One CONNECT stream: sends `plan`'s payload and checks every byte of the
/// echo, both at once (the echo stalls if nobody reads it).
async fn echo_stream(send_request: SendRequest<Bytes>, plan: StreamPlan) -> Result<(), String> {
    let mut send_request = send_request
        .ready()
        .await
        .map_err(|e| format!("ready: {e}"))?;
    let (response, mut send) = send_request
        .send_request(connect_request(ECHO_AUTHORITY), false)
        .map_err(|e| format!("send_request: {e}"))?;
    let sending = send_payload(&mut send, plan.payload());
    let receiving = async {
        let response = response.await.map_err(|e| format!("response: {e}"))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("status {}", response.status()));
        }
        receive_payload(&mut response.into_body(), plan.payload()).await
    };
    let (sent, received) = tokio::join!(sending, receiving);
    sent.and(received)
}

/// Closes the h2 client (dropping its last handle sends GOAWAY) and waits
/// until both ends are done.
async fn close<A: Send + 'static>(
    send_request: SendRequest<Bytes>,
    conn: JoinHandle<Result<(), h2::Error>>,
    server: std::thread::JoinHandle<crate::warren_peer::Finished<A>>,
) -> A {
    drop(send_request);
    conn.await
        .expect("h2 connection task")
        .expect("h2 client connection ended with an error");
    join(server).await
}

#[tokio::test]
async fn thousand_concurrent_connect_streams_echo_byte_exact() {
    let (addr, server) = spawn_server(Config::default(), EchoServer::new());
    let (send_request, conn) = h2_client(addr, Windows::LARGE).await;
    let streams: Vec<_> = plans(0xb0b, 1000, 1 << 20)
        .into_iter()
        .map(|plan| tokio::spawn(echo_stream(send_request.clone(), plan)))
        .collect();
    for (i, stream) in streams.into_iter().enumerate() {
        assert_eq!(stream.await.expect("stream task"), Ok(()), "stream #{i}");
    }
    let server = close(send_request, conn, server).await;
    assert_eq!(server.requests(), 1000);
    assert_eq!(server.failure(), None);
}

#[tokio::test]
async fn echo_held_back_by_the_send_buffer_resumes_without_new_input() {
    // A 16 KiB send buffer makes the server's echo wait for `Writable`,
    // which the engine raises while its output is transmitted: a host loop
    // that does not look for events after transmitting stalls once the
    // client has sent everything (no keepalive PING would wake it here).
    let config = Config {
        max_send_buffer: 16 << 10,
        keepalive_interval: None,
        ..Config::default()
    };
    let (addr, server) = spawn_server(config, EchoServer::new());
    let (send_request, conn) = h2_client(addr, Windows::LARGE).await;
    let plan = StreamPlan {
        seed: 0x5e9d,
        len: 3 << 20,
    };
    let echoed = tokio::time::timeout(
        Duration::from_secs(60),
        echo_stream(send_request.clone(), plan),
    )
    .await
    .expect("the echo stalled");
    assert_eq!(echoed, Ok(()));
    let server = close(send_request, conn, server).await;
    assert_eq!(server.failure(), None);
}

#[tokio::test]
async fn quarter_gib_on_one_stream_through_64k_windows() {
    let started = WallClock::now();
    let (addr, server) = spawn_server(config_with_windows(65_535, 65_535), EchoServer::new());
    let (send_request, conn) = h2_client(addr, Windows::SMALL).await;
    let plan = StreamPlan {
        seed: 0x256b,
        len: 256 << 20,
    };
    assert_eq!(echo_stream(send_request.clone(), plan).await, Ok(()));
    let server = close(send_request, conn, server).await;
    assert_eq!(server.failure(), None);
    eprintln!(
        "h2 client -> warren server: 256 MiB echoed through 64 KiB windows in {:?}",
        started.elapsed()
    );
}

/// The echo server, but it starts a graceful shutdown as the `after`th
/// request arrives, before answering it.
struct GoAwayAfter {
    echo: EchoServer,
    after: u64,
}

impl Application for GoAwayAfter {
    fn handle_event(&mut self, conn: &mut Connection, now: Instant, event: Event) {
        if matches!(event, Event::Request { .. }) && self.echo.requests() + 1 == self.after {
            conn.go_away(now);
        }
        self.echo.handle_event(conn, now, event);
    }
}

#[tokio::test]
async fn graceful_goaway_lets_open_streams_finish_and_refuses_new_ones() {
    let streams = 10;
    let server = GoAwayAfter {
        echo: EchoServer::new(),
        after: streams as u64,
    };
    let (addr, server) = spawn_server(Config::default(), server);
    let (send_request, conn) = h2_client(addr, Windows::LARGE).await;
    let plans = plans(0x90a2, streams, 256 << 10);

    // Open every stream and wait for every 200: the GOAWAY precedes the
    // last one, so all streams are open and unfinished when it arrives.
    let mut open = Vec::new();
    for _ in &plans {
        let mut ready = send_request.clone().ready().await.expect("ready");
        let (response, send) = ready
            .send_request(connect_request(ECHO_AUTHORITY), false)
            .expect("send_request before the GOAWAY");
        open.push((response, send));
    }
    let mut tunnels = Vec::new();
    for (response, send) in open {
        let response = response.await.expect("response");
        assert_eq!(response.status(), http::StatusCode::OK);
        tunnels.push((response.into_body(), send));
    }

    let refused = match send_request.clone().ready().await {
        Err(err) => err,
        Ok(mut ready) => ready
            .send_request(connect_request(ECHO_AUTHORITY), false)
            .expect_err("a new stream after GOAWAY was accepted"),
    };
    assert!(refused.is_go_away(), "{refused}");
    assert_eq!(refused.reason(), Some(Reason::NO_ERROR));

    for ((mut body, mut send), plan) in tunnels.into_iter().zip(&plans) {
        let (sent, received) = tokio::join!(
            send_payload(&mut send, plan.payload()),
            receive_payload(&mut body, plan.payload())
        );
        assert_eq!(sent.and(received), Ok(()));
    }
    let server = close(send_request, conn, server).await;
    assert_eq!(server.echo.requests(), streams as u64);
    assert_eq!(server.echo.failure(), None);
}

const RESET_BY_SERVER: &str = "reset-by-server.test:1";
const RESET_BY_CLIENT: &str = "reset-by-client.test:1";

/// A reset the server saw: the stream's authority, the code, and whether
/// the peer sent it.
type ResetSeen = (String, ErrorCode, bool);

/// The echo server, but it resets tunnels to [`RESET_BY_SERVER`] right
/// after answering 200, and records every reset.
#[derive(Default)]
struct ResettingServer {
    echo: EchoServer,
    authorities: BTreeMap<StreamId, String>,
    resets: Vec<ResetSeen>,
}

impl Application for ResettingServer {
    fn handle_event(&mut self, conn: &mut Connection, now: Instant, event: Event) {
        match &event {
            Event::Request {
                stream, request, ..
            } => {
                let authority = request.authority.clone().unwrap_or_default();
                let authority = String::from_utf8_lossy(&authority).into_owned();
                self.authorities.insert(*stream, authority.clone());
                if authority == RESET_BY_SERVER {
                    let ok = Response {
                        status: 200,
                        headers: Vec::new(),
                    };
                    conn.send_response(*stream, &ok, false)
                        .expect("send_response");
                    conn.reset(*stream, ErrorCode::CONNECT_ERROR)
                        .expect("reset");
                    return;
                }
            }
            Event::Reset {
                stream,
                code,
                remote,
                ..
            } => {
                let authority = self.authorities.get(stream).cloned().unwrap_or_default();
                self.resets.push((authority, *code, *remote));
            }
            _ => {}
        }
        self.echo.handle_event(conn, now, event);
    }
}

#[tokio::test]
async fn rst_stream_from_each_side_reaches_the_other_with_its_code() {
    let (addr, server) = spawn_server(Config::default(), ResettingServer::default());
    let (send_request, conn) = h2_client(addr, Windows::LARGE).await;

    // The server resets this tunnel after its 200.
    let reason = {
        let (response, _send) = send_request
            .clone()
            .ready()
            .await
            .expect("ready")
            .send_request(connect_request(RESET_BY_SERVER), false)
            .expect("send_request");
        match response.await {
            Err(err) => err.reason(),
            Ok(response) => {
                assert_eq!(response.status(), http::StatusCode::OK);
                let mut body = response.into_body();
                loop {
                    match body.data().await {
                        Some(Ok(_)) => {}
                        Some(Err(err)) => break err.reason(),
                        None => break None,
                    }
                }
            }
        }
    };
    assert_eq!(reason, Some(Reason::CONNECT_ERROR));

    // We reset this one after its 200. (Blocks end every h2 handle: the
    // connection closes only once all are gone.)
    {
        let (response, mut send) = send_request
            .clone()
            .ready()
            .await
            .expect("ready")
            .send_request(connect_request(RESET_BY_CLIENT), false)
            .expect("send_request");
        let response = response.await.expect("response");
        assert_eq!(response.status(), http::StatusCode::OK);
        send.send_data(Bytes::from_static(b"doomed bytes"), false)
            .expect("send_data");
        send.send_reset(Reason::CANCEL);
    }

    // The connection outlives both resets.
    let plan = plans(0x4e5e7b, 1, 100_000)[0];
    assert_eq!(echo_stream(send_request.clone(), plan).await, Ok(()));

    let server = close(send_request, conn, server).await;
    assert_eq!(server.echo.failure(), None);
    assert!(
        server
            .resets
            .contains(&(RESET_BY_CLIENT.to_string(), ErrorCode::CANCEL, true)),
        "{:?}",
        server.resets
    );
}
