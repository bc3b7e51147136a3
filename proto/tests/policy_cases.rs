//! Table tests for `warren_proto::policy`, through its public API.

use core::net::{IpAddr, SocketAddr};
use quickcheck::{Arbitrary, Gen, QuickCheck};
use warren_proto::identity::SpiffeId;
use warren_proto::policy::*;

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn name(s: &str) -> RuleName {
    RuleName::new(s).unwrap()
}

fn principals(ps: &[&str]) -> Vec<PrincipalPattern> {
    ps.iter()
        .map(|p| PrincipalPattern::new(p).unwrap())
        .collect()
}

fn globs(ps: &[&str]) -> Vec<Glob> {
    ps.iter().map(|p| Glob::new(p).unwrap()).collect()
}

fn cidrs(ps: &[&str]) -> Vec<Cidr> {
    ps.iter().map(|p| Cidr::parse(p).unwrap()).collect()
}

fn ports(ps: &[&str]) -> Vec<PortRange> {
    ps.iter().map(|p| PortRange::parse(p).unwrap()).collect()
}

/// Conditions with the fields `set` sets.
fn with(set: impl FnOnce(&mut Conditions)) -> Conditions {
    let mut c = Conditions::default();
    set(&mut c);
    c
}

fn rule(n: &str, action: Action, when: Conditions) -> AuthzRule {
    AuthzRule {
        when,
        ..AuthzRule::new(name(n), action)
    }
}

const CART: &str = "spiffe://example.org/ns/shop/sa/cart";
const WEB: &str = "spiffe://example.org/ns/web/sa/frontend";
const OTHER_TD: &str = "spiffe://other.org/ns/shop/sa/cart";

struct Req {
    source: &'static str,
    addr: Option<&'static str>,
    service: &'static str,
    port: u16,
}

fn req(source: &'static str, addr: &'static str, port: u16) -> Req {
    Req {
        source,
        addr: Some(addr),
        service: "db.shop",
        port,
    }
}

fn decide(policy: &AuthzPolicy, r: &Req) -> Decision {
    let source = id(r.source);
    policy.evaluate(&AuthzRequest {
        source: &source,
        source_addr: r.addr.map(ip),
        service: r.service,
        port: r.port,
    })
}

