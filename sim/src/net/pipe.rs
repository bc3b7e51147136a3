//! One direction of a simulated TCP connection: a bounded byte pipe.
//!
//! Bytes move through three stages, in order and never duplicated:
//! `send_queue` (written, not yet on the wire), in flight (inside
//! scheduled segments), `received` (arrived, not yet handed to a paused
//! reader). Their sum never exceeds the window, which is what makes a
//! paused reader push back on the writer.
//!
//! Arrived segments are kept whole, not poured into one byte queue: the
//! usual reader takes exactly one segment, which then moves to it without
//! a copy (copies of payload bytes were the largest cost of the net).

use std::collections::VecDeque;

use warren_proto::time::Instant;

use crate::rng::SimRng;

/// One direction's state.
#[derive(Debug)]
pub(crate) struct Pipe {
    /// Maximum bytes written but not yet handed to the reader.
    window: usize,
    send_queue: VecDeque<u8>,
    in_flight: usize,
    received: VecDeque<Vec<u8>>,
    /// Bytes in `received`.
    received_len: usize,
    /// The writer asked for FIN after its queued bytes.
    pub fin_requested: bool,
    /// FIN left in a segment.
    pub fin_sent: bool,
    /// FIN reached the reader's side (after every byte before it).
    pub fin_arrived: bool,
    /// The reader was told about end of stream.
    pub fin_delivered: bool,
    /// A pump event for this pipe is in the queue.
    pub pump_scheduled: bool,
    /// The last pump found the path blocked; a heal reschedules it.
    pub stalled: bool,
    /// The writer got less than it offered and waits for `Writable`.
    pub want_writable: bool,
    /// No arrival may be scheduled before this (keeps bytes in order
    /// whatever the jitter).
    pub last_arrival: Instant,
    /// Segment sizes, coalescing delay and jitter for this direction.
    pub rng: SimRng,
}

impl Pipe {
    pub(crate) fn new(window: usize, rng: SimRng) -> Pipe {
        Pipe {
            window,
            send_queue: VecDeque::new(),
            in_flight: 0,
            received: VecDeque::new(),
            received_len: 0,
            fin_requested: false,
            fin_sent: false,
            fin_arrived: false,
            fin_delivered: false,
            pump_scheduled: false,
            stalled: false,
            want_writable: false,
            last_arrival: Instant::ZERO,
            rng,
        }
    }

    /// Bytes written and not yet handed to the reader.
    fn used(&self) -> usize {
        self.send_queue.len() + self.in_flight + self.received_len
    }

    /// Bytes the window still accepts from the writer.
    pub(crate) fn space(&self) -> usize {
        self.window.saturating_sub(self.used())
    }

