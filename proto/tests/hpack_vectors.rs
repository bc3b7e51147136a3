//! HPACK against published vectors: RFC 7541 Appendix C (decoder state
//! after every block, encoder wire bytes) and the http2jp hpack-test-case
//! stories (decoding other implementations' blocks, round-tripping
//! `raw-data` through our encoder and decoder). See the data's README.md.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use warren_proto::h2::hpack::{Decoder, Encoder, HuffmanMode, Representation, DEFAULT_TABLE_SIZE};
use warren_proto::h2::Header;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/hpack");

/// Implementation folders whose `wire` we decode.
const IMPLEMENTATIONS: [&str; 4] = [
    "nghttp2-change-table-size",
    "nghttp2-16384-4096",
    "python-hpack",
    "go-hpack",
];

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn stories(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(DATA).join("hpack-test-case").join(folder);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// A story case's `headers`: an ordered list of one-key objects.
fn story_headers(case: &Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    case["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|field| {
            let object = field.as_object().expect("header object");
            assert_eq!(object.len(), 1, "one key per header object");
            let (name, value) = object.iter().next().expect("one entry");
            (
                name.as_bytes().to_vec(),
                value.as_str().expect("string value").as_bytes().to_vec(),
            )
        })
        .collect()
}

/// An RFC case's `[[name, value], ...]` list.
fn pairs(list: &Value) -> Vec<(Vec<u8>, Vec<u8>)> {
    list.as_array()
        .expect("pair list")
        .iter()
        .map(|pair| {
            let name = pair[0].as_str().expect("name");
            let value = pair[1].as_str().expect("value");
            (name.as_bytes().to_vec(), value.as_bytes().to_vec())
        })
        .collect()
}

fn plain(headers: &[Header]) -> Vec<(Vec<u8>, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_vec(), h.value.to_vec()))
        .collect()
}

fn decoder_table(decoder: &Decoder) -> Vec<(Vec<u8>, Vec<u8>)> {
    decoder
        .table_entries()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect()
}

fn encoder_table(encoder: &Encoder) -> Vec<(Vec<u8>, Vec<u8>)> {
    encoder
        .table_entries()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect()
}

#[test]
fn stories_of_every_implementation_decode() {
    let mut blocks = 0;
    for folder in IMPLEMENTATIONS {
        let files = stories(folder);
        assert!(files.len() >= 22, "{folder}: only {} stories", files.len());
        for path in files {
            let story = read_json(&path);
            let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
            for (seq, case) in story["cases"].as_array().expect("cases").iter().enumerate() {
                if let Some(size) = case.get("header_table_size").and_then(Value::as_u64) {
                    decoder.set_max_table_size(size as usize);
                }
                let wire = unhex(case["wire"].as_str().expect("wire"));
                let mut out = Vec::new();
                decoder
                    .decode(&wire, usize::MAX, &mut out)
                    .unwrap_or_else(|e| panic!("{}: case {seq}: {e:?}", path.display()));
                assert_eq!(
                    plain(&out),
                    story_headers(case),
                    "{}: case {seq}",
                    path.display()
                );
                assert!(out.iter().all(|h| !h.sensitive));
                blocks += 1;
            }
        }
    }
    // 3,267 + 3,267 + 3,384 + 335 blocks in the four folders.
    assert_eq!(blocks, 10_253);
}

#[test]
fn raw_data_round_trips_in_every_huffman_mode() {
    let files = stories("raw-data");
    assert_eq!(files.len(), 32);
    for mode in [
        HuffmanMode::Always,
        HuffmanMode::Never,
        HuffmanMode::WhenShorter,
    ] {
        let mut lists = 0;
        let mut wire_len = 0;
        for path in &files {
            let story = read_json(path);
            let mut encoder = Encoder::new();
            encoder.set_huffman(mode);
            let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
            for (seq, case) in story["cases"].as_array().expect("cases").iter().enumerate() {
                let expected = story_headers(case);
                let headers: Vec<Header> = expected
                    .iter()
                    .map(|(n, v)| Header::new(n.clone(), v.clone()))
                    .collect();
                let mut wire = Vec::new();
                encoder.encode(&headers, &mut wire);
                wire_len += wire.len();
                let mut out = Vec::new();
                decoder
                    .decode(&wire, usize::MAX, &mut out)
                    .unwrap_or_else(|e| panic!("{mode:?} {}: case {seq}: {e:?}", path.display()));
                assert_eq!(
                    plain(&out),
                    expected,
                    "{mode:?} {}: case {seq}",
                    path.display()
                );
                assert_eq!(encoder_table(&encoder), decoder_table(&decoder));
                assert_eq!(encoder.table_size(), decoder.table_size());
                lists += 1;
            }
        }
        assert_eq!(lists, 3_384, "{mode:?}");
        println!("{mode:?}: {wire_len} wire octets");
    }
}

/// Compression must actually happen: the dynamic table and Huffman coding
/// shrink the corpus well below its plain size.
#[test]
fn raw_data_compresses() {
    let mut plain_len = 0;
    let mut wire_len = [0usize; 2];
    for path in stories("raw-data") {
        let story = read_json(&path);
        for (slot, mode) in [HuffmanMode::Never, HuffmanMode::WhenShorter]
            .into_iter()
            .enumerate()
        {
            let mut encoder = Encoder::new();
            encoder.set_huffman(mode);
            for case in story["cases"].as_array().expect("cases") {
                let headers: Vec<Header> = story_headers(case)
                    .into_iter()
                    .map(|(n, v)| Header::new(n, v))
                    .collect();
                if slot == 0 {
                    plain_len += headers
                        .iter()
                        .map(|h| h.name.len() + h.value.len())
                        .sum::<usize>();
                }
                let mut wire = Vec::new();
                encoder.encode(&headers, &mut wire);
                wire_len[slot] += wire.len();
            }
        }
    }
    // Indexing alone: python-hpack gets about 30% of the plain size.
    assert!(wire_len[0] * 2 < plain_len, "{wire_len:?} vs {plain_len}");
    // Huffman saves a further ~20%.
    assert!(wire_len[1] * 10 < wire_len[0] * 9, "{wire_len:?}");
}

