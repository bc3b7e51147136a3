//! The agent's identity as proto takes it: PEM files named by the
//! configuration's `[identity]`, or a join ticket, read into a certificate
//! chain, a private key and the trust bundle, ready for
//! `warren_proto::identity::MeshTlsParams` ([`LoadedIdentity::into_params`]).
//!
//! The trust domain is the one the agent's own certificate names: an
//! agent trusts peers of its own mesh only.

use core::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::time_provider::DefaultTimeProvider;
use warren_host::keyshare::with_stocked_key_shares;
use warren_proto::identity::{
    spiffe_id_of, ConfigError, IdentityError, MeshTlsParams, MeshTrust, SpiffeId, TrustDomain,
    TrustError,
};

use crate::ca::Ticket;
use crate::config::{IdentityFiles, IdentitySource};
use warren_proto::front::Target;
use warren_proto::policy::PrincipalPattern;

/// What `MeshTlsParams::new` needs besides the host's providers.
#[derive(Debug)]
pub struct LoadedIdentity {
    /// Who the agent is (from its certificate).
    pub id: SpiffeId,
    /// The CA roots of the agent's trust domain.
    pub trust: MeshTrust,
    /// The agent's chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The agent's private key.
    pub key: PrivateKeyDer<'static>,
    /// The hubs to dial, from a join ticket (none with PEM files).
    pub hubs: Vec<Target>,
    /// The identities those hubs must prove, from the same ticket.
    pub hub_identities: Vec<PrincipalPattern>,
    /// Why the certificate is not valid now (not yet, or no longer), if it
    /// is not: a warning, since it was issued by our CA and the clock or
    /// the start date may be what is off.
    pub dates: Option<IdentityError>,
}

