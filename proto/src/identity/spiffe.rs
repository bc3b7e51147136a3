//! `SpiffeId`: the only identity warren knows.

use core::fmt;
use core::str::FromStr;
use std::sync::Arc;

/// Why a string is not a mesh SPIFFE id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpiffeIdError {
    /// Does not start with `spiffe://`.
    MissingScheme,
    /// The trust domain is empty or has characters outside `[a-z0-9._-]`.
    InvalidTrustDomain,
    /// The path is not `/ns/<namespace>/sa/<name>`.
    NotNamespaceServiceAccount,
    /// A namespace or name is empty, `.`/`..`, or has characters outside
    /// `[A-Za-z0-9._-]`.
    InvalidSegment,
    /// Longer than 2048 bytes (the SPIFFE limit for URIs).
    TooLong,
}

impl fmt::Display for SpiffeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpiffeIdError::MissingScheme => "SPIFFE id must start with spiffe://",
            SpiffeIdError::InvalidTrustDomain => {
                "trust domain must be non-empty and use only a-z 0-9 . _ -"
            }
            SpiffeIdError::NotNamespaceServiceAccount => {
                "SPIFFE id path must be /ns/<namespace>/sa/<name>"
            }
            SpiffeIdError::InvalidSegment => {
                "namespace and name must be non-empty, not . or .., and use only A-Z a-z 0-9 . _ -"
            }
            SpiffeIdError::TooLong => "SPIFFE id longer than 2048 bytes",
        })
    }
}

impl std::error::Error for SpiffeIdError {}

/// A validated SPIFFE trust domain, e.g. `cluster.local`: the name of one
/// mesh whose CA roots a node trusts.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Validates a trust domain name (non-empty, `[a-z0-9._-]` only).
    pub fn new(name: &str) -> Result<TrustDomain, SpiffeIdError> {
        if name.len() > MAX_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        if !valid_trust_domain(name) {
            return Err(SpiffeIdError::InvalidTrustDomain);
        }
        Ok(TrustDomain(name.to_owned()))
    }

    /// The name, e.g. `cluster.local`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `id` belongs to this trust domain.
    pub fn contains(&self, id: &SpiffeId) -> bool {
        id.trust_domain() == self.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({})", self.0)
    }
}

/// A validated `spiffe://<trust-domain>/ns/<namespace>/sa/<name>`.
///
/// Ordering and equality are those of the canonical string, so ids can key
/// ordered maps deterministically.
///
/// A clone shares the string: a flow copies its ids into metric keys,
/// events, pool keys and TLS config keys several times, and each copy was
/// an allocation (52 string clones per cold flow on the dialling agent,
/// issue 8, benches/WARREN-BENCH.md). The string never changes after
/// parsing, so sharing it is invisible.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    uri: Arc<str>,
    // Byte offsets into `uri` of the trust domain end, namespace and name.
    td_end: usize,
    ns: (usize, usize),
    sa: (usize, usize),
}

const SCHEME: &str = "spiffe://";
const MAX_LEN: usize = 2048;

