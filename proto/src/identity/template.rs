//! The mesh's certificate template: what a CA certificate and a workload
//! certificate contain, written once for every issuer (the `warren ca`
//! commands, the simulator's seeded CA).
//!
//! Only the parameters are built here. Generating a key and signing draw
//! randomness (ECDSA signatures are randomized), which this crate never
//! does, so the caller brings the key and signs with rcgen itself.
//!
//! A workload certificate is an X.509-SVID as ztunnel issues them: exactly
//! one URI SAN (its SPIFFE id), no subject name, both TLS extended key
//! usages (every node is client and server), digitalSignature, and
//! `cA=false`. A CA may only sign workload certificates (path length 0)
//! and may carry its trust domain's id, `spiffe://<trust-domain>`, as its
//! one URI SAN, so the trust domain can be read back from the CA
//! certificate alone ([`ca_trust_domain`]).

use core::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;

use super::verify::{not_spiffe, single_uri_san};
use super::{IdentityError, SpiffeId, SpiffeIdError, TrustDomain};

/// When a certificate is valid, unix seconds, both ends inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: u64,
    /// notAfter.
    pub not_after: u64,
}

/// Why certificate parameters cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateError {
    /// A validity time beyond what X.509 can say (unix seconds).
    TimeOutOfRange(u64),
    /// notAfter is before notBefore.
    EndsBeforeStart(Validity),
    /// A name rcgen cannot encode (its reason).
    Unencodable(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::TimeOutOfRange(t) => write!(f, "unix time {t} out of range"),
            TemplateError::EndsBeforeStart(v) => write!(
                f,
                "validity ends ({}) before it starts ({})",
                v.not_after, v.not_before
            ),
            TemplateError::Unencodable(why) => write!(f, "name cannot be encoded: {why}"),
        }
    }
}

impl std::error::Error for TemplateError {}

impl Validity {
    fn apply(self, params: &mut CertificateParams) -> Result<(), TemplateError> {
        if self.not_after < self.not_before {
            return Err(TemplateError::EndsBeforeStart(self));
        }
        params.not_before = at(self.not_before)?;
        params.not_after = at(self.not_after)?;
        Ok(())
    }
}

fn at(secs: u64) -> Result<time::OffsetDateTime, TemplateError> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or(TemplateError::TimeOutOfRange(secs))
}

fn uri_san(uri: &str) -> Result<SanType, TemplateError> {
    let ia5 = uri
        .to_owned()
        .try_into()
        .map_err(|e: rcgen::Error| TemplateError::Unencodable(e.to_string()))?;
    Ok(SanType::URI(ia5))
}

/// The id a CA certificate carries for its trust domain.
fn trust_domain_id(trust_domain: &TrustDomain) -> String {
    format!("spiffe://{trust_domain}")
}

/// Parameters of a self-signed root CA named `common_name` (its CN; the
/// issuer name of every certificate it signs, so an issuer rebuilt from
/// the same arguments signs for the same certificate). With a trust
/// domain, the certificate names it in its one URI SAN.
pub fn ca_params(
    common_name: &str,
    trust_domain: Option<&TrustDomain>,
    serial: SerialNumber,
    validity: Validity,
) -> Result<CertificateParams, TemplateError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    // Path length 0: the CA signs workload certificates, never other CAs.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    if let Some(td) = trust_domain {
        params.subject_alt_names = vec![uri_san(&trust_domain_id(td))?];
    }
    params.serial_number = Some(serial);
    validity.apply(&mut params)?;
    Ok(params)
}

/// Parameters of a workload certificate for `id`, to be signed by a CA
/// made from [`ca_params`].
pub fn leaf_params(
    id: &SpiffeId,
    serial: SerialNumber,
    validity: Validity,
) -> Result<CertificateParams, TemplateError> {
    let mut params = CertificateParams::default();
    // The identity is the URI SAN alone; a subject name would only invite
    // someone to read it as one.
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![uri_san(id.as_str())?];
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(serial);
    params.use_authority_key_identifier_extension = true;
    validity.apply(&mut params)?;
    Ok(params)
}

