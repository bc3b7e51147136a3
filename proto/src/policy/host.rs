//! Destination hosts of egress flows, and the domain patterns that match
//! them.
//!
//! Domains compare ignoring ASCII case, and one trailing dot (the DNS root)
//! is ignored on both sides. A request's domain is validated before any
//! matching, because a suffix match is only as sound as the name it looks
//! at: `evil.com\0.example.com` ends in `.example.com`, but a resolver may
//! stop at the NUL. Names that a resolver or URL parser could read as an
//! IPv4 address (last label all digits, or `0x` hex) are refused too, so a
//! domain rule can never let through what a CIDR rule was meant to guard.

use core::fmt;
use core::net::{IpAddr, Ipv6Addr};

/// The longest domain name, without the trailing dot (RFC 1035).
pub const MAX_DOMAIN_LEN: usize = 253;

/// Why a string is not a domain or domain pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainError {
    /// The name is empty (or only a dot).
    Empty,
    /// Longer than [`MAX_DOMAIN_LEN`].
    TooLong,
    /// Two dots in a row, or a leading dot.
    EmptyLabel,
    /// A label longer than 63 bytes.
    LabelTooLong,
    /// A byte outside `[A-Za-z0-9_-]` in a label.
    InvalidChar,
    /// The last label reads as a number, so the name could be taken for
    /// an IPv4 address.
    NumericTld,
    /// A label that starts or ends with `-` (RFC 952/1123 LDH rule).
    HyphenAtLabelEdge,
    /// A `*` anywhere but as the whole first label of a pattern with at
    /// least one more label (`*.example.com`).
    MisplacedWildcard,
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DomainError::Empty => "domain is empty",
            DomainError::TooLong => "domain longer than 253 bytes",
            DomainError::EmptyLabel => "domain has an empty label",
            DomainError::LabelTooLong => "domain label longer than 63 bytes",
            DomainError::InvalidChar => "domain may only use A-Z a-z 0-9 _ - and dots",
            DomainError::NumericTld => {
                "domain's last label is numeric (looks like an IPv4 address)"
            }
            DomainError::HyphenAtLabelEdge => "a label starts or ends with '-'",
            DomainError::MisplacedWildcard => {
                "wildcard must be the whole first label: *.example.com"
            }
        })
    }
}

impl std::error::Error for DomainError {}

/// Checks a dotted name (trailing dot already removed).
fn validate_name(name: &str) -> Result<(), DomainError> {
    if name.is_empty() {
        return Err(DomainError::Empty);
    }
    if name.len() > MAX_DOMAIN_LEN {
        return Err(DomainError::TooLong);
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err(DomainError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(DomainError::LabelTooLong);
        }
        if label.contains('*') {
            return Err(DomainError::MisplacedWildcard);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainError::HyphenAtLabelEdge);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DomainError::InvalidChar);
        }
        last = label;
    }
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if hex || last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::NumericTld);
    }
    Ok(())
}

/// A validated domain name from a request, trailing dot removed, case as
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Domain<'a>(&'a str);

impl<'a> Domain<'a> {
    /// Validates a domain name (see the module docs).
    pub fn parse(s: &'a str) -> Result<Domain<'a>, DomainError> {
        let name = s.strip_suffix('.').unwrap_or(s);
        validate_name(name)?;
        Ok(Domain(name))
    }

    /// The name without its trailing dot.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Display for Domain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Where an egress flow wants to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// An address (SOCKS5 IPv4/IPv6 targets, or a literal in CONNECT).
    Ip(IpAddr),
    /// A domain name, to be resolved by the front end after the decision.
    Domain(Domain<'a>),
}

impl<'a> Host<'a> {
    /// Parses a host: an IPv4 literal, an IPv6 literal with or without
    /// brackets, or else a domain name.
    pub fn parse(s: &'a str) -> Result<Host<'a>, DomainError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        if let Some(v6) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            if let Ok(ip) = v6.parse::<Ipv6Addr>() {
                return Ok(Host::Ip(IpAddr::V6(ip)));
            }
        }
        Domain::parse(s).map(Host::Domain)
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Domain(d) => write!(f, "{d}"),
        }
    }
}

/// `example.com` (exactly that name) or `*.example.com` (any name with at
/// least one more label in front: `a.example.com`, `a.b.example.com`, not
/// `example.com`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainPattern {
    // Lowercase, no trailing dot, without the `*.`.
    name: String,
    wildcard: bool,
}

impl DomainPattern {
    /// Parses a pattern; case and one trailing dot are ignored.
    pub fn parse(s: &str) -> Result<DomainPattern, DomainError> {
        let s = s.strip_suffix('.').unwrap_or(s);
        let (name, wildcard) = match s.strip_prefix("*.") {
            Some(rest) => (rest, true),
            None => (s, false),
        };
        validate_name(name)?;
        Ok(DomainPattern {
            name: name.to_ascii_lowercase(),
            wildcard,
        })
    }

    /// Whether `domain` matches.
    pub fn matches(&self, domain: Domain<'_>) -> bool {
        let d = domain.as_str();
        if !self.wildcard {
            return d.eq_ignore_ascii_case(&self.name);
        }
        // `d` must be `<something>.<name>` with a non-empty something. A
        // validated domain has no empty label, so the byte before a dot is
        // never the start: checking for the dot suffices.
        let Some(cut) = d.len().checked_sub(self.name.len() + 1) else {
            return false;
        };
        d.as_bytes().get(cut) == Some(&b'.')
            && d.get(cut + 1..)
                .is_some_and(|tail| tail.eq_ignore_ascii_case(&self.name))
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.name)
    }
}

impl fmt::Debug for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DomainPattern({self})")
    }
}
