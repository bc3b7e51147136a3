//! `Authority`: the destination an HBONE `CONNECT` names in `:authority`.
//!
//! Three forms are accepted, and nothing else (the node answers 400):
//! - `ip:port` with a dotted-quad IPv4 address (as ztunnel sends),
//! - `[v6]:port` with a bracketed IPv6 address (no zone id),
//! - `name.namespace:port`, a mesh service (labels compared ignoring case).
//!
//! The port is decimal, 1-65535, without sign or leading zero: CONNECT
//! always names a port, and one spelling per port keeps logs greppable.
//! A host made only of digits and dots is an IPv4 address or an error, never
//! a service name, so `10.0.0.256:80` is refused rather than looked up as
//! service `10` in namespace `0.0.256`.

use super::service::{is_label_ignoring_case, ServiceName};
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest `:authority` accepted: a 63-byte name, a dot, a 63-byte
/// namespace and `:65535`, with room to spare.
pub const MAX_AUTHORITY_LEN: usize = 255;

/// A parsed `:authority`, borrowing the names from the header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority<'a> {
    /// `ip:port` or `[v6]:port`.
    Addr(SocketAddr),
    /// `name.namespace:port`, as written (case preserved).
    Service {
        /// The service's own name.
        name: &'a str,
        /// Its namespace.
        namespace: &'a str,
        /// The service port.
        port: u16,
    },
}

/// Why an `:authority` value is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorityError {
    /// The value is empty.
    Empty,
    /// Longer than [`MAX_AUTHORITY_LEN`].
    TooLong,
    /// No `:port` after the host.
    MissingPort,
    /// The port is not decimal 1-65535 without sign or leading zero.
    InvalidPort,
    /// `[` without `]`, or bytes between `]` and `:`.
    MalformedBrackets,
    /// The bracketed text is not an IPv6 address (zone ids are refused).
    InvalidIpv6,
    /// An IPv6 address without brackets.
    UnbracketedIpv6,
    /// Digits and dots that do not make an IPv4 address.
    InvalidIpv4,
    /// The host is neither an address nor `name.namespace`.
    InvalidHost,
}

impl fmt::Display for AuthorityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthorityError::Empty => "authority is empty",
            AuthorityError::TooLong => "authority longer than 255 bytes",
            AuthorityError::MissingPort => "authority has no :port",
            AuthorityError::InvalidPort => {
                "authority port must be decimal 1-65535 without leading zero"
            }
            AuthorityError::MalformedBrackets => {
                "authority has malformed [ ] around an IPv6 address"
            }
            AuthorityError::InvalidIpv6 => "authority brackets do not hold an IPv6 address",
            AuthorityError::UnbracketedIpv6 => "authority IPv6 address must be in brackets",
            AuthorityError::InvalidIpv4 => "authority host is not a valid IPv4 address",
            AuthorityError::InvalidHost => "authority host is not an address or name.namespace",
        })
    }
}

impl std::error::Error for AuthorityError {}

fn parse_port(s: &str) -> Result<u16, AuthorityError> {
    if s.is_empty() {
        return Err(AuthorityError::MissingPort);
    }
    if s.len() > 5 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthorityError::InvalidPort);
    }
    s.parse().map_err(|_| AuthorityError::InvalidPort)
}

impl<'a> Authority<'a> {
    /// The service and port a `name.namespace:port` authority names, as a
    /// [`ServiceName`]; `None` for an address or a name `ServiceName`
    /// refuses.
    pub fn service_port(&self) -> Option<(ServiceName, u16)> {
        match *self {
            Authority::Service {
                name,
                namespace,
                port,
            } => ServiceName::new(name, namespace).ok().map(|s| (s, port)),
            Authority::Addr(_) => None,
        }
    }

    /// Parses an `:authority` value.
    pub fn parse(s: &'a str) -> Result<Authority<'a>, AuthorityError> {
        if s.is_empty() {
            return Err(AuthorityError::Empty);
        }
        if s.len() > MAX_AUTHORITY_LEN {
            return Err(AuthorityError::TooLong);
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest
                .split_once(']')
                .ok_or(AuthorityError::MalformedBrackets)?;
            let v6: Ipv6Addr = v6.parse().map_err(|_| AuthorityError::InvalidIpv6)?;
            let port = match after.strip_prefix(':') {
                Some(port) => parse_port(port)?,
                None if after.is_empty() => return Err(AuthorityError::MissingPort),
                None => return Err(AuthorityError::MalformedBrackets),
            };
            return Ok(Authority::Addr(SocketAddr::new(IpAddr::V6(v6), port)));
        }
        let (host, port) = s.rsplit_once(':').ok_or(AuthorityError::MissingPort)?;
        if host.contains(':') {
            return Err(AuthorityError::UnbracketedIpv6);
        }
        if host.contains(['[', ']']) {
            return Err(AuthorityError::MalformedBrackets);
        }
        let port = parse_port(port)?;
        if !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let v4: Ipv4Addr = host.parse().map_err(|_| AuthorityError::InvalidIpv4)?;
            return Ok(Authority::Addr(SocketAddr::new(IpAddr::V4(v4), port)));
        }
        match host.split_once('.') {
            Some((name, namespace))
                if !namespace.contains('.')
                    && is_label_ignoring_case(name)
                    && is_label_ignoring_case(namespace) =>
            {
                Ok(Authority::Service {
                    name,
                    namespace,
                    port,
                })
            }
            _ => Err(AuthorityError::InvalidHost),
        }
    }

    /// The destination port.
    pub fn port(&self) -> u16 {
        match self {
            Authority::Addr(addr) => addr.port(),
            Authority::Service { port, .. } => *port,
        }
    }
}

/// The canonical spelling: `ip:port`, `[v6]:port` or `name.namespace:port`.
impl fmt::Display for Authority<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authority::Addr(addr) => write!(f, "{addr}"),
            Authority::Service {
                name,
                namespace,
                port,
            } => write!(f, "{name}.{namespace}:{port}"),
        }
    }
}
