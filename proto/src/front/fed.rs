//! Test support for the front ends: feeds one its client's reads in order
//! and collects what it sent and how the request ended, the way the node
//! drives it.

use super::{Progress, Step, Target, UsageError};

/// What feeding produced: the bytes sent to the client, and the target
/// with the leftover once ready (`None` while incomplete) or the
/// rejection.
pub(crate) type Fed<E> = (Vec<u8>, Result<Option<(Target, Vec<u8>)>, E>);

/// Feeds `reads` through `feed` until the request is ready or rejected;
/// reads after that are not fed.
pub(crate) fn feed_reads<'r, E>(
    reads: impl IntoIterator<Item = &'r [u8]>,
    mut feed: impl FnMut(&'r [u8]) -> Result<Step<'r, E>, UsageError>,
) -> Fed<E> {
    let mut sent = Vec::new();
    for read in reads {
        let step = feed(read).unwrap();
        sent.extend_from_slice(&step.send);
        match step.progress {
            Progress::NeedMore => {}
            Progress::Ready { target, leftover } => {
                return (sent, Ok(Some((target, leftover.to_vec()))))
            }
            Progress::Rejected(e) => return (sent, Err(e)),
        }
    }
    (sent, Ok(None))
}

/// [`feed_reads`], with the reads that come after the request added to the
/// leftover: once the request is ready the caller owns every later byte,
/// so a ready result's leftover is all the client sent past its request.
pub(crate) fn feed_reads_keeping_the_rest<'r, E>(
    reads: &'r [Vec<u8>],
    feed: impl FnMut(&'r [u8]) -> Result<Step<'r, E>, UsageError>,
) -> Fed<E> {
    let mut rest = reads.iter();
    let (sent, got) = feed_reads(rest.by_ref().map(Vec::as_slice), feed);
    let got = got.map(|ready| {
        ready.map(|(target, mut leftover)| {
            rest.for_each(|read| leftover.extend_from_slice(read));
            (target, leftover)
        })
    });
    (sent, got)
}

/// Splits `bytes` at the given cut points (each taken modulo the length
/// plus one, so any `usize` from quickcheck is a cut), in order.
pub(crate) fn cut(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        out.push(bytes[start..p].to_vec());
        start = p;
    }
    out
}
