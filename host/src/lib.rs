//! # warren-host
//!
//! The runtime-independent half of warren's runtime adapters
//! (`warren-tokio`, `warren-smol`): one task owns a
//! [`warren_proto::node::Node`], turns socket readiness into `Input`s and
//! carries out `Output`s through [`warren_proto::drive`]. An adapter only
//! says how its runtime reads, writes, accepts, connects and sleeps: the
//! [`Reactor`] trait. No protocol logic lives here either.
//!
//! [`spawn`] runs a node on its own thread and returns a [`Handle`] to
//! reconfigure, inspect (metrics, flows) and stop it; [`run`] is the owner
//! task itself, for a caller that has its own runtime thread.
//!
//! Each socket and listener has a waker that only marks its id in a ready
//! queue ([`ready`]); the owner drains the queue, reads into one reused
//! 64 KiB buffer and steps the node.

pub mod admin;
mod connect;
mod control;
mod deadline;
mod driver;
mod heap_trim;
pub mod keyshare;
mod ready;
mod sockets;
mod spin;
#[cfg(feature = "suite")]
pub mod suite;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use warren_proto::node::{ListenerId, NodeEvent};

pub use connect::{connect_done, connect_outcome, start_connect};
pub use control::{spawn, spawn_with, Handle};
pub use driver::{run, run_with, Request};
pub use heap_trim::own_heap_trimming;
pub use spin::LoopOptions;

/// A connect in progress.
pub type Connecting<S> = Pin<Box<dyn Future<Output = io::Result<S>>>>;

/// A name lookup in progress: the addresses, in the resolver's order.
pub type Resolving = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>>>>;

/// How one async runtime does non-blocking socket work and timing. Every
/// `poll_*` registers `cx`'s waker when it returns `Pending`.
pub trait Reactor {
    /// A connected TCP socket.
    type Stream;
    /// A bound TCP listener.
    type Listener;
    /// A resettable one-shot timer.
    type Timer;

    /// Runs `future` to completion on this thread.
    fn block_on<F: Future>(future: F) -> io::Result<F::Output>;
    /// Binds a listener (from inside the runtime); returns it and its address.
    fn bind(addr: SocketAddr) -> io::Result<(Self::Listener, SocketAddr)>;
    /// The next connection on `listener`.
    fn poll_accept(
        listener: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Stream, SocketAddr)>>;
    /// Starts a connect.
    fn connect(addr: SocketAddr) -> Connecting<Self::Stream>;
    /// Starts resolving the DNS name `host` (no port) without blocking
    /// the node's task (the runtime's resolver or a blocking pool).
    fn resolve(host: String) -> Resolving;
    /// Reads into `buf`; `Ok(0)` is EOF. A read shorter than `buf`
    /// emptied the socket (see [`read_emptied`]): the adapter lets its
    /// runtime forget the readiness it saw before that read, and the host
    /// asks [`Reactor::poll_read_ready`] instead of reading again in the
    /// same look, so no read goes out only to say `WouldBlock`.
    fn poll_read(
        stream: &Self::Stream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>>;
    /// Right after a read that emptied the socket: ready if the runtime
    /// has seen it readable since (or failed, or at EOF); registers `cx`'s
    /// waker for that event otherwise.
    fn poll_read_ready(stream: &Self::Stream, cx: &mut Context<'_>) -> Poll<()>;
    /// Writes what the socket takes now, without waiting (`WouldBlock` when full).
    fn try_write(stream: &Self::Stream, data: &[u8]) -> io::Result<usize>;
    /// Ready once the socket can take more (or has failed).
    fn poll_writable(stream: &Self::Stream, cx: &mut Context<'_>) -> Poll<()>;
    /// Low-latency mode (no Nagle): the node writes whole frames.
    fn set_nodelay(stream: &Self::Stream);
    /// Sends FIN.
    fn shutdown_write(stream: &Self::Stream);
    /// Makes the coming close an RST (SO_LINGER 0).
    fn set_reset_on_close(stream: &Self::Stream);
    /// A timer that never fires until set.
    fn timer() -> Self::Timer;
    /// Fires `timer` at `at`.
    fn set_timer(timer: &mut Self::Timer, at: Instant);
    /// Ready when `timer` has fired.
    fn poll_timer(timer: &mut Self::Timer, cx: &mut Context<'_>) -> Poll<()>;
}

/// Whether a read of `n` bytes into `buf` emptied the socket: a TCP read
/// copies all the socket holds up to the buffer's length, so a short one
/// left nothing behind (more may come at any time; the runtime's next
/// readiness event says so).
pub fn read_emptied(n: usize, buf: &[u8]) -> bool {
    n > 0 && n < buf.len()
}

/// What the adapter tells its owner.
#[derive(Debug)]
pub enum Notice {
    /// A listener the node asked for is bound (port 0 resolved).
    Listening {
        /// The node's listener.
        listener: ListenerId,
        /// The bound address.
        addr: SocketAddr,
    },
    /// Accepting on a listener failed (e.g. `EMFILE`: out of file
    /// descriptors). The listener is left alone for `retry_in` (10 ms,
    /// doubling per failure up to 1 s, back to 10 ms after a success), so
    /// a persistent error costs one notice per back-off period, not a spin.
    AcceptFailed {
        /// The node's listener.
        listener: ListenerId,
        /// Why.
        error: io::Error,
        /// How long until the next try.
        retry_in: std::time::Duration,
    },
    /// The node's first outputs are carried out: every listener of the
    /// initial configuration is bound.
    Started,
    /// Something the node reported: log it, count it. (A listener a new
    /// configuration asked for that could not be bound is one:
    /// `NodeEvent::ListenFailed`, naming the address and the error.)
    Event(NodeEvent),
}
