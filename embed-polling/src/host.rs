//! [`PollingHost`]: the node's sockets as std non-blocking sockets
//! registered with a `polling::Poller` in level-triggered mode.
//!
//! The poller interest of each socket is the whole story of what the loop
//! waits for: readable unless paused (or at EOF), writable while a connect
//! is in progress or after a short write. Poller keys are the node's ids
//! (sockets and listeners share one counter, so keys never collide).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use polling::{Event, PollMode, Poller};
use socket2::{Domain, SockRef, Socket, Type};
use warren_proto::drive::Host;
use warren_proto::node::{ConnectError, Input, ListenerId, NodeEvent, ResolveError, SockId};

/// One TCP socket the node knows.
struct Sock {
    stream: TcpStream,
    /// `Output::Connect` not yet reported with `Input::Connected`.
    connecting: bool,
    /// A connect that failed before it started (e.g. no route).
    connect_error: Option<io::Error>,
    /// The node asked `PauseRead`.
    paused: bool,
    /// EOF was reported: level-triggered readability would repeat it.
    read_closed: bool,
    /// A write came up short: report `Writable` when it can take more.
    want_write: bool,
    /// A write failed: report `Reset` at the next writable event.
    failed: bool,
}

impl Sock {
    fn interest(&self, key: usize) -> Event {
        let readable = !self.connecting && !self.paused && !self.read_closed;
        let writable = self.connecting || self.want_write || self.failed;
        Event::new(key, readable, writable)
    }
}

/// Ends a running loop from another thread.
#[derive(Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    poller: Arc<Poller>,
}

impl Stopper {
    /// Asks the loop to return after its current iteration, waking it.
    pub fn stop(&self) -> io::Result<()> {
        self.flag.store(true, Ordering::SeqCst);
        self.poller.notify()
    }
}

/// The node's sockets and listeners; implements [`Host`].
pub struct PollingHost {
    poller: Arc<Poller>,
    socks: BTreeMap<SockId, Sock>,
    listeners: BTreeMap<ListenerId, TcpListener>,
    /// Listeners bound before the node asked for them (ephemeral ports,
    /// socket activation), by the address the configuration names.
    prebound: BTreeMap<SocketAddr, TcpListener>,
    stop: Arc<AtomicBool>,
    /// A listener could not be bound: the loop ends with this.
    fatal: Option<io::Error>,
    on_event: Box<dyn FnMut(NodeEvent) + Send>,
    on_listen: Box<dyn FnMut(SocketAddr) + Send>,
    /// Lookups finished on their threads, waiting to be told to the node.
    resolved: Arc<Mutex<Vec<(SockId, Lookup)>>>,
}

/// A finished lookup.
type Lookup = Result<Vec<IpAddr>, ResolveError>;

fn key(id: u64) -> usize {
    // Ids count up from 1; a 64-bit target never wraps.
    id as usize
}

impl PollingHost {
    /// A host reporting the node's events (access log etc.) to `on_event`.
    pub fn new(on_event: impl FnMut(NodeEvent) + Send + 'static) -> io::Result<PollingHost> {
        Ok(PollingHost {
            poller: Arc::new(Poller::new()?),
            socks: BTreeMap::new(),
            listeners: BTreeMap::new(),
            prebound: BTreeMap::new(),
            stop: Arc::new(AtomicBool::new(false)),
            fatal: None,
            on_event: Box::new(on_event),
            on_listen: Box::new(|_| {}),
            resolved: Arc::default(),
        })
    }

    /// Uses `listener` when the node asks to listen on its local address.
    pub fn prebind(&mut self, listener: TcpListener) -> io::Result<()> {
        self.prebound.insert(listener.local_addr()?, listener);
        Ok(())
    }

    /// Calls `on_listen` with each listener's bound address (where port 0
    /// became a real port).
    pub fn on_listen(&mut self, on_listen: impl FnMut(SocketAddr) + Send + 'static) {
        self.on_listen = Box::new(on_listen);
    }

