//! The bounded spin before parking: after the node did work, its loop may
//! keep polling the runtime's reactor without blocking for a short budget
//! before it parks.
//!
//! Why: a flow's setup is a chain of hand-offs between threads (client →
//! agent A → agent B → target → B → A → client). When the thread a
//! hand-off wakes sleeps on an idle vCPU, the wake-up first pays for the
//! vCPU leaving its halt (an IPI, the host scheduling the vCPU again); on
//! a quiet 2-vCPU VM that was most of warm setup's time (issue 8, see
//! benches/WARREN-BENCH.md, sixth pass). A node that keeps polling for a
//! few tens of µs after its last turn sees the answer it waits for without
//! a wake-up. It costs CPU, so it is off unless configured, and it only
//! starts after the node did work: an idle node parks at once.
//!
//! Between polls the loop yields the CPU (`sched_yield`), so a thread the
//! node waits for that is queued on the same CPU runs first. But a
//! runnable node loses the wake-up preemption a sleeping one gets: with a
//! busy loop on its CPU it waits out the loop's time slice (~4 ms) before
//! it polls again. So a poll that comes [`CONTENDED_GAP`] (or the budget,
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
    /// After the node last did work, keep polling the runtime's reactor
    /// without blocking for this long, yielding the CPU to any other
    /// runnable thread between polls, before parking. A spin that finds
    /// the CPU taken by another thread (0.5 ms between two polls) stops,
    /// and the node parks at once for the next second. Zero (the default)
    /// parks at once.
    pub spin: Duration,
}

/// When the loop keeps polling instead of parking.
#[derive(Debug)]
pub(crate) struct Spin {
    budget: Duration,
    /// When the node last did work; `None` when no spin is running (an
    /// idle node never spins).
    worked_at: Option<Instant>,
    /// The spin's last poll, to notice time spent off the CPU.
    polled_at: Option<Instant>,
    /// No spin before this: the last one found the CPU contended.
    paused_until: Option<Instant>,
}

impl Spin {
    pub(crate) fn new(options: LoopOptions) -> Spin {
        Spin {
            budget: options.spin,
            worked_at: None,
            polled_at: None,
            paused_until: None,
        }
    }

    /// The node did work just now. Reads the clock only when spinning is on.
    pub(crate) fn worked(&mut self) {
        if !self.budget.is_zero() {
            self.worked_at_time(Instant::now());
        }
    }

    /// Whether the loop polls once more instead of parking (and yields the
    /// CPU before it does).
    pub(crate) fn keep_polling(&mut self) -> bool {
        self.worked_at.is_some() && self.keep_polling_at(Instant::now())
    }

    fn worked_at_time(&mut self, now: Instant) {
        // A new spin: the time the work took is not time off the CPU.
        self.worked_at = Some(now);
        self.polled_at = None;
    }

    /// [`Spin::keep_polling`] as of `now`.
    fn keep_polling_at(&mut self, now: Instant) -> bool {
        let Some(worked_at) = self.worked_at else {
            return false;
        };
        if self.paused_until.is_some_and(|until| now < until) {
            self.worked_at = None;
            return false;
        }
        let off_cpu = self
            .polled_at
            .is_some_and(|at| now.saturating_duration_since(at) >= self.budget.max(CONTENDED_GAP));
        if off_cpu {
            self.paused_until = now.checked_add(CONTENDED_PAUSE);
            self.worked_at = None;
            return false;
        }
        if now.saturating_duration_since(worked_at) >= self.budget {
            self.worked_at = None;
            return false;
        }
        self.polled_at = Some(now);
        true
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

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn the_default_never_spins() {
        assert_eq!(LoopOptions::default().spin, Duration::ZERO);
        let mut s = Spin::new(LoopOptions::default());
        s.worked();
        assert!(!s.keep_polling());
        let t = Instant::now();
        s.worked_at_time(t);
        assert!(!s.keep_polling_at(t));
    }

    #[test]
    fn a_node_that_did_no_work_never_spins() {
        let mut s = spin(50);
        assert!(!s.keep_polling_at(Instant::now()));
        assert!(!s.keep_polling());
    }

    #[test]
    fn spinning_stops_once_the_budget_after_the_last_work_is_spent() {
        let mut s = spin(50);
        let t = Instant::now();
        s.worked_at_time(t);
        for step in 0..50 {
            assert!(s.keep_polling_at(t + us(step)), "{step} µs");
        }
        assert!(!s.keep_polling_at(t + us(50)));
        // Parked: no polling again until new work.
        assert!(!s.keep_polling_at(t + us(51)));
        // New work starts a new budget.
        let later = t + Duration::from_millis(3);
        s.worked_at_time(later);
        assert!(s.keep_polling_at(later + us(10)));
        assert!(s.keep_polling_at(later + us(49)));
        assert!(!s.keep_polling_at(later + us(60)));
    }

    #[test]
    fn a_spin_that_lost_its_cpu_stops_and_pauses_spinning() {
        let mut s = spin(50);
        let t = Instant::now();
        s.worked_at_time(t);
        assert!(s.keep_polling_at(t + us(1)));
        // The next poll comes a whole budget later: another thread had the
        // CPU (a busy loop's time slice).
        let back = t + Duration::from_millis(4);
        assert!(!s.keep_polling_at(back));
        // Work during the pause parks at once afterwards.
        s.worked_at_time(back + us(10));
        assert!(!s.keep_polling_at(back + us(11)));
        let after = back + CONTENDED_PAUSE;
        s.worked_at_time(after);
        assert!(
            s.keep_polling_at(after + us(1)),
            "spins again after the pause"
        );
    }

    #[test]
    fn a_stay_off_the_cpu_shorter_than_the_budget_keeps_spinning() {
        let mut s = spin(50);
        let t = Instant::now();
        s.worked_at_time(t);
        assert!(s.keep_polling_at(t + us(1)));
        // 30 µs away (a thread the node waits for ran): still spinning.
        assert!(s.keep_polling_at(t + us(31)));
        assert!(s.keep_polling_at(t + us(49)));
        // 200 µs away: past the budget, so this spin ends, but the next
        // one is not paused.
        assert!(!s.keep_polling_at(t + us(249)));
        s.worked_at_time(t + us(300));
        assert!(s.keep_polling_at(t + us(301)));
    }

    #[test]
    fn work_in_between_is_not_time_off_the_cpu() {
        let mut s = spin(50);
        let t = Instant::now();
        s.worked_at_time(t);
        assert!(s.keep_polling_at(t + us(1)));
        // The poll found work that took 200 µs: a new spin, not a pause.
        s.worked_at_time(t + us(201));
        assert!(s.keep_polling_at(t + us(202)));
    }
}
