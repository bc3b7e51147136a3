//! `warren demo`: a CA, two agents and an HTTP echo service in one
//! process on 127.0.0.1, with the curl commands that show the mesh
//! working and one that policy denies.
//!
//! The ports are fixed so documentation can show the commands; each is
//! `port_base` plus the offset below.
//!
//! With `--hub` a hub runs too (on A's HBONE port, its admin on B's), and
//! neither agent listens for HBONE: both dial the hub, B announces its
//! services there, and A reaches them through it, end to end (the hub
//! relays a TLS session between A and B it cannot read).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing::{info, warn};
use warren_host::LoopOptions;
use warren_proto::identity::{SpiffeId, TrustDomain};

use crate::agent::{self, RunningAgent, Runtime, DRAIN_DEADLINE};
use crate::{ca, config};

/// The default first port: the demo uses this one to nine above it.
pub const DEFAULT_PORT_BASE: u16 = 15100;

/// Agent A's SOCKS5 proxy.
pub const SOCKS5: u16 = 1;
/// Agent A's HTTP CONNECT proxy.
pub const HTTP_PROXY: u16 = 2;
/// Agent A's tunnel to echo.demo:8080.
pub const TUNNEL: u16 = 3;
/// Agent A's HBONE listener (with `--hub`: the hub's port).
const A_HBONE: u16 = 4;
/// Agent B's HBONE listener (with `--hub`: the hub's admin endpoint).
pub const B_HBONE: u16 = 5;
/// The echo service behind agent B.
const ECHO: u16 = 6;
/// The secret service behind agent B.
const SECRET: u16 = 7;
/// Agent A's admin endpoint.
const A_ADMIN: u16 = 8;
/// Agent B's admin endpoint.
const B_ADMIN: u16 = 9;

/// The demo's trust domain.
const TRUST_DOMAIN: &str = "demo.warren";
/// Agent A's identity.
const CLIENT_ID: &str = "spiffe://demo.warren/ns/web/sa/client";
/// Agent B's identity.
const SERVER_ID: &str = "spiffe://demo.warren/ns/demo/sa/server";
/// The hub's identity (`--hub`).
const HUB_ID: &str = "spiffe://demo.warren/ns/mesh/sa/hub";
/// The rule that keeps secret.demo from agent A.
pub const SECRET_RULE: &str = "only-ops-may-use-secret";

/// The largest request head the echo server reads.
const MAX_HEAD: usize = 8192;

/// A port above the base; fails when it would pass 65535.
fn port(base: u16, offset: u16) -> Result<u16, String> {
    base.checked_add(offset)
        .ok_or_else(|| format!("--port-base {base} is too high: the demo needs {base} to {base}+9"))
}

