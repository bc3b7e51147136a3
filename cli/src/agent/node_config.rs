//! From the parsed file ([`AgentConfig`]) to what the node runs
//! ([`NodeConfig`]): the identity files are read here, everything else is
//! carried over as it is.

use warren_proto::node::{Endpoint, FrontConfig, FrontKind, MeshIdentity, NodeConfig};

use crate::config::AgentConfig;

/// Builds the node's configuration, reading the identity files. The error
/// names the file or the reason the certificate and key do not fit.
pub fn node_config(cfg: &AgentConfig) -> Result<NodeConfig, String> {
    let params = cfg
        .identity
        .load()
        .map_err(|e| format!("identity: {e}"))?
        .into_params()
        .map_err(|e| format!("identity: {e}"))?;
    let identity = MeshIdentity::new(params).map_err(|e| format!("identity: {e}"))?;
    let mut node = NodeConfig::new(identity);
    node.hbone_listen = Some(cfg.hbone_listen);
    node.exports = cfg.exports.clone();
    node.authz = cfg.authz.clone();
    node.egress = cfg.egress.clone();
    node.h2 = cfg.h2.clone();
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
    Ok(node)
}
