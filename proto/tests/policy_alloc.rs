//! Deciding never allocates: a counting global allocator watches every
//! evaluation path on a realistic, hundred-rule policy.
//!
//! This is what keeps policy cheap enough to run on every flow; it is a
//! count, not a timing, so it cannot flake.

use core::net::IpAddr;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use warren_proto::identity::SpiffeId;
use warren_proto::policy::*;

struct CountingAllocator;

thread_local! {
    // Const-initialized and without Drop, so touching them from inside the
    // allocator never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: defers every operation to `System` unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract is passed through unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f`, returning its result and how many allocations this thread made.
fn allocations_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let result = f();
    COUNTING.with(|on| on.set(false));
    (result, ALLOCATIONS.with(Cell::get))
}

#[test]
fn the_counter_sees_allocations() {
    let (v, n) = allocations_during(|| vec![1u8; 10]);
    assert_eq!(v.len(), 10);
    assert!(
        n >= 1,
        "the allocator must count, or the tests below prove nothing"
    );
}

/// 100 rules: 96 that never match the probes (other services, other
/// namespaces, other networks, other ports), then the ones that decide.
fn hundred_rule_policy() -> AuthzPolicy {
    let mut rules = Vec::new();
    for i in 0..96 {
        let service = ServiceName::parse(&format!("svc{i}.ns{}", i % 7)).unwrap();
        rules.push(AuthzRule {
            name: RuleName::new(&format!("noise-{i}")).unwrap(),
            action: if i % 3 == 0 {
                Action::Deny
            } else {
                Action::Allow
            },
            scope: if i % 2 == 0 {
                Scope::Service(service)
            } else {
                Scope::AllServices
            },
            when: Conditions {
                principals: vec![
                    PrincipalPattern::new(&format!("spiffe://example.org/ns/team{i}/sa/*"))
                        .unwrap(),
                    PrincipalPattern::new(&format!("*/ns/*/sa/robot-{i}-*")).unwrap(),
                ],
                namespaces: vec![Glob::new(&format!("team{i}*")).unwrap()],
                not_namespaces: vec![Glob::new("quarantine-*").unwrap()],
                ip_blocks: vec![Cidr::parse(&format!("10.{i}.0.0/16")).unwrap()],
                not_ip_blocks: vec![Cidr::parse("2001:db8::/32").unwrap()],
                ports: vec![PortRange::new(9000 + i, 9000 + i).unwrap()],
                not_ports: vec![PortRange::single(22)],
                not_principals: vec![PrincipalPattern::new("*/sa/banned").unwrap()],
            },
        });
    }
    let db = ServiceName::parse("db.shop").unwrap();
    let named = |n: &str| RuleName::new(n).unwrap();
    rules.push(AuthzRule {
        scope: Scope::Service(db.clone()),
        when: Conditions {
            namespaces: vec![Glob::new("legacy").unwrap()],
            ..Conditions::default()
        },
        ..AuthzRule::new(named("no-legacy"), Action::Deny)
    });
    rules.push(AuthzRule {
        scope: Scope::Service(db),
        when: Conditions {
            principals: vec![PrincipalPattern::new("spiffe://example.org/ns/shop/sa/*").unwrap()],
            ip_blocks: vec![Cidr::parse("10.200.0.0/16").unwrap()],
            ports: vec![PortRange::parse("5432-5433").unwrap()],
            ..Conditions::default()
        },
        ..AuthzRule::new(named("shop-to-db"), Action::Allow)
    });
    rules.push(AuthzRule::new(named("audit-all"), Action::Allow));
    rules.push(AuthzRule {
        when: Conditions {
            not_ports: vec![PortRange::ALL],
            ..Conditions::default()
        },
        ..AuthzRule::new(named("never"), Action::Deny)
    });
    assert_eq!(rules.len(), 100);
    AuthzPolicy::new(rules)
}

