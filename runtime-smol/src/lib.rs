//! # warren-smol
//!
//! Runs a warren mesh node ([`warren_proto::node::Node`]) on smol
//! (async-io) with real listeners, sockets and timers. This crate only says
//! how async-io reads, writes, accepts, connects and sleeps ([`Smol`], a
//! [`warren_host::Reactor`]); the owner task, the ready queue and the
//! handle are warren-host's, shared with warren-tokio. No protocol logic:
//! the node decides everything through [`warren_proto::drive`].

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use smol::{Async, Timer};
use socket2::SockRef;
use warren_host::{
    connect_done, connect_outcome, read_emptied, start_connect, Connecting, Reactor, Resolving,
};
use warren_proto::node::NodeConfig;

pub use warren_host::{Handle, LoopOptions, Notice};

/// smol as a [`Reactor`]: non-blocking std sockets registered with
/// async-io; try the call, and on `WouldBlock` wait for readiness.
#[derive(Debug)]
pub enum Smol {}

impl Reactor for Smol {
    type Stream = Async<TcpStream>;
    type Listener = Async<TcpListener>;
    type Timer = Timer;

    fn block_on<F: Future>(future: F) -> io::Result<F::Output> {
        Ok(smol::block_on(future))
    }

    fn bind(addr: SocketAddr) -> io::Result<(Async<TcpListener>, SocketAddr)> {
        let listener = Async::<TcpListener>::bind(addr)?;
        let bound = listener.get_ref().local_addr()?;
        Ok((listener, bound))
    }

