//! Arbitrary client bytes, in arbitrary chunks, into the SOCKS5 front end.
//!
//! Input: a chunking seed, an outcome choice and a bound address, then the
//! client's bytes. Checks beyond "no panic":
//! - the same replies, target, leftover and error whatever the chunking;
//! - never more than `MAX_REQUEST_LEN` bytes buffered;
//! - what is sent is exactly the protocol's answer: `05 00` once the
//!   greeting offers "no authentication", then nothing more on success,
//!   `05 FF` for no acceptable method, nothing for a wrong greeting
//!   version, and a 10-byte reply with the error's code otherwise;
//! - a complete request took exactly the greeting's and the request's
//!   lengths, and its target, encoded again as a SOCKS5 request, parses to
//!   the same target;
//! - the reply to any outcome is a well-formed reply with the outcome's
//!   code, given once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_fuzz::{chunks, outcome, run_front, Choices, FrontEnd, FrontRun};
use warren_proto::front::{
    Host, Outcome, Refusal, ReplyCode, Socks5, Socks5Error, Target, UsageError, MAX_REQUEST_LEN,
};

fuzz_target!(|bytes: &[u8]| {
    let mut choices = Choices::new(bytes);
    let seed = choices.u32();
    let outcome_choice = choices.u8();
    let mut addr = [0u8; 18];
    addr.iter_mut().for_each(|b| *b = choices.u8());
    let wire = choices.rest();

    let mut whole_front = Socks5::new();
    let (whole, whole_max) = run_front(&mut whole_front, &[wire]);
    let mut bytewise_front = Socks5::new();
    let bytewise: Vec<&[u8]> = wire.chunks(1).collect();
    let (by_byte, by_byte_max) = run_front(&mut bytewise_front, &bytewise);
    let mut chunked_front = Socks5::new();
    let (chunked, chunked_max) = run_front(&mut chunked_front, &chunks(wire, seed));
    assert_eq!(whole, by_byte, "byte-at-a-time reads changed the result");
    assert_eq!(whole, chunked, "chunking changed the result");

    for max_buffered in [whole_max, by_byte_max, chunked_max] {
        assert!(
            max_buffered <= MAX_REQUEST_LEN,
            "buffered {max_buffered} bytes"
        );
    }
    check_sent(wire, &whole);

    if let FrontEnd::Ready(target) = &whole.end {
        check_ready(wire, &whole, target);
        let outcome = outcome(outcome_choice, addr);
        let reply = whole_front.reply(&outcome).expect("reply after Ready");
        check_reply(&reply, &outcome);
        assert_eq!(
            whole_front.reply(&outcome).err(),
            Some(UsageError::AlreadyReplied)
        );
    }
});

/// The full reply for a code with no bound address.
fn failure(code: ReplyCode) -> Vec<u8> {
    vec![5, code as u8, 0, 1, 0, 0, 0, 0, 0, 0]
}

fn check_sent(wire: &[u8], run: &FrontRun<Socks5Error>) {
    const CHOSEN: &[u8] = &[5, 0];
    match &run.end {
        FrontEnd::NeedMore => assert!(
            run.sent.is_empty() || run.sent == CHOSEN,
            "sent {:?} while reading",
            run.sent
        ),
        FrontEnd::Ready(_) => assert_eq!(run.sent, CHOSEN),
        FrontEnd::Rejected(e) => {
            let expected: Vec<u8> = match e {
                Socks5Error::UnsupportedVersion(v) => {
                    assert_eq!(wire.first(), Some(v));
                    Vec::new()
                }
                Socks5Error::NoAcceptableMethod => vec![5, 0xff],
                Socks5Error::RequestVersion(_)
                | Socks5Error::NonZeroReserved(_)
                | Socks5Error::EmptyDomain
                | Socks5Error::ZeroPort => [CHOSEN, &failure(ReplyCode::GeneralFailure)].concat(),
                Socks5Error::UnsupportedCommand(_) => {
                    [CHOSEN, &failure(ReplyCode::CommandNotSupported)].concat()
                }
                Socks5Error::UnsupportedAddressType(_) | Socks5Error::InvalidDomain(_) => {
                    [CHOSEN, &failure(ReplyCode::AddressTypeNotSupported)].concat()
                }
            };
            assert_eq!(run.sent, expected, "answer to {e:?}");
        }
    }
}

/// The request's length from its bytes (independent of the parser).
fn request_len(request: &[u8]) -> usize {
    match request.get(3) {
        Some(1) => 10,
        Some(4) => 22,
        Some(3) => 7 + request.get(4).copied().unwrap_or(0) as usize,
        other => panic!("complete request with address type {other:?}"),
    }
}

fn check_ready(wire: &[u8], run: &FrontRun<Socks5Error>, target: &Target) {
    let greeting = 2 + wire[1] as usize;
    assert!(wire[2..greeting].contains(&0), "accepted without method 0");
    let request = &wire[greeting..];
    let consumed = wire.len() - run.after.len();
    assert_eq!(consumed, greeting + request_len(request), "consumed length");
    assert_eq!(
        request[..3],
        [5, 1, 0],
        "accepted a request that is not CONNECT"
    );
    assert_ne!(target.port, 0);
    assert_eq!(&wire[consumed - 2..consumed], &target.port.to_be_bytes());

    // The target encoded again, as a client would send it.
    let mut again = vec![5, 1, 0, 5, 1, 0];
    match &target.host {
        Host::Ip(std::net::IpAddr::V4(v4)) => {
            again.push(1);
            again.extend_from_slice(&v4.octets());
        }
        Host::Ip(std::net::IpAddr::V6(v6)) => {
            assert!(v6.to_ipv4_mapped().is_none(), "mapped IPv6 not made IPv4");
            again.push(4);
            again.extend_from_slice(&v6.octets());
        }
        Host::Domain(name) => {
            let name = name.as_str();
            assert!(!name.is_empty() && name.len() <= 253, "domain {name:?}");
            again.push(3);
            again.push(name.len() as u8);
            again.extend_from_slice(name.as_bytes());
        }
    }
    again.extend_from_slice(&target.port.to_be_bytes());
    let mut front = Socks5::new();
    let (rerun, _) = run_front(&mut front, &[&again]);
    assert_eq!(
        rerun.end,
        FrontEnd::Ready(target.clone()),
        "re-encoded target"
    );
    assert!(rerun.after.is_empty());
    // The spelling survives too (equality ignores ASCII case).
    assert_eq!(format!("{:?}", rerun.end), format!("{:?}", run.end));
}

fn check_reply(reply: &[u8], outcome: &Outcome) {
    let (code, bound) = match outcome {
        Outcome::Connected { bound } => (0u8, *bound),
        Outcome::Refused(refusal) => (ReplyCode::from(refusal) as u8, None),
    };
    let bound = bound.unwrap_or(std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    assert_eq!(reply[..3], [5, code, 0]);
    let expected_len = if bound.is_ipv4() { 10 } else { 22 };
    assert_eq!(reply.len(), expected_len);
    assert_eq!(reply[3], if bound.is_ipv4() { 1 } else { 4 });
    assert_eq!(reply[reply.len() - 2..], bound.port().to_be_bytes());
    if let Outcome::Refused(Refusal::Denied { .. }) = outcome {
        assert_eq!(code, 2);
    }
}
