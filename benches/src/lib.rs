//! Workloads for measuring warren's HTTP/2 engine, shared by the criterion
//! benches (`benches/h2.rs`) and the single-workload binaries used under
//! callgrind (`h2-ir`) and with a counting allocator (`h2-mem`).
//!
//! Each workload exists twice where a comparison makes sense: once on two
//! in-memory warren [`Connection`](warren_proto::h2::Connection)s, once on the
//! `h2` crate over `tokio::io::duplex` (the yardstick of
//! `shared/notes/rust-anchors.md`), set up the same way.
//!
//! Rooms:
//! - [`corpus`]: the HPACK story corpus, parsed and verified.
//! - [`frames`]: a buffer of mixed frames for the frame decoder.
//! - [`pair`]: two warren connections wired back to back.
//! - [`bulk`], [`churn`], [`idle`]: the warren workloads.
//! - [`reference`]: the same bulk and churn workloads on the `h2` crate.
//! - [`mesh`]: `warren bench`, the whole mesh against real peers (with
//!   `pair`, the only rooms without feature `yardstick`, which brings the
//!   `h2` crate).
//! - [`samples`]: per-iteration times for the criterion benches.
//! - [`mtls`]: mutual TLS alone, and HTTP/2 over it without a node.
//! - [`node`]: two real mesh nodes wired in memory (the node bench).

#[cfg(feature = "yardstick")]
pub mod bulk;
#[cfg(feature = "yardstick")]
pub mod churn;
#[cfg(feature = "yardstick")]
pub mod corpus;
#[cfg(feature = "yardstick")]
pub mod frames;
#[cfg(feature = "yardstick")]
pub mod idle;
pub mod mesh;
#[cfg(feature = "yardstick")]
pub mod mtls;
#[cfg(feature = "yardstick")]
pub mod node;
pub mod pair;
#[cfg(feature = "yardstick")]
pub mod reference;
#[cfg(feature = "yardstick")]
pub mod samples;

/// One mebibyte, the application write size and frame size of the bulk runs.
#[cfg(feature = "yardstick")]
pub const MIB: usize = 1 << 20;

/// The CONNECT target every workload asks for (the same as the anchors').
#[cfg(feature = "yardstick")]
pub const AUTHORITY: &str = "backend.example:8080";
