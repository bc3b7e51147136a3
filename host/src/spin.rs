//! The bounded spin before parking: after the node did work, its loop may
//! keep polling the runtime's reactor without blocking for a short window
//! before it parks.
//!
//! Why: a flow's setup is a chain of hand-offs between threads (client →
//! agent A → agent B → target → B → A → client). When the thread a
//! hand-off wakes sleeps on an idle vCPU, the wake-up first pays for the
//! vCPU leaving its halt (an IPI, the host scheduling the vCPU again); on
//! a quiet 2-vCPU VM that was most of warm setup's time (issue 8, see
//! benches/WARREN-BENCH.md, sixth pass). A node that keeps polling for a
//! few tens of µs after its last turn sees the answer it waits for without
//! a wake-up. An idle node parks at once: a spin only follows work.
//!
//! The window adapts, as Linux's haltpoll cpuidle governor adapts its
//! poll limit: each wait is measured from the node's first idle look to
//! its next work. A wait longer than the largest window (the configured
//! spin) could not have been caught by any spin: the window halves, and
//! below a quarter of the largest it is 0. A wait that ended after the
//! window but within the largest doubles it (from a quarter of the
//! largest; from 0 only after two such waits in a row). So a node whose events come back to back keeps spinning and
//! one that sees isolated flows (a millisecond apart) stops paying for
//! spins that catch nothing. Waits are kept apart by what the node expects
//! ([`Node::awaiting_peer`](warren_proto::node::Node::awaiting_peer)):
//! the answer a flow just opened waits for comes in tens of µs even when
//! the next flow is a millisecond away, so each kind has its own window.
//! A wait after turns that moved bulk ([`BULK_BYTES`] read) does not spin
//! unless an answer is due: a relay's reads come fast enough to keep the
//! window open, and spinning between them only cost CPU.
//!
//! Between polls the loop yields the CPU (`sched_yield`), so a thread the
//! node waits for that is queued on the same CPU runs first. But a
//! runnable node loses the wake-up preemption a sleeping one gets: with a
//! busy loop on its CPU it waits out the loop's time slice (~4 ms) before
//! it polls again. So a poll that comes [`CONTENDED_GAP`] (or the window,
//! if longer) after the one before (the CPU was someone else's for that
//! long) ends the spin, and the node does not spin again for
//! [`CONTENDED_PAUSE`].

use std::time::{Duration, Instant};

/// Time between two polls of a spin that says another thread held the CPU
/// for a time slice: far above a yield to a thread that hands over a few
/// bytes or starts a connection (tens of µs; a threshold of 50 µs paused
/// most spins on a quiet box), below a busy thread's turn (a 4 ms tick).
pub(crate) const CONTENDED_GAP: Duration = Duration::from_micros(500);

/// How long a node that found its CPU taken while spinning parks at once.
/// A busy loop on the CPU then costs one flow one time slice per pause.
pub(crate) const CONTENDED_PAUSE: Duration = Duration::from_secs(1);

/// How a node's loop waits for its next event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopOptions {
    /// The longest spin: after the node did work, its loop may keep
    /// polling the runtime's reactor without blocking for up to this long,
    /// yielding the CPU to any other runnable thread between polls, before
    /// parking. The spin actually used adapts between 0 and this (see the
    /// module's documentation): it shrinks to 0 while the node's events
    /// come further apart than this. A spin that finds the CPU taken by
    /// another thread (0.5 ms between two polls) stops, and the node parks
    /// at once for the next second. Zero (the default) parks at once.
    pub spin: Duration,
}

/// Short waits in a row after which a window at 0 grows again. One is not
/// enough: a node that sees isolated flows alternates a short wait (the
/// client's FIN after the last byte, tens of µs) with a long one (the next
/// flow, a millisecond later), and a window grown by each short wait would
/// spin through each long one.
const SHORT_WAITS_TO_GROW: u8 = 2;

/// One kind of wait's spin window, adapted to how long such waits last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Window {
    spin: Duration,
    /// Waits no longer than the largest window, in a row.
    short_run: u8,
}

impl Window {
    /// Adapts the window to a wait of `waited`, with `max` the largest
    /// window (haltpoll's rule: grow ×2 from `max / 4` when a longer spin
    /// would have caught the event, halve when no spin could have, 0 below
    /// `max / 4`; a spin that caught its event keeps its window; and a
    /// window at 0 grows only after [`SHORT_WAITS_TO_GROW`] short waits).
    fn adapt(&mut self, waited: Duration, max: Duration) {
        let start = max / 4;
        if waited > max {
            self.short_run = 0;
            let half = self.spin / 2;
            self.spin = if half < start { Duration::ZERO } else { half };
            return;
        }
        self.short_run = self.short_run.saturating_add(1);
        let idle = self.spin.is_zero() && self.short_run < SHORT_WAITS_TO_GROW;
        if waited > self.spin && !idle {
            self.spin = self.spin.saturating_mul(2).max(start).min(max);
        }
    }
}

