//! Arbitrary client bytes, in arbitrary chunks, into the HTTP CONNECT front
//! end, with its limits chosen by the input.
//!
//! Input: the head-size and header-count limits, a chunking seed, an
//! outcome choice and a bound address, then the client's bytes. Checks
//! beyond "no panic":
//! - a request that completes does so with the same target and leftover
//!   whatever the chunking (a parser that read a different target or
//!   split the stream elsewhere depending on reads would be a smuggling
//!   hole); only the moment a malformed head is noticed may differ, since
//!   the parser looks at a head once at the first read and then only when
//!   an empty line arrives;
//! - never more than `max_head_bytes` buffered;
//! - a rejection is answered by one complete HTTP/1.1 response with the
//!   error's status, `Connection: close` and a body of the announced
//!   length; a completed request sends nothing before the reply;
//! - the consumed head ends with an empty line, and the target, written
//!   again as `CONNECT target HTTP/1.1`, parses to the same target;
//! - the reply to any outcome is one complete response with its status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_fuzz::{chunks, outcome, run_front, Choices, FrontEnd, FrontRun};
use warren_proto::front::{
    HttpConnect, HttpConnectConfig, HttpConnectError, Outcome, Refusal, Target, UsageError,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEAD_BYTES,
};

fuzz_target!(|bytes: &[u8]| {
    let mut choices = Choices::new(bytes);
    let config = HttpConnectConfig {
        max_head_bytes: match choices.u8() % 4 {
            0 => DEFAULT_MAX_HEAD_BYTES,
            1 => 1 + choices.u8() as usize,
            _ => 1 + choices.u16() as usize % 2048,
        },
        max_headers: match choices.u8() % 3 {
            0 => DEFAULT_MAX_HEADERS,
            _ => choices.u8() as usize % 80,
        },
    };
    let seed = choices.u32();
    let outcome_choice = choices.u8();
    let mut addr = [0u8; 18];
    addr.iter_mut().for_each(|b| *b = choices.u8());
    let wire = choices.rest();

    let mut whole_front = HttpConnect::new(config);
    let (whole, whole_max) = run_front(&mut whole_front, &[wire]);
    let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
    let (by_byte, by_byte_max) = run_front(&mut HttpConnect::new(config), &bytewise);
    let (chunked, chunked_max) = run_front(&mut HttpConnect::new(config), &chunks(wire, seed));

    for (run, max_buffered) in [
        (&whole, whole_max),
        (&by_byte, by_byte_max),
        (&chunked, chunked_max),
    ] {
        assert!(
            max_buffered <= config.max_head_bytes,
            "buffered {} bytes, limit {}",
            max_buffered,
            config.max_head_bytes
        );
        check_sent(run);
        if let FrontEnd::Ready(target) = &run.end {
            check_ready(wire, run, target, config);
        }
    }
    for other in [&by_byte, &chunked] {
        same_request(&whole, other);
    }

    if let FrontEnd::Ready(_) = &whole.end {
        let outcome = outcome(outcome_choice, addr);
        let reply = whole_front.reply(&outcome).expect("reply after Ready");
        let status = match &outcome {
            Outcome::Connected { .. } => 200,
            Outcome::Refused(Refusal::Denied { .. }) => 403,
            Outcome::Refused(Refusal::Timeout) => 504,
            Outcome::Refused(_) => 502,
        };
        check_response(&reply, status);
        if status == 200 {
            assert_eq!(reply, b"HTTP/1.1 200 Connection established\r\n\r\n");
        }
        assert_eq!(
            whole_front.reply(&outcome).err(),
            Some(UsageError::AlreadyReplied)
        );
    }
});

/// Two chunkings of one input agree on every completed request; where they
/// disagree, the whole-input run must have noticed a malformed head the
/// other has not judged yet (or judged only as too large).
fn same_request(whole: &FrontRun<HttpConnectError>, other: &FrontRun<HttpConnectError>) {
    if whole == other {
        return;
    }
    let ready = |r: &FrontRun<HttpConnectError>| matches!(r.end, FrontEnd::Ready(_));
    assert!(
        !ready(whole) && !ready(other),
        "chunking changed a completed request:\n{whole:?}\n{other:?}"
    );
    match (&whole.end, &other.end) {
        (
            FrontEnd::Rejected(e),
            FrontEnd::NeedMore | FrontEnd::Rejected(HttpConnectError::HeadTooLarge { .. }),
        ) if !matches!(e, HttpConnectError::HeadTooLarge { .. }) => {}
        _ => panic!("chunking changed the result:\n{whole:?}\n{other:?}"),
    }
}

fn check_sent(run: &FrontRun<HttpConnectError>) {
    match &run.end {
        FrontEnd::NeedMore | FrontEnd::Ready(_) => {
            assert!(run.sent.is_empty(), "sent {:?}", run.sent)
        }
        FrontEnd::Rejected(e) => {
            let status = match e {
                HttpConnectError::Syntax(_)
                | HttpConnectError::NotAuthorityForm
                | HttpConnectError::InvalidTarget(_) => 400,
                HttpConnectError::MethodNotAllowed(_) => 405,
                HttpConnectError::HeadTooLarge { .. } | HttpConnectError::TooManyHeaders { .. } => {
                    431
                }
            };
            let headers = check_response(&run.sent, status);
            if status == 405 {
                assert!(headers.iter().any(|(n, v)| n == "allow" && v == "CONNECT"));
            }
            let body = format!("{e}\n");
            assert!(run.sent.ends_with(body.as_bytes()), "body is not {body:?}");
        }
    }
}

/// Parses `response` as exactly one complete HTTP/1.1 response with
/// `status`, `Connection: close` unless 200, and a body as long as its
/// `Content-Length`. Returns the header fields, names lower-cased.
fn check_response(response: &[u8], status: u16) -> Vec<(String, String)> {
    let mut fields = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut fields);
    let len = match parsed.parse(response) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!("not a complete response ({other:?}): {response:?}"),
    };
    assert_eq!(parsed.version, Some(1));
    assert_eq!(parsed.code, Some(status));
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8(h.value.to_vec()).expect("ASCII header value"),
            )
        })
        .collect();
    let body = &response[len..];
    if status == 200 {
        assert!(headers.is_empty() && body.is_empty());
        return headers;
    }
    assert!(headers
        .iter()
        .any(|(n, v)| n == "connection" && v == "close"));
    let length: Vec<&String> = headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(length, [&body.len().to_string()], "Content-Length");
    headers
}

fn check_ready(
    wire: &[u8],
    run: &FrontRun<HttpConnectError>,
    target: &Target,
    config: HttpConnectConfig,
) {
    let consumed = wire.len() - run.after.len();
    let head = &wire[..consumed];
    assert!(
        head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"),
        "head does not end with an empty line: {head:?}"
    );
    let skipped = head
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    assert!(
        consumed - skipped <= config.max_head_bytes,
        "head over the limit"
    );
    assert!(
        head[skipped..].starts_with(b"CONNECT "),
        "not CONNECT: {head:?}"
    );

    let text = target.to_string();
    assert_eq!(Target::parse(&text).as_ref(), Ok(target), "{text}");
    let again = format!("CONNECT {text} HTTP/1.1\r\n\r\n");
    let (rerun, _) = run_front(
        &mut HttpConnect::new(HttpConnectConfig::default()),
        &[again.as_bytes()],
    );
    assert_eq!(
        rerun.end,
        FrontEnd::Ready(target.clone()),
        "re-encoded target"
    );
    assert_eq!(format!("{:?}", rerun.end), format!("{:?}", run.end));
}
