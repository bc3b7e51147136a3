//! The outbound HBONE connection pool: which connection carries a new flow.
//!
//! Connections are pooled per [`PoolKey`] (source identity, destination
//! node, destination identity) and carry many streams. A new connection is
//! opened when every existing one for the key is at its stream limit or
//! going away, or when the only ones with room are *congested*. Idle
//! connections are closed after a configurable time.
//!
//! Congestion (head-of-line blocking, issue 8): all streams of a connection
//! share its connection-level send window. Receivers that stop reading
//! hold their streams' windows, and a few of them can hold the whole
//! connection window, so every other stream on it stalls. The node reports
//! each connection's send window ([`Pool::send_window`]); a connection
//! whose window fell below what a new stream could send is congested, and
//! new flows go to another connection to the same key, opened if needed,
//! while the key has fewer than
//! [`PoolConfig::max_connections_per_endpoint`]. The memory bound stays: no
//! window grows. Flows already on a congested connection stay there (an
//! HTTP/2 stream cannot move). The connection takes new flows again once
//! its window recovered. When that new connection cannot be had (the dial
//! fails at once, or its connect or handshake fails), its flows fall back
//! to the least congested connection with room ([`Pool::fallback`])
//! instead of being refused.
//!
//! Each key remembers the stream limit its peer last announced
//! (SETTINGS_MAX_CONCURRENT_STREAMS), so flows waiting on the next new
//! connection to it do not pile up beyond that limit; the memory is kept
//! for at most [`REMEMBERED_ENDPOINTS`] keys without connections.
//!
//! The pool is bookkeeping only: it never sees bytes. The node tells it
//! what happened to each connection (ready, stream opened/closed, GOAWAY,
//! failed, send window) and asks it where a flow should go.

use core::time::Duration;
use std::collections::BTreeMap;

use crate::identity::SpiffeId;
use crate::time::Instant;

/// A pooled connection's id, allocated by the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

/// What a connection is shared by: flows from one local identity to one
/// remote node that must present one identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolKey {
    /// Our identity, presented as the TLS client certificate.
    pub source: SpiffeId,
    /// The remote node's HBONE address (`ip:port`).
    pub node: String,
    /// The identity the remote node must prove.
    pub destination: SpiffeId,
}

/// Keys without connections whose peer's stream limit is still
/// remembered, at most; past it the least recently used is forgotten.
pub const REMEMBERED_ENDPOINTS: usize = 1024;

/// Pool settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Streams assumed available on a connection whose peer SETTINGS have
    /// not arrived yet, when the key's peer never announced a limit (RFC
    /// 9113 leaves the initial limit unbounded; 100 is the value RFC 9113
    /// §6.5.2 recommends peers allow at least).
    pub assumed_max_streams: u32,
    /// Close a connection that has carried no stream for this long.
    pub idle_timeout: Duration,
    /// Connections one key may have while new flows spread away from
    /// congested ones (default 4; 1 turns spreading off). Connections
    /// opened because every other one reached its stream limit are not
    /// bounded by it: the peer's stream limit decides those.
    pub max_connections_per_endpoint: u32,
    /// A connection whose connection-level send window is below this many
    /// bytes, and below what a new stream's own window would let it send,
    /// is congested (default 1 MiB). It takes new flows again once the
    /// window is back to twice that (or to the most it ever was, for a
    /// peer whose window is smaller).
    pub congestion_window: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            assumed_max_streams: 100,
            idle_timeout: Duration::from_secs(60),
            max_connections_per_endpoint: 4,
            congestion_window: 1 << 20,
        }
    }
}

/// Where a new flow should go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checkout {
    /// An established connection with a free stream: open the stream now.
    Ready(ConnId),
    /// A connection still in its handshake will have room: wait for it.
    Pending(ConnId),
    /// No connection can take the flow: open a new one and [`Pool::insert`] it.
    NeedConnection,
}

/// A connection's congestion changed (see [`Pool::send_window`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Congestion {
    /// Its send window fell below the threshold: new flows go elsewhere.
    Congested,
    /// Its send window recovered: it takes new flows again.
    Recovered,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConnState {
    Handshaking,
    Ready,
    GoingAway,
}

#[derive(Clone, Debug)]
struct Entry {
    key: PoolKey,
    state: ConnState,
    max_streams: u32,
    /// Streams open plus flows waiting for the handshake: both hold a slot.
    claimed: u32,
    idle_since: Option<Instant>,
    /// The connection window, not its streams', holds back what it sends.
    congested: bool,
    /// The largest send window reported (recovery cannot ask for more).
    peak_window: i64,
    /// The send window last reported: how congested it is (a fallback
    /// picks the largest).
    window: i64,
}

