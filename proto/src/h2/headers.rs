//! HTTP semantics of field blocks (RFC 9113 §8.1–8.5): mapping between
//! pseudo-header fields and [`Request`]/[`Response`], and the rules whose
//! breach makes a message malformed (a stream error PROTOCOL_ERROR).

use bytes::Bytes;

use super::connection::{Request, Response};
use super::Header;

/// A message broke a rule of RFC 9113 §8 (the details do not reach the
/// wire: the answer is always RST_STREAM PROTOCOL_ERROR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Malformed;

/// Fields that are specific to a HTTP/1.1 connection and have no meaning in
/// HTTP/2 (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

/// A decoded request head plus the content-length it announced.
pub(super) struct ParsedRequest {
    pub(super) request: Request,
    pub(super) content_length: Option<u64>,
}

/// A decoded response head plus the content-length it announced.
pub(super) struct ParsedResponse {
    pub(super) response: Response,
    pub(super) content_length: Option<u64>,
}

/// Parses and validates a request's fields.
pub(super) fn parse_request(fields: Vec<Header>) -> Result<ParsedRequest, Malformed> {
    let mut method = None;
    let mut scheme = None;
    let mut authority = None;
    let mut path = None;
    let mut regular = Vec::with_capacity(fields.len());
    let mut content_length = None;
    for field in fields {
        if field.name.first() == Some(&b':') {
            if !regular.is_empty() {
                return Err(Malformed);
            }
            let slot = match &field.name[..] {
                b":method" => &mut method,
                b":scheme" => &mut scheme,
                b":authority" => &mut authority,
                b":path" => &mut path,
                _ => return Err(Malformed),
            };
            if slot.replace(field.value).is_some() {
                return Err(Malformed);
            }
        } else {
            check_regular(&field, &mut content_length)?;
            regular.push(field);
        }
    }
    let method: Bytes = method.ok_or(Malformed)?;
    if method.is_empty() {
        return Err(Malformed);
    }
    if &method[..] == b"CONNECT" {
        // RFC 9113 §8.5: only :method and :authority.
        if scheme.is_some() || path.is_some() || authority.as_ref().is_none_or(Bytes::is_empty) {
            return Err(Malformed);
        }
    } else if scheme.as_ref().is_none_or(Bytes::is_empty)
        || path.as_ref().is_none_or(Bytes::is_empty)
    {
        return Err(Malformed);
    }
    // RFC 9113 §8.3.1: a Host naming another entity than :authority makes
    // the request malformed (two routing answers invite request smuggling).
    if let Some(authority) = &authority {
        let host_differs =
            |f: &Header| &f.name[..] == b"host" && !f.value.eq_ignore_ascii_case(authority);
        if regular.iter().any(host_differs) {
            return Err(Malformed);
        }
    }
    Ok(ParsedRequest {
        request: Request {
            method,
            scheme,
            authority,
            path,
            headers: regular,
        },
        content_length,
    })
}

/// Parses and validates a response's fields (interim or final).
pub(super) fn parse_response(fields: Vec<Header>) -> Result<ParsedResponse, Malformed> {
    let mut status = None;
    let mut regular = Vec::with_capacity(fields.len());
    let mut content_length = None;
    for field in fields {
        if field.name.first() == Some(&b':') {
            if !regular.is_empty() || &field.name[..] != b":status" || status.is_some() {
                return Err(Malformed);
            }
            status = Some(parse_status(&field.value)?);
        } else {
            check_regular(&field, &mut content_length)?;
            regular.push(field);
        }
    }
    Ok(ParsedResponse {
        response: Response {
            status: status.ok_or(Malformed)?,
            headers: regular,
        },
        content_length,
    })
}

/// Validates trailers: regular fields only.
pub(super) fn check_trailers(fields: &[Header]) -> Result<(), Malformed> {
    let mut ignored = None;
    for field in fields {
        if field.name.first() == Some(&b':') {
            return Err(Malformed);
        }
        check_regular(field, &mut ignored)?;
    }
    Ok(())
}

/// The pseudo-header fields of `request`, in the usual order.
pub(super) fn request_pseudo(request: &Request) -> Vec<Header> {
    let mut pseudo = Vec::with_capacity(4);
    pseudo.push(Header::new(
        Bytes::from_static(b":method"),
        request.method.clone(),
    ));
    let optional = [
        (b":scheme" as &'static [u8], &request.scheme),
        (b":authority", &request.authority),
        (b":path", &request.path),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            pseudo.push(Header::new(Bytes::from_static(name), value.clone()));
        }
    }
    pseudo
}

/// The `:status` field of a response.
pub(super) fn status_field(status: u16) -> Header {
    let s = status.min(999);
    let digits = [
        b'0' + (s / 100) as u8,
        b'0' + (s / 10 % 10) as u8,
        b'0' + (s % 10) as u8,
    ];
    Header::new(
        Bytes::from_static(b":status"),
        Bytes::copy_from_slice(&digits),
    )
}

