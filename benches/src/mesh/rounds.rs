//! Interleaved rounds, the pure half: the order of a round, the values each
//! path gave in each round, and a figure's per-round values with their
//! median.
//!
//! A target figure is a ratio of two paths. Measured one after the other,
//! seconds apart, it swings with whatever else the box does in between, so
//! the bench measures the paths of a figure alternately in short rounds and
//! reports the median of the per-round ratios, with their min–max and the
//! number of rounds. [`super::interleave`] drives the paths.

use std::collections::BTreeMap;

/// The order in which round `round` measures `paths`: as listed in even
/// rounds, reversed in odd ones. Two consecutive rounds then read
/// A B … B A: every path's two measurements sit around the same midpoint,
/// so a load that drifts linearly over the two rounds moves both paths of
/// any pair alike (ABBA order, for any number of paths).
pub fn round_order<T: Copy>(paths: &[T], round: usize) -> Vec<T> {
    let mut order = paths.to_vec();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// The median of the finite `values` (the mean of the two middle ones for
/// an even count); None when there is none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => v.get(mid).copied(),
        _ => Some((v.get(mid - 1)? + v.get(mid)?) / 2.0),
    }
}

/// Median, min and max of a figure's per-round values, and how many rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Median over the rounds.
    pub median: f64,
    /// Smallest per-round value.
    pub min: f64,
    /// Largest per-round value.
    pub max: f64,
    /// Rounds counted.
    pub rounds: usize,
}

impl Summary {
    /// The summary of the finite `values`; None when there is none.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        Some(Summary {
            median: median(&finite)?,
            min: finite.iter().copied().fold(f64::INFINITY, f64::min),
            max: finite.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            rounds: finite.len(),
        })
    }
}

/// The bookkeeping of one measure over the rounds (say 1-flow Gbit/s): the
/// value each path gave in each round, and why a path gave none (not
/// installed, failed to start, failed in a round).
#[derive(Debug, Default)]
pub struct Rounds {
    values: BTreeMap<String, BTreeMap<usize, f64>>,
    excluded: BTreeMap<String, String>,
}

impl Rounds {
    /// Notes `path`'s value in `round`.
    pub fn record(&mut self, path: &str, round: usize, value: f64) {
        self.values
            .entry(path.to_string())
            .or_default()
            .insert(round, value);
    }

    /// Takes `path` out of every figure, saying why; the first reason
    /// given is kept (a later one is a consequence of it).
    pub fn exclude(&mut self, path: &str, why: &str) {
        self.excluded
            .entry(path.to_string())
            .or_insert_with(|| why.to_string());
    }

    /// Why `path` is out, if it is.
    pub fn excluded(&self, path: &str) -> Option<&str> {
        self.excluded.get(path).map(String::as_str)
    }

    /// `path`'s value in each round it was measured, by round.
    fn of(&self, path: &str) -> Result<&BTreeMap<usize, f64>, String> {
        if let Some(why) = self.excluded(path) {
            return Err(format!("{path}: {why}"));
        }
        self.values
            .get(path)
            .ok_or_else(|| format!("{path}: not measured"))
    }

    /// `a` over `b` in every round that measured both.
    pub fn ratios(&self, a: &str, b: &str) -> Result<Vec<RoundValue>, String> {
        let (va, vb) = (self.of(a)?, self.of(b)?);
        Ok(va
            .iter()
            .filter_map(|(&round, &x)| {
                let y = *vb.get(&round)?;
                let value = x / y;
                (y > 0.0 && value.is_finite()).then_some(RoundValue {
                    round,
                    a: x,
                    b: Some(y),
                    value,
                })
            })
            .collect())
    }

    /// `a`'s own value in every round that measured it.
    pub fn singles(&self, a: &str) -> Result<Vec<RoundValue>, String> {
        Ok(self
            .of(a)?
            .iter()
            .filter(|(_, x)| x.is_finite())
            .map(|(&round, &x)| RoundValue {
                round,
                a: x,
                b: None,
                value: x,
            })
            .collect())
    }
}

