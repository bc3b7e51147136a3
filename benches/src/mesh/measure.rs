//! The measurements, each driving one path with std sockets and threads
//! from this process: bulk throughput with the relay's CPU, flow setup
//! latency and rate, and the relay's memory per idle and per busy flow.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::peers::Relay;
use super::procs::{tree_rss, tree_ticks};
use super::target::{TargetServer, CHUNK, MODE_ECHO, MODE_SINK};

/// Throughput of some parallel bulk flows through a path, and the relay's CPU.
pub struct Throughput {
    /// Payload Gbit/s counted at the target server.
    pub gbps: f64,
    /// Relay CPU (100 = one core) per Gbit/s; None for direct TCP.
    pub core_per_gbps: Option<f64>,
}

/// Runs `flows` parallel bulk flows for `warmup` + `window`; counts the window.
pub fn throughput(
    path: &Relay,
    flows: usize,
    target: &TargetServer,
    (warmup, window): (Duration, Duration),
    hz: f64,
) -> io::Result<Throughput> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..flows {
        let mut conn = TcpStream::connect(path.entry)?;
        conn.set_nodelay(true)?;
        conn.set_write_timeout(Some(Duration::from_secs(10)))?;
        let stop = Arc::clone(&stop);
        clients.push(thread::spawn(move || {
            let mut buf = vec![0x5a; CHUNK];
            buf[0] = MODE_SINK;
            if conn.write_all(&buf).is_err() {
                return;
            }
            buf[0] = 0x5a;
            while !stop.load(Ordering::Relaxed) {
                if conn.write_all(&buf).is_err() {
                    return;
                }
            }
            let _ = conn.shutdown(Shutdown::Both);
        }));
    }
    let roots = path.roots();
    thread::sleep(warmup);
    let (b0, c0, t0) = (
        target.received.load(Ordering::Relaxed),
        tree_ticks(&roots),
        Instant::now(),
    );
    thread::sleep(window);
    let (b1, c1, secs) = (
        target.received.load(Ordering::Relaxed),
        tree_ticks(&roots),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let gbps = b1.saturating_sub(b0) as f64 * 8.0 / secs / 1e9;
    let core = 100.0 * c1.saturating_sub(c0) as f64 / hz / secs;
    Ok(Throughput {
        gbps,
        core_per_gbps: (!roots.is_empty() && gbps > 0.0).then(|| core / gbps),
    })
}

/// Flow setup: connect → first echoed byte, one flow after another.
pub struct Setup {
    /// Median, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// Flows set up per second, one at a time: samples / their summed time
    /// (pauses between flows not counted).
    pub per_s: f64,
}

