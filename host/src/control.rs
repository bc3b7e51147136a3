//! A node on its own thread: the handle that starts, reconfigures and
//! stops it, and the small channel (std only) that carries those requests
//! into the owner task.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use warren_proto::node::{Node, NodeConfig};

use crate::{run_with, LoopOptions, Notice, Reactor, Request};

/// Requests from the handle to the owner task.
#[derive(Default)]
struct Requests {
    queued: VecDeque<Request>,
    stop: bool,
    /// The owner task has ended: nothing queued now would ever be taken.
    closed: bool,
    owner: Option<Waker>,
}

#[derive(Clone, Default)]
struct Control(Arc<Mutex<Requests>>);

impl Control {
    fn lock(&self) -> MutexGuard<'_, Requests> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self, change: impl FnOnce(&mut Requests)) {
        let owner = {
            let mut requests = self.lock();
            change(&mut requests);
            requests.owner.take()
        };
        if let Some(owner) = owner {
            owner.wake();
        }
    }

    /// Queues `request` unless the owner has ended. Checked under the
    /// same lock that [`Control::close`] takes, so a request is either
    /// taken by the owner or dropped by the close: never left waiting.
    fn enqueue(&self, request: Request) -> io::Result<()> {
        let owner = {
            let mut requests = self.lock();
            if requests.closed {
                return Err(stopped());
            }
            requests.queued.push_back(request);
            requests.owner.take()
        };
        if let Some(owner) = owner {
            owner.wake();
        }
        Ok(())
    }

    /// Marks the owner as ended and drops what it never took, so that an
    /// `inspect` waiting on an answer hears that none will come.
    fn close(&self) {
        let unanswered = {
            let mut requests = self.lock();
            requests.closed = true;
            std::mem::take(&mut requests.queued)
        };
        // Dropped outside the lock: dropping runs the requests' destructors.
        drop(unanswered);
    }

    /// Ready once a stop was asked for.
    fn poll_stop(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut requests = self.lock();
        if requests.stop {
            return Poll::Ready(());
        }
        requests.owner = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The next request.
    fn poll_request(&self, cx: &mut Context<'_>) -> Poll<Option<Request>> {
        let mut requests = self.lock();
        match requests.queued.pop_front() {
            Some(request) => Poll::Ready(Some(request)),
            None => {
                requests.owner = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Closes the control channel when the owner's thread ends its run.
struct Closing(Control);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A node running on its own thread, on runtime `R`.
#[derive(Debug)]
pub struct Handle {
    addrs: Vec<SocketAddr>,
    control: Option<Control>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

/// Starts a node on a new thread with runtime `R` and returns once its
/// listeners are bound. `on_notice` runs on the node's thread for every
/// event and every later listener change.
pub fn spawn<R, E>(config: NodeConfig, on_notice: E) -> io::Result<Handle>
where
    R: Reactor,
    E: FnMut(Notice) + Send + 'static,
{
    spawn_with::<R, E>(config, LoopOptions::default(), on_notice)
}

/// [`spawn`] with `options` for how the node's loop waits (see
/// [`LoopOptions`]).
pub fn spawn_with<R, E>(
    config: NodeConfig,
    options: LoopOptions,
    mut on_notice: E,
) -> io::Result<Handle>
where
    R: Reactor,
    E: FnMut(Notice) + Send + 'static,
{
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let control = Control::default();
    let owner_side = control.clone();
    let thread = std::thread::Builder::new()
        .name("warren-node".into())
        .spawn(move || {
            // However the run ends (stop, error, panic), later requests fail
            // at once and queued ones are dropped.
            let _closing = Closing(owner_side.clone());
            // The binder waits for the initial listeners up to `Started`;
            // everything after goes to `on_notice`.
            let mut starting = true;
            let notify = move |notice| match notice {
                Notice::Listening { addr, .. } if starting => {
                    let _ = bound_tx.send(Some(addr));
                }
                Notice::Started => {
                    starting = false;
                    let _ = bound_tx.send(None);
                }
                notice => on_notice(notice),
            };
            let stop = poll_fn(|cx| owner_side.poll_stop(cx));
            let requests = |cx: &mut Context<'_>| owner_side.poll_request(cx);
            R::block_on(run_with::<R, _, _, _>(
                config, options, stop, requests, notify,
            ))?
        })?;
    let mut handle = Handle {
        addrs: Vec::new(),
        control: Some(control),
        thread: Some(thread),
    };
    loop {
        match bound_rx.recv() {
            Ok(Some(addr)) => handle.addrs.push(addr),
            Ok(None) => return Ok(handle),
            // The thread ended before starting: return its error.
            Err(_) => {
                return handle
                    .shutdown()
                    .and(Err(io::ErrorKind::AddrNotAvailable.into()))
            }
        }
    }
}

impl Handle {
    /// The bound listeners in the node's order: the HBONE listener (if
    /// configured), then each front end.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Replaces the node's configuration (policy, exports, directory,
    /// certificates; listeners stay as they are).
    pub fn reconfigure(&self, config: NodeConfig) -> io::Result<()> {
        self.send(Request::Config(Box::new(config)))
    }

    /// Runs `look` with the node on its thread and returns what it found
    /// (metrics, flows, buffer use).
    pub fn inspect<T, L>(&self, look: L) -> io::Result<T>
    where
        T: Send + 'static,
        L: FnOnce(&Node) -> T + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Request::Inspect(Box::new(move |node| {
            let _ = tx.send(look(node));
        })))?;
        // The closure is dropped unanswered only if the node stops first
        // (the close drops whatever the owner never took).
        rx.recv().map_err(|_| stopped())
    }

    fn send(&self, request: Request) -> io::Result<()> {
        match &self.control {
            Some(control) => control.enqueue(request),
            None => Err(stopped()),
        }
    }

    /// Asks the node to stop without waiting for it (from any thread, while
    /// others still use the handle); [`Handle::shutdown`] or dropping the
    /// handle waits. Requests made afterwards fail or go unanswered with an
    /// error once the node has stopped.
    pub fn stop(&self) {
        if let Some(control) = &self.control {
            control.request(|r| r.stop = true);
        }
    }

    /// Stops the node and waits for its thread; returns how the run ended.
    pub fn shutdown(mut self) -> io::Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<()> {
        if let Some(control) = self.control.take() {
            control.request(|r| r.stop = true);
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the node's thread panicked")),
            None => Ok(()),
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the node has stopped")
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}