    fn poll_accept(
        listener: &Async<TcpListener>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(Async<TcpStream>, SocketAddr)>> {
        loop {
            match accept_nonblocking(listener.get_ref()) {
                Ok((stream, peer)) => {
                    return Poll::Ready(Async::new_nonblocking(stream).map(|s| (s, peer)))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(poll_next_readable(listener, cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn connect(addr: SocketAddr) -> Connecting<Async<TcpStream>> {
        Box::pin(async move {
            let stream = Async::new_nonblocking(start_connect(addr)?)?;
            // On loopback the handshake completes inside connect(2): use
            // the socket at once instead of waiting for the reactor to
            // report it writable (a new flow's target is written sooner).
            if !connect_done(SockRef::from(stream.get_ref())) {
                stream.writable().await?;
                connect_outcome(SockRef::from(stream.get_ref()))?;
            }
            Ok(stream)
        })
    }

    fn resolve(host: String) -> Resolving {
        Box::pin(async move {
            let found = smol::net::resolve((host.as_str(), 0)).await?;
            Ok(found.into_iter().map(|a| a.ip()).collect())
        })
    }

    fn poll_read(
        stream: &Async<TcpStream>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        poll_read_from(stream, cx, buf)
    }

    fn poll_read_ready(stream: &Async<TcpStream>, cx: &mut Context<'_>) -> Poll<()> {
        stream.poll_readable(cx).map(|_| ())
    }

    fn try_write(stream: &Async<TcpStream>, data: &[u8]) -> io::Result<usize> {
        let mut std_stream: &TcpStream = stream.get_ref();
        std_stream.write(data)
    }

    fn poll_writable(stream: &Async<TcpStream>, cx: &mut Context<'_>) -> Poll<()> {
        stream.poll_writable(cx).map(|_| ())
    }

    fn set_nodelay(stream: &Async<TcpStream>) {
        let _ = stream.get_ref().set_nodelay(true);
    }

    fn shutdown_write(stream: &Async<TcpStream>) {
        // Fails only when the peer is already gone, which a read reports.
        let _ = stream.get_ref().shutdown(Shutdown::Write);
    }

    fn set_reset_on_close(stream: &Async<TcpStream>) {
        let _ = SockRef::from(stream.get_ref()).set_linger(Some(Duration::ZERO));
    }

    fn timer() -> Timer {
        Timer::never()
    }

    fn set_timer(timer: &mut Timer, at: std::time::Instant) {
        timer.set_at(at);
    }

    fn poll_timer(timer: &mut Timer, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(timer).poll(cx).map(|_| ())
    }
}

/// A read of `io` for [`Reactor::poll_read`] (generic so that a test can
/// count the reads): a read that empties the socket registers for the
/// next event at once.
fn poll_read_from<T>(io: &Async<T>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>
where
    for<'a> &'a T: Read,
{
    loop {
        match io.get_ref().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ready!(poll_next_readable(io, cx))?;
            }
            Ok(n) if read_emptied(n, buf) => {
                // Register for the next event now, while the one that
                // woke us is known to be used up; `poll_read_ready` then
                // only looks. Should this fail, that look asks again and
                // reports the error as readiness.
                let _ = poll_next_readable(io, cx);
                return Poll::Ready(Ok(n));
            }
            result => return Poll::Ready(result),
        }
    }
}

/// Waits for `io`'s next readiness event after a call that said
/// `WouldBlock`, or a read that emptied the socket.
///
/// async-io still remembers the event that woke the task (it happened
/// after the last registration) and answers `Ready` once more for it,
/// though the call since has used it up: retrying on that answer costs a
/// syscall that says EAGAIN. The second ask registers the waker and
/// re-arms the one-shot epoll registration (`EPOLL_CTL_MOD`, which reports
/// at once a socket that became readable in between), so skipping the
/// retry loses nothing.
fn poll_next_readable<T>(io: &Async<T>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    match io.poll_readable(cx) {
        Poll::Ready(Ok(())) => io.poll_readable(cx),
        pending_or_failed => pending_or_failed,
    }
}

/// One accept4(2) that makes the new socket non-blocking and
/// close-on-exec itself (std's `accept` needs an ioctl after it).
fn accept_nonblocking(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    let (socket, peer) = SockRef::from(listener).accept4(flags)?;
    let peer = peer
        .as_socket()
        .ok_or_else(|| io::Error::other("accepted a socket without an IP address"))?;
    Ok((socket.into(), peer))
}

/// Starts a node on a new thread under `smol::block_on` and returns once
/// its listeners are bound. `on_notice` runs on the node's thread for
/// every event and every later listener change.
pub fn spawn<E>(config: NodeConfig, on_notice: E) -> io::Result<Handle>
where
    E: FnMut(Notice) + Send + 'static,
{
    warren_host::spawn::<Smol, E>(config, on_notice)
}

/// [`spawn`] with `options` for how the node's loop waits: e.g. a bounded
/// spin after the node did work (see [`LoopOptions`]).
pub fn spawn_with<E>(config: NodeConfig, options: LoopOptions, on_notice: E) -> io::Result<Handle>
where
    E: FnMut(Notice) + Send + 'static,
{
    warren_host::spawn_with::<Smol, E>(config, options, on_notice)
}

/// Runs `config`'s node on smol's reactor (one task) until `shutdown`
/// completes; `notify` hears of bound listeners and events. For run-time
/// reconfiguration use `warren_host::run::<Smol, ..>` or [`spawn`].
pub async fn run<F, N>(config: NodeConfig, shutdown: F, notify: N) -> io::Result<()>
where
    F: Future<Output = ()>,
    N: FnMut(Notice),
{
    warren_host::run::<Smol, F, _, N>(config, shutdown, |_| Poll::Ready(None), notify).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::os::fd::{AsFd, BorrowedFd};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::task::{Wake, Waker};

    /// A socket that counts the reads made on it.
    struct CountingStream {
        stream: TcpStream,
        reads: AtomicUsize,
    }

    impl Read for &CountingStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            (&self.stream).read(buf)
        }
    }

    impl AsFd for CountingStream {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.stream.as_fd()
        }
    }

    /// A loopback pair: a std peer and an accepted socket registered with
    /// async-io that counts its reads.
    fn pair() -> (TcpStream, Async<CountingStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let counting = CountingStream {
            stream: accepted,
            reads: AtomicUsize::new(0),
        };
        (peer, Async::new(counting).unwrap())
    }

    fn reads(io: &Async<CountingStream>) -> usize {
        io.get_ref().reads.load(Ordering::SeqCst)
    }

    /// A socket's waker, as the host keeps one per socket: it records
    /// that the reactor woke it and wakes the test's task.
    #[derive(Default)]
    struct SockWaker {
        woken: AtomicBool,
        task: Mutex<Option<Waker>>,
    }

    impl Wake for SockWaker {
        fn wake(self: Arc<Self>) {
            self.woken.store(true, Ordering::SeqCst);
            if let Some(task) = self.task.lock().unwrap().take() {
                task.wake();
            }
        }
    }

    /// Until the reactor has woken `sock` (and so used up the event).
    async fn woken(sock: &SockWaker) {
        poll_fn(|cx| {
            *sock.task.lock().unwrap() = Some(cx.waker().clone());
            if sock.woken.swap(false, Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// A pair whose accepted socket has waited for bytes once, been woken
    /// for "a" and read it: the state after every wake-up in a running
    /// node. Returns the socket's waker as well, for the test's polls.
    async fn a_woken_and_read() -> (TcpStream, Async<CountingStream>, Arc<SockWaker>, Waker) {
        let (mut peer, io) = pair();
        let sock = Arc::new(SockWaker::default());
        let waker = Waker::from(Arc::clone(&sock));
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 64];
        // Nothing there: one read says so and the wait is registered.
        assert!(poll_read_from(&io, &mut cx, &mut buf).is_pending());
        assert_eq!(reads(&io), 1);
        // async-io ignores (as possibly stale) an event from a reactor
        // turn that began before the registration. A timer makes sure a
        // later turn delivers the next one, as it does in a node between
        // a wait and the bytes that end it.
        Timer::after(Duration::from_millis(1)).await;
        peer.write_all(b"a").unwrap();
        woken(&sock).await;
        let Poll::Ready(Ok(1)) = poll_read_from(&io, &mut cx, &mut buf) else {
            panic!("the byte the socket was woken for");
        };
        (peer, io, sock, waker)
    }

    #[test]
    fn readiness_already_used_up_costs_no_second_read() {
        smol::block_on(async {
            let (mut peer, io, sock, waker) = a_woken_and_read().await;
            let mut cx = Context::from_waker(&waker);
            let mut buf = [0u8; 64];
            assert_eq!(reads(&io), 2);
            // A read now says `WouldBlock`. async-io still answers ready
            // for the event already used; before, that answer cost a
            // second read that said EAGAIN as well.
            assert!(poll_read_from(&io, &mut cx, &mut buf).is_pending());
            assert_eq!(reads(&io), 3, "one read, no retry on used-up readiness");
            // Nothing is lost: the next byte wakes the socket and is read.
            peer.write_all(b"b").unwrap();
            woken(&sock).await;
            let Poll::Ready(Ok(1)) = poll_read_from(&io, &mut cx, &mut buf) else {
                panic!("the next byte");
            };
            assert_eq!(&buf[..1], b"b");
        });
    }

    #[test]
    fn a_read_that_empties_the_socket_waits_for_the_next_event() {
        smol::block_on(async {
            let (mut peer, io, sock, waker) = a_woken_and_read().await;
            let mut cx = Context::from_waker(&waker);
            let mut buf = [0u8; 64];
            // The short read registered for the next event itself, so the
            // host's look at readiness (`Smol::poll_read_ready`: async-io's
            // `poll_readable`) waits. Before, it answered ready for the
            // used-up event, and the host read to hear EAGAIN.
            assert!(io.poll_readable(&mut cx).is_pending());
            assert_eq!(reads(&io), 2);
            // The next bytes and the FIN wake the socket and are read.
            peer.write_all(b"bc").unwrap();
            woken(&sock).await;
            let Poll::Ready(Ok(2)) = poll_read_from(&io, &mut cx, &mut buf) else {
                panic!("the next bytes");
            };
            drop(peer);
            woken(&sock).await;
            let Poll::Ready(Ok(0)) = poll_read_from(&io, &mut cx, &mut buf) else {
                panic!("EOF");
            };
        });
    }

    #[test]
    fn an_accept_takes_a_waiting_connection_and_then_waits() {
        smol::block_on(async {
            let (listener, addr) = Smol::bind(([127, 0, 0, 1], 0).into()).unwrap();
            let client = TcpStream::connect(addr).unwrap();
            let (accepted, peer) = poll_fn(|cx| Smol::poll_accept(&listener, cx))
                .await
                .unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            // Made non-blocking by the accept itself.
            assert!(SockRef::from(accepted.get_ref()).nonblocking().unwrap());
            let mut cx = Context::from_waker(Waker::noop());
            assert!(Smol::poll_accept(&listener, &mut cx).is_pending());
        });
    }
}
