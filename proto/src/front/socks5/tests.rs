//! SOCKS5 tests. The client bytes marked "captured" were recorded from
//! curl 7.88.1 talking to a loopback listener.

use super::*;
use crate::front::fed::{cut, feed_reads, feed_reads_keeping_the_rest, Fed};
use quickcheck::{quickcheck, Arbitrary, Gen, TestResult};

/// curl's greeting: no authentication and GSSAPI.
const CURL_GREETING: &[u8] = b"\x05\x02\x00\x01";
/// captured: `curl --socks5 ... http://93.184.216.34:80/`
const CURL_IPV4_REQUEST: &[u8] = b"\x05\x01\x00\x01\x5d\xb8\xd8\x22\x00\x50";
/// captured: `curl --socks5-hostname ... http://example.com/`
const CURL_DOMAIN_REQUEST: &[u8] = b"\x05\x01\x00\x03\x0bexample.com\x00\x50";
/// captured: `curl --socks5 ... http://[2001:db8::1]:8443/`
const CURL_IPV6_REQUEST: &[u8] =
    b"\x05\x01\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x20\xfb";
/// captured: what curl sends once the tunnel is up.
const CURL_HTTP_GET: &[u8] =
    b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

/// A reply with `code` and the unspecified address 0.0.0.0:0.
fn reply_bytes(code: u8) -> Vec<u8> {
    vec![0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]
}

fn target(s: &str) -> Target {
    Target::parse(s).unwrap()
}

/// Feeds `chunks` in order; returns all bytes to send, the final progress'
/// target (if ready) with its leftover, or the error.
fn run(chunks: &[&[u8]]) -> Fed<Socks5Error> {
    let mut s = Socks5::new();
    feed_reads(chunks.iter().copied(), |chunk| s.feed(chunk))
}

fn ready(chunks: &[&[u8]]) -> (Vec<u8>, Target, Vec<u8>) {
    match run(chunks) {
        (sent, Ok(Some((t, left)))) => (sent, t, left),
        other => panic!("not ready: {other:?}"),
    }
}

fn rejected(chunks: &[&[u8]]) -> (Vec<u8>, Socks5Error) {
    match run(chunks) {
        (sent, Err(e)) => (sent, e),
        other => panic!("not rejected: {other:?}"),
    }
}

#[test]
fn curl_ipv4_in_two_writes() {
    let mut s = Socks5::new();
    let step = s.feed(CURL_GREETING).unwrap();
    assert_eq!(step.send, b"\x05\x00");
    assert_eq!(step.progress, Progress::NeedMore);
    let step = s.feed(CURL_IPV4_REQUEST).unwrap();
    assert!(step.send.is_empty());
    assert_eq!(
        step.progress,
        Progress::Ready {
            target: target("93.184.216.34:80"),
            leftover: b""
        }
    );
    let bound: SocketAddr = "10.0.0.7:40000".parse().unwrap();
    assert_eq!(
        s.reply(&Outcome::Connected { bound: Some(bound) }).unwrap(),
        b"\x05\x00\x00\x01\x0a\x00\x00\x07\x9c\x40"
    );
}

#[test]
fn curl_socks5_hostname() {
    let (sent, t, left) = ready(&[CURL_GREETING, CURL_DOMAIN_REQUEST]);
    assert_eq!(sent, b"\x05\x00");
    assert_eq!(t, target("example.com:80"));
    assert!(left.is_empty());
}

#[test]
fn curl_ipv6() {
    let (_, t, _) = ready(&[CURL_GREETING, CURL_IPV6_REQUEST]);
    assert_eq!(t, target("[2001:db8::1]:8443"));
    assert_eq!(t.to_string(), "[2001:db8::1]:8443");
}

#[test]
fn greeting_and_request_in_one_write_with_pipelined_data() {
    let all = [CURL_GREETING, CURL_DOMAIN_REQUEST, CURL_HTTP_GET].concat();
    let (sent, t, left) = ready(&[&all]);
    assert_eq!(sent, b"\x05\x00", "method choice must still be sent");
    assert_eq!(t, target("example.com:80"));
    assert_eq!(left, CURL_HTTP_GET);
}

#[test]
fn byte_by_byte() {
    let all = [CURL_GREETING, CURL_IPV6_REQUEST].concat();
    let mut s = Socks5::new();
    let mut sent = Vec::new();
    for (i, b) in all.iter().enumerate() {
        let step = s.feed(core::slice::from_ref(b)).unwrap();
        sent.extend_from_slice(&step.send);
        if i + 1 < all.len() {
            assert_eq!(step.progress, Progress::NeedMore, "byte {i}");
            if i + 1 == CURL_GREETING.len() {
                assert_eq!(step.send, b"\x05\x00", "method choice right after greeting");
            }
        } else {
            assert_eq!(
                step.progress,
                Progress::Ready {
                    target: target("[2001:db8::1]:8443"),
                    leftover: b""
                }
            );
        }
    }
    assert_eq!(sent, b"\x05\x00");
}