#[test]
fn authz_evaluation_does_not_allocate() {
    let policy = hundred_rule_policy();
    let ids: Vec<SpiffeId> = [
        "spiffe://example.org/ns/shop/sa/cart",
        "spiffe://example.org/ns/legacy/sa/old",
        "spiffe://example.org/ns/team7/sa/robot-7-a",
    ]
    .iter()
    .map(|s| SpiffeId::parse(s).unwrap())
    .collect();
    let addrs: [Option<IpAddr>; 4] = [
        Some("10.200.1.1".parse().unwrap()),
        Some("::ffff:10.7.0.1".parse().unwrap()),
        Some("2001:db8::1".parse().unwrap()),
        None,
    ];
    let (decisions, allocations) = allocations_during(|| {
        let mut seen = [0usize; 8];
        for id in &ids {
            for addr in addrs {
                for (service, port) in [("db.shop", 5432), ("svc7.ns0", 9007), ("web.shop", 80)] {
                    let d = policy.evaluate(&AuthzRequest {
                        source: id,
                        source_addr: addr,
                        service,
                        port,
                    });
                    seen[d.reason as usize] += 1;
                }
            }
        }
        seen
    });
    assert_eq!(allocations, 0);
    // The probes exercised denial by rule, both allow paths and no-match.
    assert!(decisions[Reason::DeniedByRule as usize] > 0);
    assert!(decisions[Reason::AllowedByRule as usize] > 0);
}

#[test]
fn egress_and_exports_do_not_allocate() {
    let named = |n: &str| RuleName::new(n).unwrap();
    let mut rules: Vec<EgressRule> = (0..98)
        .map(|i| EgressRule {
            sources: vec![PrincipalPattern::new(&format!("*/ns/team{i}/sa/*")).unwrap()],
            destinations: vec![
                Destination::Domain(
                    DomainPattern::parse(&format!("*.svc{i}.example.com")).unwrap(),
                ),
                Destination::Cidr(Cidr::parse(&format!("10.{i}.0.0/16")).unwrap()),
            ],
            ports: vec![PortRange::single(443)],
            ..EgressRule::new(named(&format!("e{i}")), Action::Allow)
        })
        .collect();
    rules.push(EgressRule {
        destinations: vec![Destination::Cidr(Cidr::parse("169.254.0.0/16").unwrap())],
        ..EgressRule::new(named("no-link-local"), Action::Deny)
    });
    rules.push(EgressRule {
        sources: vec![PrincipalPattern::new("*/ns/shop/sa/*").unwrap()],
        destinations: vec![Destination::Domain(
            DomainPattern::parse("*.example.com").unwrap(),
        )],
        ..EgressRule::new(named("shop-out"), Action::Allow)
    });
    let policy = EgressPolicy::new(rules);
    let exports = Exports::new(
        (0..50)
            .map(|i| Export {
                service: ServiceName::parse(&format!("s{i}.shop")).unwrap(),
                port: 80,
                target: Target::Addr(format!("127.0.0.1:{}", 10000 + i).parse().unwrap()),
            })
            .collect(),
    )
    .unwrap();
    let cart = SpiffeId::parse("spiffe://example.org/ns/shop/sa/cart").unwrap();
    let (outcome, allocations) = allocations_during(|| {
        let mut allowed = 0;
        for host in [
            "api.example.com",
            "169.254.169.254",
            "10.3.1.1",
            "a.svc9.example.com.",
        ] {
            let d = policy.evaluate(&EgressRequest {
                source: &cart,
                host: Host::parse(host).unwrap(),
                port: 443,
            });
            allowed += usize::from(d.allowed);
        }
        let mut resolved = 0;
        for authority in [
            "s49.shop:80",
            "127.0.0.1:10049",
            "[::ffff:127.0.0.1]:10001",
            "x.y:1",
        ] {
            let a = Authority::parse(authority).unwrap();
            resolved += usize::from(exports.resolve(&a).is_ok());
        }
        (allowed, resolved)
    });
    assert_eq!(allocations, 0);
    assert_eq!(outcome, (2, 3));
}
