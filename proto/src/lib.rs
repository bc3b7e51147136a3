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
//! - [`hbone`]: the CONNECT request/response contract between nodes.
//! - [`identity`]: SPIFFE ids and the certificate checks behind them.
//! - [`pool`]: which outbound HBONE connection carries a new flow.
//! - [`policy`]: authorization, exports and egress, as pure functions.
//! - [`front`]: local front ends (plain tunnel, SOCKS5, HTTP CONNECT) as byte parsers.
//! - [`node`]: the mesh node state machine; [`drive`]: the host loop step.
//! - [`control`]: hub/agent control messages (postcard, versioned, framed).
//! - [`registry`]: the service registry a hub keeps from announcements.
//! - [`balance`]: load balancing and outlier ejection across endpoints.
//! - [`revocation`]: the revocation list that refuses revoked identities.
//! - [`hub`]: the hub wire contract and the configuration of hubs and agents' links to them.

pub mod balance;
pub mod control;
pub mod drive;
pub mod front;
pub mod h2;
pub mod hbone;
pub mod hub;
pub mod identity;
pub mod node;
pub mod policy;
pub mod pool;
pub mod registry;
pub mod revocation;
#[cfg(feature = "sim-bugs")]
pub mod sim_bugs;
pub mod time;
pub mod tls;