#[test]
fn only_no_auth_greeting() {
    let (sent, t, _) = ready(&[b"\x05\x01\x00", CURL_IPV4_REQUEST]);
    assert_eq!(sent, b"\x05\x00");
    assert_eq!(t.port, 80);
}

#[test]
fn no_acceptable_method() {
    // Username/password only.
    let (sent, e) = rejected(&[b"\x05\x01\x02"]);
    assert_eq!(sent, b"\x05\xff");
    assert_eq!(e, Socks5Error::NoAcceptableMethod);
    // No methods at all.
    let (sent, e) = rejected(&[b"\x05\x00"]);
    assert_eq!(sent, b"\x05\xff");
    assert_eq!(e, Socks5Error::NoAcceptableMethod);
}

#[test]
fn wrong_greeting_version_closes_without_reply() {
    // A SOCKS4 CONNECT, TLS ClientHello, and HTTP: no SOCKS5 answer fits.
    for garbage in [
        &b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00"[..],
        b"\x16\x03\x01\x02\x00",
        b"GET / HTTP/1.1\r\n",
    ] {
        let (sent, e) = rejected(&[garbage]);
        assert!(sent.is_empty());
        assert_eq!(e, Socks5Error::UnsupportedVersion(garbage[0]));
    }
}

#[test]
fn wrong_request_version() {
    let (sent, e) = rejected(&[CURL_GREETING, b"\x04\x01\x00\x01"]);
    assert_eq!(sent, [&b"\x05\x00"[..], &reply_bytes(0x01)].concat());
    assert_eq!(e, Socks5Error::RequestVersion(4));
}

#[test]
fn bind_and_udp_associate_are_not_supported() {
    for cmd in [0x02u8, 0x03, 0x00, 0x09] {
        let req = [0x05, cmd, 0x00, 0x01, 127, 0, 0, 1, 0x1f, 0x90];
        let (sent, e) = rejected(&[CURL_GREETING, &req]);
        assert_eq!(sent, [&b"\x05\x00"[..], &reply_bytes(0x07)].concat());
        assert_eq!(e, Socks5Error::UnsupportedCommand(cmd));
    }
}

#[test]
fn bind_is_answered_only_once_the_request_is_whole() {
    let mut s = Socks5::new();
    s.feed(CURL_GREETING).unwrap();
    let step = s.feed(b"\x05\x02\x00\x01\x7f\x00").unwrap();
    assert_eq!(step.progress, Progress::NeedMore);
    assert!(step.send.is_empty());
    let step = s.feed(b"\x00\x01\x1f\x90").unwrap();
    assert_eq!(
        step.progress,
        Progress::Rejected(Socks5Error::UnsupportedCommand(2))
    );
    assert_eq!(step.send, reply_bytes(0x07));
}

#[test]
fn unknown_address_type_is_answered_at_once() {
    let mut s = Socks5::new();
    s.feed(CURL_GREETING).unwrap();
    let step = s.feed(b"\x05\x01\x00\x05").unwrap();
    assert_eq!(
        step.progress,
        Progress::Rejected(Socks5Error::UnsupportedAddressType(5))
    );
    assert_eq!(step.send, reply_bytes(0x08));
    assert_eq!(s.feed(b"x"), Err(UsageError::AlreadyRejected));
}

#[test]
fn zero_length_domain() {
    let (sent, e) = rejected(&[CURL_GREETING, b"\x05\x01\x00\x03\x00\x00\x50"]);
    assert_eq!(sent, [&b"\x05\x00"[..], &reply_bytes(0x01)].concat());
    assert_eq!(e, Socks5Error::EmptyDomain);
}

#[test]
fn invalid_domains() {
    let cases: [(&[u8], TargetError); 4] = [
        (b"bad!name.com", TargetError::InvalidLabel),
        (b"a..b", TargetError::InvalidLabel),
        (b"\xff\xfe", TargetError::InvalidLabel),
        (b"127.1", TargetError::NumericName),
    ];
    for (name, why) in cases {
        let mut req = vec![0x05, 0x01, 0x00, 0x03, name.len() as u8];
        req.extend_from_slice(name);
        req.extend_from_slice(&[0x01, 0xbb]);
        let (sent, e) = rejected(&[CURL_GREETING, &req]);
        assert_eq!(sent, [&b"\x05\x00"[..], &reply_bytes(0x08)].concat());
        assert_eq!(e, Socks5Error::InvalidDomain(why));
    }
}

