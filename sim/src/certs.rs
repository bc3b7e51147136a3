//! Certificates made inside a simulated run, and the clock they are
//! checked against.
//!
//! Everything is a function of the seed and the arguments: Ed25519 keys
//! come from the seed (rcgen's `generate` would draw from the OS), serial
//! numbers and validity times are given explicitly, and rcgen's other
//! choices (key identifiers) are hashes of those. What the certificates
//! contain is the mesh's one template, `warren_proto::identity::{ca_params,
//! leaf_params}`: only the keys are the simulator's own.
//!
//! Certificate time is virtual: [`CertClock`] is a shared count of unix
//! seconds that the simulator moves, handed to rustls as its
//! `TimeProvider`, so expiry and rotation happen in simulated time.

use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rcgen::{Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::time_provider::TimeProvider;
/// When a certificate is valid (the mesh-wide type, re-exported here for
/// scenarios).
pub use warren_proto::identity::Validity;
use warren_proto::identity::{ca_params, leaf_params, SpiffeId, TemplateError};

use crate::crypto::Seed;

/// Virtual unix time for certificate checks, shared by every node that
/// holds a clone. Seconds are enough: X.509 times have no finer grain.
#[derive(Clone, Debug)]
pub struct CertClock {
    unix_secs: Arc<AtomicU64>,
}

impl CertClock {
    /// A clock reading `unix_secs`.
    pub fn new(unix_secs: u64) -> CertClock {
        CertClock {
            unix_secs: Arc::new(AtomicU64::new(unix_secs)),
        }
    }

    /// The current virtual unix time, seconds.
    pub fn now(&self) -> u64 {
        self.unix_secs.load(Ordering::Relaxed)
    }

    /// Moves the clock to `unix_secs` (for every holder).
    pub fn set(&self, unix_secs: u64) {
        self.unix_secs.store(unix_secs, Ordering::Relaxed);
    }

    /// Moves the clock forward by `secs`, saturating.
    pub fn advance(&self, secs: u64) {
        self.set(self.now().saturating_add(secs));
    }

    /// A view of this clock that is `skew_secs` off (for one node's wrong
    /// clock); it follows every later move of this clock.
    pub fn skewed(&self, skew_secs: i64) -> SkewedCertClock {
        SkewedCertClock {
            clock: self.clone(),
            skew_secs,
        }
    }
}

fn unix_time(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(core::time::Duration::from_secs(secs))
}

impl TimeProvider for CertClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(unix_time(self.now()))
    }
}

/// A [`CertClock`] read with a fixed offset.
#[derive(Clone, Debug)]
pub struct SkewedCertClock {
    clock: CertClock,
    skew_secs: i64,
}

impl TimeProvider for SkewedCertClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(unix_time(
            self.clock.now().saturating_add_signed(self.skew_secs),
        ))
    }
}

/// Why a certificate could not be made: a bug in the scenario, never in
/// the run.
#[derive(Debug)]
pub enum CertError {
    /// A validity time beyond what X.509 can say.
    TimeOutOfRange(u64),
    /// The template refused the arguments.
    Template(TemplateError),
    /// rcgen refused.
    Rcgen(rcgen::Error),
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::TimeOutOfRange(t) => write!(f, "unix time {t} out of range"),
            CertError::Template(e) => write!(f, "certificate template: {e}"),
            CertError::Rcgen(e) => write!(f, "rcgen: {e}"),
        }
    }
}

impl std::error::Error for CertError {}

impl From<TemplateError> for CertError {
    fn from(e: TemplateError) -> CertError {
        match e {
            TemplateError::TimeOutOfRange(t) => CertError::TimeOutOfRange(t),
            other => CertError::Template(other),
        }
    }
}

impl From<rcgen::Error> for CertError {
    fn from(e: rcgen::Error) -> CertError {
        CertError::Rcgen(e)
    }
}

/// The PKCS#8 v1 document (RFC 8410) of the Ed25519 key whose private
/// seed is `seed`: a fixed 16-byte header, then the seed.
pub fn ed25519_pkcs8(seed: &Seed) -> Vec<u8> {
    const HEADER: [u8; 16] = [
        0x30, 0x2e, // SEQUENCE, 46 bytes
        0x02, 0x01, 0x00, // version 0 (v1)
        0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, // AlgorithmIdentifier id-Ed25519
        0x04, 0x22, 0x04, 0x20, // privateKey: OCTET STRING { OCTET STRING (32) }
    ];
    let mut der = HEADER.to_vec();
    der.extend_from_slice(seed);
    der
}

fn key_pair(seed: &Seed) -> Result<KeyPair, CertError> {
    Ok(KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(ed25519_pkcs8(seed)),
        &rcgen::PKCS_ED25519,
    )?)
}

/// A seed for one key under `parent`, so every certificate of a CA gets
/// its own key and reissuing (a new serial) gets a fresh one.
fn child_seed(parent: &Seed, label: &str) -> Seed {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"warren-sim key v1\0");
    ctx.update(parent);
    ctx.update(label.as_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(ctx.finish().as_ref());
    seed
}

/// A root CA whose key comes from a seed.
pub struct SimCa {
    seed: Seed,
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

impl fmt::Debug for SimCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCa").finish_non_exhaustive()
    }
}

