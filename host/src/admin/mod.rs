//! The admin endpoint of an agent (default `127.0.0.1:15000`): a small
//! HTTP/1.1 server on its own std thread, independent of the runtime the
//! node runs on. Every request takes one [`View`] of the node through
//! [`Handle::inspect`](crate::Handle::inspect) and renders it:
//!
//! - `/metrics`: Prometheus/OpenMetrics text ([`metrics`]).
//! - `/config_dump`, `/flows`, `/certs`: JSON ([`json`]).
//! - `/status`: what `warren status` shows, as JSON ([`status`]): identity,
//!   listeners, peers, a flow summary, the [`RecentDenials`], the agent's
//!   hub links and, on a hub, its agents, registry, relays and refusals.
//! - `/healthz`: `ok`.
//!
//! Requests are bounded ([`http::MAX_REQUEST`] bytes, a read/write timeout)
//! and every response closes the connection, so one slow or hostile
//! client costs at most one timeout and no memory beyond the bound.

mod denials;
mod http;
mod json;
mod metrics;
mod status;
mod x509;

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use warren_proto::node::{
    CloseCounts, ConnSnapshot, FlowSnapshot, HubLinkStatus, HubStatus, Metrics, Node, NodeConfig,
};
use warren_proto::time::Instant;

use crate::Handle;

pub use denials::{Denial, RecentDenials};
pub use http::MAX_REQUEST;

/// The admin port an agent uses unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:15000";

/// How long one client may take to send its request or take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// The most bytes read after a response before closing anyway.
const DRAIN_LIMIT: u64 = 64 * 1024;

/// Everything the admin endpoints show, copied out of the node in one
/// `inspect` so that the rendering happens off the node's thread.
#[derive(Clone, Debug)]
pub struct View {
    /// The node's time at its latest input; flow ages are measured to it.
    pub now: Instant,
    /// The configuration in effect.
    pub config: NodeConfig,
    /// Flow counters per label set.
    pub metrics: Metrics,
    /// Closed flows per label set and reason.
    pub closes: CloseCounts,
    /// Live flows.
    pub flows: Vec<FlowSnapshot>,
    /// Mesh connections.
    pub connections: Vec<ConnSnapshot>,
    /// The bound listeners (HBONE first, then front ends), when the source
    /// knows them: the configuration may say port 0.
    pub listeners: Vec<SocketAddr>,
    /// The latest policy denials, oldest first, when the source keeps them.
    pub denials: Vec<Denial>,
    /// Failed accepts on the node's listeners, when the source counts them.
    pub accept_errors: u64,
    /// The agent's connections to its hubs.
    pub hub_links: Vec<HubLinkStatus>,
    /// The hub role's state, when the node is a hub.
    pub hub: Option<HubStatus>,
}

impl View {
    /// Copies what the endpoints need out of `node`.
    pub fn of(node: &Node) -> View {
        View {
            now: node.now(),
            config: node.config().clone(),
            metrics: node.metrics().clone(),
            closes: node.close_counts().clone(),
            flows: node.flows().collect(),
            connections: node.connections().collect(),
            listeners: Vec::new(),
            denials: Vec::new(),
            accept_errors: 0,
            hub_links: node.hub_links(),
            hub: node.hub_status(),
        }
    }
}

/// Where the admin server gets its views: usually a running node's
/// [`Handle`]; any function for tests of the HTTP layer alone.
pub trait ViewSource: Send + Sync + 'static {
    /// A fresh view, or why there is none (the node stopped).
    fn view(&self) -> io::Result<View>;
}

impl ViewSource for Arc<Handle> {
    fn view(&self) -> io::Result<View> {
        let mut view = self.inspect(View::of)?;
        view.listeners = self.local_addrs().to_vec();
        Ok(view)
    }
}

/// What the admin endpoint keeps from the node's notices, which the node
/// itself does not: the latest denials and the count of failed accepts.
/// Clones share it; the notice callback [`records`](NoticeRecord::record)
/// into one clone, the admin server reads another.
#[derive(Clone, Debug, Default)]
pub struct NoticeRecord {
    /// The latest policy denials.
    pub denials: RecentDenials,
    accept_errors: Arc<AtomicU64>,
}