fn parse_status(value: &[u8]) -> Result<u16, Malformed> {
    match value {
        [a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) && *a != b'0' => {
            Ok(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => Err(Malformed),
    }
}

/// RFC 9113 §8.2.1 and §8.2.2 for one regular field; records content-length.
fn check_regular(field: &Header, content_length: &mut Option<u64>) -> Result<(), Malformed> {
    let name = &field.name[..];
    let value = &field.value[..];
    if name.is_empty()
        || name
            .iter()
            .any(|&b| b <= 0x20 || b.is_ascii_uppercase() || b >= 0x7f || b == b':')
    {
        return Err(Malformed);
    }
    if value.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n')
        || value.first().is_some_and(|b| *b == b' ' || *b == b'\t')
        || value.last().is_some_and(|b| *b == b' ' || *b == b'\t')
    {
        return Err(Malformed);
    }
    if CONNECTION_SPECIFIC.contains(&name) || (name == b"te" && value != b"trailers") {
        return Err(Malformed);
    }
    if name == b"content-length" {
        let length = parse_content_length(value)?;
        // Repeated content-length fields must agree (RFC 9110 §8.6).
        if content_length
            .replace(length)
            .is_some_and(|old| old != length)
        {
            return Err(Malformed);
        }
    }
    Ok(())
}

fn parse_content_length(value: &[u8]) -> Result<u64, Malformed> {
    if value.is_empty() {
        return Err(Malformed);
    }
    value.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(Malformed);
        }
        acc.checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(Malformed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &'static str, value: &'static str) -> Header {
        Header::new(name.as_bytes(), value.as_bytes())
    }

    #[test]
    fn connect_needs_authority_and_nothing_else() {
        let ok = parse_request(vec![h(":method", "CONNECT"), h(":authority", "a:1")]).unwrap();
        assert_eq!(ok.request, Request::connect("a:1"));
        assert!(parse_request(vec![h(":method", "CONNECT")]).is_err());
        assert!(parse_request(vec![
            h(":method", "CONNECT"),
            h(":authority", "a:1"),
            h(":path", "/")
        ])
        .is_err());
    }

    #[test]
    fn get_needs_scheme_and_path() {
        let fields = vec![h(":method", "GET"), h(":scheme", "https"), h(":path", "/x")];
        let parsed = parse_request(fields).unwrap();
        assert_eq!(parsed.request.path.as_deref(), Some(&b"/x"[..]));
        assert!(parse_request(vec![h(":method", "GET"), h(":path", "/")]).is_err());
    }

    #[test]
    fn field_rules() {
        let base = || vec![h(":method", "GET"), h(":scheme", "http"), h(":path", "/")];
        let with = |extra: Header| {
            let mut f = base();
            f.push(extra);
            parse_request(f)
        };
        assert!(with(h("x-ok", "v")).is_ok());
        assert!(with(h("X-Upper", "v")).is_err());
        assert!(with(h("connection", "close")).is_err());
        assert!(with(h("te", "gzip")).is_err());
        assert!(with(h("te", "trailers")).is_ok());
        assert!(with(h("x", " lead")).is_err());
        assert!(with(h("x", "a\nb")).is_err());
        assert!(with(h(":path", "/again")).is_err());
        assert_eq!(
            with(h("content-length", "12")).unwrap().content_length,
            Some(12)
        );
        assert!(with(h("content-length", "1x")).is_err());
        let mut dup = base();
        dup.push(h(":method", "GET"));
        assert!(parse_request(dup).is_err());
        assert!(parse_request(vec![
            h(":method", "GET"),
            h(":scheme", "http"),
            h(":path", "/"),
            h(":status", "200")
        ])
        .is_err());
    }

    #[test]
    fn host_must_match_authority_when_both_are_present() {
        let request = |host: &'static str| {
            parse_request(vec![
                h(":method", "GET"),
                h(":scheme", "http"),
                h(":authority", "example.com:80"),
                h(":path", "/"),
                h("host", host),
            ])
        };
        assert!(request("example.com:80").is_ok());
        assert!(request("EXAMPLE.com:80").is_ok());
        assert!(request("example.com.different").is_err());
        let host_only = vec![
            h(":method", "GET"),
            h(":scheme", "http"),
            h(":path", "/"),
            h("host", "example.com"),
        ];
        assert!(parse_request(host_only).is_ok());
    }

    #[test]
    fn responses_and_trailers() {
        let r = parse_response(vec![h(":status", "204"), h("x", "y")]).unwrap();
        assert_eq!(r.response.status, 204);
        assert!(parse_response(vec![h("x", "y")]).is_err());
        assert!(parse_response(vec![h(":status", "20")]).is_err());
        assert!(parse_response(vec![h("x", "y"), h(":status", "200")]).is_err());
        assert!(check_trailers(&[h("grpc-status", "0")]).is_ok());
        assert!(check_trailers(&[h(":status", "200")]).is_err());
        assert_eq!(status_field(431).value, Bytes::from_static(b"431"));
    }
}
