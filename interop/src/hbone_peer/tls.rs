//! The peer's mesh identity (the files `warren ca issue --out DIR` writes)
//! and its rustls configurations: TLS 1.3 only, ALPN `h2`, ring, client
//! certificates required. rustls' webpki checks the chain against the mesh
//! CA; the SPIFFE id is checked afterwards by [`peer_spiffe_id`], with the
//! peer's own reader ([`super::spiffe`]).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    ClientConfig, CommonState, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme,
};

use super::{spiffe, PeerError};

/// The ALPN protocol HBONE runs on.
pub const ALPN_H2: &[u8] = b"h2";

/// A certificate chain, its key and the CA certificates trusted.
#[derive(Debug)]
pub struct PeerIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    roots: Arc<RootCertStore>,
}

impl Clone for PeerIdentity {
    fn clone(&self) -> PeerIdentity {
        PeerIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roots: Arc::clone(&self.roots),
        }
    }
}

fn setup(what: &str, path: &Path, e: impl std::fmt::Display) -> PeerError {
    PeerError::Setup(format!("{what} {}: {e}", path.display()))
}

impl PeerIdentity {
    /// Reads `cert.pem` (chain, leaf first), `key.pem` (PKCS#8) and `ca.pem`
    /// (trusted CAs) from `dir`.
    pub fn from_dir(dir: &Path) -> Result<PeerIdentity, PeerError> {
        let (cert, key, ca) = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("ca.pem"),
        );
        let chain = CertificateDer::pem_file_iter(&cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| setup("certificates", &cert, e))?;
        let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| setup("key", &key, e))?;
        PeerIdentity::with_trust(chain, key, &ca)
    }

    /// This identity's chain and key, trusting the CAs in the PEM file
    /// `ca` instead (a test of a peer from another trust domain).
    pub fn with_trust(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca: &Path,
    ) -> Result<PeerIdentity, PeerError> {
        let mut roots = RootCertStore::empty();
        for root in CertificateDer::pem_file_iter(ca).map_err(|e| setup("CA", ca, e))? {
            let root = root.map_err(|e| setup("CA", ca, e))?;
            roots.add(root).map_err(|e| setup("CA", ca, e))?;
        }
        if chain.is_empty() {
            return Err(PeerError::Setup("no certificate in the chain".into()));
        }
        Ok(PeerIdentity {
            chain,
            key,
            roots: Arc::new(roots),
        })
    }

    /// The same chain and key trusting the CAs of `ca` (PEM).
    pub fn trusting(&self, ca: &Path) -> Result<PeerIdentity, PeerError> {
        PeerIdentity::with_trust(self.chain.clone(), self.key.clone_key(), ca)
    }

    /// The client configuration: this identity as client certificate,
    /// the server's chain checked against the trusted CAs (not its name:
    /// mesh certificates carry a SPIFFE URI, not a DNS name).
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, PeerError> {
        let provider = Arc::new(ring::default_provider());
        let verifier = Arc::new(MeshServerVerifier {
            roots: Arc::clone(&self.roots),
            provider: Arc::clone(&provider),
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| PeerError::Setup(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| PeerError::Setup(e.to_string()))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }

    /// The server configuration: this identity as server certificate, a
    /// client certificate chaining to the trusted CAs required.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, PeerError> {
        let provider = Arc::new(ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&self.roots), provider.clone())
                .build()
                .map_err(|e| PeerError::Setup(e.to_string()))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| PeerError::Setup(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| PeerError::Setup(e.to_string()))?;
        config.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(Arc::new(config))
    }
}

/// After a handshake: ALPN must be `h2`, and the other side's leaf must
/// carry exactly one SPIFFE id, which is returned.
pub fn peer_spiffe_id(state: &CommonState) -> Result<String, PeerError> {
    match state.alpn_protocol() {
        Some(ALPN_H2) => {}
        other => return Err(PeerError::Alpn(other.map(<[u8]>::to_vec))),
    }
    let leaf = state
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or(PeerError::Identity(spiffe::SpiffeError::Malformed(
            "no peer certificate",
        )))?;
    spiffe::spiffe_id(leaf).map_err(PeerError::Identity)
}

/// Checks a server's chain against the mesh CA with rustls' webpki, and
/// nothing about its name.
#[derive(Debug)]
struct MeshServerVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
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
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
