//! An HTTP/1.1 `CONNECT` proxy front end (RFC 9110 §9.3.6), parsed with
//! `httparse`.
//!
//! Accepted: `CONNECT host:port HTTP/1.x`, with or without header fields,
//! the target in authority form (`example.com:443`, `10.0.0.1:80`,
//! `[::1]:443`). Every header field is ignored, `Host` and
//! `Proxy-Authorization` included: who may go where is decided from the
//! agent's own identity and egress rules, never from client headers.
//!
//! Line endings: a bare LF is accepted wherever CRLF is expected (RFC 9112
//! §2.2 allows a recipient to do so, and httparse does). That is safe here
//! because the head is consumed by the proxy and never forwarded, so no
//! second parser can disagree about where it ends. CR and LF bytes before the
//! request line are skipped without being buffered (RFC 9112 §2.2 asks to
//! ignore at least one empty line there; a stray CR is tolerated too).
//!
//! Replies: `200 Connection established`, `403` naming the denying rule,
//! `502` when the far side fails or refuses, `504` on timeout, `400` for a
//! malformed head or target, `405` (with `Allow: CONNECT`) for any other
//! method, `408` when the host's deadline for the head passes, `431` when the head exceeds [`HttpConnectConfig::max_head_bytes`]
//! or has more than [`HttpConnectConfig::max_headers`] fields. Every error
//! reply has a one-line `text/plain` body saying what was wrong, and
//! `Connection: close`.

use super::{Outcome, Phase, Progress, Refusal, Step, Target, TargetError, UsageError};
use core::fmt;

/// Default limit on the request head (request line + header fields + the
/// empty line), as most proxies use.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 8 * 1024;
/// Default limit on the number of header fields.
pub const DEFAULT_MAX_HEADERS: usize = 64;

/// The success reply; it has no body and the tunnel starts right after it.
const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

/// Limits of the HTTP CONNECT front end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpConnectConfig {
    /// Largest request head accepted, in bytes; a longer one gets 431.
    pub max_head_bytes: usize,
    /// Most header fields accepted; more get 431.
    pub max_headers: usize,
}

impl Default for HttpConnectConfig {
    fn default() -> HttpConnectConfig {
        HttpConnectConfig {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// Which part of the head is not valid HTTP/1.1 syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadSyntax {
    /// The method or request target has a forbidden byte.
    RequestLine,
    /// The version is not `HTTP/1.0` or `HTTP/1.1`.
    Version,
    /// A header field name has a forbidden byte.
    HeaderName,
    /// A header field value has a forbidden byte.
    HeaderValue,
    /// A line ends in something other than CRLF or LF.
    LineEnding,
}

impl fmt::Display for HeadSyntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeadSyntax::RequestLine => "malformed request line",
            HeadSyntax::Version => "unsupported HTTP version",
            HeadSyntax::HeaderName => "malformed header name",
            HeadSyntax::HeaderValue => "malformed header value",
            HeadSyntax::LineEnding => "malformed line ending",
        })
    }
}

/// What was wrong with a client's request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpConnectError {
    /// Not HTTP/1.x syntax. Answered 400.
    Syntax(HeadSyntax),
    /// A method other than `CONNECT` (methods are case-sensitive). Answered
    /// 405 with `Allow: CONNECT`.
    MethodNotAllowed(String),
    /// The target is not in authority form (`/path`, `http://...`, `*`).
    /// Answered 400.
    NotAuthorityForm,
    /// The authority is not a valid `host:port`. Answered 400.
    InvalidTarget(TargetError),
    /// The head did not end within the limit. Answered 431.
    HeadTooLarge {
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// More header fields than the limit. Answered 431.
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
}

impl fmt::Display for HttpConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpConnectError::Syntax(s) => write!(f, "{s}"),
            HttpConnectError::MethodNotAllowed(_) => {
                f.write_str("method not allowed: this proxy only serves CONNECT")
            }
            HttpConnectError::NotAuthorityForm => {
                f.write_str("CONNECT target must be host:port (authority form)")
            }
            HttpConnectError::InvalidTarget(e) => write!(f, "invalid CONNECT target: {e}"),
            HttpConnectError::HeadTooLarge { limit } => {
                write!(f, "request head larger than {limit} bytes")
            }
            HttpConnectError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} header fields")
            }
        }
    }
}

impl std::error::Error for HttpConnectError {}

impl HttpConnectError {
    /// The exact response that answers this error before the close.
    fn answer(&self) -> Vec<u8> {
        // The method is deliberately not echoed: it is client-controlled.
        let body = format!("{self}\n");
        match self {
            HttpConnectError::Syntax(_)
            | HttpConnectError::NotAuthorityForm
            | HttpConnectError::InvalidTarget(_) => response(400, "Bad Request", "", &body),
            HttpConnectError::MethodNotAllowed(_) => {
                response(405, "Method Not Allowed", "Allow: CONNECT\r\n", &body)
            }
            HttpConnectError::HeadTooLarge { .. } | HttpConnectError::TooManyHeaders { .. } => {
                response(431, "Request Header Fields Too Large", "", &body)
            }
        }
    }
}

/// A complete error response with a text body, closing the connection.
fn response(status: u16, reason: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\
         {extra_headers}\r\n\
         {body}",
        body.len()
    )
    .into_bytes()
}

/// One HTTP CONNECT client connection, from request head to reply.
#[derive(Clone, Debug)]
pub struct HttpConnect {
    config: HttpConnectConfig,
    phase: Phase,
    /// The head so far, never longer than `config.max_head_bytes`.
    head: Vec<u8>,
}

