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

pub mod drive;
pub mod echo;
