//! A server connection with many client streams open: the set-up of the
//! audit tests that measure what a frame costs per open stream.

use warren_proto::h2::frame::{self, encode};
use warren_proto::h2::{hpack, Config, Connection, Event, Header, Role, StreamId};
use warren_proto::time::Instant;

/// The instant the server is made at and fed its client's streams.
pub const START: Instant = Instant::from_nanos(1);

/// A server after the client preface and SETTINGS, with `streams` CONNECT
/// streams opened by the client (each one a `Request` event, checked), its
/// answers already transmitted.
pub fn server_with_streams(config: Config, streams: u32) -> Connection {
    let mut server = Connection::new(Role::Server, config, START);
    let mut hello = frame::PREFACE.to_vec();
    encode::settings(&mut hello, false, &[]);
    encode::settings(&mut hello, true, &[]);
    let mut hpack = hpack::Encoder::new();
    for i in 0..streams {
        let mut block = Vec::new();
        let fields = [
            Header::new(":method", "CONNECT"),
            Header::new(":authority", "10.1.1.1:80"),
        ];
        hpack.encode(&fields, &mut block);
        encode::headers(&mut hello, StreamId::new(2 * i + 1), &block, false, 16_384);
    }
    server.handle_input(START, &hello);
    let mut requests = 0;
    while let Some(e) = server.poll_event() {
        requests += usize::from(matches!(e, Event::Request { .. }));
    }
    assert_eq!(requests, streams as usize);
    let mut out = Vec::new();
    server.poll_transmit(START, &mut out);
    server
}
