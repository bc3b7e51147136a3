//! TLS 1.3 session resumption, made safe for a mesh: bounded stores of our
//! own (ordered maps, so nothing depends on hash order) and the re-check a
//! resumed handshake must pass before its connection is used.
//!
//! rustls does not verify certificates on a resumed handshake: it hands
//! back the peer chain stored with the session. A mesh identity can stop
//! being valid between the two handshakes (the certificate expires, the
//! destination's expected identity changes), so [`ResumedCheck`] runs the
//! full handshake's verifier again on the stored chain at the current time.
//! Revocation is checked by the node on every connection, resumed or not,
//! from the same stored chain.
//!
//! The server keeps sessions itself (stateful tickets: the ticket is a
//! random id from the crypto provider, so there are no ticket keys to
//! rotate and a seeded provider keeps runs deterministic). The client keeps
//! one store per config, and the node builds one client config per
//! endpoint, so a session is only ever offered to the address that issued
//! it.

use core::fmt;
use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use rustls::client::{ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::StoresServerSessions;
use rustls::time_provider::TimeProvider;
use rustls::NamedGroup;

use super::san::validity as certificate_dates;
use super::verify::{MeshClientVerifier, MeshServerVerifier};
use super::{IdentityError, SpiffeId};

/// Default of [`Resumption::max_age`].
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// Longest [`Resumption::max_age`] accepted: rustls' stateful tickets
/// promise the client a day, and a longer-lived session would outlive most
/// mesh certificates anyway.
pub const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// Default of [`Resumption::max_sessions`].
pub const DEFAULT_MAX_SESSIONS: usize = 1024;
/// Tickets a client keeps per endpoint: enough for a few connections
/// opened at once, each ticket being single-use.
const TICKETS_PER_ENDPOINT: usize = 4;
/// Tickets the server issues per full handshake: one for the next
/// connection, one spare for a connection opened alongside.
pub(super) const TICKETS_PER_HANDSHAKE: usize = 2;
/// Tickets a client asks for on a resumed handshake (RFC 9149
/// `ticket_request`): one replaces the one it used, so its stock from the
/// full handshake stays as it was. A second would be a spare it already
/// has, and cost both sides a ticket's key derivation and three draws
/// from the host's `CryptoProvider` random source on every cold flow (each
/// a syscall with ring's), and the server a slot in its
/// bounded store until it ages out.
pub(super) const TICKETS_PER_RESUMPTION: u8 = 1;

/// Whether and for how long TLS sessions are resumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resumption {
    /// Resume sessions at all (the default). Off, every connection does a
    /// full handshake with both certificates checked.
    pub enabled: bool,
    /// A session older than this is not resumed (default 10 min, at most
    /// [`MAX_MAX_AGE`]).
    pub max_age: Duration,
    /// Sessions the server keeps at most (the oldest goes first); also
    /// the number of endpoints a client keeps tickets for.
    pub max_sessions: usize,
}

