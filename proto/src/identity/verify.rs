//! Certificate verification for the mesh: a peer is who its certificate
//! says only if the chain verifies to our trust domain's CA roots *and* the
//! leaf names exactly one SPIFFE id of that trust domain in a URI SAN.
//!
//! DNS names, IP SANs and the subject CN are never an identity: the client
//! side ignores the TLS server name entirely (as ztunnel does, which sends a
//! dummy one) and checks the server's SPIFFE id against the ids it expects
//! for the destination instead.

use core::fmt;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};

use super::san::uri_sans;
use super::{SpiffeId, SpiffeIdError, TrustDomain};

/// Longest URI quoted back in an error: enough to recognise it in a log,
/// short enough that a peer cannot make our events large.
pub(super) const MAX_QUOTED_URI: usize = 256;

/// Why a peer's certificate is not a mesh identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// The chain does not lead to any of the trust domain's CA roots.
    UnknownIssuer,
    /// A signature in the chain does not verify.
    BadSignature,
    /// A certificate in the chain expired before `now` (unix seconds).
    Expired {
        /// The verification time, unix seconds.
        now: u64,
        /// The certificate's notAfter, unix seconds.
        not_after: u64,
    },
    /// A certificate in the chain is not valid until after `now`.
    NotYetValid {
        /// The verification time, unix seconds.
        now: u64,
        /// The certificate's notBefore, unix seconds.
        not_before: u64,
    },
    /// The leaf's extended key usage does not allow this role (serverAuth
    /// for a server, clientAuth for a client).
    WrongKeyUsage,
    /// A certificate is not well-formed DER X.509.
    BadEncoding,
    /// Any other reason webpki refused the chain, in its words.
    ChainRejected(String),
    /// The leaf has no URI SAN (a SPIFFE id in the CN or a DNS SAN does not
    /// count).
    NoUriSan,
    /// The leaf has more than one URI SAN, so it names no single identity.
    MultipleUriSans {
        /// How many URI SANs it has.
        count: usize,
    },
    /// The leaf's only URI SAN is not a mesh SPIFFE id.
    NotSpiffe {
        /// The URI (lossily decoded, at most 256 characters).
        uri: String,
        /// What is wrong with it.
        reason: SpiffeIdError,
    },
    /// The leaf's SPIFFE id belongs to another trust domain than ours.
    OtherTrustDomain {
        /// Our trust domain.
        expected: TrustDomain,
        /// The id the certificate carries.
        got: SpiffeId,
    },
    /// The server is a valid mesh identity, but not one we expected for
    /// this destination.
    UnexpectedIdentity {
        /// The ids this connection would accept, in order.
        expected: Vec<SpiffeId>,
        /// The id the server presented.
        got: SpiffeId,
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::UnknownIssuer => {
                f.write_str("certificate is not issued by the trust domain's CA")
            }
            IdentityError::BadSignature => f.write_str("certificate signature does not verify"),
            IdentityError::Expired { now, not_after } => {
                write!(f, "certificate expired at {not_after} (now {now})")
            }
            IdentityError::NotYetValid { now, not_before } => {
                write!(f, "certificate not valid before {not_before} (now {now})")
            }
            IdentityError::WrongKeyUsage => {
                f.write_str("certificate's extended key usage does not allow this role")
            }
            IdentityError::BadEncoding => f.write_str("certificate is not valid DER X.509"),
            IdentityError::ChainRejected(why) => write!(f, "certificate chain rejected: {why}"),
            IdentityError::NoUriSan => f.write_str("certificate has no URI SAN"),
            IdentityError::MultipleUriSans { count } => {
                write!(
                    f,
                    "certificate has {count} URI SANs, exactly one is allowed"
                )
            }
            IdentityError::NotSpiffe { uri, reason } => {
                write!(f, "URI SAN {uri:?} is not a SPIFFE id: {reason}")
            }
            IdentityError::OtherTrustDomain { expected, got } => {
                write!(f, "{got} is not in trust domain {expected}")
            }
            IdentityError::UnexpectedIdentity { expected, got } => {
                write!(f, "server is {got}, expected one of [")?;
                for (i, id) in expected.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl std::error::Error for IdentityError {}

impl IdentityError {
    /// Recovers the reason from the error rustls reports for a rejected
    /// certificate (ours travel either as the closest standard
    /// `CertificateError`, so the peer gets the right alert, or inside
    /// `CertificateError::Other`). `None` for errors no verifier produced.
    pub fn from_rustls(error: &rustls::Error) -> Option<IdentityError> {
        let rustls::Error::InvalidCertificate(cert_error) = error else {
            return None;
        };
        Some(match cert_error {
            CertificateError::UnknownIssuer => IdentityError::UnknownIssuer,
            CertificateError::BadSignature => IdentityError::BadSignature,
            CertificateError::BadEncoding => IdentityError::BadEncoding,
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                IdentityError::WrongKeyUsage
            }
            CertificateError::ExpiredContext { time, not_after } => IdentityError::Expired {
                now: time.as_secs(),
                not_after: not_after.as_secs(),
            },
            CertificateError::NotValidYetContext { time, not_before } => {
                IdentityError::NotYetValid {
                    now: time.as_secs(),
                    not_before: not_before.as_secs(),
                }
            }
            CertificateError::Other(OtherError(inner)) => {
                return inner.downcast_ref::<IdentityError>().cloned();
            }
            _ => return None,
        })
    }

    fn from_webpki(error: webpki::Error) -> IdentityError {
        use webpki::Error as E;
        match error {
            E::UnknownIssuer => IdentityError::UnknownIssuer,
            E::InvalidSignatureForPublicKey => IdentityError::BadSignature,
            E::CertExpired { time, not_after } => IdentityError::Expired {
                now: time.as_secs(),
                not_after: not_after.as_secs(),
            },
            E::CertNotValidYet { time, not_before } => IdentityError::NotYetValid {
                now: time.as_secs(),
                not_before: not_before.as_secs(),
            },
            #[allow(deprecated)]
            E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
                IdentityError::WrongKeyUsage
            }
            E::BadDer | E::BadDerTime | E::TrailingData(_) => IdentityError::BadEncoding,
            other => IdentityError::ChainRejected(other.to_string()),
        }
    }
}

