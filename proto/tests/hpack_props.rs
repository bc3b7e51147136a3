//! Properties of the HPACK encoder and decoder together: identity through
//! arbitrary header lists and table-size changes, tables in lock step,
//! list limits that keep the table in sync, and no panic on any input.

use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};
use warren_proto::h2::hpack::{
    DecodeError, Decoder, Encoder, HuffmanMode, Representation, DEFAULT_TABLE_SIZE,
};
use warren_proto::h2::Header;

/// Names and values drawn partly from small pools, so that table hits,
/// evictions and name-only matches happen often; partly arbitrary bytes.
fn pick_bytes(g: &mut Gen, pool: &[&[u8]]) -> Vec<u8> {
    if *g.choose(&[true, true, false]).expect("non-empty") {
        g.choose(pool).expect("non-empty").to_vec()
    } else {
        Vec::<u8>::arbitrary(g)
    }
}

const NAMES: &[&[u8]] = &[
    b":path",
    b":status",
    b":authority",
    b"cookie",
    b"x-trace",
    b"content-type",
    b"",
];
const VALUES: &[&[u8]] = &[
    b"/",
    b"200",
    b"404",
    b"a",
    b"",
    b"gzip, deflate",
    b"0123456789abcdef",
];

#[derive(Clone, Debug)]
struct Field {
    header: Header,
    repr: Representation,
}

impl Arbitrary for Field {
    fn arbitrary(g: &mut Gen) -> Field {
        let mut header = Header::new(pick_bytes(g, NAMES), pick_bytes(g, VALUES));
        header.sensitive = u8::arbitrary(g) % 8 == 0;
        let repr = *g
            .choose(&[
                Representation::Auto,
                Representation::Auto,
                Representation::Auto,
                Representation::WithoutIndexing,
                Representation::NeverIndexed,
            ])
            .expect("non-empty");
        Field { header, repr }
    }
}

#[derive(Clone, Debug)]
struct Block {
    fields: Vec<Field>,
    huffman: HuffmanMode,
    /// Encode with `encode` (all `Auto`) rather than `encode_field`.
    whole: bool,
}

