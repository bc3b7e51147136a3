//! The TCP machinery behind [`Net`]'s calls: handshake and its retries,
//! segments leaving at the link's pace, arrivals in order, delivery to
//! readers, resets.

use core::time::Duration;

use warren_proto::time::Instant;

use super::{Conn, ConnState, ConnectError, End, HostId, Net, NetEvent, Scheduled, SocketId};
use crate::trace::TraceEntry;

impl Net {
    /// One-way delay of a packet on `from → to`, with jitter drawn from the
    /// pipe `dir` of `conn`.
    pub(super) fn delay(&mut self, id: u64, dir: usize, from: HostId, to: HostId) -> Duration {
        let link = self.link(from, to);
        let jitter_ns = u64::try_from(link.jitter.as_nanos()).unwrap_or(u64::MAX);
        let jitter = match self.conns.get_mut(&id) {
            Some(conn) => conn.pipes[dir].rng.range_inclusive(0, jitter_ns),
            None => 0,
        };
        link.latency + Duration::from_nanos(jitter)
    }

    /// Schedules the pump of pipe `dir` unless one is already pending;
    /// `coalesce` adds the link's random delay so close writes merge.
    pub(super) fn kick_pump(&mut self, id: u64, dir: usize, coalesce: bool) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.pipes[dir].pump_scheduled {
            return;
        }
        let (Some(from), Some(to)) = (conn.hosts[dir], conn.hosts[1 - dir]) else {
            return;
        };
        let wait = if coalesce {
            self.link(from, to).coalesce
        } else {
            Duration::ZERO
        };
        let wait_ns = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let pipe = &mut conn.pipes[dir];
        pipe.pump_scheduled = true;
        let at = self.now + Duration::from_nanos(pipe.rng.range_inclusive(0, wait_ns));
        self.schedule(at, Scheduled::Pump { conn: id, dir });
    }

    /// Sends RST from `from_side` to the other end, behind any bytes already
    /// on their way in that direction.
    pub(super) fn send_rst(&mut self, id: u64, from_side: usize) {
        let to_side = 1 - from_side;
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.ends[to_side].is_none() {
            return;
        }
        let (Some(from), Some(to)) = (conn.hosts[from_side], conn.hosts[to_side]) else {
            return;
        };
        if !self.faults.path_open(from, to) {
            return;
        }
        let at = self.now + self.delay(id, from_side, from, to);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let pipe = &mut conn.pipes[from_side];
        let at = at.max(pipe.last_arrival);
        pipe.last_arrival = at;
        self.schedule(at, Scheduled::RstArrive { conn: id, to_side });
    }

    pub(super) fn handle(&mut self, item: Scheduled) {
        match item {
            Scheduled::SynSend { conn, attempt } => self.on_syn_send(conn, attempt),
            Scheduled::SynArrive { conn } => self.on_syn_arrive(conn),
            Scheduled::SynAckArrive { conn } => self.on_syn_ack_arrive(conn),
            Scheduled::AckArrive { conn } => {
                self.ensure_accepted(conn);
            }
            Scheduled::RefusedArrive { conn } => self.fail_connect(conn, ConnectError::Refused),
            Scheduled::UnreachableArrive { conn } => {
                self.fail_connect(conn, ConnectError::Unreachable);
            }
            Scheduled::ConnectTimeout { conn } => self.fail_connect(conn, ConnectError::TimedOut),
            Scheduled::Pump { conn, dir } => self.on_pump(conn, dir),
            Scheduled::Arrive {
                conn,
                dir,
                data,
                fin,
            } => self.on_arrive(conn, dir, data, fin),
            Scheduled::RstArrive { conn, to_side } => self.on_rst_arrive(conn, to_side),
        }
    }

    pub(super) fn connecting(&self, id: u64) -> Option<&Conn> {
        self.conns
            .get(&id)
            .filter(|c| c.state == ConnState::Connecting && c.attached(0))
    }

    pub(super) fn on_syn_send(&mut self, id: u64, attempt: u32) {
        let Some(conn) = self.connecting(id) else {
            return;
        };
        let (client, server) = (conn.hosts[0], conn.hosts[1]);
        let sock = conn.ends[0].as_ref().map_or(0, |e| e.sock.0);
        let deadline = conn.connect_deadline;
        // Retransmit whether or not this SYN gets through: its answer may be
        // lost on the way back. The connect timeout ends the retries.
        let backoff = self
            .config
            .syn_retry
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX));
        let retry_at = self.now + backoff;
        if retry_at < deadline {
            self.schedule_connect_timer(
                id,
                retry_at,
                Scheduled::SynSend {
                    conn: id,
                    attempt: attempt.saturating_add(1),
                },
            );
        }
        match (client, server) {
            (Some(c), Some(s)) if self.faults.path_open(c, s) => {
                let at = self.now + self.delay(id, 0, c, s);
                self.schedule(at, Scheduled::SynArrive { conn: id });
            }
            _ => {
                self.stats.syn_drops += 1;
                self.trace
                    .record(self.now, TraceEntry::SynDropped { sock, attempt });
            }
        }
    }

    pub(super) fn on_syn_arrive(&mut self, id: u64) {
        let Some(conn) = self.connecting(id) else {
            return;
        };
        let (Some(client), Some(server)) = (conn.hosts[0], conn.hosts[1]) else {
            return;
        };
        let dialled = conn.addrs[1];
        if !self.faults.path_open(server, client) {
            return;
        }
        let at = self.now + self.delay(id, 1, server, client);
        if self.listener_for(server, dialled).is_some() {
            if let Some(conn) = self.conns.get_mut(&id) {
                // Nothing the server sends may overtake its SYN-ACK.
                let pipe = &mut conn.pipes[1];
                pipe.last_arrival = pipe.last_arrival.max(at);
            }
            self.schedule(at, Scheduled::SynAckArrive { conn: id });
        } else {
            self.schedule(at, Scheduled::RefusedArrive { conn: id });
        }
    }

    pub(super) fn on_syn_ack_arrive(&mut self, id: u64) {
        if self.connecting(id).is_none() {
            return;
        }
        self.establish(id);
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (Some(client), Some(server)) = (conn.hosts[0], conn.hosts[1]) else {
            return;
        };
        // The final ACK; if it is lost the first data segment carries it.
        if self.faults.path_open(client, server) {
            let at = self.now + self.delay(id, 0, client, server);
            if let Some(conn) = self.conns.get_mut(&id) {
                let pipe = &mut conn.pipes[0];
                let at = at.max(pipe.last_arrival);
                pipe.last_arrival = at;
                self.schedule(at, Scheduled::AckArrive { conn: id });
            }
        }
    }

    /// The client learns the connection is up.
    pub(super) fn establish(&mut self, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.state != ConnState::Connecting {
            return;
        }
        conn.state = ConnState::Established;
        let client = conn.ends[0]
            .as_ref()
            .filter(|e| e.attached)
            .map(|e| e.sock)
            .zip(conn.hosts[0]);
        self.cancel_connect_timers(id);
        if let Some((sock, host)) = client {
            self.emit(
                host,
                NetEvent::Connected {
                    sock,
                    result: Ok(()),
                },
            );
        }
    }

    /// The result of `sock`'s connect if the network knows it without
    /// waiting, for a host that asks right after `connect` (as warren-host
    /// does on loopback, where the TCP handshake ends inside connect(2)):
    /// a connect from a host to itself crosses no link, so no latency and
    /// no fault stands in its way. Established if a listener is there (its
    /// `Accepted` comes as usual), refused if none. `None` for any other
    /// connect (and a second ask): its result comes as
    /// [`NetEvent::Connected`]. A result returned here is never also sent
    /// as an event; it is traced like one.
    pub fn connect_result_now(&mut self, sock: SocketId) -> Option<Result<(), ConnectError>> {
        let (id, _) = self.sockets.get(&sock).copied()?;
        let conn = self.connecting(id)?;
        let (Some(client), Some(server)) = (conn.hosts[0], conn.hosts[1]) else {
            return None;
        };
        if client != server {
            return None;
        }
        let result = match self.listener_for(server, conn.addrs[1]) {
            Some(_) => Ok(()),
            None => Err(ConnectError::Refused),
        };
        self.cancel_connect_timers(id);
        self.trace.record(
            self.now,
            TraceEntry::Connected {
                sock: sock.0,
                outcome: u8::from(result.is_err()),
            },
        );
        match result {
            Ok(()) => {
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.state = ConnState::Established;
                }
                self.ensure_accepted(id);
            }
            Err(_) => {
                self.stats.connect_failures += 1;
                self.detach(id, 0);
            }
        }
        Some(result)
    }

    pub(super) fn fail_connect(&mut self, id: u64, error: ConnectError) {
        let Some(conn) = self.connecting(id) else {
            return;
        };
        let (Some(end), Some(host)) = (conn.ends[0].as_ref(), conn.hosts[0]) else {
            return;
        };
        let sock = end.sock;
        self.emit(
            host,
            NetEvent::Connected {
                sock,
                result: Err(error),
            },
        );
        self.detach(id, 0);
    }

    /// Makes the server end exist (the handshake's last ACK, or the first
    /// segment standing in for it, reached the server). Returns whether the
    /// server end exists; if the listener went away it answers with RST and
    /// returns false.
    pub(super) fn ensure_accepted(&mut self, id: u64) -> bool {
        let Some(conn) = self.conns.get(&id) else {
            return false;
        };
        if conn.ends[1].is_some() {
            return true;
        }
        let Some(server) = conn.hosts[1] else {
            return false;
        };
        let (peer, dialled) = (conn.addrs[0], conn.addrs[1]);
        let Some(listener) = self.listener_for(server, dialled) else {
            self.send_rst(id, 1);
            return false;
        };
        let sock = self.new_socket(id, 1);
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.ends[1] = Some(End {
                sock,
                attached: true,
                read_paused: false,
            });
        }
        self.emit(
            server,
            NetEvent::Accepted {
                listener,
                sock,
                peer,
            },
        );
        true
    }

    pub(super) fn on_pump(&mut self, id: u64, dir: usize) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.pipes[dir].pump_scheduled = false;
        if !conn.pipes[dir].has_pending() {
            return;
        }
        let (Some(from), Some(to)) = (conn.hosts[dir], conn.hosts[1 - dir]) else {
            return;
        };
        let sock = conn.ends[dir].as_ref().map_or(0, |e| e.sock.0);
        if !self.faults.path_open(from, to) {
            conn.pipes[dir].stalled = true;
            return;
        }
        let link = self.link(from, to);
        let max = link.max_segment.max(1);
        let min = link.min_segment.clamp(1, max);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let size = conn.pipes[dir].rng.range_usize(min, max);
        let (data, fin) = conn.pipes[dir].cut_segment(size);
        let tx_ns = if link.bandwidth == 0 {
            0
        } else {
            let ns = (data.len() as u128) * 1_000_000_000 / u128::from(link.bandwidth);
            u64::try_from(ns).unwrap_or(u64::MAX)
        };
        let link_free = self.link_free_at.entry((from, to)).or_insert(Instant::ZERO);
        let depart = (*link_free).max(self.now);
        let sent = depart + Duration::from_nanos(tx_ns);
        *link_free = sent;
        let arrive = sent + self.delay(id, dir, from, to);
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let pipe = &mut conn.pipes[dir];
        let arrive = arrive.max(pipe.last_arrival);
        pipe.last_arrival = arrive;
        let more = pipe.has_pending();
        if more {
            pipe.pump_scheduled = true;
        }
        self.stats.segments += 1;
        self.trace.record(
            self.now,
            TraceEntry::Segment {
                sock,
                len: data.len() as u64,
                fin,
                arrives: arrive,
            },
        );
        self.schedule(
            arrive,
            Scheduled::Arrive {
                conn: id,
                dir,
                data,
                fin,
            },
        );
        if more {
            self.schedule(sent, Scheduled::Pump { conn: id, dir });
        }
    }

    pub(super) fn on_arrive(&mut self, id: u64, dir: usize, data: Vec<u8>, fin: bool) {
        let reader = 1 - dir;
        if reader == 1 {
            if !self.ensure_accepted(id) {
                return;
            }
        } else {
            self.establish(id);
        }
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !conn.attached(reader) {
            // Bytes for a closed socket: the kernel answers with RST.
            let carried_bytes = !data.is_empty();
            conn.pipes[dir].arrive(data, fin);
            conn.pipes[dir].drop_unread();
            if carried_bytes {
                self.send_rst(id, reader);
            }
            return;
        }
        conn.pipes[dir].arrive(data, fin);
        self.deliver(id, dir);
    }

    /// Hands what arrived on pipe `dir` to its reader, unless paused.
    pub(super) fn deliver(&mut self, id: u64, dir: usize) {
        let reader = 1 - dir;
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        let Some(end) = conn.ends[reader].as_ref() else {
            return;
        };
        let Some(reader_host) = conn.hosts[reader] else {
            return;
        };
        let frozen = self.hosts.get(&reader_host).is_some_and(|h| h.frozen);
        if !end.attached || end.read_paused || frozen {
            return;
        }
        let reader_sock = end.sock;
        let writer = conn.ends[dir]
            .as_ref()
            .filter(|e| e.attached)
            .map(|e| e.sock);
        let writer_host = conn.hosts[dir];
        let pipe = &mut conn.pipes[dir];
        let mut events = Vec::new();
        if pipe.has_unread() {
            let data = pipe.take_received();
            events.push((
                reader_host,
                NetEvent::Received {
                    sock: reader_sock,
                    data,
                },
            ));
            if pipe.want_writable && pipe.space() > 0 {
                pipe.want_writable = false;
                if let (Some(sock), Some(host)) = (writer, writer_host) {
                    events.push((host, NetEvent::Writable { sock }));
                }
            }
        }
        if pipe.fin_arrived && !pipe.fin_delivered && !pipe.has_unread() {
            pipe.fin_delivered = true;
            events.push((reader_host, NetEvent::ReadClosed { sock: reader_sock }));
        }
        for (host, ev) in events {
            self.emit(host, ev);
        }
    }

    pub(super) fn on_rst_arrive(&mut self, id: u64, to_side: usize) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if !conn.attached(to_side) {
            return;
        }
        conn.pipes[0].discard();
        conn.pipes[1].discard();
        if to_side == 0 && conn.state == ConnState::Connecting {
            self.fail_connect(id, ConnectError::Refused);
            return;
        }
        let (Some(end), Some(host)) = (conn.ends[to_side].as_ref(), conn.hosts[to_side]) else {
            return;
        };
        let sock = end.sock;
        self.emit(host, NetEvent::Reset { sock });
        self.detach(id, to_side);
    }
}
