//! Audit: a connection-level WINDOW_UPDATE used to scan every stream
//! waiting for `Writable`. A client that set SETTINGS_INITIAL_WINDOW_SIZE
//! to 0 and opened 1000 streams the server wrote to held 1000 waiters, and
//! each 13-byte WINDOW_UPDATE (+1024, under the dribble rate) cost 1000
//! lookups: 1 MiB of them took 4.5 s here, against 1.4 ms with no waiters.
//! Now only a reopened connection window, a drained send buffer or the
//! waiter's own window wakes it, and a scan sets aside the waiters held by
//! their own window (with one stream sending and 999 held, 50,000
//! connection credits of 1024 bytes, each spent at once, took 1.06 s
//! with the reopen-only rule and 9.9 ms with the set-aside one). That
//! relies on one invariant, which this
//! property checks against a model over arbitrary credit, SETTINGS, sends
//! and transmits: once the events are drained, no stream still waiting for
//! `Writable` can send (no missed wake-up), and `Writable` only names
//! streams that were short-changed.

use std::collections::BTreeSet;

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use warren_proto::h2::frame::{self, encode, setting, Setting};
use warren_proto::h2::{hpack, Config, Connection, Event, Header, Response, Role, StreamId};
use warren_proto::time::Instant;

const NOW: Instant = Instant::from_nanos(1);
const STREAMS: u32 = 4;

#[derive(Clone, Debug)]
enum Op {
    /// The client credits the connection.
    ConnectionCredit(u16),
    /// The client credits stream `n`.
    StreamCredit(u32, u16),
    /// The client changes SETTINGS_INITIAL_WINDOW_SIZE.
    InitialWindow(u16),
    /// The server application offers `len` bytes on stream `n`.
    Send(u32, u16),
    /// The server's host takes its output.
    Transmit,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let stream = u32::arbitrary(g) % STREAMS;
        let amount = u16::arbitrary(g) % 3000;
        match u8::arbitrary(g) % 6 {
            0 => Op::ConnectionCredit(amount),
            1 => Op::StreamCredit(stream, amount),
            2 => Op::InitialWindow(amount),
            3 | 4 => Op::Send(stream, amount),
            _ => Op::Transmit,
        }
    }
}

fn id(n: u32) -> StreamId {
    StreamId::new(2 * n + 1)
}

/// A server whose client announced a small initial window and opened
/// `STREAMS` CONNECT streams, each answered 200, with `connection_left`
/// bytes of the connection window left (the rest went out on stream 0).
fn server(initial_window: u32, send_buffer: u32, connection_left: u32) -> Connection {
    let config = Config {
        max_send_buffer: send_buffer,
        ..Config::default()
    };
    let mut server = Connection::new(Role::Server, config, NOW);
    let mut hello = frame::PREFACE.to_vec();
    let window = Setting {
        id: setting::INITIAL_WINDOW_SIZE,
        value: initial_window,
    };
    encode::settings(&mut hello, false, &[window]);
    encode::settings(&mut hello, true, &[]);
    let mut hpack = hpack::Encoder::new();
    for n in 0..STREAMS {
        let mut block = Vec::new();
        let fields = [
            Header::new(":method", "CONNECT"),
            Header::new(":authority", "10.1.1.1:80"),
        ];
        hpack.encode(&fields, &mut block);
        encode::headers(&mut hello, id(n), &block, false, 16_384);
    }
    server.handle_input(NOW, &hello);
    while server.poll_event().is_some() {}
    for n in 0..STREAMS {
        let ok = Response {
            status: 200,
            headers: Vec::new(),
        };
        server.send_response(id(n), &ok, false).unwrap();
    }
    let mut credit = Vec::new();
    encode::window_update(&mut credit, id(0), 65_535);
    server.handle_input(NOW, &credit);
    let mut spent = 0;
    while server.send_window() > i64::from(connection_left) {
        let want = server.send_window() - i64::from(connection_left);
        let data = vec![1; usize::try_from(want).unwrap().min(4096)];
        spent += server.send_data(id(0), &data).unwrap();
        let mut out = Vec::new();
        server.poll_transmit(NOW, &mut out);
    }
    assert_eq!(spent, 65_535 - connection_left as usize);
    while server.poll_event().is_some() {}
    server
}

#[test]
fn no_waiter_is_left_able_to_send() {
    fn prop(ops: Vec<Op>, windows: (u16, u16), send_buffer: u16) -> TestResult {
        let (initial_window, connection_left) = windows;
        let mut server = server(
            u32::from(initial_window % 2000),
            100 + u32::from(send_buffer % 5000),
            u32::from(connection_left % 3000),
        );
        let mut waiting = BTreeSet::new();
        for op in ops {
            let mut bytes = Vec::new();
            match op {
                Op::ConnectionCredit(n) => {
                    encode::window_update(&mut bytes, StreamId::CONNECTION, u32::from(n.max(1)))
                }
                Op::StreamCredit(s, n) => {
                    encode::window_update(&mut bytes, id(s), u32::from(n.max(1)))
                }
                Op::InitialWindow(v) => {
                    let window = Setting {
                        id: setting::INITIAL_WINDOW_SIZE,
                        value: u32::from(v),
                    };
                    encode::settings(&mut bytes, false, &[window]);
                }
                Op::Send(s, len) => {
                    let data = vec![7; usize::from(len)];
                    match server.send_data(id(s), &data) {
                        Ok(n) if n < data.len() => {
                            waiting.insert(id(s));
                        }
                        Ok(_) => {}
                        Err(e) => return TestResult::error(format!("send_data: {e:?}")),
                    }
                }
                Op::Transmit => {
                    let mut out = Vec::new();
                    server.poll_transmit(NOW, &mut out);
                }
            }
            server.handle_input(NOW, &bytes);
            while let Some(e) = server.poll_event() {
                match e {
                    Event::Writable { stream } if !waiting.remove(&stream) => {
                        return TestResult::error(format!("Writable for {stream}, not waiting"));
                    }
                    Event::ConnectionError { .. } | Event::Reset { .. } => {
                        return TestResult::error(format!("unexpected {e:?}"))
                    }
                    _ => {}
                }
            }
            if let Some(s) = waiting.iter().find(|s| server.send_capacity(**s) > 0) {
                return TestResult::error(format!(
                    "stream {s} can send {} bytes but got no Writable",
                    server.send_capacity(*s)
                ));
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<Op>, (u16, u16), u16) -> TestResult);
}
