//! # warren-interop
//!
//! Runs warren's HTTP/2 engine ([`warren_proto::h2::Connection`]) over real
//! TCP sockets so that implementations nobody here wrote can talk to it: the
//! `h2` crate (in `tests/`), nghttp2's `nghttp` client and the httpwg
//! conformance suite (in `conformance.sh`, against the `h2c-server` binary).
//!
//! Rooms:
//! - [`drive`]: the host loop that moves bytes, timers and events between a
//!   socket and one engine connection.
//! - [`echo`]: the server application behind `h2c-server`: answers GET/HEAD,
//!   echoes request bodies and CONNECT tunnels.
//! - [`hbone_peer`]: an independent HBONE client and server (h2 +
//!   tokio-rustls, SPIFFE check of its own) that `warren agent` is tested
//!   against in `cli/tests/hbone_peer.rs`.

pub mod drive;
pub mod echo;
pub mod hbone_peer;
