//! A server `Connection` fed arbitrary bytes after a valid preface and
//! SETTINGS, in chunks, with the application's calls driven by the input.
//!
//! Input: a series of operations: feed the next N bytes, release received
//! data, send data, answer, finish or reset a stream the peer opened, let
//! time pass, or end the transport. After each one every event is drained
//! and the output taken. Checks beyond "no panic": the output is always a
//! sequence of valid frames whose header blocks decode, received data never
//! exceeds our window, nothing but `Closed` ends the event stream, and no
//! `Err` comes back for a stream the connection announced and did not end.
#![no_main]

use std::collections::BTreeSet;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use warren_fuzz::{decode_chunks, Choices, Decoded};
use warren_proto::h2::frame::{self, FrameDecoder, PREFACE};
use warren_proto::h2::hpack::Decoder;
use warren_proto::h2::{Config, Connection, ErrorCode, Event, Response, Role, StreamId};
use warren_proto::time::Instant;

/// Small limits, so that fuzz inputs can reach them.
fn config() -> Config {
    Config {
        initial_stream_window: 65_535,
        initial_connection_window: 262_144,
        max_frame_size: 16_384,
        max_header_list_size: 8192,
        max_concurrent_streams: 16,
        max_pending_accept: 8,
        max_send_buffer: 65_536,
        max_pending_control_frames: 64,
        ..Config::default()
    }
}

/// The peer's view of our output: frames, and header blocks decoded.
struct Peer {
    frames: FrameDecoder,
    hpack: Decoder,
    block: Option<Vec<u8>>,
}

impl Peer {
    fn new() -> Peer {
        Peer {
            frames: FrameDecoder::new(frame::MAX_MAX_FRAME_SIZE),
            hpack: Decoder::new(4096),
            block: None,
        }
    }

    /// Checks that `out` continues a valid frame sequence in which every
    /// header block decodes.
    fn read(&mut self, out: &[u8]) {
        for decoded in decode_chunks(&mut self.frames, frame::MAX_MAX_FRAME_SIZE, [out]) {
            match decoded {
                Decoded::Error(e) => panic!("the server sent an invalid frame: {e:?}"),
                Decoded::Block {
                    fragment,
                    first,
                    end_headers,
                    ..
                } => {
                    match (&mut self.block, first) {
                        (None, true) => self.block = Some(fragment),
                        (Some(block), false) => block.extend_from_slice(&fragment),
                        (_, true) => panic!("HEADERS inside a header block"),
                        (None, false) => panic!("CONTINUATION outside a header block"),
                    }
                    if end_headers {
                        let block = self.block.take().unwrap_or_default();
                        let mut fields = Vec::new();
                        if let Err(e) = self.hpack.decode(&block, usize::MAX, &mut fields) {
                            panic!("the server sent an undecodable header block: {e:?}");
                        }
                    }
                }
                Decoded::Data { .. } | Decoded::Other(_) => {
                    assert!(self.block.is_none(), "frame inside a header block");
                }
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    let config = config();
    let mut now = Instant::ZERO;
    let mut conn = Connection::new(Role::Server, config.clone(), now);
    let mut peer = Peer::new();
    let mut out = Vec::new();
    let mut streams: Vec<StreamId> = Vec::new();
    let mut live: BTreeSet<StreamId> = BTreeSet::new();
    let mut closed = false;
    let payload = [0x42u8; 70_000];

    // A valid start, so the fuzzer spends its time past the handshake.
    let mut start = PREFACE.to_vec();
    frame::encode::settings(&mut start, false, &[]);
    conn.handle_input(now, &start);

    let mut choices = Choices::new(bytes);
    loop {
        drain(&mut conn, &mut streams, &mut live, &mut closed, &config);
        out.clear();
        conn.poll_transmit(now, &mut out);
        peer.read(&out);
        if choices.is_empty() {
            break;
        }
        let op = choices.u8();
        trace(format_args!("op {}", op % 10));
        let pick = |choices: &mut Choices<'_>| -> Option<StreamId> {
            let i = choices.u8() as usize;
            streams.get(i % streams.len().max(1)).copied()
        };
        match op % 10 {
            0..=3 => {
                let len = usize::from(choices.u16() % 4096);
                conn.handle_input(now, choices.bytes(len));
            }
            4 => {
                if let Some(s) = pick(&mut choices) {
                    let n = usize::from(choices.u16());
                    let n = n.min(conn.recv_len(s));
                    let r = conn.release_capacity(s, n);
                    assert!(
                        r.is_ok() || !live.contains(&s) || closed,
                        "release on live stream {s}: {r:?}"
                    );
                }
            }
            5 => {
                if let Some(s) = pick(&mut choices) {
                    let n = usize::from(choices.u16()).min(payload.len());
                    if let Ok(sent) = conn.send_data(s, &payload[..n]) {
                        assert!(sent <= n);
                    }
                }
            }
            6 => {
                if let Some(s) = pick(&mut choices) {
                    let status = [200, 401, 503, 400][usize::from(choices.u8() % 4)];
                    let end = choices.u8() & 1 == 0;
                    let _ = conn.send_response(
                        s,
                        &Response {
                            status,
                            headers: Vec::new(),
                        },
                        end,
                    );
                }
            }
            7 => {
                if let Some(s) = pick(&mut choices) {
                    if choices.u8() & 1 == 0 {
                        let _ = conn.finish(s);
                    } else if conn.reset(s, ErrorCode::CANCEL).is_ok() {
                        // Our own reset ends the stream without an event.
                        live.remove(&s);
                    }
                }
            }
            8 => {
                now = now + Duration::from_millis(u64::from(choices.u16()) * 10);
                conn.handle_timeout(now);
            }
            _ => match choices.u8() % 4 {
                0 => conn.go_away(now),
                1 => conn.ping(now),
                2 => conn.handle_eof(now),
                _ => conn.abort(ErrorCode::NO_ERROR, b"fuzz"),
            },
        }
    }
});

/// Drains events, tracking the streams the peer opened, and checks the
/// connection's promises about them.
fn drain(
    conn: &mut Connection,
    streams: &mut Vec<StreamId>,
    live: &mut BTreeSet<StreamId>,
    closed: &mut bool,
    config: &Config,
) {
    while let Some(ev) = conn.poll_event() {
        trace(format_args!("event {ev:?}"));
        assert!(!*closed, "event after Closed: {ev:?}");
        match ev {
            Event::Request { stream, .. } => {
                assert!(
                    stream.is_client_initiated(),
                    "request on server stream {stream}"
                );
                assert!(live.insert(stream), "second Request for {stream}");
                if streams.len() < 64 {
                    streams.push(stream);
                }
            }
            Event::Reset { stream, .. } | Event::StreamClosed { stream } => {
                live.remove(&stream);
            }
            Event::Closed => *closed = true,
            Event::Response { .. } => panic!("a server got a Response"),
            _ => {}
        }
    }
    for &s in streams.iter() {
        let held = conn.recv_len(s);
        assert!(
            held <= config.initial_stream_window as usize,
            "stream {s} holds {held} bytes, above its window"
        );
    }
}

/// With `WARREN_FUZZ_TRACE` set, prints operations and events (for reading
/// a crash: `WARREN_FUZZ_TRACE=1 cargo fuzz run server_connection CRASH`).
fn trace(what: std::fmt::Arguments<'_>) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("WARREN_FUZZ_TRACE").is_some()) {
        eprintln!("{what}");
    }
}
