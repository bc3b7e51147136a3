//! The mesh identity layer end to end: certificates made with rcgen, the
//! mesh rustls configs, and two `TlsSession`s pumping bytes in memory.
//! Every attack must fail the handshake with an error that says why, on
//! the side that checked, and an alert that says why on the other.

use std::sync::Arc;

use quickcheck::TestResult;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::AlertDescription;
use warren_proto::identity::{
    ConfigError, IdentityError, MeshServerVerifier, MeshTlsParams, MeshTrust, SpiffeId,
    SpiffeIdError, TrustDomain,
};
use warren_proto::tls::{PlaintextRead, TlsError, TlsSession, DEFAULT_BUFFER_LIMIT};

mod common;

use common::{at, ed25519_pkcs8, key, self_signed_ca, workload_leaf, FixedTime, DAY, NOW, TD};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

fn ca(name: &str, seed: u8) -> Ca {
    let (issuer, cert) = self_signed_ca(name, seed);
    Ca { issuer, cert }
}

struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn uri(s: &str) -> SanType {
    SanType::URI(s.try_into().unwrap())
}

/// A workload leaf: valid a day either side of NOW, both EKUs, one URI SAN
/// `id`; `edit` then breaks it the way a test needs.
fn leaf_with(ca: &Ca, seed: u8, id: &str, edit: impl FnOnce(&mut CertificateParams)) -> Leaf {
    let mut params = workload_leaf(id, seed);
    edit(&mut params);
    let key = key(seed);
    let cert = params.signed_by(&key, &ca.issuer).unwrap().der().clone();
    Leaf {
        chain: vec![cert],
        key: PrivateKeyDer::Pkcs8(ed25519_pkcs8(seed).into()),
    }
}

