//! Per-stream state (RFC 9113 §5.1) and the bounded memory of closed streams.
//!
//! A stream in the map is open or half-closed; "idle" streams have no entry
//! and "closed" ones are either forgotten or remembered in [`ClosedStreams`]
//! (a bounded ring), which is what lets the connection tell a frame on a
//! closed stream (ignore it, or STREAM_CLOSED) from one on an idle stream
//! (PROTOCOL_ERROR) without keeping per-stream state forever.

use std::collections::{BTreeMap, VecDeque};

use super::flow::RecvWindow;

/// Our sending half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SendPhase {
    /// Server: the response head is not sent yet.
    Head,
    /// Head sent; data and trailers may follow.
    Body,
    /// END_STREAM sent.
    Done,
}

/// The peer's sending half, as we receive it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RecvPhase {
    /// Client: the final response head has not arrived.
    Head,
    /// Head received; data and trailers may follow.
    Body,
    /// END_STREAM received.
    Done,
}

/// Where the last DATA frame of a stream sits in the output, so that
/// `finish` can set END_STREAM on it instead of sending an empty frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DataMark {
    /// The output generation (bumped by every `poll_transmit`).
    pub(super) epoch: u64,
    /// Offset of the frame header in the output.
    pub(super) offset: usize,
}

/// The smallest receive chunk: small payloads are coalesced into chunks of
/// this size, so a stream's unfilled room stays under 16 KiB while a peer
/// sending many tiny DATA frames still costs one allocation per 16 KiB.
pub(super) const RECV_CHUNK: usize = 16 * 1024;

/// The largest receive chunk. A bulk payload gets a chunk of its own size
/// up to this, so the reader's pieces (one socket write each) stay as large
/// as the frames, not cut to [`RECV_CHUNK`] (that cost 7 % more CPU per
/// Gbit/s in four times the writes); the released front of the first chunk,
/// the other slack, stays under this.
pub(super) const RECV_CHUNK_MAX: usize = 64 * 1024;

/// Received payload not yet released by the application, as a queue of
/// chunks of [`RECV_CHUNK`] to [`RECV_CHUNK_MAX`] bytes.
///
/// The allocation follows the bytes held: a push fills the last chunk's
/// room and then starts new chunks; a release frees every chunk it empties.
/// So a stream never holds more than its unreleased bytes plus the slack
/// of its two ends (the released front of the first chunk, under
/// [`RECV_CHUNK_MAX`], and the unfilled room of the last, under
/// [`RECV_CHUNK`]), where one growing `Vec` held up to twice its bytes (its
/// doubling) and kept that size after draining. Payload is still copied
/// once, from the frame into a chunk. A drained buffer holds no memory at
/// all, so an idle stream costs nothing however busy it was (ztunnel's
/// per-connection buffers that stay grown are its memory issue #1630).
///
/// The first chunk sits apart from the queue of the others, so a stream
/// whose bytes fit one chunk (most pushes, on a flow that keeps up) costs a
/// single allocation, not the chunk's plus the queue's.
///
/// Invariant: `head` holds unreleased bytes whenever the buffer does, and so
/// does every chunk in `rest`; a drained buffer holds no allocation.
#[derive(Debug, Default)]
pub(super) struct RecvBuf {
    /// The first chunk (empty and unallocated when nothing is held).
    head: Vec<u8>,
    /// Released bytes at the front of `head`.
    start: usize,
    /// The chunks after `head`, in order.
    rest: VecDeque<Vec<u8>>,
    /// Unreleased bytes in all chunks.
    len: usize,
}

impl RecvBuf {
    /// Unreleased bytes.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The first contiguous piece of the unreleased bytes (empty only when
    /// there are none); releasing it brings the next piece to the front.
    pub(super) fn first_piece(&self) -> &[u8] {
        self.head.get(self.start..).unwrap_or_default()
    }

    /// All the unreleased bytes, piece by piece, in order.
    pub(super) fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(self.first_piece())
            .chain(self.rest.iter().map(Vec::as_slice))
            .filter(|piece| !piece.is_empty())
    }

    /// Appends `data` (the one copy of received payload).
    pub(super) fn push(&mut self, data: &[u8]) {
        let last = match self.rest.back_mut() {
            Some(chunk) => chunk,
            None => &mut self.head,
        };
        let room = last.capacity().saturating_sub(last.len());
        let (fits, mut rest) = data.split_at(room.min(data.len()));
        last.extend_from_slice(fits);
        while !rest.is_empty() {
            let (piece, later) = rest.split_at(rest.len().min(RECV_CHUNK_MAX));
            let mut chunk = Vec::with_capacity(piece.len().max(RECV_CHUNK));
            chunk.extend_from_slice(piece);
            if self.head.capacity() == 0 {
                self.head = chunk;
            } else {
                self.rest.push_back(chunk);
            }
            rest = later;
        }
        self.len = self.len.saturating_add(data.len());
    }

    /// Bytes allocated for payload (the chunks' capacities).
    #[cfg(test)]
    pub(super) fn allocated(&self) -> usize {
        self.head.capacity() + self.rest.iter().map(Vec::capacity).sum::<usize>()
    }

    /// Drops the first `n` unreleased bytes (at most `len()`), freeing every
    /// chunk that empties.
    pub(super) fn release(&mut self, n: usize) {
        let mut n = n.min(self.len);
        self.len -= n;
        while n > 0 && !self.head.is_empty() {
            let left = self.head.len().saturating_sub(self.start);
            if n < left {
                self.start += n;
                break;
            }
            n -= left;
            self.head = self.rest.pop_front().unwrap_or_default();
            self.start = 0;
        }
        if self.len == 0 {
            // The chunk queue goes too: an idle stream holds nothing.
            self.head = Vec::new();
            self.rest = VecDeque::new();
            self.start = 0;
        }
    }
}

