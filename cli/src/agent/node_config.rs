//! From the parsed file ([`AgentConfig`]) to what the node runs
//! ([`NodeConfig`]): the identity files are read here, everything else is
//! carried over as it is.

use warren_proto::front::Target;
use warren_proto::node::{Endpoint, FrontConfig, FrontKind, MeshIdentity, NodeConfig};

use crate::config::AgentConfig;

/// What an agent runs with once its identity is read.
#[derive(Debug)]
pub struct Resolved {
    /// The node's configuration.
    pub node: NodeConfig,
    /// The hubs the join ticket names, in its order (none with PEM files);
    /// the hub client dials them.
    pub hubs: Vec<Target>,
}

/// Builds the node's configuration, reading the identity files. The error
/// names the file or the reason the certificate and key do not fit.
pub fn node_config(cfg: &AgentConfig) -> Result<NodeConfig, String> {
    resolve(cfg).map(|r| r.node)
}

/// Reads the identity (files or ticket) and builds everything the agent
/// runs with.
pub fn resolve(cfg: &AgentConfig) -> Result<Resolved, String> {
    let loaded = cfg.identity.load().map_err(|e| format!("identity: {e}"))?;
    if let Some(dates) = &loaded.dates {
        tracing::warn!("identity: {dates}; peers will refuse it until the dates are right");
    }
    let hubs = loaded.hubs.clone();
    let hub_identities = loaded.hub_identities.clone();
    let params = loaded
        .into_params()
        .map_err(|e| format!("identity: {e}"))?
        .with_resumption(cfg.resumption);
    let identity = MeshIdentity::new(params).map_err(|e| format!("identity: {e}"))?;
    let mut node = NodeConfig::new(identity);
    node.hbone_listen = cfg.hbone_listen;
    // The file's defaults could not see the ticket: with hubs from it, an
    // agent that was not told to listen dials out only, as with `hubs`.
    if cfg.hbone_listen_is_default && cfg.hub.is_none() && !hubs.is_empty() {
        node.hbone_listen = None;
    }
    node.hub_links = cfg.hub_links.clone();
    // A ticket's hub identities join the file's `hub_identities`: whoever
    // wrote the ticket holds the CA, so the file need not repeat them.
    for pattern in hub_identities {
        if !node.hub_links.identities.contains(&pattern) {
            node.hub_links.identities.push(pattern);
        }
    }
    // A join ticket's hubs join the configured ones (names resolved now:
    // the node dials addresses).
    for hub in &hubs {
        let text = hub.to_string();
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&text)
            .ok()
            .and_then(|mut addrs| addrs.next());
        match addr {
            Some(addr) if !node.hub_links.hubs.contains(&addr) => node.hub_links.hubs.push(addr),
            Some(_) => {}
            // A hub that does not resolve yet must not keep the agent (and
            // its local flows) down: said once, retried on the next reload.
            None => tracing::warn!(
                hub = %text,
                "ticket hub does not resolve; not dialled until a reload (SIGHUP) finds it"
            ),
        }
    }
    // Redial jitter differs per identity, so agents restarted together
    // spread out, yet one agent's schedule is repeatable.
    node.hub_links.seed = node
        .identity
        .id()
        .as_str()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    node.hub = cfg.hub.clone();
    if let Some(file) = &cfg.revocation {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("revocation: {}: {e}", file.display()))?;
        node.revocation = warren_proto::revocation::RevocationList::parse(&text)
            .map_err(|e| format!("revocation: {}: {e}", file.display()))?;
    }
    node.exports = cfg.exports.clone();
    node.relay_plaintext = cfg.relay_plaintext.clone();
    node.authz = cfg.authz.clone();
    node.egress = cfg.egress.clone();
    node.h2 = cfg.h2.clone();
    node.pool = cfg.pool;
    node.balance = cfg.balance.clone();
    // Ejection jitter, like the redial jitter, differs per agent.
    node.balance.seed = node.hub_links.seed;
    // Fronts in file order: tunnels, then SOCKS5, then the HTTP proxy, so
    // the bound addresses the handle reports follow the same order.
    node.fronts = cfg
        .tunnels
        .iter()
        .map(|t| FrontConfig {
            listen: t.listen,
            kind: FrontKind::Tunnel { to: t.to.clone() },
        })
        .chain(cfg.socks5.iter().map(|s| FrontConfig {
            listen: s.listen,
            kind: FrontKind::Socks5,
        }))
        .chain(cfg.http_proxy.iter().map(|h| FrontConfig {
            listen: h.listen,
            kind: FrontKind::HttpConnect(h.limits),
        }))
        .collect();
    node.directory = cfg
        .services
        .iter()
        .map(|(name, endpoints)| {
            let endpoints = endpoints
                .iter()
                .map(|e| Endpoint {
                    hbone: e.addr,
                    identity: e.identity.clone(),
                })
                .collect();
            (name.clone(), endpoints)
        })
        .collect();
    Ok(Resolved { node, hubs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca;
    use crate::config;
    use warren_proto::identity::{SpiffeId, TrustDomain};

    const CONFIG: &str = r#"
hbone_listen = "127.0.0.1:7001"
admin = "127.0.0.1:7002"
[identity]
cert = "me/cert.pem"
key = "me/key.pem"
ca = "me/ca.pem"
[[tunnel]]
listen = "127.0.0.1:7003"
to = "echo.demo:8080"
[http_proxy]
listen = "127.0.0.1:7005"
max_head_bytes = 4096
[socks5]
listen = "127.0.0.1:7004"
[[service]]
name = "echo.demo"
endpoints = [{ addr = "127.0.0.1:7010", identity = "spiffe://t.org/ns/demo/sa/echo" }]
"#;

    #[test]
    fn node_config_carries_identity_fronts_and_directory() {
        let dir = std::env::temp_dir().join(format!("warren-node-config-{}", std::process::id()));
        let td = TrustDomain::new("t.org").unwrap();
        let id = SpiffeId::parse("spiffe://t.org/ns/web/sa/me").unwrap();
        ca::init(&td, &dir.join("ca"), 1, 1_800_000_000, true).unwrap();
        ca::issue(
            &dir.join("ca"),
            &id,
            &dir.join("me"),
            1,
            1_800_000_000,
            true,
        )
        .unwrap();
        let cfg = config::parse(CONFIG, &dir.join("agent.toml")).unwrap();
        let node = node_config(&cfg);
        let _ = std::fs::remove_dir_all(&dir);
        let node = node.unwrap();
        assert_eq!(node.identity.id(), &id);
        assert_eq!(node.hbone_listen, Some("127.0.0.1:7001".parse().unwrap()));
        let listens: Vec<String> = node.fronts.iter().map(|f| f.listen.to_string()).collect();
        assert_eq!(
            listens,
            ["127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005"]
        );
        assert!(matches!(node.fronts[0].kind, FrontKind::Tunnel { .. }));
        assert_eq!(node.fronts[1].kind, FrontKind::Socks5);
        let FrontKind::HttpConnect(limits) = &node.fronts[2].kind else {
            panic!("third front is not the HTTP proxy")
        };
        assert_eq!(limits, &cfg.http_proxy.as_ref().unwrap().limits);
        let endpoints: Vec<_> = node.directory.values().flatten().collect();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].hbone, "127.0.0.1:7010".parse().unwrap());
    }

    #[test]
    fn missing_identity_files_are_named() {
        let dir = std::env::temp_dir().join("warren-node-config-missing");
        let cfg = config::parse(CONFIG, &dir.join("agent.toml")).unwrap();
        let err = node_config(&cfg).unwrap_err();
        assert!(err.contains("me/cert.pem"), "{err}");
    }
}
