//! Pieces every certificate-making test shares: the fixed "now", the
//! trust domain, and Ed25519 keys from fixed seeds, so every run makes the
//! same certificates. Included by `identity.rs` and by `node_harness`.

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::time_provider::TimeProvider;

/// "Now" for every test certificate unless a test says otherwise: 2027-01-15.
pub const NOW: u64 = 1_800_000_000;
/// One day in seconds.
pub const DAY: u64 = 86_400;
/// The trust domain of the test mesh.
pub const TD: &str = "mesh.test";

/// A rustls clock stopped at a unix time, so certificate validity does not
/// depend on when the tests run.
#[derive(Debug)]
pub struct FixedTime(pub u64);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            self.0,
        )))
    }
}

/// An Ed25519 PKCS#8 v1 document for a fixed seed.
pub fn ed25519_pkcs8(seed: u8) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[seed; 32]);
    der
}

/// The Ed25519 key pair of `seed`.
pub fn key(seed: u8) -> KeyPair {
    KeyPair::from_pkcs8_der_and_sign_algo(
        &PrivatePkcs8KeyDer::from(ed25519_pkcs8(seed)),
        &rcgen::PKCS_ED25519,
    )
    .unwrap()
}

/// `secs` since the unix epoch as rcgen wants it.
pub fn at(secs: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap()
}

/// A workload leaf's certificate params: common name "workload", SPIFFE
/// ID `id` as its URI SAN, server and client auth, digital signature,
/// valid from a day before [`NOW`] to a day after, serial `seed` (the key
/// seed the caller signs with). Tests change fields from there.
pub fn workload_leaf(id: &str, seed: u8) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "workload");
    params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = at(NOW - DAY);
    params.not_after = at(NOW + DAY);
    params.serial_number = Some(u64::from(seed).into());
    params
}

/// A self-signed CA named `name` with the key of `seed`, valid a year either
/// side of [`NOW`]: the issuer that signs leaves, and its certificate.
pub fn self_signed_ca(name: &str, seed: u8) -> (Issuer<'static, KeyPair>, CertificateDer<'static>) {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = at(NOW - 365 * DAY);
    params.not_after = at(NOW + 365 * DAY);
    params.serial_number = Some(1u64.into());
    let key = key(seed);
    let cert = params.self_signed(&key).unwrap().der().clone();
    (Issuer::new(params, key), cert)
}