/// Times up to `n` flows within `budget`, after one warm-up flow. With
/// `pause`, waits that long between flows (not timed), so a pool can drop
/// its connection and each flow pays a new handshake.
pub fn setup(
    path: &Relay,
    n: usize,
    budget: Duration,
    pause: Option<Duration>,
) -> io::Result<Setup> {
    let one = || -> io::Result<Duration> {
        let t = Instant::now();
        let mut conn = TcpStream::connect(path.entry)?;
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        conn.write_all(&[MODE_ECHO])?;
        conn.read_exact(&mut [0u8; 1])?;
        let d = t.elapsed();
        drop(conn);
        Ok(d)
    };
    one()?;
    let mut v: Vec<f64> = Vec::with_capacity(n);
    let t0 = Instant::now();
    while v.len() < n && t0.elapsed() < budget {
        if let Some(p) = pause {
            thread::sleep(p);
        }
        v.push(one()?.as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let total_us: f64 = v.iter().sum();
    Ok(Setup {
        p50: pick(0.5),
        p99: pick(0.99),
        per_s: v.len() as f64 / total_us * 1e6,
    })
}

/// The relay's RSS growth per flow with some flows open.
#[derive(Clone, Debug)]
pub struct MemoryAt {
    /// The flow count asked for.
    pub asked: usize,
    /// Flows actually open (fewer when the fd limit or the time budget cut
    /// the run short; see [`Memory::cut`]).
    pub flows: usize,
    /// KiB per flow, every flow idle after echoing one byte.
    pub idle_kib: f64,
    /// KiB per flow with every flow echoing [`BUSY_BYTES`] at once, sampled
    /// after the writes, with the echoes in flight.
    pub busy_kib: f64,
    /// KiB per flow once every echo was read back and the flows sit idle
    /// again: what a flow keeps after traffic.
    pub after_kib: f64,
}

/// What [`memory`] found.
#[derive(Debug, Default)]
pub struct Memory {
    /// One entry per flow count reached.
    pub points: Vec<MemoryAt>,
    /// Why the run stopped short of the last count, if it did.
    pub cut: Option<String>,
}

/// Bytes each flow echoes for the busy figure.
pub const BUSY_BYTES: usize = 64 * 1024;

/// Opens flows through `path` up to each of `counts` (ascending, at most
/// `max_flows`, within `budget`); at each, measures the relay tree's RSS
/// growth per flow idle, with every flow moving [`BUSY_BYTES`] each way,
/// and idle again after that.
/// Run on a fresh relay: after bulk runs the allocator would hand new
/// flows memory freed by them and the growth would read ~0.
pub fn memory(path: &Relay, counts: &[usize], max_flows: usize, budget: Duration) -> Memory {
    let mut out = Memory::default();
    let roots = path.roots();
    // One flow first, so warren's pooled HBONE connection is not counted per flow.
    let open = || -> io::Result<TcpStream> {
        let mut conn = TcpStream::connect(path.entry)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        conn.set_write_timeout(Some(Duration::from_secs(10)))?;
        conn.write_all(&[MODE_ECHO])?;
        conn.read_exact(&mut [0u8; 1])?;
        Ok(conn)
    };
    let warm = match open() {
        Ok(c) => c,
        Err(e) => {
            out.cut = Some(format!("first flow failed: {e}"));
            return out;
        }
    };
    let before = tree_rss(&roots);
    let per_flow = |rss: u64, n: usize| rss.saturating_sub(before) as f64 / n as f64 / 1024.0;
    let t0 = Instant::now();
    let mut flows: Vec<TcpStream> = Vec::new();
    for &asked in counts {
        let want = asked.min(max_flows);
        if want < asked {
            out.cut = Some(format!(
                "open-file limit: {max_flows} flows at most (2 sockets per flow in this process and in the relay)"
            ));
        }
        while flows.len() < want {
            if t0.elapsed() > budget {
                out.cut = Some(format!("time budget ({} s) ran out", budget.as_secs()));
                break;
            }
            match open() {
                Ok(c) => flows.push(c),
                Err(e) => {
                    out.cut = Some(format!("flow {} failed: {e}", flows.len() + 1));
                    break;
                }
            }
        }
        if flows.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(200));
        let idle = tree_rss(&roots);
        let (busy, after) = match busy_round(&mut flows, &roots) {
            Ok(samples) => samples,
            Err(e) => {
                out.cut = Some(format!("busy round failed: {e}"));
                break;
            }
        };
        out.points.push(MemoryAt {
            asked,
            flows: flows.len(),
            idle_kib: per_flow(idle, flows.len()),
            busy_kib: per_flow(busy, flows.len()),
            after_kib: per_flow(after, flows.len()),
        });
        if out.cut.is_some() {
            break;
        }
    }
    drop(warm);
    out
}

/// Writes [`BUSY_BYTES`] on every flow, then reads every echo back; returns
/// the RSS with the echoes in flight and after they were read.
fn busy_round(flows: &mut [TcpStream], roots: &[u32]) -> io::Result<(u64, u64)> {
    let data = vec![0x5a; BUSY_BYTES];
    for c in flows.iter_mut() {
        c.write_all(&data)?;
    }
    let in_flight = tree_rss(roots);
    let mut back = vec![0; BUSY_BYTES];
    for c in flows.iter_mut() {
        c.read_exact(&mut back)?;
    }
    thread::sleep(Duration::from_millis(200));
    Ok((in_flight, tree_rss(roots)))
}
