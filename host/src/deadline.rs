//! The node's next deadline as one runtime timer that is set again only
//! when the deadline moves *earlier*.
//!
//! The node's deadline moves with nearly every input (an HTTP/2
//! connection's keepalive deadline is its last input plus the interval),
//! almost always later. Setting the runtime's timer for every move costs
//! little on tokio, but on async-io every `Timer::set_at` queues a timer
//! insert and writes the reactor's eventfd, so the thread in `epoll_wait`
//! wakes for nothing and re-arms its timerfd and eventfd (six syscalls and
//! a context switch per move; issue 8, benches/WARREN-BENCH.md). A timer
//! left at an earlier deadline is harmless: when it fires early it is set
//! once for the deadline of that moment, and the node only hears
//! `Timeout` when that one fires.

use std::task::{Context, Poll};

use warren_proto::time::Instant;

use crate::Reactor;

/// A runtime timer serving the node's deadline (see the module doc).
pub(crate) struct DeadlineTimer<R: Reactor> {
    timer: R::Timer,
    /// The deadline the timer is set for: never later than the deadline
    /// it serves, so it never fires late. `None`: not set, or fired.
    armed: Option<Instant>,
}

impl<R: Reactor> DeadlineTimer<R> {
    /// A timer that is not set.
    pub(crate) fn new() -> Self {
        DeadlineTimer {
            timer: R::timer(),
            armed: None,
        }
    }

