//! HBONE: the CONNECT request and response contract between mesh nodes.
//!
//! Each flow is one HTTP/2 stream: `CONNECT` with `:authority` naming the
//! destination (`ip:port`, `[v6]:port` or `service.namespace:port`). The
//! receiving node answers exactly one of:
//!
//! | status | meaning | when |
//! |---|---|---|
//! | 200 | established | policy allowed the flow and the local target accepted the connection |
//! | 400 | bad request | not CONNECT, or an `:authority` that does not parse |
//! | 401 | denied | authorization denied the source identity (the rule is logged) |
//! | 503 | unavailable | the destination is not exported here, or its target refused / timed out |
//!
//! After 200, DATA carries the TCP bytes both ways, END_STREAM is a TCP
//! half-close and RST_STREAM a reset. Error answers carry END_STREAM and no
//! body, as ztunnel sends them.

use bytes::Bytes;

use crate::h2::{Header, Request, Response};
use crate::policy::{Authority, AuthorityError, Decision, Reason};

/// The answer a receiving node gives to a CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectStatus {
    /// 200: the tunnel is open.
    Established,
    /// 400: the request was malformed.
    BadRequest,
    /// 401: authorization denied the flow.
    Denied,
    /// 503: nothing to connect to, or the target failed.
    Unavailable,
}

impl ConnectStatus {
    /// The HTTP status code on the wire.
    pub const fn code(self) -> u16 {
        match self {
            ConnectStatus::Established => 200,
            ConnectStatus::BadRequest => 400,
            ConnectStatus::Denied => 401,
            ConnectStatus::Unavailable => 503,
        }
    }

    /// Reads a response status. Any 2xx is success (RFC 9113 §8.5); other
    /// codes outside the contract are reported as they are.
    pub const fn from_code(code: u16) -> Result<ConnectStatus, u16> {
        match code {
            200..=299 => Ok(ConnectStatus::Established),
            400 => Ok(ConnectStatus::BadRequest),
            401 => Ok(ConnectStatus::Denied),
            503 => Ok(ConnectStatus::Unavailable),
            other => Err(other),
        }
    }

    /// The status that answers a policy decision that did not allow a flow:
    /// an unexported destination is unavailable, everything else denied.
    pub const fn for_refusal(decision: &Decision) -> ConnectStatus {
        match decision.reason {
            Reason::NotExported => ConnectStatus::Unavailable,
            _ => ConnectStatus::Denied,
        }
    }

    /// The response head to send.
    pub fn response(self) -> Response {
        Response {
            status: self.code(),
            headers: Vec::new(),
        }
    }
}

/// Why an inbound request is not a valid HBONE CONNECT (answered 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadConnect {
    /// The method is not CONNECT.
    NotConnect,
    /// CONNECT without `:authority` (the engine normally rejects this first).
    MissingAuthority,
    /// The `:authority` is not valid UTF-8.
    AuthorityNotUtf8,
    /// The `:authority` does not parse.
    Authority(AuthorityError),
}

/// Builds the CONNECT request for a flow to `authority`, with `forwarded`
/// naming the original client address as ztunnel does (informational only:
/// receivers never authorize on it).
pub fn connect_request(authority: &Authority<'_>, forwarded_for: Option<&str>) -> Request {
    let mut request = Request::connect(Bytes::from(authority.to_string()));
    if let Some(client) = forwarded_for {
        request.headers.push(Header::new(
            Bytes::from_static(b"forwarded"),
            Bytes::from(format!("for=\"{client}\"")),
        ));
    }
    request
}

/// Checks an inbound request and parses its destination.
pub fn parse_connect(request: &Request) -> Result<Authority<'_>, BadConnect> {
    if request.method.as_ref() != b"CONNECT" {
        return Err(BadConnect::NotConnect);
    }
    let raw = request
        .authority
        .as_ref()
        .ok_or(BadConnect::MissingAuthority)?;
    let text = core::str::from_utf8(raw).map_err(|_| BadConnect::AuthorityNotUtf8)?;
    Authority::parse(text).map_err(BadConnect::Authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RuleName;

    #[test]
    fn statuses_round_trip_through_codes() {
        for status in [
            ConnectStatus::Established,
            ConnectStatus::BadRequest,
            ConnectStatus::Denied,
            ConnectStatus::Unavailable,
        ] {
            assert_eq!(ConnectStatus::from_code(status.code()), Ok(status));
            assert_eq!(status.response().status, status.code());
        }
        assert_eq!(
            ConnectStatus::from_code(204),
            Ok(ConnectStatus::Established)
        );
        assert_eq!(ConnectStatus::from_code(502), Err(502));
    }

    #[test]
    fn refusals_map_to_401_or_503() {
        let rule = RuleName::new("deny-all").unwrap();
        let denied = Decision::new(Reason::DeniedByRule, Some(rule));
        assert_eq!(ConnectStatus::for_refusal(&denied), ConnectStatus::Denied);
        let missing = Decision::new(Reason::NotExported, None);
        assert_eq!(
            ConnectStatus::for_refusal(&missing),
            ConnectStatus::Unavailable
        );
    }

    #[test]
    fn request_round_trips_for_every_authority_form() {
        for text in ["10.0.0.1:8080", "[fd00::1]:443", "echo.shop:80"] {
            let authority = Authority::parse(text).unwrap();
            let request = connect_request(&authority, Some("127.0.0.1:5555"));
            assert_eq!(request.authority.as_deref(), Some(text.as_bytes()));
            assert_eq!(request.scheme, None);
            assert_eq!(request.path, None);
            assert_eq!(parse_connect(&request), Ok(authority));
            assert_eq!(&request.headers[0].value[..], b"for=\"127.0.0.1:5555\"");
        }
    }

    #[test]
    fn rejects_what_is_not_hbone() {
        let mut get = Request::connect("10.0.0.1:80");
        get.method = Bytes::from_static(b"GET");
        assert_eq!(parse_connect(&get), Err(BadConnect::NotConnect));
        let mut bare = Request::connect("x");
        bare.authority = None;
        assert_eq!(parse_connect(&bare), Err(BadConnect::MissingAuthority));
        let binary = Request::connect(Bytes::from_static(b"\xff:80"));
        assert_eq!(parse_connect(&binary), Err(BadConnect::AuthorityNotUtf8));
        let no_port = Request::connect("10.0.0.1");
        assert!(matches!(
            parse_connect(&no_port),
            Err(BadConnect::Authority(AuthorityError::MissingPort))
        ));
    }
}
