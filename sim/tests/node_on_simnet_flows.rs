//! Real `proto::Node`s over the simulated network: half-closes and resets
//! from either end, and slow readers, on two and three agents in every
//! direction. A scripted [`Peer`] on each end does things in a fixed
//! order, so "the server still sends after the client's FIN" is a fact of
//! the script, not of timing.

mod common;

use core::time::Duration;

use common::assert_no_flows_left;

use warren_proto::h2;
use warren_sim::agents::{Agents, AppRef};
use warren_sim::app::fill_stream;
use warren_sim::net::NetConfig;
use warren_sim::peer::{Peer, Step};

const SECOND: u64 = 1_000_000_000;
const MAX_STEPS: u64 = 20_000_000;

/// `len` bytes of the stream named `seed`.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    fill_stream(seed, 0, &mut out);
    out
}

/// The flows of one run: agent `i` dials agent `(i + step) % n`, so each
/// agent serves exactly one flow; steps 1..n together cover every ordered
/// pair.
fn ring(n: usize, step: usize) -> Vec<(usize, usize)> {
    (0..n).map(|i| (i, (i + step) % n)).collect()
}

/// Every (agents, step) combination: both directions on two agents, all
/// six on three.
const RINGS: [(usize, usize); 3] = [(2, 1), (3, 1), (3, 2)];

/// One flow per ring pair, a client and a server script each; returns the
/// agents and (client, server) per flow, after the world went quiet.
fn run_scripts(
    n: usize,
    step: usize,
    client: impl Fn(usize) -> Vec<Step>,
    server: impl Fn(usize) -> Vec<Step>,
) -> (Agents, Vec<(AppRef, AppRef)>) {
    let mut agents = Agents::new(3, n, NetConfig::default(), h2::Config::default()).unwrap();
    let mut flows = Vec::new();
    for (k, (from, to)) in ring(n, step).into_iter().enumerate() {
        let s = agents.serve_peer(
            to,
            Peer::listen(warren_sim::agents::SERVICE_PORT, server(k)),
        );
        let c = agents.dial_peer(from, Peer::dial(Agents::tunnel(to), client(k)));
        flows.push((c, s));
    }
    agents.run(30 * SECOND, MAX_STEPS);
    (agents, flows)
}

/// Close reasons the node logged, per label.
fn closed(agents: &Agents, i: usize) -> Vec<&'static str> {
    let mut out = Vec::new();
    for ((_, reason), n) in agents.node(i).node().close_counts() {
        out.extend(std::iter::repeat_n(*reason, *n as usize));
    }
    out
}

#[test]
fn the_client_half_closes_first_and_the_server_still_answers() {
    for (n, step) in RINGS {
        let request = |k| bytes(100 + k as u64, 50_000);
        let answer = |k| bytes(200 + k as u64, 70_000);
        let (agents, flows) = run_scripts(
            n,
            step,
            |k| {
                vec![
                    Step::Write(request(k)),
                    Step::Shutdown,
                    Step::AwaitEof,
                    Step::Close,
                ]
            },
            // The server answers only after the client's FIN.
            |k| {
                vec![
                    Step::AwaitEof,
                    Step::Write(answer(k)),
                    Step::Shutdown,
                    Step::Close,
                ]
            },
        );
        for (k, (c, s)) in flows.iter().enumerate() {
            let (c, s) = (agents.peer(*c), agents.peer(*s));
            let what = format!("{n} agents, step {step}, flow {k}");
            assert!(s.received == request(k) && s.eof, "{what}: request");
            assert!(c.received == answer(k) && c.eof, "{what}: answer after FIN");
            assert!(!c.reset && !s.reset, "{what}");
            assert!(c.script_done() && s.script_done(), "{what}");
        }
        for i in 0..n {
            assert_eq!(closed(&agents, i), ["done", "done"], "agent {i}");
        }
        assert_no_flows_left(&agents);
    }
}