impl Default for Resumption {
    fn default() -> Resumption {
        Resumption {
            enabled: true,
            max_age: DEFAULT_MAX_AGE,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

impl Resumption {
    /// No resumption: every handshake is a full one.
    pub fn disabled() -> Resumption {
        Resumption {
            enabled: false,
            ..Resumption::default()
        }
    }

    /// Whether a session is resumed at all: enabled, with a non-zero age
    /// and room for one session.
    pub fn active(&self) -> bool {
        self.enabled && !self.max_age.is_zero() && self.max_sessions > 0
    }
}

/// Seconds since the epoch from the host's time provider; `None` when it
/// cannot tell, and then nothing is stored or resumed.
fn now_secs(time: &dyn TimeProvider) -> Option<u64> {
    time.current_time().map(|t| t.as_secs())
}

/// Whether a session stored at `stored` may still be resumed at `now`.
fn fresh(stored: u64, now: u64, max_age: Duration) -> bool {
    now >= stored && now - stored <= max_age.as_secs()
}

/// The server's sessions: ticket id → (stored at, encoded session), the
/// oldest evicted first when full. Each ticket is taken once (TLS 1.3
/// tickets are single-use here, so a replayed ClientHello cannot resume).
pub(super) struct ServerSessions {
    time: Arc<dyn TimeProvider>,
    limits: Resumption,
    inner: Mutex<ServerStore>,
}

#[derive(Default)]
struct ServerStore {
    /// id → (insertion number, stored at, value).
    by_id: BTreeMap<Vec<u8>, (u64, u64, Vec<u8>)>,
    /// insertion number → id, for evicting the oldest.
    order: BTreeMap<u64, Vec<u8>>,
    next: u64,
}

impl ServerSessions {
    pub(super) fn new(time: Arc<dyn TimeProvider>, limits: Resumption) -> ServerSessions {
        ServerSessions {
            time,
            limits,
            inner: Mutex::new(ServerStore::default()),
        }
    }

    /// Drops every session.
    pub(super) fn forget(&self) {
        if let Ok(mut store) = self.inner.lock() {
            *store = ServerStore::default();
        }
    }

    /// How many sessions are stored.
    pub(super) fn len(&self) -> usize {
        self.inner.lock().map_or(0, |s| s.by_id.len())
    }
}

impl fmt::Debug for ServerSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSessions")
            .field("limits", &self.limits)
            .field("stored", &self.len())
            .finish()
    }
}

impl StoresServerSessions for ServerSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let Some(now) = now_secs(self.time.as_ref()) else {
            return false;
        };
        let Ok(mut store) = self.inner.lock() else {
            return false;
        };
        if self.limits.max_sessions == 0 {
            return false;
        }
        if let Some((old, _, _)) = store.by_id.remove(&key) {
            store.order.remove(&old);
        }
        while store.by_id.len() >= self.limits.max_sessions {
            let Some((_, oldest)) = store.order.pop_first() else {
                break;
            };
            store.by_id.remove(&oldest);
        }
        let n = store.next;
        store.next = n.wrapping_add(1);
        store.by_id.insert(key.clone(), (n, now, value));
        store.order.insert(n, key);
        true
    }

    /// Only TLS 1.2 reads a session without taking it; the mesh speaks
    /// TLS 1.3 only.
    fn get(&self, _key: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let now = now_secs(self.time.as_ref())?;
        let mut store = self.inner.lock().ok()?;
        let (n, stored, value) = store.by_id.remove(key)?;
        store.order.remove(&n);
        fresh(stored, now, self.limits.max_age).then_some(value)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

/// A client's tickets for one endpoint (the config is per endpoint, so the
/// server name rustls passes, always the same dummy, is ignored).
pub(super) struct ClientSessions {
    time: Arc<dyn TimeProvider>,
    max_age: Duration,
    inner: Mutex<ClientStore>,
}

#[derive(Default)]
struct ClientStore {
    /// (received at, ticket), oldest first.
    tickets: VecDeque<(u64, Tls13ClientSessionValue)>,
    kx_hint: Option<NamedGroup>,
}

impl ClientSessions {
    pub(super) fn new(time: Arc<dyn TimeProvider>, max_age: Duration) -> ClientSessions {
        ClientSessions {
            time,
            max_age,
            inner: Mutex::new(ClientStore::default()),
        }
    }

    /// Drops every ticket, so the next handshake is a full one.
    pub(super) fn forget(&self) {
        if let Ok(mut store) = self.inner.lock() {
            store.tickets.clear();
        }
    }

    /// How many tickets are stored.
    pub(super) fn len(&self) -> usize {
        self.inner.lock().map_or(0, |s| s.tickets.len())
    }
}

impl fmt::Debug for ClientSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSessions")
            .field("max_age", &self.max_age)
            .field("tickets", &self.len())
            .finish()
    }
}

impl ClientSessionStore for ClientSessions {
    fn set_kx_hint(&self, _server_name: ServerName<'static>, group: NamedGroup) {
        if let Ok(mut store) = self.inner.lock() {
            store.kx_hint = Some(group);
        }
    }

    fn kx_hint(&self, _server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.lock().ok()?.kx_hint
    }

    fn set_tls12_session(
        &self,
        _server_name: ServerName<'static>,
        _value: Tls12ClientSessionValue,
    ) {
    }