fn leaf(ca: &Ca, seed: u8, id: &str) -> Leaf {
    leaf_with(ca, seed, id, |_| {})
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

const CLIENT_ID: &str = "spiffe://mesh.test/ns/shop/sa/cart";
const SERVER_ID: &str = "spiffe://mesh.test/ns/shop/sa/db";

fn trust(ca: &Ca) -> Arc<MeshTrust> {
    Arc::new(
        MeshTrust::new(
            TrustDomain::new(TD).unwrap(),
            std::slice::from_ref(&ca.cert),
        )
        .unwrap(),
    )
}

/// Params without the own-certificate check, for certificates that are
/// broken on purpose: build them as if they were fine, using a good leaf,
/// then swap the chain in through rustls directly.
fn params(ca: &Ca, leaf: Leaf, now: u64) -> MeshTlsParams {
    MeshTlsParams::new(
        provider(),
        Arc::new(FixedTime(now)),
        trust(ca),
        leaf.chain,
        leaf.key,
    )
    .unwrap()
}

/// A client session whose certificate may be anything: built with rustls'
/// own builder around the mesh server verifier, since `MeshTlsParams`
/// refuses to present a certificate peers would reject.
fn raw_client(ca: &Ca, leaf: Leaf, expected: &str, now: u64) -> TlsSession {
    let mut config = raw_client_builder(ca, expected, now, &rustls::version::TLS13)
        .with_client_auth_cert(leaf.chain, leaf.key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    TlsSession::client(Arc::new(config), DEFAULT_BUFFER_LIMIT).unwrap()
}

/// rustls' client builder around the mesh server verifier (expecting
/// `expected`) at `now`, speaking only `version`, up to the choice of a
/// client certificate: the test picks what the client presents.
fn raw_client_builder(
    ca: &Ca,
    expected: &str,
    now: u64,
    version: &'static rustls::SupportedProtocolVersion,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    let p = provider();
    let verifier = MeshServerVerifier::new(
        trust(ca),
        [id(expected)].into_iter().collect(),
        p.signature_verification_algorithms,
    );
    rustls::ClientConfig::builder_with_details(p, Arc::new(FixedTime(now)))
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
}

/// A server session whose certificate may be anything (see `raw_client`).
fn raw_server(ca: &Ca, leaf: Leaf, now: u64) -> TlsSession {
    let p = provider();
    let verifier = warren_proto::identity::MeshClientVerifier::new(
        trust(ca),
        p.signature_verification_algorithms,
    );
    let mut config = rustls::ServerConfig::builder_with_details(p, Arc::new(FixedTime(now)))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(leaf.chain, leaf.key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    TlsSession::server(Arc::new(config), DEFAULT_BUFFER_LIMIT).unwrap()
}

/// A mesh client and a mesh server with leaves of one CA, handshaken.
fn connected() -> (TlsSession, TlsSession) {
    let ca = ca("mesh CA", 1);
    let mut client = mesh_client(&ca, leaf(&ca, 10, CLIENT_ID), &[SERVER_ID], NOW);
    let mut server = mesh_server(&ca, leaf(&ca, 11, SERVER_ID), NOW);
    assert_eq!(handshake(&mut client, &mut server), (None, None));
    (client, server)
}

fn mesh_client(ca: &Ca, leaf: Leaf, expected: &[&str], now: u64) -> TlsSession {
    let config = params(ca, leaf, now)
        .client_config(expected.iter().map(|s| id(s)))
        .unwrap();
    TlsSession::client(config, DEFAULT_BUFFER_LIMIT).unwrap()
}

fn mesh_server(ca: &Ca, leaf: Leaf, now: u64) -> TlsSession {
    let config = params(ca, leaf, now).server_config().unwrap();
    TlsSession::server(config, DEFAULT_BUFFER_LIMIT).unwrap()
}

/// Everything that crossed the wire, per direction.
#[derive(Default, Debug)]
struct Transcript {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
}

/// Moves ciphertext both ways until neither side has anything to send.
/// Returns each side's error, if any.
fn pump(
    client: &mut TlsSession,
    server: &mut TlsSession,
    wire: &mut Transcript,
) -> (Option<TlsError>, Option<TlsError>) {
    let (mut client_err, mut server_err) = (None, None);
    for _ in 0..100 {
        let mut c2s = Vec::new();
        client.write_tls(&mut c2s);
        wire.to_server.extend_from_slice(&c2s);
        if server_err.is_none() && !c2s.is_empty() {
            match server.read_tls(&c2s) {
                Ok(n) => assert_eq!(n, c2s.len(), "server refused bytes"),
                Err(e) => server_err = Some(e),
            }
        }
        let mut s2c = Vec::new();
        server.write_tls(&mut s2c);
        wire.to_client.extend_from_slice(&s2c);
        if client_err.is_none() && !s2c.is_empty() {
            match client.read_tls(&s2c) {
                Ok(n) => assert_eq!(n, s2c.len(), "client refused bytes"),
                Err(e) => client_err = Some(e),
            }
        }
        if c2s.is_empty() && s2c.is_empty() {
            return (client_err, server_err);
        }
    }
    panic!("handshake did not settle");
}

fn handshake(
    client: &mut TlsSession,
    server: &mut TlsSession,
) -> (Option<TlsError>, Option<TlsError>) {
    pump(client, server, &mut Transcript::default())
}

/// Drains all readable plaintext.
fn read_all(session: &mut TlsSession) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1000];
    while let PlaintextRead::Data(n) = session.read_plaintext(&mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Sends `data` from `from` to `to`, pumping as the buffers fill.
fn send(from: &mut TlsSession, to: &mut TlsSession, data: &[u8]) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    while sent < data.len() || from.wants_write() {
        sent += from.write_plaintext(&data[sent..]).unwrap();
        let mut wire = Vec::new();
        from.write_tls(&mut wire);
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = to.read_tls(rest).unwrap();
            rest = &rest[n..];
            got.extend(read_all(to));
        }
    }
    got.extend(read_all(to));
    got
}

#[test]
fn mutual_handshake_reports_both_identities_and_carries_data() {
    let ca = ca("mesh CA", 1);
    let mut client = mesh_client(&ca, leaf(&ca, 10, CLIENT_ID), &[SERVER_ID], NOW);
    let mut server = mesh_server(&ca, leaf(&ca, 11, SERVER_ID), NOW);
    assert!(client.is_handshaking() && server.is_handshaking());
    assert_eq!(client.peer_identity(), None);

    assert_eq!(handshake(&mut client, &mut server), (None, None));
    assert!(!client.is_handshaking() && !server.is_handshaking());
    assert_eq!(client.peer_identity(), Some(&id(SERVER_ID)));
    assert_eq!(server.peer_identity(), Some(&id(CLIENT_ID)));
    assert_eq!(client.alpn_protocol(), Some(&b"h2"[..]));
    assert_eq!(server.alpn_protocol(), Some(&b"h2"[..]));

    let up: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let down: Vec<u8> = (0..150_000u32).map(|i| (i % 241) as u8).collect();
    assert_eq!(send(&mut client, &mut server, &up), up);
    assert_eq!(send(&mut server, &mut client, &down), down);

    // close_notify is a clean half-close each way.
    client.close();
    assert_eq!(
        client.write_plaintext(b"late"),
        Err(TlsError::WriteAfterClose)
    );
    assert_eq!(handshake(&mut client, &mut server), (None, None));
    assert!(server.peer_closed());
    assert_eq!(server.read_plaintext(&mut [0; 8]), PlaintextRead::Closed);
    assert_eq!(send(&mut server, &mut client, b"bye"), b"bye");
}

#[test]
fn ecdsa_p256_certificates_work_too() {
    // ztunnel's CA issues P-256 keys; the verifiers must not assume Ed25519.
    let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.not_before = at(NOW - DAY);
    ca_params.not_after = at(NOW + DAY);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap().der().clone();
    let ca = Ca {
        issuer: Issuer::new(ca_params, ca_key),
        cert: ca_cert,
    };
    let p256_leaf = |name: &str| {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![uri(name)];
        params.not_before = at(NOW - DAY);
        params.not_after = at(NOW + DAY);
        let cert = params.signed_by(&key, &ca.issuer).unwrap().der().clone();
        Leaf {
            chain: vec![cert],
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        }
    };
    let mut client = mesh_client(&ca, p256_leaf(CLIENT_ID), &[SERVER_ID], NOW);
    let mut server = mesh_server(&ca, p256_leaf(SERVER_ID), NOW);
    assert_eq!(handshake(&mut client, &mut server), (None, None));
    assert_eq!(server.peer_identity(), Some(&id(CLIENT_ID)));
    assert_eq!(client.peer_identity(), Some(&id(SERVER_ID)));
}

#[test]
fn intermediate_ca_chains_verify() {
    let root = ca("root", 1);
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "intermediate");
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    params.not_before = at(NOW - DAY);
    params.not_after = at(NOW + DAY);
    let inter_key = key(2);
    let inter_cert = params
        .signed_by(&inter_key, &root.issuer)
        .unwrap()
        .der()
        .clone();
    let inter = Ca {
        issuer: Issuer::new(params, inter_key),
        cert: inter_cert.clone(),
    };
    let mut client_leaf = leaf(&inter, 10, CLIENT_ID);
    client_leaf.chain.push(inter_cert.clone());
    let mut server_leaf = leaf(&inter, 11, SERVER_ID);
    server_leaf.chain.push(inter_cert);
    let mut client = mesh_client(&root, client_leaf, &[SERVER_ID], NOW);
    let mut server = mesh_server(&root, server_leaf, NOW);
    assert_eq!(handshake(&mut client, &mut server), (None, None));
    assert_eq!(server.peer_identity(), Some(&id(CLIENT_ID)));
}