impl Entry {
    fn has_room(&self) -> bool {
        self.state != ConnState::GoingAway && self.claimed < self.max_streams
    }
}

/// One key's connections and what its peer told us.
#[derive(Clone, Debug, Default)]
struct KeyState {
    /// Its connections, oldest first.
    conns: Vec<ConnId>,
    /// The stream limit its peer last announced, if one did.
    peer_max_streams: Option<u32>,
    /// When it was last used, in pool operations (for forgetting).
    last_use: u64,
}

/// The pool. Ordered maps keep every decision deterministic.
#[derive(Debug, Default)]
pub struct Pool {
    config: PoolConfig,
    entries: BTreeMap<ConnId, Entry>,
    keys: BTreeMap<PoolKey, KeyState>,
    /// Counts uses of keys, the clock of [`KeyState::last_use`].
    uses: u64,
}

impl Pool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            entries: BTreeMap::new(),
            keys: BTreeMap::new(),
            uses: 0,
        }
    }

    /// Chooses a connection for a new flow to `key` and claims a stream slot
    /// on it. Prefers established connections that are not congested,
    /// oldest first (so that newer ones drain and idle out), then
    /// handshaking ones. When only congested connections have room, the
    /// flow gets a new connection while the key has fewer than
    /// [`PoolConfig::max_connections_per_endpoint`], else the oldest
    /// congested one (it waits there for the window).
    pub fn checkout(&mut self, key: &PoolKey) -> Checkout {
        self.uses += 1;
        let Some(state) = self.keys.get_mut(key) else {
            return Checkout::NeedConnection;
        };
        state.last_use = self.uses;
        let entries = &self.entries;
        let find = |wanted: &dyn Fn(&Entry) -> bool| {
            state
                .conns
                .iter()
                .copied()
                .find(|id| entries.get(id).is_some_and(|e| e.has_room() && wanted(e)))
        };
        let may_spread = state.conns.len() < self.config.max_connections_per_endpoint as usize;
        let choice = find(&|e| e.state == ConnState::Ready && !e.congested)
            .map(Checkout::Ready)
            .or_else(|| find(&|e| e.state == ConnState::Handshaking).map(Checkout::Pending))
            .or_else(|| {
                let congested = find(&|e| e.state == ConnState::Ready);
                congested.filter(|_| !may_spread).map(Checkout::Ready)
            });
        let Some(outcome) = choice else {
            return Checkout::NeedConnection;
        };
        if let Checkout::Ready(id) | Checkout::Pending(id) = outcome {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.claimed += 1;
                entry.idle_since = None;
            }
        }
        outcome
    }

    /// Chooses a connection for a flow to `key` whose new connection
    /// could not be had: the dial failed at once, or the connection failed
    /// before it came up. [`Pool::checkout`] would ask for another one;
    /// this never does. In order: an established connection that is not
    /// congested (oldest first), one still in its handshake, then the
    /// least congested established one (the largest send window last
    /// reported; the oldest of equals), so that a flow is refused only
    /// when no connection to the key has room. Claims a stream slot on
    /// the one chosen; `None` (nothing claimed) when none has room.
    pub fn fallback(&mut self, key: &PoolKey) -> Option<Checkout> {
        self.uses += 1;
        let state = self.keys.get_mut(key)?;
        state.last_use = self.uses;
        let roomy = || {
            state
                .conns
                .iter()
                .filter_map(|id| self.entries.get(id).map(|e| (*id, e)))
                .filter(|(_, e)| e.has_room())
        };
        let clear = roomy().find(|(_, e)| e.state == ConnState::Ready && !e.congested);
        let outcome = clear
            .map(|(id, _)| Checkout::Ready(id))
            .or_else(|| {
                roomy()
                    .find(|(_, e)| e.state == ConnState::Handshaking)
                    .map(|(id, _)| Checkout::Pending(id))
            })
            .or_else(|| {
                // `min_by_key` keeps the first (oldest) of equals.
                roomy()
                    .filter(|(_, e)| e.state == ConnState::Ready)
                    .min_by_key(|(_, e)| core::cmp::Reverse(e.window))
                    .map(|(id, _)| Checkout::Ready(id))
            })?;
        if let Checkout::Ready(id) | Checkout::Pending(id) = outcome {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.claimed += 1;
                entry.idle_since = None;
            }
        }
        Some(outcome)
    }

    /// Registers a connection the node just started for `key`, with one slot
    /// claimed for the flow that asked for it. Until its peer's SETTINGS
    /// arrive it is assumed to allow what the key's peer last announced,
    /// or [`PoolConfig::assumed_max_streams`] if it never did.
    pub fn insert(&mut self, id: ConnId, key: PoolKey) {
        debug_assert!(!self.entries.contains_key(&id), "connection id reused");
        self.uses += 1;
        let state = self.keys.entry(key.clone()).or_default();
        state.conns.push(id);
        state.last_use = self.uses;
        let max_streams = state
            .peer_max_streams
            .unwrap_or(self.config.assumed_max_streams);
        self.entries.insert(
            id,
            Entry {
                key,
                state: ConnState::Handshaking,
                max_streams,
                claimed: 1,
                idle_since: None,
                congested: false,
                peak_window: 0,
                window: 0,
            },
        );
    }

    /// Forgets the least recently used keys without connections until at
    /// most `keep` of them are left.
    fn forget_stale_keys(&mut self, keep: usize) {
        loop {
            let idle = self.keys.values().filter(|k| k.conns.is_empty()).count();
            if idle <= keep {
                return;
            }
            let stalest = self
                .keys
                .iter()
                .filter(|(_, k)| k.conns.is_empty())
                .min_by_key(|(_, k)| k.last_use)
                .map(|(key, _)| key.clone());
            match stalest {
                Some(key) => self.keys.remove(&key),
                None => return,
            };
        }
    }

    /// The connection finished its handshake and the peer allows
    /// `max_streams` concurrent streams (its SETTINGS_MAX_CONCURRENT_STREAMS,
    /// `u32::MAX` if it announced none). The key remembers the limit for
    /// its next connections, clamped to 1 (a peer that allows 0 now may
    /// allow more later, and a new connection must carry its opener) and
    /// to [`PoolConfig::assumed_max_streams`] (a peer that announced no
    /// limit, `u32::MAX`, must not lift the bound on flows waiting on a
    /// handshake).
    pub fn ready(&mut self, id: ConnId, max_streams: u32) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        if entry.state == ConnState::Handshaking {
            entry.state = ConnState::Ready;
        }
        entry.max_streams = max_streams;
        if let Some(state) = self.keys.get_mut(&entry.key) {
            state.peer_max_streams =
                Some(max_streams.clamp(1, self.config.assumed_max_streams.max(1)));
        }
    }

    /// Reports `id`'s connection-level send `window` and the send window
    /// a stream opened on it now would start with (`stream_window`).
    /// Returns the change, if this report changed whether `id` is
    /// congested (edge-triggered: one report per change).
    ///
    /// Congested: the window is below [`PoolConfig::congestion_window`],
    /// below `stream_window` (so the connection window, not a new stream's
    /// own, is what holds it back) and below a quarter of the most it ever
    /// was. Recovered: the window is back to twice that limit.
    ///
    /// Why the quarter: a receiver sends WINDOW_UPDATE once half of its
    /// window is unreleased, so an idle connection's window rests anywhere
    /// above half of its peak. Both thresholds stay below that, so a peer
    /// granting less than `congestion_window` neither flaps (congested at
    /// rest, recovered on the next report) nor sticks congested with
    /// nothing in flight.
    pub fn send_window(
        &mut self,
        id: ConnId,
        window: i64,
        stream_window: u32,
    ) -> Option<Congestion> {
        // A handshaking connection has sent nothing: its window says
        // nothing yet.
        let entry = self
            .entries
            .get_mut(&id)
            .filter(|e| e.state != ConnState::Handshaking)?;
        entry.peak_window = entry.peak_window.max(window);
        entry.window = window;
        let limit =
            i64::from(self.config.congestion_window.min(stream_window)).min(entry.peak_window / 4);
        if !entry.congested && window < limit {
            entry.congested = true;
            return Some(Congestion::Congested);
        }
        let recovered_at = limit.saturating_mul(2);
        if entry.congested && window >= recovered_at {
            entry.congested = false;
            return Some(Congestion::Recovered);
        }
        None
    }

    /// Whether `id` is congested now.
    pub fn is_congested(&self, id: ConnId) -> bool {
        self.entries.get(&id).is_some_and(|e| e.congested)
    }

    /// `id` could not open a stream with `open` streams open (the peer
    /// lowered its limit, or the connection is shutting down): no new flow
    /// goes to it until its claimed slots drop below both `open` and the
    /// slots claimed now. Taking the smaller keeps the connection from
    /// being offered again at once even when fewer slots are claimed than
    /// streams are open.
    pub fn refused_stream(&mut self, id: ConnId, open: u32) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.max_streams = open.min(entry.claimed);
        }
    }

    /// A flow that held a slot on `id` ended (or gave up waiting).
    pub fn release(&mut self, id: ConnId, now: Instant) {
        if let Some(entry) = self.entries.get_mut(&id) {
            debug_assert!(entry.claimed > 0, "release without claim");
            entry.claimed = entry.claimed.saturating_sub(1);
            if entry.claimed == 0 {
                entry.idle_since = Some(now);
            }
        }
    }

    /// The connection received or sent GOAWAY: no new flows go to it.
    pub fn going_away(&mut self, id: ConnId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.state = ConnState::GoingAway;
        }
    }

    /// The connection is gone (closed, failed handshake, reset). Returns the
    /// number of slots that were still claimed: the flows that must fail or
    /// be retried.
    pub fn remove(&mut self, id: ConnId) -> u32 {
        let Some(entry) = self.entries.remove(&id) else {
            return 0;
        };
        // The key stays (with its peer's stream limit), unless it makes one
        // key without connections too many.
        if let Some(state) = self.keys.get_mut(&entry.key) {
            state.conns.retain(|other| *other != id);
            if state.conns.is_empty() {
                self.forget_stale_keys(REMEMBERED_ENDPOINTS);
            }
        }
        entry.claimed
    }

    /// Injected bug (`sim-bugs`): the connection no longer counts as idle,
    /// so it stays in the pool after its idle GOAWAY.
    #[cfg(feature = "sim-bugs")]
    pub fn forget_idle(&mut self, id: ConnId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.idle_since = None;
        }
    }

    /// Connections idle for at least the idle timeout at `now`, oldest id
    /// first. The node closes them and then calls [`Pool::remove`].
    pub fn idle_expired(&self, now: Instant) -> Vec<ConnId> {
        self.entries
            .iter()
            .filter(|(_, e)| {
                e.idle_since.is_some_and(|since| {
                    now.saturating_duration_since(since) >= self.config.idle_timeout
                })
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The earliest instant at which a connection becomes idle-expired.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| e.idle_since)
            .min()
            .map(|since| since + self.config.idle_timeout)
    }

    /// Connections in the pool.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the pool holds no connection.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dst: &str) -> PoolKey {
        PoolKey {
            source: SpiffeId::parse("spiffe://t.org/ns/a/sa/client").unwrap(),
            node: format!("10.0.0.{dst}:15008"),
            destination: SpiffeId::parse("spiffe://t.org/ns/b/sa/server").unwrap(),
        }
    }

    fn pool() -> Pool {
        Pool::new(PoolConfig {
            assumed_max_streams: 2,
            idle_timeout: Duration::from_secs(5),
            ..PoolConfig::default()
        })
    }

    #[test]
    fn opens_one_connection_until_its_stream_limit() {
        let mut p = pool();
        let k = key("1");
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
        p.insert(ConnId(1), k.clone());
        // One slot claimed by the opener; the second flow waits on the handshake.
        assert_eq!(p.checkout(&k), Checkout::Pending(ConnId(1)));
        // Assumed limit (2) reached: a third flow needs a new connection.
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
        p.ready(ConnId(1), 3);
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(1)));
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
    }

    #[test]
    fn keys_do_not_share_connections() {
        let mut p = pool();
        p.insert(ConnId(1), key("1"));
        p.ready(ConnId(1), 100);
        assert_eq!(p.checkout(&key("2")), Checkout::NeedConnection);
        assert_eq!(p.checkout(&key("1")), Checkout::Ready(ConnId(1)));
    }

    #[test]
    fn going_away_connection_is_never_reused() {
        let mut p = pool();
        let k = key("1");
        p.insert(ConnId(1), k.clone());
        p.ready(ConnId(1), 100);
        p.going_away(ConnId(1));
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
        p.insert(ConnId(2), k.clone());
        p.ready(ConnId(2), 100);
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(2)));
    }

    #[test]
    fn a_refused_stream_is_not_offered_again_until_a_flow_ends() {
        let mut p = pool();
        let k = key("1");
        p.insert(ConnId(1), k.clone());
        p.ready(ConnId(1), 100);
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(1)));
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(1)));
        // 3 slots claimed, but h2 says 5 streams are open and the peer
        // allows no more: the refused flow gives its slot back.
        p.release(ConnId(1), Instant::ZERO);
        p.refused_stream(ConnId(1), 5);
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
        // One flow ends: room for one again.
        p.release(ConnId(1), Instant::ZERO);
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(1)));
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
        // A limit of 0 with nothing claimed: never offered.
        p.insert(ConnId(2), key("2"));
        p.ready(ConnId(2), 100);
        p.release(ConnId(2), Instant::ZERO);
        p.refused_stream(ConnId(2), 0);
        assert_eq!(p.checkout(&key("2")), Checkout::NeedConnection);
    }

    #[test]
    fn prefers_ready_over_handshaking() {
        let mut p = pool();
        let k = key("1");
        p.insert(ConnId(1), k.clone());
        p.insert(ConnId(2), k.clone());
        p.ready(ConnId(2), 100);
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(2)));
    }

    #[test]
    fn failed_connection_reports_its_waiters() {
        let mut p = pool();
        let k = key("1");
        p.insert(ConnId(1), k.clone());
        assert_eq!(p.checkout(&k), Checkout::Pending(ConnId(1)));
        assert_eq!(p.remove(ConnId(1)), 2);
        assert!(p.is_empty());
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
    }

    #[test]
    fn idle_connections_expire_after_timeout() {
        let mut p = pool();
        let k = key("1");
        p.insert(ConnId(1), k.clone());
        p.ready(ConnId(1), 100);
        assert_eq!(p.poll_timeout(), None);
        p.release(ConnId(1), Instant::from_nanos(1_000));
        let deadline = Instant::from_nanos(1_000) + Duration::from_secs(5);
        assert_eq!(p.poll_timeout(), Some(deadline));
        assert!(p.idle_expired(Instant::from_nanos(2_000)).is_empty());
        assert_eq!(p.idle_expired(deadline), vec![ConnId(1)]);
        // A new flow makes it busy again.
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(1)));
        assert!(p.idle_expired(deadline).is_empty());
        assert_eq!(p.poll_timeout(), None);
    }

    fn spreading_pool(max_connections: u32) -> Pool {
        Pool::new(PoolConfig {
            assumed_max_streams: 100,
            idle_timeout: Duration::from_secs(5),
            max_connections_per_endpoint: max_connections,
            congestion_window: 1000,
        })
    }

    #[test]
    fn a_congested_connection_sends_new_flows_elsewhere_until_it_recovers() {
        let mut p = spreading_pool(4);
        let k = key("1");
        p.insert(ConnId(1), k.clone());
        p.ready(ConnId(1), 100);
        p.send_window(ConnId(1), 5000, 4000);
        // The stalled readers hold the connection window.
        assert_eq!(
            p.send_window(ConnId(1), 999, 4000),
            Some(Congestion::Congested)
        );
        // Edge-triggered: no second report while it stays congested.
        assert_eq!(p.send_window(ConnId(1), 0, 4000), None);
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
        p.insert(ConnId(2), k.clone());
        // The spread connection's handshake takes the next flows.
        assert_eq!(p.checkout(&k), Checkout::Pending(ConnId(2)));
        p.ready(ConnId(2), 100);
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(2)));
        // Half way back is not enough (no flapping at the threshold)...
        assert_eq!(p.send_window(ConnId(1), 1500, 4000), None);
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(2)));
        // ... twice the threshold is: the oldest connection again.
        assert_eq!(
            p.send_window(ConnId(1), 2000, 4000),
            Some(Congestion::Recovered)
        );
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(1)));
    }

    #[test]
    fn a_window_below_a_new_streams_own_is_not_congestion() {
        // A new stream could send only 500 bytes of its own: the
        // connection's 800 do not hold it back.
        let mut p = spreading_pool(4);
        let k = key("1");
        p.insert(ConnId(1), k.clone());
        p.ready(ConnId(1), 100);
        assert_eq!(p.send_window(ConnId(1), 5000, 500), None);
        assert_eq!(p.send_window(ConnId(1), 800, 500), None);
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(1)));
        assert_eq!(
            p.send_window(ConnId(1), 499, 500),
            Some(Congestion::Congested)
        );
        assert_eq!(p.send_window(ConnId(1), 999, 500), None);
        assert_eq!(
            p.send_window(ConnId(1), 1000, 500),
            Some(Congestion::Recovered)
        );
    }

    #[test]
    fn a_peer_granting_less_than_the_threshold_neither_flaps_nor_sticks() {
        // The peer's connection window is 800, under the pool's 1000.
        let mut p = spreading_pool(4);
        p.insert(ConnId(1), key("1"));
        p.ready(ConnId(1), 100);
        // At rest: not congested, report after report.
        for _ in 0..3 {
            assert_eq!(p.send_window(ConnId(1), 800, 4000), None);
        }
        // Congested below a quarter of it...
        assert_eq!(p.send_window(ConnId(1), 200, 4000), None);
        assert_eq!(
            p.send_window(ConnId(1), 199, 4000),
            Some(Congestion::Congested)
        );
        // ... and recovered at half of it, which the receiver's
        // WINDOW_UPDATEs (sent once half is unreleased) always restore.
        assert_eq!(p.send_window(ConnId(1), 399, 4000), None);
        assert_eq!(
            p.send_window(ConnId(1), 400, 4000),
            Some(Congestion::Recovered)
        );
    }

    #[test]
    fn spreading_stops_at_the_per_endpoint_limit() {
        let mut p = spreading_pool(2);
        let k = key("1");
        for id in [1, 2] {
            if id == 2 {
                assert_eq!(p.checkout(&k), Checkout::NeedConnection);
            }
            p.insert(ConnId(id), k.clone());
            p.ready(ConnId(id), 100);
            p.send_window(ConnId(id), 5000, 4000);
            p.send_window(ConnId(id), 0, 4000);
        }
        // Both congested, and the key may have no third: the oldest waits.
        assert_eq!(p.checkout(&k), Checkout::Ready(ConnId(1)));
        // A limit of 1 never spreads.
        let mut single = spreading_pool(1);
        single.insert(ConnId(1), k.clone());
        single.ready(ConnId(1), 100);
        single.send_window(ConnId(1), 5000, 4000);
        single.send_window(ConnId(1), 0, 4000);
        assert!(single.is_congested(ConnId(1)));
        assert_eq!(single.checkout(&k), Checkout::Ready(ConnId(1)));
    }

    #[test]
    fn a_spread_that_cannot_be_had_falls_back_to_the_least_congested_connection() {
        let mut p = spreading_pool(4);
        let k = key("1");
        for (id, window) in [(1, 300), (2, 700), (3, 700)] {
            p.insert(ConnId(id), k.clone());
            p.ready(ConnId(id), 2);
            p.send_window(ConnId(id), 5000, 4000);
            assert_eq!(
                p.send_window(ConnId(id), window, 4000),
                Some(Congestion::Congested)
            );
        }
        // All three congested, and a fourth may open: checkout asks for it.
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
        // Its dial fails at once (no TLS session): the largest window
        // takes the flow, the older of the two equal ones.
        assert_eq!(p.fallback(&k), Some(Checkout::Ready(ConnId(2))));
        // Connection 2 is now full (2 of 2): connection 3, then 1.
        assert_eq!(p.fallback(&k), Some(Checkout::Ready(ConnId(3))));
        assert_eq!(p.fallback(&k), Some(Checkout::Ready(ConnId(1))));
        // None has room: nothing claimed, the flow is refused.
        assert_eq!(p.fallback(&k), None);
        assert_eq!(p.remove(ConnId(1)), 2);
        // A handshaking connection with room comes before a congested one,
        // a clear one before both; a key never dialled has nothing.
        p.release(ConnId(2), Instant::ZERO);
        p.insert(ConnId(4), k.clone());
        assert_eq!(p.fallback(&k), Some(Checkout::Pending(ConnId(4))));
        p.send_window(ConnId(3), 5000, 4000);
        assert!(!p.is_congested(ConnId(3)));
        p.release(ConnId(3), Instant::ZERO);
        assert_eq!(p.fallback(&k), Some(Checkout::Ready(ConnId(3))));
        assert_eq!(p.fallback(&key("2")), None);
        // Going away is never chosen.
        p.going_away(ConnId(2));
        p.going_away(ConnId(4));
        assert_eq!(p.fallback(&k), None);
    }

    #[test]
    fn a_new_connection_assumes_the_stream_limit_its_peer_last_announced() {
        let mut p = spreading_pool(4);
        let k = key("1");
        p.insert(ConnId(1), k.clone());
        p.ready(ConnId(1), 2);
        p.release(ConnId(1), Instant::ZERO);
        assert_eq!(p.idle_expired(Instant::from_nanos(6_000_000_000)).len(), 1);
        p.remove(ConnId(1));
        // No connection left, but the key remembers the peer's 2.
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
        p.insert(ConnId(2), k.clone());
        assert_eq!(p.checkout(&k), Checkout::Pending(ConnId(2)));
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
        // Another key never heard its peer: the assumed 100.
        p.insert(ConnId(3), key("2"));
        for _ in 1..100 {
            assert_eq!(p.checkout(&key("2")), Checkout::Pending(ConnId(3)));
        }
        assert_eq!(p.checkout(&key("2")), Checkout::NeedConnection);
    }

    #[test]
    fn remembered_limits_are_bounded() {
        let mut p = spreading_pool(4);
        let n = u64::try_from(REMEMBERED_ENDPOINTS).unwrap() + 1;
        for i in 0..n {
            let k = PoolKey {
                node: format!("10.1.{}.{}:15008", i / 256, i % 256),
                ..key("1")
            };
            p.insert(ConnId(i), k);
            p.ready(ConnId(i), 2);
            p.release(ConnId(i), Instant::ZERO);
            p.remove(ConnId(i));
        }
        assert_eq!(p.keys.len(), REMEMBERED_ENDPOINTS);
        // The least recently used (the first) was forgotten.
        assert!(!p.keys.keys().any(|k| k.node == "10.1.0.0:15008"));
        // Keys whose connections all end together are bounded too.
        let mut p = spreading_pool(4);
        let ids = 0..n + 10;
        for i in ids.clone() {
            let k = PoolKey {
                node: format!("10.2.{}.{}:15008", i / 256, i % 256),
                ..key("1")
            };
            p.insert(ConnId(i), k);
        }
        for i in ids {
            p.remove(ConnId(i));
        }
        assert_eq!(p.keys.len(), REMEMBERED_ENDPOINTS);
    }

    #[test]
    fn a_peer_announcing_no_limit_leaves_the_assumed_bound_on_a_handshake() {
        let mut p = spreading_pool(4);
        let k = key("1");
        p.insert(ConnId(1), k.clone());
        p.ready(ConnId(1), u32::MAX);
        p.remove(ConnId(1));
        p.insert(ConnId(2), k.clone());
        // The assumed 100 (one claimed by the opener), not u32::MAX.
        for _ in 1..100 {
            assert_eq!(p.checkout(&k), Checkout::Pending(ConnId(2)));
        }
        assert_eq!(p.checkout(&k), Checkout::NeedConnection);
    }

    /// One step of a pool's life, for the property below.
    #[derive(Clone, Debug)]
    enum Op {
        Checkout,
        Fallback,
        Ready(u8, u8),
        Release(u8),
        Window(u8, u32),
        GoingAway(u8),
        Remove(u8),
    }

    impl quickcheck::Arbitrary for Op {
        fn arbitrary(g: &mut quickcheck::Gen) -> Op {
            let conn = u8::arbitrary(g) % 8;
            match u8::arbitrary(g) % 9 {
                0..=2 => Op::Checkout,
                8 => Op::Fallback,
                3 => Op::Ready(conn, u8::arbitrary(g) % 4),
                4 => Op::Release(conn),
                5 => Op::Window(conn, u32::arbitrary(g) % 3000),
                6 => Op::GoingAway(conn),
                _ => Op::Remove(conn),
            }
        }
    }

    /// What the property tracks of each connection, independently of the
    /// pool: its slots, limit, state and congestion.
    #[derive(Clone, Copy, Debug)]
    struct Seen {
        id: ConnId,
        claimed: u32,
        max: u32,
        ready: bool,
        going_away: bool,
        congested: bool,
        /// The send window last reported while established.
        window: i64,
    }

    impl Seen {
        fn has_room(&self) -> bool {
            !self.going_away && self.claimed < self.max
        }
    }

    #[test]
    fn checkout_spreads_only_away_from_congestion_and_within_the_limit() {
        fn prop(ops: Vec<Op>, limit: u8) -> bool {
            let max_conns = u32::from(limit % 4) + 1;
            let mut p = Pool::new(PoolConfig {
                assumed_max_streams: 3,
                idle_timeout: Duration::from_secs(5),
                max_connections_per_endpoint: max_conns,
                congestion_window: 1000,
            });
            let k = key("1");
            let mut seen: Vec<Seen> = Vec::new();
            let mut next = 0;
            let mut learned = None;
            for op in ops {
                let pick = |i: u8, seen: &Vec<Seen>| {
                    seen.get(usize::from(i) % seen.len().max(1)).map(|s| s.id)
                };
                match op {
                    Op::Checkout => {
                        let out = p.checkout(&k);
                        let roomy_clear = seen
                            .iter()
                            .any(|s| s.has_room() && (!s.ready || !s.congested));
                        let roomy_congested =
                            seen.iter().any(|s| s.has_room() && s.ready && s.congested);
                        match out {
                            Checkout::NeedConnection => {
                                // Never while a clear connection has room,
                                // and for congestion only below the limit.
                                if roomy_clear {
                                    return false;
                                }
                                if roomy_congested && seen.len() >= max_conns as usize {
                                    return false;
                                }
                                next += 1;
                                p.insert(ConnId(next), k.clone());
                                seen.push(Seen {
                                    id: ConnId(next),
                                    claimed: 1,
                                    max: learned.unwrap_or(3),
                                    ready: false,
                                    going_away: false,
                                    congested: false,
                                    window: 0,
                                });
                            }
                            Checkout::Ready(id) | Checkout::Pending(id) => {
                                let Some(s) = seen.iter_mut().find(|s| s.id == id) else {
                                    return false;
                                };
                                if !s.has_room() || s.ready != matches!(out, Checkout::Ready(_)) {
                                    return false;
                                }
                                // A congested one only when nothing else
                                // can take the flow and no more may open.
                                let congested = s.congested;
                                s.claimed += 1;
                                if congested && (roomy_clear || seen.len() < max_conns as usize) {
                                    return false;
                                }
                            }
                        }
                    }
                    Op::Fallback => {
                        let roomy = |s: &&Seen| s.has_room();
                        let clear = seen.iter().filter(roomy).any(|s| s.ready && !s.congested);
                        let handshaking = seen.iter().filter(roomy).any(|s| !s.ready);
                        let best_window = seen
                            .iter()
                            .filter(roomy)
                            .filter(|s| s.ready)
                            .map(|s| s.window)
                            .max();
                        let out = p.fallback(&k);
                        let Some(Checkout::Ready(id) | Checkout::Pending(id)) = out else {
                            // Refused only when no connection has room.
                            if seen.iter().any(|s| s.has_room()) {
                                return false;
                            }
                            continue;
                        };
                        let Some(s) = seen.iter_mut().find(|s| s.id == id) else {
                            return false;
                        };
                        // Clear, else handshaking, else the largest window.
                        let fits = match (s.ready, s.congested) {
                            (true, false) => true,
                            (false, _) => !clear,
                            (true, true) => !clear && !handshaking && Some(s.window) == best_window,
                        };
                        let ready = matches!(out, Some(Checkout::Ready(_)));
                        if !s.has_room() || !fits || ready != s.ready {
                            return false;
                        }
                        s.claimed += 1;
                    }
                    Op::Ready(i, limit) => {
                        if let Some(id) = pick(i, &seen) {
                            p.ready(id, u32::from(limit));
                            learned = Some(u32::from(limit).max(1));
                            if let Some(s) = seen.iter_mut().find(|s| s.id == id) {
                                s.ready = !s.going_away;
                                s.max = u32::from(limit);
                            }
                        }
                    }
                    Op::Release(i) => {
                        if let Some(s) =
                            pick(i, &seen).and_then(|id| seen.iter_mut().find(|s| s.id == id))
                        {
                            if s.claimed > 0 {
                                s.claimed -= 1;
                                p.release(s.id, Instant::ZERO);
                            }
                        }
                    }
                    Op::Window(i, window) => {
                        if let Some(s) =
                            pick(i, &seen).and_then(|id| seen.iter_mut().find(|s| s.id == id))
                        {
                            let before = s.congested;
                            if s.ready || s.going_away {
                                s.window = i64::from(window);
                            }
                            match p.send_window(s.id, i64::from(window), 1 << 20) {
                                // Handshaking: nothing to report.
                                Some(_) if !s.ready && !s.going_away => return false,
                                Some(Congestion::Congested) if !before => s.congested = true,
                                Some(Congestion::Recovered) if before => s.congested = false,
                                None => {}
                                Some(_) => return false,
                            }
                            if p.is_congested(s.id) != s.congested {
                                return false;
                            }
                        }
                    }
                    Op::GoingAway(i) => {
                        if let Some(s) =
                            pick(i, &seen).and_then(|id| seen.iter_mut().find(|s| s.id == id))
                        {
                            p.going_away(s.id);
                            s.going_away = true;
                            s.ready = false;
                        }
                    }
                    Op::Remove(i) => {
                        if let Some(id) = pick(i, &seen) {
                            let claimed = seen.iter().find(|s| s.id == id).map_or(0, |s| s.claimed);
                            if p.remove(id) != claimed {
                                return false;
                            }
                            seen.retain(|s| s.id != id);
                        }
                    }
                }
            }
            true
        }
        quickcheck::QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<Op>, u8) -> bool);
    }
}