impl From<IdentityError> for rustls::Error {
    /// Uses rustls' own variant where one says the same thing, so the alert
    /// the peer receives is the standard one (`unknown_ca`,
    /// `certificate_expired`, ...); the mesh-specific reasons travel inside
    /// `CertificateError::Other`. [`IdentityError::from_rustls`] undoes this.
    fn from(error: IdentityError) -> rustls::Error {
        let secs = |s: u64| UnixTime::since_unix_epoch(core::time::Duration::from_secs(s));
        let cert_error = match error {
            IdentityError::UnknownIssuer => CertificateError::UnknownIssuer,
            IdentityError::BadSignature => CertificateError::BadSignature,
            IdentityError::BadEncoding => CertificateError::BadEncoding,
            IdentityError::WrongKeyUsage => CertificateError::InvalidPurpose,
            IdentityError::Expired { now, not_after } => CertificateError::ExpiredContext {
                time: secs(now),
                not_after: secs(not_after),
            },
            IdentityError::NotYetValid { now, not_before } => {
                CertificateError::NotValidYetContext {
                    time: secs(now),
                    not_before: secs(not_before),
                }
            }
            other => CertificateError::Other(OtherError(Arc::new(other))),
        };
        rustls::Error::InvalidCertificate(cert_error)
    }
}

/// Which side of the handshake presented the certificate being checked;
/// it selects the extended key usage the leaf must allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// The peer is the TLS server (checked by a client).
    Server,
    /// The peer is the TLS client (checked by a server).
    Client,
}

/// Why a trust bundle cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustError {
    /// No CA roots: such a node could trust nobody.
    NoRoots,
    /// The root at `index` is not a usable trust anchor.
    BadRoot {
        /// Position in the list given.
        index: usize,
        /// webpki's reason.
        reason: String,
    },
}

impl fmt::Display for TrustError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustError::NoRoots => f.write_str("no CA roots given"),
            TrustError::BadRoot { index, reason } => write!(f, "CA root #{index}: {reason}"),
        }
    }
}

impl std::error::Error for TrustError {}

/// What a node trusts: one trust domain and the CA roots that issue its
/// certificates.
#[derive(Clone, Debug)]
pub struct MeshTrust {
    trust_domain: TrustDomain,
    roots: RootCertStore,
}