#[test]
fn the_server_half_closes_first_and_the_client_still_sends() {
    for (n, step) in RINGS {
        let greeting = |k| bytes(300 + k as u64, 100_000);
        let request = |k| bytes(400 + k as u64, 70_000);
        let (agents, flows) = run_scripts(
            n,
            step,
            // The client sends only after the server's FIN.
            |k| {
                vec![
                    Step::AwaitEof,
                    Step::Write(request(k)),
                    Step::Shutdown,
                    Step::Close,
                ]
            },
            |k| {
                vec![
                    Step::Write(greeting(k)),
                    Step::Shutdown,
                    Step::AwaitEof,
                    Step::Close,
                ]
            },
        );
        for (k, (c, s)) in flows.iter().enumerate() {
            let (c, s) = (agents.peer(*c), agents.peer(*s));
            let what = format!("{n} agents, step {step}, flow {k}");
            assert!(c.received == greeting(k) && c.eof, "{what}: greeting");
            assert!(
                s.received == request(k) && s.eof,
                "{what}: request after FIN"
            );
            assert!(!c.reset && !s.reset, "{what}");
        }
        for i in 0..n {
            assert_eq!(closed(&agents, i), ["done", "done"], "agent {i}");
        }
        assert_no_flows_left(&agents);
    }
}

#[test]
fn a_client_reset_reaches_the_server() {
    for (n, step) in RINGS {
        let (agents, flows) = run_scripts(
            n,
            step,
            |_| {
                vec![
                    Step::Write(b"hello".to_vec()),
                    Step::AwaitBytes(3),
                    Step::Reset,
                ]
            },
            |_| {
                vec![
                    Step::AwaitBytes(5),
                    Step::Write(b"ack".to_vec()),
                    Step::AwaitEof,
                ]
            },
        );
        for (k, (c, s)) in flows.iter().enumerate() {
            let (c, s) = (agents.peer(*c), agents.peer(*s));
            let what = format!("{n} agents, step {step}, flow {k}");
            assert_eq!(
                (&s.received[..], &c.received[..]),
                (&b"hello"[..], &b"ack"[..])
            );
            assert!(
                s.reset && !s.eof,
                "{what}: the server sees a reset, not a FIN"
            );
        }
        for i in 0..n {
            // Agent i's own client reset its flow; the flow it serves was
            // reset by the far side's stream reset.
            let mut reasons = closed(&agents, i);
            reasons.sort_unstable();
            assert_eq!(reasons, ["local_reset", "stream_reset"], "agent {i}");
        }
        assert_no_flows_left(&agents);
    }
}

#[test]
fn a_server_reset_reaches_the_client() {
    for (n, step) in RINGS {
        let (agents, flows) = run_scripts(
            n,
            step,
            |_| vec![Step::Write(b"hello".to_vec()), Step::AwaitEof],
            |_| {
                vec![
                    Step::AwaitBytes(5),
                    Step::Write(b"ack".to_vec()),
                    Step::Reset,
                ]
            },
        );
        for (k, (c, s)) in flows.iter().enumerate() {
            let (c, s) = (agents.peer(*c), agents.peer(*s));
            let what = format!("{n} agents, step {step}, flow {k}");
            assert_eq!(s.received, b"hello", "{what}");
            assert!(
                c.reset && !c.eof,
                "{what}: the client sees a reset, not a FIN"
            );
            // Bytes before the reset may or may not arrive (a reset drops
            // what is queued); never anything else.
            assert!(b"ack".starts_with(&c.received), "{what}: {:?}", c.received);
        }
        for i in 0..n {
            let mut reasons = closed(&agents, i);
            reasons.sort_unstable();
            assert_eq!(reasons, ["local_reset", "stream_reset"], "agent {i}");
        }
        assert_no_flows_left(&agents);
    }
}

/// The window of the slow-reader runs: small, so the bound is tight.
const WINDOW: usize = 256 * 1024;
/// The network's per-direction window, which is also the most one read
/// (one `Received`, after a paused reader resumes) can bring.
const ONE_READ: usize = 64 * 1024;
/// Framing on top of the payload a window covers: a 9-byte header per
/// DATA frame (one per socket read, which is at least `MIN_SEGMENT` bytes
/// unless the writer had less) and 22 bytes per TLS record.
const FRAMING: usize = WINDOW / 32;
const MIN_SEGMENT: usize = 512;
/// How much the slow run moves, and how slowly the reader takes it.
const BULK: usize = 4 << 20;
const READ_EVERY: Duration = Duration::from_millis(2);

