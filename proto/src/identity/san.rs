//! Reads the URI subject alternative names out of a DER certificate.
//!
//! webpki verifies chains but exposes no URI names, and a full X.509 parser
//! would be a large dependency for one field. This is the smallest DER walk
//! that reaches `tbsCertificate.extensions[subjectAltName]`: it reads only
//! definite-length TLVs, checks every length against the bytes it has, and
//! gives up on anything it does not expect, so arbitrary bytes from a peer
//! can make it fail but never panic.

const SEQUENCE: u8 = 0x30;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const OBJECT_ID: u8 = 0x06;
/// `[3] EXPLICIT Extensions` inside `TBSCertificate`.
const EXTENSIONS: u8 = 0xa3;
/// `uniformResourceIdentifier [6] IMPLICIT IA5String` inside `GeneralName`.
const GENERAL_NAME_URI: u8 = 0x86;
/// id-ce-subjectAltName, 2.5.29.17, as DER OID contents.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// `INTEGER`: the serial number.
const INTEGER: u8 = 0x02;
/// `[0] EXPLICIT Version` inside `TBSCertificate`.
const VERSION: u8 = 0xa0;

/// The certificate's bytes are not the DER structure a certificate has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MalformedCertificate;

/// One DER tag-length-value, with the value borrowed from the input.
struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
}

/// Takes the next TLV off the front of `input`.
fn next_tlv<'a>(input: &mut &'a [u8]) -> Result<Tlv<'a>, MalformedCertificate> {
    let (&tag, rest) = input.split_first().ok_or(MalformedCertificate)?;
    // High tag numbers never occur on the path this walk takes.
    if tag & 0x1f == 0x1f {
        return Err(MalformedCertificate);
    }
    let (&first, rest) = rest.split_first().ok_or(MalformedCertificate)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form; 0x80 (indefinite) is not DER, and more than 4 length
        // bytes describes more than any certificate TLS can carry.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(MalformedCertificate);
        }
        let len_bytes = rest.get(..count).ok_or(MalformedCertificate)?;
        let len = len_bytes
            .iter()
            .fold(0u64, |len, &b| (len << 8) | u64::from(b));
        let len = usize::try_from(len).map_err(|_| MalformedCertificate)?;
        (len, rest.get(count..).ok_or(MalformedCertificate)?)
    };
    let value = rest.get(..len).ok_or(MalformedCertificate)?;
    *input = rest.get(len..).ok_or(MalformedCertificate)?;
    Ok(Tlv { tag, value })
}

/// Takes the next TLV, which must carry `tag`, and returns its value.
fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Result<&'a [u8], MalformedCertificate> {
    let tlv = next_tlv(input)?;
    if tlv.tag == tag {
        Ok(tlv.value)
    } else {
        Err(MalformedCertificate)
    }
}

/// The serial number field of `cert`: the big-endian bytes of its
/// `INTEGER`, sign byte and all (what a revocation list compares).
pub(crate) fn serial_number(cert: &[u8]) -> Result<&[u8], MalformedCertificate> {
    let (serial, _) = serial_and_rest(cert)?;
    if serial.is_empty() {
        return Err(MalformedCertificate);
    }
    Ok(serial)
}

/// The serial number's `INTEGER` value (possibly empty) and the rest of
/// the `TBSCertificate` after it (signature algorithm, issuer, validity,
/// ...): the walk into a certificate that every field reader starts with.
fn serial_and_rest(cert: &[u8]) -> Result<(&[u8], &[u8]), MalformedCertificate> {
    let mut input = cert;
    let mut certificate = expect(&mut input, SEQUENCE)?;
    let mut tbs = expect(&mut certificate, SEQUENCE)?;
    let mut field = next_tlv(&mut tbs)?;
    if field.tag == VERSION {
        field = next_tlv(&mut tbs)?;
    }
    if field.tag != INTEGER {
        return Err(MalformedCertificate);
    }
    Ok((field.value, tbs))
}

