//! What one agent may cost a hub: rates of control messages and new
//! relayed streams, and how much misbehaviour the hub takes before it
//! suspends the agent.
//!
//! The counters run on the node's injected time only, so the same inputs
//! refuse the same request. Rates are token buckets (a steady rate with a
//! burst on top, so an agent that starts up and opens its pool at once is
//! not punished); offences are counted in fixed windows, and too many in
//! one window suspend the agent's identity for a back-off period.

use core::fmt;
use core::time::Duration;

use crate::time::Instant;

/// A steady rate with a burst allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Events per second in the long run.
    pub per_second: u32,
    /// Events allowed at once after a quiet period.
    pub burst: u32,
}

/// The hub's per-agent limits (part of [`super::HubRole`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentLimits {
    /// Control messages one control stream (one connection) may send.
    pub control_messages: Rate,
    /// New relayed streams (CONNECTs) one identity may open, across all
    /// of its connections: replicas sharing an identity share the budget,
    /// so opening more connections buys an abuser nothing.
    pub connects: Rate,
    /// Offences (refused requests, broken control streams, rejected
    /// announcements) taken within `offence_window` before the identity
    /// is suspended.
    pub max_offences: u32,
    /// The window offences are counted in.
    pub offence_window: Duration,
    /// How long a suspended identity's connections are refused (GOAWAY
    /// ENHANCE_YOUR_CALM) after its connections were closed.
    pub suspension: Duration,
}

impl Default for AgentLimits {
    fn default() -> AgentLimits {
        AgentLimits {
            // An agent sends a handful of messages per registry change;
            // even a busy one is far below this.
            control_messages: Rate {
                per_second: 20,
                burst: 50,
            },
            // Flow setups on warm connections cost a stream each; a busy
            // agent opens a few hundred per second.
            connects: Rate {
                per_second: 200,
                burst: 400,
            },
            max_offences: 100,
            offence_window: Duration::from_secs(10),
            suspension: Duration::from_secs(30),
        }
    }
}

/// What an agent did that the hub refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Offence {
    /// More control messages than [`AgentLimits::control_messages`].
    ControlFlood,
    /// More CONNECTs than [`AgentLimits::connects`].
    ConnectFlood,
    /// Bytes on the control stream that are not control frames, a frame
    /// over the length limit, or a hub-only message.
    BadControl,
    /// An announcement the hub's policy or registry refused.
    RejectedAnnouncement,
}

impl Offence {
    /// The label in logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Offence::ControlFlood => "control_rate",
            Offence::ConnectFlood => "connect_rate",
            Offence::BadControl => "bad_control",
            Offence::RejectedAnnouncement => "rejected_announcement",
        }
    }
}

impl fmt::Display for Offence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Millionths of a token: integer arithmetic keeps the bucket exact and
/// deterministic at any rate.
const MICRO: u64 = 1_000_000;

/// A token bucket on injected time.
#[derive(Clone, Debug)]
pub(crate) struct TokenBucket {
    rate: Rate,
    micro_tokens: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket (the first burst is allowed).
    pub(crate) fn new(rate: Rate) -> TokenBucket {
        TokenBucket {
            rate,
            micro_tokens: u64::from(rate.burst).saturating_mul(MICRO),
            last: None,
        }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let cap = u64::from(self.rate.burst).saturating_mul(MICRO);
        if let Some(last) = self.last {
            // A clock that went backwards refills nothing (and does not
            // move `last` back, so it cannot be replayed for tokens).
            let nanos = now.saturating_duration_since(last).as_nanos();
            // rate tokens/s = rate micro-tokens per 1000 ns.
            let earned = nanos.saturating_mul(u128::from(self.rate.per_second)) / 1000;
            let earned = u64::try_from(earned).unwrap_or(u64::MAX);
            self.micro_tokens = self.micro_tokens.saturating_add(earned).min(cap);
        }
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
        match self.micro_tokens.checked_sub(MICRO) {
            Some(left) => {
                self.micro_tokens = left;
                true
            }
            None => false,
        }
    }
}

/// Offences counted in fixed windows.
#[derive(Clone, Debug, Default)]
pub(crate) struct OffenceCount {
    window_start: Instant,
    count: u32,
}

impl OffenceCount {
    /// Records one offence at `now`; returns the count in the current
    /// window, including this one.
    pub(crate) fn record(&mut self, now: Instant, window: Duration) -> u32 {
        let window_end = self.window_start.saturating_add(window);
        if self.count == 0 || now >= window_end || now < self.window_start {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    fn at_ms(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let mut b = TokenBucket::new(Rate {
            per_second: 10,
            burst: 5,
        });
        let t = at_ms(1_000);
        assert_eq!((0..8).filter(|_| b.take(t)).count(), 5);
        // 10/s: one token per 100 ms.
        assert!(!b.take(at_ms(1_099)));
        assert!(b.take(at_ms(1_100)));
        assert!(!b.take(at_ms(1_100)));
        // A long quiet period refills only up to the burst.
        let later = at_ms(60_000);
        assert_eq!((0..20).filter(|_| b.take(later)).count(), 5);
    }

    #[test]
    fn bucket_ignores_a_clock_going_backwards() {
        let mut b = TokenBucket::new(Rate {
            per_second: 1,
            burst: 1,
        });
        assert!(b.take(at_ms(10_000)));
        assert!(!b.take(at_ms(5_000)));
        // Going back did not reset the reference: still 1 s from 10 s.
        assert!(!b.take(at_ms(10_999)));
        assert!(b.take(at_ms(11_000)));
    }

    #[test]
    fn zero_rate_allows_only_the_burst() {
        let mut b = TokenBucket::new(Rate {
            per_second: 0,
            burst: 2,
        });
        assert!(b.take(at_ms(0)));
        assert!(b.take(at_ms(0)));
        assert!(!b.take(at_ms(1_000_000)));
    }

    /// Over any schedule, a bucket grants at most burst + rate × elapsed.
    #[test]
    fn bucket_never_grants_more_than_burst_plus_rate() {
        fn prop(per_second: u16, burst: u8, gaps_ms: Vec<u16>) -> TestResult {
            let rate = Rate {
                per_second: u32::from(per_second),
                burst: u32::from(burst),
            };
            let mut b = TokenBucket::new(rate);
            let mut now = 0u64;
            let mut granted = 0u64;
            for gap in gaps_ms {
                now += u64::from(gap);
                granted += u64::from(b.take(at_ms(now)));
            }
            let bound = u64::from(burst) + u64::from(per_second) * now / 1000 + 1;
            TestResult::from_bool(granted <= bound)
        }
        quickcheck(prop as fn(u16, u8, Vec<u16>) -> TestResult);
    }

    #[test]
    fn offences_count_per_window() {
        let mut o = OffenceCount::default();
        let w = Duration::from_secs(10);
        assert_eq!(o.record(at_ms(1), w), 1);
        assert_eq!(o.record(at_ms(9_000), w), 2);
        assert_eq!(o.record(at_ms(10_001), w), 1);
    }
}