impl HttpConnect {
    /// A connection waiting for its request head.
    pub fn new(config: HttpConnectConfig) -> HttpConnect {
        HttpConnect {
            config,
            phase: Phase::Reading,
            head: Vec::new(),
        }
    }

    /// Bytes of an incomplete head held; at most
    /// [`HttpConnectConfig::max_head_bytes`].
    pub fn buffered(&self) -> usize {
        self.head.len()
    }

    /// Feeds bytes read from the client. `send` stays empty unless the
    /// client is rejected.
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<Step<'a, HttpConnectError>, UsageError> {
        self.phase.check_feed()?;
        let progress = self.advance(input);
        let send = match &progress {
            Progress::Rejected(e) => e.answer(),
            Progress::NeedMore | Progress::Ready { .. } => Vec::new(),
        };
        if !matches!(progress, Progress::NeedMore) {
            self.head = Vec::new();
        }
        self.phase = Phase::after(&progress);
        Ok(Step { send, progress })
    }

    fn advance<'a>(&mut self, input: &'a [u8]) -> Progress<'a, HttpConnectError> {
        let mut input = input;
        if self.head.is_empty() {
            // Leading CR/LF are skipped without buffering them.
            let skip = input
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            input = input.get(skip..).unwrap_or_default();
            if input.is_empty() {
                return Progress::NeedMore;
            }
        }
        let before = self.head.len();
        let room = self.config.max_head_bytes.saturating_sub(before);
        let (taken, overflow) = input.split_at(input.len().min(room));
        self.head.extend_from_slice(taken);

        // httparse re-parses from the start, so it runs only when the head
        // may be complete (an empty line arrived) and once on the first
        // bytes, to turn away non-HTTP clients (TLS, SOCKS) at once. That
        // keeps the work linear however the head is split into reads.
        let scan_from = before.saturating_sub(2);
        let ended = has_empty_line(self.head.get(scan_from..).unwrap_or_default());
        if ended || before == 0 {
            match parse_head(&self.head, self.config.max_headers) {
                Ok(Some((len, target))) => {
                    let leftover = input.get(len.saturating_sub(before)..).unwrap_or_default();
                    return Progress::Ready { target, leftover };
                }
                Ok(None) => {}
                Err(e) => return Progress::Rejected(e),
            }
        }
        if !overflow.is_empty() || self.head.len() >= self.config.max_head_bytes {
            return Progress::Rejected(HttpConnectError::HeadTooLarge {
                limit: self.config.max_head_bytes,
            });
        }
        Progress::NeedMore
    }

    /// The head did not complete before the host's deadline: the `408`
    /// to write before closing. The client is rejected from then on.
    pub fn expire(&mut self) -> Result<Vec<u8>, UsageError> {
        self.phase.check_feed()?;
        self.phase = Phase::Rejected;
        self.head = Vec::new();
        Ok(response(
            408,
            "Request Timeout",
            "",
            "request head not complete in time\n",
        ))
    }

    /// The response for `outcome`.
    pub fn reply(&mut self, outcome: &Outcome) -> Result<Vec<u8>, UsageError> {
        self.phase.check_reply()?;
        self.phase = Phase::Replied;
        Ok(match outcome {
            Outcome::Connected { .. } => ESTABLISHED.to_vec(),
            Outcome::Refused(Refusal::Denied { rule }) => {
                response(403, "Forbidden", "", &format!("denied by rule {rule}\n"))
            }
            Outcome::Refused(Refusal::Unreachable) => {
                response(502, "Bad Gateway", "", "target unreachable\n")
            }
            Outcome::Refused(Refusal::Refused) => {
                response(502, "Bad Gateway", "", "connection refused by target\n")
            }
            Outcome::Refused(Refusal::GeneralFailure) => {
                response(502, "Bad Gateway", "", "connection to target failed\n")
            }
            Outcome::Refused(Refusal::Timeout) => response(
                504,
                "Gateway Timeout",
                "",
                "connection to target timed out\n",
            ),
        })
    }
}

/// True if `bytes` contain an empty line (`\n\n` or `\n\r\n`).
fn has_empty_line(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == b"\n\n") || bytes.windows(3).any(|w| w == b"\n\r\n")
}

/// Parses a head: `Ok(None)` while incomplete, else its length and target.
fn parse_head(
    head: &[u8],
    max_headers: usize,
) -> Result<Option<(usize, Target)>, HttpConnectError> {
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpConnectError::TooManyHeaders { limit: max_headers })
        }
        Err(e) => return Err(HttpConnectError::Syntax(syntax(e))),
    };
    let method = request.method.unwrap_or_default();
    if method != "CONNECT" {
        return Err(HttpConnectError::MethodNotAllowed(method.to_owned()));
    }
    let path = request.path.unwrap_or_default();
    if path.starts_with('/') || path.contains("://") || path == "*" {
        return Err(HttpConnectError::NotAuthorityForm);
    }
    let target = Target::parse(path).map_err(HttpConnectError::InvalidTarget)?;
    Ok(Some((len, target)))
}

fn syntax(e: httparse::Error) -> HeadSyntax {
    match e {
        httparse::Error::HeaderName => HeadSyntax::HeaderName,
        httparse::Error::HeaderValue => HeadSyntax::HeaderValue,
        httparse::Error::NewLine => HeadSyntax::LineEnding,
        httparse::Error::Version => HeadSyntax::Version,
        // `Status` is a response-only error and `TooManyHeaders` is handled
        // before; both map to the request line for completeness.
        httparse::Error::Token | httparse::Error::Status | httparse::Error::TooManyHeaders => {
            HeadSyntax::RequestLine
        }
    }
}

#[cfg(test)]
mod tests;
