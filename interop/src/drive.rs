//! The host loop for one engine connection over one TCP socket.
//!
//! The engine is sans-IO; this loop is its smallest possible host: it feeds
//! what the socket delivers into [`Connection::handle_input`], writes what
//! [`Connection::poll_transmit`] hands out, fires [`Connection::handle_timeout`]
//! at [`Connection::poll_timeout`], and passes every event to an
//! [`Application`]. Reading and writing are interleaved on one task, so a
//! peer that only reads once we read (as `h2` does when its write buffer is
//! full) never deadlocks against us.

use std::io;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use warren_proto::h2::{Config, Connection, Event, Role};
use warren_proto::time::Instant;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 256 << 10;

/// After the engine closed, how long we keep reading (and discarding) until
/// the peer closes too. Closing a socket with unread input makes the kernel
/// send RST, which can destroy our final GOAWAY before the peer reads it.
const LINGER: Duration = Duration::from_secs(1);

/// What runs on top of a connection: it sees every event and may call any
/// method of the connection in response.
pub trait Application {
    /// Handles one `event` of `conn`. Events this call causes are delivered
    /// next, before the loop touches the socket again.
    fn handle_event(&mut self, conn: &mut Connection, now: Instant, event: Event);
}

/// Maps the host's monotonic clock onto the engine's [`Instant`].
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    /// A clock whose origin is the moment of this call.
    pub fn start() -> Clock {
        Clock {
            origin: tokio::time::Instant::now(),
        }
    }

    /// The current time as the engine sees it.
    pub fn now(&self) -> Instant {
        let since = self.origin.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// The host time at which the engine's `at` falls.
    fn host_time(&self, at: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_nanos(at.as_nanos())
    }
}

/// Runs a connection in `role` with `config` over `stream` until the engine
/// reports [`Event::Closed`] and its last bytes are written, or the socket
/// fails. `app` sees every event.
///
/// A socket error ends the loop with that error (after telling the engine
/// the transport is gone); a peer that simply closes its side is EOF, which
/// the engine handles and which ends in `Closed`.
pub async fn drive<A: Application>(
    role: Role,
    config: Config,
    stream: TcpStream,
    app: &mut A,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let clock = Clock::start();
    let mut conn = Connection::new(role, config, clock.now());
    let mut input = vec![0u8; READ_CHUNK];
    let mut output = Outgoing::default();
    let mut read_open = true;
    loop {
        match settle(&mut conn, app, &clock, &stream, &mut output) {
            Ok(()) => {}
            Err(err) => {
                conn.handle_eof(clock.now());
                deliver_events(&mut conn, app, clock.now());
                // A peer that closed its side first may also have stopped
                // reading: our last frames finding no reader is a normal end.
                return match err.kind() {
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset if !read_open => {
                        Ok(())
                    }
                    _ => Err(err),
                };
            }
        }
        if conn.is_closed() && output.is_empty() {
            return linger(stream, &mut input).await;
        }
        let wake_at = conn.poll_timeout().map(|at| clock.host_time(at));
        if !read_open && output.is_empty() && wake_at.is_none() {
            // Nothing can happen any more, yet the engine never closed.
            return Err(io::Error::other(
                "engine neither closed nor asked for a timer after EOF",
            ));
        }
        tokio::select! {
            ready = stream.readable(), if read_open => {
                ready?;
                match stream.try_read(&mut input) {
                    Ok(0) => {
                        read_open = false;
                        conn.handle_eof(clock.now());
                    }
                    Ok(n) => conn.handle_input(clock.now(), &input[..n]),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => {
                        conn.handle_eof(clock.now());
                        deliver_events(&mut conn, app, clock.now());
                        return Err(err);
                    }
                }
            }
            ready = stream.writable(), if !output.is_empty() => ready?,
            () = sleep_until(wake_at), if wake_at.is_some() => {
                conn.handle_timeout(clock.now());
            }
        }
    }
}

/// [`drive`] on a fresh single-threaded tokio runtime, for callers that
/// run each connection on its own thread.
pub fn drive_blocking<A: Application>(
    role: Role,
    config: Config,
    stream: std::net::TcpStream,
    app: &mut A,
) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        stream.set_nonblocking(true)?;
        let stream = TcpStream::from_std(stream)?;
        drive(role, config, stream, app).await
    })
}

/// Delivers events and writes output until neither has anything left.
///
/// Transmitting can itself make events ready (`Writable` once queued output
/// drained below `max_send_buffer`, `Closed` once the final GOAWAY is handed
/// over), and their handling can queue more output, so the two alternate
/// until a transmit pass leaves no event behind. Skipping that last check
/// stalls a stream until some unrelated input arrives.
fn settle<A: Application>(
    conn: &mut Connection,
    app: &mut A,
    clock: &Clock,
    stream: &TcpStream,
    output: &mut Outgoing,
) -> io::Result<()> {
    deliver_events(conn, app, clock.now());
    loop {
        output.write_available(conn, clock, stream)?;
        if !deliver_events(conn, app, clock.now()) {
            return Ok(());
        }
    }
}

/// The drain rule: every event goes to the application, including those its
/// own calls cause, before the loop does anything else. True if there was
/// any.
fn deliver_events<A: Application>(conn: &mut Connection, app: &mut A, now: Instant) -> bool {
    let mut any = false;
    while let Some(event) = conn.poll_event() {
        app.handle_event(conn, now, event);
        any = true;
    }
    any
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Closes our side, then reads until the peer closes too or [`LINGER`]
/// passes, discarding what arrives.
async fn linger(mut stream: TcpStream, scratch: &mut [u8]) -> io::Result<()> {
    // The peer may already be gone; that is the outcome we wait for anyway.
    let _ = stream.shutdown().await;
    let drained = tokio::time::timeout(LINGER, async {
        loop {
            if stream.readable().await.is_err() {
                return;
            }
            match stream.try_read(scratch) {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    });
    let _ = drained.await;
    Ok(())
}

/// Bytes taken from the engine and not yet written to the socket.
///
/// New output is taken only once the previous batch is fully written, so
/// what waits here is bounded by what the engine itself bounds.
#[derive(Default)]
struct Outgoing {
    bytes: Vec<u8>,
    written: usize,
}

impl Outgoing {
    fn is_empty(&self) -> bool {
        self.written == self.bytes.len()
    }

    /// Writes until the engine has nothing more or the socket is full.
    fn write_available(
        &mut self,
        conn: &mut Connection,
        clock: &Clock,
        stream: &TcpStream,
    ) -> io::Result<()> {
        loop {
            if self.is_empty() {
                self.bytes.clear();
                self.written = 0;
                if conn.poll_transmit(clock.now(), &mut self.bytes) == 0 {
                    return Ok(());
                }
            }
            match stream.try_write(&self.bytes[self.written..]) {
                Ok(n) => self.written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_maps_engine_time_back_onto_host_time() {
        let clock = Clock::start();
        let at = Instant::from_nanos(1_500_000_000);
        assert_eq!(
            clock.host_time(at) - clock.origin,
            Duration::from_millis(1500)
        );
    }
}
