//! `Target`: where a local client asked to go (`host:port`).
//!
//! Every front end turns its request into a [`Target`]; egress policy and the
//! mesh node see only this type. Parsing is strict on purpose: a name that a
//! resolver would read as an address (`127.1`, `0x7f000001`) is refused
//! rather than let through as a "domain", so CIDR rules cannot be bypassed by
//! spelling an address differently.

use core::cmp::Ordering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::policy::{Domain, DomainError};

pub use crate::policy::MAX_DOMAIN_LEN;

/// Why a string is not a valid host or `host:port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// The host is empty.
    EmptyHost,
    /// The domain is longer than [`MAX_DOMAIN_LEN`] bytes.
    DomainTooLong,
    /// A label is empty, longer than 63 bytes, starts or ends with `-`, or
    /// has a byte outside `A-Z a-z 0-9 - _` (the LDH rule, plus `_` for
    /// names such as `_dmarc.example.com` and `_http._tcp.example.com`).
    InvalidLabel,
    /// The last label is numeric (`1.2.3`, `0x7f000001`): resolvers would
    /// read the name as an IPv4 address, so it is neither a domain nor a
    /// valid address.
    NumericName,
    /// Text inside `[...]` is not an IPv6 address.
    InvalidIpv6,
    /// An IPv6 address in `host:port` without the required brackets.
    Ipv6WithoutBrackets,
    /// No `:port` after the host.
    MissingPort,
    /// The port is not a decimal number in 1..=65535.
    InvalidPort,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TargetError::EmptyHost => "empty host",
            TargetError::DomainTooLong => "domain name longer than 253 bytes",
            TargetError::InvalidLabel => {
                "domain label is not 1-63 letters, digits, underscores or inner hyphens"
            }
            TargetError::NumericName => "numeric name that is not a valid IPv4 address",
            TargetError::InvalidIpv6 => "invalid IPv6 address in brackets",
            TargetError::Ipv6WithoutBrackets => "IPv6 address must be written [addr]:port",
            TargetError::MissingPort => "missing :port",
            TargetError::InvalidPort => "port is not a number in 1..=65535",
        })
    }
}

impl std::error::Error for TargetError {}

/// A validated DNS host name: LDH labels (`_` allowed too), at most 253
/// bytes, no trailing dot.
///
/// The spelling is kept as the client sent it (it is what gets logged and
/// resolved), but equality, ordering and hashing ignore ASCII case, as DNS
/// does, so `Example.COM` and `example.com` match the same egress rule.
#[derive(Clone, Debug)]
pub struct DomainName(String);

impl DomainName {
    /// Validates `name`. One trailing dot (an absolute name) is accepted and
    /// dropped, so `example.com.` and `example.com` are the same name.
    pub fn parse(name: &str) -> Result<DomainName, TargetError> {
        // One validator for every domain in warren: the one egress rules
        // match against, so a name the front end accepts is always a name
        // the policy can judge.
        let domain = Domain::parse(name).map_err(|e| match e {
            DomainError::Empty => TargetError::EmptyHost,
            DomainError::TooLong => TargetError::DomainTooLong,
            DomainError::NumericTld => TargetError::NumericName,
            DomainError::EmptyLabel
            | DomainError::LabelTooLong
            | DomainError::InvalidChar
            | DomainError::HyphenAtLabelEdge
            | DomainError::MisplacedWildcard => TargetError::InvalidLabel,
        })?;
        Ok(DomainName(domain.as_str().to_owned()))
    }

    /// The name as the policy module sees it, for egress decisions.
    pub fn as_domain(&self) -> Domain<'_> {
        Domain::parse(&self.0).unwrap_or_else(|_| unreachable!("validated at parse"))
    }

    /// The name as the client spelled it (without a trailing dot).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn folded(&self) -> impl Iterator<Item = u8> + '_ {
        self.0.bytes().map(|b| b.to_ascii_lowercase())
    }
}

impl PartialEq for DomainName {
    fn eq(&self, other: &DomainName) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for DomainName {}

impl PartialOrd for DomainName {
    fn partial_cmp(&self, other: &DomainName) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DomainName {
    fn cmp(&self, other: &DomainName) -> Ordering {
        self.folded().cmp(other.folded())
    }
}

impl Hash for DomainName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.folded() {
            state.write_u8(b);
        }
        // Terminator, like `str`'s Hash, so ("ab","c") and ("a","bc") differ.
        state.write_u8(0xff);
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<DomainName, TargetError> {
        DomainName::parse(s)
    }
}

/// The host part of a target: an address or a name still to be resolved.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// A literal address. Parsing stores IPv4-mapped IPv6 addresses
    /// (`::ffff:a.b.c.d`) as IPv4, so one CIDR rule covers both spellings.
    Ip(IpAddr),
    /// A DNS name.
    Domain(DomainName),
}

