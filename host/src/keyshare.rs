//! Key shares made before a handshake needs them.
//!
//! A TLS 1.3 handshake makes a fresh X25519 key pair on each side: the
//! client for its ClientHello, the server for its ServerHello. The public
//! half is a base-point multiplication (≈ 25–30 µs on the bench VM, issue 8),
//! and both land on a cold flow's critical path: agent A's before its first
//! byte goes out, agent B's before its first flight. Neither depends on
//! anything the peer sends, so the owner task makes them while it has
//! nothing else to do (just before it parks, and only while no handshake
//! of its node is waiting for the peer's next flight: made while one waits,
//! a key pair delays that flight's processing whenever the peer ran on the
//! same CPU) and the handshake takes one ready-made.
//!
//! Forward secrecy is unchanged: every key pair is still used for exactly
//! one handshake and dropped after it (rustls consumes it); it only exists
//! a little earlier. The stock is small ([`SPARES`]) and shared by every
//! node in the process, since rustls wants its key exchange groups
//! `'static`.
//!
//! Use [`with_stocked_key_shares`] on the provider a node's identity is
//! built with; the owner task refills the stock ([`top_up`]) on its own.
//! A provider without it, or a stock that ran dry in a burst of
//! handshakes, makes key pairs inline as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rustls::crypto::{ActiveKeyExchange, CryptoProvider, SupportedKxGroup};
use rustls::{Error, NamedGroup};

/// Key pairs kept ready: one for the next outgoing and one for the next
/// incoming handshake, so a cold flow through two agents finds one on each
/// side (each side uses one per new connection).
pub const SPARES: usize = 2;

/// The stocked group wraps this one (ring's X25519, the group every mesh
/// handshake uses first).
static BASE: &dyn SupportedKxGroup = rustls::crypto::ring::kx_group::X25519;

/// X25519 key pairs made ahead of time, newest last.
static STOCK: Mutex<Vec<Box<dyn ActiveKeyExchange>>> = Mutex::new(Vec::new());

/// Whether any provider was made with [`with_stocked_key_shares`]: until
/// then [`top_up`] makes nothing nobody would take.
static IN_USE: AtomicBool = AtomicBool::new(false);

/// X25519 that takes a key pair from the stock when one is there.
#[derive(Debug)]
struct StockedX25519;

/// The one instance the providers point to.
static STOCKED_X25519: StockedX25519 = StockedX25519;

impl SupportedKxGroup for StockedX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let spare = STOCK.lock().unwrap_or_else(PoisonError::into_inner).pop();
        match spare {
            Some(pair) => Ok(pair),
            None => BASE.start(),
        }
    }

    fn name(&self) -> NamedGroup {
        BASE.name()
    }

    fn fips(&self) -> bool {
        BASE.fips()
    }
}

/// `provider` with its X25519 group replaced by ring's, taking key pairs
/// from the stock (same place in the preference order). A provider
/// without X25519 is returned unchanged.
pub fn with_stocked_key_shares(provider: CryptoProvider) -> CryptoProvider {
    IN_USE.store(true, Ordering::Relaxed);
    let kx_groups = provider
        .kx_groups
        .iter()
        .map(|&group| -> &'static dyn SupportedKxGroup {
            if group.name() == NamedGroup::X25519 {
                &STOCKED_X25519
            } else {
                group
            }
        })
        .collect();
    CryptoProvider {
        kx_groups,
        ..provider
    }
}

/// Whether the stock is short of [`SPARES`] and some provider takes from
/// it: one lock, so the owner task asks every time it is about to park.
pub fn short() -> bool {
    IN_USE.load(Ordering::Relaxed)
        && STOCK.lock().unwrap_or_else(PoisonError::into_inner).len() < SPARES
}

/// Makes key pairs until the stock holds [`SPARES`]; returns how many it
/// made.
pub fn top_up() -> usize {
    let mut made = 0;
    if !IN_USE.load(Ordering::Relaxed) {
        return made;
    }
    loop {
        // Made outside the lock: another node's handshake may take one meanwhile.
        if STOCK.lock().unwrap_or_else(PoisonError::into_inner).len() >= SPARES {
            return made;
        }
        let Ok(pair) = BASE.start() else {
            return made;
        };
        made += 1;
        STOCK
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pair);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stock is process-wide: the tests that touch it take turns.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn drain() {
        STOCK.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    #[test]
    fn a_handshake_takes_a_stocked_pair_once_and_the_stock_refills() {
        let _turn = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        drain();
        IN_USE.store(true, Ordering::Relaxed);
        assert!(short());
        assert_eq!(top_up(), SPARES);
        assert!(!short());
        assert_eq!(top_up(), 0, "a full stock makes nothing");
        let stocked: Vec<Vec<u8>> = STOCK
            .lock()
            .unwrap()
            .iter()
            .map(|k| k.pub_key().to_vec())
            .collect();
        let first = STOCKED_X25519.start().unwrap();
        let second = STOCKED_X25519.start().unwrap();
        // Newest first, each pair handed out once.
        assert_eq!(first.pub_key(), &stocked[1][..]);
        assert_eq!(second.pub_key(), &stocked[0][..]);
        // Dry: made inline, and still fresh.
        let inline = STOCKED_X25519.start().unwrap();
        assert!(!stocked.iter().any(|k| k[..] == *inline.pub_key()));
        assert!(short());
        assert_eq!(top_up(), SPARES);
        drain();
    }

    #[test]
    fn stocked_pairs_agree_with_a_peer_like_fresh_ones() {
        let _turn = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        drain();
        IN_USE.store(true, Ordering::Relaxed);
        top_up();
        let ours = STOCKED_X25519.start().unwrap();
        let theirs = BASE.start().unwrap();
        let (our_pub, their_pub) = (ours.pub_key().to_vec(), theirs.pub_key().to_vec());
        let a = ours.complete(&their_pub).unwrap();
        let b = theirs.complete(&our_pub).unwrap();
        assert_eq!(a.secret_bytes(), b.secret_bytes());
        assert_eq!(STOCKED_X25519.name(), NamedGroup::X25519);
        drain();
    }

    #[test]
    fn only_ring_x25519_is_replaced_and_the_order_is_kept() {
        let base = rustls::crypto::ring::default_provider();
        let names: Vec<NamedGroup> = base.kx_groups.iter().map(|g| g.name()).collect();
        let stocked = with_stocked_key_shares(base);
        let after: Vec<NamedGroup> = stocked.kx_groups.iter().map(|g| g.name()).collect();
        assert_eq!(names, after);
        let kinds: Vec<String> = stocked.kx_groups.iter().map(|g| format!("{g:?}")).collect();
        assert_eq!(kinds[0], "StockedX25519");
        assert!(
            kinds[1..].iter().all(|k| !k.contains("Stocked")),
            "{kinds:?}"
        );
    }
}