impl MeshTrust {
    /// Builds the trust bundle from the CA root certificates (DER).
    pub fn new(
        trust_domain: TrustDomain,
        roots: &[CertificateDer<'_>],
    ) -> Result<MeshTrust, TrustError> {
        if roots.is_empty() {
            return Err(TrustError::NoRoots);
        }
        let mut store = RootCertStore::empty();
        for (index, root) in roots.iter().enumerate() {
            let anchor =
                webpki::anchor_from_trusted_cert(root).map_err(|e| TrustError::BadRoot {
                    index,
                    reason: e.to_string(),
                })?;
            store.roots.push(anchor.to_owned());
        }
        Ok(MeshTrust {
            trust_domain,
            roots: store,
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// Verifies a peer's chain at `now` and returns the SPIFFE id it proves.
    ///
    /// The chain is checked first, so nothing in an unverified certificate
    /// is believed; then the leaf must carry exactly one URI SAN that is a
    /// SPIFFE id of our trust domain.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        role: PeerRole,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> Result<SpiffeId, IdentityError> {
        let cert =
            webpki::EndEntityCert::try_from(end_entity).map_err(IdentityError::from_webpki)?;
        let usage = match role {
            PeerRole::Server => webpki::KeyUsage::server_auth(),
            PeerRole::Client => webpki::KeyUsage::client_auth(),
        };
        cert.verify_for_usage(
            algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            usage,
            None,
            None,
        )
        .map_err(IdentityError::from_webpki)?;
        let id = spiffe_id_of(end_entity)?;
        if !self.trust_domain.contains(&id) {
            return Err(IdentityError::OtherTrustDomain {
                expected: self.trust_domain.clone(),
                got: id,
            });
        }
        Ok(id)
    }
}

/// Our own certificate chain, checked as a peer will check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnChain {
    /// The SPIFFE id the leaf proves.
    pub id: SpiffeId,
    /// Why the chain is not valid at the time given, if it is not: the
    /// chain itself is sound (it was verified at a time inside its validity
    /// window), so the caller decides whether dates are fatal.
    pub dates: Option<IdentityError>,
}

/// How many times [`MeshTrust::verify_own`] moves the verification time
/// into a certificate's validity window: one per certificate in a chain of
/// leaf, intermediate and root, plus one.
const OWN_CHAIN_DATE_RETRIES: usize = 4;

impl MeshTrust {
    /// Checks our own chain (leaf first) before we present it: it must lead
    /// to one of our roots, allow both client and server use (a node is
    /// both), and name exactly one SPIFFE id of our trust domain. Validity
    /// dates are checked at `now` but reported apart in
    /// [`OwnChain::dates`]: a certificate issued for a later start (or a
    /// clock that is off) is worth a warning, a certificate from another CA
    /// is not worth starting with.
    pub fn verify_own(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> Result<OwnChain, IdentityError> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err(IdentityError::NoUriSan);
        };
        let mut at = now;
        let mut dates = None;
        for _ in 0..OWN_CHAIN_DATE_RETRIES {
            let checked = self
                .verify(leaf, intermediates, at, PeerRole::Server, algorithms)
                .and_then(|_| self.verify(leaf, intermediates, at, PeerRole::Client, algorithms));
            // webpki checks dates before it looks for the issuer, so a date
            // failure says nothing yet about the chain: verify again at the
            // edge of the window it names.
            let edge = match &checked {
                Err(IdentityError::NotYetValid { not_before, .. }) => *not_before,
                Err(IdentityError::Expired { not_after, .. }) => *not_after,
                _ => return checked.map(|id| OwnChain { id, dates }),
            };
            if dates.is_none() {
                dates = checked.err();
            }
            at = UnixTime::since_unix_epoch(core::time::Duration::from_secs(edge));
        }
        // The certificates' windows do not overlap: no time makes the chain
        // valid.
        Err(dates.unwrap_or(IdentityError::BadEncoding))
    }
}

/// The single SPIFFE id in a certificate's URI SANs, without checking the
/// chain or the trust domain. Used on certificates that are already
/// verified (the peer's after a handshake) or our own.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Result<SpiffeId, IdentityError> {
    let text = single_uri_san(cert)?;
    SpiffeId::parse(&text).map_err(|reason| not_spiffe(&text, reason))
}

