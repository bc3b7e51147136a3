use super::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};

use warren_proto::identity::spiffe_id_of;

const NOW: u64 = 1_800_000_000;

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("warren-ca-test-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn td(s: &str) -> TrustDomain {
    TrustDomain::new(s).unwrap()
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn pem_cert(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).unwrap()
}

fn verify(ca: &Path, leaf: &CertificateDer<'_>, at: u64) -> Result<SpiffeId, IdentityError> {
    let trust = MeshTrust::new(td("example.org"), &[pem_cert(ca)]).unwrap();
    let algs = default_provider().signature_verification_algorithms;
    trust.verify(
        leaf,
        &[],
        UnixTime::since_unix_epoch(core::time::Duration::from_secs(at)),
        PeerRole::Server,
        &algs,
    )
}

#[test]
fn init_writes_a_ca_naming_its_trust_domain_with_a_private_key() {
    let dir = TempDir::new("init");
    let ca = dir.0.join("ca");
    let issued = init(&td("example.org"), &ca, 365, NOW, false).unwrap();
    assert_eq!(issued.subject, "spiffe://example.org");
    assert_eq!(
        issued.files,
        vec![ca.join(CA_CERT_FILE), ca.join(CA_KEY_FILE)]
    );
    assert_eq!(issued.validity.not_after, NOW + 365 * SECS_PER_DAY);
    assert_eq!(mode(&ca.join(CA_KEY_FILE)), 0o600);
    assert_eq!(mode(&ca.join(CA_CERT_FILE)), 0o644);
    assert_eq!(
        ca_trust_domain(&pem_cert(&ca.join(CA_CERT_FILE))),
        Ok(td("example.org"))
    );
    let key = fs::read_to_string(ca.join(CA_KEY_FILE)).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
    // The report never carries the key.
    assert!(!issued.to_string().contains("PRIVATE"));
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = TempDir::new("overwrite");
    init(&td("example.org"), &dir.0, 30, NOW, false).unwrap();
    let key_before = fs::read(dir.0.join(CA_KEY_FILE)).unwrap();
    let err = init(&td("example.org"), &dir.0, 30, NOW, false).unwrap_err();
    assert!(matches!(&err, CaError::WouldOverwrite(p) if p == &dir.0.join(CA_CERT_FILE)));
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(fs::read(dir.0.join(CA_KEY_FILE)).unwrap(), key_before);
    // With --force a new CA replaces the old one, and a key file that was
    // loosened meanwhile is private again.
    fs::set_permissions(dir.0.join(CA_KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
    init(&td("example.org"), &dir.0, 30, NOW, true).unwrap();
    assert_ne!(fs::read(dir.0.join(CA_KEY_FILE)).unwrap(), key_before);
    assert_eq!(mode(&dir.0.join(CA_KEY_FILE)), 0o600);
}

#[test]
fn issued_leaf_verifies_with_mesh_trust_and_reads_back_its_id() {
    let dir = TempDir::new("issue");
    let ca = dir.0.join("ca");
    let out = dir.0.join("echo");
    init(&td("example.org"), &ca, 365, NOW, false).unwrap();
    let who = id("spiffe://example.org/ns/demo/sa/echo");
    let issued = issue(&ca, &who, &out, 30, NOW, false).unwrap();
    assert_eq!(issued.subject, who.as_str());
    assert_eq!(issued.serial.len(), 32);
    assert_eq!(mode(&out.join(KEY_FILE)), 0o600);
    assert_eq!(mode(&out.join(CERT_FILE)), 0o644);
    assert_eq!(
        fs::read(out.join(CA_CERT_FILE)).unwrap(),
        fs::read(ca.join(CA_CERT_FILE)).unwrap()
    );
    let leaf = pem_cert(&out.join(CERT_FILE));
    assert_eq!(spiffe_id_of(&leaf), Ok(who.clone()));
    assert_eq!(verify(&ca.join(CA_CERT_FILE), &leaf, NOW), Ok(who.clone()));
    // Valid for exactly the days asked (plus the backdating).
    let end = NOW + 30 * SECS_PER_DAY;
    assert_eq!(verify(&ca.join(CA_CERT_FILE), &leaf, end), Ok(who));
    assert_eq!(
        verify(&ca.join(CA_CERT_FILE), &leaf, end + 1),
        Err(IdentityError::Expired {
            now: end + 1,
            not_after: end
        })
    );
    // A second issue gets another serial and another key.
    let again = issue(
        &ca,
        &id("spiffe://example.org/ns/demo/sa/echo"),
        &dir.0.join("again"),
        30,
        NOW,
        false,
    )
    .unwrap();
    assert_ne!(again.serial, issued.serial);
    assert_ne!(
        fs::read(out.join(KEY_FILE)).unwrap(),
        fs::read(dir.0.join("again").join(KEY_FILE)).unwrap()
    );
    // Issuing over existing files is refused too.
    assert!(matches!(
        issue(
            &ca,
            &id("spiffe://example.org/ns/demo/sa/echo"),
            &out,
            30,
            NOW,
            false
        ),
        Err(CaError::WouldOverwrite(_))
    ));
}

#[test]
fn issue_refuses_an_id_of_another_trust_domain_and_writes_nothing() {
    let dir = TempDir::new("wrong-td");
    let ca = dir.0.join("ca");
    let out = dir.0.join("out");
    init(&td("example.org"), &ca, 365, NOW, false).unwrap();
    let err = issue(
        &ca,
        &id("spiffe://example.com/ns/a/sa/b"),
        &out,
        30,
        NOW,
        false,
    )
    .unwrap_err();
    assert!(matches!(&err, CaError::OtherTrustDomain { ca, .. } if ca.as_str() == "example.org"));
    assert!(
        err.to_string()
            .contains("not in the CA's trust domain example.org"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn issue_with_a_key_of_another_ca_fails_its_self_check() {
    let dir = TempDir::new("mismatch");
    let (a, b) = (dir.0.join("a"), dir.0.join("b"));
    init(&td("example.org"), &a, 365, NOW, false).unwrap();
    init(&td("example.org"), &b, 365, NOW, false).unwrap();
    fs::copy(b.join(CA_KEY_FILE), a.join(CA_KEY_FILE)).unwrap();
    let err = issue(
        &a,
        &id("spiffe://example.org/ns/a/sa/b"),
        &dir.0.join("out"),
        30,
        NOW,
        false,
    )
    .unwrap_err();
    assert!(
        matches!(err, CaError::SelfCheck(IdentityError::BadSignature)),
        "{err}"
    );
    assert!(!dir.0.join("out").exists());
}

#[test]
fn zero_days_and_missing_ca_are_refused() {
    let dir = TempDir::new("zero");
    assert!(matches!(
        init(&td("example.org"), &dir.0, 0, NOW, false),
        Err(CaError::ZeroDays)
    ));
    let err = issue(
        &dir.0.join("nope"),
        &id("spiffe://example.org/ns/a/sa/b"),
        &dir.0,
        1,
        NOW,
        false,
    )
    .unwrap_err();
    assert!(
        matches!(&err, CaError::Io(p, _) if p.ends_with(CA_CERT_FILE)),
        "{err}"
    );
}

#[test]
fn ticket_holds_ca_cert_key_and_hubs_and_is_private() {
    let dir = TempDir::new("ticket");
    let ca = dir.0.join("ca");
    init(&td("example.org"), &ca, 365, NOW, false).unwrap();
    let who = id("spiffe://example.org/ns/edge/sa/agent-1");
    let file = dir.0.join("agent-1.ticket.toml");
    let hubs = vec![
        "hub1.example.org:15008".to_owned(),
        "10.0.0.2:15008".to_owned(),
    ];
    let issued = ticket(&ca, &who, &file, &hubs, &[], 30, NOW, false).unwrap();
    assert_eq!(issued.files, vec![file.clone()]);
    assert_eq!(mode(&file), 0o600);
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# warren join ticket for spiffe://example.org/ns/edge/sa/agent-1"));
    let parsed = Ticket::parse(&text).unwrap();
    assert_eq!(parsed.id, who.as_str());
    assert_eq!(parsed.hubs, hubs);
    // No --hub-identity: hubs must prove the default hub identity.
    assert_eq!(
        parsed.hub_identities,
        ["spiffe://example.org/ns/mesh/sa/hub*"]
    );
    assert!(text.contains("hub_identities = [\"spiffe://example.org/ns/mesh/sa/hub*\"]"));
    assert_eq!(
        parsed.ca,
        fs::read_to_string(ca.join(CA_CERT_FILE)).unwrap()
    );
    assert!(parsed.key.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(!format!("{parsed:?}").contains("PRIVATE"));
    let leaf = CertificateDer::from_pem_slice(parsed.cert.as_bytes()).unwrap();
    assert_eq!(verify(&ca.join(CA_CERT_FILE), &leaf, NOW), Ok(who.clone()));
    // The key in the ticket is the certificate's: rustls accepts the pair.
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(parsed.key.as_bytes()).unwrap();
    let signer = default_provider()
        .key_provider
        .load_private_key(key)
        .unwrap();
    rustls::sign::CertifiedKey::new(vec![leaf], signer)
        .keys_match()
        .unwrap();
    // Refusals: overwrite, a bad hub, a ticket of the wrong version.
    assert!(matches!(
        ticket(&ca, &who, &file, &hubs, &[], 30, NOW, false),
        Err(CaError::WouldOverwrite(_))
    ));
    let err = ticket(
        &ca,
        &who,
        &dir.0.join("t2"),
        &["no-port".to_owned()],
        &[],
        30,
        NOW,
        false,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("\"no-port\": missing :port"),
        "{err}"
    );
    assert!(!dir.0.join("t2").exists());
    // A ticket written before hub identities were carried gets the default.
    let older: String = text
        .lines()
        .filter(|l| !l.starts_with("hub_identities"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        Ticket::parse(&older).unwrap().hub_identities,
        parsed.hub_identities
    );
    let newer = text.replace("version = 1", "version = 2");
    assert!(matches!(
        Ticket::parse(&newer),
        Err(TicketError::Version(2))
    ));
}

#[test]
fn ticket_hub_identities_are_given_or_refused_with_the_reason() {
    let dir = TempDir::new("ticket-hub-ids");
    let ca = dir.0.join("ca");
    init(&td("example.org"), &ca, 365, NOW, false).unwrap();
    let who = id("spiffe://example.org/ns/edge/sa/agent-1");
    let hubs = ["hub1.example.org:15009".to_owned()];
    let given = [
        "spiffe://example.org/ns/infra/sa/relay-*".to_owned(),
        "spiffe://example.org/ns/infra/sa/hub".to_owned(),
    ];
    let file = dir.0.join("given.ticket");
    ticket(&ca, &who, &file, &hubs, &given, 30, NOW, false).unwrap();
    let parsed = Ticket::parse(&fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(parsed.hub_identities, given);
    let patterns = parsed.hub_patterns().unwrap();
    let relay = id("spiffe://example.org/ns/infra/sa/relay-eu");
    let stranger = id("spiffe://example.org/ns/mesh/sa/hub1");
    assert!(patterns.iter().any(|p| p.matches(&relay)));
    assert!(!patterns.iter().any(|p| p.matches(&stranger)));
    // No hubs, no identities: nothing to trust as a hub.
    let file = dir.0.join("none.ticket");
    ticket(&ca, &who, &file, &[], &[], 30, NOW, false).unwrap();
    let parsed = Ticket::parse(&fs::read_to_string(&file).unwrap()).unwrap();
    assert!(parsed.hub_identities.is_empty());
    // A pattern of another trust domain could never match: refused, as is
    // an empty one, and nothing is written.
    for (bad, says) in [
        (
            "spiffe://other.org/ns/mesh/sa/hub*",
            "not in trust domain example.org",
        ),
        (
            "spiffe://example.org.evil/ns/mesh/sa/hub",
            "not in trust domain example.org",
        ),
        ("", "\"\""),
    ] {
        let out = dir.0.join("bad.ticket");
        let err = ticket(&ca, &who, &out, &hubs, &[bad.to_owned()], 30, NOW, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--hub-identity") && err.contains(says),
            "{err}"
        );
        assert!(!out.exists());
    }
    // The same check guards a ticket edited by hand.
    let text = fs::read_to_string(dir.0.join("given.ticket"))
        .unwrap()
        .replace(
            "example.org/ns/infra/sa/hub\"",
            "other.org/ns/infra/sa/hub\"",
        );
    let err = Ticket::parse(&text).unwrap_err().to_string();
    assert!(err.starts_with("ticket hub identity:"), "{err}");
}

#[test]
fn validity_is_shown_as_utc_dates() {
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(utc(1_800_000_000), "2027-01-15 08:00:00 UTC");
    assert_eq!(utc(4_107_542_399), "2100-02-28 23:59:59 UTC");
    assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
}
