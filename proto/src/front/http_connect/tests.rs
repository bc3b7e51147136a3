//! HTTP CONNECT tests. Heads marked "captured" were recorded from curl
//! 7.88.1 (`--proxytunnel -x http://...`) talking to a loopback listener.

use super::*;
use crate::front::fed::{cut, feed_reads, feed_reads_keeping_the_rest, Fed};
use crate::front::{Host, Refusal};
use quickcheck::{quickcheck, TestResult};

/// captured: `curl --proxytunnel -x http://proxy http://example.com/`
const CURL_CONNECT: &[u8] = b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\nUser-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n";
/// captured: `curl --proxytunnel -x http://proxy http://[::1]:443/`
const CURL_CONNECT_V6: &[u8] = b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nUser-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n";
/// captured: what curl sends once the tunnel is up.
const CURL_HTTP_GET: &[u8] =
    b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

fn target(s: &str) -> Target {
    Target::parse(s).unwrap()
}

fn feed_all(front: &mut HttpConnect, chunks: &[&[u8]]) -> Fed<HttpConnectError> {
    feed_reads(chunks.iter().copied(), |chunk| front.feed(chunk))
}

fn ready(head: &[u8]) -> (Target, Vec<u8>) {
    let mut front = HttpConnect::new(HttpConnectConfig::default());
    match feed_all(&mut front, &[head]) {
        (sent, Ok(Some(got))) if sent.is_empty() => got,
        other => panic!("not ready: {other:?}"),
    }
}

fn rejected_with(config: HttpConnectConfig, chunks: &[&[u8]]) -> (String, HttpConnectError) {
    let mut front = HttpConnect::new(config);
    match feed_all(&mut front, chunks) {
        (sent, Err(e)) => (String::from_utf8(sent).unwrap(), e),
        other => panic!("not rejected: {other:?}"),
    }
}

fn rejected(head: &[u8]) -> (String, HttpConnectError) {
    rejected_with(HttpConnectConfig::default(), &[head])
}

/// Checks the status line, a correct Content-Length and `Connection: close`,
/// and returns the body.
fn status_and_body(response: &str, status: &str) -> String {
    assert!(
        response.starts_with(&format!("HTTP/1.1 {status}\r\n")),
        "{response}"
    );
    assert!(response.contains("\r\nConnection: close\r\n"), "{response}");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, body.len(), "{response}");
    body.to_owned()
}

#[test]
fn curl_proxytunnel() {
    let (t, left) = ready(CURL_CONNECT);
    assert_eq!(t, target("example.com:80"));
    assert!(left.is_empty());
}

#[test]
fn curl_proxytunnel_ipv6() {
    let (t, _) = ready(CURL_CONNECT_V6);
    assert_eq!(t.host, Host::Ip("::1".parse().unwrap()));
    assert_eq!(t.port, 443);
}

#[test]
fn bare_connect_without_headers() {
    let (t, left) = ready(b"CONNECT 10.1.2.3:5432 HTTP/1.1\r\n\r\n");
    assert_eq!(t, target("10.1.2.3:5432"));
    assert!(left.is_empty());
    let (t, _) = ready(b"CONNECT db.internal:5432 HTTP/1.0\r\n\r\n");
    assert_eq!(t, target("db.internal:5432"));
}

#[test]
fn pipelined_data_is_returned_intact() {
    let all = [CURL_CONNECT, CURL_HTTP_GET].concat();
    let (t, left) = ready(&all);
    assert_eq!(t, target("example.com:80"));
    assert_eq!(left, CURL_HTTP_GET);
    // Binary data (a TLS record) right after the head, in the same read as
    // the head's last bytes.
    let mut front = HttpConnect::new(HttpConnectConfig::default());
    let split = CURL_CONNECT.len() - 3;
    let tail = [&CURL_CONNECT[split..], b"\x16\x03\x01\x00\x05hello"].concat();
    let (_, got) = feed_all(&mut front, &[&CURL_CONNECT[..split], &tail]);
    assert_eq!(got.unwrap().unwrap().1, b"\x16\x03\x01\x00\x05hello");
}

