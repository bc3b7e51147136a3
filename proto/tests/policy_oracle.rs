//! The policy evaluators agree with a deliberately naive reference.
//!
//! The reference below shares no code with `warren_proto::policy`: it globs
//! by recursive backtracking, tests CIDRs bit by bit, matches domains label
//! by label, and evaluates rules the way the design document states them.
//! Rule sets and requests are drawn from small alphabets (a handful of
//! identities, addresses, ports, services and domains, and patterns cut
//! from them) so that rules really match; each property also asserts that
//! allowed and denied outcomes, and every reason, actually occurred.

use core::net::IpAddr;
use core::sync::atomic::{AtomicUsize, Ordering};
use quickcheck::{Arbitrary, Gen, QuickCheck};
use warren_proto::identity::SpiffeId;
use warren_proto::policy::*;

// ---------------------------------------------------------------- reference

/// `*` matches any run of bytes; tries every split.
fn naive_glob(p: &[u8], t: &[u8]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((b'*', rest)) => (0..=t.len()).any(|i| naive_glob(rest, &t[i..])),
        Some((c, rest)) => t.first() == Some(c) && naive_glob(rest, &t[1..]),
    }
}

/// Istio: a principal pattern without the scheme is matched against the id
/// without the scheme.
fn naive_principal(pattern: &str, id: &str) -> bool {
    if pattern.starts_with("spiffe://") {
        naive_glob(pattern.as_bytes(), id.as_bytes())
    } else {
        naive_glob(pattern.as_bytes(), &id.as_bytes()["spiffe://".len()..])
    }
}

fn bits(addr: IpAddr) -> Vec<bool> {
    let bytes: Vec<u8> = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1 == 1))
        .collect()
}

/// `::ffff:a.b.c.d` is the IPv4 host a.b.c.d.
fn naive_unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => {
            let o = v6.octets();
            if o[..10].iter().all(|&b| b == 0) && o[10] == 0xff && o[11] == 0xff {
                IpAddr::from([o[12], o[13], o[14], o[15]])
            } else {
                addr
            }
        }
        v4 => v4,
    }
}

/// Network `net/len` (as written) contains `addr`, comparing bit by bit.
fn naive_cidr(net: IpAddr, len: u8, addr: IpAddr) -> bool {
    let (net, len) = match (net, naive_unmap(net)) {
        (IpAddr::V6(_), IpAddr::V4(v4)) if len >= 96 => (IpAddr::V4(v4), len - 96),
        _ => (net, len),
    };
    let addr = naive_unmap(addr);
    if net.is_ipv4() != addr.is_ipv4() {
        return false;
    }
    let (n, a) = (bits(net), bits(addr));
    (0..usize::from(len)).all(|i| n[i] == a[i])
}

fn naive_labels(name: &str) -> Vec<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.split('.').map(|l| l.to_ascii_lowercase()).collect()
}

/// `*.x.y` matches one or more labels followed by `x.y`; otherwise labels
/// must be equal.
fn naive_domain(pattern: &str, host: &str) -> bool {
    let (p, h) = (naive_labels(pattern), naive_labels(host));
    if p.first().map(String::as_str) == Some("*") {
        let suffix = &p[1..];
        h.len() > suffix.len() && h[h.len() - suffix.len()..] == *suffix
    } else {
        p == h
    }
}

// --------------------------------------------------------------- generation

const TRUST_DOMAINS: &[&str] = &["a.org", "b.org"];
const NAMESPACES: &[&str] = &["x", "y", "xy"];
const ACCOUNTS: &[&str] = &["p", "q", "pq"];
const ADDRS: &[&str] = &[
    "10.0.0.0",
    "10.0.0.1",
    "10.0.0.255",
    "10.1.0.1",
    "192.168.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "::",
    "::1",
    "2001:db8::1",
    "2001:db8::8000:1",
    "::ffff:10.0.0.1",
    "::ffff:192.168.0.1",
    "::10.0.0.1",
];
const PORTS: &[u16] = &[79, 80, 81, 443, 8080, 8081];
const SERVICES: &[&str] = &["a.s", "b.s"];

