//! # warren-tokio
//!
//! Runs a warren mesh node ([`warren_proto::node::Node`]) on tokio with real
//! listeners, sockets and timers. This crate only says how tokio reads,
//! writes, accepts, connects and sleeps ([`Tokio`], a
//! [`warren_host::Reactor`]); the owner task, the ready queue and the
//! handle are warren-host's, shared with warren-smol. No protocol logic:
//! the node decides everything through [`warren_proto::drive`].

use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use warren_host::{
    connect_done, connect_outcome, read_emptied, start_connect, Connecting, Reactor, Resolving,
};
use warren_proto::node::NodeConfig;

pub use warren_host::{Handle, LoopOptions, Notice};

/// tokio as a [`Reactor`]: `try_read`/`try_write` with readiness polls.
#[derive(Debug)]
pub enum Tokio {}

impl Reactor for Tokio {
    type Stream = TcpStream;
    type Listener = TcpListener;
    type Timer = Pin<Box<Sleep>>;

    fn block_on<F: Future>(future: F) -> io::Result<F::Output> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(rt.block_on(future))
    }

    fn bind(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        Ok((TcpListener::from_std(listener)?, bound))
    }

    fn poll_accept(
        listener: &TcpListener,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        listener.poll_accept(cx)
    }

    fn connect(addr: SocketAddr) -> Connecting<TcpStream> {
        Box::pin(async move {
            let stream = TcpStream::from_std(start_connect(addr)?)?;
            // On loopback the handshake completes inside connect(2): use
            // the socket at once, not a runtime turn later when its first
            // writable event comes (a new flow's target is written sooner).
            if !connect_done(SockRef::from(&stream)) {
                stream.writable().await?;
                connect_outcome(SockRef::from(&stream))?;
            }
            Ok(stream)
        })
    }

    fn resolve(host: String) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(found.map(|a| a.ip()).collect())
        })
    }

    fn poll_read(
        stream: &TcpStream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut short = None;
            let read = stream.try_io(Interest::READABLE, || {
                let n = stream.try_read(buf)?;
                if read_emptied(n, buf) {
                    // Saying "would block" makes tokio forget the
                    // readiness it saw before this read (as its own
                    // `AsyncRead` does after a short read; an event since
                    // then keeps it), so `poll_read_ready` waits for the
                    // next event instead of a `recvfrom` that says EAGAIN.
                    // A FIN stays ready.
                    short = Some(n);
                    return Err(io::Error::from(io::ErrorKind::WouldBlock));
                }
                Ok(n)
            });
            if let Some(n) = short {
                return Poll::Ready(Ok(n));
            }
            match read {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(stream.poll_read_ready(cx))?;
                }
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_read_ready(stream: &TcpStream, cx: &mut Context<'_>) -> Poll<()> {
        stream.poll_read_ready(cx).map(|_| ())
    }

    fn try_write(stream: &TcpStream, data: &[u8]) -> io::Result<usize> {
        let mut tried = false;
        let written = stream.try_io(Interest::WRITABLE, || {
            tried = true;
            send(stream, data)
        });
        match written {
            // tokio had no event for the socket yet, so it did not try: a
            // socket we just connected (tokio assumes only accepted ones
            // ready). Ask the socket itself instead of waiting a runtime
            // turn for its first event. If it is full, tokio's readiness
            // is still empty and `poll_writable` waits for that event.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !tried => send(stream, data),
            other => other,
        }
    }

    fn poll_writable(stream: &TcpStream, cx: &mut Context<'_>) -> Poll<()> {
        stream.poll_write_ready(cx).map(|_| ())
    }

    fn set_nodelay(stream: &TcpStream) {
        let _ = stream.set_nodelay(true);
    }

    fn shutdown_write(stream: &TcpStream) {
        // Fails only when the peer is already gone, which a read reports.
        let _ = SockRef::from(stream).shutdown(Shutdown::Write);
    }

    fn set_reset_on_close(stream: &TcpStream) {
        let _ = stream.set_zero_linger();
    }

    fn timer() -> Self::Timer {
        // Never polled before the first `set_timer`.
        Box::pin(tokio::time::sleep(Duration::from_secs(86_400)))
    }

    fn set_timer(timer: &mut Self::Timer, at: std::time::Instant) {
        timer.as_mut().reset(tokio::time::Instant::from_std(at));
    }

    fn poll_timer(timer: &mut Self::Timer, cx: &mut Context<'_>) -> Poll<()> {
        timer.as_mut().poll(cx)
    }
}