#[test]
fn byte_by_byte() {
    let mut front = HttpConnect::new(HttpConnectConfig::default());
    for (i, b) in CURL_CONNECT.iter().enumerate() {
        let step = front.feed(core::slice::from_ref(b)).unwrap();
        assert!(step.send.is_empty());
        if i + 1 < CURL_CONNECT.len() {
            assert_eq!(step.progress, Progress::NeedMore, "byte {i}");
        } else {
            assert_eq!(
                step.progress,
                Progress::Ready {
                    target: target("example.com:80"),
                    leftover: b""
                }
            );
        }
    }
}

#[test]
fn headers_are_ignored_including_proxy_authorization() {
    let head = b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: evil.example:1\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n";
    assert_eq!(ready(head).0, target("api.example.com:443"));
}

#[test]
fn bare_lf_line_endings_are_accepted() {
    let head = b"CONNECT example.com:443 HTTP/1.1\nHost: example.com:443\n\nDATA";
    let (t, left) = ready(head);
    assert_eq!(t, target("example.com:443"));
    assert_eq!(left, b"DATA");
    assert_eq!(ready(b"CONNECT example.com:443 HTTP/1.1\n\r\n").0.port, 443);
}

#[test]
fn leading_empty_lines_are_skipped() {
    let mut front = HttpConnect::new(HttpConnectConfig::default());
    let (_, got) = feed_all(&mut front, &[b"\r\n", b"\n\r\n", CURL_CONNECT]);
    assert_eq!(got.unwrap().unwrap().0, target("example.com:80"));
}

#[test]
fn replies() {
    let cases: [(Outcome, &str, &str); 5] = [
        (
            Outcome::Refused(Refusal::Denied {
                rule: "deny-external".into(),
            }),
            "403 Forbidden",
            "denied by rule deny-external\n",
        ),
        (
            Outcome::Refused(Refusal::Refused),
            "502 Bad Gateway",
            "connection refused by target\n",
        ),
        (
            Outcome::Refused(Refusal::Unreachable),
            "502 Bad Gateway",
            "target unreachable\n",
        ),
        (
            Outcome::Refused(Refusal::GeneralFailure),
            "502 Bad Gateway",
            "connection to target failed\n",
        ),
        (
            Outcome::Refused(Refusal::Timeout),
            "504 Gateway Timeout",
            "connection to target timed out\n",
        ),
    ];
    for (outcome, status, body) in cases {
        let mut front = HttpConnect::new(HttpConnectConfig::default());
        front.feed(CURL_CONNECT).unwrap();
        let reply = String::from_utf8(front.reply(&outcome).unwrap()).unwrap();
        assert_eq!(status_and_body(&reply, status), body);
    }
    let mut front = HttpConnect::new(HttpConnectConfig::default());
    assert_eq!(
        front.reply(&Outcome::Connected { bound: None }),
        Err(UsageError::NoRequest)
    );
    front.feed(CURL_CONNECT).unwrap();
    assert_eq!(front.feed(b"more"), Err(UsageError::RequestAlreadyParsed));
    assert_eq!(
        front.reply(&Outcome::Connected { bound: None }).unwrap(),
        b"HTTP/1.1 200 Connection established\r\n\r\n"
    );
    assert_eq!(
        front.reply(&Outcome::Connected { bound: None }),
        Err(UsageError::AlreadyReplied)
    );
}

