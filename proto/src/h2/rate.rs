//! Deterministic rate counters behind the protective limits.
//!
//! A counter lives in fixed windows of `per` that start at the first event
//! after the previous window ended. Two words of state instead of a log of
//! timestamps: a peer gains at most twice `max` across a window boundary,
//! which the defaults absorb. Time is only ever the `now` the host passed in,
//! so the same inputs trip a limit at the same frame.

use super::config::RateLimit;
use crate::time::Instant;

/// Counts events against one [`RateLimit`].
#[derive(Debug)]
pub(super) struct RateCounter {
    limit: RateLimit,
    window_start: Instant,
    count: u32,
}

impl RateCounter {
    /// A counter with no events yet.
    pub(super) fn new(limit: RateLimit) -> RateCounter {
        RateCounter {
            limit,
            window_start: Instant::ZERO,
            count: 0,
        }
    }

    /// Records one event at `now`; false once the window holds more than
    /// `max` events.
    pub(super) fn record(&mut self, now: Instant) -> bool {
        let window_end = self.window_start + self.limit.per;
        // A clock that went backwards (skew in the simulator) also restarts
        // the window rather than keeping an old one open forever.
        if self.count == 0 || now >= window_end || now < self.window_start {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= self.limit.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn trips_after_max_in_one_window_and_recovers_in_the_next() {
        let mut c = RateCounter::new(RateLimit {
            max: 3,
            per: Duration::from_secs(1),
        });
        let t = Instant::from_nanos(5);
        assert!(c.record(t));
        assert!(c.record(t));
        assert!(c.record(t + Duration::from_millis(999)));
        assert!(!c.record(t + Duration::from_millis(999)));
        assert!(c.record(t + Duration::from_secs(1)));
    }

    #[test]
    fn zero_max_refuses_everything() {
        let mut c = RateCounter::new(RateLimit {
            max: 0,
            per: Duration::from_secs(1),
        });
        assert!(!c.record(Instant::ZERO));
    }
}
