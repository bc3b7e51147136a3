//! `warren ca`: a small file-based certificate authority for one trust
//! domain.
//!
//! A CA directory holds `ca.pem` (the self-signed root, which names its
//! trust domain in a `spiffe://<trust-domain>` URI SAN) and `ca-key.pem`
//! (its ECDSA P-256 key, mode 0600). Workload certificates follow the
//! mesh's one template, `warren_proto::identity::leaf_params`; this module
//! only adds what proto must not do: draw keys and serial numbers from the
//! OS, read the clock, touch files.
//!
//! Every certificate issued is verified against the CA with
//! `MeshTrust` before it is written, so a key that does not belong to the
//! CA certificate, or a template mistake, fails here and not at the first
//! handshake.

mod files;
mod revoke;
mod ticket;

pub use files::Secrecy;
pub use revoke::{revoke, Revocation};
pub use ticket::{check_hub, Ticket, TicketError, TICKET_VERSION};

use core::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair, SerialNumber, PKCS_ECDSA_P256_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use warren_proto::identity::{
    ca_params, ca_trust_domain, leaf_params, IdentityError, MeshTrust, PeerRole, SpiffeId,
    TemplateError, TrustDomain, TrustError, Validity,
};

use files::Output;

/// The CA certificate's file name, in a CA directory and beside issued
/// certificates.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA key's file name in a CA directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// An issued certificate's file name.
pub const CERT_FILE: &str = "cert.pem";
/// An issued key's file name.
pub const KEY_FILE: &str = "key.pem";

/// How far back a new certificate's validity starts, so a peer whose clock
/// is a little behind ours accepts it at once.
const BACKDATE_SECS: u64 = 5 * 60;
const SECS_PER_DAY: u64 = 24 * 60 * 60;

/// Why a CA command failed.
#[derive(Debug)]
pub enum CaError {
    /// The file exists and `--force` was not given.
    WouldOverwrite(PathBuf),
    /// Reading or writing a file failed.
    Io(PathBuf, io::Error),
    /// A file does not hold the PEM it should.
    BadPem {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        expected: &'static str,
    },
    /// The CA certificate names no trust domain (not made by `warren ca
    /// init`).
    NotWarrenCa(PathBuf, IdentityError),
    /// The CA certificate is not a usable trust anchor.
    BadTrustAnchor(TrustError),
    /// The id to issue for is in another trust domain than the CA's.
    OtherTrustDomain {
        /// The requested id.
        id: SpiffeId,
        /// The CA's trust domain.
        ca: TrustDomain,
    },
    /// `--days 0`.
    ZeroDays,
    /// The certificate template refused.
    Template(TemplateError),
    /// rcgen refused (key generation, key parsing or signing).
    Rcgen(rcgen::Error),
    /// The OS random generator failed.
    Random,
    /// The certificate just issued does not verify against the CA: the
    /// key in the CA directory does not belong to its certificate.
    SelfCheck(IdentityError),
    /// A hub address is not `host:port`.
    BadHub(String),
    /// A hub identity pattern is malformed or of another trust domain.
    BadHubIdentity(String),
    /// The ticket could not be encoded.
    Ticket(String),
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaError::WouldOverwrite(p) => write!(
                f,
                "{} already exists; refusing to overwrite it (pass --force to replace it)",
                p.display()
            ),
            CaError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            CaError::BadPem { path, expected } => {
                write!(f, "{}: expected {expected} in PEM form", path.display())
            }
            CaError::NotWarrenCa(p, e) => write!(
                f,
                "{}: not a warren CA certificate (it must name its trust domain as a spiffe://<trust-domain> URI SAN): {e}",
                p.display()
            ),
            CaError::BadTrustAnchor(e) => write!(f, "CA certificate: {e}"),
            CaError::OtherTrustDomain { id, ca } => write!(
                f,
                "{id} is not in the CA's trust domain {ca}; use an id of the form spiffe://{ca}/ns/NAMESPACE/sa/NAME"
            ),
            CaError::ZeroDays => f.write_str("--days must be at least 1"),
            CaError::Template(e) => write!(f, "certificate template: {e}"),
            CaError::Rcgen(e) => write!(f, "certificate: {e}"),
            CaError::Random => f.write_str("the system random generator failed"),
            CaError::SelfCheck(e) => write!(
                f,
                "the issued certificate does not verify against the CA ({e}); was the CA made by `warren ca init`, and does ca-key.pem belong to ca.pem?"
            ),
            CaError::BadHub(e) => write!(f, "--hub {e}; expected host:port"),
            CaError::BadHubIdentity(e) => write!(f, "--hub-identity {e}"),
            CaError::Ticket(e) => write!(f, "cannot encode the ticket: {e}"),
        }
    }
}

