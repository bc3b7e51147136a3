use super::*;
use quickcheck::{quickcheck, Arbitrary, Gen, TestResult};

fn src(i: u32) -> SpiffeId {
    SpiffeId::new("example.org", "shop", &format!("client-{i}")).unwrap()
}

fn balancer(strategy: Strategy, n: u8, seed: u64) -> Balancer<u8> {
    let mut b = Balancer::new(strategy, Ejection::default(), seed);
    b.set_endpoints(0..n);
    b
}

const T0: Instant = Instant(1_000_000_000);

#[test]
fn round_robin_is_fair() {
    fn prop(n: u8, rounds: u8) -> TestResult {
        let n = n % 9;
        if n == 0 {
            return TestResult::discard();
        }
        let rounds = usize::from(rounds % 5) + 1;
        let mut b = balancer(Strategy::RoundRobin, n, 0);
        let mut counts = vec![0usize; usize::from(n)];
        for _ in 0..rounds {
            // Every window of n picks is a permutation.
            let mut round: Vec<u8> = (0..n)
                .map(|_| b.choose(T0, &src(0), &[]).unwrap())
                .collect();
            round.sort_unstable();
            if round != (0..n).collect::<Vec<_>>() {
                return TestResult::failed();
            }
            for e in round {
                counts[usize::from(e)] += 1;
            }
        }
        TestResult::from_bool(counts.iter().all(|&c| c == rounds))
    }
    quickcheck(prop as fn(u8, u8) -> TestResult);
}

#[test]
fn least_flows_picks_a_minimum() {
    fn prop(ops: Vec<(u8, bool)>, n: u8) -> TestResult {
        let n = n % 7 + 1;
        let mut b = balancer(Strategy::LeastFlows, n, 0);
        for (e, open) in ops {
            let e = e % n;
            if open {
                b.flow_started(&e);
            } else {
                b.flow_ended(&e);
            }
            let min = (0..n).map(|k| b.flows(&k)).min().unwrap();
            let Some(chosen) = b.choose(T0, &src(0), &[]) else {
                return TestResult::failed();
            };
            if b.flows(&chosen) != min {
                return TestResult::failed();
            }
        }
        TestResult::passed()
    }
    quickcheck(prop as fn(Vec<(u8, bool)>, u8) -> TestResult);
}

#[test]
fn least_flows_ties_rotate() {
    let mut b = balancer(Strategy::LeastFlows, 3, 0);
    let picks: Vec<u8> = (0..6)
        .map(|_| b.choose(T0, &src(0), &[]).unwrap())
        .collect();
    assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
    b.flow_started(&0);
    b.flow_started(&1);
    assert_eq!(b.choose(T0, &src(0), &[]), Some(2));
    assert_eq!(b.choose(T0, &src(0), &[]), Some(2));
}

/// Removing one endpoint moves only the sources that were on it; adding
/// one moves sources only onto the newcomer.
#[test]
fn sticky_moves_only_what_it_must() {
    fn prop(n: u8, gone: u8, sources: u8) -> TestResult {
        let n = n % 10 + 2;
        let gone = gone % n;
        let sources: Vec<SpiffeId> = (0..u32::from(sources % 60) + 1).map(src).collect();
        let mut b = balancer(Strategy::Sticky, n, 0);
        let before: Vec<u8> = sources
            .iter()
            .map(|s| b.choose(T0, s, &[]).unwrap())
            .collect();
        // Choosing again gives the same answer.
        for (s, &e) in sources.iter().zip(&before) {
            if b.choose(T0, s, &[]) != Some(e) {
                return TestResult::failed();
            }
        }
        b.set_endpoints((0..n).filter(|&e| e != gone));
        for (s, &e) in sources.iter().zip(&before) {
            let now = b.choose(T0, s, &[]).unwrap();
            if now == gone || (e != gone && now != e) {
                return TestResult::failed();
            }
        }
        b.set_endpoints(0..n);
        for (s, &e) in sources.iter().zip(&before) {
            if b.choose(T0, s, &[]) != Some(e) {
                return TestResult::failed();
            }
        }
        TestResult::passed()
    }
    quickcheck(prop as fn(u8, u8, u8) -> TestResult);
}

#[test]
fn sticky_spreads_sources() {
    let mut b = balancer(Strategy::Sticky, 4, 0);
    let mut counts = [0u32; 4];
    for i in 0..400 {
        counts[usize::from(b.choose(T0, &src(i), &[]).unwrap())] += 1;
    }
    // A hash that sent everyone to one endpoint would fail this.
    assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
}

