//! Seeded pseudo-random payloads: a sender generates them, the receiver
//! regenerates the same bytes and compares every one, so no test holds a
//! whole transfer in memory.

/// xorshift64* (Vigna): tiny, fast, and good enough to make every byte of
/// a transfer differ from its neighbours.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Rng {
        // splitmix64 spreads nearby seeds apart; `| 1` keeps the state non-zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..=max` for test sizes.
    pub fn up_to(&mut self, max: u64) -> u64 {
        self.next_u64() % (max + 1)
    }
}

/// What one stream of a test carries.
#[derive(Clone, Copy, Debug)]
pub struct StreamPlan {
    pub seed: u64,
    pub len: u64,
}

impl StreamPlan {
    /// The bytes this stream sends (or expects back).
    pub fn payload(&self) -> Payload {
        Payload::new(self.seed, self.len)
    }
}

/// `count` streams with sizes drawn from `0..=max_len`, all from `seed`.
pub fn plans(seed: u64, count: usize, max_len: u64) -> Vec<StreamPlan> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|_| StreamPlan {
            seed: rng.next_u64(),
            len: rng.up_to(max_len),
        })
        .collect()
}

/// A finite sequence of pseudo-random bytes, consumed front to back either
/// to send it ([`Payload::fill`]) or to check received bytes against it
/// ([`Payload::check`]). The byte sequence does not depend on how it is cut
/// into chunks.
#[derive(Clone, Debug)]
pub struct Payload {
    rng: Rng,
    word: [u8; 8],
    word_used: usize,
    remaining: u64,
    consumed: u64,
    scratch: Vec<u8>,
}

impl Payload {
    pub fn new(seed: u64, len: u64) -> Payload {
        Payload {
            rng: Rng::new(seed),
            word: [0; 8],
            word_used: 8,
            remaining: len,
            consumed: 0,
            scratch: Vec::new(),
        }
    }

    /// Bytes not yet generated.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Writes the next `buf.len()` bytes into `buf`.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let len = buf.len() as u64;
        assert!(len <= self.remaining, "payload overrun");
        self.remaining -= len;
        self.consumed += len;
        let mut at = 0;
        while at < buf.len() && self.word_used < 8 {
            buf[at] = self.word[self.word_used];
            self.word_used += 1;
            at += 1;
        }
        let mut words = buf[at..].chunks_exact_mut(8);
        for chunk in &mut words {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            self.word = self.rng.next_u64().to_le_bytes();
            tail.copy_from_slice(&self.word[..tail.len()]);
            self.word_used = tail.len();
        }
    }

    /// The next `n` bytes as a new vector.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        self.fill(&mut bytes);
        bytes
    }

    /// Checks that `got` are exactly the next bytes of the payload.
    pub fn check(&mut self, got: &[u8]) -> Result<(), String> {
        if got.len() as u64 > self.remaining {
            return Err(format!(
                "{} bytes arrived at offset {}, only {} expected",
                got.len(),
                self.consumed,
                self.remaining
            ));
        }
        let offset = self.consumed;
        let mut expected = std::mem::take(&mut self.scratch);
        expected.resize(got.len(), 0);
        self.fill(&mut expected);
        let mismatch = expected.iter().zip(got).position(|(a, b)| a != b);
        self.scratch = expected;
        match mismatch {
            None => Ok(()),
            Some(at) => Err(format!("wrong byte at offset {}", offset + at as u64)),
        }
    }

    /// Checks that the whole payload has arrived.
    pub fn check_complete(&self) -> Result<(), String> {
        if self.remaining == 0 {
            Ok(())
        } else {
            Err(format!(
                "stream ended after {} bytes, {} missing",
                self.consumed, self.remaining
            ))
        }
    }
}

#[test]
fn payload_bytes_do_not_depend_on_chunking() {
    let mut whole = Payload::new(7, 1000);
    let all = whole.take(1000);
    let mut pieces = Payload::new(7, 1000);
    let mut at = 0;
    for size in [0, 1, 3, 8, 13, 100, 875] {
        let piece = pieces.take(size);
        assert_eq!(piece, all[at..at + size]);
        at += size;
    }
    assert_eq!(at, 1000);
    assert_eq!(pieces.remaining(), 0);
}

#[test]
fn check_finds_the_first_wrong_byte_and_overruns() {
    let mut sender = Payload::new(3, 64);
    let mut bytes = sender.take(64);
    let mut verifier = Payload::new(3, 64);
    assert_eq!(verifier.check(&bytes[..10]), Ok(()));
    bytes[20] ^= 1;
    assert_eq!(
        verifier.check(&bytes[10..]),
        Err("wrong byte at offset 20".into())
    );
    let mut short = Payload::new(3, 4);
    assert!(short.check(&bytes[..5]).is_err());
    assert!(Payload::new(3, 4).check_complete().is_err());
}
