//! Test certificates: a CA and workload leaves with Ed25519 keys from fixed
//! seeds, so every run has the same certificates.

use std::sync::Arc;

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::time_provider::TimeProvider;
use warren_proto::identity::{MeshTlsParams, MeshTrust, SpiffeId, TrustDomain};
use warren_proto::node::MeshIdentity;

/// "Now" for certificates: 2027-01-15.
pub const NOW: u64 = 1_800_000_000;
const DAY: u64 = 86_400;
pub const TD: &str = "mesh.test";

#[derive(Debug)]
struct FixedTime(u64);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            self.0,
        )))
    }
}

fn ed25519_pkcs8(seed: u8) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed; 32]);
    der
}

fn key(seed: u8) -> KeyPair {
    KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(ed25519_pkcs8(seed)),
        &rcgen::PKCS_ED25519,
    )
    .unwrap()
}

fn at(secs: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap()
}

/// A trust domain's CA.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

impl Ca {
    pub fn new(seed: u8) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "mesh ca");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = at(NOW - 365 * DAY);
        params.not_after = at(NOW + 365 * DAY);
        params.serial_number = Some(1u64.into());
        let key = key(seed);
        let cert = params.self_signed(&key).unwrap().der().clone();
        Ca {
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    /// A node identity `spiffe://mesh.test/ns/<ns>/sa/<sa>` with a key from `seed`.
    pub fn identity(&self, seed: u8, ns: &str, sa: &str) -> MeshIdentity {
        let id = format!("spiffe://{TD}/ns/{ns}/sa/{sa}");
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "workload");
        params.subject_alt_names = vec![SanType::URI(id.as_str().try_into().unwrap())];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = at(NOW - DAY);
        params.not_after = at(NOW + DAY);
        params.serial_number = Some(u64::from(seed).into());
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
            Arc::new(FixedTime(NOW)),
            trust,
            vec![cert],
            PrivateKeyDer::Pkcs8(ed25519_pkcs8(seed).into()),
        )
        .unwrap();
        MeshIdentity::new(params).unwrap()
    }
}

pub fn spiffe(ns: &str, sa: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://{TD}/ns/{ns}/sa/{sa}")).unwrap()
}
