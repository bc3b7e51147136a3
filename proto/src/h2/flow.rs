//! Flow-control windows (RFC 9113 §5.2, §6.9).
//!
//! Windows are `i64` so that a SETTINGS_INITIAL_WINDOW_SIZE decrease may
//! take a send window below zero (RFC 9113 §6.9.2) without wrapping; they
//! never exceed 2^31-1.

/// The largest window, 2^31 - 1.
pub(super) const MAX_WINDOW: i64 = 0x7fff_ffff;

/// `window + increment`, or `None` when that passes 2^31-1.
pub(super) fn grow(window: i64, increment: i64) -> Option<i64> {
    let grown = window.checked_add(increment)?;
    (grown <= MAX_WINDOW).then_some(grown)
}

/// Our receiving side of one window (a stream's or the connection's).
///
/// `available` is what the peer may still send. Bytes it sent are either in
/// a receive buffer or `unreleased`: taken by the application but not yet
/// credited back, because crediting every small read would cost a
/// WINDOW_UPDATE each. Invariant: `available + buffered + unreleased ==
/// target` (up to a SETTINGS change in flight).
#[derive(Debug)]
pub(super) struct RecvWindow {
    available: i64,
    unreleased: i64,
    target: i64,
}

impl RecvWindow {
    /// A window the peer starts out believing is `initial`, which we keep
    /// topped up to `target`.
    pub(super) fn new(initial: i64, target: i64) -> RecvWindow {
        RecvWindow {
            available: initial,
            unreleased: 0,
            target,
        }
    }

    /// What the peer may still send.
    pub(super) fn available(&self) -> i64 {
        self.available
    }

    /// The peer sent `n` bytes; `false` (and nothing taken) if they exceed
    /// the window.
    pub(super) fn consume(&mut self, n: u32) -> bool {
        let n = i64::from(n);
        if n > self.available {
            return false;
        }
        self.available -= n;
        true
    }

    /// The application released `n` bytes. Returns the WINDOW_UPDATE
    /// increment to send once at least half the target has accumulated.
    pub(super) fn release(&mut self, n: usize) -> Option<u32> {
        self.unreleased = self
            .unreleased
            .saturating_add(i64::try_from(n).unwrap_or(MAX_WINDOW));
        if self.unreleased == 0 || self.unreleased < self.target / 2 {
            return None;
        }
        // Never announce past 2^31-1 in total (the peer would fail us).
        let room = MAX_WINDOW - self.available.max(0);
        let increment = self.unreleased.min(room);
        if increment <= 0 {
            return None;
        }
        self.unreleased -= increment;
        self.available += increment;
        debug_assert!(self.available <= MAX_WINDOW);
        u32::try_from(increment).ok()
    }

    /// Applies a change of the target (our SETTINGS_INITIAL_WINDOW_SIZE,
    /// once acknowledged) to what the peer may send.
    pub(super) fn retarget(&mut self, target: i64) {
        self.available += target - self.target;
        self.target = target;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grow_refuses_past_max() {
        assert_eq!(grow(MAX_WINDOW - 1, 1), Some(MAX_WINDOW));
        assert_eq!(grow(MAX_WINDOW, 1), None);
        assert_eq!(grow(-5, 10), Some(5));
    }

    #[test]
    fn release_batches_until_half_the_target() {
        let mut w = RecvWindow::new(100, 100);
        assert!(w.consume(100));
        assert!(!w.consume(1));
        assert_eq!(w.release(30), None);
        assert_eq!(w.release(20), Some(50));
        assert_eq!(w.available(), 50);
        assert_eq!(w.release(10), None);
    }
}
