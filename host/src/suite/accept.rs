//! Accept errors back off instead of spinning: a reactor whose first
//! accepts fail with `EMFILE` (as a process out of descriptors sees),
//! wrapped around the runtime under test.

use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{client_config, exchange, pattern, server_config, target_server, Pki, Server, HANG};
use crate::{Connecting, Notice, Reactor, Resolving};

/// Accepts that fail before the first one succeeds.
const FAILURES: usize = 4;
/// `EMFILE` on Linux: the process has no file descriptor left.
const EMFILE: i32 = 24;

/// Accept calls that are still to fail.
static FAILS_LEFT: AtomicUsize = AtomicUsize::new(0);
/// Every accept call made.
static ACCEPT_CALLS: AtomicUsize = AtomicUsize::new(0);

/// `R`, except that its accepts fail while [`FAILS_LEFT`] lasts.
pub struct FailingAccept<R>(PhantomData<R>);

impl<R: Reactor> Reactor for FailingAccept<R> {
    type Stream = R::Stream;
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
        ACCEPT_CALLS.fetch_add(1, Ordering::SeqCst);
        let fail = FAILS_LEFT
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            // As the kernel would: the connection stays queued.
            return Poll::Ready(Err(io::Error::from_raw_os_error(EMFILE)));
        }
        R::poll_accept(listener, cx)
    }
    fn connect(addr: SocketAddr) -> Connecting<Self::Stream> {
        R::connect(addr)
    }
    fn resolve(host: String) -> Resolving {
        R::resolve(host)
    }
    fn poll_read(
        stream: &Self::Stream,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        R::poll_read(stream, cx, buf)
    }
    fn poll_read_ready(stream: &Self::Stream, cx: &mut Context<'_>) -> Poll<()> {
        R::poll_read_ready(stream, cx)
    }
    fn try_write(stream: &Self::Stream, data: &[u8]) -> io::Result<usize> {
        R::try_write(stream, data)
    }
    fn poll_writable(stream: &Self::Stream, cx: &mut Context<'_>) -> Poll<()> {
        R::poll_writable(stream, cx)
    }
    fn set_nodelay(stream: &Self::Stream) {
        R::set_nodelay(stream)
    }
    fn shutdown_write(stream: &Self::Stream) {
        R::shutdown_write(stream)
    }
    fn set_reset_on_close(stream: &Self::Stream) {
        R::set_reset_on_close(stream)
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

/// The client node's tunnel listener fails its first [`FAILURES`]
/// accepts with `EMFILE`: each failure is reported once with a pause that
/// doubles from 10 ms, the listener is not polled during a pause (no
/// spin), and the waiting client's flow then goes through.
pub fn accept_errors_back_off<R: Reactor>() {
    let pki = Pki::new();
    let target = target_server(Server::Echo);
    let b = server_config(&pki, target.addr, Default::default());
    let b_node = crate::spawn::<R, _>(b, |_| {}).unwrap();
    let a = client_config(&pki, b_node.local_addrs()[0]);
    let (tx, notices) = mpsc::channel();
    let a_node = crate::spawn::<FailingAccept<R>, _>(a, move |notice| {
        if let Notice::AcceptFailed {
            error, retry_in, ..
        } = notice
        {
            let _ = tx.send((error.raw_os_error(), retry_in));
        }
    })
    .unwrap();

    ACCEPT_CALLS.store(0, Ordering::SeqCst);
    FAILS_LEFT.store(FAILURES, Ordering::SeqCst);
    let data = pattern(10_000);
    assert_eq!(exchange(a_node.local_addrs()[0], &data), data);

    let failures: Vec<_> = (0..FAILURES)
        .map(|_| notices.recv_timeout(HANG).expect("an AcceptFailed notice"))
        .collect();
    let ms = Duration::from_millis;
    assert_eq!(
        failures,
        [
            (Some(EMFILE), ms(10)),
            (Some(EMFILE), ms(20)),
            (Some(EMFILE), ms(40)),
            (Some(EMFILE), ms(80))
        ]
    );
    assert!(notices.try_recv().is_err(), "a failure was reported twice");
    // One call per failure, one that accepted, and a few that found the
    // queue empty; a listener polled while paused would make thousands.
    let calls = ACCEPT_CALLS.load(Ordering::SeqCst);
    assert!(
        (FAILURES + 1..=FAILURES + 8).contains(&calls),
        "{calls} accept calls"
    );
}
