//! Mesh identities: SPIFFE ids and, later, the certificate checks that make
//! a peer's id trustworthy.

mod spiffe;

pub use spiffe::{SpiffeId, SpiffeIdError};