/// The text of a certificate's one URI SAN; none or several is an error,
/// since a mesh certificate names exactly one identity.
pub(super) fn single_uri_san<'c>(
    cert: &'c CertificateDer<'_>,
) -> Result<Cow<'c, str>, IdentityError> {
    let uris = uri_sans(cert).map_err(|_| IdentityError::BadEncoding)?;
    match uris.as_slice() {
        [] => Err(IdentityError::NoUriSan),
        [uri] => Ok(String::from_utf8_lossy(uri)),
        more => Err(IdentityError::MultipleUriSans { count: more.len() }),
    }
}

/// The error for a URI SAN `text` that is not the SPIFFE name wanted. The
/// peer chose the text, so only its first `MAX_QUOTED_URI` characters are
/// kept.
pub(super) fn not_spiffe(text: &str, reason: SpiffeIdError) -> IdentityError {
    IdentityError::NotSpiffe {
        uri: text.chars().take(MAX_QUOTED_URI).collect(),
        reason,
    }
}

/// The client's check of a mesh server: chain, SPIFFE id, and that the id
/// is one we expect for this destination.
#[derive(Debug)]
pub struct MeshServerVerifier {
    trust: Arc<MeshTrust>,
    expected: BTreeSet<SpiffeId>,
    /// Ids matching any of these are accepted too (a hub's identities).
    matching: Vec<crate::policy::PrincipalPattern>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl MeshServerVerifier {
    /// A verifier accepting servers whose id is in `expected`.
    /// `algorithms` are the provider's signature verification algorithms.
    pub fn new(
        trust: Arc<MeshTrust>,
        expected: BTreeSet<SpiffeId>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> MeshServerVerifier {
        MeshServerVerifier {
            trust,
            expected,
            matching: Vec::new(),
            algorithms,
        }
    }

    /// A verifier accepting servers whose id matches any of `patterns`
    /// (exact ids or `*` globs), e.g. the hubs an agent may dial.
    pub fn matching(
        trust: Arc<MeshTrust>,
        patterns: Vec<crate::policy::PrincipalPattern>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> MeshServerVerifier {
        MeshServerVerifier {
            trust,
            expected: BTreeSet::new(),
            matching: patterns,
            algorithms,
        }
    }
}

impl MeshServerVerifier {
    /// The whole check of a server's chain at `now`: what a full handshake
    /// runs, and a resumed one runs again on the stored chain.
    pub fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeId, IdentityError> {
        let id = self.trust.verify(
            end_entity,
            intermediates,
            now,
            PeerRole::Server,
            &self.algorithms,
        )?;
        if !self.expected.contains(&id) && !self.matching.iter().any(|p| p.matches(&id)) {
            return Err(IdentityError::UnexpectedIdentity {
                expected: self.expected.iter().cloned().collect(),
                got: id,
            });
        }
        Ok(id)
    }
}

/// The handshake-signature methods, the same on both sides: a TLS 1.2
/// signature is refused ([`tls12_refused`]), a TLS 1.3 one is checked with
/// the verifier's `algorithms`, which are also the schemes offered. Used
/// inside an `impl` of `ServerCertVerifier` or `ClientCertVerifier` for a
/// type with an `algorithms: WebPkiSupportedAlgorithms` field.
macro_rules! tls13_only_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(tls12_refused())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for MeshServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ServerCertVerified::assertion())
    }

    tls13_only_signatures!();
}

/// The server's check of a mesh client: chain and SPIFFE id of our trust
/// domain. Which client may do what is policy's question, asked later.
#[derive(Debug)]
pub struct MeshClientVerifier {
    trust: Arc<MeshTrust>,
    subjects: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl MeshClientVerifier {
    /// A verifier requiring a client certificate of `trust`'s domain.
    pub fn new(trust: Arc<MeshTrust>, algorithms: WebPkiSupportedAlgorithms) -> MeshClientVerifier {
        let subjects = trust.roots.subjects();
        MeshClientVerifier {
            trust,
            subjects,
            algorithms,
        }
    }
}

impl MeshClientVerifier {
    /// The whole check of a client's chain at `now`: what a full handshake
    /// runs, and a resumed one runs again on the stored chain.
    pub fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeId, IdentityError> {
        self.trust.verify(
            end_entity,
            intermediates,
            now,
            PeerRole::Client,
            &self.algorithms,
        )
    }
}

impl ClientCertVerifier for MeshClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    tls13_only_signatures!();
}

