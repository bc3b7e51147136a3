//! The three front ends driven the way the node drives them, through
//! [`FrontEnd`].

use super::fed::feed_reads;
use super::*;

/// Sent bytes, and the target with leftover or the rejection.
type Fed = (Vec<u8>, Result<(Target, Vec<u8>), FrontError>);

/// Drives `front` like the node: an empty feed on accept, then `reads`;
/// returns everything sent before the reply, the progress' target and
/// leftover, or the error.
fn drive(front: &mut FrontEnd, reads: &[&[u8]]) -> Fed {
    let accept: &[u8] = b"";
    let (sent, got) = feed_reads([accept].into_iter().chain(reads.iter().copied()), |read| {
        front.feed(read)
    });
    match got {
        Ok(Some(ready)) => (sent, Ok(ready)),
        Ok(None) => panic!("request incomplete after all reads"),
        Err(e) => (sent, Err(e)),
    }
}

#[test]
fn all_three_reach_the_same_target_and_keep_pipelined_data() {
    let want = Target::parse("web.shop:8080").unwrap();
    let mut tunnel = FrontEnd::tunnel(want.clone());
    let mut socks = FrontEnd::socks5();
    let mut http = FrontEnd::http_connect(HttpConnectConfig::default());

    let (sent, got) = drive(&mut tunnel, &[]);
    assert!(sent.is_empty());
    assert_eq!(got, Ok((want.clone(), Vec::new())));

    let (sent, got) = drive(
        &mut socks,
        &[b"\x05\x01\x00\x05\x01\x00\x03\x08web.shop\x1f\x90PING"],
    );
    assert_eq!(sent, b"\x05\x00");
    assert_eq!(got, Ok((want.clone(), b"PING".to_vec())));

    let (sent, got) = drive(&mut http, &[b"CONNECT web.shop:8080 HTTP/1.1\r\n\r\nPING"]);
    assert!(sent.is_empty());
    assert_eq!(got, Ok((want, b"PING".to_vec())));

    let connected = Outcome::Connected { bound: None };
    assert_eq!(tunnel.reply(&connected).unwrap(), b"");
    assert_eq!(
        socks.reply(&connected).unwrap(),
        b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    );
    assert_eq!(
        http.reply(&connected).unwrap(),
        b"HTTP/1.1 200 Connection established\r\n\r\n"
    );
}

#[test]
fn a_denial_reaches_each_client_in_its_own_protocol() {
    let denied = Outcome::Refused(Refusal::Denied {
        rule: "no-prod-db".into(),
    });
    let mut socks = FrontEnd::socks5();
    drive(
        &mut socks,
        &[b"\x05\x01\x00\x05\x01\x00\x01\x0a\x00\x00\x01\x15\x38"],
    )
    .1
    .unwrap();
    assert_eq!(
        socks.reply(&denied).unwrap(),
        b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00"
    );

    let mut http = FrontEnd::http_connect(HttpConnectConfig::default());
    drive(&mut http, &[b"CONNECT 10.0.0.1:5432 HTTP/1.1\r\n\r\n"])
        .1
        .unwrap();
    let reply = String::from_utf8(http.reply(&denied).unwrap()).unwrap();
    assert!(reply.starts_with("HTTP/1.1 403 Forbidden\r\n"));
    assert!(reply.ends_with("\r\n\r\ndenied by rule no-prod-db\n"));

    let mut tunnel = FrontEnd::tunnel(Target::parse("db.prod:5432").unwrap());
    drive(&mut tunnel, &[]).1.unwrap();
    assert_eq!(tunnel.reply(&denied).unwrap(), b"");
}

#[test]
fn protocol_errors_name_their_front_end() {
    let mut socks = FrontEnd::socks5();
    let (sent, got) = drive(&mut socks, &[b"\x04\x01"]);
    assert!(sent.is_empty());
    let err = got.unwrap_err();
    assert_eq!(err, FrontError::Socks5(Socks5Error::UnsupportedVersion(4)));
    assert_eq!(err.to_string(), "socks5: greeting version 4, expected 5");
    assert_eq!(socks.feed(b""), Err(UsageError::AlreadyRejected));
    assert_eq!(
        socks.reply(&Outcome::Connected { bound: None }),
        Err(UsageError::AlreadyRejected)
    );

    let mut http = FrontEnd::http_connect(HttpConnectConfig::default());
    let (sent, got) = drive(&mut http, &[b"GET / HTTP/1.1\r\n\r\n"]);
    assert!(sent.starts_with(b"HTTP/1.1 405 "));
    assert_eq!(
        got,
        Err(FrontError::HttpConnect(HttpConnectError::MethodNotAllowed(
            "GET".into()
        )))
    );
}

#[test]
fn a_tunnel_fed_only_once() {
    let mut tunnel = FrontEnd::tunnel(Target::parse("a.b:1").unwrap());
    tunnel.feed(b"").unwrap();
    assert_eq!(
        tunnel.feed(b"x").unwrap_err(),
        UsageError::RequestAlreadyParsed
    );
}