/// A dynamic table after Appendix C's `block`: the entries and the size
/// the vector lists.
fn assert_table_after(block: &Value, table: Vec<(Vec<u8>, Vec<u8>)>, size: usize, context: &str) {
    assert_eq!(table, pairs(&block["table_after"]), "{context}");
    assert_eq!(
        size as u64,
        block["table_size_after"].as_u64().expect("size"),
        "{context}"
    );
}

fn appendix_c() -> Vec<Value> {
    read_json(&Path::new(DATA).join("rfc7541-appendix-c.json"))
        .as_array()
        .expect("case list")
        .clone()
}

#[test]
fn appendix_c_decoder_state_after_every_block() {
    let cases = appendix_c();
    assert_eq!(cases.len(), 8);
    let mut blocks = 0;
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let max = case["max_table_size"].as_u64().expect("max_table_size") as usize;
        let mut decoder = Decoder::new(max);
        for (i, block) in case["sequence"]
            .as_array()
            .expect("sequence")
            .iter()
            .enumerate()
        {
            let wire = unhex(block["wire"].as_str().expect("wire"));
            let mut out = Vec::new();
            decoder
                .decode(&wire, usize::MAX, &mut out)
                .unwrap_or_else(|e| panic!("{name} block {i}: {e:?}"));
            assert_eq!(plain(&out), pairs(&block["headers"]), "{name} block {i}");
            let never_indexed = name.contains("Never Indexed");
            assert!(out.iter().all(|h| h.sensitive == never_indexed), "{name}");
            let context = format!("{name} block {i}");
            assert_table_after(
                block,
                decoder_table(&decoder),
                decoder.table_size(),
                &context,
            );
            blocks += 1;
        }
    }
    assert_eq!(blocks, 16);
}

#[test]
fn appendix_c_encoder_wire_bytes() {
    let mut blocks = 0;
    for case in appendix_c() {
        let name = case["name"].as_str().expect("name").to_owned();
        let max = case["max_table_size"].as_u64().expect("max_table_size") as usize;
        let huffman = case["huffman"].as_bool().expect("huffman");
        // C.2.2 and C.2.3 show representations the default strategy does
        // not choose; ask for them explicitly.
        let repr = if name.starts_with("C.2.2") {
            Representation::WithoutIndexing
        } else if name.starts_with("C.2.3") {
            Representation::NeverIndexed
        } else {
            Representation::Auto
        };
        let mut encoder = Encoder::new();
        encoder.set_huffman(if huffman {
            HuffmanMode::Always
        } else {
            HuffmanMode::Never
        });
        if max != DEFAULT_TABLE_SIZE {
            encoder.set_capacity_silently(max);
        }
        for (i, block) in case["sequence"]
            .as_array()
            .expect("sequence")
            .iter()
            .enumerate()
        {
            let mut wire = Vec::new();
            for (n, v) in pairs(&block["headers"]) {
                encoder.encode_field(&Header::new(n, v), repr, &mut wire);
            }
            assert_eq!(
                hex(&wire),
                block["wire"].as_str().expect("wire"),
                "{name} block {i}"
            );
            let context = format!("{name} block {i}");
            assert_table_after(
                block,
                encoder_table(&encoder),
                encoder.table_size(),
                &context,
            );
            blocks += 1;
        }
    }
    assert_eq!(blocks, 16);
}

/// `encode` (the whole-block call) makes the same bytes as field-by-field
/// `Auto` for C.3-C.6, and sensitive fields come out never-indexed.
#[test]
fn appendix_c_whole_blocks_and_sensitive_fields() {
    for case in appendix_c().iter().filter(|c| {
        let name = c["name"].as_str().unwrap_or("");
        !name.starts_with("C.2")
    }) {
        let max = case["max_table_size"].as_u64().expect("max") as usize;
        let mut encoder = Encoder::new();
        encoder.set_huffman(if case["huffman"].as_bool().expect("huffman") {
            HuffmanMode::Always
        } else {
            HuffmanMode::Never
        });
        encoder.set_capacity_silently(max);
        for block in case["sequence"].as_array().expect("sequence") {
            let headers: Vec<Header> = pairs(&block["headers"])
                .into_iter()
                .map(|(n, v)| Header::new(n, v))
                .collect();
            let mut wire = Vec::new();
            encoder.encode(&headers, &mut wire);
            assert_eq!(hex(&wire), block["wire"].as_str().expect("wire"));
        }
    }
    // C.2.3 through `encode` with the sensitive flag.
    let mut encoder = Encoder::new();
    encoder.set_huffman(HuffmanMode::Never);
    let mut header = Header::new(&b"password"[..], &b"secret"[..]);
    header.sensitive = true;
    let mut wire = Vec::new();
    encoder.encode([&header], &mut wire);
    assert_eq!(hex(&wire), "100870617373776f726406736563726574");
    assert_eq!(encoder.table_size(), 0);
}
