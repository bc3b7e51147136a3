//! `/status`: one JSON document with what `warren status` prints —
//! identity and certificate validity, listeners, mesh connections per
//! peer, a summary of the live flows, the recent denials, the agent's hub
//! links (`hubs`) and, on a hub, the hub's own state (`hub`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{json, Value};
use warren_proto::identity::SpiffeId;
use warren_proto::node::{Direction, FlowSnapshot, FrontKind, HubStatus};
use warren_proto::time::Instant;

use super::json::{flow_list, identity, millis};
use super::{x509, View};

/// How many of the busiest flows `/status` lists.
pub const TOP_FLOWS: usize = 5;

/// The status document of `view`.
pub fn status(view: &View) -> Value {
    let params = view.config.identity.params();
    let chain = params.certificate_chain();
    let validity = chain.first().and_then(|leaf| x509::validity(leaf.as_ref()));
    json!({
        "identity": params.identity().as_str(),
        "trust_domain": params.trust().trust_domain().as_str(),
        "certificate": {
            "not_before": validity.as_ref().map(|v| v.not_before.clone()),
            "not_after": validity.as_ref().map(|v| v.not_after.clone()),
        },
        "listeners": listeners(view),
        "connections": connections(view),
        "flows": flow_summary(view),
        "recent_denials": view.denials.iter().map(|d| json!({
            "at_unix_ms": d.at_unix_ms,
            "source": d.source,
            "destination": d.destination,
            "reason": d.reason,
            "rule": d.rule,
        })).collect::<Vec<_>>(),
        "hubs": hub_links(view),
        "hub": view.hub.as_ref().map(hub),
    })
}

/// The agent's hubs: both connections' state, failures, the next redial
/// and the registry as this agent holds it.
fn hub_links(view: &View) -> Vec<Value> {
    let state = |up: bool| if up { "up" } else { "down" };
    view.hub_links
        .iter()
        .map(|l| {
            json!({
                "address": l.hub.to_string(),
                "forward": state(l.forward_up),
                "reverse": state(l.reverse_up),
                "control": l.control,
                "failures": { "forward": l.failures.0, "reverse": l.failures.1 },
                "retry_in_ms": l.retry_at.map(|at| millis(at.saturating_duration_since(view.now))),
                "registry_epoch": l.registry.0,
                "registry_entries": l.registry.1,
            })
        })
        .collect()
}

/// A hub's own state: agents, registry, relays, and refusals per agent.
fn hub(h: &HubStatus) -> Value {
    json!({
        "connections": h.connections,
        "agents": h.agents,
        "registry_epoch": h.registry_epoch,
        "registry_entries": h.registry_entries,
        "relays": h.relays,
        "suspended": h.suspended,
        "refusals_total": h.refusals.values().sum::<u64>(),
        "refusals": h.refusals.iter().map(|((agent, offence), count)| json!({
            "agent": identity(agent.as_ref()),
            "reason": offence.label(),
            "count": count,
        })).collect::<Vec<_>>(),
    })
}

/// The bound listeners with what each is for. The handle reports them in
/// the node's order: HBONE first (when configured), then each front end.
fn listeners(view: &View) -> Vec<Value> {
    let c = &view.config;
    let hbone = c.hbone_listen.map(|_| json!({ "kind": "hbone" }));
    let fronts = c.fronts.iter().map(|f| match &f.kind {
        FrontKind::Tunnel { to } => json!({ "kind": "tunnel", "to": to.to_string() }),
        FrontKind::Socks5 => json!({ "kind": "socks5" }),
        FrontKind::HttpConnect(_) => json!({ "kind": "http_connect" }),
    });
    hbone
        .into_iter()
        .chain(fronts)
        .zip(&view.listeners)
        .map(|(mut l, addr): (Value, &SocketAddr)| {
            l["addr"] = addr.to_string().into();
            l
        })
        .collect()
}

/// Mesh connections grouped by peer (address and identity), pooled
/// (dialled by us) and accepted apart; a group's age is its oldest
/// connection's.
fn connections(view: &View) -> Vec<Value> {
    struct Group {
        connections: usize,
        streams: usize,
        oldest: Instant,
    }
    let mut by_peer: BTreeMap<(bool, SocketAddr, Option<&SpiffeId>), Group> = BTreeMap::new();
    for c in &view.connections {
        let key = (c.pooled, c.peer_addr, c.peer.as_ref());
        let group = by_peer.entry(key).or_insert(Group {
            connections: 0,
            streams: 0,
            oldest: c.opened,
        });
        group.connections += 1;
        group.streams += c.streams;
        group.oldest = group.oldest.min(c.opened);
    }
    by_peer
        .into_iter()
        .map(|((pooled, addr, peer), group)| {
            json!({
                "role": if pooled { "client" } else { "server" },
                "address": addr.to_string(),
                "identity": identity(peer),
                "connections": group.connections,
                "streams": group.streams,
                "age_ms": millis(view.now.saturating_duration_since(group.oldest)),
            })
        })
        .collect()
}

/// Flow counts by direction and service, totals since start, and the
/// busiest live flows.
fn flow_summary(view: &View) -> Value {
    let mut by_service: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in &view.flows {
        *by_service
            .entry((f.direction.to_string(), f.service.clone()))
            .or_default() += 1;
    }
    let count = |d: Direction| view.flows.iter().filter(|f| f.direction == d).count();
    let mut busiest: Vec<&FlowSnapshot> = view.flows.iter().collect();
    busiest.sort_by_key(|f| std::cmp::Reverse(f.bytes_sent.saturating_add(f.bytes_received)));
    busiest.truncate(TOP_FLOWS);
    let opened: u64 = view.metrics.values().map(|c| c.opened).sum();
    let sent: u64 = view.metrics.values().map(|c| c.bytes_sent).sum();
    let received: u64 = view.metrics.values().map(|c| c.bytes_received).sum();
    json!({
        "open": view.flows.len(),
        "inbound": count(Direction::Inbound),
        "outbound": count(Direction::Outbound),
        "by_service": by_service.into_iter().map(|((direction, service), open)| json!({
            "direction": direction,
            "service": service,
            "open": open,
        })).collect::<Vec<_>>(),
        "top": flow_list(view.now, busiest.into_iter()),
        "opened_total": opened,
        "bytes_sent_total": sent,
        "bytes_received_total": received,
    })
}