impl NoticeRecord {
    /// Keeps what `notice` says that the endpoints show.
    pub fn record(&self, notice: &crate::Notice) {
        match notice {
            crate::Notice::Event(event) => self.denials.record(event),
            crate::Notice::AcceptFailed { .. } => {
                self.accept_errors.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Failed accepts so far.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }
}

/// A running node and what its notices reported: the source of an
/// agent's admin endpoint.
#[derive(Debug)]
pub struct RecordedNode {
    /// The node.
    pub handle: Arc<Handle>,
    /// Filled by the node's notice callback.
    pub record: NoticeRecord,
}

impl ViewSource for RecordedNode {
    fn view(&self) -> io::Result<View> {
        let mut view = self.handle.view()?;
        view.denials = self.record.denials.snapshot();
        view.accept_errors = self.record.accept_errors();
        Ok(view)
    }
}

/// A running admin server; stops (and joins its thread) when dropped.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Binds `addr` and serves the admin endpoints for `source` on a new
    /// thread.
    pub fn start(addr: SocketAddr, source: impl ViewSource) -> io::Result<AdminServer> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("warren-admin".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    // A failed accept (e.g. the client already left) only
                    // loses that client.
                    if let Ok(conn) = conn {
                        serve_one(conn, &source);
                    }
                }
            })?;
        Ok(AdminServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so that the thread sees the flag.
        let _ = TcpStream::connect_timeout(&wake_addr(self.addr), CLIENT_TIMEOUT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An address that reaches a listener bound to `addr` (a wildcard bind is
/// reached through loopback).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let mut to = addr;
    if to.ip().is_unspecified() {
        to.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    to
}

/// Answers one connection and closes it.
fn serve_one(mut conn: TcpStream, source: &impl ViewSource) {
    let _ = conn.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = conn.set_write_timeout(Some(CLIENT_TIMEOUT));
    let response = match http::read_request(&mut conn) {
        Ok(request) => respond(&request, source),
        Err(refusal) => refusal,
    };
    if response.write_to(&mut conn).is_ok() {
        // Reads what the client may still be sending (a refused request's
        // rest) so that the close is a FIN after the answer, not an RST
        // that could destroy it; bounded in bytes and by the timeout.
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let _ = io::copy(&mut (&conn).take(DRAIN_LIMIT), &mut io::sink());
    }
}

/// The pages the server knows.
enum Page {
    Health,
    Metrics,
    ConfigDump,
    Flows,
    Certs,
    Status,
}

/// Routes a parsed request.
fn respond(request: &http::Request, source: &impl ViewSource) -> http::Response {
    let page = match request.path.as_str() {
        "/healthz" => Page::Health,
        "/metrics" => Page::Metrics,
        "/config_dump" => Page::ConfigDump,
        "/flows" => Page::Flows,
        "/certs" => Page::Certs,
        "/status" => Page::Status,
        _ => return http::Response::text(404, "not found\n"),
    };
    if request.method != "GET" {
        return http::Response::method_not_allowed();
    }
    // Every page, health included, needs the node to answer: a node
    // whose thread stopped is not healthy.
    let view = match source.view() {
        Ok(view) => view,
        Err(e) => return http::Response::text(503, &format!("node unavailable: {e}\n")),
    };
    match page {
        Page::Health => http::Response::text(200, "ok\n"),
        Page::Metrics => http::Response::metrics(metrics::render(&view)),
        Page::ConfigDump => http::Response::json(&json::config_dump(&view)),
        Page::Flows => http::Response::json(&json::flows(&view)),
        Page::Certs => http::Response::json(&json::certs(&view)),
        Page::Status => http::Response::json(&status::status(&view)),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A source whose node has stopped.
    struct Stopped;

    impl ViewSource for Stopped {
        fn view(&self) -> io::Result<View> {
            Err(io::Error::other("the node has stopped"))
        }
    }

    fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        got
    }

    #[test]
    fn a_stopped_node_is_unhealthy_and_routing_still_answers() {
        let server = AdminServer::start("127.0.0.1:0".parse().unwrap(), Stopped).unwrap();
        let addr = server.local_addr();
        let status = |request: &str| {
            let reply = exchange(addr, request);
            reply.get(9..12).unwrap_or_default().to_owned()
        };
        assert_eq!(status("GET /healthz HTTP/1.1\r\n\r\n"), "503");
        assert_eq!(status("GET /metrics HTTP/1.1\r\n\r\n"), "503");
        assert_eq!(status("GET /other HTTP/1.1\r\n\r\n"), "404");
        assert_eq!(status("DELETE /flows HTTP/1.1\r\n\r\n"), "405");
        let reply = exchange(addr, "GET /healthz HTTP/1.0\r\n\r\n");
        assert!(
            reply.ends_with("node unavailable: the node has stopped\n"),
            "{reply}"
        );
        drop(server);
        // Stopping closed the listener.
        assert!(TcpStream::connect(addr).is_err());
    }

    #[test]
    fn the_record_counts_failed_accepts_and_keeps_denials() {
        use warren_proto::node::{ListenerId, NodeEvent};
        use warren_proto::policy::{Decision, Reason};

        let record = NoticeRecord::default();
        let reader = record.clone();
        for _ in 0..3 {
            record.record(&crate::Notice::AcceptFailed {
                listener: ListenerId(1),
                error: io::Error::from_raw_os_error(24),
                retry_in: Duration::from_millis(10),
            });
        }
        record.record(&crate::Notice::Event(NodeEvent::PolicyDenied {
            decision: Decision::new(Reason::NoAllowRuleMatched, None),
            source: None,
            destination: "db.prod:5432".into(),
        }));
        record.record(&crate::Notice::Started);
        assert_eq!(reader.accept_errors(), 3);
        let denials = reader.denials.snapshot();
        assert_eq!(denials.len(), 1);
        assert_eq!(denials[0].destination, "db.prod:5432");
    }

    #[test]
    fn a_wildcard_bind_is_woken_through_loopback() {
        let v4: SocketAddr = "0.0.0.0:15000".parse().unwrap();
        assert_eq!(wake_addr(v4), "127.0.0.1:15000".parse().unwrap());
        let v6: SocketAddr = "[::]:15000".parse().unwrap();
        assert_eq!(wake_addr(v6), "[::1]:15000".parse().unwrap());
        let set: SocketAddr = "10.1.2.3:15000".parse().unwrap();
        assert_eq!(wake_addr(set), set);
    }
}