#[test]
fn address_literal_sent_as_domain_becomes_an_address() {
    let req = b"\x05\x01\x00\x03\x0810.0.0.1\x00\x16";
    let (_, t, _) = ready(&[CURL_GREETING, req]);
    assert_eq!(t.host, Host::Ip("10.0.0.1".parse().unwrap()));
}

#[test]
fn nonzero_reserved_byte() {
    let (sent, e) = rejected(&[CURL_GREETING, b"\x05\x01\x01\x01\x7f\x00\x00\x01\x00\x50"]);
    assert_eq!(sent, [&b"\x05\x00"[..], &reply_bytes(0x01)].concat());
    assert_eq!(e, Socks5Error::NonZeroReserved(1));
}

#[test]
fn port_zero() {
    let (sent, e) = rejected(&[CURL_GREETING, b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x00"]);
    assert_eq!(sent, [&b"\x05\x00"[..], &reply_bytes(0x01)].concat());
    assert_eq!(e, Socks5Error::ZeroPort);
}

#[test]
fn truncated_request_waits_and_holds_only_what_arrived() {
    let mut s = Socks5::new();
    s.feed(CURL_GREETING).unwrap();
    let step = s.feed(&CURL_DOMAIN_REQUEST[..9]).unwrap();
    assert_eq!(step.progress, Progress::NeedMore);
    assert_eq!(s.buffered(), 9);
    assert_eq!(
        s.reply(&Outcome::Connected { bound: None }),
        Err(UsageError::NoRequest)
    );
    let (sent, res) = run(&[&CURL_GREETING[..3]]);
    assert!(sent.is_empty());
    assert_eq!(res, Ok(None));
}

#[test]
fn every_reply_code() {
    let denied = Refusal::Denied {
        rule: "no-egress".into(),
    };
    let cases = [
        (Outcome::Connected { bound: None }, 0x00),
        (Outcome::Refused(Refusal::GeneralFailure), 0x01),
        (Outcome::Refused(denied), 0x02),
        (Outcome::Refused(Refusal::Unreachable), 0x04),
        (Outcome::Refused(Refusal::Refused), 0x05),
        (Outcome::Refused(Refusal::Timeout), 0x06),
    ];
    for (outcome, code) in cases {
        let mut s = Socks5::new();
        s.feed(&[CURL_GREETING, CURL_IPV4_REQUEST].concat())
            .unwrap();
        assert_eq!(s.reply(&outcome).unwrap(), reply_bytes(code), "{outcome:?}");
        assert_eq!(s.reply(&outcome), Err(UsageError::AlreadyReplied));
        assert_eq!(s.feed(b""), Err(UsageError::RequestAlreadyParsed));
    }
    let v6: SocketAddr = "[2001:db8::2]:443".parse().unwrap();
    let mut want = vec![0x05, 0x03, 0x00, 0x04];
    want.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    want.extend_from_slice(&[0x01, 0xbb]);
    assert_eq!(encode_reply(ReplyCode::NetworkUnreachable, v6), want);
    for (code, byte) in [
        (ReplyCode::CommandNotSupported, 0x07),
        (ReplyCode::AddressTypeNotSupported, 0x08),
    ] {
        assert_eq!(encode_reply(code, UNSPECIFIED), reply_bytes(byte));
    }
}

/// A valid client conversation: greeting, CONNECT request and data after it.
#[derive(Clone, Debug)]
struct ValidClient {
    bytes: Vec<u8>,
    target: Target,
    request_end: usize,
}

impl Arbitrary for ValidClient {
    fn arbitrary(g: &mut Gen) -> ValidClient {
        let mut methods: Vec<u8> = Vec::<u8>::arbitrary(g).into_iter().take(254).collect();
        let at = usize::arbitrary(g) % (methods.len() + 1);
        methods.insert(at, METHOD_NO_AUTH);
        let mut bytes = vec![VERSION, methods.len() as u8];
        bytes.extend_from_slice(&methods);
        let port = u16::arbitrary(g).max(1);
        let host = match u8::arbitrary(g) % 3 {
            0 => Host::from_ip(IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g)))),
            1 => Host::from_ip(IpAddr::V6(Ipv6Addr::from(u128::arbitrary(g)))),
            _ => {
                let labels = 1 + usize::arbitrary(g) % 4;
                let name: Vec<String> = (0..labels)
                    .map(|_| {
                        // 62 at most: a `z` is appended to the last label.
                        let len = 1 + usize::arbitrary(g) % 62;
                        (0..len)
                            .map(|i| {
                                let c = *g.choose(b"abcXYZ019-").unwrap_or(&b'a');
                                if c == b'-' && (i == 0 || i + 1 == len) {
                                    'q'
                                } else {
                                    c as char
                                }
                            })
                            .collect()
                    })
                    .collect();
                let mut name = name.join(".");
                name.push('z'); // not numeric
                Host::parse(&name).unwrap()
            }
        };
        bytes.extend_from_slice(&[VERSION, CMD_CONNECT, 0x00]);
        match &host {
            Host::Ip(IpAddr::V4(v4)) => {
                bytes.push(ATYP_IPV4);
                bytes.extend_from_slice(&v4.octets());
            }
            Host::Ip(IpAddr::V6(v6)) => {
                bytes.push(ATYP_IPV6);
                bytes.extend_from_slice(&v6.octets());
            }
            Host::Domain(d) => {
                bytes.push(ATYP_DOMAIN);
                bytes.push(d.as_str().len() as u8);
                bytes.extend_from_slice(d.as_str().as_bytes());
            }
        }
        bytes.extend_from_slice(&port.to_be_bytes());
        let request_end = bytes.len();
        bytes.extend(Vec::<u8>::arbitrary(g));
        ValidClient {
            bytes,
            target: Target { host, port },
            request_end,
        }
    }
}

