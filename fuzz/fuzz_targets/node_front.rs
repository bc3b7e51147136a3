//! Arbitrary client bytes, in arbitrary reads and with time passing, on a
//! socket accepted by a whole `Node`'s SOCKS5 or HTTP CONNECT listener,
//! while another client's flow runs through the same node. Driven through
//! `warren_proto::drive` by the in-memory world of `proto/tests`.
//!
//! Input: which front, then operations (write the next n bytes, let time
//! pass, half-close), each followed by running the world until quiet.
//! Checks beyond "no panic" and "no host error":
//! - what the client receives is exactly what the front end alone answers
//!   to the same reads (checked against a standalone `FrontEnd` fed the
//!   same chunks, and told of the deadline when the node's passes), then
//!   one reply; after a success reply, the echo of the
//!   bytes sent after the request; the client is closed after a rejection,
//!   a refusal, a half-close, or when the request deadline passes;
//! - the other client's flow gets its echo and closes normally;
//! - the node's held bytes stay bounded, and once both clients are done
//!   and the deadline has passed, no flow or socket is left.
#![no_main]

#[path = "../../proto/tests/node_harness/mod.rs"]
mod node_harness;

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use node_harness::certs::Ca;
use node_harness::config::{addr, lab_rule, proxy_fronts, DirectPair, HTTP, SOCKS};
use node_harness::{World, SOCKS_OK};
use warren_fuzz::Choices;
use warren_proto::front::{FrontEnd, HttpConnectConfig, Progress};
use warren_proto::node::NodeConfig;
use warren_proto::policy::EgressPolicy;
use warren_proto::time::Instant;

const OUTSIDE: &str = "198.51.100.7:7";
/// How many operations one input may run.
const MAX_OPS: usize = 48;
/// Most the node may hold at any time (two flows through 64 KiB pipes).
const MAX_HELD: usize = 512 * 1024;

thread_local! {
    /// Certificates take milliseconds to make: one node configuration for
    /// every input.
    static CONFIG: NodeConfig = config();
}

fn config() -> NodeConfig {
    let mut a = DirectPair::new(&Ca::new(1)).a;
    a.fronts = proxy_fronts();
    a.egress = EgressPolicy::new(vec![lab_rule()]);
    a
}

fn socks_to_outside() -> Vec<u8> {
    vec![5, 1, 0, 5, 1, 0, 1, 198, 51, 100, 7, 0, 7]
}