/// One ALLOW rule with the given conditions: each case says whether it
/// matches the request.
#[test]
fn each_condition_kind_including_negations() {
    let cases: Vec<(&str, Conditions, Req, bool)> = vec![
        (
            "exact principal",
            with(|c| c.principals = principals(&[CART])),
            req(CART, "10.0.0.1", 5432),
            true,
        ),
        (
            "exact principal, other trust domain",
            with(|c| c.principals = principals(&[CART])),
            req(OTHER_TD, "10.0.0.1", 5432),
            false,
        ),
        (
            "principal glob on sa",
            with(|c| c.principals = principals(&["spiffe://example.org/ns/shop/sa/*"])),
            req(CART, "10.0.0.1", 5432),
            true,
        ),
        (
            "principal glob, Istio spelling without scheme",
            with(|c| c.principals = principals(&["*/ns/shop/sa/*"])),
            req(OTHER_TD, "10.0.0.1", 5432),
            true,
        ),
        (
            "principal glob in the middle",
            with(|c| c.principals = principals(&["spiffe://example.org/ns/*/sa/frontend"])),
            req(CART, "10.0.0.1", 5432),
            false,
        ),
        (
            "principals OR",
            with(|c| c.principals = principals(&[WEB, CART])),
            req(CART, "10.0.0.1", 5432),
            true,
        ),
        (
            "not_principals excludes",
            with(|c| c.not_principals = principals(&["*/ns/shop/*"])),
            req(CART, "10.0.0.1", 5432),
            false,
        ),
        (
            "not_principals lets others through",
            with(|c| c.not_principals = principals(&["*/ns/shop/*"])),
            req(WEB, "10.0.0.1", 5432),
            true,
        ),
        (
            "namespace exact",
            with(|c| c.namespaces = globs(&["shop"])),
            req(CART, "10.0.0.1", 5432),
            true,
        ),
        (
            "namespace is not a prefix match",
            with(|c| c.namespaces = globs(&["sho"])),
            req(CART, "10.0.0.1", 5432),
            false,
        ),
        (
            "namespace glob",
            with(|c| c.namespaces = globs(&["w*"])),
            req(WEB, "10.0.0.1", 5432),
            true,
        ),
        (
            "not_namespaces",
            with(|c| c.not_namespaces = globs(&["web", "sh*"])),
            req(CART, "10.0.0.1", 5432),
            false,
        ),
        (
            "ip block",
            with(|c| c.ip_blocks = cidrs(&["10.0.0.0/24"])),
            req(CART, "10.0.0.255", 5432),
            true,
        ),
        (
            "ip block, just outside",
            with(|c| c.ip_blocks = cidrs(&["10.0.0.0/24"])),
            req(CART, "10.0.1.0", 5432),
            false,
        ),
        (
            "not_ip_blocks",
            with(|c| c.not_ip_blocks = cidrs(&["192.168.0.0/16"])),
            req(CART, "192.168.3.4", 5432),
            false,
        ),
        (
            "not_ip_blocks, v6 source is not in a v4 block",
            with(|c| c.not_ip_blocks = cidrs(&["0.0.0.0/0"])),
            req(CART, "2001:db8::1", 5432),
            true,
        ),
        (
            "port single",
            with(|c| c.ports = ports(&["5432"])),
            req(CART, "10.0.0.1", 5432),
            true,
        ),
        (
            "port range edges",
            with(|c| c.ports = ports(&["8000-8080"])),
            req(CART, "10.0.0.1", 8080),
            true,
        ),
        (
            "port range, one past",
            with(|c| c.ports = ports(&["8000-8080"])),
            req(CART, "10.0.0.1", 8081),
            false,
        ),
        (
            "not_ports",
            with(|c| c.not_ports = ports(&["22", "1-1023"])),
            req(CART, "10.0.0.1", 1023),
            false,
        ),
        (
            "AND across fields: one fails",
            Conditions {
                principals: principals(&[CART]),
                namespaces: globs(&["shop"]),
                ip_blocks: cidrs(&["10.0.0.0/8"]),
                ports: ports(&["5433"]),
                ..Conditions::default()
            },
            req(CART, "10.0.0.1", 5432),
            false,
        ),
        (
            "AND across fields: all hold",
            Conditions {
                principals: principals(&[CART]),
                namespaces: globs(&["shop"]),
                ip_blocks: cidrs(&["10.0.0.0/8"]),
                ports: ports(&["5432"]),
                not_principals: principals(&[WEB]),
                not_namespaces: globs(&["web"]),
                not_ip_blocks: cidrs(&["10.9.0.0/16"]),
                not_ports: ports(&["22"]),
            },
            req(CART, "10.0.0.1", 5432),
            true,
        ),
        (
            "no conditions matches everything",
            Conditions::default(),
            req(WEB, "2001:db8::1", 1),
            true,
        ),
    ];
    for (what, when, r, want) in cases {
        let policy = AuthzPolicy::new(vec![rule("r", Action::Allow, when.clone())]);
        let d = decide(&policy, &r);
        assert_eq!(d.allowed, want, "{what}: {d}");
        let want_reason = if want {
            Reason::AllowedByRule
        } else {
            Reason::NoAllowRuleMatched
        };
        assert_eq!(d.reason, want_reason, "{what}");
        // The same conditions in a DENY rule decide the opposite way.
        let policy = AuthzPolicy::new(vec![rule("r", Action::Deny, when)]);
        let d = decide(&policy, &r);
        assert_eq!(d.allowed, !want, "{what} as DENY: {d}");
    }
}

#[test]
fn evaluation_order_and_defaults() {
    let cart = req(CART, "10.0.0.1", 5432);
    let web = req(WEB, "10.0.0.1", 5432);

    // Empty policy: allow, by default.
    let d = decide(&AuthzPolicy::default(), &cart);
    assert_eq!(d, Decision::new(Reason::AllowedNoPolicy, None));
    assert!(d.allowed);

    // Only a non-matching DENY rule: still the default allow.
    let only_deny = AuthzPolicy::new(vec![rule(
        "no-web",
        Action::Deny,
        with(|c| c.namespaces = globs(&["web"])),
    )]);
    assert_eq!(decide(&only_deny, &cart).reason, Reason::AllowedNoPolicy);
    let d = decide(&only_deny, &web);
    assert_eq!(d.reason, Reason::DeniedByRule);
    assert_eq!(d.rule.as_ref().map(RuleName::as_str), Some("no-web"));

    // DENY beats ALLOW, whichever comes first.
    let allow_all = rule("allow-all", Action::Allow, Conditions::default());
    let deny_cart = rule(
        "deny-cart",
        Action::Deny,
        with(|c| c.principals = principals(&[CART])),
    );
    for rules in [
        vec![allow_all.clone(), deny_cart.clone()],
        vec![deny_cart.clone(), allow_all.clone()],
    ] {
        let policy = AuthzPolicy::new(rules);
        let d = decide(&policy, &cart);
        assert!(!d.allowed);
        assert_eq!(d.rule, Some(name("deny-cart")));
        let d = decide(&policy, &web);
        assert_eq!(d.reason, Reason::AllowedByRule);
        assert_eq!(d.rule, Some(name("allow-all")));
    }

    // Several matching: the first in order is named.
    let policy = AuthzPolicy::new(vec![
        rule("first", Action::Allow, Conditions::default()),
        rule("second", Action::Allow, Conditions::default()),
        rule("deny-1", Action::Deny, Conditions::default()),
        rule("deny-2", Action::Deny, Conditions::default()),
    ]);
    assert_eq!(decide(&policy, &cart).rule, Some(name("deny-1")));
    let policy = AuthzPolicy::new(policy.rules[..2].to_vec());
    assert_eq!(decide(&policy, &cart).rule, Some(name("first")));
}

