//! The knobs of the simulated network, with defaults close to a LAN.

use core::time::Duration;

/// How one directed link between two hosts behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// One-way propagation delay of every packet.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per packet. Jitter
    /// never reorders bytes of one connection: an arrival is never
    /// scheduled before the previous one of the same direction.
    pub jitter: Duration,
    /// Bytes per second the link carries, shared by every connection on
    /// it; 0 means unlimited.
    pub bandwidth: u64,
    /// Smallest segment the sender cuts (fewer if fewer bytes are queued).
    pub min_segment: usize,
    /// Largest segment the sender cuts; sizes are drawn in between, so
    /// write boundaries are split and merged at random.
    pub max_segment: usize,
    /// A write waits up to this long (drawn at random) before its first
    /// segment leaves, so that writes close together merge like Nagle's
    /// algorithm would merge them.
    pub coalesce: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_micros(500),
            jitter: Duration::from_micros(100),
            bandwidth: 1_250_000_000,
            min_segment: 1,
            max_segment: 64 * 1024,
            coalesce: Duration::from_micros(50),
        }
    }
}

/// Settings of the whole network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Every link not configured on its own.
    pub link: LinkConfig,
    /// Per direction of a connection: bytes written and not yet handed to
    /// the reader (send buffer + in flight + receive buffer). A paused
    /// reader makes `write` return less once this is full.
    pub window: usize,
    /// Delay before the first SYN retransmission; it doubles each time.
    pub syn_retry: Duration,
    /// A connect that got no answer by then fails with `TimedOut`.
    pub connect_timeout: Duration,
    /// Connections (in any state) the network holds at once; `connect`
    /// fails beyond it.
    pub max_connections: usize,
    /// How many recent trace records to keep for reading (the hash always
    /// covers all of them).
    pub trace_keep: usize,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            link: LinkConfig::default(),
            window: 256 * 1024,
            syn_retry: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(20),
            max_connections: 65_536,
            trace_keep: 0,
        }
    }
}