fn pick<T: Copy>(g: &mut Gen, from: &[T]) -> T {
    *g.choose(from).expect("non-empty pool")
}

fn below(g: &mut Gen, n: usize) -> usize {
    usize::arbitrary(g) % n
}

fn pool_id(g: &mut Gen) -> String {
    format!(
        "spiffe://{}/ns/{}/sa/{}",
        pick(g, TRUST_DOMAINS),
        pick(g, NAMESPACES),
        pick(g, ACCOUNTS)
    )
}

/// `text` with up to three random slices replaced by `*`.
fn starred(g: &mut Gen, text: &str) -> String {
    let mut s = text.to_owned();
    for _ in 0..below(g, 4) {
        let i = below(g, s.len() + 1);
        let j = i + below(g, s.len() - i + 1);
        s.replace_range(i..j, "*");
    }
    if s.is_empty() {
        s.push('*');
    }
    s
}

fn principal_pattern(g: &mut Gen) -> String {
    let id = pool_id(g);
    let text = if bool::arbitrary(g) {
        id
    } else {
        id["spiffe://".len()..].to_owned()
    };
    if below(g, 4) == 0 {
        text
    } else {
        starred(g, &text)
    }
}

fn namespace_pattern(g: &mut Gen) -> String {
    let ns = pick(g, NAMESPACES);
    if bool::arbitrary(g) {
        ns.to_owned()
    } else {
        starred(g, ns)
    }
}

/// `addr/len` with the host bits of `addr` cleared bit by bit, so that it
/// parses.
fn masked(addr: IpAddr, len: u8) -> String {
    let b = bits(addr);
    let mut bytes = vec![0u8; b.len() / 8];
    for (i, bit) in b.iter().enumerate().take(usize::from(len)) {
        if *bit {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let net = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).unwrap()),
        _ => IpAddr::from(<[u8; 16]>::try_from(bytes).unwrap()),
    };
    format!("{net}/{len}")
}

/// A network around a pool address, at a prefix length near the edges.
fn cidr_text(g: &mut Gen) -> String {
    let addr: IpAddr = pick(g, ADDRS).parse().unwrap();
    let len = if addr.is_ipv4() {
        pick(g, &[0u8, 1, 8, 16, 24, 31, 32])
    } else {
        pick(g, &[0u8, 1, 32, 64, 96, 104, 112, 127, 128])
    };
    masked(addr, len)
}

fn port_range(g: &mut Gen) -> (u16, u16) {
    let (a, b) = (pick(g, PORTS), pick(g, PORTS));
    (a.min(b), a.max(b))
}

/// Mostly empty (field not set), else one to three values.
fn some<T>(g: &mut Gen, mut make: impl FnMut(&mut Gen) -> T) -> Vec<T> {
    if below(g, 3) != 0 {
        return Vec::new();
    }
    (0..1 + below(g, 3)).map(|_| make(g)).collect()
}

#[derive(Clone, Debug)]
struct RawAuthzRule {
    name: String,
    deny: bool,
    scope: Option<&'static str>,
    principals: Vec<String>,
    not_principals: Vec<String>,
    namespaces: Vec<String>,
    not_namespaces: Vec<String>,
    ip_blocks: Vec<String>,
    not_ip_blocks: Vec<String>,
    ports: Vec<(u16, u16)>,
    not_ports: Vec<(u16, u16)>,
}

#[derive(Clone, Debug)]
struct AuthzCase {
    rules: Vec<RawAuthzRule>,
    source: String,
    addr: Option<&'static str>,
    service: &'static str,
    port: u16,
}