impl std::error::Error for CaError {}

impl From<TemplateError> for CaError {
    fn from(e: TemplateError) -> CaError {
        CaError::Template(e)
    }
}

impl From<rcgen::Error> for CaError {
    fn from(e: rcgen::Error) -> CaError {
        CaError::Rcgen(e)
    }
}

/// The CA certificate's common name: a function of the trust domain alone,
/// so `issue` can rebuild the issuer name from the certificate's SAN.
fn ca_common_name(trust_domain: &TrustDomain) -> String {
    format!("warren CA {trust_domain}")
}

/// A positive 16-byte serial from the OS (RFC 5280 allows up to 20; the
/// top bit is cleared so the DER integer is never negative or padded).
fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn validity(now: u64, days: u32) -> Result<Validity, CaError> {
    if days == 0 {
        return Err(CaError::ZeroDays);
    }
    Ok(Validity {
        not_before: now.saturating_sub(BACKDATE_SECS),
        not_after: now.saturating_add(u64::from(days).saturating_mul(SECS_PER_DAY)),
    })
}

fn hex(serial: &SerialNumber) -> String {
    serial
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian; the
/// civil-from-days conversion of Howard Hinnant's date algorithms).
fn utc(secs: u64) -> String {
    let days = secs / SECS_PER_DAY;
    let rem = secs % SECS_PER_DAY;
    // Shift the epoch to 0000-03-01 so leap days end each 400-year era.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// What a command wrote, for the operator. Never holds a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The identity certified: the trust domain id for a CA, the SPIFFE id
    /// for a workload.
    pub subject: String,
    /// The serial number, hex.
    pub serial: String,
    /// Validity, unix seconds.
    pub validity: Validity,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
}

impl fmt::Display for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "subject:   {}", self.subject)?;
        writeln!(f, "serial:    {}", self.serial)?;
        writeln!(
            f,
            "valid:     {} to {}",
            utc(self.validity.not_before),
            utc(self.validity.not_after)
        )?;
        for file in &self.files {
            writeln!(f, "wrote:     {}", file.display())?;
        }
        Ok(())
    }
}

/// `warren ca init`: a new CA for `trust_domain` in `out`, valid `days`
/// from `now` (unix seconds).
pub fn init(
    trust_domain: &TrustDomain,
    out: &Path,
    days: u32,
    now: u64,
    force: bool,
) -> Result<Issued, CaError> {
    let validity = validity(now, days)?;
    let serial = random_serial()?;
    let params = ca_params(
        &ca_common_name(trust_domain),
        Some(trust_domain),
        serial.clone(),
        validity,
    )?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    let outputs = [
        Output {
            path: out.join(CA_CERT_FILE),
            contents: cert.pem(),
            secrecy: Secrecy::Public,
        },
        Output {
            path: out.join(CA_KEY_FILE),
            contents: key.serialize_pem(),
            secrecy: Secrecy::Secret,
        },
    ];
    files::write_all(&outputs, force)?;
    Ok(Issued {
        subject: format!("spiffe://{trust_domain}"),
        serial: hex(&serial),
        validity,
        files: outputs.into_iter().map(|o| o.path).collect(),
    })
}

/// A CA loaded from its directory, ready to sign.
struct LoadedCa {
    trust_domain: TrustDomain,
    cert_pem: String,
    cert: CertificateDer<'static>,
    key: KeyPair,
}