impl Host {
    /// Parses a bare host: an IPv4 address, an IPv6 address with or without
    /// brackets, or a domain name. Address literals always become
    /// [`Host::Ip`], even when a SOCKS client sent them as a domain.
    pub fn parse(s: &str) -> Result<Host, TargetError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(TargetError::InvalidIpv6)?;
            let v6 = Ipv6Addr::from_str(inner).map_err(|_| TargetError::InvalidIpv6)?;
            return Ok(Host::from_ip(IpAddr::V6(v6)));
        }
        if let Ok(v4) = Ipv4Addr::from_str(s) {
            return Ok(Host::Ip(IpAddr::V4(v4)));
        }
        if s.contains(':') {
            let v6 = Ipv6Addr::from_str(s).map_err(|_| TargetError::InvalidIpv6)?;
            return Ok(Host::from_ip(IpAddr::V6(v6)));
        }
        DomainName::parse(s).map(Host::Domain)
    }

    /// An address host in canonical form (IPv4-mapped IPv6 becomes IPv4).
    pub fn from_ip(ip: IpAddr) -> Host {
        Host::Ip(ip.to_canonical())
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V4(v4)) => write!(f, "{v4}"),
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Domain(name) => write!(f, "{name}"),
        }
    }
}

/// Where a client asked to be connected.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The address or name.
    pub host: Host,
    /// The TCP port.
    pub port: u16,
}

impl Target {
    /// Parses an authority `host:port` (RFC 9110 §7.2 / RFC 3986 §3.2):
    /// `1.2.3.4:80`, `[::1]:443`, `example.com:8080`. The port is required
    /// and must be 1..=65535; IPv6 needs brackets.
    pub fn parse(authority: &str) -> Result<Target, TargetError> {
        let (host, port) = if authority.starts_with('[') {
            let end = authority.find(']').ok_or(TargetError::InvalidIpv6)?;
            let (host, rest) = authority.split_at(end.saturating_add(1));
            let port = rest.strip_prefix(':').ok_or(TargetError::MissingPort)?;
            (host, port)
        } else {
            let (host, port) = authority.rsplit_once(':').ok_or(TargetError::MissingPort)?;
            if host.contains(':') {
                // Either a bare IPv6 address or junk such as a URL scheme.
                return Err(
                    if Ipv6Addr::from_str(authority).is_ok() || Ipv6Addr::from_str(host).is_ok() {
                        TargetError::Ipv6WithoutBrackets
                    } else {
                        TargetError::InvalidLabel
                    },
                );
            }
            (host, port)
        };
        let port = parse_port(port)?;
        if host.is_empty() {
            return Err(TargetError::EmptyHost);
        }
        Ok(Target {
            host: Host::parse(host)?,
            port,
        })
    }
}

