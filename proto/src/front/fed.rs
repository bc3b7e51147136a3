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