/// A figure's value in one round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoundValue {
    /// The round (0-based; even rounds ran in list order, odd ones reversed).
    pub round: usize,
    /// The first path's measurement.
    pub a: f64,
    /// The second path's measurement, for a ratio.
    pub b: Option<f64>,
    /// The figure: `a / b`, or `a` alone.
    pub value: f64,
}

/// One figure measured in interleaved rounds.
#[derive(Debug)]
pub struct Figure {
    /// What it is, as the targets table names it.
    pub name: &'static str,
    /// What each round measured of each path (e.g. "1 flow Gbit/s").
    pub measure: &'static str,
    /// The path over the line (or the only path).
    pub a: &'static str,
    /// The path under the line; None for a figure of one path.
    pub b: Option<&'static str>,
    /// The paths of the figure's phase in even-round order (odd rounds
    /// ran them reversed).
    pub order: Vec<&'static str>,
    /// The per-round values, or why there are none (a path missing or
    /// failed).
    pub rounds: Result<Vec<RoundValue>, String>,
}

impl Figure {
    /// The median, min and max over the rounds; None when there is none.
    pub fn summary(&self) -> Option<Summary> {
        let values: Vec<f64> = self.rounds.as_ref().ok()?.iter().map(|r| r.value).collect();
        Summary::of(&values)
    }