/// Runs a handshake where the client presents `bad` and asserts the server
/// rejects it with `why`, and the client hears `alert`.
fn client_cert_rejected(ca: &Ca, bad: Leaf, now: u64, why: IdentityError, alert: AlertDescription) {
    let mut client = raw_client(ca, bad, SERVER_ID, now);
    let mut server = mesh_server(ca, leaf(ca, 11, SERVER_ID), now);
    let (client_err, server_err) = handshake(&mut client, &mut server);
    assert_eq!(server_err, Some(TlsError::PeerCertificate(why)));
    assert_eq!(client_err, Some(TlsError::AlertReceived(alert)));
    assert_eq!(server.peer_identity(), None);
}

/// The same with the server presenting `bad` to a mesh client.
fn server_cert_rejected(
    ca: &Ca,
    bad: Leaf,
    expected: &str,
    now: u64,
    why: IdentityError,
    alert: AlertDescription,
) {
    let mut client = mesh_client(ca, leaf(ca, 10, CLIENT_ID), &[expected], now);
    let mut server = raw_server(ca, bad, now);
    let (client_err, server_err) = handshake(&mut client, &mut server);
    assert_eq!(client_err, Some(TlsError::PeerCertificate(why)));
    assert_eq!(server_err, Some(TlsError::AlertReceived(alert)));
    assert_eq!(client.peer_identity(), None);
}

/// The same refusal both ways, at [`NOW`]: a client presenting
/// `leaf(signer, 10, client_id)` to a mesh server, and a server presenting
/// `leaf(signer, 11, server_id)` to a mesh client expecting [`SERVER_ID`].
fn rejected_both_ways(
    ca: &Ca,
    signer: &Ca,
    (client_id, server_id): (&str, &str),
    why: IdentityError,
    alert: AlertDescription,
) {
    client_cert_rejected(ca, leaf(signer, 10, client_id), NOW, why.clone(), alert);
    server_cert_rejected(ca, leaf(signer, 11, server_id), SERVER_ID, NOW, why, alert);
}

#[test]
fn certificate_from_another_ca_is_an_unknown_issuer() {
    let ca = ca("mesh CA", 1);
    let rogue = self::ca("rogue CA", 2);
    rejected_both_ways(
        &ca,
        &rogue,
        (CLIENT_ID, SERVER_ID),
        IdentityError::UnknownIssuer,
        AlertDescription::UnknownCA,
    );
}

#[test]
fn certificate_from_a_ca_impersonating_ours_has_a_bad_signature() {
    // Same subject name as our CA, other key: webpki finds our root by
    // name, and the signature is what fails.
    let ca = ca("mesh CA", 1);
    let rogue = self::ca("mesh CA", 2);
    rejected_both_ways(
        &ca,
        &rogue,
        (CLIENT_ID, SERVER_ID),
        IdentityError::BadSignature,
        AlertDescription::DecryptError,
    );
}

#[test]
fn spiffe_id_of_another_trust_domain_is_refused() {
    let ca = ca("mesh CA", 1);
    let foreign = "spiffe://other.test/ns/shop/sa/cart";
    let why = IdentityError::OtherTrustDomain {
        expected: TrustDomain::new(TD).unwrap(),
        got: id(foreign),
    };
    rejected_both_ways(
        &ca,
        &ca,
        (foreign, foreign),
        why,
        AlertDescription::CertificateUnknown,
    );
}

#[test]
fn certificate_without_uri_san_is_refused() {
    let ca = ca("mesh CA", 1);
    let bad = leaf_with(&ca, 10, CLIENT_ID, |p| p.subject_alt_names.clear());
    client_cert_rejected(
        &ca,
        bad,
        NOW,
        IdentityError::NoUriSan,
        AlertDescription::CertificateUnknown,
    );
}

#[test]
fn spiffe_id_in_common_name_or_dns_san_is_not_an_identity() {
    let ca = ca("mesh CA", 1);
    let in_cn = leaf_with(&ca, 10, CLIENT_ID, |p| {
        p.subject_alt_names.clear();
        p.distinguished_name.push(DnType::CommonName, CLIENT_ID);
    });
    client_cert_rejected(
        &ca,
        in_cn,
        NOW,
        IdentityError::NoUriSan,
        AlertDescription::CertificateUnknown,
    );
    let in_dns = leaf_with(&ca, 10, CLIENT_ID, |p| {
        p.subject_alt_names = vec![SanType::DnsName(CLIENT_ID.try_into().unwrap())];
    });
    server_cert_rejected(
        &ca,
        in_dns,
        CLIENT_ID,
        NOW,
        IdentityError::NoUriSan,
        AlertDescription::CertificateUnknown,
    );
}

