//! `/status`: one JSON document with what `warren status` prints —
//! identity and certificate validity, listeners, mesh connections per
//! peer, a summary of the live flows, the recent denials, and the hub
//! connections (none yet: the hub client fills `hubs` in).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::{json, Value};
use warren_proto::identity::SpiffeId;
use warren_proto::node::{Direction, FlowSnapshot, FrontKind};

use super::json::{flow_list, identity};
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
        "hubs": Value::Null,
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
/// (dialled by us) and accepted apart.
fn connections(view: &View) -> Vec<Value> {
    let mut by_peer: BTreeMap<(bool, SocketAddr, Option<&SpiffeId>), (usize, usize)> =
        BTreeMap::new();
    for c in &view.connections {
        let key = (c.pooled, c.peer_addr, c.peer.as_ref());
        let entry = by_peer.entry(key).or_default();
        entry.0 += 1;
        entry.1 += c.streams;
    }
    by_peer
        .into_iter()
        .map(|((pooled, addr, peer), (connections, streams))| {
            json!({
                "role": if pooled { "client" } else { "server" },
                "address": addr.to_string(),
                "identity": identity(peer),
                "connections": connections,
                "streams": streams,
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