impl Arbitrary for AuthzCase {
    fn arbitrary(g: &mut Gen) -> AuthzCase {
        let rules = (0..below(g, 7))
            .map(|i| RawAuthzRule {
                name: format!("r{i}"),
                deny: below(g, 3) == 0,
                scope: if bool::arbitrary(g) {
                    None
                } else {
                    Some(pick(g, SERVICES))
                },
                principals: some(g, principal_pattern),
                not_principals: some(g, principal_pattern),
                namespaces: some(g, namespace_pattern),
                not_namespaces: some(g, namespace_pattern),
                ip_blocks: some(g, cidr_text),
                not_ip_blocks: some(g, cidr_text),
                ports: some(g, port_range),
                not_ports: some(g, port_range),
            })
            .collect();
        AuthzCase {
            rules,
            source: pool_id(g),
            addr: if below(g, 6) == 0 {
                None
            } else {
                Some(pick(g, ADDRS))
            },
            service: pick(g, SERVICES),
            port: pick(g, PORTS),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = AuthzCase>> {
        let me = self.clone();
        Box::new((0..self.rules.len()).map(move |i| {
            let mut smaller = me.clone();
            smaller.rules.remove(i);
            smaller
        }))
    }
}

fn naive_cidr_text(text: &str, addr: IpAddr) -> bool {
    let (net, len) = text.split_once('/').unwrap();
    naive_cidr(net.parse().unwrap(), len.parse().unwrap(), addr)
}

/// Does a rule match, per DESIGN.md, with an unknown address counting as
/// the worst case for the rule's action.
fn naive_authz_rule_matches(r: &RawAuthzRule, case: &AuthzCase) -> bool {
    let id = case.source.as_str();
    let ns = id.split('/').nth(4).unwrap();
    let positive = |set: bool, hit: &dyn Fn() -> bool| !set || hit();
    let principals_ok = positive(!r.principals.is_empty(), &|| {
        r.principals.iter().any(|p| naive_principal(p, id))
    }) && !r.not_principals.iter().any(|p| naive_principal(p, id));
    let namespaces_ok = positive(!r.namespaces.is_empty(), &|| {
        r.namespaces
            .iter()
            .any(|p| naive_glob(p.as_bytes(), ns.as_bytes()))
    }) && !r
        .not_namespaces
        .iter()
        .any(|p| naive_glob(p.as_bytes(), ns.as_bytes()));
    let ports_ok = positive(!r.ports.is_empty(), &|| {
        r.ports
            .iter()
            .any(|&(a, b)| a <= case.port && case.port <= b)
    }) && !r
        .not_ports
        .iter()
        .any(|&(a, b)| a <= case.port && case.port <= b);
    let addr_ok = match case.addr {
        Some(addr) => {
            let addr: IpAddr = addr.parse().unwrap();
            positive(!r.ip_blocks.is_empty(), &|| {
                r.ip_blocks.iter().any(|c| naive_cidr_text(c, addr))
            }) && !r.not_ip_blocks.iter().any(|c| naive_cidr_text(c, addr))
        }
        None if r.ip_blocks.is_empty() && r.not_ip_blocks.is_empty() => true,
        None => r.deny,
    };
    principals_ok && namespaces_ok && ports_ok && addr_ok
}

fn naive_authz(case: &AuthzCase) -> (Reason, Option<String>) {
    let applicable: Vec<&RawAuthzRule> = case
        .rules
        .iter()
        .filter(|r| r.scope.is_none_or(|s| s == case.service))
        .collect();
    if let Some(r) = applicable
        .iter()
        .find(|r| r.deny && naive_authz_rule_matches(r, case))
    {
        return (Reason::DeniedByRule, Some(r.name.clone()));
    }
    if !applicable.iter().any(|r| !r.deny) {
        return (Reason::AllowedNoPolicy, None);
    }
    match applicable
        .iter()
        .find(|r| !r.deny && naive_authz_rule_matches(r, case))
    {
        Some(r) => (Reason::AllowedByRule, Some(r.name.clone())),
        None => (Reason::NoAllowRuleMatched, None),
    }
}

fn build_authz(case: &AuthzCase) -> AuthzPolicy {
    let pp = |v: &[String]| -> Vec<PrincipalPattern> {
        v.iter()
            .map(|p| PrincipalPattern::new(p).unwrap())
            .collect()
    };
    let gg = |v: &[String]| -> Vec<Glob> { v.iter().map(|p| Glob::new(p).unwrap()).collect() };
    let cc = |v: &[String]| -> Vec<Cidr> { v.iter().map(|c| Cidr::parse(c).unwrap()).collect() };
    let rr = |v: &[(u16, u16)]| -> Vec<PortRange> {
        v.iter()
            .map(|&(a, b)| PortRange::new(a, b).unwrap())
            .collect()
    };
    AuthzPolicy::new(
        case.rules
            .iter()
            .map(|r| AuthzRule {
                name: RuleName::new(&r.name).unwrap(),
                action: if r.deny { Action::Deny } else { Action::Allow },
                scope: match r.scope {
                    None => Scope::AllServices,
                    Some(s) => Scope::Service(ServiceName::parse(s).unwrap()),
                },
                when: Conditions {
                    principals: pp(&r.principals),
                    not_principals: pp(&r.not_principals),
                    namespaces: gg(&r.namespaces),
                    not_namespaces: gg(&r.not_namespaces),
                    ip_blocks: cc(&r.ip_blocks),
                    not_ip_blocks: cc(&r.not_ip_blocks),
                    ports: rr(&r.ports),
                    not_ports: rr(&r.not_ports),
                },
            })
            .collect(),
    )
}

/// Outcomes seen by a property, so it can prove it was not vacuous.
struct Tally([AtomicUsize; 8]);

impl Tally {
    const fn new() -> Tally {
        Tally([const { AtomicUsize::new(0) }; 8])
    }

    fn count(&self, reason: Reason) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the reference's answer (`reason`, `rule`) and says whether
    /// `got` is the same decision.
    fn agrees(&self, got: &Decision, (reason, rule): (Reason, Option<String>)) -> bool {
        self.count(reason);
        got.reason == reason
            && got.allowed == reason.allows()
            && got.rule.as_ref().map(|r| r.as_str().to_owned()) == rule
    }

    fn get(&self, reason: Reason) -> usize {
        self.0[reason as usize].load(Ordering::Relaxed)
    }

    /// At least `min_share` of the cases for each of `reasons`.
    fn assert_each(&self, reasons: &[Reason], min_share: f64) {
        let total: usize = self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let allowed: usize = reasons
            .iter()
            .filter(|r| r.allows())
            .map(|&r| self.get(r))
            .sum();
        let report: Vec<String> = reasons
            .iter()
            .map(|&r| format!("{}={}", r.code(), self.get(r)))
            .collect();
        eprintln!("{total} cases: {}", report.join(" "));
        assert!(total > 0);
        let share = |n: usize| n as f64 / total as f64;
        assert!(
            (0.2..=0.8).contains(&share(allowed)),
            "allowed share {} out of balance",
            share(allowed)
        );
        for &r in reasons {
            assert!(
                share(self.get(r)) >= min_share,
                "{} too rare: {report:?}",
                r.code()
            );
        }
    }
}

static AUTHZ_TALLY: Tally = Tally::new();

#[test]
fn authz_agrees_with_the_reference() {
    fn prop(case: AuthzCase) -> bool {
        let source = SpiffeId::parse(&case.source).unwrap();
        let got = build_authz(&case).evaluate(&AuthzRequest {
            source: &source,
            source_addr: case.addr.map(|a| a.parse().unwrap()),
            service: case.service,
            port: case.port,
        });
        AUTHZ_TALLY.agrees(&got, naive_authz(&case))
    }
    QuickCheck::new()
        .tests(3000)
        .max_tests(3000)
        .quickcheck(prop as fn(AuthzCase) -> bool);
    AUTHZ_TALLY.assert_each(
        &[
            Reason::DeniedByRule,
            Reason::NoAllowRuleMatched,
            Reason::AllowedByRule,
            Reason::AllowedNoPolicy,
        ],
        0.05,
    );
}

// ------------------------------------------------------------------ egress

const DOMAINS: &[&str] = &[
    "a.ex.com",
    "b.a.ex.com",
    "ex.com",
    "EX.com.",
    "xex.com",
    "ex.org",
    "A.Ex.Org",
    "com",
];
const DOMAIN_PATTERNS: &[&str] = &[
    "ex.com",
    "*.ex.com",
    "*.com",
    "ex.org",
    "*.a.ex.com",
    "A.EX.com.",
    "*.ex.org.",
];

#[derive(Clone, Debug)]
struct RawEgressRule {
    name: String,
    deny: bool,
    sources: Vec<String>,
    destinations: Vec<String>,
    ports: Vec<(u16, u16)>,
}

#[derive(Clone, Debug)]
struct EgressCase {
    rules: Vec<RawEgressRule>,
    source: String,
    host: &'static str,
    port: u16,
}

impl Arbitrary for EgressCase {
    fn arbitrary(g: &mut Gen) -> EgressCase {
        let rules = (0..below(g, 6))
            .map(|i| RawEgressRule {
                name: format!("e{i}"),
                deny: below(g, 4) == 0,
                sources: some(g, principal_pattern),
                destinations: some(g, |g| {
                    if bool::arbitrary(g) {
                        cidr_text(g)
                    } else {
                        pick(g, DOMAIN_PATTERNS).to_owned()
                    }
                }),
                ports: some(g, port_range),
            })
            .collect();
        EgressCase {
            rules,
            source: pool_id(g),
            host: if bool::arbitrary(g) {
                pick(g, ADDRS)
            } else {
                pick(g, DOMAINS)
            },
            port: pick(g, PORTS),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = EgressCase>> {
        let me = self.clone();
        Box::new((0..self.rules.len()).map(move |i| {
            let mut smaller = me.clone();
            smaller.rules.remove(i);
            smaller
        }))
    }
}

fn naive_egress_rule_matches(r: &RawEgressRule, case: &EgressCase) -> bool {
    let host_ip = case.host.parse::<IpAddr>().ok();
    let dest_hit = |d: &String| match (d.contains('/'), host_ip) {
        (true, Some(ip)) => naive_cidr_text(d, ip),
        (false, None) => naive_domain(d, case.host),
        _ => false,
    };
    (r.sources.is_empty() || r.sources.iter().any(|p| naive_principal(p, &case.source)))
        && (r.destinations.is_empty() || r.destinations.iter().any(dest_hit))
        && (r.ports.is_empty()
            || r.ports
                .iter()
                .any(|&(a, b)| a <= case.port && case.port <= b))
}

fn naive_egress(case: &EgressCase) -> (Reason, Option<String>) {
    let first = |deny: bool| {
        case.rules
            .iter()
            .find(|r| r.deny == deny && naive_egress_rule_matches(r, case))
    };
    if let Some(r) = first(true) {
        return (Reason::EgressDeniedByRule, Some(r.name.clone()));
    }
    match first(false) {
        Some(r) => (Reason::EgressAllowed, Some(r.name.clone())),
        None => (Reason::EgressNotAllowed, None),
    }
}

fn build_egress(case: &EgressCase) -> EgressPolicy {
    EgressPolicy::new(
        case.rules
            .iter()
            .map(|r| EgressRule {
                name: RuleName::new(&r.name).unwrap(),
                action: if r.deny { Action::Deny } else { Action::Allow },
                sources: r
                    .sources
                    .iter()
                    .map(|p| PrincipalPattern::new(p).unwrap())
                    .collect(),
                destinations: r
                    .destinations
                    .iter()
                    .map(|d| {
                        if d.contains('/') {
                            Destination::Cidr(Cidr::parse(d).unwrap())
                        } else {
                            Destination::Domain(DomainPattern::parse(d).unwrap())
                        }
                    })
                    .collect(),
                ports: r
                    .ports
                    .iter()
                    .map(|&(a, b)| PortRange::new(a, b).unwrap())
                    .collect(),
            })
            .collect(),
    )
}

static EGRESS_TALLY: Tally = Tally::new();

#[test]
fn egress_agrees_with_the_reference() {
    fn prop(case: EgressCase) -> bool {
        let source = SpiffeId::parse(&case.source).unwrap();
        let got = build_egress(&case).evaluate(&EgressRequest {
            source: &source,
            host: Host::parse(case.host).unwrap(),
            port: case.port,
        });
        EGRESS_TALLY.agrees(&got, naive_egress(&case))
    }
    QuickCheck::new()
        .tests(3000)
        .max_tests(3000)
        .quickcheck(prop as fn(EgressCase) -> bool);
    EGRESS_TALLY.assert_each(
        &[
            Reason::EgressDeniedByRule,
            Reason::EgressNotAllowed,
            Reason::EgressAllowed,
        ],
        0.05,
    );
}

// ------------------------------------------------------- building blocks

/// Patterns and texts over a two-letter alphabet: stars and literal runs
/// interleave in every way, including the cases that trip greedy matchers.
#[derive(Clone, Debug)]
struct GlobCase {
    pattern: String,
    text: String,
}

impl Arbitrary for GlobCase {
    fn arbitrary(g: &mut Gen) -> GlobCase {
        let word = |g: &mut Gen, alphabet: &[char], n: usize| -> String {
            (0..below(g, n)).map(|_| pick(g, alphabet)).collect()
        };
        // A two-byte character too: matching must respect char boundaries.
        let mut pattern = word(g, &['a', 'b', 'é', '*', '*'], 9);
        if pattern.is_empty() {
            pattern.push('*');
        }
        GlobCase {
            pattern,
            text: word(g, &['a', 'b', 'é'], 10),
        }
    }
}

#[test]
fn glob_agrees_with_backtracking() {
    static MATCHED: AtomicUsize = AtomicUsize::new(0);
    static TOTAL: AtomicUsize = AtomicUsize::new(0);
    fn prop(case: GlobCase) -> bool {
        let want = naive_glob(case.pattern.as_bytes(), case.text.as_bytes());
        TOTAL.fetch_add(1, Ordering::Relaxed);
        if want {
            MATCHED.fetch_add(1, Ordering::Relaxed);
        }
        Glob::new(&case.pattern).unwrap().matches(&case.text) == want
    }
    QuickCheck::new()
        .tests(5000)
        .max_tests(5000)
        .quickcheck(prop as fn(GlobCase) -> bool);
    let (m, t) = (
        MATCHED.load(Ordering::Relaxed),
        TOTAL.load(Ordering::Relaxed),
    );
    assert!(m * 10 > t && m * 10 < t * 9, "{m} of {t} matched");
}

/// Every prefix length, not only the edges `cidr_text` favours.
#[test]
fn cidr_agrees_with_bit_by_bit() {
    fn prop(net: u8, len: u8, addr: u8) -> bool {
        let net: IpAddr = ADDRS[usize::from(net) % ADDRS.len()].parse().unwrap();
        let len = len % if net.is_ipv4() { 33 } else { 129 };
        let text = masked(net, len);
        let addr: IpAddr = ADDRS[usize::from(addr) % ADDRS.len()].parse().unwrap();
        Cidr::parse(&text).unwrap().contains(addr) == naive_cidr_text(&text, addr)
    }
    QuickCheck::new()
        .tests(5000)
        .quickcheck(prop as fn(u8, u8, u8) -> bool);
}
