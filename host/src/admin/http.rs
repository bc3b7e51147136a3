//! The HTTP/1.1 subset the admin server speaks: one bounded request read
//! with `httparse`, one response with `Content-Length` and
//! `Connection: close`.

use std::io::{self, Read, Write};

/// The most bytes of request head the server reads; a longer request is
/// answered 431 without reading on.
pub const MAX_REQUEST: usize = 8 * 1024;

/// Headers parsed at most; more is answered 431 too.
const MAX_HEADERS: usize = 32;

/// A parsed request line.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path without its query string.
    pub path: String,
}

/// A response ready to write.
#[derive(Debug)]
pub struct Response {
    status: u16,
    content_type: &'static str,
    extra: &'static str,
    body: Vec<u8>,
}

impl Response {
    /// A plain-text response.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            extra: "",
            body: body.as_bytes().to_vec(),
        }
    }

    /// A JSON response (pretty, for people reading it with curl).
    pub fn json(value: &serde_json::Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Response {
            status: 200,
            content_type: "application/json",
            extra: "",
            body,
        }
    }

    /// An OpenMetrics exposition (what `prometheus-client` writes).
    pub fn metrics(body: String) -> Response {
        Response {
            status: 200,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            extra: "",
            body: body.into_bytes(),
        }
    }

    /// 405 with the one method every page allows.
    pub fn method_not_allowed() -> Response {
        Response {
            extra: "Allow: GET\r\n",
            ..Response::text(405, "method not allowed\n")
        }
    }

    /// Writes the whole response.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            self.extra,
        );
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Reads one request head from `conn`, at most [`MAX_REQUEST`] bytes; the
/// error is the response that refuses it. A body, if any, is never read:
/// the connection closes after the response.
pub fn read_request(conn: &mut impl Read) -> Result<Request, Response> {
    let mut buf = vec![0; MAX_REQUEST];
    let mut len = 0;
    loop {
        let Some(free) = buf.get_mut(len..).filter(|free| !free.is_empty()) else {
            return Err(Response::text(431, "request too large\n"));
        };
        let n = match conn.read(free) {
            Ok(0) => return Err(Response::text(400, "incomplete request\n")),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Err(Response::text(408, "request timeout\n")),
        };
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buf.get(..len).unwrap_or_default()) {
            Ok(httparse::Status::Complete(_)) => {
                let method = parsed.method.unwrap_or_default().to_owned();
                let target = parsed.path.unwrap_or_default();
                let path = target.split('?').next().unwrap_or_default().to_owned();
                return Ok(Request { method, path });
            }
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Response::text(431, "too many headers\n"))
            }
            Err(e) => return Err(Response::text(400, &format!("bad request: {e}\n"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes `step` at a time, as a socket may.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            let (now, later) = self.bytes.split_at(n);
            buf[..n].copy_from_slice(now);
            self.bytes = later;
            Ok(n)
        }
    }

    fn read(bytes: &[u8], step: usize) -> Result<Request, Response> {
        read_request(&mut Trickle { bytes, step })
    }

    #[test]
    fn a_request_in_pieces_parses_and_drops_its_query() {
        let req = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        for step in [1, 2, 7, req.len()] {
            let got = read(req, step).unwrap();
            assert_eq!(
                (got.method.as_str(), got.path.as_str()),
                ("GET", "/metrics")
            );
        }
    }

    #[test]
    fn refusals_name_the_problem() {
        let status = |bytes: &[u8]| read(bytes, 1000).unwrap_err().status;
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\nHost: a\r\n"), 400);
        assert_eq!(status(b"\x00\x01\r\n\r\n"), 400);
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST));
        assert_eq!(status(long.as_bytes()), 431);
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(status(many.as_bytes()), 431);
    }

    #[test]
    fn responses_close_and_count_their_body() {
        let mut out = Vec::new();
        Response::method_not_allowed().write_to(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nAllow: GET\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with(
            "\r\nContent-Length: 19\r\nAllow: GET\r\nConnection: close\r\n\r\nmethod not allowed\n"
        ));
    }
}
