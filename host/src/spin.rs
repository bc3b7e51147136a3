//! The bounded spin before parking: after the node did work, its loop may
//! keep polling the runtime's reactor without blocking for a short budget
//! before it parks.
//!
//! Why: a flow's setup is a chain of hand-offs between threads (client →
//! agent A → agent B → target → B → A → client). When the thread that a
//! hand-off wakes sleeps on an idle vCPU, the wake-up pays for the vCPU
//! leaving its halt (an IPI and a VM entry) before any work is done; on a
//! quiet 2-vCPU VM that was most of warm setup's time (issue 8, see
//! benches/WARREN-BENCH.md, sixth pass). A node that keeps polling for a
//! few tens of µs after its last turn sees the answer it waits for without
//! any wake-up. It costs CPU, so it is off unless configured, and it only
//! starts after the node did work: an idle node parks at once.

use std::time::{Duration, Instant};

/// How a node's loop waits for its next event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopOptions {
    /// After the node last did work, keep polling the runtime's reactor
    /// without blocking for this long, yielding the CPU to any other
    /// runnable thread between polls, before parking. Zero (the default)
    /// parks at once.
    pub spin: Duration,
}

/// When the loop keeps polling instead of parking.
#[derive(Debug)]
pub(crate) struct Spin {
    budget: Duration,
    /// When the node last did work; `None` until it does (an idle node
    /// never spins).
    worked_at: Option<Instant>,
}

impl Spin {
    pub(crate) fn new(options: LoopOptions) -> Spin {
        Spin {
            budget: options.spin,
            worked_at: None,
        }
    }

    /// The node did work just now. Reads the clock only when spinning is on.
    pub(crate) fn worked(&mut self) {
        if !self.budget.is_zero() {
            self.worked_at = Some(Instant::now());
        }
    }

    /// Whether the loop polls once more instead of parking.
    pub(crate) fn keep_polling(&self) -> bool {
        self.worked_at.is_some() && self.keep_polling_at(Instant::now())
    }

    /// [`Spin::keep_polling`] as of `now`.
    fn keep_polling_at(&self, now: Instant) -> bool {
        self.worked_at
            .is_some_and(|at| now.saturating_duration_since(at) < self.budget)
    }

    #[cfg(test)]
    fn worked_at(&mut self, now: Instant) {
        if !self.budget.is_zero() {
            self.worked_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(us: u64) -> Spin {
        Spin::new(LoopOptions {
            spin: Duration::from_micros(us),
        })
    }

    #[test]
    fn the_default_never_spins() {
        let mut s = Spin::new(LoopOptions::default());
        assert_eq!(LoopOptions::default().spin, Duration::ZERO);
        let t = Instant::now();
        s.worked_at(t);
        assert!(!s.keep_polling_at(t));
        s.worked();
        assert!(!s.keep_polling());
    }

    #[test]
    fn a_node_that_did_no_work_never_spins() {
        let s = spin(50);
        assert!(!s.keep_polling_at(Instant::now()));
        assert!(!s.keep_polling());
    }

    #[test]
    fn spinning_stops_once_the_budget_after_the_last_work_is_spent() {
        let mut s = spin(50);
        let t = Instant::now();
        s.worked_at(t);
        assert!(s.keep_polling_at(t));
        assert!(s.keep_polling_at(t + Duration::from_micros(49)));
        assert!(!s.keep_polling_at(t + Duration::from_micros(50)));
        assert!(!s.keep_polling_at(t + Duration::from_secs(1)));
        // New work starts a new budget.
        let later = t + Duration::from_millis(3);
        s.worked_at(later);
        assert!(s.keep_polling_at(later + Duration::from_micros(10)));
        assert!(!s.keep_polling_at(later + Duration::from_micros(60)));
    }
}
