//! `/metrics`: the node's counters and gauges in the text exposition of
//! `prometheus-client`. The node keeps its own counters; each scrape
//! builds a fresh registry from a [`View`], so nothing is shared with the
//! node's thread.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use warren_proto::identity::SpiffeId;
use warren_proto::node::{Direction, MetricKey};

use super::View;

type Labels = Vec<(&'static str, String)>;

/// `prometheus-client` appends `_total` to counter names.
const OPENED: &str = "warren_tcp_connections_opened";
const CLOSED: &str = "warren_tcp_connections_closed";
const SENT: &str = "warren_tcp_sent_bytes";
const RECEIVED: &str = "warren_tcp_received_bytes";

/// The exposition of `view`.
pub fn render(view: &View) -> String {
    let opened = Family::<Labels, Counter>::default();
    let closed = Family::<Labels, Counter>::default();
    let sent = Family::<Labels, Counter>::default();
    let received = Family::<Labels, Counter>::default();
    for (key, counters) in &view.metrics {
        let labels = flow_labels(key);
        opened.get_or_create(&labels).inc_by(counters.opened);
        sent.get_or_create(&labels).inc_by(counters.bytes_sent);
        received
            .get_or_create(&labels)
            .inc_by(counters.bytes_received);
    }
    for ((key, reason), count) in &view.closes {
        let mut labels = flow_labels(key);
        labels.push(("reason", (*reason).to_owned()));
        closed.get_or_create(&labels).inc_by(*count);
    }

    let flows_open = Family::<Labels, Gauge>::default();
    for direction in [Direction::Inbound, Direction::Outbound] {
        let open = view.flows.iter().filter(|f| f.direction == direction);
        flows_open
            .get_or_create(&vec![("direction", direction.to_string())])
            .set(gauge(open.count()));
    }
    let mesh_connections = Family::<Labels, Gauge>::default();
    let streams_open = Gauge::<i64>::default();
    for (role, pooled) in [("client", true), ("server", false)] {
        let conns = view.connections.iter().filter(|c| c.pooled == pooled);
        mesh_connections
            .get_or_create(&vec![("role", role.to_owned())])
            .set(gauge(conns.count()));
    }
    streams_open.set(gauge(view.connections.iter().map(|c| c.streams).sum()));
    let pooled = Gauge::<i64>::default();
    pooled.set(gauge(view.connections.iter().filter(|c| c.pooled).count()));

    let accept_errors = Counter::<u64>::default();
    accept_errors.inc_by(view.accept_errors);

    let refusals = Family::<Labels, Counter>::default();
    let hub_agents = Gauge::<i64>::default();
    let hub_relays = Gauge::<i64>::default();
    let hub_registry = Gauge::<i64>::default();
    if let Some(hub) = &view.hub {
        for ((agent, offence), count) in &hub.refusals {
            let labels = vec![
                ("agent_identity", identity(agent.as_ref())),
                ("reason", offence.label().to_owned()),
            ];
            refusals.get_or_create(&labels).inc_by(*count);
        }
        hub_agents.set(gauge(hub.agents));
        hub_relays.set(gauge(hub.relays));
        hub_registry.set(gauge(hub.registry_entries));
    }

    let mut registry = Registry::default();
    registry.register(OPENED, "Flows established", opened);
    registry.register(CLOSED, "Flows ended, by reason", closed);
    registry.register(SENT, "Bytes read from local sockets and sent on", sent);
    registry.register(RECEIVED, "Bytes written to local sockets", received);
    registry.register("warren_flows_open", "Flows alive now", flows_open);
    registry.register(
        "warren_pool_connections",
        "Outbound mesh connections in the pool",
        pooled,
    );
    registry.register(
        "warren_mesh_connections",
        "Mesh connections (client: dialled by this node; server: accepted)",
        mesh_connections,
    );
    registry.register(
        "warren_h2_streams_open",
        "HTTP/2 streams carrying flows over all mesh connections",
        streams_open,
    );
    registry.register(
        "warren_accept_errors",
        "Failed accepts on the node's listeners (each starts a back-off)",
        accept_errors,
    );
    if view.hub.is_some() {
        registry.register(
            "warren_hub_refusals",
            "Agent requests the hub refused (rate limits, bad control input, rejected announcements)",
            refusals,
        );
        registry.register(
            "warren_hub_agents",
            "Agents with a control stream",
            hub_agents,
        );
        registry.register("warren_hub_relays", "Flows the hub relays now", hub_relays);
        registry.register(
            "warren_hub_registry_entries",
            "Rows in the hub's registry",
            hub_registry,
        );
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &registry);
    out
}

fn flow_labels(key: &MetricKey) -> Labels {
    vec![
        ("source_identity", identity(key.source.as_ref())),
        ("destination_identity", identity(key.destination.as_ref())),
        ("destination_service", key.service.clone()),
        ("direction", key.direction.to_string()),
    ]
}

/// An identity label: empty when unknown.
fn identity(id: Option<&SpiffeId>) -> String {
    id.map(|id| id.as_str().to_owned()).unwrap_or_default()
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