    /// Ready once `deadline` (the node's `poll_timeout`) is due;
    /// `to_std` turns a node instant into the runtime's clock. Registers
    /// `cx`'s waker while pending. With no deadline a timer still set for
    /// an old one may wake the task once, for nothing.
    pub(crate) fn poll(
        &mut self,
        deadline: Option<Instant>,
        to_std: impl Fn(Instant) -> std::time::Instant,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let Some(deadline) = deadline else {
            return Poll::Pending;
        };
        loop {
            if self.armed.is_none_or(|at| at > deadline) {
                R::set_timer(&mut self.timer, to_std(deadline));
                self.armed = Some(deadline);
            }
            if R::poll_timer(&mut self.timer, cx).is_pending() {
                return Poll::Pending;
            }
            // It fired for an earlier deadline that has since moved later
            // unless it was set for this one; the next turn sets it for
            // this one, so the loop ends there.
            if self.armed.take() == Some(deadline) {
                return Poll::Ready(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Connecting, Resolving};
    use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
    use std::future::Future;
    use std::io;
    use std::net::SocketAddr;
    use std::task::Waker;
    use std::time::Duration;

    /// A reactor with only a timer, on a clock the test moves by hand.
    enum Fake {}

    /// The fake's timer: where it is set, the test's time, and how often
    /// it was set.
    struct FakeTimer {
        at: Option<std::time::Instant>,
        now: std::time::Instant,
        sets: usize,
    }

    impl Reactor for Fake {
        type Stream = ();
        type Listener = ();
        type Timer = FakeTimer;

        fn block_on<F: Future>(_: F) -> io::Result<F::Output> {
            unreachable!("the timer alone is under test")
        }
        fn bind(_: SocketAddr) -> io::Result<((), SocketAddr)> {
            unreachable!("the timer alone is under test")
        }
        fn poll_accept(_: &(), _: &mut Context<'_>) -> Poll<io::Result<((), SocketAddr)>> {
            unreachable!("the timer alone is under test")
        }
        fn connect(_: SocketAddr) -> Connecting<()> {
            unreachable!("the timer alone is under test")
        }
        fn resolve(_: String) -> Resolving {
            unreachable!("the timer alone is under test")
        }
        fn poll_read(_: &(), _: &mut Context<'_>, _: &mut [u8]) -> Poll<io::Result<usize>> {
            unreachable!("the timer alone is under test")
        }
        fn poll_read_ready(_: &(), _: &mut Context<'_>) -> Poll<()> {
            unreachable!("the timer alone is under test")
        }
        fn try_write(_: &(), _: &[u8]) -> io::Result<usize> {
            unreachable!("the timer alone is under test")
        }
        fn poll_writable(_: &(), _: &mut Context<'_>) -> Poll<()> {
            unreachable!("the timer alone is under test")
        }
        fn set_nodelay(_: &()) {}
        fn shutdown_write(_: &()) {}
        fn set_reset_on_close(_: &()) {}
        fn timer() -> FakeTimer {
            FakeTimer {
                at: None,
                now: epoch(),
                sets: 0,
            }
        }
        fn set_timer(timer: &mut FakeTimer, at: std::time::Instant) {
            timer.at = Some(at);
            timer.sets += 1;
        }
        fn poll_timer(timer: &mut FakeTimer, _: &mut Context<'_>) -> Poll<()> {
            match timer.at {
                Some(at) if at <= timer.now => {
                    // Fires once, as a runtime's one-shot timer does.
                    timer.at = None;
                    Poll::Ready(())
                }
                _ => Poll::Pending,
            }
        }
    }

    /// The fake clock's zero, fixed for the whole test run.
    fn epoch() -> std::time::Instant {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        *EPOCH.get_or_init(std::time::Instant::now)
    }

    fn to_std(at: Instant) -> std::time::Instant {
        epoch() + Duration::from_nanos(at.as_nanos())
    }

    fn ms(n: u64) -> Instant {
        Instant::from_nanos(n * 1_000_000)
    }

    /// Polls `timer` for `deadline` at fake time `now_ms`.
    fn poll_at(timer: &mut DeadlineTimer<Fake>, deadline: Option<u64>, now_ms: u64) -> bool {
        timer.timer.now = to_std(ms(now_ms));
        let mut cx = Context::from_waker(Waker::noop());
        timer.poll(deadline.map(ms), to_std, &mut cx).is_ready()
    }

    #[test]
    fn a_deadline_that_moves_later_leaves_the_timer_alone() {
        let mut timer = DeadlineTimer::<Fake>::new();
        for deadline in [30_000, 30_001, 30_050, 31_000, 31_000] {
            assert!(!poll_at(&mut timer, Some(deadline), 5));
        }
        assert_eq!(timer.timer.sets, 1, "set once, for the first deadline");
        assert_eq!(timer.timer.at, Some(to_std(ms(30_000))));
    }

    #[test]
    fn an_earlier_deadline_sets_the_timer_again() {
        let mut timer = DeadlineTimer::<Fake>::new();
        assert!(!poll_at(&mut timer, Some(30_000), 0));
        assert!(!poll_at(&mut timer, Some(10), 0));
        assert_eq!(timer.timer.sets, 2);
        assert!(!poll_at(&mut timer, Some(10), 9));
        assert!(poll_at(&mut timer, Some(10), 10), "due at 10 ms");
    }

    #[test]
    fn a_timer_left_at_an_earlier_deadline_fires_early_once_and_is_set_for_the_real_one() {
        let mut timer = DeadlineTimer::<Fake>::new();
        assert!(!poll_at(&mut timer, Some(10), 0));
        // The deadline moved to 30 ms; the timer stays at 10 ms ...
        assert!(!poll_at(&mut timer, Some(30), 1));
        assert_eq!(timer.timer.sets, 1);
        // ... fires there, which is not yet the node's time ...
        assert!(!poll_at(&mut timer, Some(30), 12), "not due before 30 ms");
        assert_eq!(timer.timer.sets, 2);
        assert_eq!(timer.timer.at, Some(to_std(ms(30))));
        // ... and then at 30 ms it is.
        assert!(poll_at(&mut timer, Some(30), 30));
    }

    /// One step of the property: the deadline the node asks for and how
    /// far the fake clock moves before the poll.
    #[derive(Clone, Debug)]
    struct Step {
        deadline: Option<u64>,
        advance: u64,
    }

    impl Arbitrary for Step {
        fn arbitrary(g: &mut Gen) -> Self {
            Step {
                deadline: Option::<u8>::arbitrary(g).map(u64::from),
                advance: u64::from(u8::arbitrary(g) % 8),
            }
        }
    }

    #[test]
    fn the_timer_is_due_exactly_when_the_deadline_has_passed() {
        fn property(steps: Vec<Step>) -> TestResult {
            let mut timer = DeadlineTimer::<Fake>::new();
            let mut now = 0;
            for step in steps {
                now += step.advance;
                let due = poll_at(&mut timer, step.deadline, now);
                let expected = step.deadline.is_some_and(|d| d <= now);
                if due != expected {
                    return TestResult::error(format!(
                        "deadline {:?} at {now} ms: due {due}",
                        step.deadline
                    ));
                }
                // Pending with a deadline: a timer is set no later than it,
                // so the task is woken in time.
                if let (false, Some(d)) = (due, step.deadline) {
                    let at = timer.timer.at;
                    if at.is_none_or(|at| at > to_std(ms(d))) {
                        return TestResult::error(format!("deadline {d}: timer at {at:?}"));
                    }
                }
            }
            TestResult::passed()
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(property as fn(Vec<Step>) -> TestResult);
    }
}
