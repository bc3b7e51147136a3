//! What a cold flow asks of the crypto provider's key exchange: exactly one
//! X25519 key pair on each side per new mesh connection, taken through the
//! group's `start` (no HelloRetryRequest, no second key share, and never a
//! key pair made some other way). Runtime hosts rely on it: warren-host
//! makes the next X25519 key pairs while its node is idle and hands one out
//! per `start` (issue 8, benches/WARREN-BENCH.md "Cold flows: the mean"),
//! a stock of two, one for the next outgoing and one for the next incoming
//! handshake. A second `start` per handshake would empty that stock in
//! the flow's own turn, and a key pair made outside `start` would never
//! come from it.

mod node_harness;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use node_harness::certs::{Ca, Leaf, TD};
use node_harness::common::{at, ed25519_pkcs8, key, self_signed_ca, workload_leaf, FixedTime};
use node_harness::config::{addr, cold_pair, DirectPair, ECHO, TUNNEL};
use node_harness::World;
use rustls::crypto::{ActiveKeyExchange, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::PrivateKeyDer;
use rustls::{Error, NamedGroup};
use warren_proto::identity::{MeshTlsParams, MeshTrust, Resumption, TrustDomain};
use warren_proto::node::MeshIdentity;

/// ring's X25519, counting the key pairs handed out.
#[derive(Debug)]
struct CountedX25519 {
    started: AtomicUsize,
}

impl CountedX25519 {
    const fn new() -> CountedX25519 {
        CountedX25519 {
            started: AtomicUsize::new(0),
        }
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }
}

impl SupportedKxGroup for CountedX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        self.started.fetch_add(1, Ordering::Relaxed);
        rustls::crypto::ring::kx_group::X25519.start()
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// Agent A's and agent B's groups (rustls wants them `'static`; each test
/// below has its own pair, so the tests may run in parallel).
static A_FULL: CountedX25519 = CountedX25519::new();
static B_FULL: CountedX25519 = CountedX25519::new();
static A_RESUMED: CountedX25519 = CountedX25519::new();
static B_RESUMED: CountedX25519 = CountedX25519::new();

/// ring's default provider with X25519 (first, as by default) counted.
fn provider(x25519: &'static CountedX25519) -> Arc<CryptoProvider> {
    let base = rustls::crypto::ring::default_provider();
    let kx_groups = base
        .kx_groups
        .iter()
        .map(|&g| -> &'static dyn SupportedKxGroup {
            if g.name() == NamedGroup::X25519 {
                x25519
            } else {
                g
            }
        })
        .collect();
    Arc::new(CryptoProvider { kx_groups, ..base })
}

/// The node harness's identity for `shop/<sa>` (same CA, key and
/// certificate as [`Ca::identity_with`]), on `provider`.
fn identity(
    seed: u8,
    sa: &str,
    provider: Arc<CryptoProvider>,
    resumption: Resumption,
) -> MeshIdentity {
    let (issuer, ca_cert) = self_signed_ca("mesh ca", 1);
    let leaf = Leaf::default();
    let mut params = workload_leaf(&format!("spiffe://{TD}/ns/shop/sa/{sa}"), seed);
    params.not_after = at(leaf.not_after);
    params.serial_number = Some(u64::from(seed).into());
    let cert = params.signed_by(&key(seed), &issuer).unwrap().der().clone();
    let trust = MeshTrust::new(TrustDomain::new(TD).unwrap(), &[ca_cert]).unwrap();
    let params = MeshTlsParams::new(
        provider,
        Arc::new(FixedTime(node_harness::certs::NOW)),
        Arc::new(trust),
        vec![cert],
        PrivateKeyDer::Pkcs8(ed25519_pkcs8(seed).into()),
    )
    .unwrap()
    .with_resumption(resumption);
    MeshIdentity::new(params).unwrap()
}

/// [`cold_pair`] (A's pool closes a connection 1 s after its last
/// stream), with each node's X25519 counted.
fn world(a: &'static CountedX25519, b: &'static CountedX25519, resumption: Resumption) -> World {
    let DirectPair {
        a: mut a_config,
        b: mut b_config,
    } = cold_pair(resumption);
    a_config.identity = identity(2, "cart", provider(a), resumption);
    b_config.identity = identity(3, "echo", provider(b), resumption);
    let mut world = World::new();
    world.add_node(a_config);
    world.add_node(b_config);
    world.add_echo_server(addr(ECHO));
    world
}

#[test]
fn a_resumed_cold_flow_takes_one_x25519_key_pair_on_each_side() {
    let mut world = world(&A_RESUMED, &B_RESUMED, Resumption::default());
    for flow in 1..=4 {
        world.cold_echo_flow(addr(TUNNEL));
        assert_eq!(
            (A_RESUMED.started(), B_RESUMED.started()),
            (flow, flow),
            "key pairs (A, B) after {flow} cold flows"
        );
    }
    // The first was a full handshake, the rest resumed (psk_dhe_ke: a
    // resumed handshake still makes a key pair on each side).
    let counts = world.nodes[0].handshake_counts();
    assert_eq!((counts.full, counts.resumed), (1, 3), "{counts:?}");
}

#[test]
fn a_full_handshake_cold_flow_takes_one_x25519_key_pair_on_each_side() {
    let mut world = world(&A_FULL, &B_FULL, Resumption::disabled());
    for flow in 1..=3 {
        world.cold_echo_flow(addr(TUNNEL));
        assert_eq!(
            (A_FULL.started(), B_FULL.started()),
            (flow, flow),
            "key pairs (A, B) after {flow} cold flows"
        );
    }
    let counts = world.nodes[0].handshake_counts();
    assert_eq!((counts.full, counts.resumed), (3, 0), "{counts:?}");
}

#[test]
fn the_counted_identity_is_the_harness_identity() {
    // Same CA, key and certificate as the harness makes: only the
    // provider differs, so the flows above are the harness's cold flows.
    let harness = Ca::new(1).identity_with(2, "shop", "cart", Leaf::default());
    let counted = identity(2, "cart", provider(&A_FULL), Resumption::disabled());
    assert_eq!(
        harness.params().certificate_chain(),
        counted.params().certificate_chain()
    );
}
