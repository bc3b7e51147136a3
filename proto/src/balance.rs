//! Load balancing across a service's endpoints, with outlier ejection.
//!
//! A [`Balancer`] picks an endpoint for each new flow by one [`Strategy`]
//! and skips endpoints that are ejected: after
//! [`Ejection::consecutive_failures`] connects to an endpoint fail in a
//! row, it is left out for a back-off period (doubling with each ejection
//! up to a cap, jittered from the balancer's seed), then let back in on
//! probation — one more failure ejects it again for longer, one success
//! restores it fully.
//!
//! A flow that failed to connect before any byte was sent can be retried
//! elsewhere: pass the endpoints already tried and [`Balancer::choose`]
//! returns the next candidate, never one of them.
//!
//! Sticky choice is rendezvous hashing over a fixed-key FNV-1a hash of the
//! source identity and the endpoint, so every hub picks the same endpoint
//! for a source, and when an endpoint leaves only the sources it held move.
//! The hash of an endpoint is its [`Hash`] impl fed to that fixed hasher:
//! stable across runs and hubs of one build and platform.

use crate::identity::SpiffeId;
use crate::time::Instant;
use core::hash::{Hash, Hasher};
use core::ops::Bound::{Excluded, Included, Unbounded};
use core::time::Duration;
use std::collections::BTreeMap;

/// How a balancer picks among healthy endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Each endpoint in turn.
    RoundRobin,
    /// The endpoint with the fewest open flows; ties go round-robin.
    LeastFlows,
    /// The same endpoint for the same source identity while it is healthy.
    Sticky,
}

/// The name a configuration file uses: `round-robin`, `least-flows`,
/// `sticky`.
impl core::fmt::Display for Strategy {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Strategy::RoundRobin => "round-robin",
            Strategy::LeastFlows => "least-flows",
            Strategy::Sticky => "sticky",
        })
    }
}

/// When endpoints are ejected and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ejection {
    /// Failed connects in a row that eject an endpoint (at least 1).
    pub consecutive_failures: u32,
    /// Back-off of the first ejection; each later one doubles it.
    pub base: Duration,
    /// The longest back-off.
    pub max: Duration,
}

