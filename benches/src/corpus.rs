//! The HPACK story corpus from `shared/data/hpack/hpack-test-case`.
//!
//! Decoding uses nghttp2-16384-4096 plus python-hpack (6651 blocks), as in
//! `shared/notes/rust-anchors.md`; encoding uses raw-data (3384 header lists).

use std::path::{Path, PathBuf};

use serde_json::Value;
use warren_proto::h2::hpack::{Decoder, Encoder};
use warren_proto::h2::Header;

/// Folders whose wires the decode benchmark replays.
pub const DECODE_FOLDERS: [&str; 2] = ["nghttp2-16384-4096", "python-hpack"];
/// The folder of header lists the encode benchmark compresses.
pub const ENCODE_FOLDER: &str = "raw-data";

/// Header list limit used when decoding the corpus: far above any story.
pub const MAX_LIST_SIZE: usize = 1 << 20;

/// One header block of a story.
#[derive(Clone, Debug)]
pub struct Case {
    /// SETTINGS_HEADER_TABLE_SIZE announced just before this block, if it changed.
    pub table_size: Option<usize>,
    /// The encoded block (empty for raw-data).
    pub wire: Vec<u8>,
    /// The header list, in order.
    pub headers: Vec<Header>,
}

/// One story: blocks sharing one HPACK context.
#[derive(Clone, Debug)]
pub struct Story {
    /// File name, for error messages.
    pub name: String,
    /// The blocks in order.
    pub cases: Vec<Case>,
}

/// The corpus folder: `$WARREN_HPACK_DATA` or `shared/data/hpack` beside the checkout.
pub fn data_dir() -> PathBuf {
    match std::env::var_os("WARREN_HPACK_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/hpack"
        )),
    }
}

/// Loads every story of `folder` under `hpack-test-case`, sorted by name.
pub fn load_folder(folder: &str) -> Vec<Story> {
    let dir = data_dir().join("hpack-test-case").join(folder);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load_story(p)).collect()
}

/// The decode corpus: [`DECODE_FOLDERS`] in order.
pub fn decode_corpus() -> Vec<Story> {
    DECODE_FOLDERS.iter().flat_map(|f| load_folder(f)).collect()
}

/// The encode corpus: [`ENCODE_FOLDER`].
pub fn encode_corpus() -> Vec<Story> {
    load_folder(ENCODE_FOLDER)
}

/// Number of header blocks in `stories`.
pub fn block_count(stories: &[Story]) -> usize {
    stories.iter().map(|s| s.cases.len()).sum()
}

fn load_story(path: &Path) -> Story {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let cases = json["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no cases", path.display()))
        .iter()
        .map(parse_case)
        .collect();
    Story {
        name: path.display().to_string(),
        cases,
    }
}

fn parse_case(case: &Value) -> Case {
    let headers = case["headers"]
        .as_array()
        .expect("headers list")
        .iter()
        .flat_map(|field| field.as_object().expect("one-key object"))
        .map(|(name, value)| {
            Header::new(
                name.as_bytes().to_vec(),
                value.as_str().expect("string value").as_bytes().to_vec(),
            )
        })
        .collect();
    Case {
        // The nghttp2 folders give the size only where it changes: it is sticky.
        table_size: case["header_table_size"].as_u64().map(|n| n as usize),
        wire: case["wire"].as_str().map(hex).unwrap_or_default(),
        headers,
    }
}

fn hex(text: &str) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("bad hex digit {c:?}"),
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| digit(pair[0]) << 4 | digit(pair[1]))
        .collect()
}

