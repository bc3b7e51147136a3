//! Moving bytes: socket chunks, HTTP/2 events, half-closes, resets, and
//! the end of flows and connections. Level-triggered: `settle_flow`
//! looks at a flow's whole state and does whatever is due, so every event
//! handler only records what happened and calls it.

use crate::h2::{ErrorCode, Event as H2Event, StreamId};
use crate::pool::ConnId;
use crate::time::Instant;
use crate::tls::TlsError;

use super::event::{CloseReason, HandshakeError, NodeEvent};
use super::flow::{Far, Owner, Phase};
use super::labels::{self, Labels};
use super::{ConnectError, FlowId, HostError, Node, NodeConfig, Output, SockId};

impl Node {
    pub(super) fn emit(&mut self, event: NodeEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    /// What `sock` should be written next.
    pub(super) fn chunk(&self, sock: SockId) -> &[u8] {
        let Some(s) = self.socks.get(&sock) else {
            return &[];
        };
        if !s.prefix.is_empty() {
            return &s.prefix;
        }
        match s.owner {
            Owner::Mesh(c) => self.conns.get(&c).map_or(&[], |m| m.chunk()),
            Owner::Flow(f) => {
                let Some(flow) = self.flows.get(&f) else {
                    return &[];
                };
                if flow.phase != Phase::Relay {
                    return &[];
                }
                let held_of = |other: SockId| self.socks.get(&other).map_or(&[][..], |o| &o.held);
                match flow.far {
                    _ if sock != flow.local => held_of(flow.local),
                    Far::Stream {
                        conn,
                        stream: Some(st),
                    } => self.conns.get(&conn).map_or(&[], |m| m.h2.recv_data(st)),
                    Far::Tcp(t) => held_of(t),
                    _ => &[],
                }
            }
        }
    }

    pub(super) fn on_transmitted(&mut self, sock: SockId, n: usize) -> Result<(), HostError> {
        self.consume_chunk(sock, n)?;
        if self.chunk(sock).is_empty() {
            // Drained: whatever waited for that (a close, a half-close) is due.
            self.dirty.insert(sock);
        }
        Ok(())
    }

    fn consume_chunk(&mut self, sock: SockId, n: usize) -> Result<(), HostError> {
        let len = self.chunk(sock).len();
        if n > len {
            return Err(HostError::TransmitOverrun(sock));
        }
        let s = self.sock_mut(sock)?;
        s.blocked = n < len;
        if !s.prefix.is_empty() {
            s.prefix.drain(..n);
            let owner = s.owner;
            if let Owner::Flow(f) = owner {
                self.settle_flow(f);
            }
            return Ok(());
        }
        match s.owner {
            Owner::Mesh(c) => {
                if let Some(conn) = self.conns.get_mut(&c) {
                    conn.consume(n);
                }
                self.fill_conn(c);
            }
            Owner::Flow(f) => {
                let Some(flow) = self.flows.get_mut(&f) else {
                    return Ok(());
                };
                flow.last_active = self.now;
                let towards_local = sock == flow.local;
                let n64 = n as u64;
                if towards_local {
                    flow.bytes_received += n64;
                } else {
                    flow.bytes_sent += n64;
                }
                match (towards_local, flow.far) {
                    (
                        true,
                        Far::Stream {
                            conn,
                            stream: Some(st),
                        },
                    ) => {
                        if let Some(m) = self.conns.get_mut(&conn) {
                            // The target took the bytes: now the peer may send more.
                            let _ = m.h2.release_capacity(st, n);
                            self.dirty.insert(m.sock);
                        }
                    }
                    (true, Far::Tcp(t)) => {
                        if let Some(o) = self.socks.get_mut(&t) {
                            o.take_held(n);
                        }
                    }
                    (false, _) => {
                        let local = flow.local;
                        if let Some(o) = self.socks.get_mut(&local) {
                            o.take_held(n);
                        }
                    }
                    _ => {}
                }
                labels::count(&mut self.metrics, &**flow, |counters| {
                    if towards_local {
                        counters.bytes_received += n64;
                    } else {
                        counters.bytes_sent += n64;
                    }
                });
                self.settle_flow(f);
            }
        }
        Ok(())
    }

    /// Re-examines a socket: announce its chunk, or close it once drained.
    pub(super) fn refresh(&mut self, sock: SockId) {
        if self.tunnel_refresh(sock) {
            return;
        }
        let Some(owner) = self.socks.get(&sock).map(|s| s.owner) else {
            return;
        };
        if let Owner::Mesh(c) = owner {
            // Ciphertext TLS refused earlier (its plaintext was full) gets
            // another try now that HTTP/2 may have taken plaintext.
            if self.socks.get(&sock).is_some_and(|s| !s.held.is_empty()) {
                self.conn_receive(c, sock, &[]);
            }
            self.fill_conn(c);
        }
        let pending = !self.chunk(sock).is_empty();
        let Some(s) = self.socks.get(&sock) else {
            return;
        };
        if pending {
            if !s.blocked {
                self.outputs.push_back(Output::Transmit { sock });
            }
            return;
        }
        if let Some(reset) = s.closing {
            self.socks.remove(&sock);
            self.outputs.push_back(Output::Close { sock, reset });
            if let Owner::Mesh(c) = owner {
                self.conns.remove(&c);
            }
            return;
        }
        if let Owner::Flow(f) = owner {
            self.settle_flow(f);
        }
    }

    /// Does whatever is due on a relaying flow (see the module docs).
    pub(super) fn settle_flow(&mut self, f: FlowId) {
        let Some(flow) = self.flows.get(&f) else {
            return;
        };
        if flow.phase != Phase::Relay {
            return;
        }
        let local = flow.local;
        let done = match flow.far {
            Far::Stream {
                conn,
                stream: Some(st),
            } => self.settle_stream(f, local, conn, st),
            Far::Tcp(t) => {
                self.settle_tcp_direction(local, t);
                self.settle_tcp_direction(t, local);
                let shut = |s: SockId| self.socks.get(&s).is_none_or(|s| s.write_shut);
                shut(local) && shut(t)
            }
            _ => false,
        };
        if done {
            self.close_flow(f, CloseReason::Done, false);
        }
    }

    /// Returns whether both directions are finished.
    fn settle_stream(&mut self, f: FlowId, local: SockId, c: ConnId, st: StreamId) -> bool {
        let (Some(flow), Some(conn), Some(s)) = (
            self.flows.get_mut(&f),
            self.conns.get_mut(&c),
            self.socks.get_mut(&local),
        ) else {
            return false;
        };
        // Local socket → stream.
        if !flow.finished && !flow.stream_closed {
            let n = match s.held.is_empty() {
                true => 0,
                false => conn.send_data(st, &s.held).unwrap_or(0),
            };
            if n > 0 {
                // Injected bug: a partial send drops one byte too few.
                #[cfg(feature = "sim-bugs")]
                let n_dropped = match self.bug {
                    Some(crate::sim_bugs::Bug::RelayOffByOne) if n < s.held.len() => n - 1,
                    _ => n,
                };
                #[cfg(not(feature = "sim-bugs"))]
                let n_dropped = n;
                s.take_held(n_dropped);
                flow.bytes_sent += n as u64;
                labels::count(&mut self.metrics, &**flow, |c| c.bytes_sent += n as u64);
                self.dirty.insert(conn.sock);
            }
            if s.held.is_empty() {
                if s.read_paused && !s.read_eof {
                    s.read_paused = false;
                    self.outputs.push_back(Output::ResumeRead { sock: local });
                }
                if s.read_eof {
                    let _ = conn.h2.finish(st);
                    flow.finished = true;
                    self.dirty.insert(conn.sock);
                }
            } else if !s.read_paused {
                // Injected bug: the socket is not paused.
                #[cfg(feature = "sim-bugs")]
                let pause = self.bug != Some(crate::sim_bugs::Bug::MissingPauseRead);
                #[cfg(not(feature = "sim-bugs"))]
                let pause = true;
                if pause {
                    s.read_paused = true;
                    self.outputs.push_back(Output::PauseRead { sock: local });
                }
            }
        }
        // Stream → local socket.
        let unread = conn.h2.recv_len(st);
        if unread > 0 || !s.prefix.is_empty() {
            if !s.blocked {
                self.dirty.insert(local);
            }
        } else if (flow.peer_finished || flow.stream_closed) && !s.write_shut {
            s.write_shut = true;
            // When our direction is over too, the flow closes the socket
            // right after this, and the graceful close sends the FIN: a
            // shutdown(2) first would only cost a syscall.
            if !(flow.finished || flow.stream_closed) {
                self.outputs
                    .push_back(Output::ShutdownWrite { sock: local });
            }
        }
        (flow.finished || flow.stream_closed) && s.write_shut
    }

    /// Bytes read from `from` wait in its `held` until `to` took them.
    fn settle_tcp_direction(&mut self, from: SockId, to: SockId) {
        let Some(src) = self.socks.get(&from) else {
            return;
        };
        let (held, paused, eof) = (!src.held.is_empty(), src.read_paused, src.read_eof);
        if held {
            if !paused {
                self.outputs.push_back(Output::PauseRead { sock: from });
            }
            if let Some(s) = self.socks.get_mut(&from) {
                s.read_paused = true;
            }
            if self.socks.get(&to).is_some_and(|d| !d.blocked) {
                self.dirty.insert(to);
            }
            return;
        }
        if paused && !eof {
            self.outputs.push_back(Output::ResumeRead { sock: from });
            if let Some(s) = self.socks.get_mut(&from) {
                s.read_paused = false;
            }
        }
        if let Some(dst) = self.socks.get_mut(&to) {
            if eof && !dst.write_shut && dst.prefix.is_empty() {
                dst.write_shut = true;
                self.outputs.push_back(Output::ShutdownWrite { sock: to });
            }
        }
    }

    /// Ends a flow: its sockets close (after their pending bytes, unless
    /// `reset`), its stream is reset if still open, and the access-log
    /// event goes out.
    pub(super) fn close_flow(&mut self, f: FlowId, reason: CloseReason, reset: bool) {
        let Some(flow) = self.flows.remove(&f) else {
            return;
        };
        if self.flows.is_empty() {
            // Nothing can go idle: no timer for the host to keep.
            self.idle_sweep_at = None;
        }
        self.release_sock(flow.local, reset);
        match flow.far {
            Far::Stream { conn, stream } => {
                if let Some(m) = self.conns.get_mut(&conn) {
                    m.waiting.retain(|w| *w != f);
                    if let Some(st) = stream {
                        m.streams.remove(&st);
                        if reason != CloseReason::Done && !flow.stream_closed {
                            let code = match reason {
                                CloseReason::LocalReset => ErrorCode::CONNECT_ERROR,
                                _ => ErrorCode::CANCEL,
                            };
                            let _ = m.h2.reset(st, code);
                        }
                    }
                    self.dirty.insert(m.sock);
                }
            }
            Far::Tcp(t) => self.release_sock(t, reset),
            Far::None => {}
        }
        if let Some(c) = flow.pooled {
            self.pool.release(c, self.now);
        }
        if let Some(target) = flow.mesh_target.clone() {
            self.count_flow(target, false);
        }
        labels::count(&mut self.metrics, &*flow, |c| c.closed += 1);
        *self.closes.entry((flow.key(), reason.label())).or_default() += 1;
        let duration = self.now.saturating_duration_since(flow.started);
        self.emit(NodeEvent::FlowClosed {
            flow: f,
            direction: flow.direction,
            source: flow.source,
            destination: flow.destination,
            service: flow.service,
            bytes_sent: flow.bytes_sent,
            bytes_received: flow.bytes_received,
            duration,
            reason,
            path: flow.path,
        });
    }

    /// Closes a socket of a closed flow: at once with `reset`, else after
    /// its pending bytes (a front end's refusal).
    /// Removes `sock`'s connect from the outputs if the host has not
    /// taken it yet; says whether it did. The host then never hears of the
    /// socket, so it needs no `Close`, and a host that knows a connect's
    /// result at once (`drive::Host::connect_result_now`) cannot report it
    /// for a socket the node already forgot: the same input can queue a
    /// target's connect and abandon it (HEADERS and RST_STREAM in one read).
    fn take_back_connect(&mut self, sock: SockId) -> bool {
        let queued = self
            .outputs
            .iter()
            .position(|o| matches!(o, Output::Connect { sock: s, .. } if *s == sock));
        queued.and_then(|at| self.outputs.remove(at)).is_some()
    }

    fn release_sock(&mut self, sock: SockId, reset: bool) {
        // A socket still connecting has nothing to flush: abort it, so no
        // `Connected` can arrive for a socket the node forgot.
        let connecting = self
            .socks
            .get(&sock)
            .is_some_and(|s| s.connect_deadline.is_some());
        // Injected bug: the connect stays queued, with a Close behind it.
        #[cfg(feature = "sim-bugs")]
        let take_back = !self.injected(crate::sim_bugs::Bug::AbandonedConnectNotTakenBack);
        #[cfg(not(feature = "sim-bugs"))]
        let take_back = true;
        if reset || connecting {
            if self.socks.remove(&sock).is_some() && !(take_back && self.take_back_connect(sock)) {
                self.outputs.push_back(Output::Close { sock, reset: true });
            }
        } else if let Some(s) = self.socks.get_mut(&sock) {
            s.closing = Some(false);
            s.held.clear();
            s.request_deadline = None;
            self.dirty.insert(sock);
        }
    }

    pub(super) fn on_received(&mut self, sock: SockId, data: &[u8]) -> Result<(), HostError> {
        match self.owner(sock)? {
            Owner::Mesh(c) => {
                self.conn_receive(c, sock, data);
                Ok(())
            }
            Owner::Flow(f) => {
                let now = self.now;
                let phase = self.flows.get_mut(&f).map(|fl| {
                    fl.last_active = now;
                    fl.phase
                });
                let s = self.sock_mut(sock)?;
                if s.closing.is_some() {
                    return Ok(()); // the flow is over; nobody wants these bytes
                }
                match phase {
                    None => Ok(()),
                    Some(Phase::Front) => {
                        self.front_data(f, data);
                        Ok(())
                    }
                    Some(Phase::Opening) => {
                        s.held.extend_from_slice(data);
                        self.send_early(f);
                        Ok(())
                    }
                    Some(Phase::Relay) => {
                        // Nothing waits before these bytes: straight into the
                        // stream, one copy fewer; only what it refuses is held.
                        let taken = match s.held.is_empty() {
                            true => self.send_direct(f, data),
                            false => 0,
                        };
                        let rest = data.get(taken..).unwrap_or(&[]);
                        self.sock_mut(sock)?.held.extend_from_slice(rest);
                        self.settle_flow(f);
                        Ok(())
                    }
                }
            }
        }
    }

    /// Sends what the client of an opening flow wrote as DATA right behind
    /// the CONNECT, without waiting for the 200: one mesh round trip less
    /// per new flow. The server holds the bytes in the stream until its
    /// target is connected and drops them if it refuses the flow (it decides
    /// on the HEADERS, before any DATA is forwarded). A copy stays in
    /// `early` (at most `early_data_limit` bytes) for a retry to replay.
    /// Past the bound, while no stream is open, or on a connection silent
    /// for longer than `early_data_max_silence`, the client is not read
    /// until the 200.
    pub(super) fn send_early(&mut self, f: FlowId) {
        let now = self.now;
        let config = &self.config;
        let Some(flow) = self.flows.get_mut(&f) else {
            return;
        };
        let Some(s) = self.socks.get_mut(&flow.local) else {
            return;
        };
        let open = match flow.far {
            Far::Stream {
                conn,
                stream: Some(st),
            } if !flow.finished && !flow.stream_closed => self
                .conns
                .get_mut(&conn)
                .filter(|m| after(m.last_heard, config.early_data_max_silence) >= now)
                .map(|m| (m, st)),
            _ => None,
        };
        let allowed = open.as_ref().map_or(0, |_| config.early_data_limit);
        let room = allowed.saturating_sub(flow.early.len());
        if let (Some((m, st)), true) = (open, room > 0 && !s.held.is_empty()) {
            let offer = s.held.get(..room.min(s.held.len())).unwrap_or(&[]);
            let n = m.h2.send_data(st, offer).unwrap_or(0);
            if n > 0 {
                flow.early.extend_from_slice(offer.get(..n).unwrap_or(&[]));
                s.take_held(n);
                self.dirty.insert(m.sock);
            }
        }
        let full = allowed > 0 && flow.early.len() >= allowed;
        let wait = !s.held.is_empty() || full;
        if wait != s.read_paused && !s.read_eof {
            s.read_paused = wait;
            let sock = flow.local;
            self.outputs.push_back(match wait {
                true => Output::PauseRead { sock },
                false => Output::ResumeRead { sock },
            });
        }
    }

    /// Passes bytes read from flow `f`'s local socket to its stream, if it
    /// has one that still sends; returns how many the stream took.
    fn send_direct(&mut self, f: FlowId, data: &[u8]) -> usize {
        let Some(flow) = self.flows.get_mut(&f) else {
            return 0;
        };
        let Far::Stream {
            conn,
            stream: Some(st),
        } = flow.far
        else {
            return 0;
        };
        let Some(m) = self.conns.get_mut(&conn) else {
            return 0;
        };
        if flow.finished || flow.stream_closed {
            return 0;
        }
        let n = m.send_data(st, data).unwrap_or(0);
        if n > 0 {
            flow.bytes_sent += n as u64;
            labels::count(&mut self.metrics, &**flow, |c| c.bytes_sent += n as u64);
            self.dirty.insert(m.sock);
        }
        n
    }

    fn conn_receive(&mut self, c: ConnId, sock: SockId, data: &[u8]) {
        let now = self.now;
        let (Some(conn), Some(s)) = (self.conns.get_mut(&c), self.socks.get_mut(&sock)) else {
            return;
        };
        if conn.closing {
            return;
        }
        let result = if s.held.is_empty() {
            conn.receive(now, data).inspect(|&n| {
                s.held.extend_from_slice(data.get(n..).unwrap_or(&[]));
            })
        } else {
            s.held.extend_from_slice(data);
            conn.receive(now, &s.held).inspect(|&n| {
                s.take_held(n);
            })
        };
        let want_pause = !s.held.is_empty();
        if want_pause != s.read_paused {
            s.read_paused = want_pause;
            self.outputs.push_back(if want_pause {
                Output::PauseRead { sock }
            } else {
                Output::ResumeRead { sock }
            });
        }
        let taken = match result {
            Ok(n) => n,
            Err(e) => return self.conn_failed(c, e),
        };
        self.ready_at_handshake(c);
        self.dispatch_h2(c);
        // Only progress re-examines the socket: a retry of held bytes that
        // TLS still refuses must not spin.
        if taken > 0 || !data.is_empty() {
            self.dirty.insert(sock);
        }
        // After the peer's close_notify nothing more can be read (TLS
        // discards what follows), so the connection ends now, as it would
        // at the transport's end, instead of in a wake-up of its own for
        // the FIN right behind it (issue 8: B's teardown read GOAWAY and
        // close_notify, then woke again for the FIN).
        if self
            .conns
            .get(&c)
            .is_some_and(|m| m.tls.peer_closed() && !m.closing)
        {
            self.conn_ended(c);
        }
    }

    /// The peer will send nothing more: what it sent is handled, then the
    /// connection closes (its flows end as at a lost connection).
    fn conn_ended(&mut self, c: ConnId) {
        let now = self.now;
        if let Some(conn) = self.conns.get_mut(&c) {
            // A TLS error here only says the peer did not close cleanly.
            let _ = conn.receive_eof(now);
        }
        self.dispatch_h2(c);
        self.conn_finish(c);
    }

    /// Produces the connection's next ciphertext chunk (if the last one
    /// drained) and handles the events that releasing output causes.
    pub(super) fn fill_conn(&mut self, c: ConnId) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        if let Err(e) = conn.fill(now) {
            self.conn_failed(c, e);
            return;
        }
        self.dispatch_h2(c);
    }

