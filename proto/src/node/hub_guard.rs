//! The hub's per-agent limits ([`crate::hub::AgentLimits`]) applied to
//! live connections: CONNECT and control-message rates, offences, and the
//! suspension of an identity that offends too often.
//!
//! A refused CONNECT is answered `429` at once (the stream is done, nothing
//! of it is kept), a control message over the rate ends the control stream,
//! and each counts as an offence of the agent's verified identity. Too many
//! offences in one window close every connection of that identity with
//! GOAWAY ENHANCE_YOUR_CALM and refuse its new ones for the back-off; other
//! identities' buckets and flows are untouched.

use std::collections::BTreeMap;

use crate::h2::{ErrorCode, Response, StreamId};
use crate::hub::{AgentLimits, HubEvent, Offence, OffenceCount, TokenBucket};
use crate::identity::SpiffeId;
use crate::pool::ConnId;
use crate::time::Instant;

use super::event::NodeEvent;
use super::Node;

/// Rows of the refusal counter at most; identities beyond it are counted
/// under `None` so a stream of fresh identities cannot grow the table.
const MAX_REFUSAL_ROWS: usize = 4096;

/// The status a CONNECT over the rate is answered with.
const TOO_MANY_REQUESTS: u16 = 429;

/// One identity's standing.
#[derive(Debug)]
struct AgentStanding {
    connects: TokenBucket,
    offences: OffenceCount,
    suspended_until: Option<Instant>,
    /// Since when the identity has no connection. Its standing is kept a
    /// while after that, so reconnecting does not refill its bucket or
    /// forgive its offences.
    idle_since: Option<Instant>,
}

impl AgentStanding {
    /// Whether the standing can be forgotten at `now`: idle for longer
    /// than both the offence window and a full refill of the bucket, and
    /// not suspended.
    fn forgettable(&self, now: Instant, limits: &AgentLimits) -> bool {
        let refill = match limits.connects.per_second {
            0 => return false,
            rate => {
                core::time::Duration::from_secs(u64::from(limits.connects.burst.div_ceil(rate)))
            }
        };
        let keep = limits.offence_window.max(refill);
        let idle_enough = self
            .idle_since
            .is_some_and(|t| now >= t.saturating_add(keep));
        let suspended = self.suspended_until.is_some_and(|u| u > now);
        idle_enough && !suspended
    }
}

/// Refusals per identity (`None`: identities past the table's limit) and
/// offence, since the node started.
pub type RefusalCounts = BTreeMap<(Option<SpiffeId>, Offence), u64>;

/// The limits' state.
#[derive(Debug, Default)]
pub(super) struct Guard {
    /// Identities with a live connection or a running suspension.
    agents: BTreeMap<SpiffeId, AgentStanding>,
    /// Control-message buckets per forward connection.
    control: BTreeMap<ConnId, TokenBucket>,
    refusals: RefusalCounts,
}

impl Guard {
    /// Identities suspended at `now`.
    pub(super) fn suspended(&self, now: Instant) -> usize {
        self.agents
            .values()
            .filter(|s| s.suspended_until.is_some_and(|u| u > now))
            .count()
    }

    fn standing(&mut self, limits: &AgentLimits, who: &SpiffeId) -> &mut AgentStanding {
        let standing = self
            .agents
            .entry(who.clone())
            .or_insert_with(|| AgentStanding {
                connects: TokenBucket::new(limits.connects),
                offences: OffenceCount::default(),
                suspended_until: None,
                idle_since: None,
            });
        // Only a live connection asks for its standing.
        standing.idle_since = None;
        standing
    }

    fn count_refusal(&mut self, who: &SpiffeId, offence: Offence) {
        let key = (Some(who.clone()), offence);
        let key = if self.refusals.contains_key(&key) || self.refusals.len() < MAX_REFUSAL_ROWS {
            key
        } else {
            (None, offence)
        };
        let n = self.refusals.entry(key).or_default();
        *n = n.saturating_add(1);
    }
}

impl Node {
    fn agent_limits(&self) -> Option<AgentLimits> {
        self.config.hub.as_ref().map(|h| h.limits)
    }

    /// Whether a CONNECT on `c` is within its identity's rate; if not it
    /// is answered 429 and counted as an offence.
    pub(super) fn guard_connect(&mut self, c: ConnId, stream: StreamId) -> bool {
        let (Some(limits), Some(who)) = (
            self.agent_limits(),
            self.conns.get(&c).and_then(|m| m.peer.clone()),
        ) else {
            // No identity: the relay refuses it with 400 anyway.
            return true;
        };
        let now = self.now;
        if self.hub.guard.standing(&limits, &who).connects.take(now) {
            return true;
        }
        if let Some(m) = self.conns.get_mut(&c) {
            let response = Response {
                status: TOO_MANY_REQUESTS,
                headers: Vec::new(),
            };
            // The stream may already be reset: nobody to answer then.
            let _ = m.h2.send_response(stream, &response, true);
            // No RST_STREAM after it: a flood of resets would trip the
            // agent's own rapid-reset limit and cost its good flows too.
            // The agent ends the refused stream itself.
            self.dirty.insert(m.sock);
        }
        self.hub_offence(c, Offence::ConnectFlood);
        false
    }

