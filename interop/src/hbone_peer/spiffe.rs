//! Reads the SPIFFE id out of a peer's certificate with a DER walker of
//! its own, so that the identity check of the independent peer shares no
//! code with warren's verifier (`warren_proto::identity`).
//!
//! Only the path to the subjectAltName extension is walked:
//! `Certificate → tbsCertificate → [3] extensions → Extension(2.5.29.17) →
//! GeneralNames → [6] uniformResourceIdentifier`. Every read is bounds
//! checked; a malformed certificate is an error, never a panic.

use std::fmt;

/// DER encoding of the subjectAltName OID, 2.5.29.17.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
/// `[3]` constructed, explicit: tbsCertificate's extensions.
const EXTENSIONS: u8 = 0xa3;
/// `[6]` primitive, implicit IA5String: GeneralName's uniformResourceIdentifier.
const URI: u8 = 0x86;

/// Why no SPIFFE id could be read from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpiffeError {
    /// The DER does not have the shape of an X.509 certificate.
    Malformed(&'static str),
    /// There is no URI SAN.
    NoUri,
    /// More than one URI SAN: SPIFFE allows exactly one.
    SeveralUris(usize),
    /// The URI SAN is not `spiffe://TRUST-DOMAIN/PATH`.
    NotSpiffe(String),
}

impl fmt::Display for SpiffeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeError::Malformed(what) => write!(f, "malformed certificate: {what}"),
            SpiffeError::NoUri => write!(f, "certificate has no URI SAN"),
            SpiffeError::SeveralUris(n) => write!(f, "certificate has {n} URI SANs, not one"),
            SpiffeError::NotSpiffe(uri) => write!(f, "URI SAN {uri:?} is not a SPIFFE id"),
        }
    }
}

impl std::error::Error for SpiffeError {}

/// One DER element: its tag, its contents and what follows it.
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), SpiffeError> {
    let (&tag, rest) = input
        .split_first()
        .ok_or(SpiffeError::Malformed("truncated tag"))?;
    let (&first, rest) = rest
        .split_first()
        .ok_or(SpiffeError::Malformed("truncated length"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: the low bits say how many length bytes follow. Four
        // are plenty for any certificate and keep the sum in range.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(SpiffeError::Malformed("unsupported length form"));
        }
        let bytes = rest
            .get(..count)
            .ok_or(SpiffeError::Malformed("truncated length"))?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest.get(count..).unwrap_or_default())
    };
    let value = rest
        .get(..len)
        .ok_or(SpiffeError::Malformed("element longer than its input"))?;
    let after = rest.get(len..).unwrap_or_default();
    Ok((tag, value, after))
}

/// The contents of the element at the start of `input`, which must carry `tag`.
fn expect<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), SpiffeError> {
    let (found, value, rest) = element(input)?;
    if found != tag {
        return Err(SpiffeError::Malformed(what));
    }
    Ok((value, rest))
}

