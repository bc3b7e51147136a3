//! rustls configs for the mesh: TLS 1.3 only, mutual authentication with
//! the mesh verifiers, ALPN `h2` (configurable), no SNI, and session
//! resumption only where the caller re-checks resumed handshakes (the
//! `resumable_*` configs with their [`ResumedCheck`]).
//!
//! The crypto provider and the time provider always come from the host:
//! this module never asks rustls for a process-wide default, so the
//! simulator's seeded provider and virtual clock reach every handshake.

use core::fmt;
use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::client::Resumption as RustlsResumption;
use rustls::client::TicketRequest;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, StoresServerSessions};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::time_provider::TimeProvider;
use rustls::{CipherSuite, ClientConfig, ServerConfig, SupportedCipherSuite};

use super::resume::{ClientSessions, ResumedCheck, Resumption, ServerSessions};
use super::resume::{TICKETS_PER_HANDSHAKE, TICKETS_PER_RESUMPTION};
use super::verify::{spiffe_id_of, MeshClientVerifier, MeshServerVerifier, MeshTrust};
use super::{IdentityError, SpiffeId};

/// The ALPN protocol of an HBONE connection.
pub const ALPN_H2: &[u8] = b"h2";

/// Why a mesh TLS config cannot be built. All of these are host errors:
/// nothing a peer sends can cause them.
#[derive(Debug)]
pub enum ConfigError {
    /// Our own leaf certificate does not name one SPIFFE id of the trust
    /// domain, so peers would reject it.
    OwnCertificate(IdentityError),
    /// Our certificate chain is empty.
    NoCertificate,
    /// A client config needs at least one acceptable server id.
    NoExpectedIdentity,
    /// An expected server id is outside the trust domain, so no server
    /// could ever match it.
    ExpectedIdentityOutsideTrustDomain(SpiffeId),
    /// No ALPN protocol to offer.
    NoAlpn,
    /// rustls refused the provider (no TLS 1.3 suite) or the key (one the
    /// provider cannot sign with, or not the certificate's).
    Rustls(rustls::Error),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::OwnCertificate(e) => write!(f, "our certificate: {e}"),
            ConfigError::NoCertificate => f.write_str("our certificate chain is empty"),
            ConfigError::NoExpectedIdentity => f.write_str("no expected server identity"),
            ConfigError::ExpectedIdentityOutsideTrustDomain(id) => {
                write!(
                    f,
                    "expected server identity {id} is outside the trust domain"
                )
            }
            ConfigError::NoAlpn => f.write_str("no ALPN protocol"),
            ConfigError::Rustls(e) => write!(f, "rustls: {e}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<rustls::Error> for ConfigError {
    fn from(e: rustls::Error) -> ConfigError {
        ConfigError::Rustls(e)
    }
}

/// Everything a node needs to build its mesh TLS configs: the host's crypto
/// and time providers, what it trusts, and who it is. Cheap to clone; the
/// key is loaded once, so a config per destination costs no key parsing.
#[derive(Clone, Debug)]
pub struct MeshTlsParams {
    provider: Arc<CryptoProvider>,
    time: Arc<dyn TimeProvider>,
    trust: Arc<MeshTrust>,
    certified: Arc<CertifiedKey>,
    alpn: Vec<Vec<u8>>,
    id: SpiffeId,
    resumption: Resumption,
}

/// A mesh TLS config that resumes sessions, and the check every handshake
/// resumed with it must pass (see [`crate::tls::TlsSession::client_resumable`]).
#[derive(Clone, Debug)]
pub struct ResumableConfig<C> {
    config: Arc<C>,
    check: Arc<ResumedCheck>,
    server_sessions: Option<Arc<ServerSessions>>,
}

impl<C> ResumableConfig<C> {
    /// The rustls config.
    pub fn config(&self) -> &Arc<C> {
        &self.config
    }

    /// What a resumed handshake must pass.
    pub fn check(&self) -> &Arc<ResumedCheck> {
        &self.check
    }

    /// Drops every stored session (server) or ticket (client), so each
    /// next handshake is a full one.
    pub fn forget_sessions(&self) {
        if let Some(s) = &self.server_sessions {
            s.forget();
        }
        self.check.forget_tickets();
    }

