//! `Exports`: the services a node serves over HBONE, and which one an
//! `:authority` names.
//!
//! Only exported services are reachable at all: an authority that names
//! nothing here is [`Reason::NotExported`] (the node answers 503) before
//! authorization is even asked.

use super::authority::Authority;
use super::cidr::canonical_ip;
use super::decision::{Decision, Reason};
use super::service::ServiceName;
use core::fmt;
use core::net::SocketAddr;

/// Where an exported service's bytes go on the node's side.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A socket address (usually on loopback). Clients may also name the
    /// export by this address in `:authority`, as ztunnel clients do.
    Addr(SocketAddr),
    /// A host name the node resolves when it connects. Not reachable by
    /// `ip:port` authorities: matching one would need resolution, and
    /// policy does no I/O.
    Host {
        /// The host name.
        host: String,
        /// The port.
        port: u16,
    },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(addr) => write!(f, "{addr}"),
            Target::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// One exported service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    /// The mesh service, `name.namespace`.
    pub service: ServiceName,
    /// The service port clients name in `name.namespace:port`.
    pub port: u16,
    /// Where the node connects once the flow is allowed.
    pub target: Target,
}

/// Why a list of exports is inconsistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExportsError {
    /// Two exports share a service and port, so `name.namespace:port` would
    /// be ambiguous.
    DuplicateService {
        /// The service.
        service: ServiceName,
        /// The port.
        port: u16,
    },
    /// Two exports share a target address, so `ip:port` would be ambiguous
    /// (and could be authorized under the wrong service's rules).
    DuplicateTarget(SocketAddr),
}

impl fmt::Display for ExportsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportsError::DuplicateService { service, port } => {
                write!(f, "service {service}:{port} is exported twice")
            }
            ExportsError::DuplicateTarget(addr) => {
                write!(f, "target {addr} is exported twice")
            }
        }
    }
}

impl std::error::Error for ExportsError {}

/// A target address in canonical form, so `[::ffff:127.0.0.1]:80` and
/// `127.0.0.1:80` are the same export.
fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

/// A node's exported services, free of ambiguity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exports {
    exports: Vec<Export>,
}

impl Exports {
    /// Checks that no two exports share a service port or a target address.
    pub fn new(exports: Vec<Export>) -> Result<Exports, ExportsError> {
        for (i, a) in exports.iter().enumerate() {
            for b in exports.iter().skip(i + 1) {
                if a.service == b.service && a.port == b.port {
                    return Err(ExportsError::DuplicateService {
                        service: a.service.clone(),
                        port: a.port,
                    });
                }
                if let (Target::Addr(x), Target::Addr(y)) = (&a.target, &b.target) {
                    if canonical_addr(*x) == canonical_addr(*y) {
                        return Err(ExportsError::DuplicateTarget(*x));
                    }
                }
            }
        }
        Ok(Exports { exports })
    }

    /// The exports, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Export> {
        self.exports.iter()
    }

    /// How many service ports are exported.
    pub fn len(&self) -> usize {
        self.exports.len()
    }

    /// Whether nothing is exported.
    pub fn is_empty(&self) -> bool {
        self.exports.is_empty()
    }

    /// The export an authority names: `name.namespace:port` by service and
    /// port (ignoring ASCII case), `ip:port` by target address (IPv4-mapped
    /// IPv6 taken as IPv4). Anything else is a [`Reason::NotExported`]
    /// decision.
    pub fn resolve(&self, authority: &Authority<'_>) -> Result<&Export, Decision> {
        let found = match *authority {
            Authority::Service {
                name,
                namespace,
                port,
            } => self
                .exports
                .iter()
                .find(|e| e.port == port && e.service.is(name, namespace)),
            Authority::Addr(addr) => {
                let addr = canonical_addr(addr);
                self.exports
                    .iter()
                    .find(|e| matches!(e.target, Target::Addr(t) if canonical_addr(t) == addr))
            }
        };
        found.ok_or_else(|| Decision::new(Reason::NotExported, None))
    }
}
