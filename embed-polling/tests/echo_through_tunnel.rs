//! Two nodes on the example's loop on 127.0.0.1 ephemeral ports (in
//! threads, or node B as the example binary): a client writes into node
//! A's tunnel, node B exports a TCP echo server, and the same bytes must
//! come back. Every blocking call has a timeout, so a broken loop fails
//! instead of hanging.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use warren_embed_polling::{demo_config, run, Clock, PollingHost, Stopper};
use warren_proto::node::{CloseReason, Direction, Node, NodeEvent};

const LIMIT: Duration = Duration::from_secs(10);

fn ephemeral() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// A node running `run` in a thread; its events come out of the receiver.
struct Running {
    stopper: Stopper,
    events: Receiver<NodeEvent>,
    thread: JoinHandle<Result<(), String>>,
}

fn start(args: &[String], prebound: Vec<TcpListener>) -> Running {
    let config = demo_config::from_args(args.iter().cloned()).unwrap();
    let (tx, events) = mpsc::channel();
    let mut host = PollingHost::new(move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    for l in prebound {
        host.prebind(l).unwrap();
    }
    let stopper = host.stopper();
    let thread = thread::spawn(move || {
        let clock = Clock::start();
        let mut node = Node::new(config, clock.now());
        run(&mut node, &mut host, clock).map_err(|e| e.to_string())
    });
    Running {
        stopper,
        events,
        thread,
    }
}

impl Running {
    /// The next `FlowClosed` event, skipping others.
    fn flow_closed(&self) -> NodeEvent {
        loop {
            let e = self
                .events
                .recv_timeout(LIMIT)
                .expect("no FlowClosed event");
            if matches!(e, NodeEvent::FlowClosed { .. }) {
                return e;
            }
        }
    }

    fn stop(self) {
        self.stopper.stop().unwrap();
        let result = self.thread.join().expect("loop thread panicked");
        assert_eq!(result, Ok(()));
    }
}

/// A TCP echo server for one connection: copies until EOF, then FIN.
fn echo_server() -> (SocketAddr, JoinHandle<usize>) {
    let listener = ephemeral();
    let addr = listener.local_addr().unwrap();
    let thread = thread::spawn(move || {
        listener.set_nonblocking(false).unwrap();
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(LIMIT)).unwrap();
        conn.set_write_timeout(Some(LIMIT)).unwrap();
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        loop {
            let n = conn.read(&mut buf).expect("echo read");
            if n == 0 {
                break;
            }
            conn.write_all(&buf[..n]).expect("echo write");
            total += n;
        }
        conn.shutdown(Shutdown::Write).unwrap();
        total
    });
    (addr, thread)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn assert_done(event: NodeEvent, direction: Direction, size: u64) {
    let NodeEvent::FlowClosed {
        direction: d,
        bytes_sent,
        bytes_received,
        reason,
        ..
    } = event
    else {
        unreachable!("flow_closed returns FlowClosed only");
    };
    assert_eq!(
        (d, bytes_sent, bytes_received, reason),
        (direction, size, size, CloseReason::Done)
    );
}

/// Writes `data` into the tunnel at `front` (from a second thread, as the
/// echo comes back meanwhile), half-closes, and returns what came back.
fn through_tunnel(front: SocketAddr, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut client = TcpStream::connect_timeout(&front, LIMIT)?;
    client.set_read_timeout(Some(LIMIT))?;
    client.set_write_timeout(Some(LIMIT))?;
    let mut writer = client.try_clone()?;
    let sent = data.to_vec();
    let writing = thread::spawn(move || {
        // A refused flow may reset the connection mid-write; the reader sees it.
        let _ = writer.write_all(&sent);
        let _ = writer.shutdown(Shutdown::Write);
    });
    let mut echoed = Vec::new();
    let read = client.read_to_end(&mut echoed);
    writing.join().expect("writer panicked");
    read.map(|_| echoed)
}

fn args(s: &[&str]) -> Vec<String> {
    s.iter().map(|a| a.to_string()).collect()
}

/// Node A: `shop/cart` with a tunnel at `front` to echo.shop:80 on the
/// node at `hbone`.
fn start_client_node(front: TcpListener, hbone: SocketAddr) -> (Running, SocketAddr) {
    let front_addr = front.local_addr().unwrap();
    let tunnel = format!("{front_addr}=echo.shop:80@{hbone}/shop/echo");
    let a = start(
        &args(&["--id", "shop/cart", "--tunnel", &tunnel]),
        vec![front],
    );
    (a, front_addr)
}

/// Node B: `shop/echo` exporting echo.shop:80 → `target`.
fn start_server_node(hbone: TcpListener, target: SocketAddr) -> (Running, SocketAddr) {
    let hbone_addr = hbone.local_addr().unwrap();
    let export = format!("echo.shop:80={target}");
    let b = start(
        &args(&[
            "--id",
            "shop/echo",
            "--hbone",
            &hbone_addr.to_string(),
            "--export",
            &export,
        ]),
        vec![hbone],
    );
    (b, hbone_addr)
}

#[test]
fn one_mib_echoes_through_the_tunnel() {
    const SIZE: usize = 1 << 20;
    let (echo, echo_thread) = echo_server();
    let (b, hbone) = start_server_node(ephemeral(), echo);
    let (a, front) = start_client_node(ephemeral(), hbone);

    let data = pattern(SIZE);
    let echoed = through_tunnel(front, &data).expect("echo did not end in time");
    assert_eq!(echoed.len(), SIZE);
    assert!(echoed == data, "echoed bytes differ");
    assert_eq!(echo_thread.join().unwrap(), SIZE);

    assert_done(a.flow_closed(), Direction::Outbound, SIZE as u64);
    assert_done(b.flow_closed(), Direction::Inbound, SIZE as u64);
    a.stop();
    b.stop();
}

#[test]
fn a_refused_target_ends_the_flow_with_connect_failed() {
    // A port that was free a moment ago: connecting to it is refused.
    let refused = ephemeral().local_addr().unwrap();
    let (b, hbone) = start_server_node(ephemeral(), refused);
    let (a, front) = start_client_node(ephemeral(), hbone);

    // Reset or plain EOF, but nothing echoed and no hang.
    if let Ok(echoed) = through_tunnel(front, b"hello") {
        assert_eq!(echoed, b"");
    }
    let NodeEvent::FlowClosed { reason, .. } = b.flow_closed() else {
        unreachable!("flow_closed returns FlowClosed only");
    };
    assert_eq!(reason, CloseReason::ConnectFailed);
    let NodeEvent::FlowClosed { reason, .. } = a.flow_closed() else {
        unreachable!("flow_closed returns FlowClosed only");
    };
    assert_ne!(reason, CloseReason::Done);
    a.stop();
    b.stop();
}

/// The example binary, killed when dropped (also when a test fails).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of `from`, through a channel so that reads can time out.
fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn the_example_binary_serves_an_export() {
    const SIZE: usize = 256 * 1024;
    let (echo, echo_thread) = echo_server();
    let export = format!("echo.shop:80={echo}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_warren-embed-polling"))
        .args([
            "--id",
            "shop/echo",
            "--hbone",
            "127.0.0.1:0",
            "--export",
            &export,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("example binary starts");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let process = Process(child);
    let (stdout, stderr) = (lines(stdout), lines(stderr));
    let listening = stdout.recv_timeout(LIMIT).expect("no listening line");
    let hbone: SocketAddr = listening
        .strip_prefix("listening ")
        .expect("listening ADDR")
        .parse()
        .unwrap();

    let (a, front) = start_client_node(ephemeral(), hbone);
    let data = pattern(SIZE);
    let echoed = through_tunnel(front, &data).expect("echo did not end in time");
    assert!(echoed == data, "echoed bytes differ");
    assert_eq!(echo_thread.join().unwrap(), SIZE);
    assert_done(a.flow_closed(), Direction::Outbound, SIZE as u64);
    // The binary's access log names the flow and its byte counts.
    let closed = loop {
        let line = stderr.recv_timeout(LIMIT).expect("no access-log line");
        if line.starts_with("flow closed") {
            break line;
        }
    };
    assert!(
        closed.contains(&format!("sent={SIZE} received={SIZE}"))
            && closed.contains("reason=\"done\""),
        "{closed}"
    );
    a.stop();
    drop(process);
}