impl SimCa {
    /// A self-signed root named `name` (its CN).
    pub fn new(
        seed: Seed,
        name: &str,
        serial: u64,
        validity: Validity,
    ) -> Result<SimCa, CertError> {
        let params = ca_params(name, None, serial.into(), validity)?;
        let key = key_pair(&child_seed(&seed, "ca"))?;
        let cert = params.self_signed(&key)?.der().clone();
        Ok(SimCa {
            seed,
            issuer: Issuer::new(params, key),
            cert,
        })
    }

    /// The root certificate, to put in every node's trust bundle.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Issues a workload certificate for `id`, with a key derived from the
    /// CA's seed, the id and the serial.
    pub fn issue(
        &self,
        id: &SpiffeId,
        serial: u64,
        validity: Validity,
    ) -> Result<SimLeaf, CertError> {
        let params = leaf_params(id, serial.into(), validity)?;
        let key_seed = child_seed(&self.seed, &format!("leaf/{serial}/{id}"));
        let key = key_pair(&key_seed)?;
        let cert = params.signed_by(&key, &self.issuer)?.der().clone();
        Ok(SimLeaf {
            chain: vec![cert],
            key_pkcs8: ed25519_pkcs8(&key_seed),
        })
    }
}

/// A workload's certificate chain (leaf first) and key.
#[derive(Clone)]
pub struct SimLeaf {
    /// The chain to present: the leaf (the CA is a root, so nothing else).
    pub chain: Vec<CertificateDer<'static>>,
    key_pkcs8: Vec<u8>,
}

impl fmt::Debug for SimLeaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimLeaf")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl SimLeaf {
    /// The private key, in the form rustls loads.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_pkcs8.clone().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::ring::default_provider;
    use warren_proto::identity::{spiffe_id_of, IdentityError, MeshTrust, PeerRole, TrustDomain};

    const NOW: u64 = 1_800_000_000;

    fn validity() -> Validity {
        Validity {
            not_before: NOW - 100,
            not_after: NOW + 100,
        }
    }

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn same_seed_same_certificates_other_seed_others() {
        let make = |seed: u8| {
            let ca = SimCa::new([seed; 32], "sim CA", 1, validity()).unwrap();
            let leaf = ca
                .issue(&id("spiffe://sim.test/ns/a/sa/b"), 2, validity())
                .unwrap();
            (ca.cert().clone(), leaf.chain, leaf.key_pkcs8)
        };
        assert_eq!(make(1), make(1));
        let (a, b) = (make(1), make(2));
        assert_ne!(a.0, b.0);
        assert_ne!(a.1, b.1);
        assert_ne!(a.2, b.2);
    }

    #[test]
    fn reissuing_gives_a_new_key() {
        let ca = SimCa::new([1; 32], "sim CA", 1, validity()).unwrap();
        let who = id("spiffe://sim.test/ns/a/sa/b");
        let first = ca.issue(&who, 2, validity()).unwrap();
        let second = ca.issue(&who, 3, validity()).unwrap();
        assert_ne!(first.key_pkcs8, second.key_pkcs8);
    }

    #[test]
    fn leaves_verify_as_their_spiffe_id_within_validity_only() {
        let ca = SimCa::new([1; 32], "sim CA", 1, validity()).unwrap();
        let who = id("spiffe://sim.test/ns/a/sa/b");
        let leaf = ca.issue(&who, 2, validity()).unwrap();
        assert_eq!(spiffe_id_of(&leaf.chain[0]), Ok(who.clone()));
        let trust =
            MeshTrust::new(TrustDomain::new("sim.test").unwrap(), &[ca.cert().clone()]).unwrap();
        let algs = default_provider().signature_verification_algorithms;
        let check = |secs: u64| {
            trust.verify(
                &leaf.chain[0],
                &[],
                unix_time(secs),
                PeerRole::Client,
                &algs,
            )
        };
        assert_eq!(check(NOW), Ok(who));
        assert_eq!(
            check(NOW + 101),
            Err(IdentityError::Expired {
                now: NOW + 101,
                not_after: NOW + 100
            })
        );
        assert_eq!(
            check(NOW - 101),
            Err(IdentityError::NotYetValid {
                now: NOW - 101,
                not_before: NOW - 100
            })
        );
    }

    #[test]
    fn clock_moves_for_every_holder_and_skew_follows() {
        let clock = CertClock::new(NOW);
        let held = clock.clone();
        let ahead = clock.skewed(30);
        let behind = clock.skewed(-30);
        clock.advance(10);
        assert_eq!(held.current_time(), Some(unix_time(NOW + 10)));
        assert_eq!(ahead.current_time(), Some(unix_time(NOW + 40)));
        assert_eq!(behind.current_time(), Some(unix_time(NOW - 20)));
        held.set(5);
        assert_eq!(clock.now(), 5);
        assert_eq!(behind.current_time(), Some(unix_time(0)));
        clock.set(u64::MAX);
        clock.advance(1);
        assert_eq!(clock.now(), u64::MAX);
    }

    #[test]
    fn times_x509_cannot_say_are_refused() {
        let bad = Validity {
            not_before: 0,
            not_after: u64::MAX,
        };
        assert!(matches!(
            SimCa::new([1; 32], "sim CA", 1, bad),
            Err(CertError::TimeOutOfRange(u64::MAX))
        ));
    }
}
