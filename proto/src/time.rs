//! The only notion of time in warren-proto.
//!
//! The host reads its clock and passes an [`Instant`] into every call that
//! may need it. The engine never reads a clock itself, which is what makes
//! simulation deterministic.

use core::time::Duration;

/// A point in time: nanoseconds since an arbitrary, host-chosen origin.
///
/// Instants from one host are comparable; instants from different hosts
/// are not (each host may pick its own origin, and the simulator skews
/// clocks on purpose).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub u64);

impl Instant {
    /// The origin of the host's clock.
    pub const ZERO: Instant = Instant(0);

    /// Builds an instant from nanoseconds since the origin.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the end of time instead of overflowing.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_saturates_instead_of_wrapping() {
        let late = Instant(u64::MAX - 1);
        assert_eq!(late + Duration::from_secs(1), Instant(u64::MAX));
        assert_eq!(Instant(5) + Duration::from_nanos(7), Instant(12));
    }

    #[test]
    fn duration_since_is_zero_for_later_origin() {
        assert_eq!(
            Instant(3).saturating_duration_since(Instant(9)),
            Duration::ZERO
        );
        assert_eq!(
            Instant(9).saturating_duration_since(Instant(3)),
            Duration::from_nanos(6)
        );
    }
}
