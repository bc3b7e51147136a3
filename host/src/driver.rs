//! The task that owns the node: drains the ready queue, reads, steps the
//! node through [`drive`], and sleeps until the next readiness or deadline.

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use warren_proto::drive;
use warren_proto::node::{
    ConnectError, HostError, Input, ListenerId, Node, NodeConfig, ResolveError, SockId,
};
use warren_proto::time::Instant;

use crate::deadline::DeadlineTimer;
use crate::heap_trim::{release_free_heap, HeapTrim, TrimStep};
use crate::keyshare;
use crate::ready::ReadyQueue;
use crate::sockets::{Conn, Sockets};
use crate::spin::{LoopOptions, Spin};
use crate::{read_emptied, Notice, Reactor};

/// One socket read: large enough that bulk transfers cost few syscalls.
/// One buffer per node (not per socket), so its size costs no per-flow
/// memory. 256 KiB instead of 64 KiB halved the syscalls and context
/// switches per MiB of one bulk flow through two agents (issue 8, see
/// benches/WARREN-BENCH.md); loopback's receive queue routinely holds more
/// than 64 KiB when the node gets to it.
const READ_BUF: usize = 256 * 1024;
/// Reads per socket per look, so one busy socket cannot starve the rest.
const READS_PER_LOOK: usize = 16;
/// Connections accepted per listener per look.
const ACCEPTS_PER_LOOK: usize = 64;
/// Queue drains per wake-up before yielding to the runtime.
const ROUNDS_PER_POLL: usize = 64;
/// The first pause after a failed accept; it doubles per failure in a row.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause between accepts on a failing listener.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The read buffer, 64-byte aligned: copies out of it stay on the fast
/// path of glibc's memcpy (see notes/rust-anchors.md).
#[repr(C, align(64))]
struct ReadBuf([u8; READ_BUF]);

/// The adapter's monotonic clock as the node's [`Instant`]: nanoseconds
/// since the run started.
struct Clock {
    start: std::time::Instant,
}

impl Clock {
    fn now(&self) -> Instant {
        let nanos = self.start.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn to_std(&self, at: Instant) -> std::time::Instant {
        let far = Duration::from_secs(86_400 * 365);
        self.start
            .checked_add(Duration::from_nanos(at.as_nanos()))
            .unwrap_or_else(|| std::time::Instant::now() + far)
    }
}

/// Everything but the read buffer, so a step can borrow the buffer's bytes.
struct Core<R: Reactor, N> {
    node: Node,
    io: Sockets<R, N>,
    clock: Clock,
    deadline: Option<Instant>,
}

impl<R: Reactor, N: FnMut(Notice)> Core<R, N> {
    fn step(&mut self, input: Input<'_>) -> io::Result<()> {
        let now = self.clock.now();
        self.deadline =
            drive::step(&mut self.node, &mut self.io, now, input).map_err(host_error)?;
        self.report_failed_listens()
    }

    fn drain(&mut self) -> io::Result<()> {
        let now = self.clock.now();
        self.deadline = drive::drain(&mut self.node, &mut self.io, now).map_err(host_error)?;
        self.report_failed_listens()
    }

    /// Binds that failed during the last drain, told to the node now that
    /// it is not in the middle of one.
    fn report_failed_listens(&mut self) -> io::Result<()> {
        while let Some((listener, error)) = self.io.failed_listens.pop() {
            let now = self.clock.now();
            let input = Input::ListenFailed { listener, error };
            self.deadline =
                drive::step(&mut self.node, &mut self.io, now, input).map_err(host_error)?;
        }
        Ok(())
    }
}

/// A listener whose accept failed: left alone until `until`.
struct AcceptBackoff {
    /// The current pause; the next failure doubles it.
    delay: Duration,
    until: std::time::Instant,
}

struct Driver<R: Reactor, N> {
    core: Core<R, N>,
    buf: Box<ReadBuf>,
    /// Fires at the node's deadline.
    timer: DeadlineTimer<R>,
    /// Listeners backing off after accept errors (EMFILE and the like).
    backoff: BTreeMap<ListenerId, AcceptBackoff>,
    /// Fires when the earliest back-off ends.
    accept_timer: R::Timer,
    /// The time `accept_timer` is set to.
    accept_armed: Option<std::time::Instant>,
    /// When to give the heap's free pages back (see [`crate::heap_trim`]).
    trim: HeapTrim,
    /// Fires when a quiet spell may have begun (set while `trim.armed()`).
    trim_timer: R::Timer,
    /// Whether to poll again instead of parking.
    spin: Spin,
}

/// Something asked of a running node from outside its task.
pub enum Request {
    /// Replace the configuration (policy, exports, directory, certificates,
    /// listeners).
    Config(Box<NodeConfig>),
    /// Run this with the node (metrics, flow snapshots for an admin port).
    Inspect(Box<dyn FnOnce(&Node) + Send>),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Config(_) => f.write_str("Request::Config"),
            Request::Inspect(_) => f.write_str("Request::Inspect"),
        }
    }
}

