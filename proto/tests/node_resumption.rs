//! TLS session resumption between nodes: a second connection to the same
//! peer resumes; a resumed session whose stored certificate no longer
//! passes the full check is refused and the flow falls back to a full
//! handshake; new certificates, trust or revocation lists leave no old
//! session behind; resumption off means every handshake is full.

mod node_harness;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use node_harness::certs::{spiffe, Ca, Leaf, DAY, NOW};
use node_harness::config::{addr, DirectPair, TUNNEL};
use node_harness::World;
use rustls::pki_types::UnixTime;
use rustls::time_provider::TimeProvider;
use warren_proto::identity::{IdentityError, Resumption};
use warren_proto::node::{CloseReason, HandshakeCounts, HandshakeError, NodeConfig, NodeEvent};
use warren_proto::revocation::Serial;
use warren_proto::tls::TlsError;

/// A certificate clock the test moves.
#[derive(Debug)]
struct Clock(AtomicU64);

impl TimeProvider for Clock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(
            self.0.load(Ordering::SeqCst),
        )))
    }
}

struct Mesh {
    world: World,
    ca: Ca,
    a: NodeConfig,
    b: NodeConfig,
    clock: Arc<Clock>,
}

fn leaf(clock: &Arc<Clock>, resumption: Resumption, not_after: u64) -> Leaf {
    Leaf {
        not_after,
        serial: None,
        time: clock.clone(),
        resumption,
    }
}

/// Node 0 "cart" tunnels 9000 → echo.shop:80 on node 1 "echo"; A's pool
/// drops a connection 1 s after its last stream, so each flow after a
/// pause dials anew (a cold flow).
fn mesh(resumption: Resumption, b_not_after: u64) -> Mesh {
    let ca = Ca::new(1);
    let clock = Arc::new(Clock(AtomicU64::new(NOW)));
    let mut pair = DirectPair::with_identities(
        ca.identity_with(2, "shop", "cart", leaf(&clock, resumption, NOW + DAY)),
        ca.identity_with(3, "shop", "echo", leaf(&clock, resumption, b_not_after)),
    );
    pair.a.pool.idle_timeout = Duration::from_secs(1);
    let world = pair.world();
    let DirectPair { a, b } = pair;
    Mesh {
        world,
        ca,
        a,
        b,
        clock,
    }
}

impl Mesh {
    /// One flow through A, then a pause long enough for A's pool to close
    /// the connection. Returns whether the bytes came back.
    fn flow(&mut self, data: &[u8]) -> bool {
        let app = self.world.connect_app(addr(TUNNEL));
        self.world.app_write(app, data);
        self.world.app_shutdown(app);
        self.world.run();
        let echoed = self.world.net.apps[app].received == data;
        let later = self.world.now + Duration::from_secs(2);
        self.world.advance_to(later);
        self.world.run();
        echoed
    }

    fn counts(&self, n: usize) -> HandshakeCounts {
        self.world.nodes[n].handshake_counts()
    }

