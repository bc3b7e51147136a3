//! The outbound HBONE connection pool: which connection carries a new flow.
//!
//! Connections are pooled per [`PoolKey`] (source identity, destination
//! node, destination identity) and carry many streams. A new connection is
//! opened only when every existing one for the key is at its stream limit or
//! going away. Idle connections are closed after a configurable time.
//!
//! The pool is bookkeeping only: it never sees bytes. The node tells it
//! what happened to each connection (ready, stream opened/closed, GOAWAY,
//! failed) and asks it where a flow should go.

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

/// Pool settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Streams assumed available on a connection whose peer SETTINGS have
    /// not arrived yet (RFC 9113 leaves the initial limit unbounded; 100 is
    /// the value RFC 9113 §6.5.2 recommends peers allow at least).
    pub assumed_max_streams: u32,
    /// Close a connection that has carried no stream for this long.
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            assumed_max_streams: 100,
            idle_timeout: Duration::from_secs(60),
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
}

impl Entry {
    fn has_room(&self) -> bool {
        self.state != ConnState::GoingAway && self.claimed < self.max_streams
    }
}

/// The pool. Ordered maps keep every decision deterministic.
#[derive(Debug, Default)]
pub struct Pool {
    config: PoolConfig,
    entries: BTreeMap<ConnId, Entry>,
    by_key: BTreeMap<PoolKey, Vec<ConnId>>,
}

impl Pool {
    /// An empty pool.
    pub fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            entries: BTreeMap::new(),
            by_key: BTreeMap::new(),
        }
    }

    /// Chooses a connection for a new flow to `key` and claims a stream slot
    /// on it. Prefers established connections, oldest first (so that newer
    /// ones drain and idle out), then handshaking ones.
    pub fn checkout(&mut self, key: &PoolKey) -> Checkout {
        let Some(ids) = self.by_key.get(key) else {
            return Checkout::NeedConnection;
        };
        let pick = |state: ConnState| {
            ids.iter().copied().find(|id| {
                self.entries
                    .get(id)
                    .is_some_and(|e| e.state == state && e.has_room())
            })
        };
        let (id, outcome) = match pick(ConnState::Ready) {
            Some(id) => (id, Checkout::Ready(id)),
            None => match pick(ConnState::Handshaking) {
                Some(id) => (id, Checkout::Pending(id)),
                None => return Checkout::NeedConnection,
            },
        };
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.claimed += 1;
            entry.idle_since = None;
        }
        outcome
    }

    /// Registers a connection the node just started for `key`, with one slot
    /// claimed for the flow that asked for it.
    pub fn insert(&mut self, id: ConnId, key: PoolKey) {
        debug_assert!(!self.entries.contains_key(&id), "connection id reused");
        self.by_key.entry(key.clone()).or_default().push(id);
        self.entries.insert(
            id,
            Entry {
                key,
                state: ConnState::Handshaking,
                max_streams: self.config.assumed_max_streams,
                claimed: 1,
                idle_since: None,
            },
        );
    }

    /// The connection finished its handshake and the peer allows
    /// `max_streams` concurrent streams.
    pub fn ready(&mut self, id: ConnId, max_streams: u32) {
        if let Some(entry) = self.entries.get_mut(&id) {
            if entry.state == ConnState::Handshaking {
                entry.state = ConnState::Ready;
            }
            entry.max_streams = max_streams;
        }
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
        if let Some(ids) = self.by_key.get_mut(&entry.key) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.by_key.remove(&entry.key);
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
}
