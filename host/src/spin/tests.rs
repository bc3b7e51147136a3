use super::*;
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

fn spin(us: u64) -> Spin {
    Spin::new(LoopOptions {
        spin: Duration::from_micros(us),
    })
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn awaiting() -> bool {
    true
}

fn settled() -> bool {
    false
}

/// Brings the settled window of a 50 µs spin to its largest: four waits
/// of 30 µs after work (0 → 0 → 12.5 → 25 → 50 µs). Returns the time after.
fn warm_up(s: &mut Spin, mut t: Instant) -> Instant {
    for _ in 0..4 {
        s.worked_at(t);
        s.keep_polling_at(t, settled);
        t += us(30);
    }
    s.worked_at(t);
    assert_eq!(s.window(false), us(50));
    t
}

#[test]
fn the_default_never_spins() {
    assert_eq!(LoopOptions::default().spin, Duration::ZERO);
    let mut s = Spin::new(LoopOptions::default());
    s.worked();
    assert!(!s.keep_polling(awaiting));
    let t = Instant::now();
    for step in 0..10 {
        s.worked_at(t + us(step * 10));
        assert!(!s.keep_polling_at(t + us(step * 10 + 1), awaiting));
    }
    assert_eq!(s.window(true), Duration::ZERO);
}

#[test]
fn a_node_that_did_no_work_never_spins() {
    let mut s = spin(50);
    assert!(!s.keep_polling_at(Instant::now(), awaiting));
    assert!(!s.keep_polling(awaiting));
    // Nor does one whose wait already parked, however often it looks.
    let t = warm_up(&mut s, Instant::now());
    assert!(s.keep_polling_at(t, settled));
    assert!(!s.keep_polling_at(t + us(50), settled));
    assert!(!s.keep_polling_at(t + us(51), settled));
    assert!(!s.keep_polling(settled));
}

#[test]
fn the_window_grows_from_a_quarter_while_waits_end_within_the_largest() {
    let mut s = spin(50);
    let t = Instant::now();
    s.worked_at(t);
    // Nothing learnt yet: the first waits park at once, and one short
    // wait is not enough to spin again.
    assert!(!s.keep_polling_at(t, settled));
    s.worked_at(t + us(40));
    assert_eq!(s.window(false), Duration::ZERO);
    assert!(!s.keep_polling_at(t + us(40), settled));
    s.worked_at(t + us(60));
    assert_eq!(s.window(false), us(12) + Duration::from_nanos(500));
    assert!(s.keep_polling_at(t + us(61), settled));
    s.worked_at(t + us(80));
    assert_eq!(s.window(false), us(25));
    s.keep_polling_at(t + us(81), settled);
    s.worked_at(t + us(120));
    assert_eq!(s.window(false), us(50));
    s.keep_polling_at(t + us(121), settled);
    s.worked_at(t + us(160));
    assert_eq!(s.window(false), us(50), "never above the largest");
    assert_eq!(
        s.window(true),
        Duration::ZERO,
        "the other kind learnt nothing"
    );
}

#[test]
fn a_spin_that_catches_its_event_keeps_its_window() {
    let mut s = spin(50);
    let t = warm_up(&mut s, Instant::now());
    assert!(s.keep_polling_at(t, settled));
    assert!(s.keep_polling_at(t + us(5), settled));
    s.worked_at(t + us(6));
    assert_eq!(s.window(false), us(50));
}

#[test]
fn spinning_stops_once_the_window_after_the_first_idle_look_is_spent() {
    let mut s = spin(50);
    let t = warm_up(&mut s, Instant::now());
    for step in 0..50 {
        assert!(s.keep_polling_at(t + us(step), settled), "{step} µs");
    }
    assert!(!s.keep_polling_at(t + us(50), settled));
    assert!(!s.keep_polling_at(t + us(51), settled));
}

#[test]
fn waits_longer_than_the_largest_window_shrink_it_to_zero() {
    let mut s = spin(50);
    let mut t = warm_up(&mut s, Instant::now());
    let quarter = us(12) + Duration::from_nanos(500);
    for expected in [us(25), quarter, Duration::ZERO] {
        assert!(s.keep_polling_at(t, settled));
        t += Duration::from_millis(1);
        s.worked_at(t);
        assert_eq!(s.window(false), expected);
    }
    // Parks at once now, and stays at 0 while waits stay long.
    assert!(!s.keep_polling_at(t, settled));
    t += Duration::from_millis(1);
    s.worked_at(t);
    assert_eq!(s.window(false), Duration::ZERO);
}

#[test]
fn waits_for_an_answer_and_other_waits_have_windows_of_their_own() {
    let mut s = spin(50);
    let mut t = warm_up(&mut s, Instant::now());
    // Awaited answers come after 40 µs, the next flow after 1 ms: the
    // settled window falls to 0, the awaiting one grows to the largest.
    for _ in 0..4 {
        s.keep_polling_at(t, awaiting);
        t += us(40);
        s.worked_at(t);
        s.keep_polling_at(t, settled);
        t += Duration::from_millis(1);
        s.worked_at(t);
    }
    assert_eq!(s.window(true), us(50));
    assert_eq!(s.window(false), Duration::ZERO);
    assert!(s.keep_polling_at(t, awaiting));
    s.worked_at(t + us(1));
    assert!(!s.keep_polling_at(t + us(2), settled));
}

#[test]
fn the_kind_of_a_wait_is_asked_once_when_it_begins() {
    let mut s = spin(50);
    let t = warm_up(&mut s, Instant::now());
    let mut asked = 0;
    for step in 0..10 {
        s.keep_polling_at(t + us(step), || {
            asked += 1;
            false
        });
    }
    assert_eq!(asked, 1);
}

#[test]
fn a_spin_that_lost_its_cpu_stops_and_pauses_spinning() {
    let mut s = spin(50);
    let t = warm_up(&mut s, Instant::now());
    assert!(s.keep_polling_at(t, settled));
    assert!(s.keep_polling_at(t + us(1), settled));
    // The next poll comes 4 ms later: another thread had the CPU (a busy
    // loop's time slice).
    let back = t + Duration::from_millis(4);
    assert!(!s.keep_polling_at(back, settled));
    // Waits during the pause park at once, whatever their window.
    s.worked_at(back + us(10));
    assert!(!s.keep_polling_at(back + us(11), settled));
    s.worked_at(back + us(20));
    let after = back + CONTENDED_PAUSE;
    s.worked_at(after);
    assert!(
        s.keep_polling_at(after + us(1), settled),
        "spins again after the pause"
    );
}

#[test]
fn a_stay_off_the_cpu_shorter_than_the_gap_keeps_spinning() {
    let mut s = spin(50);
    let t = warm_up(&mut s, Instant::now());
    assert!(s.keep_polling_at(t + us(1), settled));
    // 30 µs away (a thread the node waits for ran): still spinning.
    assert!(s.keep_polling_at(t + us(31), settled));
    assert!(s.keep_polling_at(t + us(49), settled));
    // 200 µs away: past the window, so this spin ends, but the next one
    // is not paused.
    assert!(!s.keep_polling_at(t + us(249), settled));
    s.worked_at(t + us(250));
    assert!(s.keep_polling_at(t + us(251), settled));
}

#[test]
fn work_in_between_is_not_time_off_the_cpu() {
    let mut s = spin(50);
    let t = warm_up(&mut s, Instant::now());
    assert!(s.keep_polling_at(t + us(1), settled));
    // The poll found work that took 600 µs: a new wait, not a pause.
    s.worked_at(t + us(3));
    s.keep_polling_at(t + us(603), settled);
    s.worked_at(t + us(604));
    assert!(s.keep_polling_at(t + us(605), settled));
}

/// What the driver does to the spin, with time in µs between steps.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The node did work.
    Work,
    /// The node found nothing to do (and whether it awaits an answer).
    Look(bool),
    /// Time passes.
    Wait(u16),
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Step {
        match u8::arbitrary(g) % 4 {
            0 => Step::Work,
            1 => Step::Look(bool::arbitrary(g)),
            // Mostly around the window, sometimes far beyond it.
            2 => Step::Wait(u16::arbitrary(g) % 80),
            _ => Step::Wait(u16::arbitrary(g) % 3000),
        }
    }
}

