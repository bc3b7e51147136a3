//! The ordered record of what happened in a run, and its stable hash.
//!
//! Every connect, accept, delivery, close, reset and fault is appended in
//! the order the simulator processed it. The running hash covers a
//! canonical encoding of each entry (fixed-width little-endian fields, a tag
//! byte per kind, a digest of delivered bytes), so two runs agree on the
//! hash exactly when they agree on every event, its time and its bytes.
//! The hash is FNV-1a 64 written out here, not std's `DefaultHasher`,
//! whose algorithm may change between Rust releases.

use core::fmt;
use std::net::SocketAddr;

use warren_proto::time::Instant;

/// FNV-1a 64 over a canonical byte encoding: stable across platforms and
/// releases, which is all a trace hash needs (it is not collision-resistant
/// against an adversary, and does not have to be).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StableHasher(u64);

impl StableHasher {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// A hasher in its initial state.
    pub fn new() -> StableHasher {
        StableHasher(Self::OFFSET)
    }

    /// Feeds raw bytes.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Feeds one byte.
    pub fn write_u8(&mut self, v: u8) {
        self.write_bytes(&[v]);
    }

    /// Feeds a `u64` as 8 little-endian bytes.
    pub fn write_u64(&mut self, v: u64) {
        self.write_bytes(&v.to_le_bytes());
    }

    /// Feeds a socket address in a fixed layout (family tag, address
    /// octets, port).
    pub fn write_addr(&mut self, addr: SocketAddr) {
        match addr {
            SocketAddr::V4(a) => {
                self.write_u8(4);
                self.write_bytes(&a.ip().octets());
            }
            SocketAddr::V6(a) => {
                self.write_u8(6);
                self.write_bytes(&a.ip().octets());
            }
        }
        self.write_bytes(&addr.port().to_le_bytes());
    }

    /// The hash of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher::new()
    }
}

/// A stable 64-bit digest of a payload, for the trace: a fixed
/// multiply-rotate over little-endian 8-byte words in four independent
/// lanes (so the CPU overlaps their multiplies), then the leftover words,
/// the tail bytes and the length. Every delivered byte passes through it,
/// so its speed is the simulator's: one lane ran at about 1.6 bytes per
/// cycle, four run near 4. Like FNV it only has to tell runs apart, not
/// resist an adversary.
pub fn digest(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let word = |w: &[u8]| {
        let mut le = [0u8; 8];
        le.copy_from_slice(w);
        u64::from_le_bytes(le)
    };
    let mut lanes: [u64; 4] = [
        0x243F_6A88_85A3_08D3,
        0x1319_8A2E_0370_7344,
        0xA409_3822_299F_31D0,
        0x082E_FA98_EC4E_6C89,
    ];
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = (lane.rotate_left(23) ^ word(w)).wrapping_mul(K);
        }
    }
    let mut h =
        lanes[0] ^ lanes[1].rotate_left(16) ^ lanes[2].rotate_left(32) ^ lanes[3].rotate_left(48);
    let mut words = blocks.remainder().chunks_exact(8);
    for w in &mut words {
        h = (h.rotate_left(23) ^ word(w)).wrapping_mul(K);
    }
    for b in words.remainder() {
        h = (h.rotate_left(23) ^ u64::from(*b)).wrapping_mul(K);
    }
    h ^= bytes.len() as u64;
    let mut state = h;
    crate::rng::splitmix64(&mut state)
}

/// A trace hash; displays as `trace-hash: <16 hex digits>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TraceHash(pub u64);

impl fmt::Display for TraceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace-hash: {:016x}", self.0)
    }
}

