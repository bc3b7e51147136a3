//! Rule 3 at a node's proxy fronts: a client that drips its request or
//! sends a huge head hits a limit, gets the protocol's answer, and the node
//! holds no more than the limit meanwhile.

mod node_harness;

use std::time::Duration;

use node_harness::certs::Ca;
use node_harness::config::{addr, proxy_fronts, DirectPair, HTTP, SOCKS};
use node_harness::World;
use warren_proto::front::HttpConnectConfig;
use warren_proto::node::CloseReason;
use warren_proto::time::Instant;

/// Node A of a [`DirectPair`] with a SOCKS5 and an HTTP CONNECT front.
fn world() -> World {
    let mut pair = DirectPair::new(&Ca::new(1));
    pair.a.fronts = proxy_fronts();
    pair.world()
}

/// A client at `listen` writes `request` one byte per second from t = 0;
/// returns the client app and how many bytes it wrote before it was
/// closed.
fn drip(world: &mut World, listen: &str, request: &[u8]) -> (usize, usize) {
    let app = world.connect_app(addr(listen));
    world.run();
    for (i, byte) in request.iter().enumerate() {
        world.advance_to(Instant::ZERO + Duration::from_secs(i as u64));
        world.run();
        if world.net.apps[app].eof {
            return (app, i);
        }
        world.app_write(app, &[*byte]);
        world.run();
    }
    (app, request.len())
}

/// The node's front-request deadline, 10 s by default.
fn deadline(world: &World) -> usize {
    world.nodes[0].config().timeouts.front_request.as_secs() as usize
}

#[test]
fn http_request_dripped_a_byte_a_second_gets_408_at_the_deadline() {
    let mut world = world();
    let head = b"CONNECT echo.shop:80 HTTP/1.1\r\nHost: echo.shop:80\r\n\r\n";
    let (app, written) = drip(&mut world, HTTP, head);
    // Each byte arrived well within the deadline, but the head as a whole
    // did not: bytes written at 0..=9 s, closed at 10 s.
    assert_eq!(
        written,
        deadline(&world),
        "closed at the deadline, not later"
    );
    let got = String::from_utf8(world.net.apps[app].received.clone()).unwrap();
    assert!(
        got.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{got:?}"
    );
    assert!(got.contains("\r\nConnection: close\r\n"), "{got:?}");
    assert!(
        got.ends_with("\r\n\r\nrequest head not complete in time\n"),
        "{got:?}"
    );
    assert_eq!(
        world.close_reasons(0),
        vec![CloseReason::FrontEnd("request not complete in time".into())]
    );
    assert_eq!(world.nodes[0].sock_count(), 0);
}

#[test]
fn socks5_request_dripped_a_byte_a_second_gets_a_failure_reply_at_the_deadline() {
    let mut world = world();
    let mut request = vec![5, 1, 0, 5, 1, 0, 3, 9];
    request.extend_from_slice(b"echo.shop");
    request.extend_from_slice(&80u16.to_be_bytes());
    let (app, written) = drip(&mut world, SOCKS, &request);
    assert_eq!(written, deadline(&world));
    // The method choice, then "general SOCKS server failure".
    assert_eq!(
        world.net.apps[app].received,
        [5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(world.nodes[0].sock_count(), 0);
}

#[test]
fn socks5_greeting_unfinished_at_the_deadline_is_closed_without_a_reply() {
    let mut world = world();
    // NMETHODS says 255: the greeting never completes.
    let (app, written) = drip(
        &mut world,
        SOCKS,
        &[5, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    );
    assert_eq!(written, deadline(&world));
    // Before the method choice SOCKS5 has no message for this.
    assert!(world.net.apps[app].received.is_empty());
    assert!(world.net.apps[app].eof);
    assert_eq!(world.nodes[0].sock_count(), 0);
}

#[test]
fn a_one_megabyte_header_line_gets_431_and_the_node_holds_at_most_the_limit() {
    let mut world = world();
    let app = world.connect_app(addr(HTTP));
    let mut head = b"CONNECT echo.shop:80 HTTP/1.1\r\nX-Big: ".to_vec();
    head.resize(1 << 20, b'a');
    world.app_write(app, &head);
    // The front end keeps at most its head limit; the node's own buffers
    // (read but not passed on, answers not yet written) stay under one
    // read plus the answer.
    let bound = world.read_size + 1024;
    world.check = Some(Box::new(move |w: &World| {
        let held = w.nodes[0].held_bytes();
        assert!(held <= bound, "node holds {held} bytes");
    }));
    world.run();
    let got = String::from_utf8(world.net.apps[app].received.clone()).unwrap();
    assert!(
        got.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{got:?}"
    );
    assert!(
        got.ends_with("request head larger than 8192 bytes\n"),
        "{got:?}"
    );
    assert!(world.net.apps[app].eof);
    assert!(matches!(
        world.close_reasons(0)[..],
        [CloseReason::FrontEnd(_)]
    ));
    assert_eq!(world.nodes[0].sock_count(), 0);
}

#[test]
fn expire_answers_once_and_only_while_reading() {
    use warren_proto::front::{FrontEnd, Progress, Target, UsageError};

    // HTTP: a 408 with its own body, then the front end is done.
    let mut http = FrontEnd::http_connect(HttpConnectConfig::default());
    let _ = http.feed(b"CONNECT echo.shop:80 HTTP/1.1\r\n").unwrap();
    let answer = String::from_utf8(http.expire().unwrap()).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert_eq!(http.expire(), Err(UsageError::AlreadyRejected));
    assert_eq!(http.feed(b"\r\n").unwrap_err(), UsageError::AlreadyRejected);

    // SOCKS5: nothing before the method choice, a failure reply after.
    let mut greeting = FrontEnd::socks5();
    let _ = greeting.feed(&[5, 2, 0]).unwrap();
    assert_eq!(greeting.expire(), Ok(Vec::new()));
    let mut request = FrontEnd::socks5();
    assert_eq!(request.feed(&[5, 1, 0, 5]).unwrap().send, [5, 0]);
    assert_eq!(request.expire(), Ok(vec![5, 1, 0, 1, 0, 0, 0, 0, 0, 0]));

    // A complete request is no longer the front end's to expire.
    let mut done = FrontEnd::http_connect(HttpConnectConfig::default());
    let step = done.feed(b"CONNECT a.b:1 HTTP/1.1\r\n\r\n").unwrap();
    assert!(matches!(step.progress, Progress::Ready { .. }));
    assert_eq!(done.expire(), Err(UsageError::RequestAlreadyParsed));
    let mut tunnel = FrontEnd::tunnel(Target::parse("a.b:1").unwrap());
    let _ = tunnel.feed(b"").unwrap();
    assert_eq!(tunnel.expire(), Err(UsageError::RequestAlreadyParsed));
}