/// Waits of more than the largest window in a row, after which a kind's
/// window is 0: 1 → ½ → ¼ (kept) → ⅛ (below a quarter: 0).
const LONG_WAITS_TO_ZERO: u32 = 3;

fn spin_keeps_its_bounds(max_ns: u32, steps: Vec<Step>) -> TestResult {
    // Any largest window up to 1 ms, to the nanosecond (a quarter of it
    // need not double back to it exactly).
    let max = Duration::from_nanos(u64::from(max_ns % 1_000_000) + 1);
    let mut s = Spin::new(LoopOptions { spin: max });
    let start = Instant::now();
    let mut now = start;
    let mut worked_since_look = false;
    // The current wait: when it began and its kind.
    let mut wait: Option<(Instant, bool)> = None;
    // Long waits in a row, per kind (settled, awaiting).
    let mut long = [0u32; 2];
    // Whether the kind's last wait was short (none yet: no).
    let mut last_short = [false; 2];
    for (i, &step) in steps.iter().enumerate() {
        match step {
            Step::Work => {
                let ended = wait.take();
                let before = ended.map(|(_, kind)| s.window(kind));
                s.worked_at(now);
                if let Some((began, kind)) = ended {
                    let k = usize::from(kind);
                    let short = now - began <= max;
                    long[k] = if short { 0 } else { long[k] + 1 };
                    // From 0, two short waits in a row before it grows.
                    let lone = !std::mem::replace(&mut last_short[k], short);
                    if before == Some(Duration::ZERO) && lone && !s.window(kind).is_zero() {
                        return TestResult::error(format!(
                            "step {i}: grew from 0 after one short wait"
                        ));
                    }
                }
                worked_since_look = true;
            }
            Step::Look(kind) => {
                if std::mem::take(&mut worked_since_look) {
                    wait = Some((now, kind));
                }
                let spins = s.keep_polling_at(now, || kind);
                let within = wait.is_some_and(|(began, _)| now - began < max);
                if spins && !within {
                    return TestResult::error(format!(
                        "step {i}: spins {:?} after the wait began (or no work), max {max:?}",
                        wait.map(|(began, _)| now - began)
                    ));
                }
            }
            Step::Wait(n) => now += us(u64::from(n)),
        }
        for kind in [false, true] {
            let window = s.window(kind);
            if window > max {
                return TestResult::error(format!("step {i}: window {window:?} > {max:?}"));
            }
            if long[usize::from(kind)] >= LONG_WAITS_TO_ZERO && !window.is_zero() {
                return TestResult::error(format!(
                    "step {i}: {} long waits in a row, window {window:?}",
                    long[usize::from(kind)]
                ));
            }
        }
    }
    TestResult::passed()
}