    fn handshake_errors(&self, n: usize) -> Vec<TlsError> {
        self.world
            .events_of(n)
            .into_iter()
            .filter_map(|e| match e {
                NodeEvent::HandshakeFailed {
                    error: HandshakeError::Tls(e),
                    ..
                } => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    fn ejections(&self, n: usize) -> usize {
        self.world
            .events_of(n)
            .into_iter()
            .filter(|e| matches!(e, NodeEvent::EndpointEjected { .. }))
            .count()
    }
}

fn counts(full: u64, resumed: u64, resumed_refused: u64) -> HandshakeCounts {
    HandshakeCounts {
        full,
        resumed,
        resumed_refused,
    }
}

#[test]
fn a_second_connection_to_the_same_peer_resumes() {
    let mut m = mesh(Resumption::default(), NOW + DAY);
    for i in 0..3u8 {
        assert!(m.flow(&[i; 100]), "flow {i}");
    }
    assert_eq!(m.counts(0), counts(1, 2, 0));
    assert_eq!(m.counts(1), counts(1, 2, 0));
    assert_eq!(m.world.close_reasons(0), vec![CloseReason::Done; 3]);
    // The resumed connections still know who the peer is: policy and the
    // access log saw B's identity on every flow.
    let destinations: Vec<_> = m
        .world
        .events_of(0)
        .into_iter()
        .filter_map(|e| match e {
            NodeEvent::FlowClosed { destination, .. } => destination.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(destinations, vec![spiffe("shop", "echo"); 3]);
}

#[test]
fn resumption_off_means_every_handshake_is_full() {
    let mut m = mesh(Resumption::disabled(), NOW + DAY);
    for i in 0..3u8 {
        assert!(m.flow(&[i; 10]));
    }
    assert_eq!(m.counts(0), counts(3, 0, 0));
    assert_eq!(m.counts(1), counts(3, 0, 0));
}

#[test]
fn sessions_older_than_the_max_age_are_not_resumed() {
    let resumption = Resumption {
        max_age: Duration::from_secs(60),
        ..Resumption::default()
    };
    let mut m = mesh(resumption, NOW + DAY);
    assert!(m.flow(b"one"));
    m.clock.0.store(NOW + 61, Ordering::SeqCst);
    assert!(m.flow(b"two"));
    assert!(m.flow(b"three"));
    assert_eq!(m.counts(0), counts(2, 1, 0));
}

#[test]
fn a_resumed_session_with_an_expired_peer_certificate_is_refused() {
    // B's certificate expires 100 s after the first flow's full handshake;
    // its session is still young enough to resume.
    let mut m = mesh(Resumption::default(), NOW + 100);
    assert!(m.flow(b"before"));
    m.clock.0.store(NOW + 200, Ordering::SeqCst);
    assert!(!m.flow(b"after"));
    // A refused the resumed session (B's stored certificate expired), did
    // not hold it against the endpoint, and retried at once with a full
    // handshake, which failed on the same certificate: the flow fails,
    // and says why.
    let errors = m.handshake_errors(0);
    let expired = IdentityError::Expired {
        now: NOW + 200,
        not_after: NOW + 100,
    };
    assert_eq!(
        errors,
        vec![
            TlsError::ResumedRefused(expired.clone()),
            TlsError::PeerCertificate(expired),
        ]
    );
    assert!(errors[0]
        .to_string()
        .starts_with("resumed session refused: certificate expired"));
    assert_eq!(m.counts(0), counts(1, 0, 1));
    // Only the full handshake's failure ejected the endpoint.
    assert_eq!(m.ejections(0), 1);
    let reasons = m.world.close_reasons(0);
    assert_eq!(reasons.len(), 2);
    assert_eq!(reasons[0], CloseReason::Done);
    assert_ne!(reasons[1], CloseReason::Done);
}

#[test]
fn a_chain_already_rechecked_is_still_refused_once_it_expires() {
    // The second flow resumes and its re-check passes, so the check now
    // knows B's chain and skips its signatures; the dates still count.
    let mut m = mesh(Resumption::default(), NOW + 100);
    assert!(m.flow(b"full"));
    assert!(m.flow(b"resumed"));
    assert!(m.handshake_errors(0).is_empty());
    m.clock.0.store(NOW + 200, Ordering::SeqCst);
    assert!(!m.flow(b"after"));
    let expired = IdentityError::Expired {
        now: NOW + 200,
        not_after: NOW + 100,
    };
    assert_eq!(
        m.handshake_errors(0).first(),
        Some(&TlsError::ResumedRefused(expired))
    );
}

#[test]
fn any_new_configuration_drops_stored_sessions_on_both_sides() {
    let mut m = mesh(Resumption::default(), NOW + DAY);
    assert!(m.flow(b"one"));
    assert!(m.flow(b"two"));
    // The same configuration again: whatever it may have changed (trust,
    // revocation), sessions made under the old one are gone.
    m.world.apply_config(0, m.a.clone());
    assert!(m.flow(b"three"));
    m.world.apply_config(1, m.b.clone());
    assert!(m.flow(b"four"));
    assert!(m.flow(b"five"));
    assert_eq!(m.counts(0), counts(3, 2, 0));
    assert_eq!(m.counts(1), counts(3, 2, 0));
}

#[test]
fn a_new_revocation_list_drops_sessions_and_refuses_the_revoked_serial() {
    let mut m = mesh(Resumption::default(), NOW + DAY);
    assert!(m.flow(b"one"));
    assert!(m.flow(b"two"));
    assert_eq!(m.counts(0), counts(1, 1, 0));
    // Revoke B's certificate (serial 3) on A.
    let mut a = m.a.clone();
    a.revocation
        .revoke_serial(Serial::parse_hex("03").unwrap(), "key leaked")
        .unwrap();
    m.world.apply_config(0, a);
    assert!(!m.flow(b"three"));
    // No stored session was offered: the handshake was a full one, and
    // the revocation check refused it.
    assert_eq!(m.counts(0), counts(2, 1, 0));
    let revoked = m.world.events_of(0).into_iter().any(|e| {
        matches!(e, NodeEvent::Hub(warren_proto::hub::HubEvent::Revoked { reason, .. })
            if reason.contains("serial 03 revoked"))
    });
    assert!(revoked);
}

#[test]
fn a_resumed_session_of_a_revoked_client_is_refused_by_the_server() {
    // B learns that A's certificate (serial 2) is revoked while A still
    // holds a ticket: B's new configuration empties its store, so A's
    // ticket finds nothing, the handshake is full, and B refuses A.
    let mut m = mesh(Resumption::default(), NOW + DAY);
    assert!(m.flow(b"one"));
    let mut b = m.b.clone();
    b.revocation
        .revoke_serial(Serial::parse_hex("02").unwrap(), "key leaked")
        .unwrap();
    m.world.apply_config(1, b);
    assert!(!m.flow(b"two"));
    assert_eq!(m.counts(1).resumed, 0);
    assert_eq!(m.counts(1).full, 2);
}

#[test]
fn after_a_certificate_rotation_no_old_session_is_used() {
    let mut m = mesh(Resumption::default(), NOW + DAY);
    assert!(m.flow(b"one"));
    assert!(m.flow(b"two"));
    // B rotates: its new identity has a new, empty session store, so A's
    // ticket (from B's old certificate) is not resumed.
    let mut b = m.b.clone();
    b.identity = m.ca.identity_with(
        13,
        "shop",
        "echo",
        Leaf {
            serial: Some(33),
            ..leaf(&m.clock, Resumption::default(), NOW + DAY)
        },
    );
    m.world.apply_config(1, b);
    assert!(m.flow(b"three"));
    assert_eq!(m.counts(1), counts(2, 1, 0));
    // A rotates: its client tickets go with its old configs.
    let mut a = m.a.clone();
    a.identity = m.ca.identity_with(
        12,
        "shop",
        "cart",
        Leaf {
            serial: Some(22),
            ..leaf(&m.clock, Resumption::default(), NOW + DAY)
        },
    );
    m.world.apply_config(0, a);
    assert!(m.flow(b"four"));
    assert!(m.flow(b"five"));
    assert_eq!(m.counts(0), counts(3, 2, 0));
    assert_eq!(m.counts(1), counts(3, 2, 0));
}