    /// Sessions (server) or tickets (client) stored now.
    pub fn stored_sessions(&self) -> usize {
        self.server_sessions
            .as_ref()
            .map_or_else(|| self.check.stored_tickets(), |s| s.len())
    }
}

/// `provider` with TLS13_AES_128_GCM_SHA256 first and every other suite
/// after it in the provider's order (a provider without it is kept as is).
///
/// Why: a mesh connection that lives for one flow (a cold flow) spends a
/// good part of its CPU in the TLS 1.3 key schedule and transcript hash,
/// which run on the suite's hash. SHA-256 runs on the CPU's SHA extensions
/// where it has them (x86 SHA-NI, ARMv8 SHA2); SHA-384 never does. ring's
/// default order puts AES-256-GCM/SHA-384 first, and the server follows
/// the client's order. AES-128-GCM keeps 128-bit security; AES-256 stays
/// offered, so a peer that offers only it still connects.
fn sha256_suite_first(provider: Arc<CryptoProvider>) -> Arc<CryptoProvider> {
    let preferred =
        |suite: &SupportedCipherSuite| suite.suite() == CipherSuite::TLS13_AES_128_GCM_SHA256;
    let suites = &provider.cipher_suites;
    if !suites.iter().any(preferred) || suites.first().is_some_and(preferred) {
        return provider;
    }
    let mut reordered = (*provider).clone();
    // Stable: the others keep their order.
    reordered
        .cipher_suites
        .sort_by_key(|suite| !preferred(suite));
    Arc::new(reordered)
}

impl MeshTlsParams {
    /// Checks that `chain`'s leaf names one SPIFFE id of `trust`'s domain
    /// and that the provider can sign with `key` and it is the leaf's key.
    /// ALPN defaults to `h2`.
    pub fn new(
        provider: Arc<CryptoProvider>,
        time: Arc<dyn TimeProvider>,
        trust: Arc<MeshTrust>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<MeshTlsParams, ConfigError> {
        let leaf = chain.first().ok_or(ConfigError::NoCertificate)?;
        let id = spiffe_id_of(leaf).map_err(ConfigError::OwnCertificate)?;
        if !trust.trust_domain().contains(&id) {
            return Err(ConfigError::OwnCertificate(
                IdentityError::OtherTrustDomain {
                    expected: trust.trust_domain().clone(),
                    got: id,
                },
            ));
        }
        let certified = Arc::new(CertifiedKey::from_der(chain, key, &provider)?);
        Ok(MeshTlsParams {
            provider: sha256_suite_first(provider),
            time,
            trust,
            certified,
            alpn: vec![ALPN_H2.to_vec()],
            id,
            resumption: Resumption::disabled(),
        })
    }

    /// Sets whether the `resumable_*` configs resume sessions, and their
    /// limits (off until this is called).
    pub fn with_resumption(mut self, resumption: Resumption) -> MeshTlsParams {
        self.resumption = resumption;
        self
    }

    /// The resumption settings of the `resumable_*` configs.
    pub fn resumption(&self) -> Resumption {
        self.resumption
    }

    /// Replaces the ALPN protocols offered (client) or accepted (server),
    /// in preference order; e.g. `warren-e2e` for end-to-end sessions.
    pub fn with_alpn(mut self, protocols: Vec<Vec<u8>>) -> Result<MeshTlsParams, ConfigError> {
        if protocols.is_empty() || protocols.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::NoAlpn);
        }
        self.alpn = protocols;
        Ok(self)
    }

    /// Our own SPIFFE id, from our leaf certificate.
    pub fn identity(&self) -> &SpiffeId {
        &self.id
    }

    /// Our certificate chain, leaf first (for reporting its validity).
    pub fn certificate_chain(&self) -> &[CertificateDer<'static>] {
        &self.certified.cert
    }

    /// What this node trusts.
    pub fn trust(&self) -> &Arc<MeshTrust> {
        &self.trust
    }

    /// A client config that accepts only servers whose SPIFFE id is in
    /// `expected` (the destination's workload and service ids).
    pub fn client_config(
        &self,
        expected: impl IntoIterator<Item = SpiffeId>,
    ) -> Result<Arc<ClientConfig>, ConfigError> {
        let expected: BTreeSet<SpiffeId> = expected.into_iter().collect();
        if expected.is_empty() {
            return Err(ConfigError::NoExpectedIdentity);
        }
        if let Some(outside) = expected
            .iter()
            .find(|id| !self.trust.trust_domain().contains(id))
        {
            return Err(ConfigError::ExpectedIdentityOutsideTrustDomain(
                outside.clone(),
            ));
        }
        let verifier = MeshServerVerifier::new(
            self.trust.clone(),
            expected,
            self.provider.signature_verification_algorithms,
        );
        self.client_config_with(Arc::new(verifier), RustlsResumption::disabled(), None)
    }