#[test]
fn the_window_stays_within_bounds_and_idle_nodes_never_spin() {
    QuickCheck::new()
        .tests(2000)
        .quickcheck(spin_keeps_its_bounds as fn(u32, Vec<Step>) -> TestResult);
}

#[test]
fn the_window_stops_at_the_largest_when_a_quarter_does_not_double_back_to_it() {
    // 1003 ns: a quarter is 250 ns, which doubles to 1000 ns, 3 short of
    // the largest; a wait of 1002 ns then grows it to the largest, not
    // to 2000 ns.
    let max = Duration::from_nanos(1003);
    let mut s = Spin::new(LoopOptions { spin: max });
    let mut t = Instant::now();
    for (waited, window) in [(1, 0), (500, 250), (600, 500), (900, 1000), (1002, 1003)] {
        s.worked_at(t);
        s.keep_polling_at(t, settled);
        t += Duration::from_nanos(waited);
        s.worked_at(t);
        assert_eq!(
            s.window(false),
            Duration::from_nanos(window),
            "after {waited} ns"
        );
    }
}

#[test]
fn a_wait_after_bulk_work_parks_unless_an_answer_is_due() {
    let mut s = spin(50);
    let t = warm_up(&mut s, Instant::now());
    s.read(usize::try_from(BULK_BYTES).unwrap() + 1);
    assert!(
        !s.keep_polling_at(t, settled),
        "a relay's wait between reads"
    );
    s.worked_at(t + us(10));
    assert_eq!(s.window(false), us(50), "the window itself is kept");
    // The count starts again with each wait: small reads spin.
    s.read(100);
    assert!(s.keep_polling_at(t + us(11), settled));
    s.worked_at(t + us(12));
    s.read(usize::try_from(BULK_BYTES).unwrap() + 1);
    s.awaiting = Window {
        spin: us(50),
        short_run: 0,
    };
    assert!(s.keep_polling_at(t + us(13), awaiting), "an answer is due");
}