    /// A handle that stops the loop.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            flag: self.stop.clone(),
            poller: self.poller.clone(),
        }
    }

    /// The poller the loop waits on.
    pub fn poller(&self) -> &Poller {
        &self.poller
    }

    /// True once stopped; an error if a listener could not be bound.
    pub fn should_stop(&mut self) -> io::Result<bool> {
        match self.fatal.take() {
            Some(e) => Err(e),
            None => Ok(self.stop.load(Ordering::SeqCst)),
        }
    }

    /// A lookup that finished, as the node's input (`addrs` holds the
    /// addresses the input borrows).
    pub fn take_resolved<'b>(&mut self, addrs: &'b mut Vec<IpAddr>) -> Option<Input<'b>> {
        let (sock, lookup) = self.resolved.lock().ok()?.pop()?;
        let result = lookup.map(|found| {
            *addrs = found;
            &addrs[..]
        });
        Some(Input::Resolved { sock, result })
    }

    /// The listener behind a poller key, if it is one.
    pub fn listener(&self, key: usize) -> Option<ListenerId> {
        let id = ListenerId(key as u64);
        self.listeners.contains_key(&id).then_some(id)
    }

    /// Accepts one pending connection of `listener`, if any.
    pub fn accept(&mut self, listener: ListenerId) -> io::Result<Option<(TcpStream, SocketAddr)>> {
        let Some(l) = self.listeners.get(&listener) else {
            return Ok(None);
        };
        match l.accept() {
            Ok(pair) => Ok(Some(pair)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            // A connection that died in the backlog: skip it; the rest come
            // back level-triggered. (Out of descriptors spins here until one
            // frees: a production host would pause the listener a while.)
            Err(_) => Ok(None),
        }
    }

    /// Registers an accepted stream under the socket id the node gave it.
    pub fn adopt(&mut self, sock: SockId, stream: TcpStream) -> io::Result<()> {
        self.insert(sock, stream, false, None)
    }

    fn insert(
        &mut self,
        sock: SockId,
        stream: TcpStream,
        connecting: bool,
        connect_error: Option<io::Error>,
    ) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let s = Sock {
            stream,
            connecting,
            connect_error,
            paused: false,
            read_closed: false,
            want_write: false,
            failed: false,
        };
        // SAFETY: the stream is deleted from the poller before it is dropped
        // (see `forget`).
        unsafe {
            self.poller
                .add_with_mode(&s.stream, s.interest(key(sock.0)), PollMode::Level)?
        };
        self.socks.insert(sock, s);
        Ok(())
    }

    /// Deregisters and drops a socket (closing it).
    fn forget(&mut self, sock: SockId) -> Option<TcpStream> {
        let s = self.socks.remove(&sock)?;
        let _ = self.poller.delete(&s.stream);
        Some(s.stream)
    }

    /// Recomputes the poller interest of `sock` after a state change.
    fn rearm(&mut self, sock: SockId) {
        if let Some(s) = self.socks.get(&sock) {
            // Fails only for a socket not registered, which cannot be here.
            let _ =
                self.poller
                    .modify_with_mode(&s.stream, s.interest(key(sock.0)), PollMode::Level);
        }
    }

    /// What a writable socket means to the node: a connect finished, a
    /// full socket drained, or a failed write is ready to be reported.
    pub fn on_writable(&mut self, ev: &Event) -> Option<Input<'static>> {
        let sock = SockId(ev.key as u64);
        let s = self.socks.get_mut(&sock).filter(|_| ev.writable)?;
        if s.failed {
            self.forget(sock);
            return Some(Input::Reset { sock });
        }
        if s.connecting {
            s.connecting = false;
            let error = match s.connect_error.take() {
                Some(e) => Some(e),
                None => s.stream.take_error().ok().flatten(),
            };
            // No error yet no peer means the connect did not happen either.
            let error = error.or_else(|| s.stream.peer_addr().err());
            return Some(match error {
                Some(e) => {
                    self.forget(sock);
                    Input::Connected {
                        sock,
                        result: Err(connect_error(&e)),
                    }
                }
                None => {
                    self.rearm(sock);
                    Input::Connected {
                        sock,
                        result: Ok(()),
                    }
                }
            });
        }
        if s.want_write {
            s.want_write = false;
            self.rearm(sock);
            return Some(Input::Writable { sock });
        }
        None
    }

    /// What a readable socket means to the node: one read into `buf`
    /// becomes one input.
    pub fn on_readable<'b>(&mut self, ev: &Event, buf: &'b mut [u8]) -> Option<Input<'b>> {
        let sock = SockId(ev.key as u64);
        let s = self.socks.get_mut(&sock).filter(|_| ev.readable)?;
        if s.connecting || s.paused || s.read_closed {
            return None; // interest already changed; a stale event of this batch
        }
        match s.stream.read(buf) {
            Ok(0) => {
                s.read_closed = true;
                self.rearm(sock);
                Some(Input::ReadClosed { sock })
            }
            Ok(n) => Some(Input::Received {
                sock,
                data: buf.get(..n)?,
            }),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                None
            }
            Err(_) => {
                self.forget(sock);
                Some(Input::Reset { sock })
            }
        }
    }
}

