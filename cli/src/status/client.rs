//! A tiny blocking HTTP/1.1 client for the agent's admin endpoint: one
//! GET, `Connection: close`, a bounded answer read to its end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long connecting, sending and reading may each take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read (a busy agent's `/status` is far smaller: it
/// lists at most a handful of flows and a bounded ring of denials).
const MAX_ANSWER: u64 = 4 << 20;
/// Response headers parsed at most.
const MAX_HEADERS: usize = 32;

/// Why a GET failed, worded for the person who ran `warren status`.
#[derive(Debug)]
pub enum FetchError {
    /// Nothing listens there, or it did not answer in time.
    NoAgent {
        /// The admin address.
        addr: SocketAddr,
        /// The socket's reason (`connection refused`, ...).
        reason: String,
    },
    /// Something answered, but not as an agent's admin endpoint does.
    BadAnswer {
        /// The admin address.
        addr: SocketAddr,
        /// What was wrong.
        reason: String,
    },
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NoAgent { addr, reason } => write!(
                f,
                "no agent answering at {addr}: {reason}; is `warren agent` running with admin = \"{addr}\"?"
            ),
            FetchError::BadAnswer { addr, reason } => {
                write!(f, "{addr} did not answer like a warren admin endpoint: {reason}")
            }
        }
    }
}

impl std::error::Error for FetchError {}

/// GETs `path` from `addr`; returns the body of a 200 answer.
pub fn get(addr: SocketAddr, path: &str) -> Result<Vec<u8>, FetchError> {
    let no_agent = |e: std::io::Error| FetchError::NoAgent {
        addr,
        reason: lowercase_reason(&e),
    };
    let bad = |reason: String| FetchError::BadAnswer { addr, reason };
    let mut conn = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(no_agent)?;
    conn.set_read_timeout(Some(TIMEOUT)).map_err(no_agent)?;
    conn.set_write_timeout(Some(TIMEOUT)).map_err(no_agent)?;
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(no_agent)?;
    let mut answer = Vec::new();
    conn.take(MAX_ANSWER + 1)
        .read_to_end(&mut answer)
        .map_err(|e| bad(lowercase_reason(&e)))?;
    if answer.len() as u64 > MAX_ANSWER {
        return Err(bad(format!("the answer is larger than {MAX_ANSWER} bytes")));
    }
    body(&answer).map_err(bad)
}

/// The body of a complete `200` answer.
fn body(answer: &[u8]) -> Result<Vec<u8>, String> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the answer ended inside its head".into()),
        Err(e) => return Err(format!("malformed HTTP answer: {e}")),
    };
    let rest = answer.get(head_len..).unwrap_or_default();
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| "a malformed Content-Length".to_owned())
        })
        .transpose()?;
    let body = match length {
        Some(n) => rest
            .get(..n)
            .ok_or_else(|| format!("the body ended after {} of {n} bytes", rest.len()))?,
        None => rest,
    };
    match response.code {
        Some(200) => Ok(body.to_vec()),
        Some(code) => Err(format!(
            "HTTP {code}: {}",
            String::from_utf8_lossy(body).trim_end()
        )),
        None => Err("no status code".into()),
    }
}

/// An I/O error's reason as a sentence part: `connection refused`.
fn lowercase_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    // std's messages carry " (os error N)": the number helps nobody here.
    let text = text.split(" (os error").next().unwrap_or(&text);
    text.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{QuickCheck, TestResult};

    #[test]
    fn a_200_answer_gives_its_body_and_others_say_why() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        assert_eq!(body(ok).unwrap(), b"hello");
        let unavailable =
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 17\r\n\r\nnode unavailable\n";
        assert_eq!(body(unavailable).unwrap_err(), "HTTP 503: node unavailable");
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello";
        assert!(body(short).unwrap_err().contains("5 of 9 bytes"));
        assert!(body(b"HTTP/1.1 200 OK\r\nContent")
            .unwrap_err()
            .contains("head"));
        assert!(body(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn any_answer_is_read_without_panic() {
        fn prop(bytes: Vec<u8>) -> TestResult {
            let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n".to_vec();
            answer.extend_from_slice(&bytes);
            let _ = body(&bytes);
            TestResult::from_bool(body(&answer).is_ok() == (bytes.len() >= 3))
        }
        QuickCheck::new()
            .tests(300)
            .quickcheck(prop as fn(Vec<u8>) -> TestResult);
    }

    #[test]
    fn refused_connections_name_the_address_and_the_fix() {
        // A port just released: nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = get(addr, "/status").unwrap_err().to_string();
        assert_eq!(
            err,
            format!("no agent answering at {addr}: connection refused; is `warren agent` running with admin = \"{addr}\"?")
        );
    }
}
