//! The node's sockets: the [`Host`] half of the adapter. Every
//! method returns at once; whatever has to wait (a connect, writability,
//! readability) is left to the ready queue.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use warren_proto::drive::Host;
use warren_proto::node::{ConnectError, Input, ListenError, ListenerId, NodeEvent, SockId};

use crate::ready::ReadyQueue;
use crate::{read_emptied, Connecting, Notice, Reactor, Resolving};

/// Where a socket is in its life.
pub(crate) enum Conn<R: Reactor> {
    /// `Output::Resolve` in progress: no socket yet.
    Resolving(Resolving),
    /// `Output::Connect` in progress.
    Connecting(Connecting<R::Stream>),
    /// Connected or accepted.
    Open(R::Stream),
}

/// One socket the node knows.
pub(crate) struct Sock<R: Reactor> {
    pub(crate) conn: Conn<R>,
    pub(crate) waker: Waker,
    /// The node asked `PauseRead`: leave the bytes in the kernel.
    pub(crate) paused: bool,
    /// EOF was reported; nothing more to read.
    pub(crate) read_closed: bool,
    /// A write came up short: report `Writable` when it can take more.
    pub(crate) want_write: bool,
    /// A write failed: report `Reset` at the next look.
    pub(crate) failed: bool,
    /// Nothing to read before the runtime says so: the read right after
    /// the accept emptied the socket, or the socket just connected. The
    /// next look asks `poll_read_ready` instead of reading.
    pub(crate) emptied: bool,
}

/// One listener the node asked for.
pub(crate) struct Listener<R: Reactor> {
    pub(crate) listener: R::Listener,
    pub(crate) waker: Waker,
}

/// Every socket and listener, and where the node's requests go.
pub(crate) struct Sockets<R: Reactor, N> {
    pub(crate) socks: BTreeMap<SockId, Sock<R>>,
    pub(crate) listeners: BTreeMap<ListenerId, Listener<R>>,
    pub(crate) queue: Arc<ReadyQueue>,
    pub(crate) notify: N,
    /// A listener of the initial configuration could not be bound: the
    /// run ends with this.
    pub(crate) fatal: Option<io::Error>,
    /// The initial listeners are up; a later bind failure (a new config)
    /// is reported, not fatal.
    pub(crate) started: bool,
    /// Bind failures after the start, told to the node after the drain
    /// (as `Input::ListenFailed`, which it reports as an event).
    pub(crate) failed_listens: Vec<(ListenerId, ListenError)>,
}

fn listen_error(e: &io::Error) -> ListenError {
    match e.kind() {
        io::ErrorKind::AddrInUse => ListenError::AddrInUse,
        io::ErrorKind::AddrNotAvailable => ListenError::AddrNotAvailable,
        io::ErrorKind::PermissionDenied => ListenError::PermissionDenied,
        _ => ListenError::Other,
    }
}

impl<R: Reactor, N: FnMut(Notice)> Sockets<R, N> {
    /// Registers a socket and schedules its first look.
    /// Polls `sock`'s connect once: `None` while it is not done (or
    /// `sock` is not connecting). Done, the socket is open (no Nagle, and
    /// marked emptied: the peer has had no time to send, so the first look
    /// asks the runtime instead of reading to hear `WouldBlock`) or gone.
    pub(crate) fn poll_connect(&mut self, sock: SockId) -> Option<Result<(), ConnectError>> {
        let s = self.socks.get_mut(&sock)?;
        let Conn::Connecting(connecting) = &mut s.conn else {
            return None;
        };
        let waker = s.waker.clone();
        match connecting.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Pending => None,
            Poll::Ready(Ok(stream)) => {
                R::set_nodelay(&stream);
                s.conn = Conn::Open(stream);
                s.emptied = true;
                Some(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                self.socks.remove(&sock);
                Some(Err(crate::driver::connect_error(&e)))
            }
        }
    }

    pub(crate) fn insert(&mut self, sock: SockId, conn: Conn<R>) {
        let sock_state = Sock {
            conn,
            waker: self.queue.waker(sock.0),
            paused: false,
            read_closed: false,
            want_write: false,
            failed: false,
            emptied: false,
        };
        self.socks.insert(sock, sock_state);
        self.queue.kick(sock.0);
    }