fn connect_error(e: &io::Error) -> ConnectError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError::Refused,
        io::ErrorKind::TimedOut => ConnectError::TimedOut,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            ConnectError::Unreachable
        }
        _ => ConnectError::Other,
    }
}

/// Starts a non-blocking connect; `Ok` while it is in progress.
fn start_connect(addr: SocketAddr) -> io::Result<(TcpStream, Option<io::Error>)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    let pending = match socket.connect(&addr.into()) {
        Ok(()) => None,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => None,
        // Reported as the connect's result at the first writable event (an
        // unconnected socket polls writable at once).
        Err(e) => Some(e),
    };
    Ok((socket.into(), pending))
}

/// A blocking lookup (getaddrinfo), for a thread of its own.
fn lookup(host: &str) -> Lookup {
    match (host, 0).to_socket_addrs() {
        Ok(found) => Ok(found.map(|a| a.ip()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ResolveError::NotFound),
        Err(_) => Err(ResolveError::Failed),
    }
}

impl Host for PollingHost {
    fn listen(&mut self, listener: ListenerId, addr: SocketAddr) {
        let bound = match self.prebound.remove(&addr) {
            Some(l) => Ok(l),
            None => TcpListener::bind(addr),
        };
        let registered = bound.and_then(|l| {
            l.set_nonblocking(true)?;
            // SAFETY: a listener is deleted from the poller before it is
            // dropped (`stop_listening`).
            unsafe {
                self.poller
                    .add_with_mode(&l, Event::readable(key(listener.0)), PollMode::Level)?
            };
            (self.on_listen)(l.local_addr()?);
            self.listeners.insert(listener, l);
            Ok(())
        });
        if let Err(e) = registered {
            let e = io::Error::new(e.kind(), format!("listen on {addr}: {e}"));
            self.fatal.get_or_insert(e);
        }
    }

    fn stop_listening(&mut self, listener: ListenerId) {
        if let Some(l) = self.listeners.remove(&listener) {
            let _ = self.poller.delete(&l);
        }
    }

    fn connect(&mut self, sock: SockId, addr: SocketAddr) {
        // Without a socket at all (out of descriptors) there is nothing to
        // poll: the node's own connect deadline ends the attempt.
        let _ =
            start_connect(addr).and_then(|(stream, error)| self.insert(sock, stream, true, error));
    }

    fn resolve(&mut self, sock: SockId, host: &str) {
        // getaddrinfo blocks: one short-lived thread per lookup keeps the
        // loop running; the poller's notify wakes the loop for the answer.
        let (host, resolved, poller) =
            (host.to_string(), self.resolved.clone(), self.poller.clone());
        let spawned = std::thread::Builder::new()
            .name("warren-resolve".into())
            .spawn(move || {
                let answer = lookup(&host);
                if let Ok(mut queue) = resolved.lock() {
                    queue.push((sock, answer));
                }
                let _ = poller.notify();
            });
        if spawned.is_err() {
            if let Ok(mut queue) = self.resolved.lock() {
                queue.push((sock, Err(ResolveError::Failed)));
            }
        }
    }

    fn write(&mut self, sock: SockId, data: &[u8]) -> usize {
        let Some(s) = self.socks.get_mut(&sock) else {
            return data.len(); // already gone: the bytes have nowhere to go
        };
        if s.connecting {
            s.want_write = true; // `Writable` follows `Connected`
            return 0;
        }
        let mut written = 0;
        while written < data.len() {
            match s.stream.write(&data[written..]) {
                Ok(0) => {
                    s.failed = true;
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.want_write = true;
                    break;
                }
                Err(_) => {
                    s.failed = true;
                    break;
                }
            }
        }
        self.rearm(sock);
        written
    }

    fn pause_read(&mut self, sock: SockId) {
        if let Some(s) = self.socks.get_mut(&sock) {
            s.paused = true;
            self.rearm(sock);
        }
    }

    fn resume_read(&mut self, sock: SockId) {
        if let Some(s) = self.socks.get_mut(&sock) {
            s.paused = false;
            self.rearm(sock);
        }
    }

    fn shutdown_write(&mut self, sock: SockId) {
        if let Some(s) = self.socks.get(&sock) {
            // Fails only when the peer is already gone, which a read reports.
            let _ = s.stream.shutdown(Shutdown::Write);
        }
    }

    fn close(&mut self, sock: SockId, reset: bool) {
        if let Some(stream) = self.forget(sock) {
            if reset {
                // SO_LINGER 0: the close sends RST and discards unsent data.
                let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
        }
    }

    fn event(&mut self, event: NodeEvent) {
        (self.on_event)(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Option<Duration> = Some(Duration::from_secs(10));
    const SOCK: SockId = SockId(7);

    /// A host holding the accepted end of a loopback connection as `SOCK`,
    /// and the client end.
    fn pair() -> (PollingHost, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        client.set_read_timeout(LIMIT).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut host = PollingHost::new(|_| {}).unwrap();
        host.adopt(SOCK, server).unwrap();
        (host, client)
    }

    /// Readiness of `SOCK` as (readable, writable), waiting at most `timeout`.
    fn readiness(host: &PollingHost, timeout: Option<Duration>) -> (bool, bool) {
        let mut events = polling::Events::new();
        host.poller().wait(&mut events, timeout).unwrap();
        let ev = events.iter().find(|e| e.key == key(SOCK.0));
        ev.map_or((false, false), |e| (e.readable, e.writable))
    }

    #[test]
    fn pause_read_removes_read_interest_and_resume_restores_it() {
        let (mut host, mut client) = pair();
        client.write_all(b"ping").unwrap();
        assert_eq!(readiness(&host, LIMIT), (true, false));
        host.pause_read(SOCK);
        // Level-triggered and unread, yet no event while paused.
        assert_eq!(readiness(&host, Some(Duration::ZERO)), (false, false));
        host.resume_read(SOCK);
        assert_eq!(readiness(&host, LIMIT), (true, false));
        let mut buf = [0u8; 16];
        let ev = Event::readable(key(SOCK.0));
        match host.on_readable(&ev, &mut buf) {
            Some(Input::Received { sock, data }) => assert_eq!((sock, data), (SOCK, &b"ping"[..])),
            other => panic!("expected Received, got {other:?}"),
        }
    }

    #[test]
    fn a_short_write_reports_writable_once_the_peer_reads() {
        let (mut host, mut client) = pair();
        let big = vec![0u8; 64 << 20];
        let taken = host.write(SOCK, &big);
        assert!(taken < big.len(), "a 64 MiB write must come up short");
        assert!(!readiness(&host, Some(Duration::ZERO)).1);
        // Drain what was taken; the socket takes more again.
        let mut sink = vec![0u8; taken];
        client.read_exact(&mut sink).unwrap();
        assert!(readiness(&host, LIMIT).1);
        let ev = Event::writable(key(SOCK.0));
        assert!(matches!(
            host.on_writable(&ev),
            Some(Input::Writable { sock: SOCK })
        ));
        // Reported once: the write interest is gone until the next short write.
        assert!(!readiness(&host, Some(Duration::ZERO)).1);
    }

    #[test]
    fn shutdown_write_is_eof() {
        let (mut host, mut client) = pair();
        host.shutdown_write(SOCK);
        let mut buf = [0u8; 4];
        assert_eq!(client.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn close_with_reset_is_rst() {
        let (mut host, mut client) = pair();
        host.close(SOCK, true);
        // Blocks (at most LIMIT) until the RST arrives; a FIN would read 0.
        let err = client.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
    }
}