/// `UTCTime` and `GeneralizedTime`: a validity bound.
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// The validity of `cert`: (notBefore, notAfter) in unix seconds. Only the
/// `Z` forms DER allows are read (`YYMMDDHHMMSSZ`, `YYYYMMDDHHMMSSZ`).
pub(crate) fn validity(cert: &[u8]) -> Result<(u64, u64), MalformedCertificate> {
    let (_, mut tbs) = serial_and_rest(cert)?;
    expect(&mut tbs, SEQUENCE)?; // signature algorithm
    expect(&mut tbs, SEQUENCE)?; // issuer
    let mut validity = expect(&mut tbs, SEQUENCE)?;
    let not_before = time(next_tlv(&mut validity)?)?;
    let not_after = time(next_tlv(&mut validity)?)?;
    Ok((not_before, not_after))
}

/// A DER time as unix seconds (RFC 5280 §4.1.2.5: UTCTime years 50–99
/// are 19xx; times before 1970 are refused).
fn time(tlv: Tlv<'_>) -> Result<u64, MalformedCertificate> {
    let (year_digits, text) = match tlv.tag {
        UTC_TIME => (2, tlv.value),
        GENERALIZED_TIME => (4, tlv.value),
        _ => return Err(MalformedCertificate),
    };
    if text.len() != year_digits + 11 || text.last() != Some(&b'Z') {
        return Err(MalformedCertificate);
    }
    let digits = text.get(..text.len() - 1).ok_or(MalformedCertificate)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(MalformedCertificate);
    }
    let number = |from: usize, len: usize| -> u64 {
        digits
            .iter()
            .skip(from)
            .take(len)
            .fold(0, |n, d| n * 10 + u64::from(d - b'0'))
    };
    let mut year = number(0, year_digits);
    if year_digits == 2 {
        year += if year >= 50 { 1900 } else { 2000 };
    }
    let at = year_digits;
    let (month, day) = (number(at, 2), number(at + 2, 2));
    let (hour, minute, second) = (number(at + 4, 2), number(at + 6, 2), number(at + 8, 2));
    if year < 1970 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(MalformedCertificate);
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(MalformedCertificate);
    }
    Ok(days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian;
/// `year` ≥ 1970, `month` 1–12).
fn days_since_epoch(year: u64, month: u64, day: u64) -> u64 {
    // Counting from March makes February the last month of a year.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let year_of_era = y % 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719468: days from 0000-03-01 to 1970-01-01.
    (era * 146_097 + day_of_era).saturating_sub(719_468)
}

/// Every URI SAN of `cert`, in certificate order, across all
/// subjectAltName extensions (a certificate with two is malformed, but
/// counting both means it cannot hide a second identity).
pub(crate) fn uri_sans(cert: &[u8]) -> Result<Vec<&[u8]>, MalformedCertificate> {
    let mut input = cert;
    let mut certificate = expect(&mut input, SEQUENCE)?;
    if !input.is_empty() {
        return Err(MalformedCertificate);
    }
    let mut tbs = expect(&mut certificate, SEQUENCE)?;
    let mut uris = Vec::new();
    while !tbs.is_empty() {
        let field = next_tlv(&mut tbs)?;
        if field.tag != EXTENSIONS {
            continue;
        }
        let mut explicit = field.value;
        let mut extensions = expect(&mut explicit, SEQUENCE)?;
        while !extensions.is_empty() {
            let mut extension = expect(&mut extensions, SEQUENCE)?;
            let oid = expect(&mut extension, OBJECT_ID)?;
            let mut value = next_tlv(&mut extension)?;
            if value.tag == BOOLEAN {
                value = next_tlv(&mut extension)?;
            }
            if value.tag != OCTET_STRING {
                return Err(MalformedCertificate);
            }
            if oid != SUBJECT_ALT_NAME {
                continue;
            }
            let mut octets = value.value;
            let mut names = expect(&mut octets, SEQUENCE)?;
            while !names.is_empty() {
                let name = next_tlv(&mut names)?;
                if name.tag == GENERAL_NAME_URI {
                    uris.push(name.value);
                }
            }
        }
    }
    Ok(uris)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{quickcheck, TestResult};

    #[test]
    fn validity_of_generated_certificates_is_read_exactly() {
        use crate::identity::{ca_params, Validity};
        for (not_before, not_after) in [
            (0, 1),
            (1_700_000_000, 1_700_086_400),
            (951_782_400, 2_524_608_000), // 2000-02-29, 2050-01-01 (GeneralizedTime)
            (4_102_444_799, 4_102_444_800),
        ] {
            let window = Validity {
                not_before,
                not_after,
            };
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let serial = rcgen::SerialNumber::from(1u64);
            let params = ca_params("t", None, serial, window).unwrap();
            let cert = params.self_signed(&key).unwrap();
            assert_eq!(validity(cert.der()), Ok((not_before, not_after)));
        }
    }

    #[test]
    fn validity_never_panics() {
        fn prop(bytes: Vec<u8>) -> bool {
            let _ = validity(&bytes);
            true
        }
        quickcheck::quickcheck(prop as fn(Vec<u8>) -> bool);
    }

    #[test]
    fn serial_numbers_are_read_with_or_without_a_version() {
        let serial = tlv(INTEGER, &[0x00, 0x9c, 0x01]);
        let with_version = [tlv(VERSION, &tlv(INTEGER, &[2])), serial.clone()].concat();
        for tbs in [with_version, serial] {
            let cert = tlv(SEQUENCE, &tlv(SEQUENCE, &tbs));
            assert_eq!(serial_number(&cert), Ok(&[0x00, 0x9c, 0x01][..]));
        }
        let no_integer = tlv(SEQUENCE, &tlv(SEQUENCE, &tlv(OCTET_STRING, &[1])));
        assert_eq!(serial_number(&no_integer), Err(MalformedCertificate));
        assert_eq!(serial_number(&[]), Err(MalformedCertificate));
    }

    #[test]
    fn serial_number_never_panics() {
        fn prop(bytes: Vec<u8>) -> bool {
            serial_number(&bytes).map_or(true, |s| !s.is_empty() && s.len() <= bytes.len())
        }
        quickcheck(prop as fn(Vec<u8>) -> bool);
    }

    /// DER TLV with a definite length (short or long form).
    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = value.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = (len as u32).to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (4 - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(value);
        out
    }

    fn san_extension(names: &[(u8, &[u8])], critical: bool) -> Vec<u8> {
        let general_names: Vec<u8> = names.iter().flat_map(|(t, v)| tlv(*t, v)).collect();
        let mut ext = tlv(OBJECT_ID, SUBJECT_ALT_NAME);
        if critical {
            ext.extend(tlv(BOOLEAN, &[0xff]));
        }
        ext.extend(tlv(OCTET_STRING, &tlv(SEQUENCE, &general_names)));
        tlv(SEQUENCE, &ext)
    }

    /// A certificate skeleton: the fields before extensions are opaque
    /// TLVs, which is all the walk looks at.
    fn cert(extensions: &[Vec<u8>]) -> Vec<u8> {
        let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
        tbs.extend(tlv(0x02, &[1]));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, &[]));
        let exts: Vec<u8> = extensions.concat();
        tbs.extend(tlv(EXTENSIONS, &tlv(SEQUENCE, &exts)));
        let mut body = tlv(SEQUENCE, &tbs);
        body.extend(tlv(SEQUENCE, &[]));
        body.extend(tlv(0x03, &[0]));
        tlv(SEQUENCE, &body)
    }

    #[test]
    fn finds_uri_names_and_skips_others() {
        let other_ext = {
            let mut e = tlv(OBJECT_ID, &[0x55, 0x1d, 0x0f]);
            e.extend(tlv(OCTET_STRING, &[0x03, 0x02, 0x05, 0xa0]));
            tlv(SEQUENCE, &e)
        };
        let c = cert(&[
            other_ext,
            san_extension(
                &[(0x82, b"dns.example"), (0x86, b"spiffe://a/ns/b/sa/c")],
                true,
            ),
        ]);
        assert_eq!(uri_sans(&c), Ok(vec![&b"spiffe://a/ns/b/sa/c"[..]]));
    }

    #[test]
    fn counts_uris_across_duplicate_extensions() {
        let c = cert(&[
            san_extension(&[(0x86, b"u1")], false),
            san_extension(&[(0x86, b"u2"), (0x86, b"u3")], false),
        ]);
        assert_eq!(uri_sans(&c).map(|v| v.len()), Ok(3));
    }

    #[test]
    fn long_form_lengths() {
        let long = vec![b'x'; 300];
        let c = cert(&[san_extension(&[(0x86, &long)], false)]);
        assert_eq!(uri_sans(&c), Ok(vec![&long[..]]));
    }

    #[test]
    fn no_extensions_means_no_uris() {
        let mut tbs = tlv(0x02, &[1]);
        tbs.extend(tlv(SEQUENCE, &[]));
        let c = tlv(SEQUENCE, &tlv(SEQUENCE, &tbs));
        assert_eq!(uri_sans(&c), Ok(vec![]));
    }

    #[test]
    fn rejects_malformations() {
        let good = cert(&[san_extension(&[(0x86, b"u")], false)]);
        let mut trailing = good.clone();
        trailing.push(0);
        let bad = [
            vec![],
            vec![SEQUENCE],
            vec![SEQUENCE, 0x80],                   // indefinite length
            vec![SEQUENCE, 0x85, 1, 1, 1, 1, 1],    // 5 length bytes
            vec![SEQUENCE, 0x84, 0xff, 0xff, 0xff], // length bytes cut short
            vec![SEQUENCE, 0x05, SEQUENCE, 0x00],   // value shorter than length
            vec![0x1f, 0x00],                       // high tag number
            trailing,
            good[..good.len() - 1].to_vec(),
        ];
        for b in bad {
            assert_eq!(uri_sans(&b), Err(MalformedCertificate), "{b:02x?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        fn prop(bytes: Vec<u8>) -> bool {
            let _ = uri_sans(&bytes);
            true
        }
        quickcheck(prop as fn(Vec<u8>) -> bool);
    }

    #[test]
    fn mutated_certificates_never_panic() {
        fn prop(pos: usize, byte: u8, cut: usize) -> bool {
            let mut m = cert(&[san_extension(
                &[(0x86, b"spiffe://td/ns/a/sa/b"), (0x82, b"x")],
                false,
            )]);
            let i = pos % m.len();
            m[i] = byte;
            m.truncate(m.len() - cut % 4);
            let _ = uri_sans(&m);
            true
        }
        quickcheck(prop as fn(usize, u8, usize) -> bool);
    }

    #[test]
    fn returns_exactly_the_uri_names_in_order() {
        fn prop(names: Vec<(u8, Vec<u8>)>, critical: bool) -> TestResult {
            // Primitive context tags [0]..[8], as GeneralName uses.
            let names: Vec<(u8, &[u8])> = names
                .iter()
                .map(|(t, v)| (0x80 | (t % 9), v.as_slice()))
                .collect();
            let c = cert(&[san_extension(&names, critical)]);
            let want: Vec<&[u8]> = names
                .iter()
                .filter(|(t, _)| *t == GENERAL_NAME_URI)
                .map(|(_, v)| *v)
                .collect();
            TestResult::from_bool(uri_sans(&c) == Ok(want))
        }
        quickcheck(prop as fn(Vec<(u8, Vec<u8>)>, bool) -> TestResult);
    }
}