    /// Like [`MeshTlsParams::client_config`], but resuming sessions when
    /// [`MeshTlsParams::resumption`] allows: build one per endpoint
    /// address (its tickets are offered to whoever the config dials) and
    /// keep it, since rustls resumes only with the very config (verifier)
    /// that stored the session. Every handshake made with it must be run
    /// through [`crate::tls::TlsSession::client_resumable`].
    pub fn resumable_client_config(
        &self,
        expected: impl IntoIterator<Item = SpiffeId>,
    ) -> Result<ResumableConfig<ClientConfig>, ConfigError> {
        let expected: BTreeSet<SpiffeId> = expected.into_iter().collect();
        // Same checks as a plain client config.
        self.client_config(expected.iter().cloned())?;
        let verifier = Arc::new(MeshServerVerifier::new(
            self.trust.clone(),
            expected,
            self.provider.signature_verification_algorithms,
        ));
        let sessions = Arc::new(ClientSessions::new(
            self.time.clone(),
            self.resumption.max_age,
        ));
        let (resumption, tickets) = if self.resumption.active() {
            let tickets = TicketRequest {
                new_session_count: u8::try_from(TICKETS_PER_HANDSHAKE).unwrap_or(u8::MAX),
                resumption_count: TICKETS_PER_RESUMPTION,
            };
            (RustlsResumption::store(sessions.clone()), Some(tickets))
        } else {
            (RustlsResumption::disabled(), None)
        };
        let config = self.client_config_with(verifier.clone(), resumption, tickets)?;
        Ok(ResumableConfig {
            config,
            check: Arc::new(ResumedCheck::of_server(
                verifier,
                self.time.clone(),
                sessions,
            )),
            server_sessions: None,
        })
    }

    /// A client config that accepts servers whose SPIFFE id matches any of
    /// `patterns` (exact ids or `*` globs): how an agent dials its hubs.
    pub fn client_config_matching(
        &self,
        patterns: Vec<crate::policy::PrincipalPattern>,
    ) -> Result<Arc<ClientConfig>, ConfigError> {
        if patterns.is_empty() {
            return Err(ConfigError::NoExpectedIdentity);
        }
        let verifier = MeshServerVerifier::matching(
            self.trust.clone(),
            patterns,
            self.provider.signature_verification_algorithms,
        );
        self.client_config_with(Arc::new(verifier), RustlsResumption::disabled(), None)
    }

    fn client_config_with(
        &self,
        verifier: Arc<MeshServerVerifier>,
        resumption: RustlsResumption,
        tickets: Option<TicketRequest>,
    ) -> Result<Arc<ClientConfig>, ConfigError> {
        let mut config =
            ClientConfig::builder_with_details(self.provider.clone(), self.time.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(
                    self.certified.clone(),
                )));
        config.alpn_protocols = self.alpn.clone();
        config.resumption = resumption;
        config.send_ticket_request = tickets;
        // The server name is not an identity here; don't leak one either.
        config.enable_sni = false;
        config.enable_early_data = false;
        Ok(Arc::new(config))
    }

    /// A server config that requires a client certificate of our trust
    /// domain.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, ConfigError> {
        let verifier = Arc::new(MeshClientVerifier::new(
            self.trust.clone(),
            self.provider.signature_verification_algorithms,
        ));
        self.server_config_with(verifier, Arc::new(NoServerSessionStorage {}), 0)
    }

    /// Like [`MeshTlsParams::server_config`], but keeping sessions for
    /// resumption when [`MeshTlsParams::resumption`] allows (stateful
    /// tickets: no ticket keys). Every handshake made with it must be run
    /// through [`crate::tls::TlsSession::server_resumable`].
    pub fn resumable_server_config(&self) -> Result<ResumableConfig<ServerConfig>, ConfigError> {
        let verifier = Arc::new(MeshClientVerifier::new(
            self.trust.clone(),
            self.provider.signature_verification_algorithms,
        ));
        let sessions = Arc::new(ServerSessions::new(self.time.clone(), self.resumption));
        let config = if self.resumption.active() {
            self.server_config_with(verifier.clone(), sessions.clone(), TICKETS_PER_HANDSHAKE)?
        } else {
            self.server_config_with(verifier.clone(), Arc::new(NoServerSessionStorage {}), 0)?
        };
        Ok(ResumableConfig {
            config,
            check: Arc::new(ResumedCheck::of_client(verifier, self.time.clone())),
            server_sessions: Some(sessions),
        })
    }

    fn server_config_with(
        &self,
        verifier: Arc<MeshClientVerifier>,
        storage: Arc<dyn StoresServerSessions>,
        tickets: usize,
    ) -> Result<Arc<ServerConfig>, ConfigError> {
        let mut config =
            ServerConfig::builder_with_details(self.provider.clone(), self.time.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(Arc::new(SingleCertAndKey::from(self.certified.clone())));
        config.alpn_protocols = self.alpn.clone();
        config.session_storage = storage;
        config.send_tls13_tickets = tickets;
        // Honour a client's RFC 9149 ticket request up to the same count
        // (ours ask for fewer on a resumed handshake); 0 ignores requests.
        config.max_tls13_tickets = tickets;
        config.max_early_data_size = 0;
        Ok(Arc::new(config))
    }
}
