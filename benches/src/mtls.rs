//! The layers under a mesh node, measured alone: mutual TLS 1.3 with the
//! ring provider (the same configs a node uses), and HTTP/2 stacked on it
//! without the node. With [`crate::bulk`] (HTTP/2 alone) and
//! [`crate::node`] (the whole node) they split a tunnel's cost by layer.
//!
//! Certificates come from the simulator's seeded CA (Ed25519), checked
//! against a fixed certificate clock; the TLS randomness and key exchange
//! are ring's own.

use std::sync::Arc;

use warren_proto::h2::{Connection, Event, Request, Response, Role, StreamId};
use warren_proto::identity::{MeshTlsParams, MeshTrust, SpiffeId, TrustDomain};
use warren_proto::node::MeshIdentity;
use warren_proto::time::Instant;
use warren_proto::tls::{TlsSession, DEFAULT_BUFFER_LIMIT};
use warren_sim::certs::{CertClock, SimCa, Validity};
use warren_sim::pki::EPOCH_UNIX;

use crate::bulk::{offer_chunks, read_and_release};
use crate::{AUTHORITY, MIB};

/// The trust domain of the benchmark mesh.
pub const TRUST_DOMAIN: &str = "bench.test";

/// `spiffe://bench.test/ns/bench/sa/<sa>`.
pub fn spiffe(sa: &str) -> SpiffeId {
    SpiffeId::new(TRUST_DOMAIN, "bench", sa).expect("a valid SPIFFE id")
}

/// Two mesh identities, `client` and `server`, from one CA, with ring's
/// provider.
pub fn identities() -> (MeshIdentity, MeshIdentity) {
    let validity = Validity {
        not_before: EPOCH_UNIX - 3600,
        not_after: EPOCH_UNIX + 86_400,
    };
    let ca = SimCa::new([9; 32], "bench CA", 1, validity).expect("CA");
    let td = TrustDomain::new(TRUST_DOMAIN).expect("trust domain");
    let trust = Arc::new(MeshTrust::new(td, &[ca.cert().clone()]).expect("trust"));
    let clock = CertClock::new(EPOCH_UNIX);
    let identity = |sa: &str, serial: u64| {
        let leaf = ca.issue(&spiffe(sa), serial, validity).expect("leaf");
        let params = MeshTlsParams::new(
            Arc::new(rustls::crypto::ring::default_provider()),
            Arc::new(clock.clone()),
            trust.clone(),
            leaf.chain.clone(),
            leaf.key(),
        )
        .expect("TLS params");
        MeshIdentity::new(params).expect("identity")
    };
    (identity("client", 2), identity("server", 3))
}

/// A client and a server TLS session after the handshake, and the wire.
pub struct TlsPair {
    client: TlsSession,
    server: TlsSession,
    wire: Vec<u8>,
}

impl TlsPair {
    /// Runs the mutual TLS handshake between `client` and `server` with
    /// node-sized buffers.
    pub fn new() -> TlsPair {
        let (client, server) = identities();
        let client_config = client
            .params()
            .client_config([spiffe("server")])
            .expect("client config");
        let mut pair = TlsPair {
            client: TlsSession::client(client_config, DEFAULT_BUFFER_LIMIT).expect("client"),
            server: TlsSession::server(server.server_config().clone(), DEFAULT_BUFFER_LIMIT)
                .expect("server"),
            wire: Vec::new(),
        };
        for _ in 0..8 {
            pair.client_to_server();
            pair.server_to_client();
            if !pair.client.is_handshaking() && !pair.server.is_handshaking() {
                return pair;
            }
        }
        panic!("TLS handshake did not finish");
    }

    /// Moves the client's records into the server; returns the bytes moved.
    fn client_to_server(&mut self) -> usize {
        self.wire.clear();
        let n = self.client.write_tls(&mut self.wire);
        feed(&mut self.server, &self.wire);
        n
    }

    /// Moves the server's records into the client; returns the bytes moved.
    fn server_to_client(&mut self) -> usize {
        self.wire.clear();
        let n = self.server.write_tls(&mut self.wire);
        feed(&mut self.client, &self.wire);
        n
    }

    /// Sends `total` plaintext bytes client to server in writes of
    /// `chunk`; returns the bytes the server read (all of them) once it
    /// read them.
    pub fn transfer(&mut self, chunk: &[u8], total: u64) -> u64 {
        let (mut sent, mut read) = (0u64, 0u64);
        while read < total {
            while sent < total {
                let want = (total - sent).min(chunk.len() as u64) as usize;
                let n = self.client.write_plaintext(&chunk[..want]).expect("write");
                if n == 0 {
                    break;
                }
                sent += n as u64;
            }
            self.wire.clear();
            self.client.write_tls(&mut self.wire);
            let mut at = 0;
            while at < self.wire.len() {
                at += self.server.read_tls(&self.wire[at..]).expect("read_tls");
                loop {
                    let plain = std::hint::black_box(self.server.plaintext()).len();
                    if plain == 0 {
                        break;
                    }
                    self.server.consume_plaintext(plain);
                    read += plain as u64;
                }
            }
        }
        read
    }
}

impl Default for TlsPair {
    fn default() -> Self {
        TlsPair::new()
    }
}