/// Why the identity could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// A file could not be read or holds no PEM of the expected kind.
    Pem {
        /// Where it came from: a path, or `ticket <field>`.
        source: String,
        /// What it should hold.
        expected: &'static str,
        /// The reader's reason.
        reason: String,
    },
    /// The leaf names no single SPIFFE id.
    OwnCertificate(IdentityError),
    /// The CA file holds no usable root.
    Trust(TrustError),
    /// The agent's certificate is not one its own CA file vouches for: a
    /// peer would refuse it in every handshake.
    NotTrusted {
        /// Where the certificate came from.
        cert: String,
        /// Where the CA came from.
        ca: String,
        /// The trust domain the certificate names.
        trust_domain: String,
        /// What the verifier refused (boxed: it is large, and rare).
        reason: Box<IdentityError>,
    },
    /// A join ticket could not be read or is not a ticket.
    Ticket {
        /// The ticket file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A join ticket others than its owner can read: it holds a private
    /// key, so the agent refuses it until the mode is fixed.
    TicketExposed {
        /// The ticket file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Pem {
                source,
                expected,
                reason,
            } => write!(f, "{source}: expected {expected} in PEM form: {reason}"),
            LoadError::OwnCertificate(e) => write!(f, "the agent's certificate: {e}"),
            LoadError::Trust(e) => write!(f, "the CA file: {e}"),
            LoadError::NotTrusted {
                cert,
                ca,
                trust_domain,
                reason,
            } => match **reason {
                // A CA of the same name but another key fails the
                // signature instead: not signed by this CA either way.
                IdentityError::UnknownIssuer | IdentityError::BadSignature => write!(
                    f,
                    "{cert} is not signed by {ca} (trust domain {trust_domain})"
                ),
                _ => write!(
                    f,
                    "{cert} is not valid under {ca} (trust domain {trust_domain}): {reason}"
                ),
            },
            LoadError::Ticket { path, reason } => {
                write!(f, "join ticket {}: {reason}", path.display())
            }
            LoadError::TicketExposed { path, mode } => write!(
                f,
                "join ticket {} is readable by group or others (mode {mode:04o}) and holds a private key; run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// Where PEM text came from, for errors.
enum Source<'a> {
    File(&'a Path),
    Ticket(&'static str),
}

impl Source<'_> {
    fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Ticket(field) => format!("ticket field `{field}`"),
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|e| LoadError::Pem {
        source: path.display().to_string(),
        expected: "a readable file",
        reason: e.to_string(),
    })
}

fn certificates(
    pem: &[u8],
    source: &Source<'_>,
    expected: &'static str,
) -> Result<Vec<CertificateDer<'static>>, LoadError> {
    let error = |reason: String| LoadError::Pem {
        source: source.name(),
        expected,
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}

fn assemble(
    chain_pem: &[u8],
    key_pem: &[u8],
    ca_pem: &[u8],
    sources: [Source<'_>; 3],
) -> Result<LoadedIdentity, LoadError> {
    let [chain_source, key_source, ca_source] = sources;
    let chain = certificates(chain_pem, &chain_source, "the agent's certificate chain")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| LoadError::Pem {
        source: key_source.name(),
        expected: "a private key",
        reason: e.to_string(),
    })?;
    let roots = certificates(ca_pem, &ca_source, "CA certificates")?;
    let id = chain
        .first()
        .map(spiffe_id_of)
        .unwrap_or(Err(IdentityError::NoUriSan))
        .map_err(LoadError::OwnCertificate)?;
    let trust_domain = TrustDomain::new(id.trust_domain()).map_err(|reason| {
        LoadError::OwnCertificate(IdentityError::NotSpiffe {
            uri: id.to_string(),
            reason,
        })
    })?;
    let trust = MeshTrust::new(trust_domain, &roots).map_err(LoadError::Trust)?;
    // Checked as a peer will check it, so a certificate from another CA
    // stops the agent here instead of failing every handshake later.
    let algorithms = default_provider().signature_verification_algorithms;
    let own = trust
        .verify_own(&chain, UnixTime::now(), &algorithms)
        .map_err(|reason| LoadError::NotTrusted {
            cert: chain_source.name(),
            ca: ca_source.name(),
            trust_domain: trust.trust_domain().to_string(),
            reason: Box::new(reason),
        })?;
    Ok(LoadedIdentity {
        id,
        trust,
        chain,
        key,
        hubs: Vec::new(),
        hub_identities: Vec::new(),
        dates: own.dates,
    })
}

impl LoadedIdentity {
    /// The mesh TLS parameters of a real (not simulated) node: ring's
    /// crypto, with X25519 key pairs made while the node is idle (see
    /// `warren_host::keyshare`), and the system clock. Fails when the key
    /// is not the certificate's.
    pub fn into_params(self) -> Result<MeshTlsParams, ConfigError> {
        MeshTlsParams::new(
            Arc::new(with_stocked_key_shares(default_provider())),
            Arc::new(DefaultTimeProvider),
            Arc::new(self.trust),
            self.chain,
            self.key,
        )
    }
}

impl IdentityFiles {
    /// Reads the three PEM files.
    pub fn load(&self) -> Result<LoadedIdentity, LoadError> {
        let chain = read_file(&self.cert)?;
        let key = read_file(&self.key)?;
        let ca = read_file(&self.ca)?;
        let sources = [
            Source::File(&self.cert),
            Source::File(&self.key),
            Source::File(&self.ca),
        ];
        assemble(&chain, &key, &ca, sources)
    }
}

impl Ticket {
    /// The identity a join ticket carries (its hubs are left to
    /// [`IdentitySource::load`], which knows the file to blame).
    pub fn identity(&self) -> Result<LoadedIdentity, LoadError> {
        assemble(
            self.cert.as_bytes(),
            self.key.as_bytes(),
            self.ca.as_bytes(),
            [
                Source::Ticket("cert"),
                Source::Ticket("key"),
                Source::Ticket("ca"),
            ],
        )
    }

    /// Reads the ticket file at `path`, refusing one that group or others
    /// may read (it holds a private key).
    pub fn read(path: &Path) -> Result<Ticket, LoadError> {
        let error = |reason: String| LoadError::Ticket {
            path: path.to_owned(),
            reason,
        };
        let mode = std::fs::metadata(path)
            .map_err(|e| error(e.to_string()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(LoadError::TicketExposed {
                path: path.to_owned(),
                mode: mode & 0o7777,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        Ticket::parse(&text).map_err(|e| error(e.to_string()))
    }
}

impl IdentitySource {
    /// Reads the identity from its files or ticket.
    pub fn load(&self) -> Result<LoadedIdentity, LoadError> {
        match self {
            IdentitySource::Files(files) => files.load(),
            IdentitySource::Ticket(path) => {
                let ticket = Ticket::read(path)?;
                let mut loaded = ticket.identity()?;
                let error = |reason| LoadError::Ticket {
                    path: path.clone(),
                    reason,
                };
                loaded.hubs = ticket.hub_targets().map_err(error)?;
                loaded.hub_identities = ticket.hub_patterns().map_err(error)?;
                Ok(loaded)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::ca;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn params(loaded: LoadedIdentity) -> MeshTlsParams {
        loaded.into_params().unwrap()
    }

    #[test]
    fn issued_files_and_tickets_load_into_mesh_tls_params() {
        let dir = std::env::temp_dir().join(format!("warren-identity-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let td = TrustDomain::new("example.org").unwrap();
        let id = SpiffeId::parse("spiffe://example.org/ns/demo/sa/echo").unwrap();
        ca::init(&td, &dir.join("ca"), 10, now(), false).unwrap();
        ca::issue(&dir.join("ca"), &id, &dir.join("echo"), 1, now(), false).unwrap();
        let files = IdentityFiles {
            cert: dir.join("echo").join(ca::CERT_FILE),
            key: dir.join("echo").join(ca::KEY_FILE),
            ca: dir.join("echo").join(ca::CA_CERT_FILE),
        };
        let loaded = files.load().unwrap();
        assert_eq!(loaded.id, id);
        assert_eq!(loaded.trust.trust_domain(), &td);
        let p = params(loaded);
        assert_eq!(p.identity(), &id);
        p.server_config().unwrap();
        p.client_config([id.clone()]).unwrap();

        let ticket_file = dir.join("t.toml");
        let hubs = [
            "hub1.example.org:15008".to_owned(),
            "10.0.0.9:443".to_owned(),
        ];
        ca::ticket(
            &dir.join("ca"),
            &id,
            &ticket_file,
            &hubs,
            &[],
            1,
            now(),
            false,
        )
        .unwrap();
        let source = IdentitySource::Ticket(ticket_file.clone());
        let loaded = source.load().unwrap();
        let loaded_hubs: Vec<String> = loaded.hubs.iter().map(ToString::to_string).collect();
        assert_eq!(loaded_hubs, hubs);
        let hub = SpiffeId::parse("spiffe://example.org/ns/mesh/sa/hub2").unwrap();
        assert_eq!(loaded.hub_identities.len(), 1);
        assert!(loaded.hub_identities[0].matches(&hub));
        assert!(!loaded.hub_identities[0].matches(&id));
        assert_eq!(params(loaded).identity(), &id);
        // A ticket others may read is refused, with the fix in the message.
        std::fs::set_permissions(&ticket_file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = source.load().unwrap_err().to_string();
        assert!(
            err.contains("mode 0640") && err.contains("chmod 600"),
            "{err}"
        );
        let missing = IdentitySource::Ticket(dir.join("none.ticket")).load();
        assert!(missing.unwrap_err().to_string().contains("none.ticket"));

        // Files swapped by mistake: the key file holds no certificate.
        let swapped = IdentityFiles {
            cert: files.key.clone(),
            ..files.clone()
        };
        let err = swapped.load().unwrap_err();
        assert!(
            err.to_string()
                .contains("expected the agent's certificate chain in PEM form"),
            "{err}"
        );
        let missing = IdentityFiles {
            ca: dir.join("nope.pem"),
            ..files.clone()
        };
        assert!(missing.load().unwrap_err().to_string().contains("nope.pem"));
        // A key that is not the certificate's is caught building the params.
        ca::issue(&dir.join("ca"), &id, &dir.join("other"), 1, now(), false).unwrap();
        let mismatched = IdentityFiles {
            key: dir.join("other").join(ca::KEY_FILE),
            ..files
        };
        assert!(mismatched.load().unwrap().into_params().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