#[test]
fn any_chunking_gives_the_same_target_and_leftover() {
    fn prop(client: ValidClient, cuts: Vec<usize>) -> bool {
        let reads = cut(&client.bytes, &cuts);
        let mut s = Socks5::new();
        let mut over_limit = false;
        let (sent, got) = feed_reads_keeping_the_rest(&reads, |read| {
            let step = s.feed(read);
            over_limit |= s.buffered() > MAX_REQUEST_LEN;
            step
        });
        !over_limit
            && sent == b"\x05\x00"
            && got.is_ok_and(|ready| {
                ready == Some((client.target, client.bytes[client.request_end..].to_vec()))
            })
    }
    quickcheck(prop as fn(ValidClient, Vec<usize>) -> bool);
}

#[test]
fn arbitrary_bytes_never_panic_and_stay_bounded() {
    fn prop(prefix: u8, bytes: Vec<u8>, cuts: Vec<usize>) -> TestResult {
        // Half the cases start like a real client, to get past the greeting.
        let mut input = if prefix % 2 == 0 {
            CURL_GREETING.to_vec()
        } else {
            Vec::new()
        };
        if prefix % 4 == 0 {
            // A request header with a known address type, so random bytes
            // reach the address parsing.
            let atyp = [ATYP_IPV4, ATYP_DOMAIN, ATYP_IPV6][usize::from(prefix / 4) % 3];
            input.extend_from_slice(&[VERSION, CMD_CONNECT, 0, atyp]);
        }
        input.extend_from_slice(&bytes);
        let mut s = Socks5::new();
        for chunk in cut(&input, &cuts) {
            match s.feed(&chunk) {
                Ok(step) => {
                    if s.buffered() > MAX_REQUEST_LEN {
                        return TestResult::failed();
                    }
                    match step.progress {
                        Progress::NeedMore => {}
                        Progress::Ready { .. } | Progress::Rejected(_) => break,
                    }
                }
                Err(_) => return TestResult::failed(),
            }
        }
        TestResult::passed()
    }
    quickcheck(prop as fn(u8, Vec<u8>, Vec<usize>) -> TestResult);
}

#[test]
fn every_rejection_is_answered_with_its_code() {
    // Property: a rejection's bytes are exactly the method refusal, nothing
    // (wrong greeting version), or a 10-byte reply with the code the error
    // names, after the method choice if the greeting was accepted.
    fn prop(bytes: Vec<u8>) -> bool {
        let input = [CURL_GREETING, &bytes].concat();
        let mut s = Socks5::new();
        let step = s.feed(&input).unwrap();
        let Progress::Rejected(e) = step.progress else {
            return true;
        };
        let code = match e {
            Socks5Error::UnsupportedVersion(_) | Socks5Error::NoAcceptableMethod => return false,
            Socks5Error::UnsupportedCommand(_) => 0x07,
            Socks5Error::UnsupportedAddressType(_) | Socks5Error::InvalidDomain(_) => 0x08,
            _ => 0x01,
        };
        step.send == [&b"\x05\x00"[..], &reply_bytes(code)].concat()
    }
    quickcheck(prop as fn(Vec<u8>) -> bool);
}
