//! Arbitrary `:method` and `:authority` values into the HBONE CONNECT
//! check a receiving node runs on every inbound stream.
//!
//! Input: one byte splitting the rest into method and authority, one byte
//! saying whether the authority is present. Checks beyond "no panic": a
//! request that passes is a CONNECT with a UTF-8 authority, and the
//! request built for the parsed authority passes again to the same
//! authority, spelled the same.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use warren_fuzz::Choices;
use warren_proto::h2::Request;
use warren_proto::hbone::{connect_request, parse_connect};

fuzz_target!(|bytes: &[u8]| {
    let mut choices = Choices::new(bytes);
    let split = choices.u8() as usize;
    let present = choices.u8() % 8 != 0;
    let rest = choices.rest();
    let (method, authority) = rest.split_at(split.min(rest.len()));
    let mut request = Request::connect(Bytes::copy_from_slice(authority));
    request.method = Bytes::copy_from_slice(method);
    if !present {
        request.authority = None;
    }
    let Ok(parsed) = parse_connect(&request) else {
        return;
    };
    assert_eq!(method, b"CONNECT");
    assert!(present && core::str::from_utf8(authority).is_ok());

    let again = connect_request(&parsed, None);
    let text = parsed.to_string();
    assert_eq!(again.authority.as_deref(), Some(text.as_bytes()));
    let reparsed = parse_connect(&again).expect("our own request parses");
    assert_eq!(reparsed, parsed);
    assert_eq!(reparsed.to_string(), text);
});
