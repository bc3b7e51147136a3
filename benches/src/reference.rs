//! The yardstick: the bulk and churn workloads on the `h2` crate, both ends
//! in one process over `tokio::io::duplex`, on a current-thread runtime,
//! set up as `shared/notes/rust-anchors.md` §1 describes.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use h2::{client, server, RecvStream, SendStream};
use http::{Method, Request, Response, StatusCode};
use tokio::io::DuplexStream;
use tokio::runtime::Runtime;
use tokio::sync::Notify;

use crate::churn::{ECHO_LEN, PAYLOAD};
use crate::{AUTHORITY, MIB};

/// Capacity of the in-memory duplex pipe, each direction.
const DUPLEX_BUFFER: usize = 64 * MIB;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio current-thread runtime")
}

/// The anchors' "tuned" client: 4 MiB stream / 16 MiB connection windows,
/// 1 MiB frames, 4 MiB send buffer (h2's default 400 KiB would cap
/// `poll_capacity`).
fn tuned_client() -> client::Builder {
    let mut b = client::Builder::new();
    b.initial_window_size(4 * MIB as u32)
        .initial_connection_window_size(16 * MIB as u32)
        .max_frame_size(MIB as u32)
        .max_send_buffer_size(4 * MIB);
    b
}

/// The server side of [`tuned_client`].
fn tuned_server() -> server::Builder {
    let mut b = server::Builder::new();
    b.initial_window_size(4 * MIB as u32)
        .initial_connection_window_size(16 * MIB as u32)
        .max_frame_size(MIB as u32)
        .max_send_buffer_size(4 * MIB);
    b
}

fn connect_request() -> Request<()> {
    Request::builder()
        .method(Method::CONNECT)
        .uri(AUTHORITY)
        .body(())
        .expect("CONNECT request")
}

fn ok_response() -> Response<()> {
    Response::builder()
        .status(StatusCode::OK)
        .body(())
        .expect("200 response")
}