    pub(super) fn dispatch_h2(&mut self, c: ConnId) {
        self.collect_tap(c);
        while let Some(event) = self.conns.get_mut(&c).and_then(|m| m.h2.poll_event()) {
            self.on_h2_event(c, event);
        }
        self.track_congestion(c);
    }

    pub(super) fn stream_flow(&self, c: ConnId, st: StreamId) -> Option<FlowId> {
        self.conns.get(&c)?.streams.get(&st).copied()
    }

    fn on_h2_event(&mut self, c: ConnId, event: H2Event) {
        if self.tunnel_h2_event(c, &event) || self.hub_h2_event(c, &event) {
            return;
        }
        match event {
            H2Event::Ready => {
                // A pooled connection's handshake was looked at already.
                let seen = self
                    .conns
                    .get_mut(&c)
                    .is_some_and(|m| core::mem::replace(&mut m.handshake_seen, true));
                if !seen {
                    self.count_handshake(c);
                    if self.refuse_if_revoked(c) {
                        return;
                    }
                }
                self.conn_ready(c);
                self.hub_conn_ready(c);
                self.link_conn_ready(c);
            }
            H2Event::Request {
                stream,
                request,
                end_stream,
            } => self.on_request(c, stream, &request, end_stream),
            H2Event::Response {
                stream,
                response,
                end_stream,
            } => self.on_response(c, stream, &response, end_stream),
            H2Event::Data { stream } => match self.stream_flow(c, stream) {
                Some(f) => self.settle_flow(f),
                None => self.discard(c, stream),
            },
            H2Event::Trailers { stream, .. } | H2Event::PeerFinished { stream } => {
                if let Some(f) = self.stream_flow(c, stream) {
                    if let Some(flow) = self.flows.get_mut(&f) {
                        flow.peer_finished = true;
                    }
                    #[cfg(feature = "sim-bugs")]
                    if self.injected(crate::sim_bugs::Bug::HalfCloseAsFullClose) {
                        self.finish_both_ways(f, c, stream);
                    }
                    self.settle_flow(f);
                }
            }
            H2Event::StreamClosed { stream } => match self.stream_flow(c, stream) {
                Some(f) => {
                    if let Some(flow) = self.flows.get_mut(&f) {
                        flow.stream_closed = true;
                        flow.peer_finished = true;
                    }
                    self.settle_flow(f);
                }
                None => self.discard(c, stream),
            },
            H2Event::Writable { stream } => {
                if let Some(f) = self.stream_flow(c, stream) {
                    self.settle_flow(f);
                }
            }
            H2Event::Reset { stream, code, .. } => {
                if let Some(f) = self.stream_flow(c, stream) {
                    if let Some(flow) = self.flows.get_mut(&f) {
                        flow.stream_closed = true;
                    }
                    self.stream_refused_or_reset(f, code);
                }
            }
            H2Event::GoAway { code, .. } => {
                #[cfg(feature = "sim-bugs")]
                let reuse = self.injected(crate::sim_bugs::Bug::PoolReuseAfterGoaway);
                #[cfg(not(feature = "sim-bugs"))]
                let reuse = false;
                if !reuse && self.conns.get(&c).is_some_and(|m| m.pool_key.is_some()) {
                    self.pool.going_away(c);
                }
                if code != ErrorCode::NO_ERROR {
                    self.h2_error(c, code, None);
                }
            }
            H2Event::ConnectionError {
                code, violation, ..
            } => self.h2_error(c, code, Some(violation)),
            H2Event::PingAck { .. } => {}
            H2Event::Closed => self.conn_finish(c),
        }
    }