/// A temporary folder removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes the CA and both agents' certificates in `dir`.
fn certificates(dir: &Path, now: u64) -> Result<(), String> {
    let td = TrustDomain::new(TRUST_DOMAIN).map_err(|e| e.to_string())?;
    ca::init(&td, &dir.join("ca"), 1, now, true).map_err(|e| e.to_string())?;
    for (id, sub) in [(CLIENT_ID, "a"), (SERVER_ID, "b"), (HUB_ID, "h")] {
        let id = SpiffeId::parse(id).map_err(|e| e.to_string())?;
        ca::issue(&dir.join("ca"), &id, &dir.join(sub), 1, now, true).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The hub's configuration file (`--hub`): anyone may announce services
/// of its own namespace.
fn config_hub(base: u16) -> Result<String, String> {
    Ok(format!(
        r#"hbone_listen = "127.0.0.1:{listen}"
admin = "127.0.0.1:{admin}"

[identity]
cert = "h/cert.pem"
key = "h/key.pem"
ca = "h/ca.pem"

[hub]
[[hub.announce]]
principals = ["*"]
services = ["own-namespace"]
"#,
        listen = port(base, A_HBONE)?,
        admin = port(base, B_HBONE)?,
    ))
}

/// How an agent reaches the hub (`--hub`), or its own HBONE listener.
fn mesh_lines(base: u16, hub: bool, own: u16) -> Result<String, String> {
    Ok(match hub {
        true => format!(
            "hubs = [\"127.0.0.1:{}\"]\nhub_identities = [\"{HUB_ID}\"]",
            port(base, A_HBONE)?
        ),
        false => format!("hbone_listen = \"127.0.0.1:{}\"", port(base, own)?),
    })
}

/// Agent A's configuration file: the client side with every front end
/// (and, without a hub, where B's services are).
fn config_a(base: u16, hub: bool) -> Result<String, String> {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"{mesh}
admin = "127.0.0.1:{a_admin}"

[identity]
cert = "a/cert.pem"
key = "a/key.pem"
ca = "a/ca.pem"

[[egress.rule]]
name = "web-may-reach-demo-services"
action = "allow"
destinations = ["*.demo"]
ports = [8080]

[[tunnel]]
listen = "127.0.0.1:{tunnel}"
to = "echo.demo:8080"

[socks5]
listen = "127.0.0.1:{socks}"

[http_proxy]
listen = "127.0.0.1:{http}"
"#,
        mesh = mesh_lines(base, hub, A_HBONE)?,
        a_admin = port(base, A_ADMIN)?,
        tunnel = port(base, TUNNEL)?,
        socks = port(base, SOCKS5)?,
        http = port(base, HTTP_PROXY)?,
    );
    if hub {
        return Ok(s);
    }
    let _ = write!(
        s,
        r#"
[[service]]
name = "echo.demo"
endpoints = [{{ addr = "127.0.0.1:{b_hbone}", identity = "{server}" }}]

[[service]]
name = "secret.demo"
endpoints = [{{ addr = "127.0.0.1:{b_hbone}", identity = "{server}" }}]
"#,
        b_hbone = port(base, B_HBONE)?,
        server = SERVER_ID,
    );
    Ok(s)
}

/// Agent B's configuration file: exports echo.demo to anyone in the mesh
/// and secret.demo to namespace ops only.
fn config_b(base: u16, hub: bool) -> Result<String, String> {
    Ok(format!(
        r#"{mesh}
admin = "127.0.0.1:{b_admin}"

[identity]
cert = "b/cert.pem"
key = "b/key.pem"
ca = "b/ca.pem"

[[export]]
service = "echo.demo"
port = 8080
target = "127.0.0.1:{echo}"

[[export]]
service = "secret.demo"
port = 8080
target = "127.0.0.1:{secret}"

[[authz.rule]]
name = "{rule}"
action = "deny"
service = "secret.demo"
not_namespaces = ["ops"]
"#,
        mesh = mesh_lines(base, hub, B_HBONE)?,
        b_admin = port(base, B_ADMIN)?,
        echo = port(base, ECHO)?,
        secret = port(base, SECRET)?,
        rule = SECRET_RULE,
    ))
}

/// Answers one HTTP/1.1 request with `name` and its method and path.
fn answer(mut stream: TcpStream, name: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let method = words.next().unwrap_or("?");
    let path = words.next().unwrap_or("?");
    let body = format!("{name}: {method} {path}\n");
    let reply = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes());
}

/// Serves HTTP on `port` (loopback) on a thread of its own, a thread per
/// connection.
fn serve_http(port: u16, name: &'static str) -> Result<(), String> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port} for {name}: {e}"))?;
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream, name));
        }
    });
    Ok(())
}