#[test]
fn two_uri_sans_are_refused_even_if_both_are_ours() {
    let ca = ca("mesh CA", 1);
    let bad = leaf_with(&ca, 10, CLIENT_ID, |p| {
        p.subject_alt_names.push(uri(SERVER_ID));
    });
    client_cert_rejected(
        &ca,
        bad,
        NOW,
        IdentityError::MultipleUriSans { count: 2 },
        AlertDescription::CertificateUnknown,
    );
    let bad = leaf_with(&ca, 11, SERVER_ID, |p| {
        p.subject_alt_names.push(uri("https://evil.example/"));
    });
    server_cert_rejected(
        &ca,
        bad,
        SERVER_ID,
        NOW,
        IdentityError::MultipleUriSans { count: 2 },
        AlertDescription::CertificateUnknown,
    );
}

#[test]
fn non_spiffe_uri_san_is_refused() {
    let ca = ca("mesh CA", 1);
    let bad = leaf_with(&ca, 10, "https://shop.example/cart", |_| {});
    client_cert_rejected(
        &ca,
        bad,
        NOW,
        IdentityError::NotSpiffe {
            uri: "https://shop.example/cart".into(),
            reason: SpiffeIdError::MissingScheme,
        },
        AlertDescription::CertificateUnknown,
    );
    // A SPIFFE URI that is not /ns/<ns>/sa/<sa> is not a mesh identity either.
    let bad = leaf_with(&ca, 11, "spiffe://mesh.test/workload/db", |_| {});
    server_cert_rejected(
        &ca,
        bad,
        SERVER_ID,
        NOW,
        IdentityError::NotSpiffe {
            uri: "spiffe://mesh.test/workload/db".into(),
            reason: SpiffeIdError::NotNamespaceServiceAccount,
        },
        AlertDescription::CertificateUnknown,
    );
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused_by_the_time_provider() {
    let ca = ca("mesh CA", 1);
    // The same certificate is fine at NOW...
    let mut client = raw_client(&ca, leaf(&ca, 10, CLIENT_ID), SERVER_ID, NOW);
    let mut server = mesh_server(&ca, leaf(&ca, 11, SERVER_ID), NOW);
    assert_eq!(handshake(&mut client, &mut server), (None, None));

    // ...expired two days later (the server's leaf is too, but the client
    // checks it and fails first, so give the server a fresh one).
    let later = NOW + 2 * DAY;
    server_cert_rejected(
        &ca,
        leaf(&ca, 11, SERVER_ID),
        SERVER_ID,
        later,
        IdentityError::Expired {
            now: later,
            not_after: NOW + DAY,
        },
        AlertDescription::CertificateExpired,
    );
    let server_fresh = leaf_with(&ca, 13, SERVER_ID, |p| p.not_after = at(later + DAY));
    let mut client = raw_client(&ca, leaf(&ca, 10, CLIENT_ID), SERVER_ID, later);
    let mut server = mesh_server(&ca, server_fresh, later);
    let (client_err, server_err) = handshake(&mut client, &mut server);
    assert_eq!(
        server_err,
        Some(TlsError::PeerCertificate(IdentityError::Expired {
            now: later,
            not_after: NOW + DAY
        }))
    );
    assert_eq!(
        client_err,
        Some(TlsError::AlertReceived(
            AlertDescription::CertificateExpired
        ))
    );

    // ...and not yet valid two days earlier.
    let earlier = NOW - 2 * DAY;
    let server_early = leaf_with(&ca, 13, SERVER_ID, |p| p.not_before = at(earlier - DAY));
    let mut client = raw_client(&ca, leaf(&ca, 10, CLIENT_ID), SERVER_ID, earlier);
    let mut server = mesh_server(&ca, server_early, earlier);
    let (client_err, server_err) = handshake(&mut client, &mut server);
    assert_eq!(
        server_err,
        Some(TlsError::PeerCertificate(IdentityError::NotYetValid {
            now: earlier,
            not_before: NOW - DAY
        }))
    );
    assert_eq!(
        client_err,
        Some(TlsError::AlertReceived(
            AlertDescription::CertificateExpired
        ))
    );
}

#[test]
fn server_with_another_identity_than_expected_is_refused() {
    let ca = ca("mesh CA", 1);
    let impostor = "spiffe://mesh.test/ns/shop/sa/cache";
    server_cert_rejected(
        &ca,
        leaf(&ca, 11, impostor),
        SERVER_ID,
        NOW,
        IdentityError::UnexpectedIdentity {
            expected: vec![id(SERVER_ID)],
            got: id(impostor),
        },
        AlertDescription::CertificateUnknown,
    );
}

#[test]
fn any_of_several_expected_identities_is_accepted() {
    let ca = ca("mesh CA", 1);
    let service = "spiffe://mesh.test/ns/shop/sa/db-service";
    let mut client = mesh_client(&ca, leaf(&ca, 10, CLIENT_ID), &[SERVER_ID, service], NOW);
    let mut server = mesh_server(&ca, leaf(&ca, 11, service), NOW);
    assert_eq!(handshake(&mut client, &mut server), (None, None));
    assert_eq!(client.peer_identity(), Some(&id(service)));
}

#[test]
fn leaf_without_the_role_in_its_key_usage_is_refused() {
    let ca = ca("mesh CA", 1);
    let client_only = leaf_with(&ca, 11, SERVER_ID, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    server_cert_rejected(
        &ca,
        client_only,
        SERVER_ID,
        NOW,
        IdentityError::WrongKeyUsage,
        AlertDescription::UnsupportedCertificate,
    );
}

#[test]
fn tls12_clients_are_refused() {
    let ca = ca("mesh CA", 1);
    let client_leaf = leaf(&ca, 10, CLIENT_ID);
    let config = raw_client_builder(&ca, SERVER_ID, NOW, &rustls::version::TLS12)
        .with_client_auth_cert(client_leaf.chain, client_leaf.key)
        .unwrap();
    let mut client = TlsSession::client(Arc::new(config), DEFAULT_BUFFER_LIMIT).unwrap();
    let mut server = mesh_server(&ca, leaf(&ca, 11, SERVER_ID), NOW);
    let (client_err, server_err) = handshake(&mut client, &mut server);
    assert!(
        matches!(
            server_err,
            Some(TlsError::Protocol(rustls::Error::PeerIncompatible(_)))
        ),
        "{server_err:?}"
    );
    assert_eq!(
        client_err,
        Some(TlsError::AlertReceived(AlertDescription::ProtocolVersion))
    );
}

#[test]
fn alpn_mismatch_fails_the_handshake() {
    let ca = ca("mesh CA", 1);
    let client_config = params(&ca, leaf(&ca, 10, CLIENT_ID), NOW)
        .with_alpn(vec![b"warren-e2e".to_vec()])
        .unwrap()
        .client_config([id(SERVER_ID)])
        .unwrap();
    let mut client = TlsSession::client(client_config, DEFAULT_BUFFER_LIMIT).unwrap();
    let mut server = mesh_server(&ca, leaf(&ca, 11, SERVER_ID), NOW);
    let (client_err, server_err) = handshake(&mut client, &mut server);
    assert_eq!(
        server_err,
        Some(TlsError::Protocol(rustls::Error::NoApplicationProtocol))
    );
    assert_eq!(
        client_err,
        Some(TlsError::AlertReceived(
            AlertDescription::NoApplicationProtocol
        ))
    );
}

#[test]
fn configs_refuse_what_peers_would_refuse() {
    let ca = ca("mesh CA", 1);
    let p = || {
        let l = leaf(&ca, 10, CLIENT_ID);
        (l.chain, l.key)
    };
    let new = |chain, key| {
        MeshTlsParams::new(provider(), Arc::new(FixedTime(NOW)), trust(&ca), chain, key)
    };
    let (chain, key) = p();
    let good = new(chain, key).unwrap();
    assert_eq!(good.identity(), &id(CLIENT_ID));
    assert!(matches!(
        good.client_config(Vec::new()),
        Err(ConfigError::NoExpectedIdentity)
    ));
    assert!(matches!(
        good.client_config([id("spiffe://other.test/ns/a/sa/b")]),
        Err(ConfigError::ExpectedIdentityOutsideTrustDomain(_))
    ));
    let (_, key) = p();
    assert!(matches!(
        new(Vec::new(), key),
        Err(ConfigError::NoCertificate)
    ));
    let no_san = leaf_with(&ca, 10, CLIENT_ID, |p| p.subject_alt_names.clear());
    assert!(matches!(
        new(no_san.chain, no_san.key),
        Err(ConfigError::OwnCertificate(IdentityError::NoUriSan))
    ));
    let foreign = leaf(&ca, 10, "spiffe://other.test/ns/a/sa/b");
    assert!(matches!(
        new(foreign.chain, foreign.key),
        Err(ConfigError::OwnCertificate(
            IdentityError::OtherTrustDomain { .. }
        ))
    ));
    // A key that is not the certificate's.
    let (chain, _) = p();
    let wrong_key = PrivateKeyDer::Pkcs8(ed25519_pkcs8(99).into());
    assert!(matches!(
        new(chain, wrong_key),
        Err(ConfigError::Rustls(rustls::Error::InconsistentKeys(_)))
    ));
    assert!(matches!(
        good.with_alpn(Vec::new()),
        Err(ConfigError::NoAlpn)
    ));
}

#[test]
fn received_plaintext_is_bounded_and_backpressures() {
    let (mut client, mut server) = connected();

    // The writer accepts at most the buffer limit before the host drains.
    let big = vec![7u8; 1 << 20];
    let accepted = client.write_plaintext(&big).unwrap();
    assert!(accepted <= DEFAULT_BUFFER_LIMIT, "{accepted}");
    assert!(accepted > 0);
    let mut wire = Vec::new();
    client.write_tls(&mut wire);
    // The server takes only part of it while its plaintext sits unread...
    let taken = server.read_tls(&wire).unwrap();
    assert!(taken < wire.len(), "{taken} of {}", wire.len());
    assert!(taken > 0);
    // ...and a little more of it once the host has read the plaintext.
    let first = read_all(&mut server);
    assert!(!first.is_empty());
    let more = server.read_tls(&wire[taken..]).unwrap();
    assert!(more > 0);
}

#[test]
fn zero_copy_reads_see_the_same_bytes() {
    let (mut client, mut server) = connected();
    assert_eq!(client.write_plaintext(b"hello mesh").unwrap(), 10);
    let mut wire = Vec::new();
    client.write_tls(&mut wire);
    assert_eq!(server.read_tls(&wire).unwrap(), wire.len());
    assert_eq!(server.plaintext(), b"hello mesh");
    server.consume_plaintext(6);
    assert_eq!(server.plaintext(), b"mesh");
    server.consume_plaintext(100); // clamped
    assert_eq!(server.plaintext(), b"");
    assert_eq!(server.read_plaintext(&mut [0; 4]), PlaintextRead::Empty);
}

#[test]
fn transport_eof_without_close_notify_is_a_truncation() {
    let (_, mut server) = connected();
    server.read_eof().unwrap();
    assert_eq!(server.read_plaintext(&mut [0; 4]), PlaintextRead::Truncated);
}

#[test]
fn garbage_from_the_network_is_an_error_not_a_panic() {
    let ca = ca("mesh CA", 1);
    let mut server = mesh_server(&ca, leaf(&ca, 11, SERVER_ID), NOW);
    let err = server.read_tls(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
    assert!(matches!(err, TlsError::Protocol(_)), "{err:?}");
    // The session stays failed, and has an alert to send.
    let mut out = Vec::new();
    assert!(server.write_tls(&mut out) > 0);
    assert!(server.read_tls(b"more").is_err());
}

#[test]
fn bytes_after_close_notify_are_discarded_not_left_pending() {
    let (mut client, mut server) = connected();
    client.close();
    let mut wire = Vec::new();
    client.write_tls(&mut wire);
    wire.extend_from_slice(b"junk that must not be left for the host to re-feed");
    assert_eq!(server.read_tls(&wire), Ok(wire.len()));
    assert!(server.peer_closed());
    assert_eq!(server.read_plaintext(&mut [0; 8]), PlaintextRead::Closed);
}

/// Pumps like `pump`, but delivers each flight in chunks whose sizes come
/// from `cuts` (cycled), the way TCP may split it.
fn pump_segmented(
    client: &mut TlsSession,
    server: &mut TlsSession,
    cuts: &[usize],
) -> (Option<TlsError>, Option<TlsError>) {
    let mut cut = cuts.iter().cycle().map(|c| c % 700 + 1);
    let mut deliver = |to: &mut TlsSession, bytes: &[u8]| -> Result<(), TlsError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = cut.next().unwrap_or(1).min(rest.len());
            assert_eq!(to.read_tls(&rest[..n])?, n);
            rest = &rest[n..];
        }
        Ok(())
    };
    let (mut client_err, mut server_err) = (None, None);
    for _ in 0..100 {
        let mut c2s = Vec::new();
        client.write_tls(&mut c2s);
        if server_err.is_none() {
            server_err = deliver(server, &c2s).err();
        }
        let mut s2c = Vec::new();
        server.write_tls(&mut s2c);
        if client_err.is_none() {
            client_err = deliver(client, &s2c).err();
        }
        if c2s.is_empty() && s2c.is_empty() {
            return (client_err, server_err);
        }
    }
    panic!("handshake did not settle");
}

/// One client and one server config, built once for the properties below
/// (quickcheck takes plain `fn`s, which cannot capture).
fn shared_configs() -> &'static (Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>) {
    static CONFIGS: std::sync::OnceLock<(Arc<rustls::ClientConfig>, Arc<rustls::ServerConfig>)> =
        std::sync::OnceLock::new();
    CONFIGS.get_or_init(|| {
        let ca = ca("mesh CA", 1);
        let client = params(&ca, leaf(&ca, 10, CLIENT_ID), NOW)
            .client_config([id(SERVER_ID)])
            .unwrap();
        let server = params(&ca, leaf(&ca, 11, SERVER_ID), NOW)
            .server_config()
            .unwrap();
        (client, server)
    })
}

