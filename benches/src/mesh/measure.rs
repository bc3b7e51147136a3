//! The measurements, each driving one path with std sockets and threads
//! from this process: bulk throughput with the relay's CPU, flow setup
//! latency and rate, and the relay's memory per idle and per busy flow.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::peers::Relay;
use super::procs::{tree_cpu, tree_rss};
use super::target::{TargetServer, CHUNK, MODE_ECHO, MODE_SINK};

/// Throughput of some parallel bulk flows through a path, and the relay's CPU.
pub struct Throughput {
    /// Payload Gbit/s counted at the target server.
    pub gbps: f64,
    /// Relay CPU (100 = one core) per Gbit/s; None for direct TCP.
    pub core_per_gbps: Option<f64>,
}

impl Throughput {
    /// The throughput of `windows` pooled: all their bytes over all their
    /// time, and all the relay's CPU time over it (None if a window had none).
    pub fn of(windows: &[Window]) -> Throughput {
        let bytes: u64 = windows.iter().map(|w| w.bytes).sum();
        let secs: f64 = windows.iter().map(|w| w.secs).sum();
        let cpu_s: Option<f64> = windows.iter().map(|w| w.cpu_s).sum();
        let gbps = if secs > 0.0 {
            bytes as f64 * 8.0 / secs / 1e9
        } else {
            0.0
        };
        Throughput {
            gbps,
            core_per_gbps: cpu_s
                .filter(|_| gbps > 0.0)
                .map(|cpu| 100.0 * cpu / secs / gbps),
        }
    }
}

/// What one bulk window counted, kept raw so that the windows of several
/// interleaved rounds can be pooled into one row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Payload bytes the target server received in the window.
    pub bytes: u64,
    /// The window's length.
    pub secs: f64,
    /// The relay trees' CPU seconds in the window; None without a relay.
    pub cpu_s: Option<f64>,
}

/// Runs `flows` parallel bulk flows for `warmup` + `window`; counts the window.
pub fn throughput(
    path: &Relay,
    flows: usize,
    target: &TargetServer,
    span: (Duration, Duration),
) -> io::Result<Throughput> {
    bulk_window(path, flows, target, span).map(|w| Throughput::of(&[w]))
}

/// Runs `flows` parallel bulk flows for `warmup` + `window` and returns what
/// the window counted. Returns once the target server's count stopped
/// moving, so the next window counts none of these flows' bytes.
pub fn bulk_window(
    path: &Relay,
    flows: usize,
    target: &TargetServer,
    (warmup, window): (Duration, Duration),
) -> io::Result<Window> {
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
        tree_cpu(&roots),
        Instant::now(),
    );
    thread::sleep(window);
    let (b1, c1, secs) = (
        target.received.load(Ordering::Relaxed),
        tree_cpu(&roots),
        t0.elapsed().as_secs_f64(),
    );
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    settle(&target.received);
    Ok(Window {
        bytes: b1.saturating_sub(b0),
        secs,
        cpu_s: c0.zip(c1).map(|(c0, c1)| c1.since(&c0)),
    })
}

/// Waits (at most 0.5 s) until `count` is the same twice 5 ms apart: the
/// bytes the stopped flows left in the relay have arrived.
fn settle(count: &AtomicU64) {
    let t0 = Instant::now();
    let mut last = count.load(Ordering::Relaxed);
    while t0.elapsed() < Duration::from_millis(500) {
        thread::sleep(Duration::from_millis(5));
        let now = count.load(Ordering::Relaxed);
        if now == last {
            return;
        }
        last = now;
    }
}

/// Flow setup: connect → first echoed byte, one flow after another.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setup {
    /// Median, µs.
    pub p50: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// Flows set up per second, one at a time: samples / their summed time
    /// (pauses between flows not counted).
    pub per_s: f64,
}

impl Setup {
    /// The figures of some setup times (µs); NaN where there is none.
    pub fn of(samples: &[f64]) -> Setup {
        let mut v = samples.to_vec();
        v.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        let total_us: f64 = v.iter().sum();
        Setup {
            p50: pick(0.5),
            p99: pick(0.99),
            per_s: v.len() as f64 / total_us * 1e6,
        }
    }
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
    setup_flow(path)?;
    Ok(Setup::of(&setup_samples(path, n, budget, pause)?))
}

/// One flow: connect, send the echo mode byte, read the first byte back,
/// close; returns the time from connect to that byte.
pub fn setup_flow(path: &Relay) -> io::Result<Duration> {
    let t = Instant::now();
    let mut conn = TcpStream::connect(path.entry)?;
    conn.set_nodelay(true)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(&[MODE_ECHO])?;
    conn.read_exact(&mut [0u8; 1])?;
    let d = t.elapsed();
    drop(conn);
    Ok(d)
}

