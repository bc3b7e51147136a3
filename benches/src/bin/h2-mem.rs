//! Bytes per idle open stream, per end: `h2-mem idle-streams-N` (warren),
//! `h2-mem h2-idle-streams-N` (the h2 crate, both ends together).
//!
//! A counting global allocator attributes every live byte to the end that
//! allocated it (client connection, server connection, or the host code
//! around them), by stamping the end into a small header in front of each
//! allocation. After one warm-up stream, N CONNECT streams are opened and
//! answered with 200; the growth of each end's live bytes divided by N is
//! what one idle stream costs that end, spare container capacity included.
//! (The anchors' h2 figure: about 0.8-0.9 KB per end.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use warren_benches::idle;
use warren_benches::pair::{End, Pair};

/// Which end is running now, as an index into `LIVE`.
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// Live bytes per end: host, client, server.
static LIVE: [AtomicIsize; 3] = [
    AtomicIsize::new(0),
    AtomicIsize::new(0),
    AtomicIsize::new(0),
];

fn enter(end: End) {
    let index = match end {
        End::Host => 0,
        End::Client => 1,
        End::Server => 2,
    };
    CURRENT.store(index, Ordering::Relaxed);
}

fn live() -> [isize; 3] {
    LIVE.each_ref().map(|n| n.load(Ordering::Relaxed))
}

/// The system allocator, counting requested bytes per end. Each block gets
/// a prefix of `max(16, align)` bytes whose last word records the end.
struct CountingAlloc;

impl CountingAlloc {
    fn prefix(layout: Layout) -> usize {
        layout.align().max(16)
    }

    fn outer(layout: Layout) -> Option<Layout> {
        let size = layout.size().checked_add(Self::prefix(layout))?;
        Layout::from_size_align(size, Self::prefix(layout)).ok()
    }

    /// Stamps the current end into the block at `base` and returns the user pointer.
    unsafe fn stamp(base: *mut u8, layout: Layout) -> *mut u8 {
        if base.is_null() {
            return base;
        }
        let end = CURRENT.load(Ordering::Relaxed);
        LIVE[end].fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the block is prefix + size bytes long, the prefix is at
        // least 16 bytes and aligned to at least 16.
        unsafe {
            let user = base.add(Self::prefix(layout));
            (user.sub(8) as *mut usize).write(end);
            user
        }
    }

    /// Forgets the block at `user`; returns its base pointer.
    unsafe fn unstamp(user: *mut u8, layout: Layout) -> *mut u8 {
        // SAFETY: `user` came from `stamp` with the same layout.
        unsafe {
            let end = (user.sub(8) as *const usize).read();
            LIVE[end].fetch_sub(layout.size() as isize, Ordering::Relaxed);
            user.sub(Self::prefix(layout))
        }
    }
}

// SAFETY: every block handed out is a System block of the enlarged layout,
// offset by the prefix, which keeps the requested alignment.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(outer) = Self::outer(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: outer has a non-zero size.
        unsafe { Self::stamp(System.alloc(outer), layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from alloc/realloc with this layout.
        unsafe {
            let base = Self::unstamp(ptr, layout);
            System.dealloc(
                base,
                Self::outer(layout).expect("layout was valid at alloc"),
            );
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = match Layout::from_size_align(new_size, layout.align()) {
            Ok(l) => l,
            Err(_) => return std::ptr::null_mut(),
        };
        let (Some(old_outer), Some(new_outer)) = (Self::outer(layout), Self::outer(new_layout))
        else {
            return std::ptr::null_mut();
        };
        // SAFETY: ptr came from alloc/realloc with `layout`; on failure the
        // old block stays valid, so it is re-stamped to its owner.
        unsafe {
            let owner = (ptr.sub(8) as *const usize).read();
            let base = Self::unstamp(ptr, layout);
            let moved = System.realloc(base, old_outer, new_outer.size());
            if moved.is_null() {
                LIVE[owner].fetch_add(layout.size() as isize, Ordering::Relaxed);
                return moved;
            }
            // The resized block belongs to whoever grew it.
            Self::stamp(moved, new_layout)
        }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let count = |prefix: &str| {
        arg.strip_prefix(prefix)?
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
    };
    if let Some(n) = count("h2-idle-streams-") {
        // h2 runs both ends in one runtime: only the sum is attributable.
        let mut snapshots = Vec::new();
        warren_benches::reference::idle(n, || snapshots.push(live()));
        let total = |s: &[isize; 3]| s.iter().sum::<isize>();
        let per = (total(&snapshots[1]) - total(&snapshots[0])) as f64 / n as f64;
        println!("h2-idle-streams-{n}: both ends {per:.0} B/stream (h2 crate)");
        return ExitCode::SUCCESS;
    }
    let Some(n) = count("idle-streams-") else {
        eprintln!("usage: h2-mem idle-streams-N | h2-idle-streams-N   (N > 0)");
        return ExitCode::from(2);
    };
    let mut pair = Pair::with_end_hook(idle::config(n), enter);
    // One warm-up stream, so first-use buffers are not charged to the N.
    idle::open(&mut pair, 1);
    // The ids are the host's, allocated before the count starts.
    let before = live();
    let ids = idle::open(&mut pair, n);
    let after = live();
    let per = |i: usize| (after[i] - before[i]) as f64 / n as f64;
    println!(
        "idle-streams-{n}: client {:.0} B/stream, server {:.0} B/stream, both {:.0} B/stream \
         (host {:.0} B/stream, the {} stream ids included)",
        per(1),
        per(2),
        per(1) + per(2),
        per(0),
        ids.len()
    );
    ExitCode::SUCCESS
}