/// Decodes every story with a fresh decoder each, the way the benchmark
/// does, calling `check` with each block's decoded list. Returns the number
/// of headers decoded.
pub fn decode_all(stories: &[Story], mut check: impl FnMut(&Case, &[Header])) -> usize {
    let mut out = Vec::with_capacity(64);
    let mut fields = 0;
    for story in stories {
        let mut decoder = Decoder::new(warren_proto::h2::hpack::DEFAULT_TABLE_SIZE);
        for case in &story.cases {
            if let Some(size) = case.table_size {
                decoder.set_max_table_size(size);
            }
            out.clear();
            if let Err(e) = decoder.decode(&case.wire, MAX_LIST_SIZE, &mut out) {
                panic!("{}: decode failed: {e:?}", story.name);
            }
            fields += out.len();
            check(case, &out);
        }
    }
    fields
}

/// Encodes every story with a fresh encoder each; `sink` gets each block.
pub fn encode_all(stories: &[Story], mut sink: impl FnMut(&Case, &[u8])) -> usize {
    let mut out = Vec::with_capacity(4096);
    let mut bytes = 0;
    for story in stories {
        let mut encoder = Encoder::new();
        for case in &story.cases {
            out.clear();
            encoder.encode(&case.headers, &mut out);
            bytes += out.len();
            sink(case, &out);
        }
    }
    bytes
}

/// Checks that the decoder reproduces every list of the decode corpus and
/// that encoding the encode corpus round-trips; panics with the first
/// mismatch. Run before timing, so a fast wrong codec cannot look good.
pub fn verify(decode: &[Story], encode: &[Story]) {
    decode_all(decode, |case, got| {
        assert!(same_fields(&case.headers, got), "decoded list differs");
    });
    let mut out = Vec::new();
    for story in encode {
        let mut decoder = Decoder::new(warren_proto::h2::hpack::DEFAULT_TABLE_SIZE);
        let mut encoder = Encoder::new();
        let mut block = Vec::new();
        for case in &story.cases {
            block.clear();
            encoder.encode(&case.headers, &mut block);
            out.clear();
            if let Err(e) = decoder.decode(&block, MAX_LIST_SIZE, &mut out) {
                panic!("{}: own block does not decode: {e:?}", story.name);
            }
            assert!(
                same_fields(&case.headers, &out),
                "{}: encode round trip differs",
                story.name
            );
        }
    }
}

fn same_fields(want: &[Header], got: &[Header]) -> bool {
    want.len() == got.len()
        && want
            .iter()
            .zip(got)
            .all(|(w, g)| w.name == g.name && w.value == g.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_corpus_is_the_anchors_corpus() {
        let stories = decode_corpus();
        assert_eq!(stories.len(), 31 + 32);
        assert_eq!(block_count(&stories), 6651);
        let wire: usize = stories
            .iter()
            .flat_map(|s| &s.cases)
            .map(|c| c.wire.len())
            .sum();
        assert_eq!(wire, 709_715);
        let fields: usize = stories
            .iter()
            .flat_map(|s| &s.cases)
            .map(|c| c.headers.len())
            .sum();
        assert_eq!(fields, 77_396);
    }

    #[test]
    fn table_size_is_given_where_it_changes() {
        let stories = load_folder("nghttp2-16384-4096");
        assert_eq!(stories[0].cases[0].table_size, Some(16384));
        assert_eq!(stories[0].cases[0].wire[..3], [0x3f, 0xe1, 0x1f]);
        assert_eq!(stories[0].cases[1].table_size, None);
    }

    #[test]
    fn encode_corpus_keeps_order_and_duplicates() {
        let stories = encode_corpus();
        assert_eq!(stories.len(), 32);
        assert_eq!(block_count(&stories), 3384);
        let first = &stories[0].cases[0].headers;
        let names: Vec<&[u8]> = first.iter().map(|h| &h.name[..]).collect();
        assert_eq!(
            names,
            [&b":method"[..], b":scheme", b":authority", b":path"]
        );
        assert!(stories[0].cases.iter().all(|c| c.wire.is_empty()));
    }

    #[test]
    fn hex_decodes_both_cases() {
        assert_eq!(hex("00ff7Fa0"), [0x00, 0xff, 0x7f, 0xa0]);
        assert_eq!(hex(""), Vec::<u8>::new());
    }
}
