//! An independent HBONE peer: a small client and server that speak HBONE
//! (HTTP/2 CONNECT in mutual TLS 1.3, ALPN `h2`) with the `h2` crate over
//! `tokio-rustls`, so warren's agent can be tested against code that
//! shares nothing with `warren_proto` but the certificates.
//!
//! Rooms:
//! - [`spiffe`]: reads the peer certificate's SPIFFE id with a DER walker
//!   of its own (not warren's verifier);
//! - [`tls`]: the mesh identity files and the rustls configurations
//!   (chains checked by rustls' webpki against the mesh CA only);
//! - [`client`]: dials an HBONE port, checks the server's SPIFFE id, sends
//!   CONNECTs;
//! - [`server`]: accepts HBONE connections, checks the client's SPIFFE id,
//!   answers each CONNECT with the status a test chose and echoes after 200.

pub mod client;
pub mod server;
pub mod spiffe;
mod stream;
pub mod tls;

pub use client::{PeerClient, PeerTunnel};
pub use server::{Answer, PeerServer, Seen};
pub use tls::PeerIdentity;

use std::fmt;

/// Why a peer operation failed.
#[derive(Debug)]
pub enum PeerError {
    /// A socket error.
    Io(std::io::Error),
    /// The TLS handshake failed (the error rustls or the socket gave).
    Tls(std::io::Error),
    /// The other side negotiated no ALPN or not `h2`.
    Alpn(Option<Vec<u8>>),
    /// The other side's certificate has no valid SPIFFE id.
    Identity(spiffe::SpiffeError),
    /// The other side proved a SPIFFE id other than the expected one.
    WrongIdentity {
        /// The id the caller expected.
        expected: String,
        /// The id the certificate carries.
        found: String,
    },
    /// An HTTP/2 error from the `h2` crate.
    H2(h2::Error),
    /// The identity files could not be read or used.
    Setup(String),
    /// The other side sent more than this many bytes on a stream.
    TooLong(usize),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::Io(e) => write!(f, "io: {e}"),
            PeerError::Tls(e) => write!(f, "tls handshake: {e}"),
            PeerError::Alpn(p) => write!(f, "ALPN is {p:?}, not h2"),
            PeerError::Identity(e) => write!(f, "peer identity: {e}"),
            PeerError::WrongIdentity { expected, found } => {
                write!(f, "peer is {found}, expected {expected}")
            }
            PeerError::H2(e) => write!(f, "h2: {e}"),
            PeerError::Setup(e) => write!(f, "setup: {e}"),
            PeerError::TooLong(limit) => write!(f, "more than {limit} bytes on one stream"),
        }
    }
}

impl std::error::Error for PeerError {}

impl From<h2::Error> for PeerError {
    fn from(e: h2::Error) -> PeerError {
        PeerError::H2(e)
    }
}
