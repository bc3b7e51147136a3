//! Mesh identities: SPIFFE ids, the certificate checks that make a peer's
//! id trustworthy, the rustls configs that apply them, and the template of
//! the certificates themselves.

mod config;
mod san;
mod spiffe;
mod template;
mod verify;

pub use config::{ConfigError, MeshTlsParams, ALPN_H2};
pub(crate) use san::serial_number;
pub use spiffe::{SpiffeId, SpiffeIdError, TrustDomain};
pub use template::{ca_params, ca_trust_domain, leaf_params, TemplateError, Validity};
pub use verify::{
    spiffe_id_of, IdentityError, MeshClientVerifier, MeshServerVerifier, MeshTrust, OwnChain,
    PeerRole, TrustError,
};
