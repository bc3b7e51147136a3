//! The decoder must not allocate per field: strings are split from shared
//! buffers, static names are never copied, table entries are shared by
//! reference count. A counting allocator checks this over the same corpus
//! the performance anchors use (nghttp2-16384-4096 and python-hpack).

use serde_json::Value;
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use warren_proto::h2::hpack::{Decoder, DEFAULT_TABLE_SIZE};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/hpack/hpack-test-case"
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Each story as its cases' (sticky header_table_size, wire).
fn corpus() -> Vec<Vec<(Option<usize>, Vec<u8>)>> {
    let mut stories = Vec::new();
    for folder in ["nghttp2-16384-4096", "python-hpack"] {
        let dir = Path::new(DATA).join(folder);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("story folder")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for file in files {
            let story: Value =
                serde_json::from_str(&std::fs::read_to_string(file).expect("story")).expect("json");
            let mut size = None;
            let cases = story["cases"]
                .as_array()
                .expect("cases")
                .iter()
                .map(|case| {
                    if let Some(s) = case.get("header_table_size").and_then(Value::as_u64) {
                        size = Some(s as usize);
                    }
                    (size, unhex(case["wire"].as_str().expect("wire")))
                })
                .collect();
            stories.push(cases);
        }
    }
    stories
}

#[test]
fn decoding_allocates_far_less_than_once_per_field() {
    let stories = corpus();
    let mut out = Vec::with_capacity(1024);
    let (mut blocks, mut fields) = (0usize, 0usize);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for story in &stories {
        let mut decoder = Decoder::new(DEFAULT_TABLE_SIZE);
        for (size, wire) in story {
            if let Some(size) = size {
                decoder.set_max_table_size(*size);
            }
            out.clear();
            decoder.decode(wire, usize::MAX, &mut out).expect("decodes");
            blocks += 1;
            fields += out.len();
        }
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    assert_eq!((blocks, fields), (6651, 77_396));
    println!("{allocations} allocations for {blocks} blocks, {fields} fields");
    assert!(
        allocations * 10 < blocks,
        "{allocations} allocations for {blocks} blocks"
    );
}
