use super::*;
use crate::identity::SpiffeId;
use crate::policy::{Glob, PrincipalPattern, ServiceName};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use quickcheck::{quickcheck, Arbitrary, Gen, QuickCheck, TestResult};

fn pick<'a>(g: &mut Gen, from: &'a [&'a str]) -> &'a str {
    g.choose(from).copied().unwrap_or("a")
}

fn arb_service(g: &mut Gen) -> ServicePort {
    let name = pick(g, &["cart", "db", "web-1", "x"]);
    let ns = pick(g, &["shop", "default", "ops"]);
    ServicePort {
        service: ServiceName::new(name, ns).unwrap(),
        port: u16::arbitrary(g),
    }
}

fn arb_id(g: &mut Gen) -> SpiffeId {
    let td = pick(g, &["example.org", "cluster.local"]);
    let ns = pick(g, &["shop", "default", "Ops"]);
    let sa = pick(g, &["cart", "db", "a.b"]);
    SpiffeId::new(td, ns, sa).unwrap()
}

fn arb_addr(g: &mut Gen) -> Option<SocketAddr> {
    bool::arbitrary(g).then(|| {
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(u32::arbitrary(g))),
            u16::arbitrary(g),
        )
    })
}

fn arb_entry(g: &mut Gen) -> RegistryEntry {
    RegistryEntry {
        service: arb_service(g),
        endpoint: Endpoint {
            identity: arb_id(g),
            instance: u64::arbitrary(g),
            hbone: arb_addr(g),
        },
        end_to_end: bool::arbitrary(g),
    }
}

fn arb_vec<T>(g: &mut Gen, f: fn(&mut Gen) -> T) -> Vec<T> {
    let n = usize::arbitrary(g) % 6;
    (0..n).map(|_| f(g)).collect()
}

#[derive(Clone, Debug)]
struct Arb(Message);

impl Arbitrary for Arb {
    fn arbitrary(g: &mut Gen) -> Arb {
        let m = match u8::arbitrary(g) % 9 {
            0 => Message::Announce(Announce {
                services: arb_vec(g, arb_service),
                reachable_hbone: arb_addr(g),
                relay_plaintext: arb_vec(g, arb_service),
            }),
            1 => Message::Withdraw,
            2 => Message::Registry(RegistrySnapshot {
                epoch: u64::arbitrary(g),
                entries: arb_vec(g, arb_entry),
            }),
            3 => Message::RegistryDelta(RegistryDelta {
                base: u64::arbitrary(g),
                epoch: u64::arbitrary(g),
                added: arb_vec(g, arb_entry),
                removed: arb_vec(g, arb_entry),
            }),
            4 => Message::Rejected(match u8::arbitrary(g) % 3 {
                0 => Rejection::NotAllowed(arb_service(g)),
                1 => Rejection::TooManyServices {
                    announced: u32::arbitrary(g),
                    limit: u32::arbitrary(g),
                },
                _ => Rejection::Revoked,
            }),
            5 => Message::Evict(Evict {
                reason: g
                    .choose(&[
                        EvictReason::Revoked,
                        EvictReason::Misbehaved,
                        EvictReason::Replaced,
                        EvictReason::HubShutdown,
                    ])
                    .cloned()
                    .unwrap_or(EvictReason::Revoked),
            }),
            6 => Message::Ping(u64::arbitrary(g)),
            7 => Message::Pong(u64::arbitrary(g)),
            _ => Message::Error(ControlError {
                code: ErrorCode::Malformed,
                version: u8::arbitrary(g),
            }),
        };
        Arb(m)
    }
}

/// Feeds `bytes` to a fresh decoder in chunks of the given sizes (cycled),
/// collecting messages until the first error.
fn decode_chunked(
    bytes: &[u8],
    chunks: &[u8],
    max: usize,
) -> (Vec<Message>, Option<DecodeError>, usize) {
    let mut dec = FrameDecoder::new(max);
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().map(|&c| usize::from(c) + 1).cycle();
    let mut peak = 0;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).min(rest.len());
        let (mut chunk, later) = rest.split_at(n);
        rest = later;
        while !chunk.is_empty() {
            match dec.decode(&mut chunk) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => assert!(chunk.is_empty(), "decoder stopped early"),
                Err(e) => return (out, Some(e), peak.max(dec.buffered())),
            }
            peak = peak.max(dec.buffered());
        }
    }
    (out, None, peak)
}

