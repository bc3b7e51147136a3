//! Revocation: identities and certificate serials a node or hub refuses.
//!
//! The CLI writes the list as text, one entry a line:
//!
//! ```text
//! # comment lines and blank lines are ignored
//! id spiffe://example.org/ns/shop/sa/cart stolen laptop
//! serial 0a:1b:2c key leaked in CI logs
//! ```
//!
//! - `id <spiffe-id> [reason]` revokes every certificate of an identity.
//! - `serial <hex> [reason]` revokes one certificate by its serial number:
//!   hex digits, `:` separators allowed, any case. Leading zero bytes (the
//!   DER sign byte) are dropped, so `00:ff` and `ff` are the same serial.
//! - The reason is the rest of the line, trimmed: at most
//!   [`MAX_REASON_LEN`] bytes, no control characters. It may be empty.
//!
//! [`RevocationList::to_text`] writes entries in a fixed order (ids, then
//! serials, each sorted), so a list round-trips byte for byte.
//!
//! A node checks a peer after its TLS handshake
//! ([`RevocationList::check`]) and refuses it; a hub also evicts the live
//! connections of an identity revoked while it was connected.

use crate::identity::{SpiffeId, SpiffeIdError};
use core::fmt;
use std::collections::BTreeMap;

/// The longest reason kept, in bytes.
pub const MAX_REASON_LEN: usize = 256;
/// The longest line accepted, in bytes.
pub const MAX_LINE_LEN: usize = 4096;
/// The longest certificate serial, in bytes (RFC 5280 allows 20).
pub const MAX_SERIAL_LEN: usize = 20;
/// The default limit on entries in one list.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// A certificate serial number, without leading zero bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A serial from the big-endian bytes of a certificate's serial field
    /// (as DER carries them, sign byte and all).
    pub fn from_bytes(bytes: &[u8]) -> Result<Serial, EntryError> {
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let trimmed = bytes.get(first..).unwrap_or_default();
        if trimmed.len() > MAX_SERIAL_LEN {
            return Err(EntryError::SerialTooLong);
        }
        Ok(Serial(trimmed.to_vec()))
    }

    /// Parses hex, with optional `:` separators.
    pub fn parse_hex(s: &str) -> Result<Serial, EntryError> {
        let digits: Vec<u8> = s
            .bytes()
            .filter(|&b| b != b':')
            .map(|b| match b {
                b'0'..=b'9' => Ok(b - b'0'),
                b'a'..=b'f' => Ok(b - b'a' + 10),
                b'A'..=b'F' => Ok(b - b'A' + 10),
                _ => Err(EntryError::InvalidSerial),
            })
            .collect::<Result<_, _>>()?;
        if digits.is_empty() {
            return Err(EntryError::InvalidSerial);
        }
        // An odd count has an implied leading zero nibble.
        let pad = digits.len() % 2;
        let bytes: Vec<u8> = core::iter::repeat_n(0, pad)
            .chain(digits)
            .collect::<Vec<u8>>()
            .chunks(2)
            .map(|pair| match *pair {
                [hi, lo] => (hi << 4) | lo,
                _ => 0,
            })
            .collect();
        Serial::from_bytes(&bytes)
    }

    /// The bytes, without leading zeros (empty for serial 0).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    /// Lowercase hex, `0` for serial 0.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("0");
        }
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

/// Why one entry is invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// The first word is neither `id` nor `serial`.
    UnknownKind,
    /// The kind has no value after it.
    MissingValue,
    /// The value of an `id` is not a mesh SPIFFE id.
    InvalidId(SpiffeIdError),
    /// The value of a `serial` is not hex.
    InvalidSerial,
    /// The serial is longer than [`MAX_SERIAL_LEN`] bytes.
    SerialTooLong,
    /// The reason is longer than [`MAX_REASON_LEN`] or has a control
    /// character.
    InvalidReason,
    /// The line is longer than [`MAX_LINE_LEN`].
    LineTooLong,
    /// The identity or serial is listed twice.
    Duplicate,
    /// More entries than the list's limit.
    TooManyEntries,
}

