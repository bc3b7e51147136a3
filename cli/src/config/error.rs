//! Configuration errors that point at the place in the file: path, line,
//! column, and the key (`export[1].port`), with what was expected.
//!
//! Every error carries a byte span into the text — toml's own, or one kept
//! with `toml::Spanned` for a check made after parsing. The key is found by
//! walking the spanned document to the innermost key whose entry contains
//! the span, so one mechanism names the key for syntax errors, type
//! errors, unknown keys and semantic checks alike.

use core::fmt;
use core::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Why an agent configuration file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line of the offending text (0 when there is none, e.g. the
    /// file could not be read).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The key, as a TOML path (`authz.rule[0].ip_blocks[1]`); empty for
    /// the document itself.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": `{}`: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error about the whole file (it could not be read).
    pub fn file(file: &Path, message: String) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            line: 0,
            column: 0,
            key: String::new(),
            message,
        }
    }
}

/// Turns spans into [`ConfigError`]s for one file's text.
pub struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    doc: Option<Spanned<DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    /// A locator for `text`, read from `file`.
    pub fn new(file: &'a Path, text: &'a str) -> Locator<'a> {
        Locator {
            file,
            text,
            doc: DeTable::parse(text).ok(),
        }
    }

    /// An error at `span`.
    pub fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let (line, column) = span
            .as_ref()
            .map_or((1, 1), |s| line_column(self.text, s.start));
        // An empty span marks a place, not a value (toml gives 0..0 for a
        // key missing from the document): no key contains it.
        let key = match (&self.doc, &span) {
            (Some(doc), Some(span)) if !span.is_empty() => key_path(doc.get_ref(), span),
            _ => String::new(),
        };
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            key,
            message: message.into(),
        }
    }

    /// A toml error, with a suggestion for a misspelt key or variant.
    pub fn toml_error(&self, error: &toml::de::Error) -> ConfigError {
        let mut message = error.message().trim_end().to_owned();
        if let Some(hint) = suggestion(&message) {
            message.push_str(&hint);
        }
        self.error(error.span(), message)
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer != &(0..0)
}

/// The TOML path of the innermost key whose key or value contains `span`.
///
/// Children are searched before their parent's own span, and whatever a
/// parent's span covers: the span toml keeps for a `[table]` is its header
/// alone, not the keys under it.
fn key_path(table: &DeTable<'_>, span: &Range<usize>) -> String {
    let mut path = Vec::new();
    find_in_table(table, span, &mut path);
    let mut text = String::new();
    for segment in path.iter().rev() {
        match segment {
            Segment::Key(k) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(k);
            }
            Segment::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

/// One step of a key path, collected innermost first.
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn find_in_table<'a>(
    table: &'a DeTable<'_>,
    span: &Range<usize>,
    path: &mut Vec<Segment<'a>>,
) -> bool {
    for (key, value) in table {
        if contains(&key.span(), span)
            || find_in_value(value.get_ref(), span, path)
            || contains(&value.span(), span)
        {
            path.push(Segment::Key(key.get_ref()));
            return true;
        }
    }
    false
}

fn find_in_value<'a>(
    value: &'a DeValue<'_>,
    span: &Range<usize>,
    path: &mut Vec<Segment<'a>>,
) -> bool {
    match value {
        DeValue::Table(table) => find_in_table(table, span, path),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if find_in_value(item.get_ref(), span, path) || contains(&item.span(), span) {
                    path.push(Segment::Index(i));
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

/// "did you mean" for serde's `unknown field `x`, expected ...` and
/// `unknown variant `x`, expected ...` messages: the closest listed name,
/// if it is close.
fn suggestion(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (got, expected) = rest.split_once('`')?;
    let candidates = expected.split('`').skip(1).step_by(2);
    let (best, score) = candidates
        .map(|c| (c, strsim::jaro_winkler(got, c)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    (score >= 0.8).then(|| format!("; did you mean `{best}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // "bé = " is 6 bytes but 5 characters.
        assert_eq!(line_column(text, 12), (2, 6));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn suggestions_only_for_close_names() {
        assert_eq!(
            suggestion("unknown field `prot`, expected one of `service`, `port`, `target`"),
            Some("; did you mean `port`?".to_owned())
        );
        assert_eq!(
            suggestion("unknown variant `alow`, expected `allow` or `deny`"),
            Some("; did you mean `allow`?".to_owned())
        );
        assert_eq!(
            suggestion("unknown field `zzzzzz`, expected `service` or `port`"),
            None
        );
        assert_eq!(suggestion("invalid type: string"), None);
    }
}