/// One send(2), as std's and tokio's writes do it: no SIGPIPE for a peer
/// that is gone (the error says so).
fn send(stream: &TcpStream, data: &[u8]) -> io::Result<usize> {
    SockRef::from(stream).send_with_flags(data, libc::MSG_NOSIGNAL)
}

/// Starts a node on a new thread with a single-threaded tokio runtime and
/// returns once its listeners are bound. `on_notice` runs on the node's
/// thread for every event and every later listener change.
pub fn spawn<E>(config: NodeConfig, on_notice: E) -> io::Result<Handle>
where
    E: FnMut(Notice) + Send + 'static,
{
    warren_host::spawn::<Tokio, E>(config, on_notice)
}

/// [`spawn`] with `options` for how the node's loop waits: e.g. a bounded
/// spin after the node did work (see [`LoopOptions`]).
pub fn spawn_with<E>(config: NodeConfig, options: LoopOptions, on_notice: E) -> io::Result<Handle>
where
    E: FnMut(Notice) + Send + 'static,
{
    warren_host::spawn_with::<Tokio, E>(config, options, on_notice)
}

/// Runs `config`'s node on the current tokio runtime (one task) until
/// `shutdown` completes; `notify` hears of bound listeners and events. For
/// run-time reconfiguration use `warren_host::run::<Tokio, ..>` or
/// [`spawn`].
pub async fn run<F, N>(config: NodeConfig, shutdown: F, notify: N) -> io::Result<()>
where
    F: Future<Output = ()>,
    N: FnMut(Notice),
{
    warren_host::run::<Tokio, F, _, N>(config, shutdown, |_| Poll::Ready(None), notify).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::io::{Read, Write};
    use std::task::Waker;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A loopback pair: a std peer and a tokio stream accepted from it.
    fn pair() -> (std::net::TcpStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        (peer, TcpStream::from_std(accepted).unwrap())
    }

    #[test]
    fn a_short_read_waits_for_the_next_event_and_loses_nothing() {
        runtime().block_on(async {
            let (mut peer, stream) = pair();
            let mut buf = [0u8; 64];
            peer.write_all(b"a").unwrap();
            let n = poll_fn(|cx| Tokio::poll_read(&stream, cx, &mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"a");
            // The byte is in the socket (loopback delivers inside the
            // write), but the runtime has not seen its event: no read is
            // tried for it yet (before, a `recvfrom` went out at once,
            // and usually found nothing).
            peer.write_all(b"b").unwrap();
            let mut cx = Context::from_waker(Waker::noop());
            assert!(Tokio::poll_read(&stream, &mut cx, &mut buf).is_pending());
            let n = poll_fn(|cx| Tokio::poll_read(&stream, cx, &mut buf))
                .await
                .unwrap();
            assert_eq!(&buf[..n], b"b");
            drop(peer);
            let n = poll_fn(|cx| Tokio::poll_read(&stream, cx, &mut buf))
                .await
                .unwrap();
            assert_eq!(n, 0, "EOF");
        });
    }

    #[test]
    fn a_just_connected_socket_takes_a_write_at_once() {
        runtime().block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let stream = Tokio::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            // tokio has seen no event for the new socket; the write goes
            // to the socket anyway instead of waiting a runtime turn.
            assert_eq!(Tokio::try_write(&stream, b"x").unwrap(), 1);
            let (mut accepted, _) = listener.accept().unwrap();
            let mut got = [0u8; 1];
            accepted.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"x");
        });
    }

    #[test]
    fn a_refused_connect_says_refused() {
        runtime().block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            let error = Tokio::connect(addr).await.expect_err("refused");
            assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
        });
    }
}