    /// DATA on a stream no flow reads (a refused CONNECT's early bytes):
    /// dropped, so the stream's buffer and window go back at once.
    fn discard(&mut self, c: ConnId, stream: StreamId) {
        if let Some(m) = self.conns.get_mut(&c) {
            let n = m.h2.recv_len(stream);
            if n > 0 {
                let _ = m.h2.release_capacity(stream, n);
                self.dirty.insert(m.sock);
            }
        }
    }

    /// Injected bug: the peer's half-close ends our direction too, cutting
    /// off whatever the local side has not sent yet.
    #[cfg(feature = "sim-bugs")]
    fn finish_both_ways(&mut self, f: FlowId, c: ConnId, st: StreamId) {
        let (Some(flow), Some(conn)) = (self.flows.get_mut(&f), self.conns.get_mut(&c)) else {
            return;
        };
        if !flow.finished && !flow.stream_closed {
            let _ = conn.h2.finish(st);
            flow.finished = true;
            self.dirty.insert(conn.sock);
        }
    }

    fn h2_error(&mut self, c: ConnId, code: ErrorCode, violation: Option<crate::h2::Violation>) {
        if let Some(peer) = self.conns.get(&c).map(|m| m.peer_addr) {
            self.emit(NodeEvent::H2Error {
                peer,
                code,
                violation,
            });
        }
    }