    /// Whether one more control message on `c` is within the rate. The
    /// caller ends the control stream when it is not.
    pub(super) fn guard_control(&mut self, c: ConnId) -> bool {
        let Some(limits) = self.agent_limits() else {
            return true;
        };
        let now = self.now;
        self.hub
            .guard
            .control
            .entry(c)
            .or_insert_with(|| TokenBucket::new(limits.control_messages))
            .take(now)
    }

    /// Records an offence of the agent on `c`: event, counter, and the
    /// suspension of its identity once the window holds too many.
    pub(super) fn hub_offence(&mut self, c: ConnId, offence: Offence) {
        let (Some(limits), Some((who, addr))) = (
            self.agent_limits(),
            self.conns
                .get(&c)
                .and_then(|m| m.peer.clone().map(|p| (p, m.peer_addr))),
        ) else {
            return;
        };
        let now = self.now;
        let guard = &mut self.hub.guard;
        guard.count_refusal(&who, offence);
        let count = guard
            .standing(&limits, &who)
            .offences
            .record(now, limits.offence_window);
        self.emit(NodeEvent::Hub(HubEvent::Offence {
            agent: who.clone(),
            addr,
            offence,
            count,
        }));
        if count > limits.max_offences {
            self.suspend(&who, count, &limits);
        }
    }

    /// Closes every connection of `who` with GOAWAY ENHANCE_YOUR_CALM and
    /// refuses new ones for the back-off.
    fn suspend(&mut self, who: &SpiffeId, offences: u32, limits: &AgentLimits) {
        let now = self.now;
        let until = now.saturating_add(limits.suspension);
        self.hub.guard.standing(limits, who).suspended_until = Some(until);
        let theirs: Vec<ConnId> = self
            .hub
            .conns
            .iter()
            .copied()
            .filter(|c| self.conns.get(c).and_then(|m| m.peer.as_ref()) == Some(who))
            .collect();
        for c in &theirs {
            if let Some(m) = self.conns.get_mut(c) {
                m.h2.abort(ErrorCode::ENHANCE_YOUR_CALM, b"too many offences");
                m.flush_h2(now);
            }
            self.conn_finish(*c);
        }
        self.emit(NodeEvent::Hub(HubEvent::Suspended {
            agent: who.clone(),
            offences,
            closed: theirs.len(),
            back_off: limits.suspension,
        }));
    }

    /// Ends connection `c` if its identity is suspended; returns whether
    /// it did.
    pub(super) fn refuse_if_suspended(&mut self, c: ConnId) -> bool {
        let now = self.now;
        let Some((who, addr)) = self
            .conns
            .get(&c)
            .and_then(|m| m.peer.clone().map(|p| (p, m.peer_addr)))
        else {
            return false;
        };
        let until = self
            .hub
            .guard
            .agents
            .get(&who)
            .and_then(|s| s.suspended_until);
        let Some(until) = until.filter(|u| *u > now) else {
            return false;
        };
        if let Some(m) = self.conns.get_mut(&c) {
            m.h2.abort(ErrorCode::ENHANCE_YOUR_CALM, b"suspended");
            m.flush_h2(now);
        }
        self.emit(NodeEvent::Hub(HubEvent::StillSuspended {
            agent: who,
            addr,
            remaining: until.saturating_duration_since(now),
        }));
        self.conn_finish(c);
        true
    }

    /// A hub connection ended: its control bucket goes; once its identity
    /// has no connection left it starts idling, and standings idle long
    /// enough are forgotten, so the table holds recent identities only.
    pub(super) fn guard_conn_finished(&mut self, c: ConnId, who: Option<&SpiffeId>) {
        self.hub.guard.control.remove(&c);
        let Some(limits) = self.agent_limits() else {
            return;
        };
        let now = self.now;
        if let Some(who) = who {
            let connected =
                self.hub.conns.iter().any(|o| {
                    *o != c && self.conns.get(o).and_then(|m| m.peer.as_ref()) == Some(who)
                });
            if let Some(s) = self.hub.guard.agents.get_mut(who) {
                if !connected {
                    s.idle_since = Some(now);
                }
            }
        }
        self.hub
            .guard
            .agents
            .retain(|_, s| !s.forgettable(now, &limits));
    }

    /// Requests the hub refused, per identity and offence.
    pub fn hub_refusals(&self) -> &RefusalCounts {
        &self.hub.guard.refusals
    }

    /// Identities the hub keeps standing for (connected or suspended).
    pub fn hub_guarded_agents(&self) -> usize {
        self.hub.guard.agents.len()
    }
}
