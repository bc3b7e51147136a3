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

/// Received payload not yet released by the application: one contiguous
/// region `buf[start..]`, so `recv_data` can hand out a single slice.
///
/// A drained buffer gives its allocation back at once, so an idle stream
/// holds no payload memory however busy it was (ztunnel's per-connection
/// buffers that stay grown are its memory issue #1630). It remembers the
/// capacity it had instead, and the next push allocates that in one step:
/// a bulk stream that drains and refills pays one malloc and free per
/// cycle, not a doubling series of reallocations and copies.
#[derive(Debug, Default)]
pub(super) struct RecvBuf {
    buf: Vec<u8>,
    start: usize,
    /// Capacity when the buffer last drained.
    last_capacity: usize,
}

impl RecvBuf {
    /// Unreleased bytes.
    pub(super) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The unreleased bytes.
    pub(super) fn as_slice(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    /// Appends `data` (the one copy of received payload).
    pub(super) fn push(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.buf.capacity() == 0 {
            // Bounded like the buffer itself: `last_capacity` was allocated
            // for bytes the window admitted.
            self.buf.reserve_exact(data.len().max(self.last_capacity));
        }
        // Reclaim the released front before growing, so the allocation stays
        // bounded by the window rather than by the bytes ever received.
        if self.start > 0 && self.buf.len() + data.len() > self.buf.capacity() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes allocated.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Drops the first `n` unreleased bytes (`n <= len()`); a drained
    /// buffer frees its allocation.
    pub(super) fn release(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.last_capacity = self.buf.capacity();
            self.buf = Vec::new();
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
    use super::*;

    #[test]
    fn recv_buf_stays_contiguous_and_reclaims_the_front() {
        let mut b = RecvBuf::default();
        b.push(b"hello");
        b.release(2);
        assert_eq!(b.as_slice(), b"llo");
        b.push(b" world");
        assert_eq!(b.as_slice(), b"llo world");
        b.release(9);
        assert_eq!(b.len(), 0);
        assert_eq!(b.as_slice(), b"");
    }

    #[test]
    fn drained_buffer_frees_and_refills_in_one_allocation() {
        let mut b = RecvBuf::default();
        b.push(&[1; 1000]);
        b.push(&[2; 3000]);
        let grown = b.capacity();
        assert!(grown >= 4000);
        b.release(4000);
        assert_eq!(b.capacity(), 0, "an idle stream holds no payload memory");
        b.push(&[3; 10]);
        assert_eq!(
            b.capacity(),
            grown,
            "the refill allocates the old size at once"
        );
        assert_eq!(b.as_slice(), &[3; 10]);
        b.release(5);
        assert_eq!(b.as_slice(), &[3; 5], "a partial release keeps the rest");
        assert_eq!(b.capacity(), grown);
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
