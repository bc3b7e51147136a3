//! The admin endpoint against a live two-node mesh: every page read over
//! a real 127.0.0.1 socket while a flow is open and after it closed.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;

use serde_json::Value;
use warren_proto::policy::AuthzPolicy;

use super::{mesh, pattern, spiffe, Mesh, Server, HANG};
use crate::admin::{AdminServer, MAX_REQUEST};
use crate::Reactor;

/// A response: status, head (lower-cased), body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// Sends `request` raw, half-closes, reads the whole response.
fn raw(admin: SocketAddr, request: &[u8]) -> Reply {
    let mut conn = TcpStream::connect(admin).unwrap();
    conn.set_read_timeout(Some(HANG)).unwrap();
    conn.set_write_timeout(Some(HANG)).unwrap();
    conn.write_all(request).unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    let (head, body) = got.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

fn get(admin: SocketAddr, path: &str) -> Reply {
    raw(
        admin,
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\n\r\n").as_bytes(),
    )
}

fn get_json(admin: SocketAddr, path: &str) -> Value {
    let reply = get(admin, path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    assert!(reply.head.contains("content-type: application/json"));
    serde_json::from_str(&reply.body).unwrap()
}

/// Reads `path` until `done` accepts it: counters reach their values a
/// moment after the bytes do (the node counts a write once the socket took
/// it). Bounded by the suite's hang guard in tries, not in time.
fn get_until(admin: SocketAddr, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..10_000 {
        let page = get_json(admin, path);
        if done(&page) {
            return page;
        }
        std::thread::yield_now();
    }
    panic!("{path} never showed what the test waits for")
}

/// The line of `metric` with exactly `labels` in `exposition`, and its value.
fn sample(exposition: &str, metric: &str, labels: &str) -> Option<u64> {
    let prefix = format!("{metric}{{{labels}}} ");
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// Both nodes name the service without the port (`echo.shop`), so one
/// flow carries the same labels on either side.
fn flow_labels(direction: &str) -> String {
    let service = "echo.shop";
    format!(
        "source_identity=\"{}\",destination_identity=\"{}\",destination_service=\"{service}\",direction=\"{direction}\"",
        spiffe("cart").as_str(),
        spiffe("echo").as_str(),
    )
}

/// One echo flow of `SIZE` bytes: `/flows` shows it open on both nodes
/// with its bytes, `/metrics` counts it opened, moved and closed with the
/// right labels, and the other pages answer.
pub fn admin_endpoints<R: Reactor>() {
    const SIZE: usize = 4096;
    let Mesh {
        tunnel,
        events,
        nodes: [a, b],
        ..
    } = mesh::<R>(Server::Echo, AuthzPolicy::default());
    let a_admin = AdminServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(a)).unwrap();
    let b_admin = AdminServer::start("127.0.0.1:0".parse().unwrap(), Arc::new(b)).unwrap();
    let (a_addr, b_addr) = (a_admin.local_addr(), b_admin.local_addr());

    // A flow that stays open: its bytes came back, no side closed.
    let data = pattern(SIZE);
    let mut conn = TcpStream::connect(tunnel).unwrap();
    conn.set_read_timeout(Some(HANG)).unwrap();
    conn.write_all(&data).unwrap();
    let mut back = vec![0; SIZE];
    conn.read_exact(&mut back).unwrap();
    assert!(back == data);

    let moved = |flows: &Value| {
        flows
            .get(0)
            .is_some_and(|f| f["bytes_sent"] == SIZE as u64 && f["bytes_received"] == SIZE as u64)
    };
    let flows = get_until(a_addr, "/flows", moved);
    println!("node A /flows while open:\n{flows:#}");
    assert_eq!(flows.as_array().unwrap().len(), 1);
    let flow = &flows[0];
    assert_eq!(flow["direction"], "outbound");
    assert_eq!(flow["source_identity"], spiffe("cart").as_str());
    assert_eq!(flow["destination_identity"], spiffe("echo").as_str());
    assert_eq!(flow["service"], "echo.shop");
    assert_eq!(flow["established"], true);
    assert!(flow["id"].is_u64() && flow["age_ms"].is_u64());
    let flows = get_until(b_addr, "/flows", moved);
    assert_eq!(flows[0]["direction"], "inbound");
    assert_eq!(flows[0]["source_identity"], spiffe("cart").as_str());
    assert_eq!(flows[0]["service"], "echo.shop");

    let certs = get_json(a_addr, "/certs");
    println!("node A /certs:\n{certs:#}");
    assert_eq!(certs["identity"], spiffe("cart").as_str());
    assert_eq!(certs["trust_domain"], super::TD);
    for bound in ["not_before", "not_after"] {
        let at = certs[bound].as_str().unwrap_or_default();
        assert!(at.len() == 20 && at.ends_with('Z'), "{bound}: {at}");
    }
    assert!(certs["not_before"].as_str() < certs["not_after"].as_str());
    let peers = certs["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{certs}");
    assert_eq!(peers[0]["identity"], spiffe("echo").as_str());
    assert_eq!(peers[0]["role"], "client");
    assert_eq!(peers[0]["streams"], 1);
    let b_certs = get_json(b_addr, "/certs");
    assert_eq!(b_certs["peers"][0]["identity"], spiffe("cart").as_str());
    assert_eq!(b_certs["peers"][0]["role"], "server");

    let open = get(a_addr, "/metrics").body;
    println!("node A /metrics while open:\n{open}");
    let out = flow_labels("outbound");
    assert_eq!(
        sample(&open, "warren_tcp_connections_opened_total", &out),
        Some(1)
    );
    assert_eq!(
        sample(&open, "warren_flows_open", "direction=\"outbound\""),
        Some(1)
    );
    assert!(open.contains("\nwarren_pool_connections 1\n"), "{open}");
    assert!(open.contains("\nwarren_h2_streams_open 1\n"), "{open}");
    assert!(!open.contains("warren_tcp_connections_closed_total{"));

    // Close it; both nodes log it done.
    conn.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    for node_events in &events {
        loop {
            let event = node_events.recv_timeout(HANG).expect("a FlowClosed event");
            if matches!(event, warren_proto::node::NodeEvent::FlowClosed { .. }) {
                break;
            }
        }
    }

    for (admin, direction) in [(a_addr, "outbound"), (b_addr, "inbound")] {
        let reply = get(admin, "/metrics");
        assert_eq!(reply.status, 200);
        assert!(reply
            .head
            .contains("content-type: application/openmetrics-text"));
        let m = reply.body;
        if direction == "inbound" {
            println!("node B /metrics after close:\n{m}");
        }
        let labels = flow_labels(direction);
        let closed = format!("{labels},reason=\"done\"");
        let size = Some(SIZE as u64);
        assert_eq!(
            sample(&m, "warren_tcp_connections_opened_total", &labels),
            Some(1)
        );
        assert_eq!(
            sample(&m, "warren_tcp_connections_closed_total", &closed),
            Some(1)
        );
        assert_eq!(sample(&m, "warren_tcp_sent_bytes_total", &labels), size);
        assert_eq!(sample(&m, "warren_tcp_received_bytes_total", &labels), size);
        let open = format!("direction=\"{direction}\"");
        assert_eq!(sample(&m, "warren_flows_open", &open), Some(0));
        assert!(m.contains("\nwarren_h2_streams_open 0\n"), "{m}");
        assert_eq!(get_json(admin, "/flows"), Value::Array(Vec::new()));
    }

    let a_config = get_json(a_addr, "/config_dump");
    println!("node A /config_dump:\n{a_config:#}");
    assert_eq!(a_config["identity"], spiffe("cart").as_str());
    assert_eq!(a_config["front_ends"][0]["kind"], "tunnel");
    assert_eq!(a_config["front_ends"][0]["to"], "echo.shop:80");
    assert_eq!(a_config["listeners"][0], tunnel.to_string());
    assert_eq!(a_config["directory"][0]["service"], "echo.shop");
    let b_config = get_json(b_addr, "/config_dump");
    assert_eq!(b_config["exports"][0]["service"], "echo.shop");
    assert_eq!(b_config["exports"][0]["port"], 80);
    assert_eq!(
        b_config["hbone_listen"]
            .as_str()
            .map(|s| s.starts_with("127.0.0.1:")),
        Some(true)
    );
    assert!(!b_config.to_string().to_ascii_lowercase().contains("key"));

    let health = get(a_addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert!(health.head.contains("connection: close"));

    let missing = get(a_addr, "/nope");
    assert_eq!(missing.status, 404);
    let post = raw(
        a_addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert!(post.head.contains("allow: get"));
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "x".repeat(2 * MAX_REQUEST)
    );
    assert_eq!(raw(a_addr, huge.as_bytes()).status, 431);
    let garbage = raw(a_addr, b"\x01\x02 not http\r\n\r\n");
    assert_eq!(garbage.status, 400);
    // Still serving after the refusals.
    assert_eq!(get(a_addr, "/healthz").status, 200);
}
