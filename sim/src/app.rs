//! Test applications: a client that sends a seeded byte stream, and echo
//! and sink servers that check every byte.
//!
//! A stream is named by a 64-bit seed. Its first 8 bytes are the seed
//! (little-endian), every later byte is a pure function of (seed, offset),
//! so a receiver learns the seed from the stream itself and checks each
//! byte without anyone storing the data.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use warren_proto::time::Instant;

use crate::net::{HostId, ListenerId, Net, NetEvent, SocketId};
use crate::peer::Peer;
use crate::rng::{splitmix64, SimRng};
use crate::world::Application;

/// Length of the seed header that starts every stream.
const HEADER: u64 = 8;

/// The byte at `offset` of the stream named `seed`.
pub fn stream_byte(seed: u64, offset: u64) -> u8 {
    if offset < HEADER {
        return seed.to_le_bytes()[offset as usize];
    }
    let body = offset - HEADER;
    body_block(seed, body / 8)[(body % 8) as usize]
}

/// The 8 body bytes of block `block` (body offsets `8 * block ..`).
fn body_block(seed: u64, block: u64) -> [u8; 8] {
    let mut state = seed ^ block.wrapping_mul(0xA24B_AED4_963E_E407);
    splitmix64(&mut state).to_le_bytes()
}

/// Fills `buf` with the stream named `seed` from `offset` on.
pub fn fill_stream(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut i = 0;
    // The header, and any unaligned start of the body, byte by byte.
    while i < buf.len() {
        let at = offset.wrapping_add(i as u64);
        if at >= HEADER && (at - HEADER) % 8 == 0 {
            break;
        }
        buf[i] = stream_byte(seed, at);
        i += 1;
    }
    // Then whole blocks, one SplitMix64 round per 8 bytes, as fixed-size
    // copies (one store each, where a variable-length copy would call
    // memmove for 8 bytes).
    let mut block = offset.wrapping_add(i as u64).wrapping_sub(HEADER) / 8;
    let mut whole = buf[i..].chunks_exact_mut(8);
    for chunk in &mut whole {
        chunk.copy_from_slice(&body_block(seed, block));
        block = block.wrapping_add(1);
    }
    let tail = whole.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&body_block(seed, block)[..n]);
}

/// Checks an incoming stream byte by byte against its seed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamVerifier {
    header: Vec<u8>,
    seed: Option<u64>,
    offset: u64,
    mismatch: Option<u64>,
}

impl StreamVerifier {
    /// A verifier that learns the seed from the stream's header.
    pub fn new() -> StreamVerifier {
        StreamVerifier::default()
    }

    /// Checks the next bytes; false once any byte was wrong.
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        while self.seed.is_none() && self.mismatch.is_none() {
            let Some((b, rest)) = data.split_first() else {
                return true;
            };
            self.header.push(*b);
            self.offset += 1;
            data = rest;
            if self.header.len() as u64 == HEADER {
                let mut le = [0u8; 8];
                le.copy_from_slice(&self.header);
                self.seed = Some(u64::from_le_bytes(le));
            }
        }
        let (Some(seed), None) = (self.seed, self.mismatch) else {
            return self.mismatch.is_none();
        };
        let mut expected = [0u8; 4096];
        for chunk in data.chunks(expected.len()) {
            let want = &mut expected[..chunk.len()];
            fill_stream(seed, self.offset, want);
            // One slice comparison (memcmp) for the usual all-equal case;
            // the byte-by-byte search only runs to name a wrong byte.
            let differs = chunk != &want[..];
            let wrong = || chunk.iter().zip(want.iter()).position(|(a, b)| a != b);
            if let Some(i) = differs.then(wrong).flatten() {
                self.mismatch = Some(self.offset + i as u64);
                self.offset += i as u64;
                return false;
            }
            self.offset += chunk.len() as u64;
        }
        true
    }

    /// Bytes received and found correct (the header included).
    pub fn verified(&self) -> u64 {
        self.offset
    }

    /// The seed named by the header, once 8 bytes arrived.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// The offset of the first wrong byte, if any.
    pub fn mismatch(&self) -> Option<u64> {
        self.mismatch
    }

    /// Whether everything received so far starts the stream named `seed`
    /// (also for streams shorter than the 8-byte header, which name no
    /// seed of their own).
    pub fn is_start_of(&self, seed: u64) -> bool {
        self.mismatch.is_none()
            && match self.seed {
                Some(s) => s == seed,
                None => seed.to_le_bytes().starts_with(&self.header),
            }
    }
}