#[test]
fn roundtrip_in_any_chunking() {
    fn prop(msgs: Vec<Arb>, chunks: Vec<u8>) -> bool {
        let mut wire = Vec::new();
        for Arb(m) in &msgs {
            encode(m, DEFAULT_MAX_FRAME_LEN, &mut wire).unwrap();
        }
        let (got, err, _) = decode_chunked(&wire, &chunks, DEFAULT_MAX_FRAME_LEN);
        let want: Vec<Message> = msgs.into_iter().map(|Arb(m)| m).collect();
        err.is_none() && got == want
    }
    QuickCheck::new()
        .tests(300)
        .quickcheck(prop as fn(Vec<Arb>, Vec<u8>) -> bool);
}

#[test]
fn garbage_never_panics_nor_overbuffers() {
    fn prop(bytes: Vec<u8>, chunks: Vec<u8>, max: u16) -> bool {
        let max = usize::from(max % 512);
        let (_, _, peak) = decode_chunked(&bytes, &chunks, max);
        peak <= HEADER_LEN + max
    }
    quickcheck(prop as fn(Vec<u8>, Vec<u8>, u16) -> bool);
}

/// Garbage behind a valid header exercises the payload decoder, which a
/// random version byte would almost never reach.
#[test]
fn garbage_payloads_fail_cleanly() {
    fn prop(payload: Vec<u8>) -> TestResult {
        let mut wire = vec![PROTOCOL_VERSION];
        wire.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        wire.extend_from_slice(&payload);
        let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
        let mut input = &wire[..];
        match dec.decode(&mut input) {
            Ok(Some(m)) => {
                // postcard accepts non-canonical varints, so the bytes need
                // not re-encode identically; the value must survive a
                // round trip, and the whole frame must have been taken.
                let mut again = Vec::new();
                encode(&m, DEFAULT_MAX_FRAME_LEN, &mut again).unwrap();
                let back = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN).decode(&mut &again[..]);
                TestResult::from_bool(input.is_empty() && back == Ok(Some(m)))
            }
            Ok(None) => TestResult::failed(),
            Err(DecodeError::Malformed(_) | DecodeError::TrailingBytes { .. }) => {
                // Poisoned: the next call fails the same way and takes nothing.
                let mut more: &[u8] = &[1, 2, 3];
                TestResult::from_bool(dec.decode(&mut more).is_err() && more.len() == 3)
            }
            Err(_) => TestResult::failed(),
        }
    }
    quickcheck(prop as fn(Vec<u8>) -> TestResult);
}

#[test]
fn oversized_frame_is_refused_at_its_header() {
    fn prop(Arb(m): Arb) -> TestResult {
        let mut wire = Vec::new();
        encode(&m, usize::MAX, &mut wire).unwrap();
        let len = wire.len() - HEADER_LEN;
        if len == 0 {
            return TestResult::discard();
        }
        let max = len - 1;
        // The encoder refuses too, leaving its output alone.
        let mut out = vec![7];
        let refused = encode(&m, max, &mut out) == Err(EncodeError::TooLong { len, max });
        let mut dec = FrameDecoder::new(max);
        let mut input = &wire[..];
        let err = dec.decode(&mut input);
        TestResult::from_bool(
            refused
                && out == [7]
                && err
                    == Err(DecodeError::FrameTooLong {
                        len: u32::try_from(len).unwrap(),
                        max,
                    })
                // Nothing past the header was taken.
                && input.len() == len
                && dec.buffered() == 0,
        )
    }
    quickcheck(prop as fn(Arb) -> TestResult);
}

#[test]
fn newer_version_is_rejected_before_its_body() {
    let mut wire = Vec::new();
    encode(&Message::Ping(9), DEFAULT_MAX_FRAME_LEN, &mut wire).unwrap();
    wire[0] = PROTOCOL_VERSION + 1;
    let mut dec = FrameDecoder::new(DEFAULT_MAX_FRAME_LEN);
    let mut input = &wire[..];
    let err = dec.decode(&mut input).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnsupportedVersion {
            got: PROTOCOL_VERSION + 1
        }
    );
    assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
    assert_eq!(input.len(), wire.len() - HEADER_LEN);
    // Stays failed.
    let mut again: &[u8] = &[PROTOCOL_VERSION, 0, 0, 0, 1, 6];
    assert_eq!(dec.decode(&mut again), Err(err));
}

/// Version 1 announcements lacked the end-to-end list: a version-1 peer's
/// frame is refused by its version byte, never misread as version 2.
#[test]
fn version_one_frames_are_refused() {
    assert_eq!(PROTOCOL_VERSION, 2);
    let mut wire = Vec::new();
    encode(
        &Message::Announce(announce(&[("cart.shop", 80)])),
        256,
        &mut wire,
    )
    .unwrap();
    wire[0] = 1;
    let mut input = &wire[..];
    assert_eq!(
        FrameDecoder::new(256).decode(&mut input),
        Err(DecodeError::UnsupportedVersion { got: 1 })
    );
}