    /// The connection is done: its flows end, it leaves the pool, and its
    /// socket closes once the final bytes are out.
    pub(super) fn conn_finish(&mut self, c: ConnId) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.closing = true;
        conn.close_tls();
        let sock = conn.sock;
        let flows: Vec<FlowId> = conn
            .streams
            .values()
            .chain(conn.waiting.iter())
            .copied()
            .collect();
        let pooled = conn.pool_key.is_some();
        let came_up = conn.ready || conn.resume_refused;
        conn.streams.clear();
        conn.waiting.clear();
        if pooled {
            self.pool.remove(c);
        }
        for f in flows {
            if let Some(flow) = self.flows.get_mut(&f) {
                flow.stream_closed = true;
                flow.pooled = None;
            }
            self.flow_lost(f, came_up);
        }
        if let Some(s) = self.socks.get_mut(&sock) {
            s.closing = Some(false);
        }
        self.dirty.insert(sock);
        self.hub_conn_finished(c);
        self.link_conn_finished(c);
        self.tunnels_outer_finished(c);
    }

    /// A TLS failure: report it, send the alert, close.
    pub(super) fn conn_failed(&mut self, c: ConnId, error: TlsError) {
        let Some(conn) = self.conns.get_mut(&c) else {
            return;
        };
        let peer = conn.peer_addr;
        let handshaking = conn.tls.is_handshaking();
        // A refused resumption says nothing about the endpoint's health: its
        // tickets are gone, and its flows try it again with a full handshake
        // (which fails, and counts, if the certificate really is bad).
        let resume_refused = matches!(error, TlsError::ResumedRefused(_));
        conn.resume_refused = resume_refused;
        conn.flush_alert();
        if resume_refused {
            self.handshakes.resumed_refused = self.handshakes.resumed_refused.saturating_add(1);
        } else if handshaking {
            self.endpoint_failed(c);
        }
        if handshaking || resume_refused {
            self.emit(NodeEvent::HandshakeFailed {
                peer,
                error: HandshakeError::Tls(error),
            });
        }
        self.conn_finish(c);
    }

    /// The transport is gone (reset, connect failure, timeout).
    pub(super) fn conn_lost(&mut self, c: ConnId, error: Option<HandshakeError>) {
        let Some(conn) = self.conns.get(&c) else {
            return;
        };
        let (peer, sock) = (conn.peer_addr, conn.sock);
        if error.is_some() {
            self.endpoint_failed(c);
        }
        if let Some(error) = error {
            self.emit(NodeEvent::HandshakeFailed { peer, error });
        }
        self.conn_finish(c);
        self.conns.remove(&c);
        if self.socks.remove(&sock).is_some() {
            self.outputs.push_back(Output::Close { sock, reset: true });
        }
    }

    pub(super) fn on_read_closed(&mut self, sock: SockId) -> Result<(), HostError> {
        let owner = self.owner(sock)?;
        self.sock_mut(sock)?.read_eof = true;
        match owner {
            Owner::Mesh(c) => self.conn_ended(c),
            Owner::Flow(f) => match self.flows.get(&f).map(|fl| fl.phase) {
                Some(Phase::Front) => self.close_flow(
                    f,
                    CloseReason::FrontEnd("client closed before its request".into()),
                    false,
                ),
                Some(Phase::Relay) => self.settle_flow(f),
                _ => {}
            },
        }
        Ok(())
    }

    pub(super) fn on_reset(&mut self, sock: SockId) -> Result<(), HostError> {
        let owner = self.owner(sock)?;
        // The host's socket is gone: no Close for it.
        self.socks.remove(&sock);
        match owner {
            Owner::Mesh(c) => {
                // A reset mid-handshake is a failed handshake; later it is
                // only a lost connection (its flows say so).
                let handshaking = self.conns.get(&c).is_some_and(|m| m.tls.is_handshaking());
                let error = handshaking.then_some(HandshakeError::Transport);
                self.conn_lost(c, error);
            }
            Owner::Flow(f) => self.close_flow(f, CloseReason::LocalReset, true),
        }
        Ok(())
    }

    pub(super) fn on_connected(
        &mut self,
        sock: SockId,
        result: Result<(), ConnectError>,
    ) -> Result<(), HostError> {
        let s = self.sock_mut(sock)?;
        let deadline = s.connect_deadline.take();
        if deadline.is_none() || s.resolving.is_some() {
            return Err(HostError::NotConnecting(sock));
        }
        match s.owner {
            Owner::Mesh(c) => match result {
                Ok(()) => {
                    if let Some(conn) = self.conns.get_mut(&c) {
                        conn.connected = true;
                    }
                    self.dirty.insert(sock);
                }
                Err(_) => {
                    self.socks.remove(&sock);
                    self.conn_lost(c, Some(HandshakeError::Transport));
                }
            },
            Owner::Flow(f) => match result {
                Ok(()) => self.target_connected(f),
                Err(_) if self.connect_next(sock, deadline) => {}
                Err(_) => {
                    self.socks.remove(&sock);
                    self.target_failed(f, CloseReason::ConnectFailed);
                }
            },
        }
        Ok(())
    }

    pub(super) fn on_timeout(&mut self) {
        let now = self.now;
        let late_socks: Vec<(SockId, Owner)> = self
            .socks
            .iter()
            .filter(|(_, s)| s.connect_deadline.is_some_and(|d| d <= now))
            .map(|(id, s)| (*id, s.owner))
            .collect();
        for (sock, owner) in late_socks {
            if self.socks.remove(&sock).is_some() {
                self.outputs.push_back(Output::Close { sock, reset: true });
            }
            match owner {
                Owner::Mesh(c) => self.conn_lost(c, Some(HandshakeError::Timeout)),
                Owner::Flow(f) => self.target_failed(f, CloseReason::Timeout),
            }
        }
        let slow_clients: Vec<FlowId> = self
            .socks
            .values()
            .filter(|s| s.request_deadline.is_some_and(|d| d <= now))
            .filter_map(|s| match s.owner {
                Owner::Flow(f) => Some(f),
                Owner::Mesh(_) => None,
            })
            .collect();
        for f in slow_clients {
            // The protocol's answer first (a 408, say), written before the
            // graceful close as a rejection's is.
            let answer = self
                .flows
                .get_mut(&f)
                .and_then(|fl| fl.front.as_mut().map(|front| (fl.local, front.expire())));
            if let Some((local, Ok(answer))) = answer {
                if let Some(s) = self.socks.get_mut(&local) {
                    s.prefix.extend_from_slice(&answer);
                    self.dirty.insert(local);
                }
            }
            self.close_flow(
                f,
                CloseReason::FrontEnd("request not complete in time".into()),
                false,
            );
        }
        if self.idle_sweep_at.is_some_and(|at| at <= now) {
            self.sweep_idle();
        }
        if self
            .links
            .next_registry_deadline()
            .is_some_and(|at| at <= now)
        {
            self.expire_parked();
        }
        let late_conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, m)| m.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for c in late_conns {
            self.conn_lost(c, Some(HandshakeError::Timeout));
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in ids {
            let due = self
                .conns
                .get(&c)
                .and_then(|m| m.h2.poll_timeout())
                .is_some_and(|d| d <= now);
            if due {
                if let Some(m) = self.conns.get_mut(&c) {
                    m.h2.handle_timeout(now);
                    let sock = m.sock;
                    self.dirty.insert(sock);
                }
                self.dispatch_h2(c);
            }
        }
        for c in self.pool.idle_expired(now) {
            #[cfg(feature = "sim-bugs")]
            if self.injected(crate::sim_bugs::Bug::PoolReuseAfterGoaway) {
                // Injected bug: GOAWAY goes out, but the connection stays
                // in the pool (looking fresh) until it closes.
                self.pool.forget_idle(c);
                if let Some(m) = self.conns.get_mut(&c) {
                    m.h2.go_away(now);
                    self.dirty.insert(m.sock);
                }
                self.dispatch_h2(c);
                continue;
            }
            self.pool.remove(c);
            if let Some(m) = self.conns.get_mut(&c) {
                m.pool_key = None;
                // Only we open streams on a pooled connection, and none is
                // open: nothing can be in flight, so one GOAWAY and close
                // now instead of lingering through the two-step grace (a
                // cold-flow loop kept ~150 such connections alive).
                if m.h2.open_streams() == 0 {
                    m.h2.abort(ErrorCode::NO_ERROR, &[]);
                } else {
                    m.h2.go_away(now);
                }
                let sock = m.sock;
                self.dirty.insert(sock);
            }
            self.dispatch_h2(c);
        }
    }

    pub(super) fn on_config(&mut self, config: NodeConfig) {
        let rotated = self.config.identity.params().certificate_chain()
            != config.identity.params().certificate_chain();
        self.config = config;
        // Sessions were made under the old certificate, trust and
        // revocation list: none survives a new configuration (the client
        // stores go with their configs, the server's is emptied, as the
        // identity may be the same one).
        self.client_tls.clear();
        self.config
            .identity
            .resumable_server_config()
            .forget_sessions();
        // The hub port's TLS config is built from the identity (and the
        // role) on the next accept: kept, it presented the old certificate
        // until it expired and then refused every agent.
        self.hub.server_tls = None;
        if rotated {
            self.certificate_rotated();
        }
        self.tunnels.clear_tls();
        // The idle timeout may have changed: reschedule from now.
        self.idle_sweep_at = None;
        if !self.flows.is_empty() {
            self.arm_idle_sweep();
        }
        self.listen_all();
        self.prune_balancers();
        self.enforce_revocation();
        // Injected bug: live flows are not checked against the new policy.
        #[cfg(feature = "sim-bugs")]
        let skip = self.injected(crate::sim_bugs::Bug::PolicySkippedAfterReload);
        #[cfg(not(feature = "sim-bugs"))]
        let skip = false;
        let closed = if skip { 0 } else { self.reauthorize() };
        self.emit(NodeEvent::ConfigApplied {
            closed_flows: closed,
        });
    }
}

