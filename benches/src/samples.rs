//! Per-iteration times of one benchmark function, gathered through
//! criterion's `iter_custom` so that ratios (warren/h2, node/TLS+h2) come
//! from the same run.

use std::time::Duration;

/// The per-iteration times recorded so far.
#[derive(Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Records one `iter_custom` batch and hands its time back to criterion.
    pub fn record(&mut self, iters: u64, elapsed: Duration) -> Duration {
        if iters > 0 {
            self.0.push(elapsed / iters as u32);
        }
        elapsed
    }

    /// The median per-iteration time (zero before any record).
    pub fn median(&mut self) -> Duration {
        self.0.sort();
        self.0.get(self.0.len() / 2).copied().unwrap_or_default()
    }
}
