//! Fault injection: partitions, clogged links, black holes, resets, host
//! crashes, frozen processes and skewed clocks.

use warren_proto::time::Instant;

use super::{FaultId, HostId, ListenerId, Net, NetEvent, Scheduled, SocketId};
use crate::trace::TraceEntry;

impl Net {
    /// Cuts every path between `a` and `b`, both directions.
    pub fn partition(&mut self, a: &[HostId], b: &[HostId]) -> FaultId {
        let id = self.faults.partition(&[(a, b), (b, a)]);
        self.trace.record(
            self.now,
            TraceEntry::Fault {
                fault: id.0,
                kind: "partition",
            },
        );
        id
    }

    /// Cuts the paths from `from` to `to` only.
    pub fn partition_one_way(&mut self, from: &[HostId], to: &[HostId]) -> FaultId {
        let id = self.faults.partition(&[(from, to)]);
        self.trace.record(
            self.now,
            TraceEntry::Fault {
                fault: id.0,
                kind: "partition-one-way",
            },
        );
        id
    }

    /// Heals one partition; waiting segments move on.
    pub fn heal(&mut self, fault: FaultId) {
        if self.faults.heal(fault) {
            self.trace.record(
                self.now,
                TraceEntry::Fault {
                    fault: fault.0,
                    kind: "heal",
                },
            );
            self.unstall();
        }
    }

    /// Heals every partition, clog and black hole.
    pub fn heal_all(&mut self) {
        self.faults.heal_all();
        self.trace.record(
            self.now,
            TraceEntry::Fault {
                fault: 0,
                kind: "heal-all",
            },
        );
        self.unstall();
    }

    /// Holds every packet on the link `from → to` until [`Net::unclog`].
    pub fn clog(&mut self, from: HostId, to: HostId) {
        if self.faults.set_clogged(from, to, true) {
            self.trace.record(
                self.now,
                TraceEntry::Fault {
                    fault: 0,
                    kind: "clog",
                },
            );
        }
    }

    /// Lets the link `from → to` carry packets again.
    pub fn unclog(&mut self, from: HostId, to: HostId) {
        if self.faults.set_clogged(from, to, false) {
            self.trace.record(
                self.now,
                TraceEntry::Fault {
                    fault: 0,
                    kind: "unclog",
                },
            );
            self.unstall();
        }
    }

    /// Makes a host a black hole (nothing reaches it or leaves it; connects
    /// to it time out) or restores it.
    pub fn set_black_hole(&mut self, host: HostId, on: bool) {
        if self.faults.set_black_hole(host, on) {
            self.trace.record(
                self.now,
                TraceEntry::Fault {
                    fault: 0,
                    kind: if on { "black-hole" } else { "black-hole-end" },
                },
            );
            if !on {
                self.unstall();
            }
        }
    }

    /// A middlebox resets the connection of `sock`: both ends get
    /// [`NetEvent::Reset`] now.
    pub fn reset_connection(&mut self, sock: SocketId) {
        let Ok((id, _)) = self.lookup(sock) else {
            return;
        };
        self.trace.record(
            self.now,
            TraceEntry::Fault {
                fault: sock.0,
                kind: "reset",
            },
        );
        for side in 0..2 {
            self.schedule(
                self.now,
                Scheduled::RstArrive {
                    conn: id,
                    to_side: side,
                },
            );
        }
    }

