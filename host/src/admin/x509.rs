//! Just enough DER to read a certificate's validity for `/certs`: the
//! certificate was already accepted by rustls, so anything unexpected
//! here simply yields no validity.

/// A certificate's validity period, as RFC 3339 UTC times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validity {
    /// `notBefore`.
    pub not_before: String,
    /// `notAfter`.
    pub not_after: String,
}

const SEQUENCE: u8 = 0x30;
const VERSION: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The validity of the DER certificate `cert`.
pub fn validity(cert: &[u8]) -> Option<Validity> {
    let (tag, certificate, _) = element(cert)?;
    expect(tag, SEQUENCE)?;
    let (tag, mut tbs, _) = element(certificate)?;
    expect(tag, SEQUENCE)?;
    let (tag, _, rest) = element(tbs)?;
    if tag == VERSION {
        tbs = rest;
    }
    // serialNumber, signature, issuer.
    for _ in 0..3 {
        tbs = element(tbs)?.2;
    }
    let (tag, validity, _) = element(tbs)?;
    expect(tag, SEQUENCE)?;
    let (tag, not_before, rest) = element(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = element(rest)?;
    Some(Validity {
        not_before,
        not_after: time(tag, not_after)?,
    })
}

fn expect(tag: u8, want: u8) -> Option<()> {
    (tag == want).then_some(())
}

/// One DER element: its tag, contents and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        let len = bytes.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
        (len, rest)
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// `YYMMDDHHMMSSZ` (UTCTime, 1950–2049) or `YYYYMMDDHHMMSSZ` as RFC 3339.
fn time(tag: u8, text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let century = if digits.get(..2)? < "50" { "20" } else { "19" };
            format!("{century}{digits}")
        }
        (GENERALIZED_TIME, 14) => digits.to_owned(),
        _ => return None,
    };
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        full.get(0..4)?,
        full.get(4..6)?,
        full.get(6..8)?,
        full.get(8..10)?,
        full.get(10..12)?,
        full.get(12..14)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_generalized_times_read_as_rfc3339() {
        assert_eq!(
            time(UTC_TIME, b"261123192109Z").as_deref(),
            Some("2026-11-23T19:21:09Z")
        );
        assert_eq!(
            time(UTC_TIME, b"991231235959Z").as_deref(),
            Some("1999-12-31T23:59:59Z")
        );
        assert_eq!(
            time(GENERALIZED_TIME, b"20500101000000Z").as_deref(),
            Some("2050-01-01T00:00:00Z")
        );
        assert_eq!(time(UTC_TIME, b"2611231921Z"), None);
        assert_eq!(time(UTC_TIME, b"26112319210xZ"), None);
    }

    /// A certificate skeleton: the validity after a version, serial,
    /// signature algorithm and issuer.
    fn skeleton() -> Vec<u8> {
        let mut tbs = vec![VERSION, 3, 0x02, 0x01, 0x02];
        tbs.extend([0x02, 0x01, 0x07]);
        tbs.extend([SEQUENCE, 0x00]);
        tbs.extend([SEQUENCE, 0x00]);
        tbs.extend([SEQUENCE, 32, UTC_TIME, 13]);
        tbs.extend(b"261123192109Z");
        tbs.extend([GENERALIZED_TIME, 15]);
        tbs.extend(b"20261124192109Z");
        let mut cert = vec![SEQUENCE, tbs.len() as u8 + 2, SEQUENCE, tbs.len() as u8];
        cert.extend(tbs);
        cert
    }

    #[test]
    fn the_validity_of_a_skeleton_is_found() {
        let want = Validity {
            not_before: "2026-11-23T19:21:09Z".into(),
            not_after: "2026-11-24T19:21:09Z".into(),
        };
        assert_eq!(validity(&skeleton()), Some(want));
    }

    #[test]
    fn truncated_der_has_no_validity() {
        let cert = skeleton();
        for n in 0..cert.len() {
            assert_eq!(validity(&cert[..n]), None, "{n} bytes");
        }
        assert_eq!(validity(&[SEQUENCE, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn any_bytes_are_read_without_panic() {
        fn prop(bytes: Vec<u8>, flip: usize) -> bool {
            let _ = validity(&bytes);
            // Corrupting one byte of a real layout must not panic either.
            let mut cert = skeleton();
            let at = flip % cert.len();
            cert[at] ^= bytes.first().copied().unwrap_or(0xff);
            let _ = validity(&cert);
            true
        }
        quickcheck::quickcheck(prop as fn(Vec<u8>, usize) -> bool);
    }
}
