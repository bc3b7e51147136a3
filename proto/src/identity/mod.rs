//! Mesh identities: SPIFFE ids, the certificate checks that make a peer's
//! id trustworthy, the rustls configs that apply them, and the template of
//! the certificates themselves.

mod config;
mod resume;
mod san;
mod spiffe;
mod template;
mod verify;

pub use config::{ConfigError, MeshTlsParams, ResumableConfig, ALPN_H2};
pub use resume::{ResumedCheck, Resumption, DEFAULT_MAX_AGE, DEFAULT_MAX_SESSIONS, MAX_MAX_AGE};
pub(crate) use san::serial_number;
pub use spiffe::{SpiffeId, SpiffeIdError, TrustDomain};
pub use template::{ca_params, ca_trust_domain, leaf_params, TemplateError, Validity};
pub use verify::{
    spiffe_id_of, IdentityError, MeshClientVerifier, MeshServerVerifier, MeshTrust, OwnChain,
    PeerRole, TrustError,
};
