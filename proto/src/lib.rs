//! # warren-proto
//!
//! The sans-IO core of warren, a zero-trust service mesh for TCP.
//!
//! Nothing in this crate touches sockets, clocks, threads, async runtimes,
//! the environment, files or global randomness. Time comes in as an
//! argument ([`time::Instant`]); the host feeds bytes in and carries bytes
//! out. The same inputs always produce the same output bytes.
//!
//! Rooms:
//! - [`time`]: the only notion of time.
//! - [`tls`]: one mesh TLS session over rustls, driven by bytes.
//! - [`h2`]: the HTTP/2 engine (frames, HPACK, connection state machine).
//! - [`identity`]: SPIFFE ids and the certificate checks behind them.

pub mod h2;
pub mod identity;
pub mod time;
pub mod tls;
