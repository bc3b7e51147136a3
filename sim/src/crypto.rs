//! A rustls `CryptoProvider` whose every random choice comes from a seed,
//! so a simulated run's TLS bytes repeat exactly.
//!
//! Three things in rustls' ring provider draw from the OS, and each gets a
//! deterministic stand-in here:
//! - `secure_random` (client/server randoms, session ids): a ChaCha20 stream
//!   seeded per provider.
//! - key exchange: ring's groups call ring's `SystemRandom` directly and
//!   ignore `secure_random`, and ring's `SecureRandom` is sealed; so X25519
//!   is reimplemented over `x25519-dalek` with secrets from the same stream.
//! - signing: ring's ECDSA signatures are randomized (and vary in length),
//!   so the key provider loads Ed25519 keys only, whose signatures are a
//!   function of key and message.
//!
//! Cipher suites (AES-GCM, ChaCha20-Poly1305), hashing and signature
//! verification are deterministic already and come from ring unchanged.

use std::sync::{Arc, Mutex};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use rustls::{NamedGroup, PeerMisbehaved};
use x25519_dalek::{PublicKey, StaticSecret};

/// A 32-byte seed for one provider or one key.
pub type Seed = [u8; 32];

/// Derives an independent seed for one purpose (`label`, e.g.
/// `"node/3/tls"` or `"ca/mesh.test"`) from a run's seed, so adding a node
/// or a certificate does not shift the randomness of the others.
pub fn derive_seed(run_seed: u64, label: &str) -> Seed {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"warren-sim seed v1\0");
    ctx.update(&run_seed.to_le_bytes());
    ctx.update(label.as_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(ctx.finish().as_ref());
    seed
}

/// rustls randomness from a ChaCha20 stream. rustls holds it as
/// `&'static dyn SecureRandom` and calls it through `&self`, hence the
/// lock.
#[derive(Debug)]
pub struct SeededRandom {
    rng: Mutex<ChaCha20Rng>,
}

impl SeededRandom {
    /// A stream starting from `seed`.
    pub fn new(seed: Seed) -> SeededRandom {
        SeededRandom {
            rng: Mutex::new(ChaCha20Rng::from_seed(seed)),
        }
    }
}

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        let mut rng = self.rng.lock().map_err(|_| GetRandomFailed)?;
        rng.fill_bytes(buf);
        Ok(())
    }
}

/// X25519 key exchange with ephemeral secrets drawn from a [`SeededRandom`].
#[derive(Debug)]
pub struct SeededX25519 {
    random: &'static SeededRandom,
}

