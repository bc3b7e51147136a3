//! `/config_dump`, `/flows` and `/certs` as JSON. Keys never appear: the
//! configuration dump names identities and certificates' validity, not
//! key material.

use std::fmt::Display;

use serde_json::{json, Value};
use warren_proto::identity::SpiffeId;
use warren_proto::node::{FlowSnapshot, FrontKind, NodeConfig};
use warren_proto::policy::{Action, AuthzRule, EgressRule, Scope};
use warren_proto::time::Instant;

use super::{x509, View};

/// The effective configuration.
pub fn config_dump(view: &View) -> Value {
    let c: &NodeConfig = &view.config;
    json!({
        "identity": c.identity.id().as_str(),
        "hbone_listen": c.hbone_listen.map(|a| a.to_string()),
        "listeners": strings(&view.listeners),
        "exports": c.exports.iter().map(|e| json!({
            "service": e.service.to_string(),
            "port": e.port,
            "target": e.target.to_string(),
        })).collect::<Vec<_>>(),
        "authz": c.authz.rules.iter().map(authz_rule).collect::<Vec<_>>(),
        "egress": c.egress.rules.iter().map(egress_rule).collect::<Vec<_>>(),
        "front_ends": c.fronts.iter().map(|f| {
            let mut front = json!({ "listen": f.listen.to_string() });
            match &f.kind {
                FrontKind::Tunnel { to } => {
                    front["kind"] = "tunnel".into();
                    front["to"] = to.to_string().into();
                }
                FrontKind::Socks5 => front["kind"] = "socks5".into(),
                FrontKind::HttpConnect(http) => {
                    front["kind"] = "http_connect".into();
                    front["max_head_bytes"] = http.max_head_bytes.into();
                    front["max_headers"] = http.max_headers.into();
                }
            }
            front
        }).collect::<Vec<_>>(),
        "directory": c.directory.iter().map(|(service, endpoints)| json!({
            "service": service.to_string(),
            "endpoints": endpoints.iter().map(|e| json!({
                "hbone": e.hbone.to_string(),
                "identity": e.identity.as_str(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "pool": {
            "assumed_max_streams": c.pool.assumed_max_streams,
            "idle_timeout_ms": millis(c.pool.idle_timeout),
        },
        "timeouts": {
            "tls_handshake_ms": millis(c.timeouts.tls_handshake),
            "target_connect_ms": millis(c.timeouts.target_connect),
            "front_request_ms": millis(c.timeouts.front_request),
            "idle_flow_ms": c.timeouts.idle_flow.map(millis),
        },
        "balance": {
            "strategy": c.balance.strategy.to_string(),
            "services": c.balance.services.iter().map(|(s, st)| (s.to_string(), st.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
            "eject_after_failures": c.balance.ejection.consecutive_failures,
            "eject_base_ms": millis(c.balance.ejection.base),
            "eject_max_ms": millis(c.balance.ejection.max),
        },
        "tls_buffer_limit": c.tls_buffer_limit,
    })
}

fn authz_rule(rule: &AuthzRule) -> Value {
    let w = &rule.when;
    json!({
        "name": rule.name.as_str(),
        "action": action(rule.action),
        "service": match &rule.scope {
            Scope::AllServices => Value::Null,
            Scope::Service(s) => s.to_string().into(),
        },
        "principals": strings(&w.principals),
        "not_principals": strings(&w.not_principals),
        "namespaces": strings(&w.namespaces),
        "not_namespaces": strings(&w.not_namespaces),
        "ip_blocks": strings(&w.ip_blocks),
        "not_ip_blocks": strings(&w.not_ip_blocks),
        "ports": strings(&w.ports),
        "not_ports": strings(&w.not_ports),
    })
}

fn egress_rule(rule: &EgressRule) -> Value {
    use warren_proto::policy::Destination;
    json!({
        "name": rule.name.as_str(),
        "action": action(rule.action),
        "sources": strings(&rule.sources),
        "destinations": rule.destinations.iter().map(|d| match d {
            Destination::Cidr(c) => c.to_string(),
            Destination::Domain(d) => d.to_string(),
        }).collect::<Vec<_>>(),
        "ports": strings(&rule.ports),
    })
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Allow => "allow",
        Action::Deny => "deny",
    }
}

fn strings<T: Display>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

pub(super) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(super) fn identity(id: Option<&SpiffeId>) -> Value {
    id.map_or(Value::Null, |id| id.as_str().into())
}

/// The live flows, oldest first.
pub fn flows(view: &View) -> Value {
    flow_list(view.now, view.flows.iter())
}

/// `flows` as JSON, their ages measured to `now`.
pub(super) fn flow_list<'a>(now: Instant, flows: impl Iterator<Item = &'a FlowSnapshot>) -> Value {
    Value::Array(
        flows
            .map(|f| {
                json!({
                    "id": f.flow.0,
                    "direction": f.direction.to_string(),
                    "source_identity": identity(f.source.as_ref()),
                    "destination_identity": identity(f.destination.as_ref()),
                    "service": f.service,
                    "established": f.established,
                    "bytes_sent": f.bytes_sent,
                    "bytes_received": f.bytes_received,
                    "age_ms": millis(now.saturating_duration_since(f.started)),
                })
            })
            .collect(),
    )
}

/// Our identity and certificate, and the peers of our mesh connections.
pub fn certs(view: &View) -> Value {
    let params = view.config.identity.params();
    let chain = params.certificate_chain();
    let validity = chain.first().and_then(|leaf| x509::validity(leaf.as_ref()));
    json!({
        "identity": params.identity().as_str(),
        "trust_domain": params.trust().trust_domain().as_str(),
        "chain_length": chain.len(),
        "not_before": validity.as_ref().map(|v| v.not_before.clone()),
        "not_after": validity.as_ref().map(|v| v.not_after.clone()),
        "peers": view.connections.iter().map(|c| json!({
            "address": c.peer_addr.to_string(),
            "identity": identity(c.peer.as_ref()),
            "role": if c.pooled { "client" } else { "server" },
            "streams": c.streams,
        })).collect::<Vec<_>>(),
    })
}
