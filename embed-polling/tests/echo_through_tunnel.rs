//! Two nodes on the example's loop, each in its own thread, on 127.0.0.1
//! ephemeral ports: a client writes 1 MiB into node A's tunnel, node B
//! exports a TCP echo server, and the same bytes must come back. Every
//! blocking call has a timeout, so a broken loop fails instead of hanging.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
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

#[test]
fn one_mib_echoes_through_the_tunnel() {
    const SIZE: usize = 1 << 20;
    let (echo, echo_thread) = echo_server();
    let (hbone, front) = (ephemeral(), ephemeral());
    let (hbone_addr, front_addr) = (hbone.local_addr().unwrap(), front.local_addr().unwrap());
    let args = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let b = start(
        &args(&[
            "--id",
            "shop/echo",
            "--hbone",
            &hbone_addr.to_string(),
            "--export",
            &format!("echo.shop:80={echo}"),
        ]),
        vec![hbone],
    );
    let a = start(
        &args(&[
            "--id",
            "shop/cart",
            "--tunnel",
            &format!("{front_addr}=echo.shop:80@{hbone_addr}/shop/echo"),
        ]),
        vec![front],
    );

    let mut client = TcpStream::connect_timeout(&front_addr, LIMIT).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.set_write_timeout(Some(LIMIT)).unwrap();
    let data = pattern(SIZE);
    // Write from a second thread: the echo comes back while we still write.
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let writing = thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut echoed = Vec::with_capacity(SIZE);
    client
        .read_to_end(&mut echoed)
        .expect("echo did not end in time");
    writing.join().unwrap();
    assert_eq!(echoed.len(), SIZE);
    assert!(echoed == data, "echoed bytes differ");
    assert_eq!(echo_thread.join().unwrap(), SIZE);

    assert_done(a.flow_closed(), Direction::Outbound, SIZE as u64);
    assert_done(b.flow_closed(), Direction::Inbound, SIZE as u64);
    a.stop();
    b.stop();
}