    /// Takes as much of `data` as the window allows; returns how much.
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.space());
        self.send_queue.extend(&data[..n]);
        debug_assert!(self.used() <= self.window, "window overrun");
        n
    }

    /// Whether the pump has anything to send (bytes or a FIN).
    pub(crate) fn has_pending(&self) -> bool {
        !self.send_queue.is_empty() || (self.fin_requested && !self.fin_sent)
    }

    /// Cuts the next segment of at most `max` bytes off the send queue;
    /// the second value says whether it carries FIN.
    pub(crate) fn cut_segment(&mut self, max: usize) -> (Vec<u8>, bool) {
        let n = max.min(self.send_queue.len());
        let data = take_front(&mut self.send_queue, n);
        self.in_flight += data.len();
        let fin = self.send_queue.is_empty() && self.fin_requested && !self.fin_sent;
        if fin {
            self.fin_sent = true;
        }
        (data, fin)
    }

    /// A segment arrived at the reader's side.
    pub(crate) fn arrive(&mut self, data: Vec<u8>, fin: bool) {
        debug_assert!(data.len() <= self.in_flight, "arrival never sent");
        self.in_flight = self.in_flight.saturating_sub(data.len());
        if !data.is_empty() {
            self.received_len += data.len();
            self.received.push_back(data);
        }
        debug_assert!(self.used() <= self.window, "window overrun");
        if fin {
            self.fin_arrived = true;
        }
    }

    /// Hands every arrived byte to the reader.
    pub(crate) fn take_received(&mut self) -> Vec<u8> {
        let mut out = match self.received.pop_front() {
            Some(first) if self.received.is_empty() => first,
            Some(first) => {
                let mut all = Vec::with_capacity(self.received_len);
                all.extend_from_slice(&first);
                all
            }
            None => Vec::new(),
        };
        for more in self.received.drain(..) {
            out.extend_from_slice(&more);
        }
        self.received_len = 0;
        out
    }

    /// Whether arrived bytes wait for the reader.
    pub(crate) fn has_unread(&self) -> bool {
        self.received_len > 0
    }

    /// The writer's kernel forgets what it has not sent (abort, crash):
    /// queued bytes and a FIN not yet sent never leave.
    pub(crate) fn drop_unsent(&mut self) {
        self.send_queue.clear();
        if !self.fin_sent {
            self.fin_requested = false;
        }
        self.want_writable = false;
    }

    /// The reader's kernel forgets what arrived and was not read.
    pub(crate) fn drop_unread(&mut self) {
        self.received.clear();
        self.received_len = 0;
    }

    /// Drops everything (the connection was reset).
    pub(crate) fn discard(&mut self) {
        self.send_queue.clear();
        self.received.clear();
        self.received_len = 0;
        self.in_flight = 0;
        self.want_writable = false;
    }
}

/// Moves the first `n` bytes of `queue` into a vector with two copies
/// (the deque's two slices), not byte by byte.
fn take_front(queue: &mut VecDeque<u8>, n: usize) -> Vec<u8> {
    let n = n.min(queue.len());
    let (front, back) = queue.as_slices();
    let from_front = n.min(front.len());
    let mut out = Vec::with_capacity(n);
    out.extend_from_slice(&front[..from_front]);
    out.extend_from_slice(&back[..n - from_front]);
    queue.drain(..n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_front_spans_the_wrapped_halves() {
        let mut q: VecDeque<u8> = VecDeque::with_capacity(8);
        q.extend([0, 0, 0, 0, 0, 0]);
        q.drain(..5);
        q.extend([1, 2, 3, 4, 5, 6]);
        assert_eq!(take_front(&mut q, 4), [0, 1, 2, 3]);
        assert_eq!(take_front(&mut q, 10), [4, 5, 6]);
        assert!(q.is_empty());
    }

    #[test]
    fn window_bounds_every_stage_together() {
        let mut p = Pipe::new(10, SimRng::new(1));
        assert_eq!(p.write(b"0123456"), 7);
        assert_eq!(p.write(b"789abc"), 3);
        assert_eq!(p.space(), 0);
        let (seg, fin) = p.cut_segment(4);
        assert_eq!(seg, b"0123");
        assert!(!fin);
        assert_eq!(p.space(), 0, "in-flight bytes still count");
        p.arrive(seg, false);
        assert_eq!(p.space(), 0, "unread bytes still count");
        assert_eq!(p.take_received(), b"0123");
        assert_eq!(p.space(), 4);
        p.fin_requested = true;
        let (seg, fin) = p.cut_segment(100);
        assert_eq!(seg, b"456789");
        assert!(fin && p.fin_sent && !p.has_pending());
    }

    #[test]
    fn segments_a_paused_reader_left_arrive_as_one_delivery_in_order() {
        let mut p = Pipe::new(100, SimRng::new(1));
        assert_eq!(p.write(b"abcdefgh"), 8);
        let (first, _) = p.cut_segment(3);
        let (second, _) = p.cut_segment(5);
        p.arrive(first, false);
        p.arrive(Vec::new(), false);
        p.arrive(second, false);
        assert_eq!(p.space(), 92, "unread bytes count against the window");
        assert_eq!(p.take_received(), b"abcdefgh");
        assert!(!p.has_unread());
        assert_eq!(p.space(), 100);
        assert_eq!(p.take_received(), b"");
    }
}
