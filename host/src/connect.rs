//! Outgoing TCP connects, shared by the runtime adapters: the socket is
//! made and its connect started here, so an adapter only waits for the
//! outcome with its own reactor.

use std::io;
use std::net::{SocketAddr, TcpStream};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// A non-blocking TCP socket with its connect to `addr` under way or, as
/// on loopback where the handshake completes inside connect(2), done.
/// Ask [`connect_done`] before waiting for the reactor: a socket that is
/// already connected can be used at once, a runtime turn earlier.
pub fn start_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    // Non-blocking from the start: no fcntl round trip.
    let kind = Type::STREAM.nonblocking();
    let socket = Socket::new(Domain::for_address(addr), kind, Some(Protocol::TCP))?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(socket.into())
}

/// Whether the connect [`start_connect`] began has completed: getpeername
/// answers once it has (ENOTCONN while it is under way).
pub fn connect_done(socket: SockRef<'_>) -> bool {
    socket.peer_addr().is_ok()
}

/// The outcome of a connect once the reactor reported the socket writable:
/// the pending socket error if there is one; else, a socket that is still
/// not connected (refused without a pending error) fails as getpeername
/// says.
pub fn connect_outcome(socket: SockRef<'_>) -> io::Result<()> {
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    socket.peer_addr().map(|_| ())
}