impl Default for Ejection {
    fn default() -> Ejection {
        Ejection {
            consecutive_failures: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Health {
    flows: u32,
    failures: u32,
    ejections: u32,
    ejected_until: Option<Instant>,
}

impl Health {
    /// Not ejected at `now`. An ejection ending more than `max` after
    /// `now` can only come from a clock that stepped back (time is the
    /// host's input); it is over, so no ejection outlasts `max`.
    fn eligible(&self, now: Instant, max: Duration) -> bool {
        self.ejected_until
            .is_none_or(|until| now >= until || until.saturating_duration_since(now) > max)
    }
}

/// Chooses endpoints of one service. `K` names an endpoint (a registry
/// [`Endpoint`](crate::control::Endpoint), an address, an index).
#[derive(Clone, Debug)]
pub struct Balancer<K> {
    strategy: Strategy,
    ejection: Ejection,
    rng: u64,
    endpoints: BTreeMap<K, Health>,
    // The last endpoint chosen round-robin; the next turn starts after it.
    cursor: Option<K>,
}

impl<K: Ord + Clone + Hash> Balancer<K> {
    /// An empty balancer. `seed` drives back-off jitter, nothing else.
    pub fn new(strategy: Strategy, ejection: Ejection, seed: u64) -> Balancer<K> {
        Balancer {
            strategy,
            ejection,
            rng: seed,
            endpoints: BTreeMap::new(),
            cursor: None,
        }
    }

    /// Changes the strategy and ejection settings (a new configuration);
    /// flow counts and ejections in force are kept.
    pub fn set_policy(&mut self, strategy: Strategy, ejection: Ejection) {
        self.strategy = strategy;
        self.ejection = ejection;
    }

    /// Sets the endpoints. Survivors keep their flow counts and ejection
    /// state; new ones start healthy; gone ones are forgotten.
    pub fn set_endpoints(&mut self, endpoints: impl IntoIterator<Item = K>) {
        let mut old = core::mem::take(&mut self.endpoints);
        self.endpoints = endpoints
            .into_iter()
            .map(|k| {
                let health = old.remove(&k).unwrap_or_default();
                (k, health)
            })
            .collect();
    }

    /// The endpoints, in order.
    pub fn endpoints(&self) -> impl Iterator<Item = &K> {
        self.endpoints.keys()
    }

    /// Whether `endpoint` is ejected at `now`.
    pub fn is_ejected(&self, endpoint: &K, now: Instant) -> bool {
        self.endpoints
            .get(endpoint)
            .is_some_and(|h| !h.eligible(now, self.ejection.max))
    }

    /// When `endpoint`'s current ejection ends, if it is ejected.
    pub fn ejected_until(&self, endpoint: &K) -> Option<Instant> {
        self.endpoints.get(endpoint).and_then(|h| h.ejected_until)
    }

    /// Open flows counted on `endpoint`.
    pub fn flows(&self, endpoint: &K) -> u32 {
        self.endpoints.get(endpoint).map_or(0, |h| h.flows)
    }

    /// Picks an endpoint for a flow from `source`, skipping ejected ones
    /// and those in `tried`. `None` when no endpoint is left: the caller
    /// refuses the flow (503). Call [`Balancer::flow_started`] for the
    /// endpoint the flow then uses.
    pub fn choose(&mut self, now: Instant, source: &SpiffeId, tried: &[K]) -> Option<K> {
        let max = self.ejection.max;
        let usable = |k: &K, h: &Health| h.eligible(now, max) && !tried.contains(k);
        let chosen = match self.strategy {
            Strategy::RoundRobin => self.ring().find(|(k, h)| usable(k, h)).map(|(k, _)| k),
            Strategy::LeastFlows => {
                // min_by_key keeps the first minimum, i.e. the next in turn.
                self.ring()
                    .filter(|(k, h)| usable(k, h))
                    .min_by_key(|(_, h)| h.flows)
                    .map(|(k, _)| k)
            }
            Strategy::Sticky => self
                .endpoints
                .iter()
                .filter(|(k, h)| usable(k, h))
                .max_by_key(|(k, _)| rendezvous_score(source, *k))
                .map(|(k, _)| k),
        }
        .cloned();
        if self.strategy != Strategy::Sticky && chosen.is_some() {
            self.cursor.clone_from(&chosen);
        }
        chosen
    }

    /// The ejected endpoint readmitted soonest, leaving out `tried`: a
    /// probe for a flow that would otherwise be refused because every
    /// endpoint is ejected (as Envoy's panic mode does). A probe's failure
    /// is no news ([`Balancer::connect_failed`] ignores failures while
    /// ejected); its success restores the endpoint at once, so a service
    /// recovers on its first good connect rather than after the back-off.
    pub fn soonest_readmitted(&self, tried: &[K]) -> Option<K> {
        self.endpoints
            .iter()
            .filter(|(k, _)| !tried.contains(k))
            .filter_map(|(k, h)| Some((h.ejected_until?, k)))
            .min_by_key(|(until, _)| *until)
            .map(|(_, k)| k.clone())
    }

    /// The endpoints in turn order: those after the cursor, then the rest.
    fn ring(&self) -> impl Iterator<Item = (&K, &Health)> {
        let after = match &self.cursor {
            Some(c) => self.endpoints.range((Excluded(c), Unbounded)),
            None => self.endpoints.range::<K, _>(..),
        };
        let upto = self
            .cursor
            .as_ref()
            .map(|c| self.endpoints.range((Unbounded, Included(c))))
            .into_iter()
            .flatten();
        after.chain(upto)
    }

    /// A flow on `endpoint` opened.
    pub fn flow_started(&mut self, endpoint: &K) {
        if let Some(h) = self.endpoints.get_mut(endpoint) {
            h.flows = h.flows.saturating_add(1);
        }
    }

    /// A flow on `endpoint` closed.
    pub fn flow_ended(&mut self, endpoint: &K) {
        if let Some(h) = self.endpoints.get_mut(endpoint) {
            h.flows = h.flows.saturating_sub(1);
        }
    }

    /// A connect to `endpoint` succeeded: it is fully healthy again.
    pub fn connect_succeeded(&mut self, endpoint: &K) {
        if let Some(h) = self.endpoints.get_mut(endpoint) {
            h.failures = 0;
            h.ejections = 0;
            h.ejected_until = None;
        }
    }

    /// A connect to `endpoint` failed at `now`. Returns when its ejection
    /// ends if this failure ejected it.
    pub fn connect_failed(&mut self, now: Instant, endpoint: &K) -> Option<Instant> {
        let threshold = self.ejection.consecutive_failures.max(1);
        let h = self.endpoints.get_mut(endpoint)?;
        if !h.eligible(now, self.ejection.max) {
            // A flow chosen before the ejection reports late: no news.
            return None;
        }
        h.failures = h.failures.saturating_add(1);
        if h.failures < threshold {
            return None;
        }
        // `failures` stays at or above the threshold until a success, so
        // a re-admitted endpoint is on probation: one failure ejects it.
        h.ejections = h.ejections.saturating_add(1);
        let doublings = h.ejections.saturating_sub(1).min(63);
        let base = nanos(self.ejection.base);
        let max = nanos(self.ejection.max);
        let full = base.saturating_mul(1u64 << doublings).min(max);
        // Jitter into [full/2, full] so endpoints ejected together do not
        // all return at the same instant.
        let half = full / 2;
        let jitter = splitmix64(&mut self.rng) % (full - half).saturating_add(1);
        let until = now.saturating_add(Duration::from_nanos(half + jitter));
        h.ejected_until = Some(until);
        Some(until)
    }

    /// The earliest end of an ejection after `now`: when an endpoint
    /// becomes eligible again (a timer for a host that reports readiness).
    pub fn next_readmission(&self, now: Instant) -> Option<Instant> {
        self.endpoints
            .values()
            .filter(|h| !h.eligible(now, self.ejection.max))
            .filter_map(|h| h.ejected_until)
            .min()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// splitmix64: a small, well-mixed generator stepping an injected state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    mix64(*state)
}

/// The splitmix64 finalizer: FNV's low bits are weak, this spreads them.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a, 64-bit, with its standard fixed offset basis and prime.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Rendezvous (highest random weight) score of `endpoint` for `source`.
fn rendezvous_score<K: Hash>(source: &SpiffeId, endpoint: &K) -> u64 {
    let mut h = Fnv1a::new();
    h.write(source.as_str().as_bytes());
    h.write_u8(0xff);
    endpoint.hash(&mut h);
    mix64(h.finish())
}

#[cfg(test)]
mod tests;