fn fresh_pair() -> (TlsSession, TlsSession) {
    let (client, server) = shared_configs();
    (
        TlsSession::client(client.clone(), DEFAULT_BUFFER_LIMIT).unwrap(),
        TlsSession::server(server.clone(), DEFAULT_BUFFER_LIMIT).unwrap(),
    )
}

#[test]
fn handshake_and_data_survive_any_segmentation() {
    fn prop(cuts: Vec<usize>) -> bool {
        let cuts = if cuts.is_empty() { vec![1] } else { cuts };
        let (mut client, mut server) = fresh_pair();
        client.write_plaintext(b"early request").unwrap();
        if pump_segmented(&mut client, &mut server, &cuts) != (None, None) {
            return false;
        }
        server.peer_identity() == Some(&id(CLIENT_ID))
            && client.peer_identity() == Some(&id(SERVER_ID))
            && read_all(&mut server) == b"early request"
    }
    quickcheck::QuickCheck::new()
        .tests(30)
        .quickcheck(prop as fn(Vec<usize>) -> bool);
}

#[test]
fn corrupted_handshake_bytes_fail_cleanly() {
    // One flipped byte anywhere in the client's flights: the handshake
    // fails with an error (never a panic) and nobody is authenticated,
    // unless the byte was one TLS does not protect (then it completes with
    // the real identities).
    fn prop(pos: usize, flip: u8) -> TestResult {
        if flip == 0 {
            return TestResult::discard();
        }
        let (mut client, mut server) = fresh_pair();
        let target = pos % 2000;
        let mut sent = 0usize;
        let mut flipped = false;
        for _ in 0..20 {
            let mut c2s = Vec::new();
            client.write_tls(&mut c2s);
            if !flipped && target < sent + c2s.len() {
                c2s[target - sent] ^= flip;
                flipped = true;
            }
            sent += c2s.len();
            let server_failed = server.read_tls(&c2s).is_err();
            let mut s2c = Vec::new();
            server.write_tls(&mut s2c);
            let client_failed = client.read_tls(&s2c).is_err();
            if server_failed || client_failed || (c2s.is_empty() && s2c.is_empty()) {
                break;
            }
        }
        if !flipped {
            return TestResult::discard();
        }
        TestResult::from_bool(match server.peer_identity() {
            None => true,
            Some(peer) => peer == &id(CLIENT_ID),
        })
    }
    quickcheck::QuickCheck::new()
        .tests(200)
        .quickcheck(prop as fn(usize, u8) -> TestResult);
}