    fn tls12_session(&self, _server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _server_name: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        _server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let Some(now) = now_secs(self.time.as_ref()) else {
            return;
        };
        if let Ok(mut store) = self.inner.lock() {
            if store.tickets.len() >= TICKETS_PER_ENDPOINT {
                store.tickets.pop_front();
            }
            store.tickets.push_back((now, value));
        }
    }

    fn take_tls13_ticket(
        &self,
        _server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let now = now_secs(self.time.as_ref())?;
        let mut store = self.inner.lock().ok()?;
        // Tickets arrive in age order: the newest is the likeliest to be
        // still in the server's store.
        let (stored, ticket) = store.tickets.pop_back()?;
        if fresh(stored, now, self.max_age) {
            return Some(ticket);
        }
        // The rest are older still.
        store.tickets.clear();
        None
    }
}

/// Which verifier a resumed handshake re-runs.
#[derive(Debug)]
enum PeerCheck {
    /// We are the client: the server's certificate, for the ids this
    /// config expects.
    Server(Arc<MeshServerVerifier>),
    /// We are the server: the client's certificate.
    Client(Arc<MeshClientVerifier>),
}

/// The check a resumed handshake must pass: the full handshake's
/// certificate verification, run again at the current time on the peer
/// chain stored with the session. A failure also drops the client's other
/// tickets for that endpoint, so the next connection does a full
/// handshake.
#[derive(Debug)]
pub struct ResumedCheck {
    peer: PeerCheck,
    time: Arc<dyn TimeProvider>,
    sessions: Option<Arc<ClientSessions>>,
    /// Chains this check has verified in full, and the identity each
    /// proved. A chain seen again only has its dates checked: its
    /// signatures and path cannot have changed, and whatever else could
    /// (trust anchors, expected ids) comes with a new config and so a new
    /// check. Verifying the signatures on every resumed handshake cost
    /// about as much as the full handshake resumption saves.
    verified: Mutex<BTreeMap<Vec<Vec<u8>>, SpiffeId>>,
}

/// Chains a [`ResumedCheck`] remembers; past this it starts over.
const MAX_VERIFIED_CHAINS: usize = 1024;

impl ResumedCheck {
    pub(super) fn of_server(
        verifier: Arc<MeshServerVerifier>,
        time: Arc<dyn TimeProvider>,
        sessions: Arc<ClientSessions>,
    ) -> ResumedCheck {
        ResumedCheck {
            peer: PeerCheck::Server(verifier),
            time,
            sessions: Some(sessions),
            verified: Mutex::default(),
        }
    }

    pub(super) fn of_client(
        verifier: Arc<MeshClientVerifier>,
        time: Arc<dyn TimeProvider>,
    ) -> ResumedCheck {
        ResumedCheck {
            peer: PeerCheck::Client(verifier),
            time,
            sessions: None,
            verified: Mutex::default(),
        }
    }

    /// Verifies the stored peer `chain` (leaf first) as a full handshake
    /// would now, returning the identity it proves.
    pub fn check(&self, chain: &[CertificateDer<'static>]) -> Result<SpiffeId, IdentityError> {
        let result = self.verify(chain);
        if result.is_err() {
            if let Some(sessions) = &self.sessions {
                sessions.forget();
            }
        }
        result
    }

    fn verify(&self, chain: &[CertificateDer<'static>]) -> Result<SpiffeId, IdentityError> {
        let (leaf, intermediates) = chain.split_first().ok_or(IdentityError::NoUriSan)?;
        // Without a time nothing can be said to be valid.
        let now = self
            .time
            .current_time()
            .ok_or_else(|| IdentityError::ChainRejected("no current time".into()))?;
        let key: Vec<Vec<u8>> = chain.iter().map(|c| c.to_vec()).collect();
        if let Some(id) = self.known(&key, now.as_secs()) {
            return Ok(id);
        }
        let id = match &self.peer {
            PeerCheck::Server(v) => v.check(leaf, intermediates, now),
            PeerCheck::Client(v) => v.check(leaf, intermediates, now),
        }?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= MAX_VERIFIED_CHAINS {
                verified.clear();
            }
            verified.insert(key, id.clone());
        }
        Ok(id)
    }

    /// The identity `chain` proved before, if every certificate in it is
    /// still within its dates at `now`; `None` sends it to the full check
    /// (which also says precisely what is wrong).
    fn known(&self, chain: &[Vec<u8>], now: u64) -> Option<SpiffeId> {
        let in_dates = chain.iter().all(|cert| {
            certificate_dates(cert)
                .is_ok_and(|(not_before, not_after)| not_before <= now && now <= not_after)
        });
        if !in_dates {
            return None;
        }
        self.verified.lock().ok()?.get(chain).cloned()
    }

    /// Drops the client store's tickets (nothing for a server check).
    pub(super) fn forget_tickets(&self) {
        if let Some(sessions) = &self.sessions {
            sessions.forget();
        }
    }

    /// Tickets this check's client store holds (0 for a server check).
    pub fn stored_tickets(&self) -> usize {
        self.sessions.as_ref().map_or(0, |s| s.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};
    use rustls::pki_types::UnixTime;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Debug, Default)]
    struct Clock(AtomicU64);

