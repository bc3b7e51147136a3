//! One-stream bulk transfer, client to server, on two warren connections.
//!
//! The client writes 1 MiB application chunks with `send_data`, taking
//! whatever the windows and send buffer accept; the server reads with
//! `recv_data` and releases everything it read at once, which credits the
//! windows back. Windows are 4 MiB per stream and 16 MiB per connection,
//! frames up to 1 MiB: warren's defaults, and the anchors' "tuned" h2.

use warren_proto::h2::{Config, Connection, Event, Request, Response, StreamId};

use crate::pair::Pair;
use crate::{AUTHORITY, MIB};

/// The configuration of both ends of the bulk runs.
pub fn config() -> Config {
    Config {
        initial_stream_window: 4 * MIB as u32,
        initial_connection_window: 16 * MIB as u32,
        max_frame_size: MIB as u32,
        ..Config::default()
    }
}

/// An open CONNECT stream between two warren connections, ready to carry
/// bulk data from client to server.
#[derive(Debug)]
pub struct WarrenBulk {
    pair: Pair,
    stream: StreamId,
    chunk: Vec<u8>,
    received: u64,
}

impl WarrenBulk {
    /// Connects, opens the stream and waits for the server's 200.
    pub fn new() -> WarrenBulk {
        let mut pair = Pair::new(config());
        let stream = open_connect_stream(&mut pair);
        WarrenBulk {
            pair,
            stream,
            chunk: (0..MIB).map(|i| i as u8).collect(),
            received: 0,
        }
    }

    /// Sends `total` payload bytes and returns once the server has read
    /// (and released) every one of them.
    pub fn transfer(&mut self, total: u64) {
        let stream = self.stream;
        let target = self.received + total;
        let mut sent = 0u64;
        while self.received < target {
            let pair = &mut self.pair;
            let mut moved = offer_chunks(&self.chunk, &mut sent, total, |chunk| {
                pair.client(|c| c.send_data(stream, chunk))
                    .expect("send_data on the bulk stream")
            });
            moved += self.pair.client_to_server();
            let read = self.pair.server(|s| read_and_release(s, stream));
            self.received += read as u64;
            moved += read + self.pair.server_to_client();
            self.pair.client(|c| while c.poll_event().is_some() {});
            assert!(
                moved > 0,
                "bulk transfer stalled at {} of {target} bytes",
                self.received
            );
        }
    }

    /// Bytes the server has read so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

impl Default for WarrenBulk {
    fn default() -> Self {
        WarrenBulk::new()
    }
}

/// Offers `send` the payload from byte `sent` on, in slices of `chunk`
/// (the payload repeats it), until `total` bytes are sent or `send` takes
/// nothing more. Advances `sent`; returns the bytes taken.
pub fn offer_chunks(
    chunk: &[u8],
    sent: &mut u64,
    total: u64,
    mut send: impl FnMut(&[u8]) -> usize,
) -> usize {
    let mut taken = 0;
    while *sent < total {
        let offset = (*sent % chunk.len() as u64) as usize;
        let want = (total - *sent).min((chunk.len() - offset) as u64) as usize;
        let n = send(&chunk[offset..offset + want]);
        if n == 0 {
            break;
        }
        *sent += n as u64;
        taken += n;
    }
    taken
}

/// The receiving end's turn: drops its events, reads what `stream` holds
/// (through `black_box`, so the read is not optimised away) and releases
/// it all, which credits the windows back. Returns the bytes read.
pub fn read_and_release(server: &mut Connection, stream: StreamId) -> usize {
    while server.poll_event().is_some() {}
    let read: usize = server
        .recv_pieces(stream)
        .map(|piece| std::hint::black_box(piece).len())
        .sum();
    if read > 0 {
        server
            .release_capacity(stream, read)
            .expect("release_capacity on the bulk stream");
    }
    read
}

/// Opens a CONNECT stream from the client and answers it with 200 on the
/// server; returns once the client has the response.
pub fn open_connect_stream(pair: &mut Pair) -> StreamId {
    let request = Request::connect(AUTHORITY);
    let stream = pair
        .client(|c| c.send_request(&request, false))
        .expect("send_request");
    pair.client_to_server();
    let ok = Response {
        status: 200,
        headers: Vec::new(),
    };
    let mut accepted = false;
    while let Some(ev) = pair.server(|s| s.poll_event()) {
        if let Event::Request { stream: id, .. } = ev {
            assert_eq!(id, stream, "server saw another stream");
            pair.server(|s| s.send_response(id, &ok, false))
                .expect("send_response");
            accepted = true;
        }
    }
    assert!(accepted, "server did not see the CONNECT request");
    pair.server_to_client();
    let mut answered = false;
    while let Some(ev) = pair.client(|c| c.poll_event()) {
        if let Event::Response { response, .. } = ev {
            assert_eq!(response.status, 200);
            answered = true;
        }
    }
    assert!(answered, "client did not get the 200");
    stream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_delivers_every_byte_across_window_refills() {
        let mut bulk = WarrenBulk::new();
        // More than the 16 MiB connection window, so releases must refill it.
        bulk.transfer(20 * MIB as u64 + 3);
        assert_eq!(bulk.received(), 20 * MIB as u64 + 3);
        bulk.transfer(1);
        assert_eq!(bulk.received(), 20 * MIB as u64 + 4);
    }
}