#[test]
fn arbitrary_bytes_never_panic_and_never_authenticate() {
    fn prop(bytes: Vec<u8>) -> bool {
        let (mut client, mut server) = fresh_pair();
        let mut out = Vec::new();
        client.write_tls(&mut out);
        // Garbage in place of a server's answer, and in place of a client.
        let _ = client.read_tls(&bytes);
        let _ = server.read_tls(&bytes);
        server.write_tls(&mut out);
        client.write_tls(&mut out);
        client.peer_identity().is_none()
            && server.peer_identity().is_none()
            && client.is_handshaking()
            && server.is_handshaking()
    }
    quickcheck::QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(Vec<u8>) -> bool);
}

#[test]
fn arbitrary_certificate_bytes_are_refused_without_panic() {
    fn prop(leaf: Vec<u8>, intermediate: Vec<u8>, client: bool) -> bool {
        static TRUST: std::sync::OnceLock<Arc<MeshTrust>> = std::sync::OnceLock::new();
        let trust = TRUST.get_or_init(|| trust(&ca("mesh CA", 1)));
        let role = if client {
            warren_proto::identity::PeerRole::Client
        } else {
            warren_proto::identity::PeerRole::Server
        };
        let result = trust.verify(
            &CertificateDer::from(leaf.clone()),
            &[CertificateDer::from(intermediate)],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW)),
            role,
            &provider().signature_verification_algorithms,
        );
        let _ = warren_proto::identity::spiffe_id_of(&CertificateDer::from(leaf));
        result.is_err()
    }
    quickcheck::QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<u8>, Vec<u8>, bool) -> bool);
}

