//! # warren
//!
//! The `warren` command: a zero-trust service mesh for TCP. This library
//! holds what the binary is made of, so tests and other front ends can use
//! it without a process:
//! - [`ca`]: `warren ca init | issue | ticket`, a file-based CA.
//! - [`config`]: the agent's TOML configuration, parsed into warren-proto's
//!   policy and front-end types with errors that point at the line.
//! - [`identity`]: the agent's PEM files or join ticket, loaded for
//!   warren-proto's `MeshTlsParams`.
//! - [`agent`]: `warren agent`, a mesh node on tokio or smol.
//! - [`demo`]: `warren demo`, two agents and a CA in one process.
//! - [`status`]: `warren status`, a running agent's summary.
//! - [`args`]: the command line.

pub mod agent;
pub mod args;
pub mod ca;
pub mod config;
pub mod demo;
pub mod identity;
pub mod status;