    /// One read of `sock` into `buf` without waiting, as the node's input:
    /// `None` when nothing is there (the socket's waker is then registered)
    /// or the socket is not open. Used right after an accept, before the
    /// node's outputs are carried out (see `drive::accept_and_read`).
    pub(crate) fn read_now<'b>(&mut self, sock: SockId, buf: &'b mut [u8]) -> Option<Input<'b>> {
        let s = self.socks.get_mut(&sock)?;
        let Conn::Open(stream) = &s.conn else {
            return None;
        };
        let waker = s.waker.clone();
        match R::poll_read(stream, &mut Context::from_waker(&waker), buf) {
            Poll::Pending => None,
            Poll::Ready(Ok(0)) => {
                s.read_closed = true;
                Some(Input::ReadClosed { sock })
            }
            Poll::Ready(Ok(n)) => {
                s.emptied = read_emptied(n, buf);
                Some(Input::Received {
                    sock,
                    data: buf.get(..n)?,
                })
            }
            // The look the insert scheduled tries again.
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => None,
            Poll::Ready(Err(_)) => {
                self.socks.remove(&sock);
                Some(Input::Reset { sock })
            }
        }
    }

    fn bind(&mut self, listener: ListenerId, addr: SocketAddr) -> io::Result<()> {
        let (bound_listener, bound) = R::bind(addr)?;
        let listener_state = Listener {
            listener: bound_listener,
            waker: self.queue.waker(listener.0),
        };
        self.listeners.insert(listener, listener_state);
        self.queue.kick(listener.0);
        (self.notify)(Notice::Listening {
            listener,
            addr: bound,
        });
        Ok(())
    }
}

impl<R: Reactor, N: FnMut(Notice)> Host for Sockets<R, N> {
    fn listen(&mut self, listener: ListenerId, addr: SocketAddr) {
        if let Err(error) = self.bind(listener, addr) {
            if self.started {
                self.failed_listens.push((listener, listen_error(&error)));
            } else {
                let e = io::Error::new(error.kind(), format!("listen on {addr}: {error}"));
                self.fatal.get_or_insert(e);
            }
        }
    }

    fn stop_listening(&mut self, listener: ListenerId) {
        // Dropping it closes the socket; a wake-up still queued for its id
        // finds nothing.
        self.listeners.remove(&listener);
    }

    fn connect(&mut self, sock: SockId, addr: SocketAddr) {
        self.insert(sock, Conn::Connecting(R::connect(addr)));
    }

    fn connect_result_now(&mut self, sock: SockId) -> Option<Result<(), ConnectError>> {
        // The first poll makes the socket and calls connect(2); a loopback
        // connect is done when it returns. Pending registers the waker,
        // and the driver's look (which the insert scheduled) polls again.
        self.poll_connect(sock)
    }

    fn resolve(&mut self, sock: SockId, host: &str) {
        self.insert(sock, Conn::Resolving(R::resolve(host.to_string())));
    }

    fn write(&mut self, sock: SockId, data: &[u8]) -> usize {
        let Some(s) = self.socks.get_mut(&sock) else {
            return 0;
        };
        let Conn::Open(stream) = &s.conn else {
            // Still connecting: take nothing now, say `Writable` once open.
            s.want_write = true;
            return 0;
        };
        let mut written = 0;
        while written < data.len() {
            match R::try_write(stream, &data[written..]) {
                // A socket that takes nothing of a non-empty write is broken.
                Ok(0) => {
                    s.failed = true;
                    self.queue.kick(sock.0);
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        s.want_write = true;
                    } else {
                        s.failed = true;
                    }
                    self.queue.kick(sock.0);
                    break;
                }
            }
        }
        written
    }

    fn pause_read(&mut self, sock: SockId) {
        if let Some(s) = self.socks.get_mut(&sock) {
            s.paused = true;
        }
    }

    fn resume_read(&mut self, sock: SockId) {
        if let Some(s) = self.socks.get_mut(&sock) {
            s.paused = false;
            self.queue.kick(sock.0);
        }
    }

    fn shutdown_write(&mut self, sock: SockId) {
        if let Some(Sock {
            conn: Conn::Open(stream),
            ..
        }) = self.socks.get(&sock)
        {
            // Fails only when the peer is already gone, which a read reports.
            R::shutdown_write(stream);
        }
    }

    fn close(&mut self, sock: SockId, reset: bool) {
        if let Some(Sock {
            conn: Conn::Open(stream),
            ..
        }) = self.socks.remove(&sock)
        {
            if reset {
                // The close sends RST and discards unsent data.
                R::set_reset_on_close(&stream);
            }
        }
    }

    fn event(&mut self, event: NodeEvent) {
        (self.notify)(Notice::Event(event));
    }
}
