//! A strict reader of the Prometheus / OpenMetrics text exposition the
//! admin endpoint serves: every line must be a `# HELP`, `# TYPE`, `# UNIT`
//! comment, a sample of a family declared before it, or the final `# EOF`.
//! Written here, not taken from warren, so it checks warren's output
//! against the format rather than against itself.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (a counter's carries `_total`).
    pub name: String,
    /// Label names to values, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

fn is_name(s: &str, colon: bool) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

/// Reads `{a="x",b="y"}` at the start of `s`; returns the labels and the rest.
fn labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut out = BTreeMap::new();
    let Some(mut rest) = s.strip_prefix('{') else {
        return Ok((out, s));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((out, after));
        }
        let (name, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !is_name(name, false) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        if out.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("bad value {s:?}")),
    }
}

/// Parses `text`; any line outside the format is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut series = BTreeSet::new();
    let mut samples = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    let mut saw_eof = false;
    while let Some((n, line)) = lines.next() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line == "# EOF" {
            if lines.peek().is_some() {
                return Err(at("# EOF is not the last line".into()));
            }
            saw_eof = true;
        } else if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            if !is_name(name, true) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            match (kind, words.next()) {
                ("HELP", _) | ("UNIT", _) => {}
                ("TYPE", Some(t)) => {
                    let known = [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "stateset",
                    ];
                    if !known.contains(&t) {
                        return Err(at(format!("unknown type {t}")));
                    }
                    if families.insert(name.to_owned(), t.to_owned()).is_some() {
                        return Err(at("family declared twice".into()));
                    }
                }
                _ => return Err(at("not HELP, TYPE or UNIT".into())),
            }
        } else {
            let end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..end];
            let (labels, rest) = labels(&line[end..]).map_err(at)?;
            let mut fields = rest.trim_start_matches(' ').split(' ');
            let value = value(fields.next().unwrap_or("")).map_err(at)?;
            if fields.next().is_some_and(|t| t.parse::<f64>().is_err()) || fields.next().is_some() {
                return Err(at("junk after the value".into()));
            }
            let family = families.iter().find(|(f, t)| match t.as_str() {
                "counter" => name == format!("{f}_total") || name == format!("{f}_created"),
                _ => name == f.as_str(),
            });
            if family.is_none() {
                return Err(at(format!("sample {name} of no declared family")));
            }
            if !series.insert((name.to_owned(), labels.clone())) {
                return Err(at("the same series twice".into()));
            }
            samples.push(Sample {
                name: name.to_owned(),
                labels,
                value,
            });
        }
    }
    if !saw_eof {
        return Err("no # EOF line".into());
    }
    Ok(samples)
}

/// The sum of `name`'s samples whose labels include every pair of `with`.
pub fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}