#[test]
fn scoped_and_global_rules() {
    let db = ServiceName::parse("db.shop").unwrap();
    let only_cart_to_db = AuthzRule {
        scope: Scope::Service(db.clone()),
        when: with(|c| c.principals = principals(&[CART])),
        ..AuthzRule::new(name("db-cart-only"), Action::Allow)
    };
    let policy = AuthzPolicy::new(vec![only_cart_to_db.clone()]);
    let web_to_db = req(WEB, "10.0.0.1", 5432);
    let web_to_cache = Req {
        service: "cache.shop",
        ..req(WEB, "10.0.0.1", 6379)
    };
    // An ALLOW scoped to db.shop restricts db.shop ...
    assert_eq!(
        decide(&policy, &web_to_db).reason,
        Reason::NoAllowRuleMatched
    );
    assert_eq!(
        decide(&policy, &req(CART, "10.0.0.1", 5432)).reason,
        Reason::AllowedByRule
    );
    // ... and says nothing about cache.shop.
    assert_eq!(
        decide(&policy, &web_to_cache).reason,
        Reason::AllowedNoPolicy
    );

    // A global DENY applies to every service; a scoped one only to its own.
    let deny_web_global = AuthzRule {
        when: with(|c| c.namespaces = globs(&["web"])),
        ..AuthzRule::new(name("no-web"), Action::Deny)
    };
    let policy = AuthzPolicy::new(vec![deny_web_global.clone()]);
    assert_eq!(decide(&policy, &web_to_cache).reason, Reason::DeniedByRule);
    let scoped = AuthzRule {
        scope: Scope::Service(db),
        ..deny_web_global
    };
    let policy = AuthzPolicy::new(vec![scoped]);
    assert_eq!(decide(&policy, &web_to_db).reason, Reason::DeniedByRule);
    assert_eq!(
        decide(&policy, &web_to_cache).reason,
        Reason::AllowedNoPolicy
    );

    // A global ALLOW makes every service restricted.
    let policy = AuthzPolicy::new(vec![AuthzRule {
        scope: Scope::AllServices,
        ..only_cart_to_db
    }]);
    assert_eq!(
        decide(&policy, &web_to_cache).reason,
        Reason::NoAllowRuleMatched
    );
}

#[test]
fn unknown_source_address_is_the_worst_case() {
    let no_addr = Req {
        addr: None,
        ..req(CART, "10.0.0.1", 5432)
    };
    let positive = with(|c| c.ip_blocks = cidrs(&["10.0.0.0/8"]));
    let negated = with(|c| c.not_ip_blocks = cidrs(&["10.0.0.0/8"]));
    for when in [positive, negated] {
        // Undecidable: an ALLOW rule does not match, a DENY rule does.
        let allow = AuthzPolicy::new(vec![rule("a", Action::Allow, when.clone())]);
        assert_eq!(
            decide(&allow, &no_addr).reason,
            Reason::NoAllowRuleMatched,
            "{when:?}"
        );
        let deny = AuthzPolicy::new(vec![rule("d", Action::Deny, when.clone())]);
        assert_eq!(
            decide(&deny, &no_addr).reason,
            Reason::DeniedByRule,
            "{when:?}"
        );
    }
    // A definite mismatch elsewhere still keeps a DENY rule from matching.
    let deny = AuthzPolicy::new(vec![rule(
        "d",
        Action::Deny,
        Conditions {
            ip_blocks: cidrs(&["10.0.0.0/8"]),
            ports: ports(&["22"]),
            ..Conditions::default()
        },
    )]);
    assert!(decide(&deny, &no_addr).allowed);
    // And an address-free rule is unaffected.
    let allow = AuthzPolicy::new(vec![rule(
        "a",
        Action::Allow,
        with(|c| c.ports = ports(&["5432"])),
    )]);
    assert!(decide(&allow, &no_addr).allowed);
}

