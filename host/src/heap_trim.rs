//! Gives the C heap's free pages back to the system once the node has been
//! quiet for a while after moving many bytes.
//!
//! Why: glibc's malloc keeps what a program frees in its heap, and returns
//! only the top of it to the system. After a burst (the bench's 1000 flows
//! each echoing 64 KiB at once) an agent's heap held 1.8 MB in use and 8.9–
//! 10.3 MB free, so its RSS stayed at 13–24 KiB per flow while the flows sat
//! idle again, against 1.5–1.7 KiB per idle flow that never carried
//! traffic. `malloc_trim(0)` releases the free pages inside the heap too:
//! the same agents fell to 4.2–4.5 KiB per flow (benches/WARREN-BENCH.md,
//! sixth pass). jemalloc and mimalloc (their Debian builds, preloaded) kept
//! more, 25–47 KiB per flow two seconds after the same burst.
//!
//! The policy is in [`HeapTrim`], which only decides (no clock, no timer, no
//! libc), so it is tested on its own; the driver owns the timer and, at a
//! trim, first has the node free its buffers' spare room
//! (`Node::shrink_buffers`: what a burst grew its shared buffers to was
//! most of what a trim left, 2.5 of 4.5 KiB per flow), then calls
//! [`release_free_heap`].

use std::time::{Duration, Instant};

/// Bytes the node must have read since the last trim before a quiet spell
/// trims: a node that moved little cannot have grown its heap much, and a
/// trim walks the whole heap.
pub(crate) const TRIM_AFTER_BYTES: u64 = 4 << 20;
/// How long the node must see no socket read before it trims. A node
/// moving bulk data reads every few hundred microseconds, so it never
/// trims mid-transfer; one whose flows went idle gives its memory back
/// within a tenth of a second. A trim costs one walk of the heap's free
/// lists plus the page faults of the next burst, so at most ten per second
/// of bursty traffic (4 MiB each) cost little against what they return.
pub(crate) const TRIM_QUIET: Duration = Duration::from_millis(100);

/// Reads resumed this soon after a trim mean the trim came in a pause of a
/// burst, not after it: what the rest of the burst grows would otherwise
/// stay (the rest is often under [`TRIM_AFTER_BYTES`]; 1000 flows echoing
/// 64 KiB then kept 2.1–3.1 KiB per flow instead of 1.8), so the next quiet
/// spell trims once more, whatever was read.
pub(crate) const TRIM_RESUMED: Duration = Duration::from_secs(1);

/// When to trim: after [`TRIM_AFTER_BYTES`] were read, or after reads
/// resumed within [`TRIM_RESUMED`] of a trim (once: a follow-up trim does
/// not owe another), once the node has been quiet for [`TRIM_QUIET`].
#[derive(Debug, Default)]
pub(crate) struct HeapTrim {
    /// Bytes read since the last trim.
    moved: u64,
    /// Bytes were read since [`HeapTrim::decide`] last ran.
    active: bool,
    /// When the last activity was seen (at a `decide`).
    last_active: Option<Instant>,
    /// The time the driver's trim timer is set to.
    armed: Option<Instant>,
    /// When the last trim owed to [`TRIM_AFTER_BYTES`] ran, until reads
    /// resume or [`TRIM_RESUMED`] passes.
    trimmed: Option<Instant>,
    /// Reads resumed soon after a trim: one more trim is owed.
    follow_up: bool,
}

/// What the driver does about the heap when it is about to sleep.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TrimStep {
    /// Nothing to do (little moved, or the timer is already set right).
    Wait,
    /// Set the trim timer to this time.
    Arm(Instant),
    /// Trim now.
    Trim,
}

impl HeapTrim {
    /// Whether the driver's trim timer is set and has not fired (the
    /// driver polls it only then).
    pub(crate) fn armed(&self) -> bool {
        self.armed.is_some()
    }

    /// The node read `n` bytes from a socket.
    pub(crate) fn read(&mut self, n: usize) {
        self.moved = self.moved.saturating_add(n as u64);
        self.active = true;
    }