/// One open or half-closed stream (or a closed one whose received bytes the
/// application has not read yet).
#[derive(Debug)]
pub(super) struct Stream {
    /// Our sending half.
    pub(super) send: SendPhase,
    /// The peer's sending half.
    pub(super) recv: RecvPhase,
    /// What we may still send (may be negative after a SETTINGS decrease).
    pub(super) send_window: i64,
    /// What the peer may still send, and credits not yet announced.
    pub(super) recv_window: RecvWindow,
    /// Received payload.
    pub(super) buf: RecvBuf,
    /// `content-length` the peer announced, if any and if it is checked.
    pub(super) content_length: Option<u64>,
    /// Payload bytes received so far.
    pub(super) received: u64,
    /// Our last DATA frame still in the output.
    pub(super) last_data: Option<DataMark>,
    /// An `Event::Data` for this stream waits in the queue.
    pub(super) data_event_queued: bool,
    /// Server: the application has not answered yet (counts toward
    /// `max_pending_accept`).
    pub(super) awaiting_answer: bool,
    /// The request was HEAD or CONNECT, so the peer's content-length does
    /// not describe the DATA that follows.
    pub(super) body_unchecked: bool,
}

impl Stream {
    /// A stream in the given phases with the given windows.
    pub(super) fn new(
        send: SendPhase,
        recv: RecvPhase,
        send_window: i64,
        recv_window: RecvWindow,
    ) -> Stream {
        Stream {
            send,
            recv,
            send_window,
            recv_window,
            buf: RecvBuf::default(),
            content_length: None,
            received: 0,
            last_data: None,
            data_event_queued: false,
            awaiting_answer: false,
            body_unchecked: false,
        }
    }

    /// Open or half-closed: counts toward the concurrency limits.
    pub(super) fn is_active(&self) -> bool {
        self.send != SendPhase::Done || self.recv != RecvPhase::Done
    }
}

/// How a remembered stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ClosedHow {
    /// We sent RST_STREAM (or refused it): the peer may still have frames in
    /// flight, which are ignored.
    ResetByUs,
    /// The peer sent RST_STREAM: further frames are a stream error
    /// STREAM_CLOSED.
    ResetByPeer,
    /// Both sides sent END_STREAM: further DATA or HEADERS are a connection
    /// error STREAM_CLOSED.
    Finished,
}

/// The most recently closed streams, at most `capacity` of them.
#[derive(Debug)]
pub(super) struct ClosedStreams {
    by_id: BTreeMap<u32, ClosedHow>,
    order: VecDeque<u32>,
    capacity: usize,
}

impl ClosedStreams {
    /// An empty memory of `capacity` streams.
    pub(super) fn new(capacity: usize) -> ClosedStreams {
        ClosedStreams {
            by_id: BTreeMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Remembers how `id` closed, forgetting the oldest entry when full.
    pub(super) fn insert(&mut self, id: u32, how: ClosedHow) {
        if self.by_id.insert(id, how).is_none() {
            self.order.push_back(id);
            if self.order.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.by_id.remove(&oldest);
                }
            }
        }
    }

    /// How `id` closed, if it is still remembered.
    pub(super) fn get(&self, id: u32) -> Option<ClosedHow> {
        self.by_id.get(&id).copied()
    }
}

#[cfg(test)]
mod tests {
    use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

    use super::*;

