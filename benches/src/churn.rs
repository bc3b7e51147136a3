//! CONNECT stream churn on two warren connections: open, echo 100 bytes,
//! close, one stream after another on one fresh connection.
//!
//! Per stream the client sends HEADERS and DATA(100 B, END_STREAM) at once,
//! without waiting for the 200 (the anchors' "sequential, data sent before
//! the 200"); the server answers 200, echoes the bytes and ends its side;
//! the client reads the echo and waits until the stream is closed.

use warren_proto::h2::{Config, Event, Request, Response, StreamId};

use crate::pair::Pair;
use crate::AUTHORITY;

/// Bytes echoed per stream.
pub const ECHO_LEN: usize = 100;

/// The payload every stream carries.
pub static PAYLOAD: [u8; ECHO_LEN] = [0x5a; ECHO_LEN];

/// Runs `streams` open/echo/close cycles on a fresh connection pair with
/// warren's default configuration. Returns the echoed bytes the clients
/// read (always `streams * ECHO_LEN`; checked).
pub fn run(streams: usize) -> usize {
    let mut pair = Pair::new(Config::default());
    let mut echo = Vec::with_capacity(ECHO_LEN);
    let request = Request::connect(AUTHORITY);
    let ok = Response {
        status: 200,
        headers: Vec::new(),
    };
    let mut total = 0;
    for _ in 0..streams {
        total += cycle(&mut pair, &request, &ok, &mut echo);
    }
    assert_eq!(total, streams * ECHO_LEN, "echo lost bytes");
    total
}

/// One stream's life; returns the bytes the client read back.
fn cycle(pair: &mut Pair, request: &Request, ok: &Response, echo: &mut Vec<u8>) -> usize {
    let stream = pair.client(|c| -> StreamId {
        let id = c.send_request(request, false).expect("send_request");
        let n = c.send_data(id, &PAYLOAD).expect("send_data");
        assert_eq!(n, ECHO_LEN, "client window too small for 100 bytes");
        c.finish(id).expect("finish");
        id
    });
    let mut read = 0;
    let mut closed = false;
    while !closed {
        let mut moved = pair.client_to_server();
        while let Some(ev) = pair.server(|s| s.poll_event()) {
            serve(pair, ev, ok, echo);
        }
        moved += pair.server_to_client();
        while let Some(ev) = pair.client(|c| c.poll_event()) {
            match ev {
                Event::Response { response, .. } => assert_eq!(response.status, 200),
                Event::Data { stream: id } => {
                    read += pair.client(|c| {
                        let n = c.recv_len(id);
                        c.release_capacity(id, n).expect("client release");
                        n
                    });
                }
                Event::StreamClosed { stream: id } => closed |= id == stream,
                Event::Reset { .. } | Event::ConnectionError { .. } | Event::GoAway { .. } => {
                    panic!("churn stream failed: {ev:?}")
                }
                _ => {}
            }
        }
        assert!(moved > 0 || closed, "churn stalled on stream {stream}");
    }
    read
}

/// The echo server's reaction to one event.
fn serve(pair: &mut Pair, ev: Event, ok: &Response, echo: &mut Vec<u8>) {
    match ev {
        Event::Request { stream, .. } => pair
            .server(|s| s.send_response(stream, ok, false))
            .expect("send_response"),
        Event::Data { stream } => pair.server(|s| {
            echo.clear();
            echo.extend(s.recv_pieces(stream).flatten());
            s.release_capacity(stream, echo.len())
                .expect("server release");
            let n = s.send_data(stream, echo).expect("echo send_data");
            assert_eq!(n, echo.len(), "server window too small for the echo");
        }),
        Event::PeerFinished { stream } => pair.server(|s| s.finish(stream)).expect("server finish"),
        Event::Reset { .. } | Event::ConnectionError { .. } | Event::GoAway { .. } => {
            panic!("churn stream failed on the server: {ev:?}")
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_echoes_every_stream() {
        assert_eq!(run(20), 20 * ECHO_LEN);
    }

    #[test]
    fn churn_outlives_the_concurrency_limit() {
        // More streams than max_concurrent_streams: each must really close.
        let limit = Config::default().max_concurrent_streams as usize;
        assert_eq!(run(limit + 5), (limit + 5) * ECHO_LEN);
    }
}