fn valid_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn valid_segment(seg: &str) -> bool {
    !seg.is_empty()
        && seg != "."
        && seg != ".."
        && seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

impl SpiffeId {
    /// Parses and validates a mesh SPIFFE id.
    pub fn parse(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        if s.len() > MAX_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeIdError::MissingScheme)?;
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if !valid_trust_domain(td) {
            return Err(SpiffeIdError::InvalidTrustDomain);
        }
        let mut parts = path.split('/');
        // `path` starts with '/', so the first part is empty.
        let (Some(""), Some("ns"), Some(ns), Some("sa"), Some(sa), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SpiffeIdError::NotNamespaceServiceAccount);
        };
        if !valid_segment(ns) || !valid_segment(sa) {
            return Err(SpiffeIdError::InvalidSegment);
        }
        let td_end = SCHEME.len() + td.len();
        let ns_start = td_end + "/ns/".len();
        let sa_start = ns_start + ns.len() + "/sa/".len();
        Ok(SpiffeId {
            uri: Arc::from(s),
            td_end,
            ns: (ns_start, ns_start + ns.len()),
            sa: (sa_start, sa_start + sa.len()),
        })
    }

    /// Builds an id from its parts, validating each.
    pub fn new(trust_domain: &str, namespace: &str, name: &str) -> Result<SpiffeId, SpiffeIdError> {
        SpiffeId::parse(&format!("{SCHEME}{trust_domain}/ns/{namespace}/sa/{name}"))
    }

    /// The whole URI.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The trust domain, e.g. `example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.uri[SCHEME.len()..self.td_end]
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.uri[self.ns.0..self.ns.1]
    }

    /// The service account name.
    pub fn name(&self) -> &str {
        &self.uri[self.sa.0..self.sa.1]
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<SpiffeId, SpiffeIdError> {
        SpiffeId::parse(s)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_parts() {
        let id = SpiffeId::parse("spiffe://example.org/ns/shop/sa/cart-1").unwrap();
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.namespace(), "shop");
        assert_eq!(id.name(), "cart-1");
        assert_eq!(id.to_string(), "spiffe://example.org/ns/shop/sa/cart-1");
        assert_eq!(SpiffeId::new("example.org", "shop", "cart-1").unwrap(), id);
    }

    #[test]
    fn rejects_each_malformation() {
        use SpiffeIdError::*;
        let cases = [
            ("http://example.org/ns/a/sa/b", MissingScheme),
            ("spiffe:///ns/a/sa/b", InvalidTrustDomain),
            ("spiffe://Example.org/ns/a/sa/b", InvalidTrustDomain),
            ("spiffe://ex ample/ns/a/sa/b", InvalidTrustDomain),
            ("spiffe://example.org", NotNamespaceServiceAccount),
            ("spiffe://example.org/", NotNamespaceServiceAccount),
            ("spiffe://example.org/ns/a", NotNamespaceServiceAccount),
            (
                "spiffe://example.org/ns/a/sa/b/extra",
                NotNamespaceServiceAccount,
            ),
            (
                "spiffe://example.org/ns/a/sa/b/",
                NotNamespaceServiceAccount,
            ),
            ("spiffe://example.org/sa/b/ns/a", NotNamespaceServiceAccount),
            ("spiffe://example.org/ns//sa/b", InvalidSegment),
            ("spiffe://example.org/ns/../sa/b", InvalidSegment),
            ("spiffe://example.org/ns/a/sa/b%20c", InvalidSegment),
            ("spiffe://example.org/ns/a/sa/b?x=1", InvalidSegment),
        ];
        for (s, want) in cases {
            assert_eq!(SpiffeId::parse(s), Err(want), "{s}");
        }
        let long = format!("spiffe://example.org/ns/a/sa/{}", "x".repeat(2048));
        assert_eq!(SpiffeId::parse(&long), Err(TooLong));
    }

    #[test]
    fn trust_domain_validates_and_contains() {
        let td = TrustDomain::new("example.org").unwrap();
        assert_eq!(td.as_str(), "example.org");
        assert!(td.contains(&SpiffeId::parse("spiffe://example.org/ns/a/sa/b").unwrap()));
        assert!(!td.contains(&SpiffeId::parse("spiffe://example.com/ns/a/sa/b").unwrap()));
        // A prefix of the id's trust domain is a different trust domain.
        assert!(!td.contains(&SpiffeId::parse("spiffe://example.org.evil/ns/a/sa/b").unwrap()));
        assert_eq!(TrustDomain::new(""), Err(SpiffeIdError::InvalidTrustDomain));
        assert_eq!(
            TrustDomain::new("Ex.org"),
            Err(SpiffeIdError::InvalidTrustDomain)
        );
        assert_eq!(
            TrustDomain::new("a/b"),
            Err(SpiffeIdError::InvalidTrustDomain)
        );
    }

    #[test]
    fn orders_by_uri() {
        let a = SpiffeId::parse("spiffe://a.org/ns/x/sa/y").unwrap();
        let b = SpiffeId::parse("spiffe://b.org/ns/a/sa/a").unwrap();
        assert!(a < b);
    }

    #[test]
    fn a_clone_shares_the_string_and_still_compares_by_content() {
        let a = SpiffeId::parse("spiffe://a.org/ns/x/sa/y").unwrap();
        let b = a.clone();
        assert!(
            core::ptr::eq(a.as_str(), b.as_str()),
            "a clone copied the string"
        );
        let c = SpiffeId::parse(a.as_str()).unwrap();
        assert!(!core::ptr::eq(a.as_str(), c.as_str()));
        assert_eq!(a, c);
        assert_eq!(a.cmp(&c), core::cmp::Ordering::Equal);
        assert_eq!((c.namespace(), c.name()), ("x", "y"));
    }
}
