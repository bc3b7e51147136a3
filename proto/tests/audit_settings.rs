//! Audit: a SETTINGS frame may carry as many parameters as the frame size
//! allows (174,762 in a 1 MiB frame), and every SETTINGS_INITIAL_WINDOW_SIZE
//! among them shifts the send window of every open stream (RFC 9113
//! §6.9.2). Without a cap on parameters per frame, 1 MiB from a peer with
//! 1000 open streams costs 1.7e8 window updates: a CPU amplification of the
//! kind CVE-2020-11080 describes for nghttp2, which caps a frame at 32
//! parameters. These tests pin the cap and what a peer gets past it.

mod server_streams;

use warren_proto::h2::frame::{self, encode, setting, Frame, FrameDecoder, Setting};
use warren_proto::h2::{Config, Connection, ErrorCode, Event, Limit, Violation};
use warren_proto::time::Instant;

use server_streams::server_with_streams;

/// A SETTINGS frame of `n` parameters alternating the initial window.
fn window_settings(n: usize) -> Vec<u8> {
    let list: Vec<Setting> = (0..n)
        .map(|i| Setting {
            id: setting::INITIAL_WINDOW_SIZE,
            value: 65_535 + (i % 2) as u32,
        })
        .collect();
    let mut bytes = Vec::new();
    encode::settings(&mut bytes, false, &list);
    bytes
}

/// What the server answered: its connection error event, the GOAWAY code
/// it sent and how many SETTINGS it acknowledged.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    error: Option<(ErrorCode, Violation)>,
    goaway: Option<ErrorCode>,
    acks: usize,
}

fn answer(server: &mut Connection) -> Answer {
    let mut error = None;
    while let Some(e) = server.poll_event() {
        if let Event::ConnectionError {
            code, violation, ..
        } = e
        {
            error = Some((code, violation));
        }
    }
    let mut out = Vec::new();
    server.poll_transmit(Instant::from_nanos(1), &mut out);
    let mut decoder = FrameDecoder::new(frame::MAX_MAX_FRAME_SIZE);
    let mut input = &out[..];
    let mut goaway = None;
    let mut acks = 0;
    while let Ok(Some(f)) = decoder.decode(&mut input) {
        match f {
            Frame::GoAway { error_code, .. } => goaway = Some(error_code),
            Frame::Settings { ack: true, .. } => acks += 1,
            _ => {}
        }
    }
    Answer {
        error,
        goaway,
        acks,
    }
}

fn calm() -> Answer {
    Answer {
        error: Some((
            ErrorCode::ENHANCE_YOUR_CALM,
            Violation::Limit(Limit::SettingsParameters),
        )),
        goaway: Some(ErrorCode::ENHANCE_YOUR_CALM),
        acks: 0,
    }
}

#[test]
fn default_cap_is_32_parameters() {
    assert_eq!(Config::default().max_settings_per_frame, 32);
}

#[test]
fn settings_frame_with_many_parameters_is_enhance_your_calm() {
    let mut server = server_with_streams(Config::default(), 1000);
    // A whole 1 MiB frame of parameters (the default max frame size).
    server.handle_input(Instant::from_nanos(1), &window_settings((1 << 20) / 6));
    assert_eq!(answer(&mut server), calm());
    assert!(server.is_closed());
}

#[test]
fn parameters_up_to_the_cap_are_acknowledged() {
    let config = Config {
        max_settings_per_frame: 8,
        ..Config::default()
    };
    for n in [0, 1, 7, 8, 9] {
        let mut server = server_with_streams(config.clone(), 3);
        server.handle_input(Instant::from_nanos(1), &window_settings(n));
        let got = answer(&mut server);
        if n <= 8 {
            let acked = Answer {
                error: None,
                goaway: None,
                acks: 1,
            };
            assert_eq!(got, acked, "{n} parameters");
            assert!(!server.is_closed());
        } else {
            assert_eq!(got, calm(), "{n} parameters");
        }
    }
}
