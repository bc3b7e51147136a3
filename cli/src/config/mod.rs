//! The agent's configuration file (TOML), parsed into warren-proto's
//! policy and front-end types.
//!
//! `cli/examples/agent.toml` documents every key with comments. The file
//! is strict: an unknown key is an error (with a suggestion when a known
//! key is close), and every error names the file, line, column and key and
//! says what was expected, e.g.
//!
//! ```text
//! agent.toml:12:13: `authz.rule[0].ip_blocks[1]`: "10.0.0.0/33": prefix length ...; expected an address or network such as "10.0.0.0/8" or "::1"
//! ```
//!
//! The result is a plain [`AgentConfig`]: the mesh node's configuration is
//! built from it by the agent command. Relative file names in
//! `[identity]` are taken relative to the configuration file's folder,
//! so a config and its certificates can move together.

mod error;
mod raw;
mod resolve;
mod summary;
mod value;

pub use error::ConfigError;
pub use summary::Summary;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use warren_host::LoopOptions;
use warren_proto::control::ServicePort;
use warren_proto::front::{self, HttpConnectConfig};
use warren_proto::h2;
use warren_proto::hub::{HubLinks, HubRole, DEFAULT_HUB_PORT};
use warren_proto::identity::{Resumption, SpiffeId};
use warren_proto::node::Balancing;
use warren_proto::policy::{AuthzPolicy, EgressPolicy, Exports, ServiceName};

/// The default HBONE listener: every interface, ztunnel's port.
pub const DEFAULT_HBONE_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 15008));
/// The default listener of a hub: every interface, port 15009.
pub const DEFAULT_HUB_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, DEFAULT_HUB_PORT));
/// The default admin listener (metrics, config dump): loopback only.
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 15000));

/// Everything an agent is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// Where the agent's certificate, key and trust anchor come from.
    pub identity: IdentitySource,
    /// Where the agent accepts HBONE (mesh) connections; `None` for an
    /// agent that only dials out (the default once `hubs` are set).
    pub hbone_listen: Option<SocketAddr>,
    /// `hbone_listen` was not written: it is the default of an agent whose
    /// file names no hubs, and an agent whose join ticket names hubs dials
    /// out only after all.
    pub hbone_listen_is_default: bool,
    /// Where the admin endpoint (metrics, `/config_dump`) listens.
    pub admin: SocketAddr,
    /// The services this agent serves to the mesh.
    pub exports: Exports,
    /// Exports with `end_to_end = false`: a hub may relay their flows in
    /// plaintext. Every other export takes hub flows only end to end.
    pub relay_plaintext: BTreeSet<ServicePort>,
    /// Who may reach the exported services.
    pub authz: AuthzPolicy,
    /// Where local clients may go through the SOCKS5 and HTTP proxies.
    pub egress: EgressPolicy,
    /// Local ports that each forward to one fixed destination.
    pub tunnels: Vec<TunnelListener>,
    /// The SOCKS5 proxy, if enabled.
    pub socks5: Option<Socks5Listener>,
    /// The HTTP CONNECT proxy, if enabled.
    pub http_proxy: Option<HttpProxyListener>,
    /// Mesh services this agent knows statically: where their endpoints
    /// are and which identity each must prove.
    pub services: BTreeMap<ServiceName, Vec<Endpoint>>,
    /// HTTP/2 settings and limits of every mesh connection.
    pub h2: h2::Config,
    /// The outbound connection pool (`[pool]`).
    pub pool: warren_proto::pool::PoolConfig,
    /// How flows are spread over a service's endpoints (`[balance]`).
    pub balance: Balancing,
    /// The hubs this agent dials.
    pub hub_links: HubLinks,
    /// Serve as a hub (the `[hub]` table; `warren hub` requires it).
    pub hub: Option<HubRole>,
    /// The revocation list file, read when the node is configured.
    pub revocation: Option<PathBuf>,
    /// TLS session resumption of mesh connections (`[tls]`).
    pub resumption: Resumption,
    /// How the node's loop waits for events (`[runtime]`). Read when the
    /// agent starts; a reload does not change it.
    pub runtime: LoopOptions,
}

/// Where the identity is read from: three PEM files, or one join ticket
/// (`warren ca ticket`) that also names the hubs to dial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// `[identity] cert, key, ca`.
    Files(IdentityFiles),
    /// `[identity] ticket`, or `warren agent --ticket FILE`.
    Ticket(PathBuf),
}

/// The identity files, absolute or relative to the working directory
/// (relative names in the file are resolved against its folder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityFiles {
    /// The agent's certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// The agent's private key, PKCS#8 PEM.
    pub key: PathBuf,
    /// The CA certificates the agent trusts, PEM.
    pub ca: PathBuf,
}

/// A plain tunnel: connections to `listen` go to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelListener {
    /// The local address to accept on.
    pub listen: SocketAddr,
    /// Where every connection goes (a mesh service `name.namespace:port`
    /// or an address).
    pub to: front::Target,
}

/// The SOCKS5 proxy front end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socks5Listener {
    /// The local address to accept on.
    pub listen: SocketAddr,
}

/// The HTTP CONNECT proxy front end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProxyListener {
    /// The local address to accept on.
    pub listen: SocketAddr,
    /// Request head limits.
    pub limits: HttpConnectConfig,
}

/// One endpoint of a statically known service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The node's HBONE address.
    pub addr: SocketAddr,
    /// The identity the node must present.
    pub identity: SpiffeId,
}

/// Parses an agent configuration from `text`, read from `file` (used in
/// errors and to resolve relative paths).
pub fn parse(text: &str, file: &Path) -> Result<AgentConfig, ConfigError> {
    parse_with_ticket(text, file, None)
}

/// Like [`parse`], with the identity given on the command line as a join
/// ticket (`warren agent --ticket FILE`) instead of in the file's
/// `[identity]`: giving both, or neither, is an error.
pub fn parse_with_ticket(
    text: &str,
    file: &Path,
    ticket: Option<&Path>,
) -> Result<AgentConfig, ConfigError> {
    let locator = error::Locator::new(file, text);
    let raw: raw::RawAgent = toml::from_str(text).map_err(|e| locator.toml_error(&e))?;
    let base = file.parent().unwrap_or(Path::new(""));
    resolve::resolve(raw, base, ticket, &locator)
}

/// Reads and parses the agent configuration file at `file`.
pub fn load(file: &Path) -> Result<AgentConfig, ConfigError> {
    load_with_ticket(file, None)
}

/// Reads and parses `file`, the identity possibly given as a ticket on
/// the command line (see [`parse_with_ticket`]).
pub fn load_with_ticket(file: &Path, ticket: Option<&Path>) -> Result<AgentConfig, ConfigError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ConfigError::file(file, format!("cannot read: {e}")))?;
    parse_with_ticket(&text, file, ticket)
}

#[cfg(test)]
mod tests;