impl Node {
    /// A new certificate took over: connections made with the old one
    /// drain. Pooled connections take no new flows (they close once idle),
    /// and hub links are redialled with the new certificate whenever they
    /// next go down (their cached client configs are dropped). Without
    /// this a hub redial after the old certificate expired presented the
    /// expired one and was refused for good.
    fn certificate_rotated(&mut self) {
        let pooled: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, m)| m.pool_key.is_some())
            .map(|(c, _)| *c)
            .collect();
        for c in pooled {
            self.pool.going_away(c);
        }
        self.links_certificate_rotated();
    }

    /// Makes sure a sweep is scheduled while flows exist.
    pub(super) fn arm_idle_sweep(&mut self) {
        if let (None, Some(idle)) = (self.idle_sweep_at, self.config.timeouts.idle_flow) {
            self.idle_sweep_at = Some(after(self.now, idle));
        }
    }

    /// Resets flows idle for the timeout; schedules the next sweep at the
    /// earliest moment another flow could be idle long enough.
    fn sweep_idle(&mut self) {
        let now = self.now;
        self.idle_sweep_at = None;
        let Some(idle) = self.config.timeouts.idle_flow else {
            return;
        };
        let idle_flows: Vec<FlowId> = self
            .flows
            .iter()
            .filter(|(_, fl)| after(fl.last_active, idle) <= now)
            .map(|(f, _)| *f)
            .collect();
        for f in idle_flows {
            self.close_flow(f, CloseReason::Idle, true);
        }
        self.idle_sweep_at = self
            .flows
            .values()
            .map(|fl| after(fl.last_active, idle))
            .min();
    }
}

/// Deadline `d` after `now`.
pub(super) fn after(now: Instant, d: core::time::Duration) -> Instant {
    now.saturating_add(d)
}
