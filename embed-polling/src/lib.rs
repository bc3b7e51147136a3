//! A warren node in a hand-written event loop: std non-blocking sockets,
//! the `polling` crate, no async runtime. Copy this when embedding warren
//! in your own loop.
//!
//! Rooms:
//! - [`host`]: [`PollingHost`], the `drive::Host` over std sockets.
//! - [`event_loop`]: the loop itself ([`run`]) and its [`Clock`].
//! - [`demo_config`], [`demo_certs`]: the demo's flags and certificates.
//!
//! A crate of its own rather than `proto/examples/`, so that `polling`,
//! `socket2` and `libc` do not become dev-dependencies of the sans-IO core.

pub mod demo_certs;
pub mod demo_config;
pub mod event_loop;
pub mod host;

pub use event_loop::{run, Clock};
pub use host::{PollingHost, Stopper};
