//! The run's time budget: the plan gives every phase a nominal share, the
//! shares add up to less than the total, and a phase that starts behind
//! schedule gets its share scaled down by (time left) / (nominal time of
//! the phases still ahead), so the run ends within the total even when
//! earlier phases overran. A phase given less than its share says so in
//! the report.

use std::time::{Duration, Instant};

/// Below this, a phase's windows would measure little but start-up; a phase
/// this far behind still gets this share of its plan (and says so).
const MIN_SCALE: f64 = 0.2;

/// One phase as run: its share, what it was given, what it took.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// What the phase measures.
    pub name: String,
    /// Its nominal share of the run, seconds.
    pub share_s: f64,
    /// The factor its durations were scaled by (1 = its full share).
    pub scale: f64,
    /// Seconds it took; None while it runs.
    pub took_s: Option<f64>,
}

/// The clock the plan is run against.
pub struct Budget {
    started: Instant,
    total: Duration,
    /// Nominal shares of the phases not yet started, seconds.
    ahead_s: f64,
    /// Every phase started, in order.
    phases: Vec<Phase>,
    /// When the running phase started.
    current: Option<Instant>,
}

impl Budget {
    /// A budget of `total` for phases whose nominal shares add up to `planned`.
    pub fn new(total: Duration, planned: Duration) -> Budget {
        Budget {
            started: Instant::now(),
            total,
            ahead_s: planned.as_secs_f64(),
            phases: Vec::new(),
            current: None,
        }
    }

    /// Starts phase `name` (ending the one before) with its nominal
    /// `share`; returns the factor its durations are to be scaled by.
    pub fn start(&mut self, name: &str, share: Duration) -> f64 {
        self.end();
        let left = self.left();
        let scale = scale_for(left.as_secs_f64(), self.ahead_s);
        self.ahead_s = (self.ahead_s - share.as_secs_f64()).max(0.0);
        self.phases.push(Phase {
            name: name.to_string(),
            share_s: share.as_secs_f64(),
            scale,
            took_s: None,
        });
        self.current = Some(Instant::now());
        scale
    }

    /// The most the running phase may still take: the time left less the
    /// phases after it at their scaled shares. A loop that can stop early
    /// (rounds, setup samples) stops there, so that the last phases
    /// cannot overrun the total when earlier ones overran their shares.
    pub fn allowance(&self) -> Duration {
        let scale = self.phases.last().map_or(1.0, |p| p.scale);
        self.left()
            .saturating_sub(Duration::from_secs_f64(self.ahead_s * scale))
    }

    fn left(&self) -> Duration {
        self.total.saturating_sub(self.started.elapsed())
    }

    /// Ends the running phase, if any.
    pub fn end(&mut self) {
        if let (Some(t0), Some(last)) = (self.current.take(), self.phases.last_mut()) {
            last.took_s = Some(t0.elapsed().as_secs_f64());
        }
    }

    /// The total budget.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The phases run so far.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }
}

/// The factor a phase's durations are scaled by when `left_s` seconds
/// remain for phases with `ahead_s` seconds of nominal shares: 1 on
/// schedule, less when behind, never below [`MIN_SCALE`].
pub fn scale_for(left_s: f64, ahead_s: f64) -> f64 {
    if ahead_s <= 0.0 || left_s >= ahead_s {
        return 1.0;
    }
    (left_s / ahead_s).max(MIN_SCALE)
}

/// `d` scaled by `scale`.
pub fn scaled(d: Duration, scale: f64) -> Duration {
    d.mul_f64(scale.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn on_schedule_a_phase_gets_its_share_and_behind_it_gets_the_time_left_pro_rata() {
        assert_eq!(scale_for(170.0, 140.0), 1.0);
        assert_eq!(scale_for(140.0, 140.0), 1.0);
        // 30 s left for 60 s of phases: each gets half its share.
        assert_eq!(scale_for(30.0, 60.0), 0.5);
        // Far behind: the floor.
        assert_eq!(scale_for(1.0, 60.0), MIN_SCALE);
        assert_eq!(scale_for(0.0, 0.0), 1.0);
    }

    #[test]
    fn phases_record_share_scale_and_time_taken_in_order() {
        let mut b = Budget::new(Duration::from_secs(100), Duration::from_secs(30));
        assert_eq!(b.start("one", Duration::from_secs(10)), 1.0);
        assert_eq!(b.start("two", Duration::from_secs(20)), 1.0);
        b.end();
        let names: Vec<&str> = b.phases().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["one", "two"]);
        assert!(b.phases().iter().all(|p| p.took_s.is_some()));
        assert_eq!(b.phases()[1].share_s, 20.0);
    }

    #[test]
    fn the_allowance_leaves_the_later_phases_their_shares() {
        let mut b = Budget::new(Duration::from_secs(100), Duration::from_secs(30));
        b.start("one", Duration::from_secs(10));
        // 100 s left, 20 s of shares after this phase: up to ~80 s.
        let a = b.allowance().as_secs_f64();
        assert!(a > 79.0 && a <= 80.0, "{a}");
        b.start("two", Duration::from_secs(20));
        // The last phase may take what is left.
        assert!(b.allowance().as_secs_f64() > 99.0);
        let mut late = Budget::new(Duration::ZERO, Duration::from_secs(30));
        late.start("one", Duration::from_secs(10));
        assert_eq!(late.allowance(), Duration::ZERO);
    }

    #[test]
    fn a_run_behind_plan_scales_the_phases_left() {
        // A zero budget: every phase is behind and gets the floor.
        let mut b = Budget::new(Duration::ZERO, Duration::from_secs(30));
        assert_eq!(b.start("one", Duration::from_secs(10)), MIN_SCALE);
        assert_eq!(b.phases()[0].scale, MIN_SCALE);
    }

    #[test]
    fn scaled_phases_fit_the_time_left_unless_at_the_floor() {
        fn prop(left: u16, ahead: u16) -> TestResult {
            let (left, ahead) = (f64::from(left), f64::from(ahead));
            let s = scale_for(left, ahead);
            if !(MIN_SCALE..=1.0).contains(&s) {
                return TestResult::failed();
            }
            // The phases ahead, scaled, take no more than the time left,
            // unless the floor applies.
            TestResult::from_bool(s == MIN_SCALE || s * ahead <= left + 1e-9)
        }
        quickcheck(prop as fn(u16, u16) -> TestResult);
    }
}