#[test]
fn garbage_request_line() {
    let (reply, e) = rejected(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    assert_eq!(e, HttpConnectError::Syntax(HeadSyntax::RequestLine));
    status_and_body(&reply, "400 Bad Request");
    let (reply, e) = rejected(b"CONNECT example.com:443 HTTP/2.0\r\n\r\n");
    assert_eq!(e, HttpConnectError::Syntax(HeadSyntax::Version));
    status_and_body(&reply, "400 Bad Request");
    let (_, e) = rejected(b"CONNECT example.com:443 HTTP/1.1\r\nBad Name: x\r\n\r\n");
    assert_eq!(e, HttpConnectError::Syntax(HeadSyntax::HeaderName));
    let (_, e) = rejected(b"CONNECT example.com:443 HTTP/1.1\r\nX: a\x01b\r\n\r\n");
    assert_eq!(e, HttpConnectError::Syntax(HeadSyntax::HeaderValue));
    let (_, e) = rejected(b"CONNECT example.com:443 HTTP/1.1\rX: y\r\n\r\n");
    assert_eq!(e, HttpConnectError::Syntax(HeadSyntax::LineEnding));
    let (_, e) = rejected(b"hello there\r\n\r\n");
    assert_eq!(e, HttpConnectError::Syntax(HeadSyntax::RequestLine));
}

#[test]
fn other_methods_get_405() {
    for head in [
        &b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\n\r\n",
        b"connect example.com:443 HTTP/1.1\r\n\r\n",
    ] {
        let (reply, e) = rejected(head);
        assert!(matches!(e, HttpConnectError::MethodNotAllowed(_)), "{e:?}");
        assert!(reply.contains("\r\nAllow: CONNECT\r\n"));
        status_and_body(&reply, "405 Method Not Allowed");
    }
}

#[test]
fn bad_targets_get_400() {
    let cases: [(&[u8], HttpConnectError); 8] = [
        (
            b"CONNECT example.com HTTP/1.1\r\n\r\n",
            HttpConnectError::InvalidTarget(TargetError::MissingPort),
        ),
        (
            b"CONNECT example.com:0 HTTP/1.1\r\n\r\n",
            HttpConnectError::InvalidTarget(TargetError::InvalidPort),
        ),
        (
            b"CONNECT example.com:99999 HTTP/1.1\r\n\r\n",
            HttpConnectError::InvalidTarget(TargetError::InvalidPort),
        ),
        (
            b"CONNECT ::1:443 HTTP/1.1\r\n\r\n",
            HttpConnectError::InvalidTarget(TargetError::Ipv6WithoutBrackets),
        ),
        (
            b"CONNECT bad!host:443 HTTP/1.1\r\n\r\n",
            HttpConnectError::InvalidTarget(TargetError::InvalidLabel),
        ),
        (
            b"CONNECT http://example.com:443/ HTTP/1.1\r\n\r\n",
            HttpConnectError::NotAuthorityForm,
        ),
        (
            b"CONNECT /path HTTP/1.1\r\n\r\n",
            HttpConnectError::NotAuthorityForm,
        ),
        (
            b"CONNECT * HTTP/1.1\r\n\r\n",
            HttpConnectError::NotAuthorityForm,
        ),
    ];
    for (head, want) in cases {
        let (reply, e) = rejected(head);
        assert_eq!(e, want);
        let body = status_and_body(&reply, "400 Bad Request");
        assert_eq!(body, format!("{want}\n"));
    }
}

#[test]
fn oversized_head_gets_431() {
    let config = HttpConnectConfig {
        max_head_bytes: 100,
        ..HttpConnectConfig::default()
    };
    let mut head = b"CONNECT example.com:443 HTTP/1.1\r\nX-Pad: ".to_vec();
    head.resize(120, b'a');
    head.extend_from_slice(b"\r\n\r\n");
    let (reply, e) = rejected_with(config, &[&head]);
    assert_eq!(e, HttpConnectError::HeadTooLarge { limit: 100 });
    status_and_body(&reply, "431 Request Header Fields Too Large");

    // The same, arriving in small reads: the buffer stops at the limit.
    let mut front = HttpConnect::new(config);
    let mut result = None;
    for chunk in head.chunks(7) {
        let step = front.feed(chunk).unwrap();
        assert!(front.buffered() <= 100);
        if let Progress::Rejected(e) = step.progress {
            result = Some(e);
            break;
        }
    }
    assert_eq!(result, Some(HttpConnectError::HeadTooLarge { limit: 100 }));

    // A head of exactly the limit is fine, with data after it.
    let mut exact = b"CONNECT example.com:443 HTTP/1.1\r\nX-Pad: ".to_vec();
    exact.resize(96, b'a');
    exact.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exact.len(), 100);
    let mut front = HttpConnect::new(config);
    let (_, got) = feed_all(&mut front, &[&[&exact[..], b"after"].concat()]);
    assert_eq!(got.unwrap().unwrap().1, b"after");
}

#[test]
fn default_head_limit_is_8k() {
    let mut head = b"CONNECT example.com:443 HTTP/1.1\r\nX-Pad: ".to_vec();
    head.resize(9000, b'a');
    let (_, e) = rejected(&head);
    assert_eq!(e, HttpConnectError::HeadTooLarge { limit: 8192 });
}

