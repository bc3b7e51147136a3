//! Test certificates: a CA and workload leaves with Ed25519 keys from fixed
//! seeds, so every run has the same certificates.

use std::sync::Arc;

use rcgen::{Issuer, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::time_provider::TimeProvider;
use warren_proto::identity::{MeshTlsParams, MeshTrust, Resumption, SpiffeId, TrustDomain};
use warren_proto::node::MeshIdentity;

use super::common::{at, ed25519_pkcs8, key, self_signed_ca, workload_leaf, FixedTime};
pub use super::common::{DAY, NOW, TD};

/// A trust domain's CA.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

impl Ca {
    pub fn new(seed: u8) -> Ca {
        let (issuer, cert) = self_signed_ca("mesh ca", seed);
        Ca { issuer, cert }
    }

    /// A node identity `spiffe://mesh.test/ns/<ns>/sa/<sa>` with a key from `seed`.
    pub fn identity(&self, seed: u8, ns: &str, sa: &str) -> MeshIdentity {
        self.identity_with(seed, ns, sa, Leaf::default())
    }

    /// Like [`Ca::identity`], with the leaf's expiry, clock and resumption
    /// chosen.
    pub fn identity_with(&self, seed: u8, ns: &str, sa: &str, leaf: Leaf) -> MeshIdentity {
        let id = format!("spiffe://{TD}/ns/{ns}/sa/{sa}");
        let mut params = workload_leaf(&id, seed);
        params.not_after = at(leaf.not_after);
        params.serial_number = Some(leaf.serial.unwrap_or(u64::from(seed)).into());
        let cert = params
            .signed_by(&key(seed), &self.issuer)
            .unwrap()
            .der()
            .clone();
        let trust = Arc::new(
            MeshTrust::new(
                TrustDomain::new(TD).unwrap(),
                std::slice::from_ref(&self.cert),
            )
            .unwrap(),
        );
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
        let params = MeshTlsParams::new(
            provider,
            leaf.time,
            trust,
            vec![cert],
            PrivateKeyDer::Pkcs8(ed25519_pkcs8(seed).into()),
        )
        .unwrap()
        .with_resumption(leaf.resumption);
        MeshIdentity::new(params).unwrap()
    }
}

/// How [`Ca::identity_with`] makes a leaf.
pub struct Leaf {
    /// notAfter, unix seconds (default a day after `NOW`).
    pub not_after: u64,
    /// The serial (default the key seed).
    pub serial: Option<u64>,
    /// The node's certificate clock (default stopped at `NOW`).
    pub time: Arc<dyn TimeProvider>,
    /// TLS session resumption (default off).
    pub resumption: Resumption,
}

impl Default for Leaf {
    fn default() -> Leaf {
        Leaf {
            not_after: NOW + DAY,
            serial: None,
            time: Arc::new(FixedTime(NOW)),
            resumption: Resumption::disabled(),
        }
    }
}

pub fn spiffe(ns: &str, sa: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://{TD}/ns/{ns}/sa/{sa}")).unwrap()
}