impl SupportedKxGroup for SeededX25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let mut secret = [0u8; 32];
        self.random.fill(&mut secret)?;
        // x25519-dalek clamps the scalar, as RFC 7748 requires.
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret).to_bytes();
        Ok(Box::new(X25519Exchange { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// One side's half of an X25519 exchange in progress.
struct X25519Exchange {
    secret: StaticSecret,
    public: [u8; 32],
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, rustls::Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| PeerMisbehaved::InvalidKeyShare)?;
        let shared = self.secret.diffie_hellman(&PublicKey::from(peer));
        // A low-order peer point yields an all-zero secret anyone can know;
        // ring refuses it too.
        if !shared.was_contributory() {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// Loads Ed25519 keys only: any other key would sign with ring's OS
/// randomness and break replay.
#[derive(Debug)]
pub struct Ed25519KeyProvider;

impl KeyProvider for Ed25519KeyProvider {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        let not_ed25519 = || {
            rustls::Error::General(
                "the seeded provider signs with Ed25519 only (ECDSA signatures are randomized)"
                    .into(),
            )
        };
        match &key_der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                rustls::crypto::ring::sign::any_eddsa_type(pkcs8).map_err(|_| not_ed25519())
            }
            _ => Err(not_ed25519()),
        }
    }
}

/// A provider whose randomness, key exchange and signatures are all
/// functions of `seed`: TLS 1.3 suites from ring, X25519 over a seeded
/// stream, Ed25519 keys.
///
/// rustls keeps the random source and the key-exchange group as
/// `&'static` references, so each call leaks one small random source and
/// one group (a few hundred bytes); make one provider per node per run,
/// not one per connection.
pub fn seeded_provider(seed: Seed) -> Arc<CryptoProvider> {
    let random: &'static SeededRandom = Box::leak(Box::new(SeededRandom::new(seed)));
    let x25519: &'static SeededX25519 = Box::leak(Box::new(SeededX25519 { random }));
    use rustls::crypto::ring::cipher_suite as suite;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            suite::TLS13_AES_128_GCM_SHA256,
            suite::TLS13_AES_256_GCM_SHA384,
            suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![x25519],
        signature_verification_algorithms: rustls::crypto::ring::default_provider()
            .signature_verification_algorithms,
        secure_random: random,
        key_provider: &Ed25519KeyProvider,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(r: &SeededRandom, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        r.fill(&mut v).unwrap();
        v
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        let a = SeededRandom::new([1; 32]);
        let b = SeededRandom::new([1; 32]);
        let c = SeededRandom::new([2; 32]);
        let first = bytes(&a, 64);
        assert_eq!(first, bytes(&b, 64));
        assert_ne!(first, bytes(&c, 64));
        // The stream moves on.
        assert_ne!(first, bytes(&a, 64));
    }

    #[test]
    fn derived_seeds_differ_by_label_and_run() {
        assert_eq!(derive_seed(7, "ca"), derive_seed(7, "ca"));
        assert_ne!(derive_seed(7, "ca"), derive_seed(7, "node/1"));
        assert_ne!(derive_seed(7, "ca"), derive_seed(8, "ca"));
    }

    fn group(seed: u8) -> SeededX25519 {
        SeededX25519 {
            random: Box::leak(Box::new(SeededRandom::new([seed; 32]))),
        }
    }

    #[test]
    fn x25519_agrees_and_repeats() {
        let run = || {
            let a = group(1).start().unwrap();
            let b = group(2).start().unwrap();
            let (a_pub, b_pub) = (a.pub_key().to_vec(), b.pub_key().to_vec());
            let ab = a.complete(&b_pub).unwrap();
            let ba = b.complete(&a_pub).unwrap();
            assert_eq!(ab.secret_bytes(), ba.secret_bytes());
            (a_pub, ab.secret_bytes().to_vec())
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn x25519_agrees_with_ring() {
        // Our X25519 must interoperate with a real one, not just itself.
        let ours = group(3).start().unwrap();
        let ring_kx = rustls::crypto::ring::kx_group::X25519.start().unwrap();
        let ring_pub = ring_kx.pub_key().to_vec();
        let ours_pub = ours.pub_key().to_vec();
        let a = ours.complete(&ring_pub).unwrap();
        let b = ring_kx.complete(&ours_pub).unwrap();
        assert_eq!(a.secret_bytes(), b.secret_bytes());
    }

    #[test]
    fn x25519_refuses_bad_peer_keys() {
        let short = group(4).start().unwrap().complete(&[9; 31]);
        assert!(matches!(
            short,
            Err(rustls::Error::PeerMisbehaved(
                PeerMisbehaved::InvalidKeyShare
            ))
        ));
        // The identity point: every secret maps it to zero.
        let zero = group(4).start().unwrap().complete(&[0; 32]);
        assert!(matches!(
            zero,
            Err(rustls::Error::PeerMisbehaved(
                PeerMisbehaved::InvalidKeyShare
            ))
        ));
    }

    #[test]
    fn key_provider_refuses_non_ed25519_keys() {
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = PrivateKeyDer::Pkcs8(p256.serialize_der().into());
        assert!(matches!(
            Ed25519KeyProvider.load_private_key(der),
            Err(rustls::Error::General(_))
        ));
    }
}