#[test]
fn client_without_a_certificate_is_refused() {
    let ca = ca("mesh CA", 1);
    let mut config =
        raw_client_builder(&ca, SERVER_ID, NOW, &rustls::version::TLS13).with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let mut client = TlsSession::client(Arc::new(config), DEFAULT_BUFFER_LIMIT).unwrap();
    let mut server = mesh_server(&ca, leaf(&ca, 11, SERVER_ID), NOW);
    let (client_err, server_err) = handshake(&mut client, &mut server);
    assert_eq!(
        server_err,
        Some(TlsError::Protocol(rustls::Error::NoCertificatesPresented))
    );
    assert_eq!(
        client_err,
        Some(TlsError::AlertReceived(
            AlertDescription::CertificateRequired
        ))
    );
    assert_eq!(server.peer_identity(), None);
}

#[test]
fn eof_while_plaintext_is_full_still_ends_in_truncation() {
    let (mut client, mut server) = fresh_pair();
    assert_eq!(handshake(&mut client, &mut server), (None, None));
    let data = vec![1u8; 60_000];
    assert_eq!(client.write_plaintext(&data).unwrap(), data.len());
    let mut wire = Vec::new();
    client.write_tls(&mut wire);
    let taken = server.read_tls(&wire).unwrap();
    assert!(taken < wire.len());
    // The transport ends before the rest arrives.
    server.read_eof().unwrap();
    let got = read_all(&mut server);
    assert!(!got.is_empty() && got.len() < data.len());
    assert_eq!(server.read_plaintext(&mut [0; 8]), PlaintextRead::Truncated);
}

#[test]
fn own_chain_must_come_from_our_ca_and_dates_are_reported_apart() {
    let ca = ca("mesh CA", 1);
    let rogue = self::ca("rogue CA", 2);
    let algorithms = provider().signature_verification_algorithms;
    let secs = |s: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(s));
    let trust = trust(&ca);

    let good = leaf(&ca, 10, CLIENT_ID);
    let own = trust.verify_own(&good.chain, secs(NOW), &algorithms);
    assert_eq!(own.map(|o| (o.id, o.dates)), Ok((id(CLIENT_ID), None)));

    let foreign = leaf(&rogue, 11, CLIENT_ID);
    assert_eq!(
        trust.verify_own(&foreign.chain, secs(NOW), &algorithms),
        Err(IdentityError::UnknownIssuer)
    );
    // Before the leaf's window the chain is still checked: a foreign leaf
    // is refused for its issuer, not excused as "not yet valid".
    assert_eq!(
        trust.verify_own(&foreign.chain, secs(NOW - 3 * DAY), &algorithms),
        Err(IdentityError::UnknownIssuer)
    );

    let early = NOW - 3 * DAY;
    let own = trust
        .verify_own(&good.chain, secs(early), &algorithms)
        .unwrap();
    assert_eq!(own.id, id(CLIENT_ID));
    assert_eq!(
        own.dates,
        Some(IdentityError::NotYetValid {
            now: early,
            not_before: NOW - DAY
        })
    );
    let late = NOW + 3 * DAY;
    let own = trust
        .verify_own(&good.chain, secs(late), &algorithms)
        .unwrap();
    assert_eq!(
        own.dates,
        Some(IdentityError::Expired {
            now: late,
            not_after: NOW + DAY
        })
    );

    let two_sans = leaf_with(&ca, 12, CLIENT_ID, |p| {
        p.subject_alt_names.push(uri(SERVER_ID));
    });
    assert_eq!(
        trust.verify_own(&two_sans.chain, secs(NOW), &algorithms),
        Err(IdentityError::MultipleUriSans { count: 2 })
    );
    assert_eq!(
        trust.verify_own(&[], secs(NOW), &algorithms),
        Err(IdentityError::NoUriSan)
    );
}