/// 1 to 5 ASCII digits with a value in 1..=65535. `u16::from_str` alone
/// would also accept a leading `+`.
fn parse_port(s: &str) -> Result<u16, TargetError> {
    if s.is_empty() {
        return Err(TargetError::MissingPort);
    }
    if s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::InvalidPort);
    }
    match u16::from_str(s) {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(TargetError::InvalidPort),
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl FromStr for Target {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Target, TargetError> {
        Target::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, Arbitrary, Gen, TestResult};

    fn domain(s: &str) -> Host {
        Host::Domain(DomainName::parse(s).unwrap())
    }

    #[test]
    fn parses_the_three_host_kinds() {
        assert_eq!(
            Target::parse("10.1.2.3:80").unwrap(),
            Target {
                host: Host::Ip("10.1.2.3".parse().unwrap()),
                port: 80
            }
        );
        assert_eq!(
            Target::parse("[::1]:443").unwrap(),
            Target {
                host: Host::Ip("::1".parse().unwrap()),
                port: 443
            }
        );
        assert_eq!(
            Target::parse("Example.com:8080").unwrap(),
            Target {
                host: domain("example.COM"),
                port: 8080
            }
        );
    }

    #[test]
    fn display_brackets_ipv6_and_keeps_case() {
        assert_eq!(
            Target::parse("[2001:db8::1]:443").unwrap().to_string(),
            "[2001:db8::1]:443"
        );
        assert_eq!(Target::parse("1.2.3.4:5").unwrap().to_string(), "1.2.3.4:5");
        assert_eq!(
            Target::parse("Api.Example.com:80").unwrap().to_string(),
            "Api.Example.com:80"
        );
    }

    #[test]
    fn domains_compare_case_insensitively_but_keep_spelling() {
        let a = DomainName::parse("WWW.Example.Com").unwrap();
        let b = DomainName::parse("www.example.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.cmp(&b), Ordering::Equal);
        assert_eq!(a.as_str(), "WWW.Example.Com");
        let mut set = std::collections::BTreeSet::new();
        set.insert(a);
        assert!(!set.insert(b));
        assert!(
            DomainName::parse("a.example.com").unwrap()
                < DomainName::parse("B.example.com").unwrap()
        );
    }

    #[test]
    fn trailing_dot_is_dropped() {
        assert_eq!(
            DomainName::parse("example.com.").unwrap().as_str(),
            "example.com"
        );
        assert_eq!(DomainName::parse("."), Err(TargetError::EmptyHost));
        assert_eq!(
            DomainName::parse("example.com.."),
            Err(TargetError::InvalidLabel)
        );
    }

    #[test]
    fn ldh_rule() {
        for bad in [
            "a..b",
            "-a.com",
            "a-.com",
            "a!b.com",
            "a b",
            "ex\u{e4}mple.com",
            "a.com:",
        ] {
            assert_eq!(
                DomainName::parse(bad),
                Err(TargetError::InvalidLabel),
                "{bad}"
            );
        }
        assert!(DomainName::parse(&"a".repeat(63)).is_ok());
        assert_eq!(
            DomainName::parse(&"a".repeat(64)),
            Err(TargetError::InvalidLabel)
        );
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61),
        ]
        .join(".");
        assert_eq!(long.len(), 253);
        assert!(DomainName::parse(&long).is_ok());
        assert_eq!(
            DomainName::parse(&format!("{long}e")),
            Err(TargetError::DomainTooLong)
        );
        assert!(DomainName::parse("xn--bcher-kva.example").is_ok());
        assert!(DomainName::parse("1password.com").is_ok());
    }

    #[test]
    fn numeric_names_are_not_domains() {
        for bad in [
            "127.1",
            "1.2.3",
            "0x7f000001",
            "10.0.0.0x1",
            "1.2.3.4.5",
            "01.2.3.4",
        ] {
            assert_eq!(Host::parse(bad), Err(TargetError::NumericName), "{bad}");
        }
        assert!(Host::parse("0x7g").is_ok());
        assert!(Host::parse("1.2.3.com").is_ok());
    }

    #[test]
    fn addresses_in_host_parse() {
        assert_eq!(
            Host::parse("::1").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            Host::parse("[::1]").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(Host::parse("[::1"), Err(TargetError::InvalidIpv6));
        assert_eq!(Host::parse("[example.com]"), Err(TargetError::InvalidIpv6));
        assert_eq!(Host::parse("::g"), Err(TargetError::InvalidIpv6));
        // IPv4-mapped IPv6 is stored as the IPv4 address it means.
        assert_eq!(
            Host::parse("::ffff:10.0.0.1").unwrap(),
            Host::Ip("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn bad_authorities() {
        let cases = [
            ("example.com", TargetError::MissingPort),
            ("example.com:", TargetError::MissingPort),
            (":80", TargetError::EmptyHost),
            ("example.com:0", TargetError::InvalidPort),
            ("example.com:65536", TargetError::InvalidPort),
            ("example.com:99999", TargetError::InvalidPort),
            ("example.com:+80", TargetError::InvalidPort),
            ("example.com:080080", TargetError::InvalidPort),
            ("example.com:http", TargetError::InvalidPort),
            ("::1:443", TargetError::Ipv6WithoutBrackets),
            ("[::1]", TargetError::MissingPort),
            ("[::1]443", TargetError::MissingPort),
            ("[::1:443", TargetError::InvalidIpv6),
            ("[fe80::1%25eth0]:443", TargetError::InvalidIpv6),
            ("2001:db8::1:443", TargetError::Ipv6WithoutBrackets),
            ("http://example.com:80", TargetError::InvalidLabel),
            ("a b:80", TargetError::InvalidLabel),
        ];
        for (input, want) in cases {
            assert_eq!(Target::parse(input), Err(want), "{input}");
        }
        assert_eq!(Target::parse("example.com:65535").unwrap().port, 65535);
    }

    #[test]
    fn display_parses_back_to_the_same_target() {
        fn prop(v4: u32, v6: u128, port: u16, labels: Vec<u8>) -> TestResult {
            if port == 0 {
                return TestResult::discard();
            }
            let name: String = labels
                .iter()
                .take(8)
                .map(|n| format!("l{}x", n % 100))
                .collect::<Vec<_>>()
                .join(".");
            let mut hosts = vec![
                Host::from_ip(IpAddr::V4(Ipv4Addr::from(v4))),
                Host::from_ip(IpAddr::V6(Ipv6Addr::from(v6))),
            ];
            if !name.is_empty() {
                hosts.push(domain(&name));
            }
            for host in hosts {
                let target = Target { host, port };
                if Target::parse(&target.to_string()) != Ok(target.clone()) {
                    return TestResult::failed();
                }
            }
            TestResult::passed()
        }
        quickcheck(prop as fn(u32, u128, u16, Vec<u8>) -> TestResult);
    }

    /// The domain rules, stated on their own: at most 253 bytes (after
    /// one trailing dot is dropped), labels of 1-63 bytes from
    /// `A-Z a-z 0-9 - _` that neither start nor end with `-`, and a last
    /// label that is not all digits or a `0x` hex number (resolvers would
    /// read that as an IPv4 address).
    fn obeys_domain_rules(name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name);
        let labels: Vec<&str> = name.split('.').collect();
        let label_ok = |l: &&str| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let last = labels.last().copied().unwrap_or("");
        let hex = last
            .strip_prefix("0x")
            .or_else(|| last.strip_prefix("0X"))
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        let numeric = hex || last.bytes().all(|b| b.is_ascii_digit());
        name.len() <= MAX_DOMAIN_LEN && labels.iter().all(label_ok) && !numeric
    }

    /// Dotted names built label by label from a small alphabet, so that
    /// valid names are common and every rule's edge is likely: empty and
    /// over-long labels, hyphens and underscores at the edges, numeric and
    /// `0x` last labels, a trailing dot, now and then a byte no label may
    /// hold.
    #[derive(Clone, Debug)]
    struct NameLike(String);

    impl Arbitrary for NameLike {
        fn arbitrary(g: &mut Gen) -> NameLike {
            const GOOD: &[char] = &['a', 'b', 'Z', 'x', '0', '7', '-', '_'];
            const BAD: &[char] = &['*', ' ', 'é', ':', '/'];
            let labels = 1 + usize::arbitrary(g) % 5;
            let mut names = Vec::new();
            for _ in 0..labels {
                let len = match u8::arbitrary(g) % 10 {
                    0 => 60 + usize::arbitrary(g) % 8,
                    _ => usize::arbitrary(g) % 7,
                };
                let label: String = (0..len)
                    .map(|_| match u8::arbitrary(g) % 40 {
                        0 => *g.choose(BAD).unwrap_or(&'*'),
                        _ => *g.choose(GOOD).unwrap_or(&'a'),
                    })
                    .collect();
                names.push(label);
            }
            let mut s = names.join(".");
            if u8::arbitrary(g) % 8 == 0 {
                s.push('.');
            }
            NameLike(s)
        }

        fn shrink(&self) -> Box<dyn Iterator<Item = NameLike>> {
            Box::new(self.0.shrink().map(NameLike))
        }
    }

    fn parses_exactly_the_names_the_rules_allow(s: String) -> bool {
        let _ = Target::parse(&s);
        match Host::parse(&s) {
            Ok(Host::Domain(d)) => {
                obeys_domain_rules(&s) && d.as_str() == s.strip_suffix('.').unwrap_or(&s)
            }
            // An address, or refused: then no rule-abiding name was lost
            // (a dotted quad is an address, and numeric anyway).
            Ok(Host::Ip(_)) | Err(_) => !obeys_domain_rules(&s),
        }
    }

    #[test]
    fn arbitrary_strings_never_panic_and_valid_domains_obey_the_rules() {
        fn any(s: String) -> bool {
            parses_exactly_the_names_the_rules_allow(s)
        }
        fn name_like(s: NameLike) -> bool {
            parses_exactly_the_names_the_rules_allow(s.0)
        }
        quickcheck(any as fn(String) -> bool);
        quickcheck(name_like as fn(NameLike) -> bool);
    }

    #[test]
    fn underscore_names_are_domains() {
        for name in [
            "_dmarc.example.com",
            "_http._tcp.example.com",
            "my_host.internal",
            "a_.b_c.example",
            "a._",
        ] {
            assert_eq!(
                Host::parse(name),
                Ok(Host::Domain(DomainName::parse(name).unwrap())),
                "{name}"
            );
            assert_eq!(
                Target::parse(&format!("{name}:443")).map(|t| t.port),
                Ok(443),
                "{name}"
            );
        }
        // Underscore or not, the other rules still hold.
        for bad in ["-_a.example", "_a-.example", "_.123", "a b_.example"] {
            assert!(Host::parse(bad).is_err(), "{bad}");
        }
    }
}
