//! A flow's counters found by its labels without copying them.
//!
//! The counters are keyed by an owned [`MetricKey`], and every socket read
//! and every stream write adds to them. Building the key to look it up
//! copied the service name (and, before ids were shared, both identities)
//! on every read: 4–5 copies per cold flow and one per read of a busy flow
//! (issue 8, benches/WARREN-BENCH.md, "Cold flows: CPU per flow"). Here the
//! map is searched with the labels as borrowed views, ordered exactly as
//! `MetricKey` orders, and a key is built only for a new label set.

use core::borrow::Borrow;
use core::cmp::Ordering;

use crate::identity::SpiffeId;

use super::event::{Direction, FlowCounters, MetricKey, Metrics};

/// The labels of a counter set, borrowed.
pub(super) trait Labels {
    /// Source, destination, service, direction: `MetricKey`'s fields in
    /// its order.
    fn labels(&self) -> (Option<&SpiffeId>, Option<&SpiffeId>, &str, Direction);

    /// The owned key, for a label set seen for the first time.
    fn key(&self) -> MetricKey {
        let (source, destination, service, direction) = self.labels();
        MetricKey {
            source: source.cloned(),
            destination: destination.cloned(),
            service: service.to_owned(),
            direction,
        }
    }
}

impl Labels for MetricKey {
    fn labels(&self) -> (Option<&SpiffeId>, Option<&SpiffeId>, &str, Direction) {
        (
            self.source.as_ref(),
            self.destination.as_ref(),
            &self.service,
            self.direction,
        )
    }
}

impl Labels for super::flow::Flow {
    fn labels(&self) -> (Option<&SpiffeId>, Option<&SpiffeId>, &str, Direction) {
        (
            self.source.as_ref(),
            self.destination.as_ref(),
            &self.service,
            self.direction,
        )
    }
}

impl PartialEq for dyn Labels + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.labels() == other.labels()
    }
}

impl Eq for dyn Labels + '_ {}

impl PartialOrd for dyn Labels + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn Labels + '_ {
    /// The tuple order of the fields, which is the derived order of
    /// `MetricKey` (a map searched with a different order would miss).
    fn cmp(&self, other: &Self) -> Ordering {
        self.labels().cmp(&other.labels())
    }
}

impl<'a> Borrow<dyn Labels + 'a> for MetricKey {
    fn borrow(&self) -> &(dyn Labels + 'a) {
        self
    }
}

/// Adds to the counters of `of`'s labels (made on first use) with `add`.
pub(super) fn count(metrics: &mut Metrics, of: &dyn Labels, add: impl FnOnce(&mut FlowCounters)) {
    match metrics.get_mut(of) {
        Some(counters) => add(counters),
        None => add(metrics.entry(of.key()).or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    fn id(name: &str) -> SpiffeId {
        SpiffeId::parse(&format!("spiffe://td.test/ns/n/sa/{name}")).unwrap()
    }

    #[derive(Clone, Debug)]
    struct Key(MetricKey);

    impl Arbitrary for Key {
        fn arbitrary(g: &mut Gen) -> Key {
            let names = ["a", "b", "ab", "b0"];
            let who =
                |g: &mut Gen| Option::<()>::arbitrary(g).map(|()| id(g.choose(&names).unwrap()));
            let directions = [Direction::Inbound, Direction::Outbound, Direction::Relayed];
            Key(MetricKey {
                source: who(g),
                destination: who(g),
                service: (*g.choose(&["", "s.n", "s.m", "t"]).unwrap()).to_owned(),
                direction: *g.choose(&directions).unwrap(),
            })
        }
    }

    #[test]
    fn the_borrowed_order_is_the_keys_order() {
        fn property(a: Key, b: Key) -> bool {
            let (a, b) = (a.0, b.0);
            (&a as &dyn Labels).cmp(&b as &dyn Labels) == a.cmp(&b)
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(property as fn(Key, Key) -> bool);
    }

    #[test]
    fn counters_find_the_entry_a_key_made_and_make_missing_ones() {
        fn property(keys: Vec<Key>) -> bool {
            let mut by_view = Metrics::new();
            let mut by_entry = Metrics::new();
            for (i, Key(k)) in keys.iter().enumerate() {
                count(&mut by_view, k, |c| c.bytes_sent += i as u64 + 1);
                by_entry.entry(k.clone()).or_default().bytes_sent += i as u64 + 1;
            }
            by_view == by_entry
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(property as fn(Vec<Key>) -> bool);
    }
}