impl fmt::Display for EntryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryError::UnknownKind => f.write_str("entry must start with `id` or `serial`"),
            EntryError::MissingValue => f.write_str("entry has no value"),
            EntryError::InvalidId(e) => write!(f, "invalid identity: {e}"),
            EntryError::InvalidSerial => f.write_str("serial must be hex digits, `:` allowed"),
            EntryError::SerialTooLong => f.write_str("serial longer than 20 bytes"),
            EntryError::InvalidReason => {
                f.write_str("reason longer than 256 bytes or with a control character")
            }
            EntryError::LineTooLong => f.write_str("line longer than 4096 bytes"),
            EntryError::Duplicate => f.write_str("entry listed twice"),
            EntryError::TooManyEntries => f.write_str("too many entries"),
        }
    }
}

impl std::error::Error for EntryError {}

/// Why a list did not parse: the first bad line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The line number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub error: EntryError,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation list line {}: {}", self.line, self.error)
    }
}

impl std::error::Error for ParseError {}

/// Why a peer is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked<'a> {
    /// Its identity is revoked.
    Identity {
        /// The reason recorded.
        reason: &'a str,
    },
    /// Its certificate is revoked.
    Certificate {
        /// The serial.
        serial: &'a Serial,
        /// The reason recorded.
        reason: &'a str,
    },
}

/// A set of revoked identities and certificate serials, with reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationList {
    ids: BTreeMap<SpiffeId, String>,
    serials: BTreeMap<Serial, String>,
    max_entries: usize,
}

impl Default for RevocationList {
    fn default() -> RevocationList {
        RevocationList::new(DEFAULT_MAX_ENTRIES)
    }
}

/// The reason as stored: trimmed (the text format cannot keep outer
/// whitespace), bounded, printable.
fn check_reason(reason: &str) -> Result<&str, EntryError> {
    let reason = reason.trim();
    if reason.len() > MAX_REASON_LEN || reason.chars().any(char::is_control) {
        return Err(EntryError::InvalidReason);
    }
    Ok(reason)
}

impl RevocationList {
    /// An empty list holding at most `max_entries` entries.
    pub fn new(max_entries: usize) -> RevocationList {
        RevocationList {
            ids: BTreeMap::new(),
            serials: BTreeMap::new(),
            max_entries,
        }
    }

    /// Parses the text format with the default entry limit.
    pub fn parse(text: &str) -> Result<RevocationList, ParseError> {
        RevocationList::parse_with_limit(text, DEFAULT_MAX_ENTRIES)
    }

    /// Parses the text format, refusing more than `max_entries` entries.
    pub fn parse_with_limit(text: &str, max_entries: usize) -> Result<RevocationList, ParseError> {
        let mut list = RevocationList::new(max_entries);
        for (i, line) in text.lines().enumerate() {
            list.parse_line(line).map_err(|error| ParseError {
                line: i.saturating_add(1),
                error,
            })?;
        }
        Ok(list)
    }