impl Arbitrary for Block {
    fn arbitrary(g: &mut Gen) -> Block {
        Block {
            fields: Vec::arbitrary(g),
            huffman: *g
                .choose(&[
                    HuffmanMode::Always,
                    HuffmanMode::Never,
                    HuffmanMode::WhenShorter,
                ])
                .expect("non-empty"),
            whole: bool::arbitrary(g),
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    Block(Block),
    /// Our SETTINGS_HEADER_TABLE_SIZE changes to `size`; `in_flight` blocks
    /// are sent by the peer after it applied the setting, before our side
    /// saw the ACK.
    Settings {
        size: usize,
        in_flight: Vec<Block>,
    },
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Step {
        if u8::arbitrary(g) % 4 == 0 {
            let size = match u8::arbitrary(g) % 6 {
                0 => 0,
                1 => 64,
                2 => 256,
                3 => DEFAULT_TABLE_SIZE,
                4 => 16384,
                _ => usize::from(u16::arbitrary(g) % 6000),
            };
            let in_flight = if bool::arbitrary(g) {
                Vec::new()
            } else {
                vec![Block::arbitrary(g)]
            };
            Step::Settings { size, in_flight }
        } else {
            Step::Block(Block::arbitrary(g))
        }
    }
}

struct Pair {
    encoder: Encoder,
    decoder: Decoder,
    decoder_max: usize,
}

impl Pair {
    /// Encodes and decodes one block; checks the list and the tables.
    fn exchange(&mut self, block: &Block) -> Result<(), String> {
        self.encoder.set_huffman(block.huffman);
        let mut wire = Vec::new();
        // A block of no fields still goes through `encode`, which is where
        // pending size updates are written when there is no field to lead.
        let expected: Vec<Header> = if block.whole || block.fields.is_empty() {
            let headers: Vec<&Header> = block.fields.iter().map(|f| &f.header).collect();
            self.encoder.encode(headers, &mut wire);
            block.fields.iter().map(|f| f.header.clone()).collect()
        } else {
            for field in &block.fields {
                self.encoder
                    .encode_field(&field.header, field.repr, &mut wire);
            }
            block
                .fields
                .iter()
                .map(|f| {
                    let mut h = f.header.clone();
                    h.sensitive |= f.repr == Representation::NeverIndexed;
                    h
                })
                .collect()
        };
        let mut out = Vec::new();
        self.decoder
            .decode(&wire, usize::MAX, &mut out)
            .map_err(|e| format!("decode: {e:?}"))?;
        if out != expected {
            return Err(format!("got {out:?}, expected {expected:?}"));
        }
        let enc: Vec<_> = self.encoder.table_entries().collect();
        let dec: Vec<_> = self.decoder.table_entries().collect();
        if enc != dec {
            return Err(format!("tables differ: {enc:?} vs {dec:?}"));
        }
        if self.decoder.table_size() > self.decoder_max {
            return Err("decoder table over its maximum".into());
        }
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Block(block) => self.exchange(block),
            Step::Settings { size, in_flight } => {
                let size = *size;
                if size >= self.decoder_max {
                    // A larger table may be used as soon as the peer has our
                    // SETTINGS, so the decoder allows it when we send it.
                    self.decoder_max = size;
                    self.decoder.set_max_table_size(size);
                    self.encoder.set_max_table_size(size);
                    in_flight.iter().try_for_each(|b| self.exchange(b))
                } else {
                    // A smaller one binds the peer once it applied it; we
                    // rely on it only after the ACK.
                    self.encoder.set_max_table_size(size);
                    in_flight.iter().try_for_each(|b| self.exchange(b))?;
                    self.decoder_max = size;
                    self.decoder.set_max_table_size(size);
                    if self.decoder.table_size() > size {
                        return Err("decoder table over its new maximum".into());
                    }
                    Ok(())
                }
            }
        }
    }
}

#[test]
fn prop_encode_decode_identity_with_table_size_changes() {
    fn prop(steps: Vec<Step>) -> TestResult {
        let mut pair = Pair {
            encoder: Encoder::new(),
            decoder: Decoder::new(DEFAULT_TABLE_SIZE),
            decoder_max: DEFAULT_TABLE_SIZE,
        };
        for (i, step) in steps.iter().enumerate() {
            if let Err(e) = pair.step(step) {
                return TestResult::error(format!("step {i}: {e}"));
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(1000)
        .rng(Gen::new(40))
        .quickcheck(prop as fn(Vec<Step>) -> TestResult);
}

#[test]
fn prop_huffman_identity_on_arbitrary_bytes() {
    fn prop(name: Vec<u8>, value: Vec<u8>) -> bool {
        let header = Header::new(name, value);
        let mut encoder = Encoder::new();
        encoder.set_huffman(HuffmanMode::Always);
        let mut wire = Vec::new();
        encoder.encode_field(&header, Representation::WithoutIndexing, &mut wire);
        let mut out = Vec::new();
        Decoder::new(DEFAULT_TABLE_SIZE)
            .decode(&wire, usize::MAX, &mut out)
            .is_ok()
            && out == [header]
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<u8>, Vec<u8>) -> bool);
}

/// A limited and an unlimited decoder fed the same blocks keep identical
/// tables; the limited one returns a prefix of the list within its limit
/// and fails exactly when the whole list is over it.
#[test]
fn prop_list_limit_keeps_the_table_in_sync() {
    fn prop(blocks: Vec<Vec<Field>>, limit: u16) -> TestResult {
        let limit = usize::from(limit % 600);
        let mut encoder = Encoder::new();
        let mut limited = Decoder::new(DEFAULT_TABLE_SIZE);
        let mut unlimited = Decoder::new(DEFAULT_TABLE_SIZE);
        for fields in &blocks {
            let mut wire = Vec::new();
            for field in fields {
                encoder.encode_field(&field.header, field.repr, &mut wire);
            }
            let mut all = Vec::new();
            if unlimited.decode(&wire, usize::MAX, &mut all).is_err() {
                return TestResult::error("unlimited decode failed");
            }
            let total: usize = all.iter().map(Header::hpack_size).sum();
            let mut some = Vec::new();
            let result = limited.decode(&wire, limit, &mut some);
            let kept: usize = some.iter().map(Header::hpack_size).sum();
            let ok = match result {
                Ok(()) => total <= limit && some == all,
                Err(DecodeError::HeaderListTooLarge { size, max }) => {
                    total > limit
                        && max == limit
                        && size > limit
                        && kept <= limit
                        && all.starts_with(&some)
                }
                Err(_) => false,
            };
            if !ok {
                return TestResult::error(format!("{result:?}: total {total}, kept {kept}"));
            }
            if !limited.table_entries().eq(unlimited.table_entries()) {
                return TestResult::error("tables diverged");
            }
        }
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(500)
        .quickcheck(prop as fn(Vec<Vec<Field>>, u16) -> TestResult);
}

/// Arbitrary octets, and valid blocks with octets flipped or cut: the
/// decoder answers every one with a result, never a panic, and its table
/// stays within the maximum it was given.
#[test]
fn prop_decoder_never_panics_and_respects_its_maximum() {
    fn prop(max: u16, inputs: Vec<(Vec<u8>, u8)>, seed_fields: Vec<Field>) -> bool {
        let max = usize::from(max % 5000);
        let mut decoder = Decoder::new(max);
        decoder.set_max_string_len(1024);
        let mut encoder = Encoder::new();
        encoder.set_max_table_size(max);
        let mut valid = Vec::new();
        encoder.encode(seed_fields.iter().map(|f| &f.header), &mut valid);
        for (bytes, how) in inputs {
            let block = match how % 4 {
                0 => bytes,
                1 => {
                    // Flip the octets of a valid block at arbitrary places.
                    let mut mutated = valid.clone();
                    for (i, b) in bytes.iter().enumerate() {
                        if let Some(slot) =
                            mutated.get_mut((usize::from(*b) * 7 + i) % valid.len().max(1))
                        {
                            *slot ^= b | 1;
                        }
                    }
                    mutated
                }
                2 => valid[..bytes.len().min(valid.len())].to_vec(),
                _ => [&bytes[..], &valid[..]].concat(),
            };
            let mut out = Vec::new();
            let _ = decoder.decode(&block, 4096, &mut out);
            if decoder.table_size() > max {
                return false;
            }
            let listed: usize = out.iter().map(Header::hpack_size).sum();
            if listed > 4096 {
                return false;
            }
        }
        true
    }
    QuickCheck::new()
        .tests(3000)
        .quickcheck(prop as fn(u16, Vec<(Vec<u8>, u8)>, Vec<Field>) -> bool);
}