/// Feeds all of `ciphertext` into `tls`, taking plaintext as it comes
/// (handshake only: application plaintext is dropped).
fn feed(tls: &mut TlsSession, ciphertext: &[u8]) {
    let mut at = 0;
    while at < ciphertext.len() {
        at += tls.read_tls(&ciphertext[at..]).expect("read_tls");
        while !tls.plaintext().is_empty() {
            let n = tls.plaintext().len();
            tls.consume_plaintext(n);
        }
    }
}

/// One HTTP/2 connection over one TLS session: a mesh connection without
/// the node around it.
struct Stack {
    tls: TlsSession,
    h2: Connection,
    plain: Vec<u8>,
}

impl Stack {
    /// Moves HTTP/2 output through TLS onto `wire`; returns plaintext bytes.
    fn transmit(&mut self, now: Instant, wire: &mut Vec<u8>) -> usize {
        self.plain.clear();
        let n = self.h2.poll_transmit(now, &mut self.plain);
        let mut at = 0;
        while at < self.plain.len() {
            at += self.tls.write_plaintext(&self.plain[at..]).expect("write");
            self.tls.write_tls(wire);
        }
        n
    }

    /// Feeds ciphertext through TLS into HTTP/2.
    fn receive(&mut self, now: Instant, wire: &[u8]) {
        let mut at = 0;
        while at < wire.len() {
            at += self.tls.read_tls(&wire[at..]).expect("read_tls");
            loop {
                let plain = self.tls.plaintext();
                let n = plain.len();
                if n == 0 {
                    break;
                }
                self.h2.handle_input(now, plain);
                self.tls.consume_plaintext(n);
            }
        }
    }
}

/// HTTP/2 over mutual TLS, one CONNECT stream, bulk client to server: the
/// engine bench's [`crate::bulk`] workload with TLS under it.
pub struct TlsH2Bulk {
    client: Stack,
    server: Stack,
    stream: StreamId,
    wire: Vec<u8>,
    chunk: Vec<u8>,
    now: Instant,
    received: u64,
}

impl TlsH2Bulk {
    /// Handshakes, exchanges SETTINGS and opens the stream.
    pub fn new() -> TlsH2Bulk {
        let TlsPair { client, server, .. } = TlsPair::new();
        let config = crate::bulk::config();
        let now = Instant::ZERO;
        let mut bulk = TlsH2Bulk {
            client: Stack {
                tls: client,
                h2: Connection::new(Role::Client, config.clone(), now),
                plain: Vec::new(),
            },
            server: Stack {
                tls: server,
                h2: Connection::new(Role::Server, config, now),
                plain: Vec::new(),
            },
            stream: StreamId::new(1),
            wire: Vec::new(),
            chunk: (0..MIB).map(|i| i as u8).collect(),
            now,
            received: 0,
        };
        let request = Request::connect(AUTHORITY);
        bulk.round();
        bulk.stream = bulk
            .client
            .h2
            .send_request(&request, false)
            .expect("request");
        for _ in 0..8 {
            bulk.round();
            while let Some(ev) = bulk.server.h2.poll_event() {
                if let Event::Request { stream, .. } = ev {
                    let ok = Response {
                        status: 200,
                        headers: Vec::new(),
                    };
                    bulk.server
                        .h2
                        .send_response(stream, &ok, false)
                        .expect("200");
                }
            }
            while let Some(ev) = bulk.client.h2.poll_event() {
                if let Event::Response { response, .. } = ev {
                    assert_eq!(response.status, 200);
                    return bulk;
                }
            }
        }
        panic!("no 200 over TLS");
    }

    /// Both directions once; returns the plaintext bytes moved.
    fn round(&mut self) -> usize {
        self.now = self.now + crate::pair::TICK;
        let now = self.now;
        for end in [&mut self.client, &mut self.server] {
            if end.h2.poll_timeout().is_some_and(|t| t <= now) {
                end.h2.handle_timeout(now);
            }
        }
        self.wire.clear();
        let mut moved = self.client.transmit(now, &mut self.wire);
        self.server.receive(now, &self.wire);
        self.wire.clear();
        moved += self.server.transmit(now, &mut self.wire);
        self.client.receive(now, &self.wire);
        moved
    }

    /// Sends `total` payload bytes and returns once the server read (and
    /// released) all of them.
    pub fn transfer(&mut self, total: u64) {
        let stream = self.stream;
        let target = self.received + total;
        let mut sent = 0u64;
        while self.received < target {
            let client = &mut self.client.h2;
            let mut moved = offer_chunks(&self.chunk, &mut sent, total, |chunk| {
                client.send_data(stream, chunk).expect("send_data")
            });
            moved += self.round();
            let read = read_and_release(&mut self.server.h2, stream);
            self.received += read as u64;
            moved += read;
            while self.client.h2.poll_event().is_some() {}
            assert!(moved > 0, "TLS+h2 bulk stalled at {}", self.received);
        }
    }

    /// Bytes the server has read so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

impl Default for TlsH2Bulk {
    fn default() -> Self {
        TlsH2Bulk::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_and_tls_h2_deliver_every_byte() {
        let mut tls = TlsPair::new();
        assert_eq!(
            tls.transfer(&[7u8; 1000], 5 * MIB as u64 + 3),
            5 * MIB as u64 + 3
        );
        let mut bulk = TlsH2Bulk::new();
        bulk.transfer(20 * MIB as u64 + 3);
        assert_eq!(bulk.received(), 20 * MIB as u64 + 3);
    }
}