/// A flow from `from` to `to` among `n` agents where the side named by
/// `server_sends` writes `BULK` bytes to a reader that takes one delivery
/// every `READ_EVERY`. After every step of the world, every node holds at
/// most one window plus one read (plus framing), and the bytes between
/// the writing and the reading application stay within what the pipes,
/// the window and one read can hold.
fn slow_reader(n: usize, from: usize, to: usize, server_sends: bool) {
    let h2 = h2::Config {
        initial_stream_window: WINDOW as u32,
        initial_connection_window: 4 * WINDOW as u32,
        max_send_buffer: 64 << 10,
        ..h2::Config::default()
    };
    let mut net = NetConfig {
        window: ONE_READ,
        ..NetConfig::default()
    };
    net.link.min_segment = MIN_SEGMENT;
    let mut agents = Agents::new(5, n, net, h2).unwrap();
    let data = bytes(500, BULK);
    let writer = vec![
        Step::Write(data.clone()),
        Step::Shutdown,
        Step::AwaitEof,
        Step::Close,
    ];
    let reader = vec![Step::AwaitEof, Step::Shutdown, Step::Close];
    let port = warren_sim::agents::SERVICE_PORT;
    let (c, s) = if server_sends {
        let s = agents.serve_peer(to, Peer::listen(port, writer));
        let c = agents.dial_peer(
            from,
            Peer::dial(Agents::tunnel(to), reader).reading_every(READ_EVERY),
        );
        (c, s)
    } else {
        let s = agents.serve_peer(to, Peer::listen(port, reader).reading_every(READ_EVERY));
        let c = agents.dial_peer(from, Peer::dial(Agents::tunnel(to), writer));
        (c, s)
    };
    let (w, r) = if server_sends { (s, c) } else { (c, s) };
    let node_bound = WINDOW + ONE_READ + FRAMING;
    // Between the applications: the two loopback pipes (one read each),
    // the node-to-node pipe, and what the nodes hold.
    let flight_bound = 3 * ONE_READ + 2 * node_bound;
    let (mut node_peak, mut flight_peak, mut checks) = (0, 0, 0u64);
    agents.run_checked(120 * SECOND, MAX_STEPS, |a| {
        for i in 0..a.len() {
            let held = a.node(i).node().held_bytes();
            assert!(
                held <= node_bound,
                "agent {i} holds {held} B > {node_bound}"
            );
            node_peak = node_peak.max(held);
        }
        let flight = a.peer(w).written as usize - a.peer(r).received.len();
        assert!(
            flight <= flight_bound,
            "{flight} B in flight > {flight_bound}"
        );
        flight_peak = flight_peak.max(flight);
        checks += 1;
    });
    let (w, r) = (agents.peer(w), agents.peer(r));
    assert!(r.received == data && r.eof, "everything arrived, in order");
    assert!(w.script_done() && r.script_done());
    // The reader was slow enough to fill the window: the bound was tested.
    assert!(node_peak >= WINDOW / 2, "peak held {node_peak} B");
    assert!(flight_peak >= WINDOW, "peak in flight {flight_peak} B");
    assert!(r.reads >= (BULK / ONE_READ) as u64, "{} reads", r.reads);
    assert!(checks > 1000, "checked at every one of {checks} steps");
    println!("peaks: node {node_peak} B of {node_bound}, in flight {flight_peak} B of {flight_bound}, {checks} steps");
    assert_no_flows_left(&agents);
}

#[test]
fn a_slow_server_bounds_what_two_agents_hold_either_way() {
    slow_reader(2, 0, 1, false);
    slow_reader(2, 1, 0, false);
}

#[test]
fn a_slow_client_bounds_what_two_agents_hold_either_way() {
    slow_reader(2, 0, 1, true);
    slow_reader(2, 1, 0, true);
}

#[test]
fn a_slow_reader_bounds_what_three_agents_hold() {
    slow_reader(3, 0, 2, false);
    slow_reader(3, 2, 1, true);
}