/// Runs `config`'s node on `R`'s runtime (call it from inside that
/// runtime) until `shutdown` completes. `requests` (polled like a stream)
/// brings new configurations and inspections. `notify` hears of bound
/// listeners and every node event.
/// Returns an error if a listener of `config` cannot be bound or the
/// adapter misused the node (a bug).
pub async fn run<R, F, C, N>(
    config: NodeConfig,
    shutdown: F,
    requests: C,
    notify: N,
) -> io::Result<()>
where
    R: Reactor,
    F: Future<Output = ()>,
    C: FnMut(&mut Context<'_>) -> Poll<Option<Request>>,
    N: FnMut(Notice),
{
    run_with::<R, F, C, N>(config, LoopOptions::default(), shutdown, requests, notify).await
}

/// [`run`] with `options` for how the loop waits (see [`LoopOptions`]).
pub async fn run_with<R, F, C, N>(
    config: NodeConfig,
    options: LoopOptions,
    shutdown: F,
    mut requests: C,
    notify: N,
) -> io::Result<()>
where
    R: Reactor,
    F: Future<Output = ()>,
    C: FnMut(&mut Context<'_>) -> Poll<Option<Request>>,
    N: FnMut(Notice),
{
    let clock = Clock {
        start: std::time::Instant::now(),
    };
    let mut driver = Driver::<R, N> {
        core: Core {
            node: Node::new(config, clock.now()),
            io: Sockets {
                socks: Default::default(),
                listeners: Default::default(),
                queue: Arc::new(ReadyQueue::default()),
                notify,
                fatal: None,
                started: false,
                failed_listens: Vec::new(),
            },
            clock,
            deadline: None,
        },
        buf: Box::new(ReadBuf([0; READ_BUF])),
        timer: DeadlineTimer::new(),
        backoff: BTreeMap::new(),
        accept_timer: R::timer(),
        accept_armed: None,
        trim: HeapTrim::default(),
        trim_timer: R::timer(),
        spin: Spin::new(options),
    };
    driver.core.drain()?;
    if let Some(e) = driver.core.io.fatal.take() {
        return Err(e);
    }
    driver.core.io.started = true;
    (driver.core.io.notify)(Notice::Started);
    let mut shutdown = pin!(shutdown);
    let mut requests_open = true;
    poll_fn(|cx| {
        if shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        // Once every sender is gone the request source is done, not the node.
        while requests_open {
            match requests(cx) {
                Poll::Ready(Some(Request::Config(config))) => {
                    if let Err(e) = driver.core.step(Input::Config(config)) {
                        return Poll::Ready(Err(e));
                    }
                }
                Poll::Ready(Some(Request::Inspect(look))) => {
                    // Brings the node's clock up to now (a timeout input
                    // only lets it look at its deadlines), so that ages in
                    // the view are measured to now, not to the last input.
                    if let Err(e) = driver.core.step(Input::Timeout) {
                        return Poll::Ready(Err(e));
                    }
                    look(&driver.core.node)
                }
                Poll::Ready(None) => requests_open = false,
                Poll::Pending => break,
            }
        }
        driver.poll(cx)
    })
    .await
}

impl<R: Reactor, N: FnMut(Notice)> Driver<R, N> {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.core.io.queue.set_owner(cx.waker());
        for _ in 0..ROUNDS_PER_POLL {
            let clock = &self.core.clock;
            let due = self
                .timer
                .poll(self.core.deadline, |at| clock.to_std(at), cx);
            let fired = due.is_ready();
            if fired {
                self.core.step(Input::Timeout)?;
            }
            if self.accept_armed.is_some() && R::poll_timer(&mut self.accept_timer, cx).is_ready() {
                self.accept_armed = None;
                self.retry_accepts();
            }
            let ids = self.core.io.queue.take();
            if ids.is_empty() && !fired {
                let (node, clock) = (&self.core.node, &self.core.clock);
                if self.spin.keep_polling(|| node.awaiting_peer(clock.now())) {
                    // Let a thread queued for this CPU run first: it may
                    // be the one whose answer the node waits for.
                    std::thread::yield_now();
                    // Polled again after one look at the reactor that does
                    // not block: tokio's park returns at once on the
                    // eventfd this wake-up wrote, async-io polls with a
                    // zero timeout when the task woke itself.
                    cx.waker().wake_by_ref();
                } else {
                    // Nothing to do until the next event: make the key pairs
                    // the next handshakes will want now, not in their turn;
                    // unless a handshake waits for its peer, whose flight
                    // would wait for them.
                    if keyshare::short() && !self.core.node.handshaking() {
                        keyshare::top_up();
                    }
                    self.settle_heap(cx);
                }
                return Poll::Pending;
            }
            for id in ids {
                self.look(id)?;
            }
            self.spin.worked();
        }
        // Still busy: let the runtime run other tasks, then come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Before the task sleeps: shrinks the node's buffers and trims the
    /// heap once a quiet spell follows a burst, or sets the timer that will
    /// look again.
    fn settle_heap(&mut self, cx: &mut Context<'_>) {
        let fired = self.trim.armed() && R::poll_timer(&mut self.trim_timer, cx).is_ready();
        match self.trim.decide(std::time::Instant::now(), fired) {
            TrimStep::Wait => {}
            TrimStep::Trim => {
                // The node's buffers first: what a burst grew them to is
                // the larger part of what stays after one (2.5 MB for 1000
                // flows), and freeing it is what lets the trim return it.
                self.core.node.shrink_buffers();
                release_free_heap();
            }
            TrimStep::Arm(at) => {
                R::set_timer(&mut self.trim_timer, at);
                // Polled once so the timer wakes this task.
                if R::poll_timer(&mut self.trim_timer, cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
            }
        }
    }

    /// Makes what progress `id` allows without blocking.
    fn look(&mut self, id: u64) -> io::Result<()> {
        if self.core.io.listeners.contains_key(&ListenerId(id)) {
            return self.accept(ListenerId(id));
        }
        let sock = SockId(id);
        self.resolve(sock)?;
        self.connect(sock)?;
        self.write(sock)?;
        self.read(sock)
    }

    fn accept(&mut self, listener: ListenerId) -> io::Result<()> {
        if self
            .backoff
            .get(&listener)
            .is_some_and(|b| std::time::Instant::now() < b.until)
        {
            // The back-off timer looks again.
            return Ok(());
        }
        for _ in 0..ACCEPTS_PER_LOOK {
            let Some(l) = self.core.io.listeners.get(&listener) else {
                return Ok(());
            };
            let waker = l.waker.clone();
            match R::poll_accept(&l.listener, &mut Context::from_waker(&waker)) {
                Poll::Pending => return Ok(()),
                // A client that left before its accept: only it is lost.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                // Out of descriptors or memory: retrying at once would
                // fail again at full speed, so back off.
                Poll::Ready(Err(error)) => {
                    self.back_off(listener, error);
                    return Ok(());
                }
                Poll::Ready(Ok((stream, peer))) => {
                    self.backoff.remove(&listener);
                    R::set_nodelay(&stream);
                    let now = self.core.clock.now();
                    let core = &mut self.core;
                    let register =
                        |io: &mut Sockets<R, N>, sock| io.insert(sock, Conn::Open(stream));
                    // The client's first bytes are usually there already.
                    let buf = &mut self.buf.0;
                    let read_first = move |io: &mut Sockets<R, N>, sock| {
                        // Moved, not reborrowed: the input borrows the buffer.
                        let buf = buf;
                        io.read_now(sock, buf)
                    };
                    let (_, deadline) = drive::accept_and_read(
                        &mut core.node,
                        &mut core.io,
                        now,
                        listener,
                        peer,
                        register,
                        read_first,
                    )
                    .map_err(host_error)?;
                    core.deadline = deadline;
                    core.report_failed_listens()?;
                }
            }
        }
        self.core.io.queue.kick(listener.0);
        Ok(())
    }

    /// Pauses accepting on `listener` after `error`, doubling the pause
    /// of the failure before, and says so once for this pause.
    fn back_off(&mut self, listener: ListenerId, error: io::Error) {
        let delay = self.backoff.get(&listener).map_or(ACCEPT_BACKOFF_MIN, |b| {
            (b.delay * 2).min(ACCEPT_BACKOFF_MAX)
        });
        let until = std::time::Instant::now() + delay;
        self.backoff
            .insert(listener, AcceptBackoff { delay, until });
        self.arm_accept_timer();
        (self.core.io.notify)(Notice::AcceptFailed {
            listener,
            error,
            retry_in: delay,
        });
    }

    /// Looks again at the listeners whose pause is over.
    fn retry_accepts(&mut self) {
        let now = std::time::Instant::now();
        for (listener, backoff) in &self.backoff {
            if backoff.until <= now {
                self.core.io.queue.kick(listener.0);
            }
        }
        self.arm_accept_timer();
    }

    /// Sets the back-off timer to the earliest pause still running.
    fn arm_accept_timer(&mut self) {
        let now = std::time::Instant::now();
        let next = self
            .backoff
            .values()
            .map(|b| b.until)
            .filter(|&u| u > now)
            .min();
        if let Some(at) = next {
            if self.accept_armed != Some(at) {
                R::set_timer(&mut self.accept_timer, at);
                self.accept_armed = Some(at);
            }
        }
    }

    /// Reports a finished lookup; the node's `Connect` (if any) then
    /// registers the socket afresh under the same id.
    fn resolve(&mut self, sock: SockId) -> io::Result<()> {
        let Some(s) = self.core.io.socks.get_mut(&sock) else {
            return Ok(());
        };
        let Conn::Resolving(resolving) = &mut s.conn else {
            return Ok(());
        };
        let waker = s.waker.clone();
        let Poll::Ready(result) = resolving.as_mut().poll(&mut Context::from_waker(&waker)) else {
            return Ok(());
        };
        self.core.io.socks.remove(&sock);
        let addrs;
        let result = match result {
            Ok(found) => {
                addrs = found;
                Ok(&addrs[..])
            }
            Err(e) => Err(resolve_error(&e)),
        };
        self.core.step(Input::Resolved { sock, result })
    }

    fn connect(&mut self, sock: SockId) -> io::Result<()> {
        let Some(result) = self.core.io.poll_connect(sock) else {
            return Ok(());
        };
        if result.is_ok() {
            self.core.io.queue.kick(sock.0);
        }
        self.core.step(Input::Connected { sock, result })
    }

    fn write(&mut self, sock: SockId) -> io::Result<()> {
        let Some(s) = self.core.io.socks.get_mut(&sock) else {
            return Ok(());
        };
        if s.failed {
            self.core.io.socks.remove(&sock);
            return self.core.step(Input::Reset { sock });
        }
        let Conn::Open(stream) = &s.conn else {
            return Ok(());
        };
        if !s.want_write {
            return Ok(());
        }
        let waker = s.waker.clone();
        if R::poll_writable(stream, &mut Context::from_waker(&waker)).is_pending() {
            return Ok(());
        }
        s.want_write = false;
        self.core.step(Input::Writable { sock })
    }

    fn read(&mut self, sock: SockId) -> io::Result<()> {
        // The last read (of this look, or at the accept: no reactor turn
        // since) took all the socket had.
        let mut emptied =
            (self.core.io.socks.get_mut(&sock)).is_some_and(|s| std::mem::take(&mut s.emptied));
        for _ in 0..READS_PER_LOOK {
            let Some(s) = self.core.io.socks.get_mut(&sock) else {
                return Ok(());
            };
            let Conn::Open(stream) = &s.conn else {
                return Ok(());
            };
            if s.paused || s.read_closed || s.failed {
                return Ok(());
            }
            let waker = s.waker.clone();
            let mut cx = Context::from_waker(&waker);
            // Ask the runtime instead of a read that would say
            // `WouldBlock`; the next wake-up looks again, reading first.
            if emptied && R::poll_read_ready(stream, &mut cx).is_pending() {
                return Ok(());
            }
            let read = R::poll_read(stream, &mut cx, &mut self.buf.0);
            match read {
                Poll::Pending => return Ok(()),
                Poll::Ready(Ok(0)) => {
                    s.read_closed = true;
                    return self.core.step(Input::ReadClosed { sock });
                }
                Poll::Ready(Ok(n)) => {
                    self.trim.read(n);
                    self.spin.read(n);
                    emptied = read_emptied(n, &self.buf.0);
                    let data = &self.buf.0[..n];
                    self.core.step(Input::Received { sock, data })?;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(_)) => {
                    self.core.io.socks.remove(&sock);
                    return self.core.step(Input::Reset { sock });
                }
            }
        }
        // More may be waiting: look again after the others had their turn.
        self.core.io.queue.kick(sock.0);
        Ok(())
    }
}

pub(crate) fn connect_error(e: &io::Error) -> ConnectError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        io::ErrorKind::TimedOut => ConnectError::TimedOut,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            ConnectError::Unreachable
        }
        _ => ConnectError::Other,
    }
}

fn resolve_error(e: &io::Error) -> ResolveError {
    // std and the runtimes report an unknown name as an uncategorised
    // error with the resolver's message; only its kind is portable.
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput => ResolveError::NotFound,
        _ => ResolveError::Failed,
    }
}

fn host_error(e: HostError) -> io::Error {
    io::Error::other(e)
}
