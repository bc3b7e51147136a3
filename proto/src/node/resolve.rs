//! Connecting a flow's target or egress socket, by address or by name.
//!
//! A name is resolved by the host (`Output::Resolve` → `Input::Resolved`);
//! the node picks the address and asks the ordinary `Output::Connect`, all
//! under the one connect deadline set when the socket was created. When a
//! connect to one address of the answer fails, the next one is tried (a
//! name like `localhost` answers `::1` before `127.0.0.1`, and a target
//! may listen on only one of them).
//!
//! Egress to a name: a DENY rule matching the name denies it; an ALLOW
//! rule matching the name (a domain rule, or one naming no destination)
//! allows the name, and whatever address it resolves to is used without a
//! second look — the rule is about the name, and re-judging its addresses
//! would make `*.example.com` rules depend on where a CDN happens to point
//! today. A name no rule matches is not denied yet when some ALLOW rule
//! names a CIDR: the name is resolved and only an address that the rules
//! allow (judged exactly as a client asking for that address would be) is
//! connected to. So a CIDR rule allows reaching its network by any name,
//! and never lets a name smuggle a flow out of it.

use core::net::{IpAddr, SocketAddr};
use std::collections::VecDeque;

use crate::front::DomainName;
use crate::policy::{self, Decision, Destination, EgressRequest, Reason};
use crate::time::Instant;

use super::event::CloseReason;
use super::flow::{Far, Owner, Sock};
use super::relay::after;
use super::{FlowId, Node, Output, ResolveError, SockId};

/// A socket waiting for its name to resolve before its connect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PendingName {
    /// The port to connect to.
    pub port: u16,
    /// The name matched no egress rule: only an address the egress rules
    /// allow may be used.
    pub check_egress: bool,
}

/// Where a new socket connects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Dest {
    /// A known address.
    Addr(SocketAddr),
    /// A name to resolve first.
    Name {
        /// The name.
        host: String,
        /// The port.
        port: u16,
        /// See [`PendingName::check_egress`].
        check_egress: bool,
    },
}

/// What egress says about a name before it is resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum NameVerdict {
    /// A rule allows the name: any address it resolves to.
    Allowed,
    /// Refused on the name alone.
    Denied(Decision),
    /// No rule matched the name, but a CIDR rule may allow an address.
    ByAddress,
}

/// Addresses of one answer tried in turn at most (a name with hundreds
/// of records must not keep a flow connecting for hundreds of deadlines'
/// worth of attempts, nor hold them all).
pub(super) const MAX_ADDRS: usize = 8;

impl Node {
    /// The connect of `sock` to a resolved address failed: the next
    /// address of the answer, if any, under the same deadline. Returns
    /// whether one was tried.
    pub(super) fn connect_next(&mut self, sock: SockId, deadline: Option<Instant>) -> bool {
        let Some(s) = self.socks.get_mut(&sock) else {
            return false;
        };
        let Some(addr) = s.fallback.pop_front() else {
            return false;
        };
        s.peer_addr = addr;
        s.connect_deadline = deadline;
        self.outputs.push_back(Output::Connect { sock, addr });
        true
    }

    /// Creates socket `sock`'s record for flow `f` with the connect deadline
    /// and asks the host to connect (or to resolve first).
    pub(super) fn start_connect(&mut self, f: FlowId, dest: Dest) -> SockId {
        let sock = SockId(self.alloc());
        let placeholder = match &dest {
            Dest::Addr(addr) => *addr,
            Dest::Name { port, .. } => SocketAddr::new(IpAddr::from([0, 0, 0, 0]), *port),
        };
        let mut s = Sock::new(Owner::Flow(f), placeholder);
        s.connect_deadline = Some(after(self.now, self.config.timeouts.target_connect));
        match dest {
            Dest::Addr(addr) => self.outputs.push_back(Output::Connect { sock, addr }),
            Dest::Name {
                host,
                port,
                check_egress,
            } => {
                s.resolving = Some(PendingName { port, check_egress });
                self.outputs.push_back(Output::Resolve { sock, host });
            }
        }
        self.socks.insert(sock, Box::new(s));
        sock
    }

    /// Egress for `name:port` before resolution (see the module docs).
    pub(super) fn egress_for_name(&self, name: &DomainName, port: u16) -> NameVerdict {
        let egress = &self.config.egress;
        let decision = egress.evaluate(&EgressRequest {
            source: self.config.identity.id(),
            host: policy::Host::Domain(name.as_domain()),
            port,
        });
        if decision.allowed {
            return NameVerdict::Allowed;
        }
        let some_cidr_allows = egress.rules.iter().any(|r| {
            r.action == policy::Action::Allow
                && r.destinations
                    .iter()
                    .any(|d| matches!(d, Destination::Cidr(_)))
        });
        if decision.reason == Reason::EgressNotAllowed && some_cidr_allows {
            NameVerdict::ByAddress
        } else {
            NameVerdict::Denied(decision)
        }
    }

    /// Egress for a flow to `addr`, reached by `name` if it was asked for
    /// by name: the rule the flow was allowed by is judged again.
    pub(super) fn egress_recheck(&self, name: Option<&DomainName>, addr: SocketAddr) -> Decision {
        if let Some(name) = name {
            if let NameVerdict::Allowed = self.egress_for_name(name, addr.port()) {
                return Decision::new(Reason::EgressAllowed, None);
            }
        }
        self.egress_for_addr(addr)
    }

    fn egress_for_addr(&self, addr: SocketAddr) -> Decision {
        self.config.egress.evaluate(&EgressRequest {
            source: self.config.identity.id(),
            host: policy::Host::Ip(addr.ip()),
            port: addr.port(),
        })
    }

    /// The host answered an `Output::Resolve`.
    pub(super) fn on_resolved(&mut self, sock: SockId, result: Result<&[IpAddr], ResolveError>) {
        let Some((pending, owner)) = self
            .socks
            .get_mut(&sock)
            .and_then(|s| Some((s.resolving.take()?, s.owner)))
        else {
            // Given up meanwhile (deadline, flow closed): nothing to do.
            return;
        };
        let Owner::Flow(f) = owner else {
            return;
        };
        let addrs = match result {
            Ok(addrs) if !addrs.is_empty() => addrs,
            _ => {
                // The host has no socket for it: no Close.
                self.socks.remove(&sock);
                return self.target_failed(f, CloseReason::Unreachable);
            }
        };
        let candidates = addrs.iter().map(|ip| SocketAddr::new(*ip, pending.port));
        let mut usable: VecDeque<SocketAddr> = candidates
            .clone()
            .filter(|a| !pending.check_egress || self.egress_for_addr(*a).allowed)
            .take(MAX_ADDRS)
            .collect();
        match usable.pop_front() {
            Some(addr) => {
                if let Some(s) = self.socks.get_mut(&sock) {
                    s.peer_addr = addr;
                    s.fallback = usable;
                }
                self.outputs.push_back(Output::Connect { sock, addr });
            }
            None => {
                let decision = candidates
                    .map(|a| self.egress_for_addr(a))
                    .next()
                    .unwrap_or_else(|| Decision::new(Reason::EgressNotAllowed, None));
                self.socks.remove(&sock);
                if let Some(flow) = self.flows.get_mut(&f) {
                    flow.far = Far::None;
                }
                self.deny_egress(f, decision);
            }
        }
    }
}