    /// Why the figure has no value: a path missing or failed, or no round
    /// that measured both.
    pub fn why_none(&self) -> Option<String> {
        match &self.rounds {
            Err(why) => Some(why.clone()),
            Ok(r) if r.is_empty() => Some("no round measured both paths".into()),
            Ok(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn median_of_an_odd_count_is_the_middle_value_and_of_an_even_count_the_mean_of_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        // Not-a-number (a 0/0 round) is not a value.
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn median_sits_between_min_and_max_with_as_many_values_on_each_side() {
        fn prop(v: Vec<i16>) -> TestResult {
            if v.is_empty() {
                return TestResult::discard();
            }
            let v: Vec<f64> = v.into_iter().map(f64::from).collect();
            let s = Summary::of(&v).expect("non-empty");
            let below = v.iter().filter(|&&x| x < s.median).count();
            let above = v.iter().filter(|&&x| x > s.median).count();
            TestResult::from_bool(
                s.min <= s.median
                    && s.median <= s.max
                    && below <= v.len() / 2
                    && above <= v.len() / 2
                    && s.rounds == v.len()
                    && v.contains(&s.min)
                    && v.contains(&s.max),
            )
        }
        quickcheck(prop as fn(Vec<i16>) -> TestResult);
    }

    #[test]
    fn two_consecutive_rounds_put_every_path_around_the_same_midpoint() {
        fn prop(n: u8, pair: u8) -> bool {
            let paths: Vec<u8> = (0..n % 9).collect();
            let (even, odd) = (round_order(&paths, 2 * usize::from(pair)), {
                round_order(&paths, 2 * usize::from(pair) + 1)
            });
            let pos = |order: &[u8], p: u8| order.iter().position(|&x| x == p);
            // Each path once per round, and its two positions sum to the
            // same n - 1: A B … B A.
            paths.iter().all(|&p| match (pos(&even, p), pos(&odd, p)) {
                (Some(i), Some(j)) => i + j + 1 == paths.len(),
                _ => false,
            }) && even.len() == paths.len()
                && odd.len() == paths.len()
        }
        quickcheck(prop as fn(u8, u8) -> bool);
    }

    #[test]
    fn two_paths_alternate_abba() {
        let order: Vec<&str> = (0..4).flat_map(|r| round_order(&["a", "b"], r)).collect();
        assert_eq!(order, ["a", "b", "b", "a", "a", "b", "b", "a"]);
    }

    #[test]
    fn ratios_pair_values_of_the_same_round_only() {
        fn prop(a: Vec<(u8, u16)>, b: Vec<(u8, u16)>) -> bool {
            let mut r = Rounds::default();
            for &(round, v) in &a {
                r.record("a", usize::from(round), f64::from(v));
            }
            for &(round, v) in &b {
                r.record("b", usize::from(round), f64::from(v));
            }
            // The last value recorded for a round is the one kept.
            let last = |v: &[(u8, u16)], round: usize| {
                v.iter()
                    .rev()
                    .find(|(x, _)| usize::from(*x) == round)
                    .map(|&(_, v)| f64::from(v))
            };
            let Ok(pairs) = r.ratios("a", "b") else {
                return a.is_empty() || b.is_empty();
            };
            let expected = (0..=255)
                .filter(|&round| {
                    matches!((last(&a, round), last(&b, round)), (Some(_), Some(y)) if y > 0.0)
                })
                .count();
            pairs.len() == expected
                && pairs.windows(2).all(|w| w[0].round < w[1].round)
                && pairs.iter().all(|p| {
                    Some(p.a) == last(&a, p.round)
                        && p.b == last(&b, p.round)
                        && p.b.is_some_and(|y| p.value == p.a / y)
                })
        }
        quickcheck(prop as fn(Vec<(u8, u16)>, Vec<(u8, u16)>) -> bool);
    }

    #[test]
    fn a_missing_path_makes_its_figures_say_why_instead_of_an_empty_value() {
        let mut r = Rounds::default();
        r.record("warren", 0, 10.0);
        r.exclude("stunnel", "missing: stunnel not installed");
        let err = r.ratios("warren", "stunnel").unwrap_err();
        assert_eq!(err, "stunnel: missing: stunnel not installed");
        // A path never recorded nor excluded says so too.
        assert_eq!(
            r.ratios("warren", "nghttpx").unwrap_err(),
            "nghttpx: not measured"
        );
        assert!(r.singles("warren").is_ok());
    }

    #[test]
    fn a_path_that_fails_later_is_out_with_its_first_reason() {
        let mut r = Rounds::default();
        r.record("a", 0, 1.0);
        r.record("b", 0, 2.0);
        r.exclude("b", "failed: connection refused");
        r.exclude("b", "failed: later consequence");
        assert_eq!(r.excluded("b"), Some("failed: connection refused"));
        assert!(r.ratios("a", "b").is_err());
    }

    #[test]
    fn a_round_whose_denominator_is_zero_is_not_a_value() {
        let mut r = Rounds::default();
        for (round, (a, b)) in [(4.0, 2.0), (4.0, 0.0), (3.0, 1.0)].into_iter().enumerate() {
            r.record("a", round, a);
            r.record("b", round, b);
        }
        let v: Vec<(usize, f64)> = r
            .ratios("a", "b")
            .unwrap()
            .iter()
            .map(|p| (p.round, p.value))
            .collect();
        assert_eq!(v, [(0, 2.0), (2, 3.0)]);
    }

    #[test]
    fn a_figure_summarises_its_rounds_or_says_why_it_has_none() {
        let values = [3.0, 1.0, 2.0, 10.0];
        let rounds: Vec<RoundValue> = values
            .iter()
            .enumerate()
            .map(|(round, &value)| RoundValue {
                round,
                a: value,
                b: Some(1.0),
                value,
            })
            .collect();
        let mut f = Figure {
            name: "x",
            measure: "m",
            a: "a",
            b: Some("b"),
            order: vec!["a", "b"],
            rounds: Ok(rounds),
        };
        let s = f.summary().unwrap();
        assert_eq!((s.median, s.min, s.max, s.rounds), (2.5, 1.0, 10.0, 4));
        assert_eq!(f.why_none(), None);
        f.rounds = Ok(Vec::new());
        assert_eq!(f.summary(), None);
        assert_eq!(
            f.why_none().as_deref(),
            Some("no round measured both paths")
        );
        f.rounds = Err("b: missing".into());
        assert_eq!(f.why_none().as_deref(), Some("b: missing"));
    }
}