#[test]
fn unknown_message_tag_is_malformed() {
    // Tag 200 is no variant.
    let wire = [PROTOCOL_VERSION, 0, 0, 0, 2, 200, 1];
    let mut input = &wire[..];
    let got = FrameDecoder::new(64).decode(&mut input);
    assert!(matches!(got, Err(DecodeError::Malformed(_))), "{got:?}");
}

#[test]
fn invalid_names_inside_a_message_are_malformed() {
    // A Withdraw-tagged byte followed by an extra byte: trailing.
    let mut wire = Vec::new();
    encode(&Message::Withdraw, 64, &mut wire).unwrap();
    let mut trailing = wire.clone();
    trailing[4] += 1;
    trailing.push(0);
    let mut input = &trailing[..];
    assert_eq!(
        FrameDecoder::new(64).decode(&mut input),
        Err(DecodeError::TrailingBytes { unused: 1 })
    );
    // An announced service name that is not name.namespace.
    let good = Message::Announce(Announce {
        services: vec![ServicePort {
            service: ServiceName::parse("cart.shop").unwrap(),
            port: 80,
        }],
        reachable_hbone: None,
        relay_plaintext: Vec::new(),
    });
    let mut wire = Vec::new();
    encode(&good, 64, &mut wire).unwrap();
    let at = wire.windows(9).position(|w| w == b"cart.shop").unwrap();
    wire[at + 4] = b'_';
    let mut input = &wire[..];
    assert!(matches!(
        FrameDecoder::new(64).decode(&mut input),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn directions() {
    assert!(Message::Announce(Announce::default()).may_be_sent_by(Sender::Agent));
    assert!(!Message::Announce(Announce::default()).may_be_sent_by(Sender::Hub));
    assert!(!Message::Registry(RegistrySnapshot::default()).may_be_sent_by(Sender::Agent));
    assert!(!Message::Evict(Evict {
        reason: EvictReason::Revoked
    })
    .may_be_sent_by(Sender::Agent));
    assert!(Message::Ping(1).may_be_sent_by(Sender::Agent));
    assert!(Message::Pong(1).may_be_sent_by(Sender::Hub));
}

fn sp(s: &str, port: u16) -> ServicePort {
    ServicePort {
        service: ServiceName::parse(s).unwrap(),
        port,
    }
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn announce(services: &[(&str, u16)]) -> Announce {
    Announce {
        services: services.iter().map(|&(s, p)| sp(s, p)).collect(),
        reachable_hbone: None,
        relay_plaintext: Vec::new(),
    }
}

fn policy() -> AnnouncePolicy {
    AnnouncePolicy::new(vec![
        ExportRule {
            principals: vec![PrincipalPattern::new("example.org/ns/shop/sa/*").unwrap()],
            services: vec![ServiceAllowance::OwnNamespace],
        },
        ExportRule {
            principals: vec![PrincipalPattern::new("example.org/ns/ops/sa/gateway").unwrap()],
            services: vec![ServiceAllowance::Matching(Glob::new("*.edge").unwrap())],
        },
    ])
}

#[test]
fn announce_policy_table() {
    let shop = id("spiffe://example.org/ns/shop/sa/cart");
    let gw = id("spiffe://example.org/ns/ops/sa/gateway");
    let other_td = id("spiffe://evil.org/ns/shop/sa/cart");
    let ops_other = id("spiffe://example.org/ns/ops/sa/batch");
    let p = policy();
    let cases: Vec<(&SpiffeId, Announce, Result<(), Rejection>)> = vec![
        (&shop, announce(&[("cart.shop", 80)]), Ok(())),
        (&shop, announce(&[]), Ok(())),
        (
            &shop,
            announce(&[("cart.shop", 80), ("db.default", 5432)]),
            Err(Rejection::NotAllowed(sp("db.default", 5432))),
        ),
        (
            &other_td,
            announce(&[("cart.shop", 80)]),
            Err(Rejection::NotAllowed(sp("cart.shop", 80))),
        ),
        (&gw, announce(&[("web.edge", 443)]), Ok(())),
        // The gateway's rule is a glob, not its own namespace.
        (
            &gw,
            announce(&[("web.ops", 443)]),
            Err(Rejection::NotAllowed(sp("web.ops", 443))),
        ),
        (
            &ops_other,
            announce(&[("web.edge", 443)]),
            Err(Rejection::NotAllowed(sp("web.edge", 443))),
        ),
        (
            &shop,
            announce(&[("cart.shop", 0)]),
            Err(Rejection::ZeroPort(sp("cart.shop", 0))),
        ),
        (
            &shop,
            announce(&[("cart.shop", 80), ("cart.shop", 80)]),
            Err(Rejection::Duplicate(sp("cart.shop", 80))),
        ),
        (
            &shop,
            announce(&[("cart.shop", 80), ("cart.shop", 81)]),
            Ok(()),
        ),
    ];
    for (who, a, want) in cases {
        assert_eq!(p.check(who, &a), want, "{who} {a:?}");
    }
    // Default policy denies everything.
    assert_eq!(
        AnnouncePolicy::default().check(&shop, &announce(&[("cart.shop", 80)])),
        Err(Rejection::NotAllowed(sp("cart.shop", 80)))
    );
    let small = policy().with_max_services(1);
    assert_eq!(
        small.check(&shop, &announce(&[("cart.shop", 80), ("cart.shop", 81)])),
        Err(Rejection::TooManyServices {
            announced: 2,
            limit: 1
        })
    );
}

/// The decision depends on the verified identity only: the same bytes from
/// two identities get different answers, and no field of the message can
/// name an identity (an endpoint identity inside a forged hub message is
/// never consulted, and that message is refused by direction).
#[test]
fn identity_comes_from_the_session_not_the_message() {
    let a = announce(&[("cart.shop", 80)]);
    let mut wire = Vec::new();
    encode(&Message::Announce(a), 1024, &mut wire).unwrap();
    let decoded = match FrameDecoder::new(1024).decode(&mut &wire[..]).unwrap() {
        Some(Message::Announce(a)) => a,
        other => panic!("{other:?}"),
    };
    let p = policy();
    assert_eq!(
        p.check(&id("spiffe://example.org/ns/shop/sa/cart"), &decoded),
        Ok(())
    );
    assert!(p
        .check(&id("spiffe://example.org/ns/default/sa/cart"), &decoded)
        .is_err());
    // A registry row naming the shop identity, sent by an agent, is not an
    // announcement at all.
    let forged = Message::Registry(RegistrySnapshot {
        epoch: 1,
        entries: vec![RegistryEntry {
            service: sp("cart.shop", 80),
            endpoint: Endpoint {
                identity: id("spiffe://example.org/ns/shop/sa/cart"),
                instance: 1,
                hbone: None,
            },
            end_to_end: true,
        }],
    });
    assert!(!forged.may_be_sent_by(Sender::Agent));
}

#[test]
fn snapshot_apply_detects_gaps_and_disagreement() {
    let row = RegistryEntry {
        service: sp("cart.shop", 80),
        endpoint: Endpoint {
            identity: id("spiffe://example.org/ns/shop/sa/cart"),
            instance: 3,
            hbone: None,
        },
        end_to_end: true,
    };
    let mut snap = RegistrySnapshot::default();
    let add = RegistryDelta {
        base: 0,
        epoch: 1,
        added: vec![row.clone()],
        removed: vec![],
    };
    snap.apply(&add).unwrap();
    assert_eq!(snap.entries, vec![row.clone()]);
    assert_eq!(
        snap.apply(&add),
        Err(DeltaError::EpochGap { have: 1, base: 0 })
    );
    let readd = RegistryDelta {
        base: 1,
        epoch: 2,
        ..add.clone()
    };
    assert_eq!(snap.apply(&readd), Err(DeltaError::Inconsistent));
    assert_eq!(snap.epoch, 1, "failed apply leaves the snapshot alone");
}

/// The default frame limit holds a registry of several hundred rows with
/// realistic names (the figure the design note quotes); past that the
/// encoder refuses rather than sending what the peer would refuse.
#[test]
fn default_limit_holds_hundreds_of_rows() {
    let rows = |n: u64| RegistrySnapshot {
        epoch: n,
        entries: (0..n)
            .map(|i| RegistryEntry {
                service: sp("checkout-api.payments", 8443),
                endpoint: Endpoint {
                    identity: id(&format!(
                        "spiffe://prod.example.org/ns/payments/sa/checkout-{i}"
                    )),
                    instance: i,
                    hbone: Some(SocketAddr::from(([10, 1, 2, 3], 15008))),
                },
                end_to_end: true,
            })
            .collect(),
    };
    let mut out = Vec::new();
    assert!(encode(
        &Message::Registry(rows(500)),
        DEFAULT_MAX_FRAME_LEN,
        &mut out
    )
    .is_ok());
    assert!(matches!(
        encode(
            &Message::Registry(rows(2000)),
            DEFAULT_MAX_FRAME_LEN,
            &mut out
        ),
        Err(EncodeError::TooLong { .. })
    ));
}

/// Frames in `bytes`, decoded with a receiver's `max_len`.
fn decode_all(bytes: &[u8], max_len: usize) -> Vec<Message> {
    let mut decoder = FrameDecoder::new(max_len);
    let mut input = bytes;
    let mut out = Vec::new();
    while !input.is_empty() {
        match decoder.decode(&mut input) {
            Ok(Some(m)) => out.push(m),
            Ok(None) => break,
            Err(e) => panic!("a part over the limit: {e}"),
        }
    }
    out
}

/// What an agent holds after applying `messages` in order.
fn replay(start: RegistrySnapshot, messages: Vec<Message>) -> RegistrySnapshot {
    let mut held = start;
    for m in messages {
        match m {
            Message::Registry(s) => held = s,
            Message::RegistryDelta(d) => held.apply(&d).unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    }
    held
}

fn sorted_rows(g: &mut Gen, n: usize) -> Vec<RegistryEntry> {
    let rows: std::collections::BTreeSet<RegistryEntry> = (0..n).map(|_| arb_entry(g)).collect();
    rows.into_iter().collect()
}

/// A snapshot too big for one frame arrives as parts, each within the
/// receiver's limit, that rebuild it exactly.
#[test]
fn split_snapshots_fit_the_limit_and_rebuild_exactly() {
    fn prop(seed: u64, rows: u8, limit: u16) -> TestResult {
        let max_len = 200 + usize::from(limit) % 2000;
        let mut g = Gen::new(usize::try_from(seed % 50).unwrap_or(1) + 1);
        let snapshot = RegistrySnapshot {
            epoch: seed,
            entries: sorted_rows(&mut g, usize::from(rows)),
        };
        let mut out = Vec::new();
        let message = Message::Registry(snapshot.clone());
        if encode_split(&message, max_len, &mut out).is_err() {
            return TestResult::failed();
        }
        let parts = decode_all(&out, max_len);
        let whole = postcard::to_allocvec(&message).unwrap().len();
        TestResult::from_bool(
            (whole <= max_len) == (parts.len() == 1)
                && replay(RegistrySnapshot::default(), parts) == snapshot,
        )
    }
    QuickCheck::new()
        .tests(200)
        .quickcheck(prop as fn(u64, u8, u16) -> TestResult);
}

/// A delta too big for one frame is applied in parts with the same result,
/// and only the last part moves the epoch.
#[test]
fn split_deltas_apply_like_the_whole() {
    fn prop(seed: u64, kept: u8, gone: u8, new: u8, limit: u16) -> TestResult {
        let max_len = 200 + usize::from(limit) % 2000;
        let mut g = Gen::new(usize::try_from(seed % 50).unwrap_or(1) + 1);
        let rows = sorted_rows(
            &mut g,
            usize::from(kept) + usize::from(gone) + usize::from(new),
        );
        let (keep, rest) = rows.split_at(usize::from(kept).min(rows.len()));
        let (removed, added) = rest.split_at(usize::from(gone).min(rest.len()));
        let base = seed % 1000;
        let start = RegistrySnapshot {
            epoch: base,
            entries: keep
                .iter()
                .chain(removed)
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        let delta = RegistryDelta {
            base,
            epoch: base + 1,
            added: added.to_vec(),
            removed: removed.to_vec(),
        };
        let mut want = start.clone();
        want.apply(&delta).unwrap();
        let mut out = Vec::new();
        if encode_split(&Message::RegistryDelta(delta), max_len, &mut out).is_err() {
            return TestResult::failed();
        }
        let parts = decode_all(&out, max_len);
        let epochs_ok = parts.iter().enumerate().all(|(i, m)| match m {
            Message::RegistryDelta(d) => {
                d.base == base && d.epoch == if i + 1 == parts.len() { base + 1 } else { base }
            }
            _ => false,
        });
        TestResult::from_bool(epochs_ok && replay(start, parts) == want)
    }
    QuickCheck::new()
        .tests(200)
        .quickcheck(prop as fn(u64, u8, u8, u8, u16) -> TestResult);
}

#[test]
fn a_row_longer_than_the_limit_is_an_error_and_writes_nothing() {
    let mut g = Gen::new(10);
    let snapshot = RegistrySnapshot {
        epoch: 1,
        entries: sorted_rows(&mut g, 3),
    };
    let mut out = vec![7];
    let err = encode_split(&Message::Registry(snapshot), 40, &mut out).unwrap_err();
    assert!(matches!(err, EncodeError::TooLong { max: 40, .. }));
    assert_eq!(out, vec![7]);
}