#[test]
fn cidr_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("0.0.0.0/0", "0.0.0.0", true),
        ("0.0.0.0/0", "255.255.255.255", true),
        ("0.0.0.0/0", "::1", false),
        ("::/0", "::", true),
        ("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
        ("::/0", "10.0.0.1", false),
        // A mapped v4 peer is a v4 peer: not in ::/0, in 0.0.0.0/0.
        ("::/0", "::ffff:10.0.0.1", false),
        ("0.0.0.0/0", "::ffff:10.0.0.1", true),
        ("10.0.0.0/8", "::ffff:10.200.0.1", true),
        ("10.0.0.0/8", "::ffff:11.0.0.1", false),
        // A network written in mapped form is the v4 network.
        ("::ffff:10.0.0.0/104", "10.1.2.3", true),
        ("::ffff:10.0.0.0/104", "::ffff:10.1.2.3", true),
        ("::ffff:0:0/96", "1.2.3.4", true),
        // IPv4-compatible (deprecated) addresses are plain v6.
        ("0.0.0.0/0", "::10.0.0.1", false),
        ("10.0.0.1/32", "10.0.0.1", true),
        ("10.0.0.1/32", "10.0.0.2", false),
        ("10.0.0.1", "10.0.0.1", true),
        ("10.0.0.1", "10.0.0.0", false),
        ("2001:db8::1/128", "2001:db8::1", true),
        ("2001:db8::1/128", "2001:db8::", false),
        ("2001:db8::1", "2001:db8::1", true),
        ("2001:db8::/32", "2001:db8:ffff::1", true),
        ("2001:db8::/32", "2001:db9::", false),
        ("128.0.0.0/1", "127.255.255.255", false),
        ("128.0.0.0/1", "128.0.0.0", true),
        ("10.0.0.0/31", "10.0.0.1", true),
        ("10.0.0.0/31", "10.0.0.2", false),
        ("::/127", "::1", true),
        ("::/127", "::2", false),
    ];
    for &(net, addr, want) in cases {
        assert_eq!(
            Cidr::parse(net).unwrap().contains(ip(addr)),
            want,
            "{net} ∋ {addr}"
        );
    }
    let c = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
    assert_eq!((c.network(), c.prefix_len()), (ip("10.0.0.0"), 8));
    assert_eq!(c.to_string(), "10.0.0.0/8");
    assert_eq!(
        Cidr::parse("2001:db8::/32").unwrap().to_string(),
        "2001:db8::/32"
    );

    use CidrError::*;
    for (s, e) in [
        ("", InvalidAddress),
        ("/8", InvalidAddress),
        ("10.0.0.0/", InvalidPrefixLen),
        ("10.0.0.0/33", InvalidPrefixLen),
        ("10.0.0.0/+8", InvalidPrefixLen),
        ("10.0.0.0/-8", InvalidPrefixLen),
        ("10.0.0.0/8/8", InvalidPrefixLen),
        ("10.0.0.0/ 8", InvalidPrefixLen),
        ("10.0.0.0/0008", InvalidPrefixLen),
        ("::/129", InvalidPrefixLen),
        ("::/256", InvalidPrefixLen),
        ("10.0.0.1/8", HostBitsSet),
        ("11.0.0.0/7", HostBitsSet),
        ("::1/127", HostBitsSet),
        ("10.0.0", InvalidAddress),
        ("010.0.0.0/8", InvalidAddress),
        ("10.0.0.0.0/8", InvalidAddress),
        ("fe80::1%eth0/128", InvalidAddress),
        ("[::1]/128", InvalidAddress),
        (" 10.0.0.0/8", InvalidAddress),
        ("example.com/8", InvalidAddress),
    ] {
        assert_eq!(Cidr::parse(s), Err(e), "{s:?}");
    }
    assert_eq!(Cidr::parse(&"1".repeat(65)), Err(TooLong));
    assert_eq!(
        Cidr::parse("10.0.0.0/008"),
        Ok(Cidr::parse("10.0.0.0/8").unwrap())
    );
}

#[test]
fn port_range_table() {
    let r = PortRange::parse("8000-8080").unwrap();
    assert_eq!((r.first(), r.last()), (8000, 8080));
    assert!(r.contains(8000) && r.contains(8080) && !r.contains(7999) && !r.contains(8081));
    assert_eq!(r.to_string(), "8000-8080");
    assert_eq!(PortRange::parse("443").unwrap(), PortRange::single(443));
    assert_eq!(PortRange::parse("0-65535").unwrap(), PortRange::ALL);
    assert!(PortRange::ALL.contains(0) && PortRange::ALL.contains(65535));
    use PortRangeError::*;
    for (s, e) in [
        ("", InvalidPort),
        ("-", InvalidPort),
        ("80-", InvalidPort),
        ("-80", InvalidPort),
        ("+80", InvalidPort),
        ("65536", InvalidPort),
        ("8o", InvalidPort),
        ("1-2-3", InvalidPort),
        ("90-80", Reversed),
    ] {
        assert_eq!(PortRange::parse(s), Err(e), "{s:?}");
    }
}