/// Every URI SAN of the DER certificate `cert`, in order.
pub fn uri_sans(cert: &[u8]) -> Result<Vec<String>, SpiffeError> {
    let (certificate, _) = expect(cert, SEQUENCE, "certificate is not a SEQUENCE")?;
    let (mut tbs, _) = expect(certificate, SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    while !tbs.is_empty() {
        let (tag, value, rest) = element(tbs)?;
        tbs = rest;
        if tag == EXTENSIONS {
            let (extensions, _) = expect(value, SEQUENCE, "extensions are not a SEQUENCE")?;
            return uris_in_extensions(extensions);
        }
    }
    Ok(Vec::new())
}

fn uris_in_extensions(mut extensions: &[u8]) -> Result<Vec<String>, SpiffeError> {
    let mut uris = Vec::new();
    while !extensions.is_empty() {
        let (extension, rest) = expect(extensions, SEQUENCE, "extension is not a SEQUENCE")?;
        extensions = rest;
        let (oid, mut fields) = expect(extension, OID, "extension id is not an OID")?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        if let Ok((_, after)) = expect(fields, BOOLEAN, "") {
            fields = after;
        }
        let (octets, _) = expect(fields, OCTET_STRING, "extension value is not OCTET STRING")?;
        let (mut names, _) = expect(octets, SEQUENCE, "GeneralNames is not a SEQUENCE")?;
        while !names.is_empty() {
            let (tag, value, rest) = element(names)?;
            names = rest;
            if tag == URI {
                let uri = std::str::from_utf8(value)
                    .map_err(|_| SpiffeError::Malformed("URI SAN is not text"))?;
                uris.push(uri.to_owned());
            }
        }
    }
    Ok(uris)
}

/// The certificate's one SPIFFE id: exactly one URI SAN, of the form
/// `spiffe://TRUST-DOMAIN/PATH` with a non-empty trust domain and path.
pub fn spiffe_id(cert: &[u8]) -> Result<String, SpiffeError> {
    let mut uris = uri_sans(cert)?;
    let uri = match uris.len() {
        0 => return Err(SpiffeError::NoUri),
        1 => uris.remove(0),
        n => return Err(SpiffeError::SeveralUris(n)),
    };
    let well_formed = uri
        .strip_prefix("spiffe://")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(domain, path)| !domain.is_empty() && !path.is_empty());
    if well_formed {
        Ok(uri)
    } else {
        Err(SpiffeError::NotSpiffe(uri))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::QuickCheck;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn cert_with(sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(text: &str) -> SanType {
        SanType::URI(text.try_into().unwrap())
    }

    #[test]
    fn reads_the_one_spiffe_uri_among_other_names() {
        let der = cert_with(vec![
            SanType::DnsName("peer.example".try_into().unwrap()),
            uri("spiffe://example.org/ns/web/sa/peer"),
        ]);
        assert_eq!(
            spiffe_id(&der).unwrap(),
            "spiffe://example.org/ns/web/sa/peer"
        );
    }

    #[test]
    fn refuses_none_several_and_non_spiffe_uris() {
        let none = cert_with(vec![SanType::DnsName("a.example".try_into().unwrap())]);
        assert_eq!(spiffe_id(&none), Err(SpiffeError::NoUri));
        let two = cert_with(vec![
            uri("spiffe://example.org/ns/a/sa/b"),
            uri("spiffe://example.org/ns/c/sa/d"),
        ]);
        assert_eq!(spiffe_id(&two), Err(SpiffeError::SeveralUris(2)));
        let https = cert_with(vec![uri("https://example.org/ns/a/sa/b")]);
        assert!(matches!(spiffe_id(&https), Err(SpiffeError::NotSpiffe(_))));
        let no_path = cert_with(vec![uri("spiffe://example.org")]);
        assert!(matches!(
            spiffe_id(&no_path),
            Err(SpiffeError::NotSpiffe(_))
        ));
    }

    #[test]
    fn long_form_lengths_are_read() {
        // 0x82 0x01 0x00: a 256-byte OCTET STRING.
        let mut der = vec![OCTET_STRING, 0x82, 0x01, 0x00];
        der.extend(std::iter::repeat_n(7u8, 256));
        der.push(0xff);
        let (tag, value, rest) = element(&der).unwrap();
        assert_eq!((tag, value.len(), rest), (OCTET_STRING, 256, &[0xff][..]));
        assert!(element(&[OCTET_STRING, 0x85, 1, 1, 1, 1, 1]).is_err());
        assert!(element(&[OCTET_STRING, 0x80]).is_err());
    }

    /// Every truncation and every single-byte corruption (to a few
    /// length-changing values) of a real certificate is answered with a
    /// value, never a panic. Exhaustive: a certificate is a few hundred bytes.
    #[test]
    fn truncated_or_corrupted_certificates_never_panic() {
        let der = cert_with(vec![uri("spiffe://example.org/ns/web/sa/peer")]);
        assert!(spiffe_id(&der).is_ok());
        for cut in 0..der.len() {
            assert!(spiffe_id(&der[..cut]).is_err(), "truncated at {cut}");
        }
        for at in 0..der.len() {
            for byte in [0x00, 0x7f, 0x80, 0x81, 0x84, 0xff] {
                let mut bytes = der.clone();
                bytes[at] = byte;
                let _ = spiffe_id(&bytes);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        fn prop(bytes: Vec<u8>) -> bool {
            let _ = spiffe_id(&bytes);
            true
        }
        QuickCheck::new()
            .tests(2000)
            .quickcheck(prop as fn(Vec<u8>) -> bool);
    }
}