/// The trust domain a CA certificate made with [`ca_params`] names in its
/// one URI SAN (`spiffe://<trust-domain>`, nothing after it). The chain is
/// not checked: this reads a CA certificate the operator gave us.
pub fn ca_trust_domain(cert: &CertificateDer<'_>) -> Result<TrustDomain, IdentityError> {
    let text = single_uri_san(cert)?;
    let not_spiffe = |reason| not_spiffe(&text, reason);
    let td = text
        .strip_prefix("spiffe://")
        .ok_or(not_spiffe(SpiffeIdError::MissingScheme))?;
    if td.contains('/') {
        // A path names a workload, not a trust domain.
        return Err(not_spiffe(SpiffeIdError::InvalidTrustDomain));
    }
    TrustDomain::new(td).map_err(not_spiffe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{spiffe_id_of, MeshTrust, PeerRole};
    use rcgen::{Issuer, KeyPair};
    use rustls::crypto::ring::default_provider;
    use rustls::pki_types::UnixTime;

    const NOW: u64 = 1_800_000_000;

    fn validity() -> Validity {
        Validity {
            not_before: NOW - 10,
            not_after: NOW + 10,
        }
    }

    fn td() -> TrustDomain {
        TrustDomain::new("example.org").unwrap()
    }

    #[test]
    fn leaf_signed_by_an_issuer_rebuilt_from_the_ca_params_verifies() {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let make_ca = || ca_params("example.org CA", Some(&td()), 7u64.into(), validity());
        let ca_cert = make_ca().unwrap().self_signed(&ca_key).unwrap();
        assert_eq!(ca_trust_domain(ca_cert.der()), Ok(td()));
        // The issuer is rebuilt from the same arguments, as `warren ca
        // issue` does from the CA directory.
        let issuer = Issuer::new(make_ca().unwrap(), ca_key);
        let id = SpiffeId::parse("spiffe://example.org/ns/demo/sa/echo").unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let leaf = leaf_params(&id, 9u64.into(), validity())
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        assert_eq!(spiffe_id_of(leaf.der()), Ok(id.clone()));
        let trust = MeshTrust::new(td(), &[ca_cert.der().clone()]).unwrap();
        let algs = default_provider().signature_verification_algorithms;
        let now = UnixTime::since_unix_epoch(core::time::Duration::from_secs(NOW));
        for role in [PeerRole::Client, PeerRole::Server] {
            assert_eq!(
                trust.verify(leaf.der(), &[], now, role, &algs),
                Ok(id.clone())
            );
        }
        // The CA cannot pose as a workload: its URI SAN has no path.
        assert!(matches!(
            spiffe_id_of(ca_cert.der()),
            Err(IdentityError::NotSpiffe { .. })
        ));
    }

    #[test]
    fn trust_domain_of_a_ca_needs_exactly_one_bare_trust_domain_id() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let unnamed = ca_params("x", None, 1u64.into(), validity())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(ca_trust_domain(unnamed.der()), Err(IdentityError::NoUriSan));
        let id = SpiffeId::parse("spiffe://example.org/ns/a/sa/b").unwrap();
        let leaf = leaf_params(&id, 1u64.into(), validity())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert!(matches!(
            ca_trust_domain(leaf.der()),
            Err(IdentityError::NotSpiffe {
                reason: SpiffeIdError::InvalidTrustDomain,
                ..
            })
        ));
        assert_eq!(
            ca_trust_domain(&CertificateDer::from(vec![1, 2, 3])),
            Err(IdentityError::BadEncoding)
        );
    }

    #[test]
    fn bad_validity_is_refused() {
        let id = SpiffeId::parse("spiffe://example.org/ns/a/sa/b").unwrap();
        let backwards = Validity {
            not_before: 10,
            not_after: 9,
        };
        assert_eq!(
            leaf_params(&id, 1u64.into(), backwards).err(),
            Some(TemplateError::EndsBeforeStart(backwards))
        );
        let huge = Validity {
            not_before: 0,
            not_after: u64::MAX,
        };
        assert_eq!(
            ca_params("x", None, 1u64.into(), huge).err(),
            Some(TemplateError::TimeOutOfRange(u64::MAX))
        );
    }
}