#[test]
fn rule_names_are_log_safe() {
    assert_eq!(name("ns/allow-db:v1_2.x").as_str(), "ns/allow-db:v1_2.x");
    assert_eq!(RuleName::new(""), Err(RuleNameError::Empty));
    assert_eq!(RuleName::new("a b"), Err(RuleNameError::InvalidChar));
    assert_eq!(RuleName::new("a\nrule=x"), Err(RuleNameError::InvalidChar));
    assert_eq!(RuleName::new("a=b"), Err(RuleNameError::InvalidChar));
    assert_eq!(RuleName::new(&"a".repeat(129)), Err(RuleNameError::TooLong));
    assert!(RuleName::new(&"a".repeat(128)).is_ok());
}

#[test]
fn decisions_read_well_in_logs() {
    let cases = [
        (
            Decision::new(Reason::DeniedByRule, Some(name("no-web"))),
            "policy denied reason=deny-rule rule=no-web",
        ),
        (
            Decision::new(Reason::NoAllowRuleMatched, None),
            "policy denied reason=no-allow-match",
        ),
        (
            Decision::new(Reason::AllowedByRule, Some(name("db"))),
            "policy allowed reason=allow-rule rule=db",
        ),
        (
            Decision::new(Reason::AllowedNoPolicy, None),
            "policy allowed reason=no-policy",
        ),
        (
            Decision::new(Reason::NotExported, None),
            "policy denied reason=not-exported",
        ),
        (
            Decision::new(Reason::EgressDeniedByRule, Some(name("x"))),
            "policy denied reason=egress-deny-rule rule=x",
        ),
        (
            Decision::new(Reason::EgressNotAllowed, None),
            "policy denied reason=egress-not-allowed",
        ),
        (
            Decision::new(Reason::EgressAllowed, Some(name("y"))),
            "policy allowed reason=egress-allow-rule rule=y",
        ),
    ];
    assert_eq!(format!("{} {}", Action::Allow, Action::Deny), "ALLOW DENY");
    for (d, want) in cases {
        assert_eq!(d.to_string(), want);
        assert_eq!(d.allowed, d.reason.allows());
        assert!(!d.reason.to_string().is_empty());
    }
}

fn export(service: &str, port: u16, target: &str) -> Export {
    Export {
        service: ServiceName::parse(service).unwrap(),
        port,
        target: Target::Addr(target.parse().unwrap()),
    }
}