/// Bytes read from sockets since the last wait began above which the wait
/// follows bulk work and does not spin (unless the node awaits an answer).
/// A warm flow's turns read tens to hundreds of bytes; a relay moving
/// bulk reads up to 256 KiB at a time, and spinning between its reads
/// cost 11–13 % more CPU per Gbit/s (benches/WARREN-BENCH.md, "Warm setup:
/// an adaptive spin").
pub(crate) const BULK_BYTES: u64 = 16 * 1024;

/// A wait that began at the node's first idle look after work.
#[derive(Clone, Copy, Debug)]
struct Wait {
    began: Instant,
    /// The node expected a peer's answer when the wait began.
    awaiting: bool,
    /// How long this wait spins (0 once it parked).
    spin: Duration,
}

/// When the loop keeps polling instead of parking.
#[derive(Debug)]
pub(crate) struct Spin {
    /// The largest window; zero turns spinning off.
    max: Duration,
    /// Window for waits in which the node expects a peer's answer.
    awaiting: Window,
    /// Window for the other waits after work.
    settled: Window,
    /// The node worked since the last wait began: the next idle look
    /// begins one (an idle node never spins).
    worked: bool,
    /// The current wait, until the node works again.
    wait: Option<Wait>,
    /// The spin's last poll, to notice time spent off the CPU.
    polled_at: Option<Instant>,
    /// No spin before this: the last one found the CPU contended.
    paused_until: Option<Instant>,
    /// Bytes read since the last wait began.
    read: u64,
}

impl Spin {
    pub(crate) fn new(options: LoopOptions) -> Spin {
        Spin {
            max: options.spin,
            awaiting: Window::default(),
            settled: Window::default(),
            worked: false,
            wait: None,
            polled_at: None,
            paused_until: None,
            read: 0,
        }
    }

    /// The node did work just now. Reads the clock only when spinning is on.
    pub(crate) fn worked(&mut self) {
        if !self.max.is_zero() {
            self.worked_at(Instant::now());
        }
    }

    /// The node read `n` bytes from a socket.
    pub(crate) fn read(&mut self, n: usize) {
        self.read = self.read.saturating_add(n as u64);
    }

    /// Whether the loop polls once more instead of parking (and yields the
    /// CPU before it does). `awaiting` says whether the node expects a
    /// peer's answer; it is asked once per wait, when the wait begins.
    pub(crate) fn keep_polling(&mut self, awaiting: impl FnOnce() -> bool) -> bool {
        (self.worked || self.wait.is_some_and(|w| !w.spin.is_zero()))
            && self.keep_polling_at(Instant::now(), awaiting)
    }

    /// [`Spin::worked`] as of `now`: ends the current wait, adapting its
    /// kind's window to how long it lasted.
    fn worked_at(&mut self, now: Instant) {
        if let Some(wait) = self.wait.take() {
            let waited = now.saturating_duration_since(wait.began);
            let window = match wait.awaiting {
                true => &mut self.awaiting,
                false => &mut self.settled,
            };
            window.adapt(waited, self.max);
        }
        self.worked = true;
        // A new spin: the time the work took is not time off the CPU.
        self.polled_at = None;
    }

    /// [`Spin::keep_polling`] as of `now`.
    fn keep_polling_at(&mut self, now: Instant, awaiting: impl FnOnce() -> bool) -> bool {
        if std::mem::take(&mut self.worked) && !self.max.is_zero() {
            let awaiting = awaiting();
            let bulk = std::mem::take(&mut self.read) > BULK_BYTES;
            let spin = match (awaiting, bulk) {
                (true, _) => self.awaiting.spin,
                // After bulk work: park (the wait still adapts the window).
                (false, true) => Duration::ZERO,
                (false, false) => self.settled.spin,
            };
            self.wait = Some(Wait {
                began: now,
                awaiting,
                spin,
            });
        }
        let Some(wait) = self.wait.as_mut() else {
            return false;
        };
        if wait.spin.is_zero() {
            return false;
        }
        let paused = self.paused_until.is_some_and(|until| now < until);
        let off_cpu = self
            .polled_at
            .is_some_and(|at| now.saturating_duration_since(at) >= wait.spin.max(CONTENDED_GAP));
        if off_cpu {
            self.paused_until = now.checked_add(CONTENDED_PAUSE);
        }
        if paused || off_cpu || now.saturating_duration_since(wait.began) >= wait.spin {
            // Parked: the wait goes on (its length still adapts the
            // window), without spinning.
            wait.spin = Duration::ZERO;
            return false;
        }
        self.polled_at = Some(now);
        true
    }

    /// The window a wait that begins now would spin for.
    #[cfg(test)]
    fn window(&self, awaiting: bool) -> Duration {
        match awaiting {
            true => self.awaiting.spin,
            false => self.settled.spin,
        }
    }
}

#[cfg(test)]
mod tests;