/// What a server saw on one accepted connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowReport {
    /// The incoming stream's check.
    pub verifier: StreamVerifier,
    /// The peer half-closed.
    pub read_closed: bool,
    /// The connection was reset.
    pub reset: bool,
    /// Bytes received but not yet echoed back (echo server only; bounded by
    /// one delivery, since reading pauses while any are held).
    pending: Vec<u8>,
    /// Left unread until then (a stalling server).
    stalled_until: Option<Instant>,
}

/// Dials a server and sends `total` bytes of the stream `seed` in writes
/// of random sizes, honouring short writes; optionally checks an echo.
#[derive(Debug)]
pub struct StreamClient {
    server: SocketAddr,
    seed: u64,
    total: u64,
    max_write: usize,
    rng: SimRng,
    sock: Option<SocketId>,
    /// The current write: drawn size, generated once, offered until taken.
    chunk: Vec<u8>,
    chunk_taken: usize,
    /// The connect's outcome once known.
    pub connected: Option<Result<(), crate::net::ConnectError>>,
    written: u64,
    shut_down: bool,
    /// The echo (or whatever the server sent back), checked as a stream.
    pub echo: StreamVerifier,
    /// The server half-closed.
    pub read_closed: bool,
    /// The connection was reset.
    pub reset: bool,
    /// When the server's half-close arrived (network time).
    pub finished_at: Option<Instant>,
    /// How long after its connect the client gives up (see
    /// [`StreamClient::giving_up_after`]).
    give_up_after: Option<Duration>,
    /// When it gives up, once connected.
    give_up_at: Option<Instant>,
    /// The client reset its connection itself (it gave up).
    pub gave_up: bool,
}

impl StreamClient {
    /// A client sending `total` bytes of stream `seed` (header included, so
    /// `total` ≥ 8 to name the stream) in writes of 1..=`max_write` bytes
    /// drawn from `rng`, then half-closing.
    pub fn new(server: SocketAddr, seed: u64, total: u64, max_write: usize, rng: SimRng) -> Self {
        StreamClient {
            server,
            seed,
            total,
            max_write: max_write.max(1),
            rng,
            sock: None,
            chunk: Vec::new(),
            chunk_taken: 0,
            connected: None,
            written: 0,
            shut_down: false,
            echo: StreamVerifier::new(),
            read_closed: false,
            reset: false,
            finished_at: None,
            give_up_after: None,
            give_up_at: None,
            gave_up: false,
        }
    }

    /// A client that resets its connection if the server has not
    /// half-closed `after` its connect completed, as one that gives up
    /// waiting does.
    pub fn giving_up_after(mut self, after: Option<Duration>) -> Self {
        self.give_up_after = after;
        self
    }

    /// When the client gives up, unless it finished before.
    pub fn give_up_at(&self) -> Option<Instant> {
        self.give_up_at
            .filter(|_| !self.read_closed && !self.reset && !self.gave_up)
    }

    /// Its time to give up came: reset the connection.
    pub fn give_up(&mut self, net: &mut Net) {
        if self.give_up_at().is_none_or(|at| at > net.now()) {
            return;
        }
        self.gave_up = true;
        if let Some(sock) = self.sock {
            net.abort(sock);
        }
    }

    /// The seed naming the stream this client sends.
    pub fn stream_seed(&self) -> u64 {
        self.seed
    }

    /// Bytes the network accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The client's socket once `connect` was called.
    pub fn sock(&self) -> Option<SocketId> {
        self.sock
    }

    fn send_more(&mut self, net: &mut Net) {
        let Some(sock) = self.sock else {
            return;
        };
        while self.written < self.total {
            if self.chunk_taken == self.chunk.len() {
                let left = usize::try_from(self.total - self.written).unwrap_or(usize::MAX);
                let n = self.rng.range_usize(1, self.max_write).min(left);
                self.chunk.resize(n, 0);
                fill_stream(self.seed, self.written, &mut self.chunk);
                self.chunk_taken = 0;
            }
            let offered = &self.chunk[self.chunk_taken..];
            let Ok(took) = net.write(sock, offered) else {
                return;
            };
            let short = took < offered.len();
            self.chunk_taken += took;
            self.written += took as u64;
            if short {
                return;
            }
        }
        if !self.shut_down {
            self.shut_down = true;
            // A finished client lives on until the end-of-run checks: keep
            // its last write buffer from living on with it.
            self.chunk = Vec::new();
            self.chunk_taken = 0;
            let _ = net.shutdown_write(sock);
        }
    }
}

impl Application for StreamClient {
    fn start(&mut self, net: &mut Net, host: HostId) {
        self.sock = net.connect(host, self.server).ok();
    }