/// Opens a client connection over `io` and keeps it driven by a task.
async fn connect(io: DuplexStream) -> client::SendRequest<Bytes> {
    let (send_request, connection) = tuned_client()
        .handshake(io)
        .await
        .expect("h2 client handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send_request.ready().await.expect("h2 client ready")
}

/// An open CONNECT stream on an h2 connection pair, ready to carry bulk
/// data from client to server.
#[derive(Debug)]
pub struct H2Bulk {
    runtime: Runtime,
    send: SendStream<Bytes>,
    chunk: Bytes,
    received: Arc<AtomicU64>,
    progress: Arc<Notify>,
    _send_request: client::SendRequest<Bytes>,
}

impl H2Bulk {
    /// Connects, opens the stream and waits for the server's 200.
    pub fn new() -> H2Bulk {
        let runtime = runtime();
        let received = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(Notify::new());
        let (send_request, send) = runtime.block_on(async {
            let (client_io, server_io) = tokio::io::duplex(DUPLEX_BUFFER);
            tokio::spawn(serve_bulk(server_io, received.clone(), progress.clone()));
            let mut send_request = connect(client_io).await;
            let (response, send) = send_request
                .send_request(connect_request(), false)
                .expect("send CONNECT");
            let response = response.await.expect("CONNECT response");
            assert_eq!(response.status(), StatusCode::OK);
            (send_request, send)
        });
        H2Bulk {
            runtime,
            send,
            chunk: Bytes::from((0..MIB).map(|i| i as u8).collect::<Vec<u8>>()),
            received,
            progress,
            _send_request: send_request,
        }
    }

    /// Sends `total` payload bytes in 1 MiB application writes, each split
    /// by granted capacity the way hyper does, and returns once the server
    /// has read (and released) every one of them.
    pub fn transfer(&mut self, total: u64) {
        let target = self.received.load(Ordering::Relaxed) + total;
        let (send, chunk, received, progress) =
            (&mut self.send, &self.chunk, &self.received, &self.progress);
        self.runtime.block_on(async move {
            let mut sent = 0u64;
            while sent < total {
                let len = (total - sent).min(MIB as u64) as usize;
                let mut rest = chunk.slice(..len);
                while !rest.is_empty() {
                    send.reserve_capacity(rest.len());
                    let granted = poll_fn(|cx| send.poll_capacity(cx))
                        .await
                        .expect("bulk stream open")
                        .expect("capacity");
                    let n = granted.min(rest.len());
                    if n > 0 {
                        send.send_data(rest.split_to(n), false).expect("send_data");
                    }
                }
                sent += len as u64;
            }
            while received.load(Ordering::Relaxed) < target {
                progress.notified().await;
            }
        });
    }
}

impl Default for H2Bulk {
    fn default() -> Self {
        H2Bulk::new()
    }
}

/// The bulk server: accepts one stream, answers 200, then reads and
/// releases everything, counting the bytes.
async fn serve_bulk(io: DuplexStream, received: Arc<AtomicU64>, progress: Arc<Notify>) {
    let mut connection = tuned_server()
        .handshake(io)
        .await
        .expect("h2 server handshake");
    let (request, mut respond) = connection
        .accept()
        .await
        .expect("a CONNECT stream")
        .expect("accept");
    tokio::spawn(async move {
        let _send: SendStream<Bytes> = respond
            .send_response(ok_response(), false)
            .expect("send 200");
        let mut body = request.into_body();
        while let Some(data) = body.data().await {
            let data = data.expect("bulk data");
            body.flow_control()
                .release_capacity(data.len())
                .expect("release");
            received.fetch_add(data.len() as u64, Ordering::Relaxed);
            progress.notify_one();
        }
    });
    // Keep driving the connection until the client goes away.
    while let Some(Ok(_)) = connection.accept().await {}
}

/// Runs `streams` CONNECT open/echo/close cycles on a fresh h2 connection
/// pair (and runtime); returns the echoed bytes the client read.
pub fn churn(streams: usize) -> usize {
    runtime().block_on(async {
        let (client_io, server_io) = tokio::io::duplex(DUPLEX_BUFFER);
        tokio::spawn(serve_echo(server_io));
        let mut send_request = connect(client_io).await;
        let mut total = 0;
        for _ in 0..streams {
            send_request = send_request.ready().await.expect("h2 client ready");
            let (response, mut send) = send_request
                .send_request(connect_request(), false)
                .expect("send CONNECT");
            send.send_data(Bytes::from_static(&PAYLOAD), true)
                .expect("send payload");
            let response = response.await.expect("CONNECT response");
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            while let Some(data) = body.data().await {
                let data = data.expect("echo data");
                body.flow_control()
                    .release_capacity(data.len())
                    .expect("release");
                total += data.len();
            }
        }
        assert_eq!(total, streams * ECHO_LEN, "echo lost bytes");
        total
    })
}

/// The echo server: one task per stream sends 200, collects the body and
/// echoes it with END_STREAM once the client's side has ended.
async fn serve_echo(io: DuplexStream) {
    let mut connection = tuned_server()
        .handshake(io)
        .await
        .expect("h2 server handshake");
    while let Some(Ok((request, mut respond))) = connection.accept().await {
        tokio::spawn(async move {
            let send = respond
                .send_response(ok_response(), false)
                .expect("send 200");
            echo(request.into_body(), send).await;
        });
    }
}

async fn echo(mut body: RecvStream, mut send: SendStream<Bytes>) {
    let mut echoed = BytesMut::with_capacity(ECHO_LEN);
    while let Some(data) = body.data().await {
        let data = data.expect("request data");
        body.flow_control()
            .release_capacity(data.len())
            .expect("release");
        echoed.extend_from_slice(&data);
    }
    send.send_data(echoed.freeze(), true).expect("echo");
}

/// Opens `n` idle CONNECT streams on a fresh h2 pair (64 KiB duplex, one
/// warm-up stream first), each answered with 200 and kept open on both ends,
/// as in the anchors' memory measurement. `snapshot` is called just before
/// the `n` streams are opened and just after; the handle vectors are
/// allocated beforehand so they are not part of the difference.
pub fn idle(n: usize, mut snapshot: impl FnMut()) {
    type Held = Vec<(RecvStream, SendStream<Bytes>)>;
    let server_held: Arc<std::sync::Mutex<Held>> =
        Arc::new(std::sync::Mutex::new(Vec::with_capacity(n + 1)));
    let mut client_held: Held = Vec::with_capacity(n + 1);
    runtime().block_on(async {
        let (client_io, server_io) = tokio::io::duplex(64 << 10);
        let held = server_held.clone();
        let limit = u32::try_from(n + 1).expect("stream count fits u32");
        tokio::spawn(async move {
            let mut connection = tuned_server()
                .max_concurrent_streams(limit)
                .handshake(server_io)
                .await
                .expect("h2 server handshake");
            while let Some(Ok((request, mut respond))) = connection.accept().await {
                let send = respond
                    .send_response(ok_response(), false)
                    .expect("send 200");
                held.lock()
                    .expect("server handles")
                    .push((request.into_body(), send));
            }
        });
        let mut send_request = connect(client_io).await;
        for i in 0..=n {
            if i == 1 {
                snapshot();
            }
            send_request = send_request.ready().await.expect("h2 client ready");
            let (response, send) = send_request
                .send_request(connect_request(), false)
                .expect("send CONNECT");
            let response = response.await.expect("CONNECT response");
            assert_eq!(response.status(), StatusCode::OK);
            client_held.push((response.into_body(), send));
        }
        // Let the server task file the last stream's handles.
        tokio::task::yield_now().await;
        snapshot();
    });
    assert_eq!(client_held.len(), n + 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2_idle_snapshots_around_the_streams() {
        let mut snapshots = 0;
        idle(5, || snapshots += 1);
        assert_eq!(snapshots, 2);
    }

    #[test]
    fn h2_churn_echoes_every_stream() {
        assert_eq!(churn(20), 20 * ECHO_LEN);
    }

    #[test]
    fn h2_bulk_delivers_every_byte_across_window_refills() {
        let mut bulk = H2Bulk::new();
        // More than the 16 MiB connection window, so releases must refill it.
        bulk.transfer(20 * MIB as u64 + 3);
        bulk.transfer(MIB as u64);
        assert_eq!(bulk.received.load(Ordering::Relaxed), 21 * MIB as u64 + 3);
    }
}