/// One thing that happened, in a form cheap to keep and to hash: ids and
/// lengths rather than payloads (payloads enter as a digest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceEntry {
    /// A host started listening.
    Listen {
        /// The host.
        host: u32,
        /// The listener id.
        listener: u64,
        /// The listening port.
        port: u16,
    },
    /// A host stopped listening.
    Unlisten {
        /// The listener id.
        listener: u64,
    },
    /// A host asked for a connection.
    Connect {
        /// The connecting socket.
        sock: u64,
        /// Its local address.
        from: SocketAddr,
        /// The address it dialled.
        to: SocketAddr,
    },
    /// A SYN could not leave (partition, clog, black hole, unknown address).
    SynDropped {
        /// The connecting socket.
        sock: u64,
        /// Which attempt this was, from 0.
        attempt: u32,
    },
    /// A listener accepted a connection.
    Accepted {
        /// The listener.
        listener: u64,
        /// The new server-side socket.
        sock: u64,
        /// The client's address.
        peer: SocketAddr,
    },
    /// A connect attempt finished; `outcome` 0 = connected, 1 = refused,
    /// 2 = timed out.
    Connected {
        /// The connecting socket.
        sock: u64,
        /// 0 connected, 1 refused, 2 timed out.
        outcome: u8,
    },
    /// The host handed bytes to `write`; `accepted` of `offered` were taken.
    Write {
        /// The writing socket.
        sock: u64,
        /// How many bytes the host offered.
        offered: u64,
        /// How many the window took.
        accepted: u64,
    },
    /// A segment left its host.
    Segment {
        /// The sending socket.
        sock: u64,
        /// Payload length.
        len: u64,
        /// Whether it carried FIN.
        fin: bool,
        /// When it will arrive.
        arrives: Instant,
    },
    /// Bytes were handed to the reading host.
    Received {
        /// The reading socket.
        sock: u64,
        /// How many bytes.
        len: u64,
        /// FNV-1a digest of the bytes.
        digest: u64,
    },
    /// The reading host saw end of stream.
    ReadClosed {
        /// The reading socket.
        sock: u64,
    },
    /// A socket's window opened again after a short write.
    Writable {
        /// The socket.
        sock: u64,
    },
    /// A socket was reset (the host learns it now).
    Reset {
        /// The socket.
        sock: u64,
    },
    /// A host half-closed its sending side.
    ShutdownWrite {
        /// The socket.
        sock: u64,
    },
    /// A host closed a socket; `abortive` when it went out as RST.
    Close {
        /// The socket.
        sock: u64,
        /// Whether the close became a reset.
        abortive: bool,
    },
    /// A host paused or resumed reading.
    ReadPaused {
        /// The socket.
        sock: u64,
        /// True for pause, false for resume.
        paused: bool,
    },
    /// A fault was injected or healed.
    Fault {
        /// The fault id (0 for faults without one).
        fault: u64,
        /// A fixed name of the fault kind, e.g. `"partition"`, `"heal"`.
        kind: &'static str,
    },
}

impl TraceEntry {
    fn encode(&self, h: &mut StableHasher) {
        match self {
            TraceEntry::Listen {
                host,
                listener,
                port,
            } => {
                h.write_u8(1);
                h.write_u64(u64::from(*host));
                h.write_u64(*listener);
                h.write_u64(u64::from(*port));
            }
            TraceEntry::Unlisten { listener } => {
                h.write_u8(2);
                h.write_u64(*listener);
            }
            TraceEntry::Connect { sock, from, to } => {
                h.write_u8(3);
                h.write_u64(*sock);
                h.write_addr(*from);
                h.write_addr(*to);
            }
            TraceEntry::SynDropped { sock, attempt } => {
                h.write_u8(4);
                h.write_u64(*sock);
                h.write_u64(u64::from(*attempt));
            }
            TraceEntry::Accepted {
                listener,
                sock,
                peer,
            } => {
                h.write_u8(5);
                h.write_u64(*listener);
                h.write_u64(*sock);
                h.write_addr(*peer);
            }
            TraceEntry::Connected { sock, outcome } => {
                h.write_u8(6);
                h.write_u64(*sock);
                h.write_u8(*outcome);
            }
            TraceEntry::Write {
                sock,
                offered,
                accepted,
            } => {
                h.write_u8(7);
                h.write_u64(*sock);
                h.write_u64(*offered);
                h.write_u64(*accepted);
            }
            TraceEntry::Segment {
                sock,
                len,
                fin,
                arrives,
            } => {
                h.write_u8(8);
                h.write_u64(*sock);
                h.write_u64(*len);
                h.write_u8(u8::from(*fin));
                h.write_u64(arrives.as_nanos());
            }
            TraceEntry::Received { sock, len, digest } => {
                h.write_u8(9);
                h.write_u64(*sock);
                h.write_u64(*len);
                h.write_u64(*digest);
            }
            TraceEntry::ReadClosed { sock } => {
                h.write_u8(10);
                h.write_u64(*sock);
            }
            TraceEntry::Writable { sock } => {
                h.write_u8(11);
                h.write_u64(*sock);
            }
            TraceEntry::Reset { sock } => {
                h.write_u8(12);
                h.write_u64(*sock);
            }
            TraceEntry::ShutdownWrite { sock } => {
                h.write_u8(13);
                h.write_u64(*sock);
            }
            TraceEntry::Close { sock, abortive } => {
                h.write_u8(14);
                h.write_u64(*sock);
                h.write_u8(u8::from(*abortive));
            }
            TraceEntry::ReadPaused { sock, paused } => {
                h.write_u8(15);
                h.write_u64(*sock);
                h.write_u8(u8::from(*paused));
            }
            TraceEntry::Fault { fault, kind } => {
                h.write_u8(16);
                h.write_u64(*fault);
                h.write_u64(kind.len() as u64);
                h.write_bytes(kind.as_bytes());
            }
        }
    }
}

