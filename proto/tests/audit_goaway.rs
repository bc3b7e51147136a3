//! Audit: GOAWAY frames from the peer were neither rate limited nor cheap.
//! Each one walked every stream above its last stream id (all of a
//! server's peer-opened streams for `last = 0`) and became an
//! `Event::GoAway`, which the node turns into a log event when the code is
//! not NO_ERROR: 1 MiB of 17-byte GOAWAYs was 61,681 events and, with 1000
//! streams open, 660 ms of CPU here (1 MiB of PING ACKs: 0.8 ms). A peer
//! has a use for two (RFC 9113 §6.8: a graceful shutdown); more than
//! `Config::goaway_rate` allows is ENHANCE_YOUR_CALM.

mod server_streams;

use core::time::Duration;

use warren_proto::h2::frame::{self, encode, Frame, FrameDecoder};
use warren_proto::h2::{
    Config, Connection, ErrorCode, Event, Limit, RateLimit, StreamId, Violation,
};
use warren_proto::time::Instant;

use server_streams::{server_with_streams, START};

/// `n` GOAWAY frames with `code`, the last stream id going down from 2001.
fn goaways(n: u32, code: ErrorCode) -> Vec<u8> {
    let mut bytes = Vec::new();
    for i in 0..n {
        let last = StreamId::new(2001u32.saturating_sub(2 * i));
        encode::goaway(&mut bytes, last, code, b"");
    }
    bytes
}

/// GOAWAY events, the connection error event, and the GOAWAY code the
/// server sent.
fn answer(
    server: &mut Connection,
    now: Instant,
) -> (usize, Option<(ErrorCode, Violation)>, Option<ErrorCode>) {
    let mut events = 0;
    let mut error = None;
    while let Some(e) = server.poll_event() {
        match e {
            Event::GoAway { .. } => events += 1,
            Event::ConnectionError {
                code, violation, ..
            } => error = Some((code, violation)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    server.poll_transmit(now, &mut out);
    let mut decoder = FrameDecoder::new(frame::MAX_MAX_FRAME_SIZE);
    let mut input = &out[..];
    let mut sent = None;
    while let Ok(Some(f)) = decoder.decode(&mut input) {
        if let Frame::GoAway { error_code, .. } = f {
            sent = Some(error_code);
        }
    }
    (events, error, sent)
}

fn calm() -> Option<(ErrorCode, Violation)> {
    Some((
        ErrorCode::ENHANCE_YOUR_CALM,
        Violation::Limit(Limit::GoAwayRate),
    ))
}

#[test]
fn default_is_ten_per_ten_seconds() {
    assert_eq!(
        Config::default().goaway_rate,
        RateLimit {
            max: 10,
            per: Duration::from_secs(10)
        }
    );
}

#[test]
fn a_graceful_shutdown_is_two_goaways_and_two_events() {
    let mut server = server_with_streams(Config::default(), 10);
    let mut bytes = Vec::new();
    encode::goaway(&mut bytes, StreamId::MAX, ErrorCode::NO_ERROR, b"");
    encode::goaway(&mut bytes, StreamId::new(19), ErrorCode::NO_ERROR, b"bye");
    server.handle_input(START, &bytes);
    assert_eq!(answer(&mut server, START), (2, None, None));
    assert_eq!(server.open_streams(), 10);
}

#[test]
fn a_goaway_flood_is_enhance_your_calm() {
    let mut server = server_with_streams(Config::default(), 1000);
    // 1 MiB of GOAWAYs in one read.
    server.handle_input(START, &goaways((1 << 20) / 17, ErrorCode::INTERNAL_ERROR));
    let (events, error, sent) = answer(&mut server, START);
    assert_eq!(events, 10, "one event per GOAWAY the rate allowed");
    assert_eq!(error, calm());
    assert_eq!(sent, Some(ErrorCode::ENHANCE_YOUR_CALM));
    assert!(server.is_closed());
}

#[test]
fn the_rate_is_per_window() {
    let config = Config {
        goaway_rate: RateLimit {
            max: 3,
            per: Duration::from_secs(1),
        },
        ..Config::default()
    };
    let mut server = server_with_streams(config, 2);
    let mut now = START;
    for _ in 0..5 {
        server.handle_input(now, &goaways(3, ErrorCode::NO_ERROR));
        assert_eq!(answer(&mut server, now), (3, None, None));
        now = now + Duration::from_secs(1);
    }
    server.handle_input(now, &goaways(4, ErrorCode::NO_ERROR));
    let (events, error, _) = answer(&mut server, now);
    assert_eq!((events, error), (3, calm()));
}
