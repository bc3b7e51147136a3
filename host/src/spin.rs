//! Keeping the CPU awake for a short while after the node did work, so the
//! next hand-off does not wake a halted vCPU.
//!
//! Why: a flow's setup is a chain of hand-offs between threads (client →
//! agent A → agent B → target → B → A → client). On a quiet VM each
//! hand-off tends to wake a thread on a vCPU that has halted, and leaving
//! the halt (an IPI to the host, the vCPU scheduled again) cost more than
//! the work of the hop itself: on a quiet 2-vCPU VM it was most of warm
//! setup's time (issue 8, see benches/WARREN-BENCH.md, sixth pass).
//!
//! How: a *keeper* thread at `SCHED_IDLE` priority spins (no syscalls)
//! until the budget after the node's last work is spent, then parks until
//! the node works again. At `SCHED_IDLE` it runs only on a CPU nothing else
//! wants, and any other thread that wakes preempts it at once, so it never
//! delays the node, the peer or anyone else; the scheduler counts a CPU
//! that runs only it as idle when it places a waking thread, and a running
//! vCPU takes that thread without leaving a halt. Under load it does not
//! run at all. The first attempt spun in the node's own loop (polling the
//! reactor, yielding between polls): quiet, it was as fast, but with two
//! busy loops on the box a spinning node that yielded lost the wake-up
//! preemption a sleeping thread gets, and warm setup went from 0.17 to
//! 4 ms.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a node's loop waits for its next event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopOptions {
    /// After the node last did work, keep a CPU from going idle for this
    /// long with a keeper thread at `SCHED_IDLE` priority (Linux; it runs
    /// only when no other thread wants the CPU), so the node's next event
    /// does not wait for a halted vCPU to wake. Zero (the default) starts
    /// no keeper.
    pub spin: Duration,
}

/// What the node and its keeper share.
#[derive(Debug)]
struct Shared {
    /// The keeper spins while its clock is below this (ns since `epoch`).
    until: AtomicU64,
    /// The keeper is parked (or about to): the node unparks it.
    parked: AtomicBool,
    /// The node's loop has ended: the keeper exits.
    stop: AtomicBool,
    epoch: Instant,
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The node loop's side of the keeper; dropping it stops the keeper.
#[derive(Debug)]
pub(crate) struct Spin {
    budget: u64,
    keeper: Option<(Arc<Shared>, JoinHandle<()>)>,
}

impl Spin {
    /// Starts the keeper thread if `options` ask for a spin (and the thread
    /// can be started: without it the node just parks).
    pub(crate) fn new(options: LoopOptions) -> Spin {
        let budget = u64::try_from(options.spin.as_nanos()).unwrap_or(u64::MAX);
        let keeper = (budget > 0).then(|| {
            let shared = Arc::new(Shared {
                until: AtomicU64::new(0),
                parked: AtomicBool::new(false),
                stop: AtomicBool::new(false),
                epoch: Instant::now(),
            });
            let theirs = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("warren-keeper".into())
                .stack_size(64 * 1024)
                .spawn(move || keep(&theirs))
                .ok()
                .map(|thread| (shared, thread))
        });
        Spin {
            budget,
            keeper: keeper.flatten(),
        }
    }

    /// The node did work just now: the keeper keeps a CPU awake for the
    /// budget from now. Costs a clock read and a store; a syscall only
    /// when the keeper had parked.
    pub(crate) fn worked(&mut self) {
        let Some((shared, thread)) = &self.keeper else {
            return;
        };
        let until = shared.now().saturating_add(self.budget);
        // SeqCst here and in the keeper: either the keeper sees the new
        // `until` before it parks or we see it parked and unpark it.
        shared.until.store(until, Ordering::SeqCst);
        if shared.parked.swap(false, Ordering::SeqCst) {
            thread.thread().unpark();
        }
    }
}

impl Drop for Spin {
    fn drop(&mut self) {
        if let Some((shared, thread)) = self.keeper.take() {
            shared.stop.store(true, Ordering::Release);
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// Whether the keeper spins at `now` (ns) when the node asked for `until`.
fn spinning(now: u64, until: u64) -> bool {
    now < until
}

/// The keeper's loop: spin while the node's budget lasts, park otherwise.
fn keep(shared: &Shared) {
    if !lower_to_idle_priority() {
        // At normal priority a spinning thread would take the CPU from the
        // threads the node waits for: better no keeper at all.
        return;
    }
    while !shared.stop.load(Ordering::Acquire) {
        if spinning(shared.now(), shared.until.load(Ordering::Acquire)) {
            std::hint::spin_loop();
            continue;
        }
        shared.parked.store(true, Ordering::SeqCst);
        // Work that came between the look above and `parked` unparks us
        // or shows in `until`; `park` returns at once after an unpark.
        if !spinning(shared.now(), shared.until.load(Ordering::SeqCst))
            && !shared.stop.load(Ordering::Acquire)
        {
            std::thread::park();
        }
        shared.parked.store(false, Ordering::Release);
    }
}

/// Moves the calling thread to `SCHED_IDLE`; false where that fails or
/// does not exist.
#[cfg(target_os = "linux")]
fn lower_to_idle_priority() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid
    // 0 is the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn lower_to_idle_priority() -> bool {
    false
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
    fn the_default_starts_no_keeper() {
        assert_eq!(LoopOptions::default().spin, Duration::ZERO);
        let mut s = Spin::new(LoopOptions::default());
        assert!(s.keeper.is_none());
        s.worked();
    }

    #[test]
    fn the_keeper_spins_only_until_the_budget_after_the_last_work() {
        assert!(spinning(0, 50_000));
        assert!(spinning(49_999, 50_000));
        assert!(!spinning(50_000, 50_000));
        assert!(!spinning(u64::MAX, 50_000));
        // Before any work `until` is 0: an idle node's keeper never spins.
        assert!(!spinning(0, 0));
    }

    /// Waits (bounded, by polling) until `shared` says the keeper parked.
    fn parks(shared: &Shared) -> bool {
        for _ in 0..5_000 {
            if shared.parked.load(Ordering::Acquire) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn the_keeper_parks_when_idle_and_after_the_budget_and_stops_with_the_node() {
        let mut s = spin(200);
        let shared = Arc::clone(&s.keeper.as_ref().expect("a keeper").0);
        assert!(parks(&shared), "an idle node's keeper parks");
        s.worked();
        assert!(shared.until.load(Ordering::Acquire) > 0);
        // The budget runs out and the keeper parks again.
        assert!(parks(&shared), "parked again after the budget");
        drop(s);
        assert_eq!(Arc::strong_count(&shared), 1, "the keeper has exited");
    }
}