/// A retried flow gets a new endpoint each time until none is left.
#[test]
fn retries_walk_every_endpoint_once() {
    fn prop(n: u8, which: u8, source: u32) -> bool {
        let n = n % 8;
        let strategy =
            [Strategy::RoundRobin, Strategy::LeastFlows, Strategy::Sticky][usize::from(which % 3)];
        let mut b = balancer(strategy, n, 0);
        let mut tried = Vec::new();
        while let Some(e) = b.choose(T0, &src(source), &tried) {
            if tried.contains(&e) {
                return false;
            }
            tried.push(e);
        }
        tried.sort_unstable();
        tried == (0..n).collect::<Vec<_>>()
    }
    quickcheck(prop as fn(u8, u8, u32) -> bool);
}

#[derive(Clone, Debug)]
enum Event {
    Advance(u32),
    Fail(u8),
    Succeed(u8),
    Choose(u32),
}

impl Arbitrary for Event {
    fn arbitrary(g: &mut Gen) -> Event {
        match u8::arbitrary(g) % 4 {
            0 => Event::Advance(u32::arbitrary(g)),
            1 | 2 => Event::Fail(u8::arbitrary(g) % 4),
            _ => match bool::arbitrary(g) {
                true => Event::Succeed(u8::arbitrary(g) % 4),
                false => Event::Choose(u32::arbitrary(g) % 8),
            },
        }
    }
}

/// Runs events through a balancer; returns the ejection ends it produced,
/// or `None` if an ejected endpoint was ever chosen during its back-off or
/// a back-off fell outside its bounds.
fn run(strategy: Strategy, seed: u64, events: &[Event]) -> Option<Vec<Option<Instant>>> {
    let ejection = Ejection {
        consecutive_failures: 2,
        base: Duration::from_millis(100),
        max: Duration::from_secs(2),
    };
    let mut b = Balancer::new(strategy, ejection, seed);
    b.set_endpoints(0u8..4);
    let mut now = T0;
    let mut ends = Vec::new();
    for ev in events {
        match *ev {
            Event::Advance(ns) => now = now + Duration::from_nanos(u64::from(ns)),
            Event::Fail(e) => {
                let end = b.connect_failed(now, &e);
                if let Some(end) = end {
                    let d = end.saturating_duration_since(now);
                    if d < ejection.base / 2 || d > ejection.max {
                        return None;
                    }
                }
                ends.push(end);
            }
            Event::Succeed(e) => b.connect_succeeded(&e),
            Event::Choose(s) => {
                let chosen = b.choose(now, &src(s), &[]);
                let healthy: Vec<u8> = (0..4).filter(|e| !b.is_ejected(e, now)).collect();
                match chosen {
                    Some(e) if b.is_ejected(&e, now) => return None,
                    None if !healthy.is_empty() => return None,
                    _ => {}
                }
            }
        }
    }
    Some(ends)
}

#[test]
fn ejected_endpoints_are_skipped_and_same_seed_replays() {
    fn prop(seed: u64, which: u8, events: Vec<Event>) -> bool {
        let strategy =
            [Strategy::RoundRobin, Strategy::LeastFlows, Strategy::Sticky][usize::from(which % 3)];
        let first = run(strategy, seed, &events);
        first.is_some() && first == run(strategy, seed, &events)
    }
    quickcheck(prop as fn(u64, u8, Vec<Event>) -> bool);
}

#[test]
fn ejection_backs_off_and_readmits() {
    let ejection = Ejection {
        consecutive_failures: 3,
        base: Duration::from_secs(1),
        max: Duration::from_secs(4),
    };
    let mut b = Balancer::new(Strategy::RoundRobin, ejection, 42);
    b.set_endpoints([0u8, 1]);
    assert_eq!(b.connect_failed(T0, &0), None);
    assert_eq!(b.connect_failed(T0, &0), None);
    let until = b.connect_failed(T0, &0).expect("third failure ejects");
    let first = until.saturating_duration_since(T0);
    assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
    assert_eq!(b.next_readmission(T0), Some(until));
    // During the back-off only endpoint 1 is chosen.
    for _ in 0..4 {
        assert_eq!(b.choose(T0, &src(0), &[]), Some(1));
    }
    let just_before = Instant(until.as_nanos() - 1);
    assert_eq!(b.choose(just_before, &src(0), &[]), Some(1));
    assert_eq!(b.choose(just_before, &src(0), &[1]), None);
    // After it, endpoint 0 is retried.
    assert_eq!(b.choose(until, &src(0), &[1]), Some(0));
    // On probation: one failure ejects again, for longer (up to the cap).
    let mut last = first;
    let mut now = until;
    for _ in 0..5 {
        let next = b.connect_failed(now, &0).expect("probation failure ejects");
        let d = next.saturating_duration_since(now);
        assert!(d <= Duration::from_secs(4));
        assert!(d >= last / 2, "{d:?} after {last:?}");
        last = d;
        now = next;
    }
    assert!(last >= Duration::from_secs(2), "reached the cap's range");
    // A success restores the endpoint fully: three failures again to eject.
    b.connect_succeeded(&0);
    assert!(!b.is_ejected(&0, now));
    assert_eq!(b.connect_failed(now, &0), None);
    assert_eq!(b.connect_failed(now, &0), None);
    assert!(b.connect_failed(now, &0).is_some());
}