    impl TimeProvider for Clock {
        fn current_time(&self) -> Option<UnixTime> {
            Some(UnixTime::since_unix_epoch(Duration::from_secs(
                self.0.load(Ordering::SeqCst),
            )))
        }
    }

    fn store(max_sessions: usize, max_age_secs: u64) -> (Arc<Clock>, ServerSessions) {
        let clock = Arc::new(Clock::default());
        let limits = Resumption {
            enabled: true,
            max_age: Duration::from_secs(max_age_secs),
            max_sessions,
        };
        (clock.clone(), ServerSessions::new(clock, limits))
    }

    #[test]
    fn server_sessions_are_single_use_and_expire() {
        let (clock, s) = store(4, 600);
        assert!(s.put(b"a".to_vec(), b"1".to_vec()));
        assert!(s.put(b"b".to_vec(), b"2".to_vec()));
        assert_eq!(s.get(b"a"), None);
        assert_eq!(s.take(b"a"), Some(b"1".to_vec()));
        assert_eq!(s.take(b"a"), None);
        clock.0.store(601, Ordering::SeqCst);
        assert_eq!(s.take(b"b"), None, "older than max_age");
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn server_sessions_forget_everything() {
        let (_, s) = store(4, 600);
        s.put(b"a".to_vec(), b"1".to_vec());
        s.forget();
        assert_eq!(s.take(b"a"), None);
    }

    /// Whatever is put and taken, the store never holds more than its
    /// bound, and a take returns what the latest put of that id stored,
    /// unless it was evicted as one of the oldest.
    #[test]
    fn server_store_is_bounded_and_keeps_the_newest() {
        fn prop(bound: u8, ops: Vec<(bool, u8, u8)>) -> TestResult {
            let bound = usize::from(bound % 8) + 1;
            let (_, s) = store(bound, 600);
            // Model: insertion-ordered (id, value).
            let mut model: Vec<(u8, u8)> = Vec::new();
            for (is_put, id, value) in ops {
                let id = id % 12;
                if is_put {
                    assert!(s.put(vec![id], vec![value]));
                    model.retain(|(i, _)| *i != id);
                    if model.len() >= bound {
                        model.remove(0);
                    }
                    model.push((id, value));
                } else {
                    let want = model.iter().position(|(i, _)| *i == id).map(|p| {
                        let (_, v) = model.remove(p);
                        vec![v]
                    });
                    if s.take(&[id]) != want {
                        return TestResult::failed();
                    }
                }
                if s.len() > bound || s.len() != model.len() {
                    return TestResult::failed();
                }
            }
            TestResult::passed()
        }
        quickcheck(prop as fn(u8, Vec<(bool, u8, u8)>) -> TestResult);
    }

    #[test]
    fn freshness_is_bounded_both_ways() {
        assert!(fresh(10, 10, Duration::from_secs(0)));
        assert!(fresh(10, 70, Duration::from_secs(60)));
        assert!(!fresh(10, 71, Duration::from_secs(60)));
        // A clock that went backwards does not make a session fresher.
        assert!(!fresh(10, 9, Duration::from_secs(60)));
    }
}