    /// Reads `n` bytes off the front piece by piece, as a consumer does.
    fn take(b: &mut RecvBuf, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            let piece = b.first_piece();
            assert!(!piece.is_empty(), "a piece is empty while bytes are held");
            let k = piece.len().min(n - out.len());
            out.extend_from_slice(&piece[..k]);
            b.release(k);
        }
        out
    }

    #[test]
    fn recv_buf_coalesces_small_pushes_into_one_piece() {
        let mut b = RecvBuf::default();
        b.push(b"hello");
        b.release(2);
        assert_eq!(b.first_piece(), b"llo");
        b.push(b" world");
        assert_eq!(b.first_piece(), b"llo world");
        assert_eq!(b.allocated(), RECV_CHUNK, "both pushes share one chunk");
        b.release(9);
        assert_eq!(b.len(), 0);
        assert_eq!(b.first_piece(), b"");
    }

    #[test]
    fn drained_buffer_frees_everything() {
        let mut b = RecvBuf::default();
        b.push(&[1; 1000]);
        b.push(&[2; 3000]);
        b.release(4000);
        assert_eq!(b.allocated(), 0, "an idle stream holds no payload memory");
        assert_eq!(b.rest.capacity(), 0, "nor a chunk queue");
        b.push(&[3; 10]);
        assert_eq!(b.first_piece(), &[3; 10]);
        b.release(5);
        assert_eq!(b.first_piece(), &[3; 5], "a partial release keeps the rest");
    }

    #[test]
    fn a_large_payload_spans_chunks_and_frees_them_as_released() {
        let mut b = RecvBuf::default();
        let data: Vec<u8> = (0..3 * RECV_CHUNK_MAX + 7)
            .map(|i| (i % 251) as u8)
            .collect();
        b.push(&data);
        assert_eq!(b.len(), data.len());
        assert_eq!(
            b.allocated(),
            3 * RECV_CHUNK_MAX + RECV_CHUNK,
            "no doubling: three full chunks and one for the last 7 bytes"
        );
        assert_eq!(
            b.first_piece().len(),
            RECV_CHUNK_MAX,
            "bulk pieces stay large"
        );
        assert_eq!(b.pieces().map(<[u8]>::len).sum::<usize>(), data.len());
        assert_eq!(take(&mut b, RECV_CHUNK_MAX + 1), data[..RECV_CHUNK_MAX + 1]);
        assert_eq!(
            b.allocated(),
            2 * RECV_CHUNK_MAX + RECV_CHUNK,
            "released chunks are freed"
        );
        let rest = b.len();
        assert_eq!(take(&mut b, rest), data[RECV_CHUNK_MAX + 1..]);
        assert_eq!(b.allocated(), 0);
    }

    /// One step of a receive buffer's life.
    #[derive(Clone, Debug)]
    enum Op {
        /// A DATA payload of this many bytes arrives.
        Push(u32),
        /// The reader takes this share (per 256) of what is held.
        Release(u8),
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            if bool::arbitrary(g) {
                // Mostly small payloads, sometimes several chunks' worth.
                let len = match u8::arbitrary(g) % 4 {
                    0 => u32::arbitrary(g) % (3 * RECV_CHUNK_MAX as u32),
                    _ => u32::arbitrary(g) % 2048,
                };
                Op::Push(len)
            } else {
                Op::Release(u8::arbitrary(g))
            }
        }
    }

    /// Bytes come out in order and exactly once, the pieces add up to what
    /// is held, and the allocation never exceeds the held bytes plus the
    /// slack of the two ends (the released front of the first chunk, under
    /// `RECV_CHUNK_MAX`, and the unfilled room of the last, under
    /// `RECV_CHUNK`).
    #[test]
    fn recv_buf_allocation_follows_the_bytes_held() {
        fn prop(ops: Vec<Op>) -> TestResult {
            let mut b = RecvBuf::default();
            let mut pushed: u64 = 0;
            let mut taken: u64 = 0;
            for op in ops {
                match op {
                    Op::Push(len) => {
                        let data: Vec<u8> = (pushed..pushed + u64::from(len))
                            .map(|i| (i % 251) as u8)
                            .collect();
                        b.push(&data);
                        pushed += u64::from(len);
                    }
                    Op::Release(share) => {
                        let n = b.len() * usize::from(share) / 255;
                        let got = take(&mut b, n);
                        let want: Vec<u8> =
                            (taken..taken + n as u64).map(|i| (i % 251) as u8).collect();
                        if got != want {
                            return TestResult::error("bytes out of order");
                        }
                        taken += n as u64;
                    }
                }
                let held = usize::try_from(pushed - taken).unwrap();
                if b.len() != held || b.pieces().map(<[u8]>::len).sum::<usize>() != held {
                    return TestResult::error(format!("holds {} of {held}", b.len()));
                }
                if b.allocated() > held + RECV_CHUNK_MAX + RECV_CHUNK {
                    return TestResult::error(format!(
                        "{} bytes allocated for {held} held",
                        b.allocated()
                    ));
                }
                if held == 0 && b.allocated() != 0 {
                    return TestResult::error("a drained buffer keeps memory");
                }
            }
            TestResult::passed()
        }
        QuickCheck::new()
            .tests(300)
            .quickcheck(prop as fn(Vec<Op>) -> TestResult);
    }

    #[test]
    fn closed_streams_forget_the_oldest() {
        let mut c = ClosedStreams::new(2);
        c.insert(1, ClosedHow::Finished);
        c.insert(3, ClosedHow::ResetByUs);
        c.insert(5, ClosedHow::ResetByPeer);
        assert_eq!(c.get(1), None);
        assert_eq!(c.get(3), Some(ClosedHow::ResetByUs));
        assert_eq!(c.get(5), Some(ClosedHow::ResetByPeer));
    }
}
