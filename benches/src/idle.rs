//! Idle CONNECT streams: opened, answered with 200, then left open on both
//! ends. The memory binary counts what each end holds per such stream.

use warren_proto::h2::{Config, Event, Request, Response, StreamId};

use crate::pair::Pair;
use crate::AUTHORITY;

/// Streams opened before each exchange: well under the default
/// `max_pending_accept`, so the server never refuses one for being slow.
const BATCH: usize = 256;

/// Configuration for `streams` idle streams: default, with the
/// concurrency limit raised to fit them.
pub fn config(streams: usize) -> Config {
    let limit = u32::try_from(streams + 1).expect("stream count fits u32");
    Config {
        max_concurrent_streams: limit.max(Config::default().max_concurrent_streams),
        ..Config::default()
    }
}

/// Opens `n` CONNECT streams on `pair` and has the server answer each with
/// 200; returns their ids once the client has every response.
pub fn open(pair: &mut Pair, n: usize) -> Vec<StreamId> {
    let request = Request::connect(AUTHORITY);
    let ok = Response {
        status: 200,
        headers: Vec::new(),
    };
    let mut ids = Vec::with_capacity(n);
    let mut answered = 0;
    while ids.len() < n {
        let batch = BATCH.min(n - ids.len());
        pair.client(|c| {
            for _ in 0..batch {
                ids.push(c.send_request(&request, false).expect("send_request"));
            }
        });
        pair.client_to_server();
        pair.server(|s| {
            while let Some(ev) = s.poll_event() {
                if let Event::Request { stream, .. } = ev {
                    s.send_response(stream, &ok, false).expect("send_response");
                }
            }
        });
        pair.server_to_client();
        answered += pair.client(|c| {
            let mut answered = 0;
            while let Some(ev) = c.poll_event() {
                match ev {
                    Event::Response { .. } => answered += 1,
                    Event::Reset { .. } | Event::ConnectionError { .. } => {
                        panic!("idle stream failed: {ev:?}")
                    }
                    _ => {}
                }
            }
            answered
        });
    }
    // Flush trailing WINDOW_UPDATEs or ACKs so both ends are quiet.
    while pair.exchange() > 0 {}
    assert_eq!(answered, n, "not every idle stream got its 200");
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_streams_stay_open_on_both_ends() {
        let n = 1200;
        let mut pair = Pair::new(config(n));
        let ids = open(&mut pair, n);
        assert_eq!(ids.len(), n);
        assert_eq!(pair.client(|c| c.open_streams()), n);
        assert_eq!(pair.server(|s| s.open_streams()), n);
    }
}