/// One entry and when it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// Virtual time of the entry.
    pub at: Instant,
    /// What happened.
    pub entry: TraceEntry,
}

/// The run's trace: a running hash over every entry, plus the most recent
/// entries kept for a human reading a failing seed (bounded by `keep`).
#[derive(Clone, Debug)]
pub struct Trace {
    hash: StableHasher,
    count: u64,
    keep: usize,
    recent: std::collections::VecDeque<TraceRecord>,
}

impl Trace {
    /// A trace that keeps the last `keep` records (0 keeps none; the hash
    /// always covers everything).
    pub fn new(keep: usize) -> Trace {
        Trace {
            hash: StableHasher::new(),
            count: 0,
            keep,
            recent: std::collections::VecDeque::new(),
        }
    }

    /// Appends one entry.
    pub fn record(&mut self, at: Instant, entry: TraceEntry) {
        self.hash.write_u64(at.as_nanos());
        entry.encode(&mut self.hash);
        self.count = self.count.saturating_add(1);
        if self.keep > 0 {
            if self.recent.len() >= self.keep {
                self.recent.pop_front();
            }
            self.recent.push_back(TraceRecord { at, entry });
        }
    }

    /// The hash of every entry so far, in order.
    pub fn trace_hash(&self) -> TraceHash {
        TraceHash(self.hash.finish())
    }

    /// How many entries were recorded.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The most recent records, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &TraceRecord> {
        self.recent.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_answers() {
        let fnv = |b: &[u8]| {
            let mut h = StableHasher::new();
            h.write_bytes(b);
            h.finish()
        };
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn digest_sees_every_byte_its_position_and_the_length() {
        let base: Vec<u8> = (0..37u8).collect();
        let d = digest(&base);
        for i in 0..base.len() {
            let mut flipped = base.clone();
            flipped[i] ^= 0x80;
            assert_ne!(digest(&flipped), d, "byte {i}");
        }
        let mut swapped = base.clone();
        swapped.swap(0, 8);
        assert_ne!(digest(&swapped), d);
        assert_ne!(digest(&[0]), digest(&[0, 0]));
        assert_ne!(digest(b""), digest(&[0]));
    }

    #[test]
    fn digest_lanes_see_every_byte_and_every_word_position() {
        let base: Vec<u8> = (0..200u8).collect();
        let d = digest(&base);
        for i in 0..base.len() {
            let mut flipped = base.clone();
            flipped[i] ^= 1;
            assert_ne!(digest(&flipped), d, "byte {i}");
        }
        // Words swapped between lanes, and whole blocks swapped.
        let mut lanes_swapped = base.clone();
        lanes_swapped[..16].rotate_left(8);
        assert_ne!(digest(&lanes_swapped), d);
        let mut blocks_swapped = base.clone();
        blocks_swapped[..64].rotate_left(32);
        assert_ne!(digest(&blocks_swapped), d);
    }

    #[test]
    fn hash_depends_on_order_time_and_content() {
        let a = TraceEntry::ReadClosed { sock: 1 };
        let b = TraceEntry::Reset { sock: 1 };
        let mut t1 = Trace::new(4);
        t1.record(Instant(5), a.clone());
        t1.record(Instant(6), b.clone());
        let mut t2 = Trace::new(0);
        t2.record(Instant(5), a.clone());
        t2.record(Instant(6), b.clone());
        assert_eq!(t1.trace_hash(), t2.trace_hash());
        let mut swapped = Trace::new(0);
        swapped.record(Instant(5), b);
        swapped.record(Instant(6), a.clone());
        assert_ne!(t1.trace_hash(), swapped.trace_hash());
        let mut later = Trace::new(0);
        later.record(Instant(7), a);
        assert_ne!(t2.trace_hash(), later.trace_hash());
        assert_eq!(t1.recent().count(), 2);
        assert_eq!(t2.recent().count(), 0);
        assert_eq!(t2.len(), 2);
        assert!(format!("{}", TraceHash(0xab)).starts_with("trace-hash: 00000000000000ab"));
    }
}