    /// Called when the driver is about to sleep, at `now`, with `fired` set
    /// when the trim timer has fired since the last call. Activity is
    /// dated here, not per read, so a busy node reads the clock once per
    /// sleep rather than once per read.
    pub(crate) fn decide(&mut self, now: Instant, fired: bool) -> TrimStep {
        if fired {
            self.armed = None;
        }
        if std::mem::take(&mut self.active) {
            self.last_active = Some(now);
            if let Some(at) = self.trimmed.take() {
                self.follow_up = now < at + TRIM_RESUMED;
            }
        }
        let Some(last) = self.last_active else {
            return TrimStep::Wait;
        };
        let by_bytes = self.moved >= TRIM_AFTER_BYTES;
        if !by_bytes && !self.follow_up {
            return TrimStep::Wait;
        }
        let due = last + TRIM_QUIET;
        if now >= due {
            self.moved = 0;
            self.armed = None;
            self.follow_up = false;
            self.trimmed = by_bytes.then_some(now);
            return TrimStep::Trim;
        }
        // A timer set earlier than `due` fires and is set again then: one
        // wake-up per quiet period while busy, not a reset per read.
        if self.armed.is_some() {
            return TrimStep::Wait;
        }
        self.armed = Some(due);
        TrimStep::Arm(due)
    }
}

/// Free memory at the top of the heap that glibc keeps instead of giving
/// it back at each `free` (its own trimming), once the host trims for
/// itself. glibc's default is 128 KiB, raised as large blocks are freed: a
/// relay moving bulk frees a 16–64 KiB receive chunk per record, so the top
/// of the heap went back to the system and came back as page faults: 20–27
/// per MiB relayed on a hub and 14–29 on the exit agent, 0.2–0.6 with this,
/// and the relayed path's CPU per GiB fell 6–9 % (benches/WARREN-BENCH.md,
/// seventh pass). [`HeapTrim`] returns all of it once the node is quiet.
const KEEP_FREE_TOP: i32 = 16 << 20;
/// Blocks of this size and more get a mapping of their own, returned at
/// their `free`. Set, because setting the trim threshold stops glibc from
/// adjusting this one (from 128 KiB up to 32 MiB) as large blocks are
/// freed: an HTTP/2 or TLS output buffer grown past 128 KiB in a burst would
/// otherwise be mapped and unmapped, and faulted in again, at each regrowth.
const OWN_MAPPING_FROM: i32 = 4 << 20;

/// Makes the process, not `free`, decide when heap memory goes back to the
/// system: glibc keeps up to 16 MiB free at the top of the heap and maps
/// blocks of 4 MiB and more on their own, and each driver returns the free
/// pages (`malloc_trim(0)`) once its node has been quiet for 100 ms after a
/// burst. For a relay moving bulk this removes the page faults of glibc
/// giving the heap's top back and taking it again at every few records.
///
/// Call it first thing in `main`, before any thread starts: it also puts
/// every thread on glibc's main heap (one arena), because `malloc_trim`
/// cannot shrink another arena's top, so with the larger threshold a node
/// running on a thread with an arena of its own kept up to 16 MiB after a
/// burst (9–10 KiB per idle flow instead of 1.8 in `warren bench`). A
/// thread that allocated before the call keeps its arena, which is why it
/// comes first. The `warren` binary calls it; an embedder that does not
/// keeps glibc's defaults, and its drivers still trim when quiet.
/// Process-wide and idempotent. glibc only; elsewhere it does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn own_heap_trimming() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: mallopt only sets glibc's malloc parameters, under its
        // lock; the values are in range (positive, the mapping threshold
        // below its 32 MiB cap).
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
            libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP_FREE_TOP);
            libc::mallopt(libc::M_MMAP_THRESHOLD, OWN_MAPPING_FROM);
        }
    });
}

/// Other C libraries have no such parameters: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn own_heap_trimming() {}