#[test]
fn authority_table() {
    let sa = |s: &str| Authority::Addr(s.parse::<SocketAddr>().unwrap());
    let svc = |name, namespace, port| Authority::Service {
        name,
        namespace,
        port,
    };
    let ok: &[(&str, Authority<'_>)] = &[
        ("10.0.0.1:8080", sa("10.0.0.1:8080")),
        ("0.0.0.0:1", sa("0.0.0.0:1")),
        ("255.255.255.255:65535", sa("255.255.255.255:65535")),
        ("[::1]:443", sa("[::1]:443")),
        ("[2001:db8::1]:80", sa("[2001:db8::1]:80")),
        ("[::ffff:10.0.0.1]:80", sa("[::ffff:10.0.0.1]:80")),
        ("cart.shop:80", svc("cart", "shop", 80)),
        ("Cart.SHOP:80", svc("Cart", "SHOP", 80)),
        ("a-1.b2:65535", svc("a-1", "b2", 65535)),
        ("1a.shop:80", svc("1a", "shop", 80)),
    ];
    for (s, want) in ok {
        assert_eq!(Authority::parse(s).as_ref(), Ok(want), "{s}");
        assert_eq!(Authority::parse(s).unwrap().port(), want.port());
    }
    assert_eq!(
        Authority::parse("[::1]:443").unwrap().to_string(),
        "[::1]:443"
    );
    assert_eq!(
        Authority::parse("cart.shop:80").unwrap().to_string(),
        "cart.shop:80"
    );
    use AuthorityError::*;
    let long = format!("{}.shop:80", "a".repeat(250));
    let bad: &[(&str, AuthorityError)] = &[
        ("", Empty),
        (&long, TooLong),
        ("10.0.0.1", MissingPort),
        ("10.0.0.1:", MissingPort),
        ("cart.shop", MissingPort),
        ("[::1]", MissingPort),
        ("10.0.0.1:0", InvalidPort),
        ("10.0.0.1:080", InvalidPort),
        ("10.0.0.1:65536", InvalidPort),
        ("10.0.0.1:+80", InvalidPort),
        ("10.0.0.1:8o", InvalidPort),
        ("10.0.0.1:123456", InvalidPort),
        ("[::1", MalformedBrackets),
        ("[::1]x:80", MalformedBrackets),
        ("::1]:80", UnbracketedIpv6),
        ("cart]:80", MalformedBrackets),
        ("[10.0.0.1]:80", InvalidIpv6),
        ("[fe80::1%eth0]:80", InvalidIpv6),
        ("[]:80", InvalidIpv6),
        ("::1:80", UnbracketedIpv6),
        ("2001:db8::1:80", UnbracketedIpv6),
        ("10.0.0.256:80", InvalidIpv4),
        ("010.0.0.1:80", InvalidIpv4),
        ("10.0.0:80", InvalidIpv4),
        ("10.0:80", InvalidIpv4),
        (":80", InvalidHost),
        ("cart:80", InvalidHost),
        ("a.b.c:80", InvalidHost),
        ("cart.shop.svc.cluster.local:80", InvalidHost),
        ("-cart.shop:80", InvalidHost),
        ("ca_rt.shop:80", InvalidHost),
        ("user@cart.shop:80", InvalidHost),
        ("cart.shop/x:80", InvalidHost),
        ("cart .shop:80", InvalidHost),
        ("cart.shop :80", InvalidHost),
        ("ca%72t.shop:80", InvalidHost),
    ];
    for (s, e) in bad {
        assert_eq!(Authority::parse(s), Err(*e), "{s:?}");
    }
}

#[test]
fn exports_resolve_by_name_and_by_target_address() {
    let exports = Exports::new(vec![
        export("db.shop", 5432, "127.0.0.1:15432"),
        export("web.shop", 80, "[::1]:8080"),
        Export {
            service: ServiceName::parse("api.shop").unwrap(),
            port: 443,
            target: Target::Host {
                host: "api.internal".into(),
                port: 8443,
            },
        },
    ])
    .unwrap();
    assert_eq!(exports.len(), 3);
    let listed: Vec<String> = exports
        .iter()
        .map(|e| format!("{}:{} -> {}", e.service, e.port, e.target))
        .collect();
    assert_eq!(
        listed,
        [
            "db.shop:5432 -> 127.0.0.1:15432",
            "web.shop:80 -> [::1]:8080",
            "api.shop:443 -> api.internal:8443"
        ]
    );
    let found = |s: &str| {
        exports
            .resolve(&Authority::parse(s).unwrap())
            .map(|e| e.service.as_str())
    };
    assert_eq!(found("db.shop:5432"), Ok("db.shop"));
    assert_eq!(found("DB.Shop:5432"), Ok("db.shop"));
    assert_eq!(found("api.shop:443"), Ok("api.shop"));
    assert_eq!(found("127.0.0.1:15432"), Ok("db.shop"));
    assert_eq!(found("[::ffff:127.0.0.1]:15432"), Ok("db.shop"));
    assert_eq!(found("[::1]:8080"), Ok("web.shop"));
    let not_exported = Err(Decision::new(Reason::NotExported, None));
    for s in [
        "db.shop:5433",
        "db.other:5432",
        "web.shop:8080",
        "127.0.0.1:5432",
        "127.0.0.2:15432",
        "[::2]:8080",
    ] {
        assert_eq!(
            exports
                .resolve(&Authority::parse(s).unwrap())
                .map(|e| e.service.as_str()),
            not_exported.clone(),
            "{s}"
        );
    }
    assert!(Exports::default()
        .resolve(&Authority::parse("db.shop:1").unwrap())
        .is_err());

    assert_eq!(
        Exports::new(vec![
            export("db.shop", 5432, "127.0.0.1:1"),
            export("db.shop", 5432, "127.0.0.1:2"),
        ]),
        Err(ExportsError::DuplicateService {
            service: ServiceName::parse("db.shop").unwrap(),
            port: 5432
        })
    );
    assert!(matches!(
        Exports::new(vec![
            export("db.shop", 5432, "127.0.0.1:1"),
            export("db2.shop", 5432, "[::ffff:127.0.0.1]:1"),
        ]),
        Err(ExportsError::DuplicateTarget(_))
    ));
    // The same service on two ports is two exports, not a duplicate.
    assert!(Exports::new(vec![
        export("db.shop", 5432, "127.0.0.1:1"),
        export("db.shop", 5433, "127.0.0.1:2"),
    ])
    .is_ok());
}

fn egress_rule(
    n: &str,
    action: Action,
    sources: &[&str],
    dests: &[&str],
    p: &[&str],
) -> EgressRule {
    EgressRule {
        sources: principals(sources),
        destinations: dests
            .iter()
            .map(|d| match Cidr::parse(d) {
                Ok(c) => Destination::Cidr(c),
                Err(_) => Destination::Domain(DomainPattern::parse(d).unwrap()),
            })
            .collect(),
        ports: ports(p),
        ..EgressRule::new(name(n), action)
    }
}

fn egress(policy: &EgressPolicy, source: &str, host: &str, port: u16) -> Decision {
    let source = id(source);
    policy.evaluate(&EgressRequest {
        source: &source,
        host: Host::parse(host).unwrap(),
        port,
    })
}

#[test]
fn egress_table() {
    let policy = EgressPolicy::new(vec![
        egress_rule(
            "no-metadata",
            Action::Deny,
            &[],
            &["169.254.169.254/32"],
            &[],
        ),
        egress_rule("no-evil", Action::Deny, &[], &["evil.example.com"], &[]),
        egress_rule(
            "shop-https",
            Action::Allow,
            &["*/ns/shop/sa/*"],
            &[
                "*.example.com",
                "example.org",
                "10.0.0.0/8",
                "2001:db8::/32",
            ],
            &["443", "8443-8444"],
        ),
        egress_rule("all-web", Action::Allow, &[WEB], &[], &[]),
    ]);
    let cases: &[(&str, &str, u16, Reason, Option<&str>)] = &[
        (
            CART,
            "a.example.com",
            443,
            Reason::EgressAllowed,
            Some("shop-https"),
        ),
        (
            CART,
            "A.B.Example.COM.",
            443,
            Reason::EgressAllowed,
            Some("shop-https"),
        ),
        (CART, "example.com", 443, Reason::EgressNotAllowed, None),
        (CART, "aexample.com", 443, Reason::EgressNotAllowed, None),
        (
            CART,
            "a.example.com.evil",
            443,
            Reason::EgressNotAllowed,
            None,
        ),
        (
            CART,
            "example.org",
            443,
            Reason::EgressAllowed,
            Some("shop-https"),
        ),
        (
            CART,
            "EXAMPLE.ORG.",
            8444,
            Reason::EgressAllowed,
            Some("shop-https"),
        ),
        (CART, "a.example.org", 443, Reason::EgressNotAllowed, None),
        (CART, "a.example.com", 80, Reason::EgressNotAllowed, None),
        (CART, "a.example.com", 8445, Reason::EgressNotAllowed, None),
        (
            CART,
            "10.1.2.3",
            443,
            Reason::EgressAllowed,
            Some("shop-https"),
        ),
        (
            CART,
            "::ffff:10.1.2.3",
            443,
            Reason::EgressAllowed,
            Some("shop-https"),
        ),
        (CART, "11.1.2.3", 443, Reason::EgressNotAllowed, None),
        (
            CART,
            "[2001:db8::5]",
            443,
            Reason::EgressAllowed,
            Some("shop-https"),
        ),
        (CART, "2001:db9::5", 443, Reason::EgressNotAllowed, None),
        (
            CART,
            "evil.example.com",
            443,
            Reason::EgressDeniedByRule,
            Some("no-evil"),
        ),
        (
            CART,
            "169.254.169.254",
            80,
            Reason::EgressDeniedByRule,
            Some("no-metadata"),
        ),
        (
            OTHER_TD,
            "a.example.com",
            443,
            Reason::EgressAllowed,
            Some("shop-https"),
        ),
        (
            WEB,
            "anything.net",
            1,
            Reason::EgressAllowed,
            Some("all-web"),
        ),
        (
            WEB,
            "169.254.169.254",
            80,
            Reason::EgressDeniedByRule,
            Some("no-metadata"),
        ),
        (
            "spiffe://example.org/ns/other/sa/x",
            "a.example.com",
            443,
            Reason::EgressNotAllowed,
            None,
        ),
    ];
    for &(source, host, port, reason, rule) in cases {
        let d = egress(&policy, source, host, port);
        assert_eq!(d.reason, reason, "{source} → {host}:{port}: {d}");
        assert_eq!(d.rule.as_ref().map(RuleName::as_str), rule, "{host}");
        assert_eq!(d.allowed, reason == Reason::EgressAllowed);
    }
    // Default deny.
    assert_eq!(
        egress(&EgressPolicy::default(), CART, "example.com", 443),
        Decision::new(Reason::EgressNotAllowed, None)
    );
    // An IP host never matches a domain rule, nor a domain host a CIDR rule.
    let by_name = EgressPolicy::new(vec![egress_rule(
        "n",
        Action::Allow,
        &[],
        &["*.example.com"],
        &[],
    )]);
    assert!(!egress(&by_name, CART, "93.184.216.34", 443).allowed);
    let by_ip = EgressPolicy::new(vec![egress_rule(
        "i",
        Action::Allow,
        &[],
        &["0.0.0.0/0", "::/0"],
        &[],
    )]);
    assert!(!egress(&by_ip, CART, "localhost", 443).allowed);
    assert!(egress(&by_ip, CART, "::1", 443).allowed);
}

#[test]
fn domain_and_host_parsing() {
    assert_eq!(Host::parse("10.0.0.1"), Ok(Host::Ip(ip("10.0.0.1"))));
    assert_eq!(Host::parse("[::1]"), Ok(Host::Ip(ip("::1"))));
    assert_eq!(Host::parse("::1"), Ok(Host::Ip(ip("::1"))));
    let d = Host::parse("Example.COM.").unwrap();
    assert_eq!(d.to_string(), "Example.COM");
    assert_eq!(
        Domain::parse("_srv.example.com").unwrap().as_str(),
        "_srv.example.com"
    );
    let max = format!("{}.com", vec!["a".repeat(63); 3].join("."));
    assert!(max.len() < 253);
    assert!(Domain::parse(&max).is_ok());
    use DomainError::*;
    let long_label = format!("{}.com", "a".repeat(64));
    let too_long = format!("{}.com", vec!["a".repeat(62); 4].join("."));
    for (s, e) in [
        ("", Empty),
        (".", Empty),
        ("..", EmptyLabel),
        (".example.com", EmptyLabel),
        ("a..example.com", EmptyLabel),
        ("example.com..", EmptyLabel),
        (long_label.as_str(), LabelTooLong),
        (too_long.as_str(), TooLong),
        ("evil.com\0.example.com", InvalidChar),
        ("exa mple.com", InvalidChar),
        ("exämple.com", InvalidChar),
        ("[::1", InvalidChar),
        ("1.2.3.999", NumericTld),
        ("10.0.0", NumericTld),
        ("0x7f.1", NumericTld),
        ("a.0x7F", NumericTld),
        ("123", NumericTld),
        ("*.example.com", MisplacedWildcard),
    ] {
        assert_eq!(Host::parse(s), Err(e), "{s:?}");
    }
    assert!(Host::parse("localhost").is_ok());
    assert!(Host::parse("a.0xyz").is_ok());

    // Patterns.
    let pat = |s: &str| DomainPattern::parse(s).unwrap();
    let dom = |s: &'static str| Domain::parse(s).unwrap();
    let cases: &[(&str, &str, bool)] = &[
        ("*.example.com", "a.example.com", true),
        ("*.example.com", "a.b.example.com", true),
        ("*.example.com", "example.com", false),
        ("*.example.com", "xexample.com", false),
        ("*.example.com", "example.com.a", false),
        ("*.Example.COM.", "A.example.com.", true),
        ("example.com", "EXAMPLE.com.", true),
        ("example.com.", "example.com", true),
        ("example.com", "a.example.com", false),
        ("*.com", "example.com", true),
        ("*.com", "com", false),
    ];
    for &(p, d, want) in cases {
        assert_eq!(pat(p).matches(dom(d)), want, "{p} ~ {d}");
    }
    assert_eq!(pat("*.Example.COM.").to_string(), "*.example.com");
    for (s, e) in [
        ("*", MisplacedWildcard),
        ("*.", MisplacedWildcard),
        ("**.example.com", MisplacedWildcard),
        ("a.*.example.com", MisplacedWildcard),
        ("*a.example.com", MisplacedWildcard),
        ("example.*", MisplacedWildcard),
        ("*.*.example.com", MisplacedWildcard),
        ("", Empty),
        ("*..com", EmptyLabel),
    ] {
        assert_eq!(DomainPattern::parse(s), Err(e), "{s:?}");
    }
}

/// Strings over the characters the parsers care about, so the quickcheck
/// cases reach deep into them rather than failing at the first byte.
#[derive(Clone, Debug)]
struct Fragment(String);

impl Arbitrary for Fragment {
    fn arbitrary(g: &mut Gen) -> Fragment {
        const PIECES: &[&str] = &[
            "[", "]", ":", ".", "/", "%", "-", "*", "0", "1", "9", "255", "256", "65535", "65536",
            "::", "ffff", "a", "Z", "é", "\0", " ", "shop", "cart", "10.0.0.1", "::1", "0x", "128",
            "33", "+",
        ];
        let n = usize::arbitrary(g) % 12;
        Fragment((0..n).map(|_| *g.choose(PIECES).unwrap_or(&"")).collect())
    }
}

#[test]
fn parsers_never_panic() {
    fn prop(arbitrary: String, fragment: Fragment) -> bool {
        for s in [arbitrary.as_str(), fragment.0.as_str()] {
            if let Ok(a) = Authority::parse(s) {
                // What parses prints back to something that parses the same.
                let printed = a.to_string();
                assert_eq!(Authority::parse(&printed), Ok(a), "{s:?}");
            }
            if let Ok(c) = Cidr::parse(s) {
                assert_eq!(Cidr::parse(&c.to_string()), Ok(c), "{s:?}");
            }
            let _ = PortRange::parse(s);
            let _ = Host::parse(s);
            let _ = DomainPattern::parse(s);
            let _ = ServiceName::parse(s);
            let _ = RuleName::new(s);
            if let Ok(g) = Glob::new(s) {
                // Every `*` may match nothing.
                assert!(g.matches(&s.replace('*', "")), "{s:?}");
            }
        }
        true
    }
    QuickCheck::new()
        .tests(5000)
        .quickcheck(prop as fn(String, Fragment) -> bool);
}
