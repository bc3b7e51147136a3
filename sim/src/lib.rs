//! # warren-sim
//!
//! warren's deterministic simulator. For now it holds the deterministic
//! crypto a simulated run needs:
//! - [`crypto`]: a seeded rustls `CryptoProvider` (randomness, X25519,
//!   Ed25519), so a run's TLS bytes repeat for the same seed.
//! - [`certs`]: a CA and workload certificates derived from a seed, and the
//!   virtual clock rustls checks them against.

pub mod certs;
pub mod crypto;