/// Returns the heap's free pages to the system (glibc's `malloc_trim(0)`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn release_free_heap() {
    // SAFETY: malloc_trim only walks and madvises glibc's own free lists;
    // it takes the allocator's locks like any malloc call.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other C libraries keep no such heap or have no such call: nothing to do.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_heap() {}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::{Arbitrary, Gen, QuickCheck};

    /// One thing that happens to the driver.
    #[derive(Clone, Debug)]
    enum Event {
        /// Reads of this many KiB, then the driver sleeps.
        Busy(u32),
        /// This many ms pass; the trim timer fires if it was due.
        Pause(u16),
    }

    impl Arbitrary for Event {
        fn arbitrary(g: &mut Gen) -> Event {
            if bool::arbitrary(g) {
                Event::Busy(u32::arbitrary(g) % 8192)
            } else {
                Event::Pause(u16::arbitrary(g) % 300)
            }
        }
    }

    /// Trims happen only after the quiet period following enough bytes or
    /// reads resumed soon after a trim owed to bytes, and a quiet spell
    /// after either always ends in one trim.
    #[test]
    fn trims_once_after_each_quiet_spell_that_follows_enough_bytes() {
        fn prop(events: Vec<Event>) -> bool {
            let start = Instant::now();
            let mut now = start;
            let mut trim = HeapTrim::default();
            let mut timer: Option<Instant> = None;
            let mut moved = 0u64;
            let mut last_read: Option<Instant> = None;
            // When the last trim owed to bytes ran, and whether reads
            // resumed soon after it.
            let mut trimmed: Option<Instant> = None;
            let mut follow_up = false;
            for e in events {
                let step = match e {
                    Event::Busy(kib) => {
                        trim.read(kib as usize * 1024);
                        moved += u64::from(kib) * 1024;
                        if kib > 0 {
                            last_read = Some(now);
                        }
                        if let Some(at) = trimmed.take() {
                            follow_up = now < at + TRIM_RESUMED;
                        }
                        trim.decide(now, false)
                    }
                    Event::Pause(ms) => {
                        now += Duration::from_millis(u64::from(ms));
                        let fired = timer.is_some_and(|at| at <= now);
                        if fired {
                            timer = None;
                        }
                        trim.decide(now, fired)
                    }
                };
                match step {
                    TrimStep::Trim => {
                        let quiet = last_read.is_some_and(|t| now >= t + TRIM_QUIET);
                        let by_bytes = moved >= TRIM_AFTER_BYTES;
                        if !(by_bytes || follow_up) || !quiet {
                            return false;
                        }
                        trimmed = by_bytes.then_some(now);
                        moved = 0;
                        follow_up = false;
                        timer = None;
                    }
                    TrimStep::Arm(at) => {
                        if at <= now || timer.is_some() {
                            return false;
                        }
                        timer = Some(at);
                    }
                    TrimStep::Wait => {}
                }
                // A trim owed and not yet quiet: a timer must be pending,
                // or the quiet spell would never end in a trim.
                if (moved >= TRIM_AFTER_BYTES || follow_up) && timer.is_none() {
                    return false;
                }
            }
            true
        }
        QuickCheck::new()
            .tests(500)
            .quickcheck(prop as fn(Vec<Event>) -> bool);
    }

    #[test]
    fn a_burst_then_quiet_trims_a_resumed_burst_once_more_and_a_trickle_never() {
        let t0 = Instant::now();
        let mut trim = HeapTrim::default();
        trim.read(8 << 20);
        assert_eq!(trim.decide(t0, false), TrimStep::Arm(t0 + TRIM_QUIET));
        // Still busy when the timer fires: set again from the last activity.
        trim.read(1);
        let t1 = t0 + TRIM_QUIET;
        assert_eq!(trim.decide(t1, true), TrimStep::Arm(t1 + TRIM_QUIET));
        assert_eq!(trim.decide(t1 + TRIM_QUIET, true), TrimStep::Trim);
        // Reads resume soon after the trim: it came in a pause of the
        // burst, so the next quiet spell trims once more.
        let t2 = t1 + TRIM_QUIET * 5;
        trim.read(1024);
        assert_eq!(trim.decide(t2, false), TrimStep::Arm(t2 + TRIM_QUIET));
        assert_eq!(trim.decide(t2 + TRIM_QUIET, true), TrimStep::Trim);
        // After that follow-up the count starts again: a trickle waits.
        let t3 = t2 + TRIM_QUIET * 3;
        trim.read(1024);
        assert_eq!(trim.decide(t3, false), TrimStep::Wait);
        assert_eq!(trim.decide(t3 + TRIM_QUIET * 10, false), TrimStep::Wait);
        // So does a trickle long after a trim owed to bytes.
        trim.read(8 << 20);
        let t4 = t3 + TRIM_QUIET * 20;
        assert_eq!(trim.decide(t4, false), TrimStep::Arm(t4 + TRIM_QUIET));
        assert_eq!(trim.decide(t4 + TRIM_QUIET, true), TrimStep::Trim);
        let t5 = t4 + TRIM_QUIET + TRIM_RESUMED;
        trim.read(1024);
        assert_eq!(trim.decide(t5, false), TrimStep::Wait);
        assert_eq!(trim.decide(t5 + TRIM_QUIET * 10, false), TrimStep::Wait);
    }
}