/// The configs only enable TLS 1.3, so a TLS 1.2 signature check means a
/// config was built some other way; refuse rather than half-support it.
fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn every_reason_survives_the_trip_through_rustls() {
        let all = [
            IdentityError::UnknownIssuer,
            IdentityError::BadSignature,
            IdentityError::Expired {
                now: 10,
                not_after: 5,
            },
            IdentityError::NotYetValid {
                now: 5,
                not_before: 10,
            },
            IdentityError::WrongKeyUsage,
            IdentityError::BadEncoding,
            IdentityError::ChainRejected("path too long".into()),
            IdentityError::NoUriSan,
            IdentityError::MultipleUriSans { count: 2 },
            IdentityError::NotSpiffe {
                uri: "https://x".into(),
                reason: SpiffeIdError::MissingScheme,
            },
            IdentityError::OtherTrustDomain {
                expected: TrustDomain::new("a.org").unwrap(),
                got: id("spiffe://b.org/ns/x/sa/y"),
            },
            IdentityError::UnexpectedIdentity {
                expected: vec![id("spiffe://a.org/ns/x/sa/y")],
                got: id("spiffe://a.org/ns/x/sa/z"),
            },
        ];
        for e in all {
            let r: rustls::Error = e.clone().into();
            assert_eq!(IdentityError::from_rustls(&r), Some(e));
        }
    }

    #[test]
    fn standard_reasons_map_to_standard_alerts() {
        use rustls::AlertDescription;
        let alert = |e: IdentityError| match rustls::Error::from(e) {
            rustls::Error::InvalidCertificate(c) => AlertDescription::from(c),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            alert(IdentityError::UnknownIssuer),
            AlertDescription::UnknownCA
        );
        assert_eq!(
            alert(IdentityError::Expired {
                now: 2,
                not_after: 1
            }),
            AlertDescription::CertificateExpired
        );
        assert_eq!(
            alert(IdentityError::NoUriSan),
            AlertDescription::CertificateUnknown
        );
    }

    #[test]
    fn unrelated_rustls_errors_are_not_identity_errors() {
        assert_eq!(
            IdentityError::from_rustls(&rustls::Error::NoCertificatesPresented),
            None
        );
        assert_eq!(
            IdentityError::from_rustls(&rustls::Error::InvalidCertificate(
                CertificateError::Revoked
            )),
            None
        );
    }

    #[test]
    fn no_roots_is_refused() {
        let td = TrustDomain::new("a.org").unwrap();
        assert_eq!(
            MeshTrust::new(td.clone(), &[]).err(),
            Some(TrustError::NoRoots)
        );
        let junk = CertificateDer::from(vec![0x30, 0x00]);
        assert!(matches!(
            MeshTrust::new(td, &[junk]),
            Err(TrustError::BadRoot { index: 0, .. })
        ));
    }

    #[test]
    fn long_non_spiffe_uris_are_quoted_short() {
        // A self-made DER with one long URI SAN is enough: spiffe_id_of
        // does not look at the chain.
        let long = format!("https://{}", "x".repeat(1000));
        let cert = test_cert_with_uri(long.as_bytes());
        match spiffe_id_of(&CertificateDer::from(cert)) {
            Err(IdentityError::NotSpiffe { uri, reason }) => {
                assert_eq!(uri.chars().count(), MAX_QUOTED_URI);
                assert!(long.starts_with(&uri));
                assert_eq!(reason, SpiffeIdError::MissingScheme);
            }
            other => panic!("{other:?}"),
        }
    }

    /// The smallest DER shaped like a certificate with one URI SAN.
    fn test_cert_with_uri(uri: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
            let len = value.len();
            let mut out = vec![tag, 0x82, (len >> 8) as u8, len as u8];
            out.extend_from_slice(value);
            out
        }
        let mut ext = tlv(0x06, &[0x55, 0x1d, 0x11]);
        ext.extend(tlv(0x04, &tlv(0x30, &tlv(0x86, uri))));
        let exts = tlv(0xa3, &tlv(0x30, &tlv(0x30, &ext)));
        tlv(0x30, &tlv(0x30, &exts))
    }
}
