//! `TlsSession::write_plaintext_parts`: a frame header and its payload go
//! into full records (one record per 16 KiB of plaintext, header and
//! payload sharing the first), straight into the caller's buffer, within
//! the session's buffer limit, and arrive as their concatenation.

use std::sync::Arc;

use quickcheck::{QuickCheck, TestResult};
use rustls::pki_types::PrivateKeyDer;
use warren_proto::identity::{MeshTlsParams, MeshTrust, SpiffeId, TrustDomain};
use warren_proto::tls::{PlaintextRead, TlsError, TlsSession};

mod common;

use common::{ed25519_pkcs8, key, self_signed_ca, workload_leaf, FixedTime, NOW, TD};

const CLIENT_ID: &str = "spiffe://mesh.test/ns/shop/sa/cart";
const SERVER_ID: &str = "spiffe://mesh.test/ns/shop/sa/db";

/// The most plaintext one record carries.
const RECORD: usize = 16 * 1024;
/// A TLS 1.3 record's header, content type byte and AEAD tag.
const RECORD_OVERHEAD: usize = 5 + 1 + 16;

/// Mesh params for a leaf with `id` and the key of `seed`, signed by the
/// CA of seed 1.
fn params(seed: u8, id: &str) -> MeshTlsParams {
    let (issuer, ca_cert) = self_signed_ca("mesh CA", 1);
    let leaf = workload_leaf(id, seed);
    let cert = leaf.signed_by(&key(seed), &issuer).unwrap().der().clone();
    let trust = MeshTrust::new(TrustDomain::new(TD).unwrap(), &[ca_cert]).unwrap();
    MeshTlsParams::new(
        Arc::new(rustls::crypto::ring::default_provider()),
        Arc::new(FixedTime(NOW)),
        Arc::new(trust),
        vec![cert],
        PrivateKeyDer::Pkcs8(ed25519_pkcs8(seed).into()),
    )
    .unwrap()
}

/// Moves ciphertext both ways until neither side has anything to send.
fn pump(client: &mut TlsSession, server: &mut TlsSession) {
    for _ in 0..20 {
        let mut c2s = Vec::new();
        client.write_tls(&mut c2s);
        assert_eq!(server.read_tls(&c2s).unwrap(), c2s.len());
        let mut s2c = Vec::new();
        server.write_tls(&mut s2c);
        assert_eq!(client.read_tls(&s2c).unwrap(), s2c.len());
        if c2s.is_empty() && s2c.is_empty() {
            return;
        }
    }
    panic!("handshake did not settle");
}

/// A client and a server session with this buffer limit, handshake done.
fn connected(buffer_limit: usize) -> (TlsSession, TlsSession) {
    let server_id = SpiffeId::parse(SERVER_ID).unwrap();
    let client_config = params(10, CLIENT_ID).client_config([server_id]).unwrap();
    let server_config = params(20, SERVER_ID).server_config().unwrap();
    let mut client = TlsSession::client(client_config, buffer_limit).unwrap();
    let mut server = TlsSession::server(server_config, buffer_limit).unwrap();
    pump(&mut client, &mut server);
    assert!(!client.is_handshaking() && !server.is_handshaking());
    (client, server)
}

/// The lengths of the TLS records in `wire`, which must hold whole records.
fn record_lengths(wire: &[u8]) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        assert!(rest.len() >= 5, "a record header cut short");
        let len = 5 + usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        assert!(rest.len() >= len, "a record cut short");
        lengths.push(len);
        rest = &rest[len..];
    }
    lengths
}

/// Feeds `wire` to `to` and returns the plaintext it yields.
fn receive(to: &mut TlsSession, wire: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut rest = wire;
    let mut buf = vec![0; 4096];
    loop {
        let n = to.read_tls(rest).unwrap();
        rest = &rest[n..];
        while let PlaintextRead::Data(n) = to.read_plaintext(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        if rest.is_empty() {
            return got;
        }
    }
}

fn parts_fill_whole_records(head_len: u8, body_len: u32, limit: u32) -> TestResult {
    let head: Vec<u8> = (0..head_len % 20).collect();
    let body: Vec<u8> = (0..body_len % 200_000).map(|i| (i % 251) as u8).collect();
    let limit = 1 + (limit % 100_000) as usize;
    let (mut client, mut server) = connected(limit);
    let mut wire = vec![0xAA; 3];
    let taken = client
        .write_plaintext_parts(&head, &body, &mut wire)
        .unwrap();
    let total = head.len() + body.len();
    // Records are drained as they are sealed, so only the call's own
    // bound (the buffer limit) stops it.
    assert_eq!(taken, total.min(limit));
    assert!(!client.wants_write(), "records left behind in TLS");
    // Appended after what `wire` held.
    assert_eq!(&wire[..3], &[0xAA; 3]);
    let wire = &wire[3..];
    // One full record per 16 KiB of plaintext: the header shares the
    // first record with the payload instead of getting its own.
    let lengths = record_lengths(wire);
    assert_eq!(lengths.len(), taken.div_ceil(RECORD));
    assert!(lengths.iter().all(|&len| len <= RECORD + RECORD_OVERHEAD));
    assert_eq!(lengths.iter().sum::<usize>(), wire.len());
    let sent: Vec<u8> = head.iter().chain(&body).take(taken).copied().collect();
    assert_eq!(receive(&mut server, wire), sent);
    TestResult::passed()
}

#[test]
fn parts_go_into_full_records_within_the_limit_and_arrive_joined() {
    QuickCheck::new()
        .tests(60)
        .quickcheck(parts_fill_whole_records as fn(u8, u32, u32) -> TestResult);
}

#[test]
fn parts_are_refused_after_close() {
    let (mut client, _server) = connected(64 * 1024);
    client.close();
    let mut wire = Vec::new();
    let refused = client.write_plaintext_parts(b"head", b"body", &mut wire);
    assert_eq!(refused, Err(TlsError::WriteAfterClose));
}

#[test]
fn parts_written_before_the_handshake_wait_within_the_limit() {
    let server_id = SpiffeId::parse(SERVER_ID).unwrap();
    let client_config = params(10, CLIENT_ID).client_config([server_id]).unwrap();
    let server_config = params(20, SERVER_ID).server_config().unwrap();
    let limit = 20_000;
    let mut client = TlsSession::client(client_config, limit).unwrap();
    let mut server = TlsSession::server(server_config, limit).unwrap();
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
    let mut wire = Vec::new();
    let taken = client
        .write_plaintext_parts(b"hd", &body, &mut wire)
        .unwrap();
    // rustls holds plaintext until the handshake ends, within the limit.
    assert!(taken > 0 && taken <= limit, "took {taken}");
    let sent: Vec<u8> = b"hd".iter().chain(&body).take(taken).copied().collect();
    let mut got = receive(&mut server, &wire);
    for _ in 0..20 {
        let mut c2s = Vec::new();
        client.write_tls(&mut c2s);
        got.extend(receive(&mut server, &c2s));
        let mut s2c = Vec::new();
        server.write_tls(&mut s2c);
        assert_eq!(client.read_tls(&s2c).unwrap(), s2c.len());
        if c2s.is_empty() && s2c.is_empty() {
            break;
        }
    }
    assert!(!client.is_handshaking());
    assert_eq!(got, sent);
}