    /// The host crashes and comes back empty at once: its listeners and
    /// sockets vanish without a word to anyone (no FIN, no RST), and events
    /// not yet handed to it are dropped. Peers learn of it when their next
    /// bytes draw a RST; connects to it are refused until it listens again
    /// (combine with [`Net::set_black_hole`] for a host that stays down).
    pub fn crash_host(&mut self, host: HostId) {
        self.trace.record(
            self.now,
            TraceEntry::Fault {
                fault: u64::from(host.0),
                kind: "crash",
            },
        );
        let listeners: Vec<ListenerId> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.host == host)
            .map(|(id, _)| *id)
            .collect();
        for listener in listeners {
            self.unlisten(listener);
        }
        let ends: Vec<(u64, usize)> = self
            .conns
            .iter()
            .flat_map(|(id, c)| {
                (0..2)
                    .filter(move |side| c.hosts[*side] == Some(host) && c.attached(*side))
                    .map(move |side| (*id, side))
            })
            .collect();
        for (id, side) in ends {
            if let Some(conn) = self.conns.get_mut(&id) {
                // The crashed kernel's buffers are gone: what it had not
                // sent yet never leaves.
                conn.pipes[side].drop_unsent();
                conn.pipes[1 - side].drop_unread();
            }
            self.detach(id, side);
        }
        self.outbox.retain(|(h, _)| *h != host);
        if let Some(h) = self.hosts.get_mut(&host) {
            h.held.clear();
            h.frozen = false;
        }
    }

    /// Stops the host's process (a GC pause, SIGSTOP, an overloaded VM):
    /// its kernel still takes bytes into the windows, which fill and push
    /// back on the senders, but the host is handed nothing until
    /// [`Net::thaw_host`]. (A world also holds the host's timers.)
    pub fn freeze_host(&mut self, host: HostId) {
        if let Some(h) = self.hosts.get_mut(&host) {
            if !h.frozen {
                h.frozen = true;
                self.trace.record(
                    self.now,
                    TraceEntry::Fault {
                        fault: u64::from(host.0),
                        kind: "freeze",
                    },
                );
            }
        }
    }

    /// Lets a frozen host run again: what happened meanwhile is handed
    /// over in order, then whatever its windows hold.
    pub fn thaw_host(&mut self, host: HostId) {
        let Some(h) = self.hosts.get_mut(&host) else {
            return;
        };
        if !h.frozen {
            return;
        }
        h.frozen = false;
        let held: Vec<NetEvent> = h.held.drain(..).collect();
        self.trace.record(
            self.now,
            TraceEntry::Fault {
                fault: u64::from(host.0),
                kind: "thaw",
            },
        );
        self.outbox.extend(held.into_iter().map(|ev| (host, ev)));
        let readers: Vec<(u64, usize)> = self
            .conns
            .iter()
            .flat_map(|(id, c)| {
                (0..2)
                    .filter(move |side| c.hosts[*side] == Some(host))
                    .map(move |side| (*id, 1 - side))
            })
            .collect();
        for (id, dir) in readers {
            self.deliver(id, dir);
        }
    }

    /// Whether the host is frozen.
    pub fn is_frozen(&self, host: HostId) -> bool {
        self.hosts.get(&host).is_some_and(|h| h.frozen)
    }

    /// Skews a host's clock: it reads the network's time plus `offset_ns`.
    pub fn set_clock_offset(&mut self, host: HostId, offset_ns: i64) {
        if let Some(h) = self.hosts.get_mut(&host) {
            h.clock_offset = offset_ns;
            self.trace.record(
                self.now,
                TraceEntry::Fault {
                    fault: u64::from(host.0),
                    kind: "clock-skew",
                },
            );
        }
    }

    /// The time on a host's own clock (what a node there is told `now` is).
    pub fn host_now(&self, host: HostId) -> Instant {
        self.to_host_time(host, self.now)
    }

    /// Converts a network time to a host's clock.
    pub fn to_host_time(&self, host: HostId, t: Instant) -> Instant {
        let offset = self.hosts.get(&host).map_or(0, |h| h.clock_offset);
        Instant(t.as_nanos().saturating_add_signed(offset))
    }

    /// Converts a host's clock reading (e.g. a node's deadline) to network
    /// time, for scheduling.
    pub fn to_net_time(&self, host: HostId, t: Instant) -> Instant {
        let offset = self.hosts.get(&host).map_or(0, |h| h.clock_offset);
        Instant(t.as_nanos().saturating_add_signed(offset.saturating_neg()))
    }

    /// Whether a packet from `from` reaches `to` now.
    pub fn path_open(&self, from: HostId, to: HostId) -> bool {
        self.faults.path_open(from, to)
    }

    fn unstall(&mut self) {
        let mut stalled = Vec::new();
        for (id, conn) in &mut self.conns {
            for (dir, pipe) in conn.pipes.iter_mut().enumerate() {
                if pipe.stalled {
                    pipe.stalled = false;
                    stalled.push((*id, dir));
                }
            }
        }
        for (id, dir) in stalled {
            self.kick_pump(id, dir, false);
        }
    }
}
