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
use warren_host::{connect_done, connect_outcome, start_connect, Connecting, Reactor, Resolving};
use warren_proto::node::NodeConfig;

pub use warren_host::{Handle, Notice};

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
            match listener.get_ref().accept() {
                Ok((stream, peer)) => return Poll::Ready(Async::new(stream).map(|s| (s, peer))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(listener.poll_readable(cx))?;
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
        loop {
            let mut std_stream: &TcpStream = stream.get_ref();
            match std_stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(stream.poll_readable(cx))?;
                }
                result => return Poll::Ready(result),
            }
        }
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

/// Starts a node on a new thread under `smol::block_on` and returns once
/// its listeners are bound. `on_notice` runs on the node's thread for
/// every event and every later listener change.
pub fn spawn<E>(config: NodeConfig, on_notice: E) -> io::Result<Handle>
where
    E: FnMut(Notice) + Send + 'static,
{
    warren_host::spawn::<Smol, E>(config, on_notice)
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