    fn claims(&self, event: &NetEvent) -> bool {
        Some(event.sock()) == self.sock
    }

    fn on_event(&mut self, net: &mut Net, _host: HostId, event: NetEvent) {
        match event {
            NetEvent::Connected { result, .. } => {
                self.connected = Some(result);
                self.give_up_at = self.give_up_after.map(|after| net.now() + after);
                if result.is_ok() {
                    self.send_more(net);
                }
            }
            NetEvent::Writable { .. } => self.send_more(net),
            NetEvent::Received { data, .. } => {
                self.echo.feed(&data);
            }
            NetEvent::ReadClosed { sock } => {
                self.read_closed = true;
                self.finished_at = Some(net.now());
                net.close(sock);
            }
            NetEvent::Reset { .. } => self.reset = true,
            NetEvent::Accepted { .. } => {}
        }
    }
}

/// Whether a server sends what it receives back, or only checks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerMode {
    /// Check and echo every byte, then half-close after the client did.
    Echo,
    /// Check every byte; close after the client half-closed.
    Sink,
}

/// A server on one port that checks every incoming stream, and echoes it
/// back in [`ServerMode::Echo`].
#[derive(Debug)]
pub struct StreamServer {
    port: u16,
    mode: ServerMode,
    /// How long each accepted connection is left unread.
    stall: Duration,
    listener: Option<ListenerId>,
    /// Every accepted connection, by socket.
    pub flows: BTreeMap<SocketId, FlowReport>,
}

impl StreamServer {
    /// A server listening on `port` once started.
    pub fn new(port: u16, mode: ServerMode) -> StreamServer {
        StreamServer {
            port,
            mode,
            stall: Duration::ZERO,
            listener: None,
            flows: BTreeMap::new(),
        }
    }

    /// The same server leaving each accepted connection unread for
    /// `stall` (a receiver that stops reading), then reading as usual.
    pub fn stalling(mut self, stall: Duration) -> StreamServer {
        self.stall = stall;
        self
    }

    /// Bytes verified over all connections.
    pub fn verified(&self) -> u64 {
        self.flows.values().map(|f| f.verifier.verified()).sum()
    }

    /// Writes held bytes; pauses reading while some remain, and half-closes
    /// once everything was echoed after the client's FIN.
    fn flush(net: &mut Net, sock: SocketId, flow: &mut FlowReport) {
        if !flow.pending.is_empty() {
            let took = net.write(sock, &flow.pending).unwrap_or(0);
            flow.pending.drain(..took);
        }
        if flow.pending.is_empty() {
            if flow.read_closed {
                net.close(sock);
                // The report lives on until the end-of-run checks; the
                // buffer need not.
                flow.pending = Vec::new();
            } else if flow.stalled_until.is_none() {
                let _ = net.resume_read(sock);
            }
        } else {
            let _ = net.pause_read(sock);
        }
    }
}

impl StreamServer {
    /// When the next stalled connection is to be read, if any.
    fn next_unstall(&self) -> Option<Instant> {
        if self.stall.is_zero() {
            return None;
        }
        self.flows.values().filter_map(|f| f.stalled_until).min()
    }

    /// Reads the connections whose stall is over.
    fn unstall(&mut self, net: &mut Net) {
        let now = net.now();
        for (sock, flow) in &mut self.flows {
            if flow.stalled_until.is_some_and(|t| t <= now) {
                flow.stalled_until = None;
                let _ = net.resume_read(*sock);
            }
        }
    }
}

impl Application for StreamServer {
    fn start(&mut self, net: &mut Net, host: HostId) {
        self.listener = net.listen(host, self.port).ok();
    }

    fn claims(&self, event: &NetEvent) -> bool {
        match event {
            NetEvent::Accepted { listener, .. } => Some(*listener) == self.listener,
            other => self.flows.contains_key(&other.sock()),
        }
    }

    fn on_event(&mut self, net: &mut Net, _host: HostId, event: NetEvent) {
        match event {
            NetEvent::Accepted { sock, .. } => {
                let mut report = FlowReport::default();
                if !self.stall.is_zero() {
                    let _ = net.pause_read(sock);
                    report.stalled_until = Some(net.now() + self.stall);
                }
                self.flows.insert(sock, report);
            }
            NetEvent::Received { sock, data } => {
                let Some(flow) = self.flows.get_mut(&sock) else {
                    return;
                };
                flow.verifier.feed(&data);
                if self.mode == ServerMode::Echo {
                    flow.pending.extend_from_slice(&data);
                    Self::flush(net, sock, flow);
                }
            }
            NetEvent::Writable { sock } => {
                if let Some(flow) = self.flows.get_mut(&sock) {
                    Self::flush(net, sock, flow);
                }
            }
            NetEvent::ReadClosed { sock } => {
                let Some(flow) = self.flows.get_mut(&sock) else {
                    return;
                };
                flow.read_closed = true;
                match self.mode {
                    ServerMode::Echo => Self::flush(net, sock, flow),
                    ServerMode::Sink => net.close(sock),
                }
            }
            NetEvent::Reset { sock } => {
                if let Some(flow) = self.flows.get_mut(&sock) {
                    flow.reset = true;
                }
            }
            NetEvent::Connected { .. } => {}
        }
    }
}