/// A client and server pair of resumable configs (resumption on, clocks at `NOW`).
fn resumable_pair(
    ca: &Ca,
) -> (
    warren_proto::identity::ResumableConfig<rustls::ClientConfig>,
    warren_proto::identity::ResumableConfig<rustls::ServerConfig>,
) {
    let on = warren_proto::identity::Resumption::default();
    let client = params(ca, leaf(ca, 10, CLIENT_ID), NOW)
        .with_resumption(on)
        .resumable_client_config([id(SERVER_ID)])
        .unwrap();
    let server = params(ca, leaf(ca, 11, SERVER_ID), NOW)
        .with_resumption(on)
        .resumable_server_config()
        .unwrap();
    (client, server)
}

#[test]
fn a_resumed_session_knows_the_peer_from_the_stored_chain() {
    use rustls::HandshakeKind;
    let ca = ca("mesh CA", 1);
    let (client_cfg, server_cfg) = resumable_pair(&ca);
    let new_pair = || {
        (
            TlsSession::client_resumable(&client_cfg, DEFAULT_BUFFER_LIMIT).unwrap(),
            TlsSession::server_resumable(&server_cfg, DEFAULT_BUFFER_LIMIT).unwrap(),
        )
    };
    let (mut c1, mut s1) = new_pair();
    assert_eq!(handshake(&mut c1, &mut s1), (None, None));
    assert_eq!(c1.handshake_kind(), Some(HandshakeKind::Full));
    // The server issued tickets; the client keeps them per endpoint.
    assert!(client_cfg.stored_sessions() > 0);
    assert!(server_cfg.stored_sessions() > 0);
    let (mut c2, mut s2) = new_pair();
    let mut wire = Transcript::default();
    assert_eq!(pump(&mut c2, &mut s2, &mut wire), (None, None));
    assert_eq!(c2.handshake_kind(), Some(HandshakeKind::Resumed));
    assert_eq!(s2.handshake_kind(), Some(HandshakeKind::Resumed));
    // Identity and serial (what revocation checks) come from the stored
    // chains, the same as the full handshake's.
    assert_eq!(c2.peer_identity(), Some(&id(SERVER_ID)));
    assert_eq!(s2.peer_identity(), Some(&id(CLIENT_ID)));
    assert_eq!(c2.peer_serial(), c1.peer_serial());
    assert_eq!(s2.peer_serial(), s1.peer_serial());
    assert!(c2.peer_serial().is_some());
    assert_eq!(send(&mut c2, &mut s2, b"ping"), b"ping");
    // No certificate crossed the wire on resumption.
    let leaf_der = leaf(&ca, 11, SERVER_ID).chain[0].to_vec();
    assert!(!wire
        .to_client
        .windows(leaf_der.len())
        .any(|w| w == leaf_der.as_slice()));
}

#[test]
fn forgetting_sessions_forces_a_full_handshake() {
    use rustls::HandshakeKind;
    let ca = ca("mesh CA", 1);
    let (client_cfg, server_cfg) = resumable_pair(&ca);
    let mut c1 = TlsSession::client_resumable(&client_cfg, DEFAULT_BUFFER_LIMIT).unwrap();
    let mut s1 = TlsSession::server_resumable(&server_cfg, DEFAULT_BUFFER_LIMIT).unwrap();
    assert_eq!(handshake(&mut c1, &mut s1), (None, None));
    server_cfg.forget_sessions();
    assert_eq!(server_cfg.stored_sessions(), 0);
    let mut c2 = TlsSession::client_resumable(&client_cfg, DEFAULT_BUFFER_LIMIT).unwrap();
    let mut s2 = TlsSession::server_resumable(&server_cfg, DEFAULT_BUFFER_LIMIT).unwrap();
    assert_eq!(handshake(&mut c2, &mut s2), (None, None));
    // The client offered its ticket; the server no longer had the session.
    assert_eq!(c2.handshake_kind(), Some(HandshakeKind::Full));
    client_cfg.forget_sessions();
    assert_eq!(client_cfg.stored_sessions(), 0);
}

#[test]
fn a_session_resumed_without_a_recheck_is_refused() {
    let ca = ca("mesh CA", 1);
    let (client_cfg, server_cfg) = resumable_pair(&ca);
    let mut c1 = TlsSession::client_resumable(&client_cfg, DEFAULT_BUFFER_LIMIT).unwrap();
    let mut s1 = TlsSession::server_resumable(&server_cfg, DEFAULT_BUFFER_LIMIT).unwrap();
    assert_eq!(handshake(&mut c1, &mut s1), (None, None));
    // The same rustls config, started without its re-check: fail closed.
    let mut c2 = TlsSession::client(client_cfg.config().clone(), DEFAULT_BUFFER_LIMIT).unwrap();
    let mut s2 = TlsSession::server_resumable(&server_cfg, DEFAULT_BUFFER_LIMIT).unwrap();
    let (client_err, _) = handshake(&mut c2, &mut s2);
    let err = client_err.expect("refused");
    assert!(matches!(err, TlsError::ResumedRefused(_)), "{err:?}");
    assert!(err.to_string().starts_with("resumed session refused"));
    assert_eq!(c2.peer_identity(), None);
    assert_eq!(read_all(&mut c2), b"");
}