/// The text printed once everything listens.
fn instructions(base: u16, dir: &Path, hub: bool) -> Result<String, String> {
    let socks = port(base, SOCKS5)?;
    let http = port(base, HTTP_PROXY)?;
    let tunnel = port(base, TUNNEL)?;
    let (b, topology) = match hub {
        true => (
            "dials out only (no HBONE port)".to_string(),
            format!(
                "\x20 hub      {HUB_ID}: :{} (admin :{}); A and B only dial out to it\n",
                port(base, A_HBONE)?,
                port(base, B_HBONE)?
            ),
        ),
        false => (format!("HBONE :{}", port(base, B_HBONE)?), String::new()),
    };
    Ok(format!(
        "warren demo: two agents on 127.0.0.1 (certificates in {dir})\n\
         {topology}\
         \x20 agent A  {CLIENT_ID}: SOCKS5 :{socks}, HTTP CONNECT :{http}, tunnel :{tunnel} -> echo.demo:8080\n\
         \x20 agent B  {SERVER_ID}: {b}, exports echo.demo:8080 and secret.demo:8080\n\
         \n\
         These work (the echo service answers with the method and path):\n\
         \x20 curl --socks5-hostname 127.0.0.1:{socks} http://echo.demo:8080/\n\
         \x20 curl --proxytunnel -x http://127.0.0.1:{http} http://echo.demo:8080/\n\
         \x20 curl http://127.0.0.1:{tunnel}/\n\
         \n\
         This one is denied by agent B's rule \"{SECRET_RULE}\" (secret.demo is for namespace ops,\n\
         A is in namespace web); curl reports SOCKS5 error 2 (not allowed), or the proxy's 403,\n\
         and B logs the rule:\n\
         \x20 curl --socks5-hostname 127.0.0.1:{socks} http://secret.demo:8080/\n\
         \x20 curl --proxytunnel -x http://127.0.0.1:{http} http://secret.demo:8080/\n\
         \n\
         What each agent counts (also /flows, /certs, /config_dump, /healthz):\n\
         \x20 curl http://127.0.0.1:{a_admin}/metrics\n\
         \x20 curl http://127.0.0.1:{b_admin}/metrics\n\
         Each agent's identity, peers, flows and recent denials:\n\
         \x20 warren status --admin 127.0.0.1:{a_admin}\n\
         \x20 warren status --admin 127.0.0.1:{b_admin}\n\
         \n\
         ready: press Ctrl-C to stop\n",
        dir = dir.display(),
        a_admin = port(base, A_ADMIN)?,
        b_admin = port(base, B_ADMIN)?,
    ))
}

/// `warren demo`: runs until SIGINT or SIGTERM.
pub fn run(runtime: Runtime, base: u16, now: u64, hub: bool) -> Result<(), String> {
    port(base, B_ADMIN)?;
    let dir = TempDir(std::env::temp_dir().join(format!("warren-demo-{}", std::process::id())));
    certificates(&dir.0, now)?;
    let a =
        config::parse(&config_a(base, hub)?, &dir.0.join("a.toml")).map_err(|e| e.to_string())?;
    let b =
        config::parse(&config_b(base, hub)?, &dir.0.join("b.toml")).map_err(|e| e.to_string())?;
    let h =
        config::parse(&config_hub(base)?, &dir.0.join("hub.toml")).map_err(|e| e.to_string())?;
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("cannot handle signals: {e}"))?;
    serve_http(port(base, ECHO)?, "echo")?;
    serve_http(port(base, SECRET)?, "secret")?;
    let node_hub = match hub {
        true => Some(
            RunningAgent::start(
                runtime,
                "hub",
                agent::node_config(&h)?,
                LoopOptions::default(),
                h.admin,
            )
            .map_err(|e| format!("cannot start the hub: {e}"))?,
        ),
        false => None,
    };
    let node_b = RunningAgent::start(
        runtime,
        "b",
        agent::node_config(&b)?,
        LoopOptions::default(),
        b.admin,
    )
    .map_err(|e| format!("cannot start agent B: {e}"))?;
    let node_a = RunningAgent::start(
        runtime,
        "a",
        agent::node_config(&a)?,
        LoopOptions::default(),
        a.admin,
    )
    .map_err(|e| format!("cannot start agent A: {e}"))?;
    let listeners: Vec<SocketAddr> = node_a.handle().local_addrs().to_vec();
    info!(runtime = ?runtime, ?listeners, "demo agents started");
    print!("{}", instructions(base, &dir.0, hub)?);
    if let Some(signal) = signals.forever().next() {
        info!(signal, "stopping");
    } else {
        warn!("signal handling ended; stopping");
    }
    node_a.drain(DRAIN_DEADLINE);
    node_b.drain(DRAIN_DEADLINE);
    if let Some(node_hub) = node_hub {
        node_hub.drain(DRAIN_DEADLINE);
    }
    Ok(())
}