#[test]
fn too_many_headers_gets_431() {
    let mut head = b"CONNECT example.com:443 HTTP/1.1\r\n".to_vec();
    for i in 0..65 {
        head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let (reply, e) = rejected(&head);
    assert_eq!(e, HttpConnectError::TooManyHeaders { limit: 64 });
    status_and_body(&reply, "431 Request Header Fields Too Large");
    // 64 is still fine.
    let mut head = b"CONNECT example.com:443 HTTP/1.1\r\n".to_vec();
    for i in 0..64 {
        head.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    assert_eq!(ready(&head).0.port, 443);
}

#[test]
fn truncated_head_waits() {
    let mut front = HttpConnect::new(HttpConnectConfig::default());
    let (sent, got) = feed_all(&mut front, &[&CURL_CONNECT[..40]]);
    assert!(sent.is_empty());
    assert_eq!(got, Ok(None));
    assert_eq!(front.buffered(), 40);
}

/// Header lines a client might send, to build varied valid heads.
const HEADER_LINES: [&str; 5] = [
    "Host: example.com:443\r\n",
    "User-Agent: curl/7.88.1\r\n",
    "Proxy-Connection: Keep-Alive\r\n",
    "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n",
    "X-Empty:\r\n",
];

#[test]
fn any_chunking_gives_the_same_target_and_leftover() {
    fn prop(
        host: (u8, u32, u128),
        port: u16,
        headers: Vec<u8>,
        data: Vec<u8>,
        cuts: Vec<usize>,
    ) -> TestResult {
        if port == 0 {
            return TestResult::discard();
        }
        let host = match host.0 % 3 {
            0 => Host::from_ip(std::net::Ipv4Addr::from(host.1).into()),
            1 => Host::from_ip(std::net::Ipv6Addr::from(host.2).into()),
            _ => Host::parse(&format!("Svc-{}.Example.com", host.1)).unwrap(),
        };
        let want = Target { host, port };
        let mut head = format!("CONNECT {want} HTTP/1.1\r\n");
        for h in headers.iter().take(20) {
            head.push_str(HEADER_LINES[usize::from(*h) % HEADER_LINES.len()]);
        }
        head.push_str("\r\n");
        let bytes = [head.as_bytes(), &data].concat();
        let reads = cut(&bytes, &cuts);
        let mut front = HttpConnect::new(HttpConnectConfig::default());
        let (sent, got) = feed_reads_keeping_the_rest(&reads, |read| front.feed(read));
        TestResult::from_bool(sent.is_empty() && got.is_ok_and(|ready| ready == Some((want, data))))
    }
    quickcheck(prop as fn((u8, u32, u128), u16, Vec<u8>, Vec<u8>, Vec<usize>) -> TestResult);
}

#[test]
fn arbitrary_bytes_never_panic_and_stay_bounded() {
    fn prop(prefix: u8, bytes: Vec<u8>, cuts: Vec<usize>, limit: u8) -> bool {
        let config = HttpConnectConfig {
            max_head_bytes: usize::from(limit),
            max_headers: 4,
        };
        // Valid starts of a head, so random bytes also reach the target and
        // header parsing.
        let starts: [&[u8]; 3] = [b"", b"CONNECT ", b"CONNECT a.b:1 HTTP/1.1\r\n"];
        let mut input = starts[usize::from(prefix) % 3].to_vec();
        input.extend_from_slice(&bytes);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut front = HttpConnect::new(config);
        let mut start = 0;
        for p in points.into_iter().chain([input.len()]) {
            let Ok(step) = front.feed(&input[start..p]) else {
                return false;
            };
            start = p;
            if front.buffered() > config.max_head_bytes {
                return false;
            }
            match step.progress {
                Progress::NeedMore => {}
                Progress::Ready { .. } => return step.send.is_empty(),
                // Every rejection carries a complete response.
                Progress::Rejected(_) => return step.send.starts_with(b"HTTP/1.1 4"),
            }
        }
        true
    }
    quickcheck(prop as fn(u8, Vec<u8>, Vec<usize>, u8) -> bool);
}
