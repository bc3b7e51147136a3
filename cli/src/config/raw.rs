//! The agent file exactly as written: serde shapes with every table closed
//! to unknown keys. Values that warren-proto can parse alone are parsed
//! here ([`Parsed`]); whatever needs a second look afterwards (duplicates,
//! ranges, relative paths) keeps its span.

use std::net::SocketAddr;

use serde::Deserialize;
use toml::Spanned;
use warren_proto::front;
use warren_proto::identity::SpiffeId;
use warren_proto::policy::{
    Cidr, Destination, Glob, PrincipalPattern, RuleName, ServiceName, Target,
};

use super::value::{Parsed, Ports};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    pub identity: Option<Spanned<RawIdentity>>,
    pub hbone_listen: Option<Spanned<Parsed<SocketAddr>>>,
    pub admin: Option<Spanned<Parsed<SocketAddr>>>,
    #[serde(default)]
    pub export: Vec<Spanned<RawExport>>,
    #[serde(default)]
    pub authz: RawAuthz,
    #[serde(default)]
    pub egress: RawEgress,
    #[serde(default)]
    pub tunnel: Vec<RawTunnel>,
    pub socks5: Option<RawSocks5>,
    pub http_proxy: Option<RawHttpProxy>,
    #[serde(default)]
    pub service: Vec<RawService>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub pool: RawPool,
    /// Hubs to dial (`ip:port`).
    #[serde(default)]
    pub hubs: Vec<Parsed<SocketAddr>>,
    /// Identities a hub must prove (exact or `*` globs).
    #[serde(default)]
    pub hub_identities: Vec<Parsed<PrincipalPattern>>,
    pub route: Option<RawRoute>,
    /// How long a flow waits for a hub's first registry, in ms.
    pub hub_registry_wait_ms: Option<Spanned<u32>>,
    /// Control bytes queued towards one hub at most.
    pub hub_max_control_outbox: Option<Spanned<u32>>,
    /// Rows of one hub's registry kept at most.
    pub hub_max_registry_entries: Option<Spanned<u32>>,
    /// How flows are spread over a service's endpoints.
    #[serde(default)]
    pub balance: RawBalance,
    /// Present on a hub's file only.
    pub hub: Option<RawHub>,
    /// A revocation list file (`warren ca revoke`).
    pub revocation: Option<Spanned<String>>,
    /// Mesh TLS settings.
    #[serde(default)]
    pub tls: RawTls,
    /// How the node's loop waits for events.
    #[serde(default)]
    pub runtime: RawRuntime,
}

/// The `[runtime]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    pub spin_us: Option<Spanned<u32>>,
}

/// The `[tls]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub resumption: Option<bool>,
    pub resumption_max_age_secs: Option<Spanned<u32>>,
    pub resumption_max_sessions: Option<Spanned<u32>>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawRoute {
    DirectFirst,
    HubOnly,
    DirectOnly,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RawStrategy {
    RoundRobin,
    LeastFlows,
    Sticky,
}

/// The `[balance]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBalance {
    pub strategy: Option<RawStrategy>,
    pub eject_after_failures: Option<Spanned<u32>>,
    pub eject_base_ms: Option<Spanned<u64>>,
    pub eject_max_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub service: Vec<RawServiceStrategy>,
}

/// One `[[balance.service]]`: a strategy for one service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServiceStrategy {
    pub name: Spanned<Parsed<ServiceName>>,
    pub strategy: RawStrategy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHub {
    #[serde(default)]
    pub announce: Vec<RawAnnounceRule>,
    pub strategy: Option<RawStrategy>,
    pub max_services_per_agent: Option<u32>,
    pub max_registry_entries: Option<Spanned<u32>>,
    /// Longest control frame (an announcement) taken or sent, in bytes.
    pub max_control_frame: Option<Spanned<u32>>,
    /// Control bytes queued towards one agent at most.
    pub max_control_outbox: Option<Spanned<u32>>,
    /// Per-connection control-message rate and burst.
    pub control_messages_per_second: Option<Spanned<u32>>,
    pub control_messages_burst: Option<Spanned<u32>>,
    /// Per-identity CONNECT rate and burst.
    pub connects_per_second: Option<Spanned<u32>>,
    pub connects_burst: Option<Spanned<u32>>,
    /// Offences in `offence_window_secs` before a suspension.
    pub max_offences: Option<Spanned<u32>>,
    pub offence_window_secs: Option<Spanned<u32>>,
    /// How long a suspended identity is refused.
    pub suspension_secs: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnnounceRule {
    pub principals: Vec<Parsed<PrincipalPattern>>,
    /// `own-namespace` or `name.namespace` globs such as `*.shop`.
    pub services: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub ca: Option<Spanned<String>>,
    pub ticket: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExport {
    pub service: Parsed<ServiceName>,
    pub port: Spanned<u16>,
    pub target: Parsed<Target>,
    /// Hub flows only end to end (default true).
    pub end_to_end: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthz {
    #[serde(default)]
    pub rule: Vec<RawAuthzRule>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawAction {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthzRule {
    pub name: Spanned<Parsed<RuleName>>,
    pub action: RawAction,
    pub service: Option<Parsed<ServiceName>>,
    #[serde(default)]
    pub principals: Vec<Parsed<PrincipalPattern>>,
    #[serde(default)]
    pub not_principals: Vec<Parsed<PrincipalPattern>>,
    #[serde(default)]
    pub namespaces: Vec<Parsed<Glob>>,
    #[serde(default)]
    pub not_namespaces: Vec<Parsed<Glob>>,
    #[serde(default)]
    pub ip_blocks: Vec<Parsed<Cidr>>,
    #[serde(default)]
    pub not_ip_blocks: Vec<Parsed<Cidr>>,
    #[serde(default)]
    pub ports: Vec<Ports>,
    #[serde(default)]
    pub not_ports: Vec<Ports>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgress {
    #[serde(default)]
    pub rule: Vec<RawEgressRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEgressRule {
    pub name: Spanned<Parsed<RuleName>>,
    pub action: RawAction,
    #[serde(default)]
    pub sources: Vec<Parsed<PrincipalPattern>>,
    #[serde(default)]
    pub destinations: Vec<Parsed<Destination>>,
    #[serde(default)]
    pub ports: Vec<Ports>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTunnel {
    pub listen: Spanned<Parsed<SocketAddr>>,
    pub to: Parsed<front::Target>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSocks5 {
    pub listen: Spanned<Parsed<SocketAddr>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpProxy {
    pub listen: Spanned<Parsed<SocketAddr>>,
    pub max_head_bytes: Option<Spanned<usize>>,
    pub max_headers: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Spanned<Parsed<ServiceName>>,
    pub endpoints: Spanned<Vec<RawEndpoint>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub addr: Parsed<SocketAddr>,
    pub identity: Parsed<SpiffeId>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub stream_window: Option<Spanned<u32>>,
    pub connection_window: Option<Spanned<u32>>,
    pub max_frame_size: Option<Spanned<u32>>,
    pub max_header_list_size: Option<Spanned<u32>>,
    pub max_concurrent_streams: Option<Spanned<u32>>,
    pub max_send_buffer: Option<Spanned<u32>>,
    pub keepalive_interval_secs: Option<u64>,
    pub keepalive_timeout_secs: Option<Spanned<u64>>,
}

/// The `[pool]` table: the outbound connection pool.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub max_connections_per_endpoint: Option<Spanned<u32>>,
    pub congestion_window: Option<Spanned<u32>>,
    pub idle_timeout_secs: Option<Spanned<u32>>,
}
