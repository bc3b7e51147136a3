//! A read that empties a socket is not followed by another read in the
//! same look: the runtime is asked for readiness instead (on smol that
//! read was a `recvfrom` that said EAGAIN). A reactor that notes, per
//! socket, every read made right after one that emptied it with no
//! readiness asked in between, wrapped around the runtime under test.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use super::{exchange, mesh, pattern, Server};
use crate::{read_emptied, Connecting, Reactor, Resolving};

/// Reads that emptied their socket.
static EMPTYING_READS: AtomicUsize = AtomicUsize::new(0);
/// Reads made right after one that emptied the socket, with no
/// `poll_read_ready` in between.
static READS_AFTER_EMPTYING: AtomicUsize = AtomicUsize::new(0);

/// `R`'s stream and whether its last read emptied it.
pub struct Tracked<S> {
    inner: S,
    emptied: AtomicBool,
}

impl<S> Tracked<S> {
    fn new(inner: S) -> Self {
        Tracked {
            inner,
            emptied: AtomicBool::new(false),
        }
    }
}

/// `R`, with its reads counted as the module doc says.
pub struct ReadTracking<R>(PhantomData<R>);

impl<R: Reactor> Reactor for ReadTracking<R>
where
    R::Stream: 'static,
{
    type Stream = Tracked<R::Stream>;
    type Listener = R::Listener;
    type Timer = R::Timer;

    fn block_on<F: Future>(future: F) -> io::Result<F::Output> {
        R::block_on(future)
    }
    fn bind(addr: SocketAddr) -> io::Result<(Self::Listener, SocketAddr)> {
        R::bind(addr)
    }
    fn poll_accept(
        listener: &Self::Listener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Self::Stream, SocketAddr)>> {
        R::poll_accept(listener, cx).map(|r| r.map(|(s, peer)| (Tracked::new(s), peer)))
    }
    fn connect(addr: SocketAddr) -> Connecting<Self::Stream> {
        let connecting = R::connect(addr);
        Box::pin(async move { connecting.await.map(Tracked::new) })
    }
    fn resolve(host: String) -> Resolving {
        R::resolve(host)
    }
    fn poll_read(
        stream: &Self::Stream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if stream.emptied.swap(false, Ordering::SeqCst) {
            READS_AFTER_EMPTYING.fetch_add(1, Ordering::SeqCst);
        }
        let read = R::poll_read(&stream.inner, cx, buf);
        if let Poll::Ready(Ok(n)) = read {
            if read_emptied(n, buf) {
                EMPTYING_READS.fetch_add(1, Ordering::SeqCst);
                stream.emptied.store(true, Ordering::SeqCst);
            }
        }
        read
    }
    fn poll_read_ready(stream: &Self::Stream, cx: &mut Context<'_>) -> Poll<()> {
        stream.emptied.store(false, Ordering::SeqCst);
        R::poll_read_ready(&stream.inner, cx)
    }
    fn try_write(stream: &Self::Stream, data: &[u8]) -> io::Result<usize> {
        R::try_write(&stream.inner, data)
    }
    fn poll_writable(stream: &Self::Stream, cx: &mut Context<'_>) -> Poll<()> {
        R::poll_writable(&stream.inner, cx)
    }
    fn set_nodelay(stream: &Self::Stream) {
        R::set_nodelay(&stream.inner)
    }
    fn shutdown_write(stream: &Self::Stream) {
        R::shutdown_write(&stream.inner)
    }
    fn set_reset_on_close(stream: &Self::Stream) {
        R::set_reset_on_close(&stream.inner)
    }
    fn timer() -> Self::Timer {
        R::timer()
    }
    fn set_timer(timer: &mut Self::Timer, at: Instant) {
        R::set_timer(timer, at)
    }
    fn poll_timer(timer: &mut Self::Timer, cx: &mut Context<'_>) -> Poll<()> {
        R::poll_timer(timer, cx)
    }
}

/// Small echoes through both nodes over a warm mesh: their reads (client,
/// mesh and target sockets) empty the socket nearly every time, and none
/// is followed by another read before the runtime was asked for
/// readiness.
pub fn emptied_sockets_are_not_read_again<R: Reactor>()
where
    R::Stream: 'static,
{
    let mesh = mesh::<ReadTracking<R>>(Server::Echo, Default::default());
    // The first flow's client socket is paused while the mesh connection
    // comes up, and a resumed socket is read at once (bytes may have come
    // meanwhile): counted from the second flow on.
    assert_eq!(exchange(mesh.tunnel, b"warm"), b"warm");
    EMPTYING_READS.store(0, Ordering::SeqCst);
    READS_AFTER_EMPTYING.store(0, Ordering::SeqCst);
    for size in [1, 100, 10_000] {
        let data = pattern(size);
        assert_eq!(exchange(mesh.tunnel, &data), data, "echo of {size} B");
    }
    let emptying = EMPTYING_READS.load(Ordering::SeqCst);
    let again = READS_AFTER_EMPTYING.load(Ordering::SeqCst);
    assert!(emptying >= 6, "only {emptying} reads emptied a socket");
    assert_eq!(
        again, 0,
        "{again} reads right after one that emptied the socket ({emptying} did)"
    );
}