/// Times up to `n` flows within `budget` (µs each), each after `pause`
/// if given.
pub fn setup_samples(
    path: &Relay,
    n: usize,
    budget: Duration,
    pause: Option<Duration>,
) -> io::Result<Vec<f64>> {
    let mut v: Vec<f64> = Vec::with_capacity(n);
    let t0 = Instant::now();
    while v.len() < n && t0.elapsed() < budget {
        if let Some(p) = pause {
            thread::sleep(p);
        }
        v.push(setup_flow(path)?.as_secs_f64() * 1e6);
    }
    Ok(v)
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
    /// after the writes, with the echoes in flight (the last count only).
    pub busy_kib: Option<f64>,
    /// KiB per flow once every echo was read back and the flows sit idle
    /// again: what a flow keeps after traffic (the last count only).
    pub after_kib: Option<f64>,
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
/// `max_flows`, within `budget`, `batch` at a time) and measures the relay
/// tree's RSS growth per idle flow at each; then, with the most flows,
/// while every flow moves [`BUSY_BYTES`] each way and idle again after
/// that. (Busy rounds come last: memory a flow keeps after traffic would
/// count as idle growth of the next count.)
/// Run on a fresh relay: after bulk runs the allocator would hand new
/// flows memory freed by them and the growth would read ~0.
pub fn memory(
    path: &Relay,
    counts: &[usize],
    max_flows: usize,
    budget: Duration,
    batch: usize,
) -> Memory {
    let mut out = Memory::default();
    let roots = path.roots();
    // One flow first, so warren's pooled HBONE connection is not counted per flow.
    let warm = match open_flows(path, 1).and_then(|mut v| v.pop().ok_or(ErrorKind::Other.into())) {
        Ok(c) => c,
        Err(e) => {
            out.cut = Some(format!("first flow failed: {e}"));
            return out;
        }
    };
    let before = steady_rss(&roots);
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
                out.cut = Some(format!(
                    "time budget ({:.1} s) ran out",
                    budget.as_secs_f64()
                ));
                break;
            }
            match open_flows(path, batch.max(1).min(want - flows.len())) {
                Ok(more) => flows.extend(more),
                Err(e) => {
                    out.cut = Some(format!("flow {} failed: {e}", flows.len() + 1));
                    break;
                }
            }
        }
        if flows.is_empty() {
            break;
        }
        eprintln!(
            "#   memory: {} flows open after {:.1} s",
            flows.len(),
            t0.elapsed().as_secs_f64()
        );
        out.points.push(MemoryAt {
            asked,
            flows: flows.len(),
            idle_kib: per_flow(steady_rss(&roots), flows.len()),
            busy_kib: None,
            after_kib: None,
        });
        if out.cut.is_some() {
            break;
        }
    }
    if let Some(last) = out.points.last_mut() {
        let busy = busy_round(&mut flows, &roots);
        eprintln!(
            "#   memory: busy round done after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        match busy {
            Ok((busy, after)) => {
                last.busy_kib = Some(per_flow(busy, flows.len()));
                last.after_kib = Some(per_flow(after, flows.len()));
            }
            Err(e) => out.cut = Some(format!("busy round failed: {e}")),
        }
    }
    drop(warm);
    drop(flows);
    eprintln!(
        "#   memory: flows closed after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    out
}

/// Opens `n` echo flows through `path` at once: connects them all, sends
/// each its mode byte, then reads each one's first echoed byte, so the
/// relay sets them up concurrently (one by one, 10k flows took ~10 s).
fn open_flows(path: &Relay, n: usize) -> io::Result<Vec<TcpStream>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let conn = TcpStream::connect(path.entry)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        conn.set_write_timeout(Some(Duration::from_secs(10)))?;
        conns.push(conn);
    }
    for c in conns.iter_mut() {
        c.write_all(&[MODE_ECHO])?;
    }
    for c in conns.iter_mut() {
        c.read_exact(&mut [0u8; 1])?;
    }
    Ok(conns)
}

/// The relay tree's RSS once it stops moving: read every 10 ms until two
/// reads agree, at most 200 ms (the fixed 200 ms wait this replaces was a
/// guess; the flows were already set up or echoed when it began).
fn steady_rss(roots: &[u32]) -> u64 {
    let t0 = Instant::now();
    let mut last = tree_rss(roots);
    while t0.elapsed() < Duration::from_millis(200) {
        thread::sleep(Duration::from_millis(10));
        let now = tree_rss(roots);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// How long the flows sit with no traffic before the "idle after busy"
/// RSS is read: idle means idle for a moment, not the instant the last
/// echo was read. A warren agent gives its freed heap back after 100 ms
/// without reads (host's `heap_trim`); the other relays are read the same
/// way.
const IDLE_AFTER_BUSY: Duration = Duration::from_millis(300);

/// Writes [`BUSY_BYTES`] on every flow, then reads every echo back; returns
/// the RSS with the echoes in flight and once the flows were idle for
/// [`IDLE_AFTER_BUSY`].
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
    thread::sleep(IDLE_AFTER_BUSY);
    Ok((in_flight, steady_rss(roots)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_windows_are_all_bytes_over_all_time_and_all_cpu_over_it() {
        // 10 Gbit/s for 1 s and 2 Gbit/s for 2 s: 1.75 GB in 3 s = 4.67
        // Gbit/s, weighted by time (not the mean of the two, 6).
        let w = |bytes: u64, secs: f64, cpu: f64| Window {
            bytes,
            secs,
            cpu_s: Some(cpu),
        };
        let t = Throughput::of(&[w(1_250_000_000, 1.0, 0.5), w(500_000_000, 2.0, 0.4)]);
        assert!(
            (t.gbps - 1.75e9 * 8.0 / 3.0 / 1e9).abs() < 1e-9,
            "{}",
            t.gbps
        );
        let core = 100.0 * 0.9 / 3.0;
        assert!((t.core_per_gbps.unwrap() - core / t.gbps).abs() < 1e-9);
        // One window without a relay's CPU: no CPU figure for the pool.
        let direct = Throughput::of(&[
            w(1_000, 1.0, 0.1),
            Window {
                bytes: 1_000,
                secs: 1.0,
                cpu_s: None,
            },
        ]);
        assert_eq!(direct.core_per_gbps, None);
        assert_eq!(Throughput::of(&[]).gbps, 0.0);
    }

    #[test]
    fn setup_figures_are_order_statistics_and_count_over_summed_time() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Setup::of(&samples);
        assert_eq!((s.p50, s.p99), (50.0, 99.0));
        // 100 flows in 5050 µs.
        assert!((s.per_s - 100.0 / 5050e-6).abs() < 1e-6);
        assert!(Setup::of(&[]).p50.is_nan());
    }
}
