//! The last few policy denials, for `/status`: a bounded ring filled from
//! the node's events on its own thread and read by the admin thread.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use warren_proto::node::NodeEvent;

/// How many denials are kept unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 32;

/// One denied flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// When, in milliseconds since the Unix epoch (the wall clock: people
    /// read it).
    pub at_unix_ms: u64,
    /// Who asked, when known.
    pub source: Option<String>,
    /// What was asked for.
    pub destination: String,
    /// The decision's reason code (`deny-rule`, `egress-not-allowed`, ...).
    pub reason: &'static str,
    /// The rule that decided, when a rule did.
    pub rule: Option<String>,
}

/// A shared ring of the latest denials; clones share it.
#[derive(Clone, Debug)]
pub struct RecentDenials {
    ring: Arc<Mutex<VecDeque<Denial>>>,
    capacity: usize,
}

impl Default for RecentDenials {
    fn default() -> Self {
        RecentDenials::with_capacity(DEFAULT_CAPACITY)
    }
}

impl RecentDenials {
    /// A ring that keeps the latest `capacity` denials (at least one).
    pub fn with_capacity(capacity: usize) -> RecentDenials {
        let capacity = capacity.max(1);
        RecentDenials {
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Denial>> {
        // A panic while holding the lock leaves a plain queue: still usable.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `event` if it is a denial, dropping the oldest when full.
    pub fn record(&self, event: &NodeEvent) {
        let NodeEvent::PolicyDenied {
            decision,
            source,
            destination,
        } = event
        else {
            return;
        };
        let at_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let denial = Denial {
            at_unix_ms,
            source: source.as_ref().map(|s| s.as_str().to_owned()),
            destination: destination.clone(),
            reason: decision.reason.code(),
            rule: decision.rule.as_ref().map(|r| r.as_str().to_owned()),
        };
        let mut ring = self.lock();
        if ring.len() >= self.capacity {
            ring.pop_front();
        }
        ring.push_back(denial);
    }

    /// The kept denials, oldest first.
    pub fn snapshot(&self) -> Vec<Denial> {
        self.lock().iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use quickcheck::{QuickCheck, TestResult};
    use warren_proto::policy::{Decision, Reason, RuleName};

    use super::*;

    fn denial(n: usize) -> NodeEvent {
        NodeEvent::PolicyDenied {
            decision: Decision::new(
                Reason::DeniedByRule,
                Some(RuleName::new(&format!("rule-{n}")).unwrap()),
            ),
            source: None,
            destination: format!("svc-{n}.ns:80"),
        }
    }

    #[test]
    fn keeps_the_latest_denials_in_order_and_ignores_other_events() {
        fn prop(capacity: u8, events: u8) -> TestResult {
            let capacity = usize::from(capacity % 8);
            let events = usize::from(events % 40);
            let ring = RecentDenials::with_capacity(capacity);
            for n in 0..events {
                ring.record(&denial(n));
                ring.record(&NodeEvent::ConfigApplied { closed_flows: n });
            }
            let kept: Vec<String> = ring.snapshot().into_iter().map(|d| d.destination).collect();
            let first = events.saturating_sub(capacity.max(1));
            let want: Vec<String> = (first..events).map(|n| format!("svc-{n}.ns:80")).collect();
            TestResult::from_bool(kept == want)
        }
        QuickCheck::new()
            .tests(200)
            .quickcheck(prop as fn(u8, u8) -> TestResult);
    }

    #[test]
    fn a_denial_keeps_its_rule_and_reason() {
        let ring = RecentDenials::default();
        ring.record(&denial(7));
        let got = ring.snapshot();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].rule.as_deref(), Some("rule-7"));
        assert_eq!(got[0].reason, "deny-rule");
        assert!(got[0].at_unix_ms > 0);
    }
}