#[test]
fn no_ejection_outlasts_the_cap_when_the_clock_steps_back() {
    // Property: whatever the clock does between an ejection and a choice,
    // an endpoint is never left out for longer than `max` from `now`.
    fn prop(eject_at: u32, back: u32, later: u32) -> bool {
        let ejection = Ejection {
            consecutive_failures: 1,
            base: Duration::from_secs(1),
            max: Duration::from_secs(4),
        };
        let mut b = Balancer::new(Strategy::RoundRobin, ejection, 1);
        b.set_endpoints([0u8]);
        let at = Instant::from_nanos(u64::from(eject_at) * 1_000_000 + 10_000_000_000);
        let Some(until) = b.connect_failed(at, &0) else {
            return false;
        };
        // The host's clock steps back by `back` ms, then runs `later` ms.
        let now = Instant::from_nanos(
            at.as_nanos().saturating_sub(u64::from(back) * 1_000_000)
                + u64::from(later) * 1_000_000,
        );
        let left = until.saturating_duration_since(now);
        let ejected = b.is_ejected(&0, now);
        // Ejected exactly while some of it is left and no more than max.
        ejected == (left > Duration::ZERO && left <= ejection.max)
            && (ejected || b.choose(now, &src(0), &[]) == Some(0))
    }
    quickcheck(prop as fn(u32, u32, u32) -> bool);
}

#[test]
fn the_probe_is_the_ejected_endpoint_readmitted_first() {
    let ejection = Ejection {
        consecutive_failures: 1,
        ..Ejection::default()
    };
    let mut b = Balancer::new(Strategy::RoundRobin, ejection, 3);
    b.set_endpoints([0u8, 1, 2]);
    assert_eq!(b.soonest_readmitted(&[]), None, "nothing is ejected");
    let ends: Vec<Instant> = (0..3u8)
        .map(|k| b.connect_failed(T0, &k).expect("ejected"))
        .collect();
    assert_eq!(b.choose(T0, &src(0), &[]), None);
    let first = (0..3u8).min_by_key(|&k| ends[usize::from(k)]).unwrap();
    assert_eq!(b.soonest_readmitted(&[]), Some(first));
    assert_ne!(b.soonest_readmitted(&[first]), Some(first));
    assert_eq!(b.soonest_readmitted(&[0, 1, 2]), None);
    // The probe failing is no news; its success readmits it at once.
    assert_eq!(b.connect_failed(T0, &first), None);
    assert_eq!(b.ejected_until(&first), Some(ends[usize::from(first)]));
    b.connect_succeeded(&first);
    assert_eq!(b.choose(T0, &src(0), &[]), Some(first));
}

#[test]
fn different_seeds_jitter_differently() {
    let ends: Vec<Option<Instant>> = (0..8u64)
        .map(|seed| {
            let mut b = Balancer::new(Strategy::RoundRobin, Ejection::default(), seed);
            b.set_endpoints([0u8]);
            (0..5).filter_map(|_| b.connect_failed(T0, &0)).next()
        })
        .collect();
    let mut distinct = ends.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 1, "{ends:?}");
}

#[test]
fn endpoint_set_changes_keep_survivor_state() {
    let mut b = balancer(Strategy::LeastFlows, 3, 0);
    b.flow_started(&1);
    for _ in 0..5 {
        b.connect_failed(T0, &2);
    }
    assert!(b.is_ejected(&2, T0));
    b.set_endpoints([1, 2, 3]);
    assert_eq!(b.flows(&1), 1);
    assert!(b.is_ejected(&2, T0));
    assert_eq!(b.endpoints().copied().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(b.choose(T0, &src(0), &[]), Some(3));
}
