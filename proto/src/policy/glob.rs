//! `*` glob patterns, matched in linear time, and the principal patterns
//! built on them.
//!
//! A pattern is literal text where each `*` stands for any run of bytes,
//! including none. There is no other metacharacter and no escaping: SPIFFE
//! ids and namespaces cannot contain `*`.
//!
//! Matching never backtracks. The pattern is split at construction into a
//! literal prefix, literal suffix and the literal segments in between; a
//! text matches when it starts with the prefix, ends with the suffix, and
//! the segments occur in order, without overlap, in what lies between. Taking
//! the leftmost occurrence of each segment is optimal (any later occurrence
//! leaves less room for the rest), and `str::find` is a Two-Way search, linear
//! in what it scans; each search starts where the last match ended, so a
//! whole match is O(pattern + text) and allocates nothing.

use crate::identity::SpiffeId;
use core::fmt;

/// The longest pattern accepted, in bytes (the SPIFFE limit for ids).
pub const MAX_PATTERN_LEN: usize = 2048;

/// Why a string is not a pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobError {
    /// The pattern is empty (it could only match the empty string).
    Empty,
    /// Longer than [`MAX_PATTERN_LEN`].
    TooLong,
    /// A control character or space, which no id or namespace contains.
    InvalidChar,
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GlobError::Empty => "pattern is empty",
            GlobError::TooLong => "pattern longer than 2048 bytes",
            GlobError::InvalidChar => "pattern contains a space or control character",
        })
    }
}

impl std::error::Error for GlobError {}

/// A `*` glob.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Glob {
    pattern: String,
    // Byte length of the literal text before the first `*` and after the
    // last one; `None` when the pattern has no `*` at all.
    stars: Option<(usize, usize)>,
}

impl Glob {
    /// Compiles a pattern.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(GlobError::TooLong);
        }
        if pattern.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(GlobError::InvalidChar);
        }
        let stars = match (pattern.find('*'), pattern.rfind('*')) {
            (Some(first), Some(last)) => Some((first, pattern.len() - last - 1)),
            _ => None,
        };
        Ok(Glob {
            pattern: pattern.to_owned(),
            stars,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let Some((prefix_len, suffix_len)) = self.stars else {
            return self.pattern == text;
        };
        let p = self.pattern.as_str();
        // Every cut of `p` sits next to an ASCII `*`, so it is a char
        // boundary; `get` keeps that an invariant rather than a panic.
        let (Some(prefix), Some(suffix)) = (
            p.get(..prefix_len),
            p.get(p.len().saturating_sub(suffix_len)..),
        ) else {
            return false;
        };
        if text.len() < prefix.len() + suffix.len() {
            return false;
        }
        let Some(mut rest) = text
            .strip_prefix(prefix)
            .and_then(|t| t.strip_suffix(suffix))
        else {
            return false;
        };
        let Some(middle) = p.get(prefix_len + 1..p.len() - suffix_len - 1) else {
            // A single `*`: prefix and suffix touch it from both sides.
            return true;
        };
        for segment in middle.split('*').filter(|s| !s.is_empty()) {
            match rest.find(segment) {
                Some(at) => rest = rest.get(at + segment.len()..).unwrap_or_default(),
                None => return false,
            }
        }
        true
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({})", self.pattern)
    }
}

const SPIFFE_SCHEME: &str = "spiffe://";

/// A pattern over SPIFFE ids, e.g. `spiffe://example.org/ns/shop/sa/*`.
///
/// Istio writes principals without the scheme (`cluster.local/ns/a/sa/b`,
/// `*/ns/a/sa/*`); such a pattern is matched against the id without its
/// `spiffe://`. That is the same as prefixing the pattern with `spiffe://`
/// and matching the whole id, which is what is stored, so both spellings
/// mean the same thing and display the same way.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrincipalPattern(Glob);

impl PrincipalPattern {
    /// Compiles a principal pattern, with or without the `spiffe://` scheme.
    pub fn new(pattern: &str) -> Result<PrincipalPattern, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.starts_with(SPIFFE_SCHEME) {
            Glob::new(pattern).map(PrincipalPattern)
        } else {
            Glob::new(&format!("{SPIFFE_SCHEME}{pattern}")).map(PrincipalPattern)
        }
    }

    /// The pattern, always with its scheme.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether `id` matches.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        self.0.matches(id.as_str())
    }
}

impl fmt::Display for PrincipalPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl fmt::Debug for PrincipalPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrincipalPattern({})", self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("abc", "ab", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "a", true),
            ("a*", "ab", true),
            ("a*", "ba", false),
            ("*a", "a", true),
            ("*a", "ab", false),
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("a*a", "aba", true),
            ("**", "x", true),
            ("a**b", "ab", true),
            ("*ab*ab*", "abab", true),
            ("*ab*ab*", "aab", false),
            ("*aab*", "aaab", true),
            ("a*b*c", "abbbc", true),
            ("a*b*c", "acb", false),
            ("a*bc*bc", "abcbc", true),
            ("a*bc*bc", "abcb", false),
            ("*.*", "é.x", true),
            ("é*", "éa", true),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(
                Glob::new(pattern).unwrap().matches(text),
                want,
                "{pattern} ~ {text}"
            );
        }
    }

    /// Inputs that make backtracking matchers exponential finish at once
    /// here (a regression would hang this test rather than pass it).
    #[test]
    fn pathological_patterns_stay_linear() {
        let pattern = format!("*{}b*", "a*".repeat(500));
        let glob = Glob::new(&pattern).unwrap();
        let text = "a".repeat(1500);
        assert!(!glob.matches(&text));
        assert!(glob.matches(&format!("{text}b")));
    }

    #[test]
    fn glob_rejects() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert_eq!(Glob::new("a b"), Err(GlobError::InvalidChar));
        assert_eq!(Glob::new("a\nb"), Err(GlobError::InvalidChar));
        assert_eq!(Glob::new(&"a".repeat(2049)), Err(GlobError::TooLong));
        assert!(Glob::new(&"a".repeat(2048)).is_ok());
    }

    #[test]
    fn principal_with_and_without_scheme() {
        let id = SpiffeId::parse("spiffe://example.org/ns/shop/sa/cart").unwrap();
        for p in [
            "spiffe://example.org/ns/shop/sa/*",
            "example.org/ns/shop/sa/*",
            "*/ns/shop/sa/cart",
            "*",
            "spiffe://*",
        ] {
            assert!(PrincipalPattern::new(p).unwrap().matches(&id), "{p}");
        }
        for p in [
            "spiffe://example.org/ns/shop/sa/car",
            "spiffe://example.org/ns/shop2/*",
            "*/ns/shop/sa/cart2",
            "spiffe:*", // becomes spiffe://spiffe:*
        ] {
            assert!(!PrincipalPattern::new(p).unwrap().matches(&id), "{p}");
        }
        assert_eq!(
            PrincipalPattern::new("*/ns/a/sa/*").unwrap().as_str(),
            "spiffe://*/ns/a/sa/*"
        );
    }
}
