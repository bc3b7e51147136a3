//! Which paths between hosts are currently blocked, and why.
//!
//! A path is the directed pair (from host, to host). It is open unless an
//! active partition covers it, its link is clogged, or either end is a
//! black hole. Blocking a path never loses bytes: segments wait at the
//! sender (as TCP would retransmit them) until the path opens again.

use std::collections::{BTreeMap, BTreeSet};

use super::HostId;

/// Names one injected partition so it can be healed on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaultId(pub u64);

/// A directed cut: nothing from a host in `from` reaches a host in `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cut {
    from: BTreeSet<HostId>,
    to: BTreeSet<HostId>,
}

/// The set of active faults.
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    next_id: u64,
    partitions: BTreeMap<FaultId, Vec<Cut>>,
    clogged: BTreeSet<(HostId, HostId)>,
    black_holes: BTreeSet<HostId>,
}

impl Faults {
    /// Whether a packet from `from` can reach `to` now.
    pub(crate) fn path_open(&self, from: HostId, to: HostId) -> bool {
        if self.black_holes.contains(&from) || self.black_holes.contains(&to) {
            return false;
        }
        if self.clogged.contains(&(from, to)) {
            return false;
        }
        !self
            .partitions
            .values()
            .flatten()
            .any(|c| c.from.contains(&from) && c.to.contains(&to))
    }

    /// Adds a partition made of directed cuts; returns its id.
    pub(crate) fn partition(&mut self, cuts: &[(&[HostId], &[HostId])]) -> FaultId {
        let id = FaultId(self.next_id);
        self.next_id += 1;
        let cuts = cuts
            .iter()
            .map(|(from, to)| Cut {
                from: from.iter().copied().collect(),
                to: to.iter().copied().collect(),
            })
            .collect();
        self.partitions.insert(id, cuts);
        id
    }

    /// Removes one partition; false if it was not active.
    pub(crate) fn heal(&mut self, id: FaultId) -> bool {
        self.partitions.remove(&id).is_some()
    }

    /// Removes every partition, clog and black hole.
    pub(crate) fn heal_all(&mut self) {
        self.partitions.clear();
        self.clogged.clear();
        self.black_holes.clear();
    }

    /// Clogs or unclogs the link `from → to`; returns whether it changed.
    pub(crate) fn set_clogged(&mut self, from: HostId, to: HostId, clogged: bool) -> bool {
        if clogged {
            self.clogged.insert((from, to))
        } else {
            self.clogged.remove(&(from, to))
        }
    }

    /// Makes a host a black hole or restores it; returns whether it changed.
    pub(crate) fn set_black_hole(&mut self, host: HostId, on: bool) -> bool {
        if on {
            self.black_holes.insert(host)
        } else {
            self.black_holes.remove(&host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_block_exactly_their_paths() {
        let (a, b, c) = (HostId(0), HostId(1), HostId(2));
        let mut f = Faults::default();
        assert!(f.path_open(a, b));
        let one_way = f.partition(&[(&[a], &[b, c])]);
        assert!(!f.path_open(a, b) && !f.path_open(a, c));
        assert!(f.path_open(b, a) && f.path_open(b, c));
        assert!(f.heal(one_way) && !f.heal(one_way));
        assert!(f.path_open(a, b));
        assert!(f.set_clogged(b, c, true));
        assert!(!f.path_open(b, c) && f.path_open(c, b));
        assert!(f.set_black_hole(a, true));
        assert!(!f.path_open(c, a) && !f.path_open(a, c));
        f.heal_all();
        assert!(f.path_open(b, c) && f.path_open(a, c));
    }
}