    fn parse_line(&mut self, line: &str) -> Result<(), EntryError> {
        if line.len() > MAX_LINE_LEN {
            return Err(EntryError::LineTooLong);
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        let (kind, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        let (value, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if value.is_empty() {
            return Err(EntryError::MissingValue);
        }
        let reason = reason.trim();
        let added = match kind {
            "id" => {
                let id = SpiffeId::parse(value).map_err(EntryError::InvalidId)?;
                self.revoke_identity(id, reason)?
            }
            "serial" => self.revoke_serial(Serial::parse_hex(value)?, reason)?,
            _ => return Err(EntryError::UnknownKind),
        };
        if !added {
            return Err(EntryError::Duplicate);
        }
        Ok(())
    }

    fn has_room(&self) -> Result<(), EntryError> {
        if self.len() >= self.max_entries {
            return Err(EntryError::TooManyEntries);
        }
        Ok(())
    }

    /// Revokes an identity. Returns false (changing nothing) if it was
    /// already revoked.
    pub fn revoke_identity(&mut self, id: SpiffeId, reason: &str) -> Result<bool, EntryError> {
        let reason = check_reason(reason)?;
        if self.ids.contains_key(&id) {
            return Ok(false);
        }
        self.has_room()?;
        self.ids.insert(id, reason.to_owned());
        Ok(true)
    }

    /// Revokes a certificate serial. Returns false (changing nothing) if
    /// it was already revoked.
    pub fn revoke_serial(&mut self, serial: Serial, reason: &str) -> Result<bool, EntryError> {
        let reason = check_reason(reason)?;
        if self.serials.contains_key(&serial) {
            return Ok(false);
        }
        self.has_room()?;
        self.serials.insert(serial, reason.to_owned());
        Ok(true)
    }

    /// Lifts an identity's revocation; whether it was revoked.
    pub fn reinstate_identity(&mut self, id: &SpiffeId) -> bool {
        self.ids.remove(id).is_some()
    }

    /// Lifts a serial's revocation; whether it was revoked.
    pub fn reinstate_serial(&mut self, serial: &Serial) -> bool {
        self.serials.remove(serial).is_some()
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.ids.len().saturating_add(self.serials.len())
    }

    /// Whether nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The revoked identities, sorted.
    pub fn identities(&self) -> impl Iterator<Item = &SpiffeId> {
        self.ids.keys()
    }

    /// Whether a peer that verified as `id` with a certificate whose
    /// serial field holds `serial` (big-endian bytes as in DER) may stay.
    /// The identity is checked first: it is the broader revocation.
    pub fn check(&self, id: &SpiffeId, serial: Option<&[u8]>) -> Result<(), Revoked<'_>> {
        if let Some(reason) = self.ids.get(id) {
            return Err(Revoked::Identity { reason });
        }
        // A serial too long to be listed is simply not listed.
        if let Some(Ok(serial)) = serial.map(Serial::from_bytes) {
            if let Some((serial, reason)) = self.serials.get_key_value(&serial) {
                return Err(Revoked::Certificate { serial, reason });
            }
        }
        Ok(())
    }

    /// The text format, in canonical order.
    pub fn to_text(&self) -> String {
        let mut out = String::from("# warren revocation list\n");
        let lines = self
            .ids
            .iter()
            .map(|(id, reason)| ("id", id.to_string(), reason))
            .chain(
                self.serials
                    .iter()
                    .map(|(s, reason)| ("serial", s.to_string(), reason)),
            );
        for (kind, value, reason) in lines {
            out.push_str(kind);
            out.push(' ');
            out.push_str(&value);
            if !reason.is_empty() {
                out.push(' ');
                out.push_str(reason);
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn parses_the_documented_format() {
        let text = "# header\n\n  id spiffe://example.org/ns/shop/sa/cart   stolen laptop  \n\
                    serial 00:0A:1b  key leaked\nserial ff\nid spiffe://example.org/ns/a/sa/b\n";
        let list = RevocationList::parse(text).unwrap();
        assert_eq!(list.len(), 4);
        let cart = id("spiffe://example.org/ns/shop/sa/cart");
        assert_eq!(
            list.check(&cart, None),
            Err(Revoked::Identity {
                reason: "stolen laptop"
            })
        );
        let other = id("spiffe://example.org/ns/shop/sa/web");
        assert_eq!(list.check(&other, None), Ok(()));
        assert_eq!(list.check(&other, Some(&[0x0a, 0x1c])), Ok(()));
        let serial = Serial::parse_hex("a1b").unwrap();
        assert_eq!(
            list.check(&other, Some(&[0x00, 0x0a, 0x1b])),
            Err(Revoked::Certificate {
                serial: &serial,
                reason: "key leaked"
            })
        );
        assert_eq!(
            list.check(&other, Some(&[0xff])),
            Err(Revoked::Certificate {
                serial: &Serial::parse_hex("FF").unwrap(),
                reason: ""
            })
        );
        // Canonical text: ids sorted, then serials, lowercase hex.
        assert_eq!(
            list.to_text(),
            "# warren revocation list\n\
             id spiffe://example.org/ns/a/sa/b\n\
             id spiffe://example.org/ns/shop/sa/cart stolen laptop\n\
             serial 0a1b key leaked\n\
             serial ff\n"
        );
    }

    #[test]
    fn errors_name_line_and_cause() {
        use EntryError::*;
        let long_line = format!("id spiffe://a/ns/b/sa/c {}", "x".repeat(MAX_LINE_LEN));
        let long_reason = format!("serial 01 {}", "r".repeat(MAX_REASON_LEN + 1));
        let cases: Vec<(String, EntryError)> = vec![
            ("ban spiffe://a/ns/b/sa/c".into(), UnknownKind),
            ("id".into(), MissingValue),
            ("serial   ".into(), MissingValue),
            (
                "id spiffe://a/b".into(),
                InvalidId(SpiffeIdError::NotNamespaceServiceAccount),
            ),
            ("serial 0xff".into(), InvalidSerial),
            ("serial :".into(), InvalidSerial),
            (format!("serial {}", "ab".repeat(21)), SerialTooLong),
            ("serial 01 bad\u{7f}reason".into(), InvalidReason),
            (long_reason, InvalidReason),
            (long_line, LineTooLong),
            ("serial 01\nserial 0001".into(), Duplicate),
            (
                "id spiffe://a/ns/b/sa/c\nid spiffe://a/ns/b/sa/c x".into(),
                Duplicate,
            ),
        ];
        for (text, want) in cases {
            let got = RevocationList::parse(&format!("# list\n{text}")).unwrap_err();
            assert_eq!(got.error, want, "{text:?}");
            assert!(got.line >= 2, "{text:?}: line {}", got.line);
        }
        let err = RevocationList::parse_with_limit("serial 1\nserial 2\nserial 3", 2).unwrap_err();
        assert_eq!(
            err,
            ParseError {
                line: 3,
                error: TooManyEntries
            }
        );
    }

    #[test]
    fn serials_ignore_leading_zeros_and_separators() {
        let a = Serial::parse_hex("00:00:12:34").unwrap();
        assert_eq!(a, Serial::parse_hex("1234").unwrap());
        assert_eq!(a, Serial::from_bytes(&[0, 0x12, 0x34]).unwrap());
        assert_eq!(Serial::parse_hex("234").unwrap().as_bytes(), [0x02, 0x34]);
        assert_eq!(Serial::parse_hex("0").unwrap().to_string(), "0");
        assert_eq!(Serial::from_bytes(&[1; 21]), Err(EntryError::SerialTooLong));
        // 21 bytes with a leading sign byte is still 20.
        let mut signed = vec![0];
        signed.extend([0x80; 20]);
        assert!(Serial::from_bytes(&signed).is_ok());
    }

    /// Whatever the API builds, its text parses back to the same list and
    /// the same text; checks agree before and after.
    #[test]
    fn text_round_trips() {
        fn prop(ids: Vec<(u8, u8)>, serials: Vec<(Vec<u8>, u8)>) -> TestResult {
            let reasons = ["", "stolen", "key leaked: rotate now", " a  b "];
            let mut list = RevocationList::new(DEFAULT_MAX_ENTRIES);
            for (n, r) in ids {
                let who = SpiffeId::new("example.org", "ns", &format!("sa-{n}")).unwrap();
                list.revoke_identity(who, reasons[usize::from(r) % 4])
                    .unwrap();
            }
            for (bytes, r) in serials {
                let Ok(s) = Serial::from_bytes(&bytes) else {
                    return TestResult::discard();
                };
                list.revoke_serial(s, reasons[usize::from(r) % 4]).unwrap();
            }
            let text = list.to_text();
            let Ok(back) = RevocationList::parse(&text) else {
                return TestResult::failed();
            };
            let probe = SpiffeId::new("example.org", "ns", "sa-7").unwrap();
            TestResult::from_bool(
                back == list
                    && back.to_text() == text
                    && back.check(&probe, Some(&[7])) == list.check(&probe, Some(&[7])),
            )
        }
        quickcheck(prop as fn(Vec<(u8, u8)>, Vec<(Vec<u8>, u8)>) -> TestResult);
    }

    #[test]
    fn arbitrary_text_never_panics() {
        fn prop(text: String) -> bool {
            match RevocationList::parse_with_limit(&text, 8) {
                Ok(list) => list.len() <= 8,
                Err(e) => e.line >= 1 && e.line <= text.lines().count(),
            }
        }
        quickcheck(prop as fn(String) -> bool);
    }

    #[test]
    fn reinstating_lifts_a_revocation() {
        let mut list = RevocationList::new(4);
        let who = id("spiffe://example.org/ns/a/sa/b");
        assert_eq!(list.revoke_identity(who.clone(), "x"), Ok(true));
        assert_eq!(list.revoke_identity(who.clone(), "y"), Ok(false));
        assert!(list.check(&who, None).is_err());
        assert!(list.reinstate_identity(&who));
        assert_eq!(list.check(&who, None), Ok(()));
        let s = Serial::parse_hex("01").unwrap();
        list.revoke_serial(s.clone(), "").unwrap();
        assert!(list.check(&who, Some(&[1])).is_err());
        assert!(list.reinstate_serial(&s));
        assert!(!list.reinstate_serial(&s));
        assert!(list.is_empty());
        // The default list has room (a zero limit would refuse everything).
        assert_eq!(RevocationList::default().revoke_identity(who, ""), Ok(true));
    }
}