/// One of the test applications, so a world can mix them.
#[derive(Debug)]
pub enum Endpoint {
    /// A [`StreamClient`].
    Client(StreamClient),
    /// A [`StreamServer`].
    Server(StreamServer),
    /// A scripted [`Peer`].
    Peer(Peer),
}

impl Endpoint {
    /// The client, if this is one.
    pub fn client(&self) -> Option<&StreamClient> {
        match self {
            Endpoint::Client(c) => Some(c),
            _ => None,
        }
    }

    /// The server, if this is one.
    pub fn server(&self) -> Option<&StreamServer> {
        match self {
            Endpoint::Server(s) => Some(s),
            _ => None,
        }
    }

    /// The scripted peer, if this is one.
    pub fn peer(&self) -> Option<&Peer> {
        match self {
            Endpoint::Peer(p) => Some(p),
            _ => None,
        }
    }
}

impl Application for Endpoint {
    fn start(&mut self, net: &mut Net, host: HostId) {
        match self {
            Endpoint::Client(c) => c.start(net, host),
            Endpoint::Server(s) => s.start(net, host),
            Endpoint::Peer(p) => p.start(net, host),
        }
    }

    fn claims(&self, event: &NetEvent) -> bool {
        match self {
            Endpoint::Client(c) => c.claims(event),
            Endpoint::Server(s) => s.claims(event),
            Endpoint::Peer(p) => p.claims(event),
        }
    }

    fn on_event(&mut self, net: &mut Net, host: HostId, event: NetEvent) {
        match self {
            Endpoint::Client(c) => c.on_event(net, host, event),
            Endpoint::Server(s) => s.on_event(net, host, event),
            Endpoint::Peer(p) => p.on_event(net, host, event),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Endpoint::Peer(p) => p.poll_timeout(),
            Endpoint::Server(s) => s.next_unstall(),
            Endpoint::Client(c) => c.give_up_at(),
        }
    }

    fn on_timeout(&mut self, net: &mut Net, host: HostId) {
        match self {
            Endpoint::Peer(p) => p.on_timeout(net, host),
            Endpoint::Server(s) => s.unstall(net),
            Endpoint::Client(c) => c.give_up(net),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_accepts_the_stream_in_any_chunking_and_finds_a_flipped_byte() {
        let mut whole = vec![0u8; 1000];
        fill_stream(77, 0, &mut whole);
        let whole_copy = whole.clone();
        let mut v = StreamVerifier::new();
        for chunk in whole.chunks(7) {
            assert!(v.feed(chunk));
        }
        assert_eq!((v.verified(), v.seed()), (1000, Some(77)));
        whole[500] ^= 1;
        let mut bad = StreamVerifier::new();
        assert!(!bad.feed(&whole));
        assert_eq!(bad.mismatch(), Some(500));
        // Filling from any offset agrees with the byte function.
        for start in [0u64, 3, 8, 9, 15, 16, 17, 500] {
            let mut part = vec![0u8; 37];
            fill_stream(77, start, &mut part);
            assert_eq!(&part[..], &whole_copy[start as usize..start as usize + 37]);
            let by_byte: Vec<u8> = (start..start + 37).map(|o| stream_byte(77, o)).collect();
            assert_eq!(part, by_byte);
        }
        let mut other = vec![0u8; 100];
        fill_stream(78, 0, &mut other);
        assert_ne!(&other[8..], &whole[8..100], "seeds name different streams");
    }

    #[test]
    fn streams_shorter_than_the_header_are_checked_against_the_seed() {
        let mut v = StreamVerifier::new();
        assert!(
            v.is_start_of(77),
            "nothing received is the start of any stream"
        );
        v.feed(&77u64.to_le_bytes()[..1]);
        assert!(v.is_start_of(77));
        assert!(!v.is_start_of(78));
        v.feed(&77u64.to_le_bytes()[1..]);
        assert!(v.is_start_of(77) && !v.is_start_of(78));
    }
}