fuzz_target!(|bytes: &[u8]| {
    let config = CONFIG.with(|c| c.clone());
    let deadline = config.timeouts.front_request;
    let mut world = World::new();
    world.add_node(config);
    world.add_echo_server(addr(OUTSIDE));

    let mut choices = Choices::new(bytes);
    let http = choices.u8() % 2 == 1;
    let (listen, mut reference) = if http {
        (HTTP, FrontEnd::http_connect(HttpConnectConfig::default()))
    } else {
        (SOCKS, FrontEnd::socks5())
    };

    // The other client: a good flow to the outside echo server.
    let good = world.connect_app(addr(SOCKS));
    let mut hello = socks_to_outside();
    hello.extend_from_slice(b"ping");
    world.app_write(good, &hello);
    world.run();

    let client = world.connect_app(addr(listen));
    world.run();
    let mut elapsed = Duration::ZERO;
    // What the reference front end says, fed the chunks the node read.
    let mut expected = Vec::new();
    // Once the request is complete: Ok(its target, as text) or Err(()) for a
    // rejection.
    let mut verdict: Option<Result<String, ()>> = None;
    let mut after = Vec::new();
    let mut timed_out = false;
    let mut shut = false;
    for _ in 0..MAX_OPS {
        if choices.is_empty() || shut {
            break;
        }
        match choices.u8() % 8 {
            0 => {
                elapsed += Duration::from_secs(u64::from(choices.u8() % 12));
                world.advance_to(Instant::ZERO + elapsed);
                if verdict.is_none() && !timed_out && elapsed >= deadline {
                    // The node answers as the front end does when its
                    // deadline passes (a 408, say), then closes.
                    timed_out = true;
                    expected.extend(reference.expire().expect("reference expire"));
                }
            }
            1 => {
                world.app_shutdown(client);
                shut = true;
            }
            op => {
                let n = match op {
                    2 => 1,
                    3 | 4 => choices.u8() as usize % 24 + 1,
                    _ => choices.u16() as usize % 4096 + 1,
                };
                let chunk = choices.bytes(n).to_vec();
                world.app_write(client, &chunk);
                if timed_out {
                    // Closed: the bytes go nowhere.
                } else if verdict.is_some() {
                    after.extend_from_slice(&chunk);
                } else {
                    let step = reference.feed(&chunk).expect("reference feed");
                    expected.extend_from_slice(&step.send);
                    match step.progress {
                        Progress::NeedMore => {}
                        Progress::Ready { target, leftover } => {
                            after.extend_from_slice(leftover);
                            verdict = Some(Ok(target.to_string()));
                        }
                        Progress::Rejected(_) => verdict = Some(Err(())),
                    }
                }
            }
        }
        world.run();
        let held = world.nodes[0].held_bytes();
        assert!(held <= MAX_HELD, "node holds {held} bytes");
    }

    let received = world.net.apps[client].received.clone();
    let closed = world.net.apps[client].eof || world.net.apps[client].reset;
    match &verdict {
        None => {
            assert_eq!(received, expected, "answer while reading the request");
            if timed_out || shut {
                assert!(closed, "an unfinished request outlived its deadline or EOF");
            } else {
                assert!(!closed, "closed a client still within its deadline");
            }
        }
        Some(Err(())) => {
            assert_eq!(received, expected, "answer to a rejected request");
            assert!(closed, "a rejected client stays open");
        }
        Some(Ok(target)) => {
            assert!(received.starts_with(&expected), "answer before the reply");
            let rest = &received[expected.len()..];
            let outside = target == OUTSIDE;
            let body = if http {
                http_reply(rest, outside)
            } else {
                socks_reply(rest, outside)
            };
            if outside {
                assert_eq!(body, &after[..], "echo through the tunnel");
                assert_eq!(closed, shut, "tunnel closed iff the client half-closed");
            } else {
                assert!(body.is_empty(), "bytes after a refusal");
                assert!(closed, "a refused client stays open");
            }
        }
    }

    // The other flow is untouched.
    world.app_write(good, b"pong");
    world.app_shutdown(good);
    world.app_shutdown(client);
    world.run();
    let mut want = SOCKS_OK.to_vec();
    want.extend_from_slice(b"pingpong");
    assert_eq!(world.net.apps[good].received, want, "the other flow");
    assert!(world.net.apps[good].eof);

    // Past any deadline nothing is left.
    elapsed += deadline;
    world.advance_to(Instant::ZERO + elapsed);
    world.run();
    assert_eq!(world.nodes[0].flow_count(), 0, "flows left behind");
    assert_eq!(world.nodes[0].sock_count(), 0, "sockets left behind");
});

/// Checks a SOCKS5 reply at the front of `rest` (success iff `ok`) and
/// returns what follows it.
fn socks_reply(rest: &[u8], ok: bool) -> &[u8] {
    assert!(rest.len() >= 10, "no SOCKS5 reply: {rest:?}");
    assert_eq!(rest[0], 5);
    assert_eq!(rest[1] == 0, ok, "reply code {}", rest[1]);
    assert!(rest[1] <= 8);
    assert_eq!(rest[2], 0);
    let len = match rest[3] {
        1 => 10,
        4 => 22,
        other => panic!("reply address type {other}"),
    };
    &rest[len..]
}

/// Checks an HTTP/1.1 response at the front of `rest` (200 iff `ok`) and
/// returns what follows it and its body.
fn http_reply(rest: &[u8], ok: bool) -> &[u8] {
    let mut fields = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut fields);
    let len = match response.parse(rest) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!("no HTTP reply ({other:?}): {rest:?}"),
    };
    let code = response.code.unwrap_or(0);
    assert_eq!(code == 200, ok, "status {code}");
    let body_len = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map_or(0, |h| {
            std::str::from_utf8(h.value)
                .unwrap()
                .parse::<usize>()
                .unwrap()
        });
    assert!(rest.len() >= len + body_len, "short body");
    &rest[len + body_len..]
}
