//! Demo-mode certificates, generated at start with rcgen.
//!
//! DEMO ONLY: the CA key is derived from a public constant so that
//! separately started processes trust each other without sharing files.
//! Anyone can mint identities of this trust domain; a real deployment
//! loads its CA bundle, chain and key from files (see `warren ca`).

use std::sync::Arc;

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::time_provider::DefaultTimeProvider;
use warren_proto::identity::{MeshTlsParams, MeshTrust, SpiffeId, TrustDomain};
use warren_proto::node::MeshIdentity;

/// The demo trust domain.
pub const TRUST_DOMAIN: &str = "demo.warren";

/// An Ed25519 PKCS#8 key whose 32 secret bytes are the public demo seed.
fn demo_ca_key() -> Result<KeyPair, rcgen::Error> {
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(b"warren-embed-demo-ca-seed-32byte");
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(der), &rcgen::PKCS_ED25519)
}

/// A mesh identity `spiffe://demo.warren/ns/<ns>/sa/<sa>` with a fresh
/// key, issued by the demo CA.
pub fn demo_identity(id: &SpiffeId) -> Result<MeshIdentity, Box<dyn std::error::Error>> {
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "warren demo CA");
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.serial_number = Some(1u64.into());
    let ca_key = demo_ca_key()?;
    let ca_cert = ca.self_signed(&ca_key)?.der().clone();
    let issuer = Issuer::new(ca, ca_key);

    let mut leaf = CertificateParams::default();
    leaf.distinguished_name.push(DnType::CommonName, "workload");
    leaf.subject_alt_names = vec![SanType::URI(id.to_string().as_str().try_into()?)];
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let cert = leaf.signed_by(&key, &issuer)?.der().clone();

    let trust = MeshTrust::new(TrustDomain::new(TRUST_DOMAIN)?, &[ca_cert])?;
    let params = MeshTlsParams::new(
        Arc::new(rustls::crypto::ring::default_provider()),
        Arc::new(DefaultTimeProvider),
        Arc::new(trust),
        vec![cert],
        PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )?;
    Ok(MeshIdentity::new(params)?)
}
