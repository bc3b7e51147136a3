//! The target server every path leads to: a std listener on 127.0.0.1 with
//! a thread per connection. The first byte a client sends picks what the
//! connection does with the rest: sink (count and discard) or echo.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

/// First byte a client sends: the target server discards the rest.
pub const MODE_SINK: u8 = b'S';
/// First byte a client sends: the target server echoes the rest.
pub const MODE_ECHO: u8 = b'E';
/// First byte a client sends: the target server answers `!` and then
/// reads nothing (a slow receiver) until [`TargetServer::release_holds`]
/// is set, then discards the rest, counting it in [`TargetServer::drained`].
pub const MODE_HOLD: u8 = b'H';
/// Size of each bulk client write and sink read.
pub const CHUNK: usize = 256 * 1024;
/// Echo reads: an echo connection carries little, and the memory figures
/// hold thousands of them open.
const ECHO_BUF: usize = 16 * 1024;
/// Stack of a connection thread: the memory runs hold up to 10k of them.
const STACK: usize = 128 * 1024;

/// The running server; counts bytes its sink connections received.
pub struct TargetServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Payload bytes received by sink connections so far.
    pub received: Arc<AtomicU64>,
    /// While false, hold connections read nothing; once true they drain
    /// (so a held flow's bytes stop pinning the path's windows).
    pub release_holds: Arc<AtomicBool>,
    /// Bytes hold connections received once released: a slow-receiver
    /// figure waits until every byte its clients pushed got here, so the
    /// next measurement does not share the path with the drain.
    pub drained: Arc<AtomicU64>,
}

/// Starts the server on an ephemeral loopback port.
pub fn start() -> io::Result<TargetServer> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let received = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&received);
    let release_holds = Arc::new(AtomicBool::new(false));
    let release = Arc::clone(&release_holds);
    let drained = Arc::new(AtomicU64::new(0));
    let held_count = Arc::clone(&drained);
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let count = Arc::clone(&count);
            let release = Arc::clone(&release);
            let held_count = Arc::clone(&held_count);
            // Out of threads or memory: the connection drops and the client sees it.
            let _ = thread::Builder::new()
                .stack_size(STACK)
                .spawn(move || serve(conn, &count, &release, &held_count));
        }
    });
    Ok(TargetServer {
        addr,
        received,
        release_holds,
        drained,
    })
}

fn serve(mut conn: TcpStream, received: &AtomicU64, release: &AtomicBool, drained: &AtomicU64) {
    let _ = conn.set_nodelay(true);
    let mut mode = [0u8; 1];
    if conn.read_exact(&mut mode).is_err() {
        return;
    }
    if mode[0] == MODE_ECHO {
        echo(&mut conn);
    } else if mode[0] == MODE_HOLD {
        hold(&mut conn, release);
        sink(&mut conn, drained);
    } else {
        sink(&mut conn, received);
    }
    let _ = conn.shutdown(Shutdown::Write);
}

/// Writes back what arrives; a bare mode byte gets one `!` so the client
/// sees its flow set up.
fn echo(conn: &mut TcpStream) {
    let mut buf = vec![0; ECHO_BUF];
    if conn.write_all(b"!").is_err() {
        return;
    }
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}

/// Says `!`, then waits without reading until `release` is set.
fn hold(conn: &mut TcpStream, release: &AtomicBool) {
    if conn.write_all(b"!").is_err() {
        return;
    }
    while !release.load(Ordering::Relaxed) {
        thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn sink(conn: &mut TcpStream, received: &AtomicU64) {
    let mut buf = vec![0; CHUNK];
    loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}
