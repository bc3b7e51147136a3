//! The ready queue: one waker per socket or listener, all feeding one set
//! of ids that the single owner task drains. Readiness is the only thing
//! that crosses from the reactor to the node's task.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Wake, Waker};

/// Ids (sockets and listeners share one id space in the node) whose
/// readiness may have changed, and the owner task to wake.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    inner: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    ids: BTreeSet<u64>,
    owner: Option<Waker>,
}

impl ReadyQueue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves a plain set behind: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A waker that marks `id` ready and wakes the owner.
    pub(crate) fn waker(self: &Arc<Self>, id: u64) -> Waker {
        Waker::from(Arc::new(IdWaker {
            id,
            queue: Arc::clone(self),
        }))
    }

    /// Marks `id` for another look from inside the owner task (no wake-up:
    /// the owner drains the queue before it sleeps).
    pub(crate) fn kick(&self, id: u64) {
        self.lock().ids.insert(id);
    }

    /// The ids marked so far; the queue is empty afterwards.
    pub(crate) fn take(&self) -> BTreeSet<u64> {
        std::mem::take(&mut self.lock().ids)
    }

    /// The task to wake when an id gets ready.
    pub(crate) fn set_owner(&self, waker: &Waker) {
        let mut pending = self.lock();
        if !pending.owner.as_ref().is_some_and(|w| w.will_wake(waker)) {
            pending.owner = Some(waker.clone());
        }
    }
}

struct IdWaker {
    id: u64,
    queue: Arc<ReadyQueue>,
}

impl Wake for IdWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let owner = {
            let mut pending = self.queue.lock();
            pending.ids.insert(self.id);
            pending.owner.clone()
        };
        if let Some(owner) = owner {
            owner.wake();
        }
    }
}
