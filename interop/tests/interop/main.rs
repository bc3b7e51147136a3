//! Interop tests of warren's HTTP/2 engine against the `h2` crate over real
//! loopback TCP, in both directions:
//! - [`warren_client`]: warren's engine as the client, h2 as the server;
//! - [`warren_server`]: h2 as the client, warren's echo server as the server.
//!
//! Payloads are seeded pseudo-random bytes ([`payload`]) and every echoed
//! byte is compared.

mod h2_peer;
mod payload;
mod warren_client;
mod warren_peer;
mod warren_server;
