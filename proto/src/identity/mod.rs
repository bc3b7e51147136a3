//! Mesh identities: SPIFFE ids, the certificate checks that make a peer's
//! id trustworthy, and the rustls configs that apply them.

mod config;
mod san;
mod spiffe;
mod verify;

pub use config::{ConfigError, MeshTlsParams, ALPN_H2};
pub use spiffe::{SpiffeId, SpiffeIdError, TrustDomain};
pub use verify::{
    spiffe_id_of, IdentityError, MeshClientVerifier, MeshServerVerifier, MeshTrust, PeerRole,
    TrustError,
};