impl LoadedCa {
    fn load(dir: &Path) -> Result<LoadedCa, CaError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = files::read(&cert_path)?;
        let cert =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|_| CaError::BadPem {
                path: cert_path.clone(),
                expected: "a certificate",
            })?;
        let trust_domain =
            ca_trust_domain(&cert).map_err(|e| CaError::NotWarrenCa(cert_path.clone(), e))?;
        let key = KeyPair::from_pem(&files::read(&key_path)?).map_err(|_| CaError::BadPem {
            path: key_path,
            expected: "a PKCS#8 private key",
        })?;
        Ok(LoadedCa {
            trust_domain,
            cert_pem,
            cert,
            key,
        })
    }

    /// A new key and certificate for `id`, verified against this CA.
    fn issue(self, id: &SpiffeId, days: u32, now: u64) -> Result<Leaf, CaError> {
        if !self.trust_domain.contains(id) {
            return Err(CaError::OtherTrustDomain {
                id: id.clone(),
                ca: self.trust_domain,
            });
        }
        let validity = validity(now, days)?;
        let serial = random_serial()?;
        // An issuer needs only the CA's name, key identifier method and key
        // usages, which `ca_params` derives from the trust domain; serial
        // and validity do not reach the signed certificate.
        let issuer_params = ca_params(
            &ca_common_name(&self.trust_domain),
            Some(&self.trust_domain),
            serial.clone(),
            validity,
        )?;
        let trust = MeshTrust::new(self.trust_domain.clone(), core::slice::from_ref(&self.cert))
            .map_err(CaError::BadTrustAnchor)?;
        let issuer = Issuer::new(issuer_params, self.key);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = leaf_params(id, serial.clone(), validity)?.signed_by(&key, &issuer)?;
        let algorithms = default_provider().signature_verification_algorithms;
        let at = UnixTime::since_unix_epoch(core::time::Duration::from_secs(now));
        for role in [PeerRole::Client, PeerRole::Server] {
            let proven = trust
                .verify(cert.der(), &[], at, role, &algorithms)
                .map_err(CaError::SelfCheck)?;
            debug_assert_eq!(&proven, id);
        }
        Ok(Leaf {
            ca_pem: self.cert_pem,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issued: Issued {
                subject: id.to_string(),
                serial: hex(&serial),
                validity,
                files: Vec::new(),
            },
        })
    }
}

/// An issued workload certificate, its key and its CA, in PEM.
struct Leaf {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    issued: Issued,
}

/// `warren ca issue`: a certificate and key for `id` from the CA in
/// `ca_dir`, written to `out` as `cert.pem`, `key.pem` (0600) and a copy
/// of `ca.pem`.
pub fn issue(
    ca_dir: &Path,
    id: &SpiffeId,
    out: &Path,
    days: u32,
    now: u64,
    force: bool,
) -> Result<Issued, CaError> {
    let leaf = LoadedCa::load(ca_dir)?.issue(id, days, now)?;
    let outputs = [
        Output {
            path: out.join(CERT_FILE),
            contents: leaf.cert_pem,
            secrecy: Secrecy::Public,
        },
        Output {
            path: out.join(KEY_FILE),
            contents: leaf.key_pem,
            secrecy: Secrecy::Secret,
        },
        Output {
            path: out.join(CA_CERT_FILE),
            contents: leaf.ca_pem,
            secrecy: Secrecy::Public,
        },
    ];
    files::write_all(&outputs, force)?;
    Ok(Issued {
        files: outputs.into_iter().map(|o| o.path).collect(),
        ..leaf.issued
    })
}

/// `warren ca ticket`: a join ticket for `id` (a fresh certificate and
/// key, the CA certificate, the hubs and the identities they must prove:
/// `hub_identities`, or `spiffe://<trust-domain>/ns/mesh/sa/hub*` when it
/// is empty and there are hubs), written to `out` (0600).
#[allow(clippy::too_many_arguments)] // one per command-line option
pub fn ticket(
    ca_dir: &Path,
    id: &SpiffeId,
    out: &Path,
    hubs: &[String],
    hub_identities: &[String],
    days: u32,
    now: u64,
    force: bool,
) -> Result<Issued, CaError> {
    for hub in hubs {
        check_hub(hub).map_err(CaError::BadHub)?;
    }
    let hub_identities = match (hubs.is_empty(), hub_identities.is_empty()) {
        (false, true) => vec![ticket::default_hub_identity(id.trust_domain())],
        _ => hub_identities.to_vec(),
    };
    for pattern in &hub_identities {
        ticket::check_hub_identity(pattern, id.trust_domain()).map_err(CaError::BadHubIdentity)?;
    }
    let leaf = LoadedCa::load(ca_dir)?.issue(id, days, now)?;
    let ticket = Ticket {
        version: TICKET_VERSION,
        id: id.to_string(),
        hubs: hubs.to_vec(),
        hub_identities,
        ca: leaf.ca_pem,
        cert: leaf.cert_pem,
        key: leaf.key_pem,
    };
    let contents = ticket
        .to_toml()
        .map_err(|e| CaError::Ticket(e.to_string()))?;
    let outputs = [Output {
        path: out.to_owned(),
        contents,
        secrecy: Secrecy::Secret,
    }];
    files::write_all(&outputs, force)?;
    Ok(Issued {
        files: vec![out.to_owned()],
        ..leaf.issued
    })
}

#[cfg(test)]
mod tests;
