//! What a node is told to be: its identity, listeners, policy, directory
//! and limits. Swapped whole at run time with `Input::Config`.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::ServerConfig;

use crate::balance::{Ejection, Strategy};
use crate::front::{HttpConnectConfig, Target};
use crate::h2;
use crate::identity::{ConfigError, MeshTlsParams, ResumableConfig, SpiffeId};
use crate::policy::{AuthzPolicy, EgressPolicy, Exports, ServiceName};
use crate::pool::PoolConfig;
use crate::tls::DEFAULT_BUFFER_LIMIT;

/// Default of [`NodeConfig::early_data_limit`]: a typical first request
/// fits, and a retry replays at most this much.
pub(super) const DEFAULT_EARLY_DATA_LIMIT: usize = 16 * 1024;

/// The node's mesh identity: the parameters every TLS config is built
/// from, and the server config built once from them (with its session
/// store when the parameters enable resumption: a new identity is a new,
/// empty store).
#[derive(Debug, Clone)]
pub struct MeshIdentity {
    params: Arc<MeshTlsParams>,
    server: ResumableConfig<ServerConfig>,
    /// Without session storage: for callers that cannot re-check a
    /// resumed handshake.
    plain_server: Arc<ServerConfig>,
}

impl MeshIdentity {
    /// Builds the server config now, so a bad key or certificate is a
    /// configuration error here rather than a failure on the first flow.
    pub fn new(params: MeshTlsParams) -> Result<MeshIdentity, ConfigError> {
        let server = params.resumable_server_config()?;
        let plain_server = params.server_config()?;
        Ok(MeshIdentity {
            params: Arc::new(params),
            server,
            plain_server,
        })
    }

    /// Our SPIFFE id.
    pub fn id(&self) -> &SpiffeId {
        self.params.identity()
    }

    /// The parameters client configs are built from (one per expected
    /// server identity).
    pub fn params(&self) -> &MeshTlsParams {
        &self.params
    }

    /// A server config that never resumes a session, for sessions started
    /// with [`crate::tls::TlsSession::server`] (which refuses a resumed
    /// handshake, having no re-check for it).
    pub fn server_config(&self) -> &Arc<ServerConfig> {
        &self.plain_server
    }

    /// The server config with its session store and the re-check of
    /// resumed handshakes.
    pub fn resumable_server_config(&self) -> &ResumableConfig<ServerConfig> {
        &self.server
    }
}

/// One node serving a mesh service: where its HBONE port is and which
/// identity it must prove. Ordered and hashed so a
/// [`Balancer`](crate::balance::Balancer) can key its health by it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// The node's HBONE address.
    pub hbone: SocketAddr,
    /// The identity its certificate must carry.
    pub identity: SpiffeId,
}

/// What a local front-end listener speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrontKind {
    /// Every connection goes to one fixed target (usually a mesh service
    /// `name.namespace:port`).
    Tunnel {
        /// The target.
        to: Target,
    },
    /// A SOCKS5 proxy.
    Socks5,
    /// An HTTP CONNECT proxy.
    HttpConnect(HttpConnectConfig),
}

/// One local front-end listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontConfig {
    /// Where it listens.
    pub listen: SocketAddr,
    /// What it speaks.
    pub kind: FrontKind,
}

/// Deadlines the node enforces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake of a mesh connection (default 10 s).
    pub tls_handshake: Duration,
    /// TCP connect to a local target or an egress destination (default 10 s).
    pub target_connect: Duration,
    /// A SOCKS5 or HTTP CONNECT client's complete request (default 10 s).
    pub front_request: Duration,
    /// A flow that moved no byte for this long is reset (default 1 h;
    /// `None` keeps idle flows forever).
    pub idle_flow: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tls_handshake: Duration::from_secs(10),
            target_connect: Duration::from_secs(10),
            front_request: Duration::from_secs(10),
            idle_flow: Some(Duration::from_secs(3600)),
        }
    }
}

/// How an agent spreads flows over a service's endpoints and when it
/// leaves a failing one out (circuit breaking).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balancing {
    /// The strategy of every service not named in `services`.
    pub strategy: Strategy,
    /// Per-service strategies.
    pub services: BTreeMap<ServiceName, Strategy>,
    /// When an endpoint whose connects or handshakes fail is ejected, and
    /// for how long.
    pub ejection: Ejection,
    /// Seed of the ejection back-off jitter.
    pub seed: u64,
}

impl Balancing {
    /// The strategy for `service`.
    pub fn strategy_for(&self, service: &ServiceName) -> Strategy {
        self.services.get(service).copied().unwrap_or(self.strategy)
    }
}

impl Default for Balancing {
    /// Round-robin; an endpoint is ejected after one failed connect or
    /// handshake, for 1 s doubling per repeated ejection up to 60 s. One
    /// failure suffices because the flow that saw it was already moved to
    /// another endpoint: every further flow sent there would pay a connect
    /// timeout or refusal for nothing, and a recovered endpoint comes back
    /// after the back-off on probation.
    fn default() -> Balancing {
        Balancing {
            strategy: Strategy::RoundRobin,
            services: BTreeMap::new(),
            ejection: Ejection {
                consecutive_failures: 1,
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
            seed: 0,
        }
    }
}

/// Everything a node is configured with.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Who we are.
    pub identity: MeshIdentity,
    /// Where to accept HBONE connections; `None` for a node that only dials
    /// out.
    pub hbone_listen: Option<SocketAddr>,
    /// Services this node serves over HBONE.
    pub exports: Exports,
    /// Who may reach them.
    pub authz: AuthzPolicy,
    /// What may leave through the front ends to non-mesh destinations.
    pub egress: EgressPolicy,
    /// Local front-end listeners.
    pub fronts: Vec<FrontConfig>,
    /// Where mesh services live: `name.namespace` → endpoints, chosen by
    /// `balance`.
    pub directory: BTreeMap<ServiceName, Vec<Endpoint>>,
    /// How endpoints are chosen and ejected.
    pub balance: Balancing,
    /// HTTP/2 settings of every mesh connection.
    pub h2: h2::Config,
    /// Outbound connection pool settings.
    pub pool: PoolConfig,
    /// Bound on each TLS session's outgoing buffers.
    pub tls_buffer_limit: usize,
    /// Bytes an outbound flow may send as DATA right behind its CONNECT,
    /// before the 200 (default 16 KiB; 0 waits for the 200). The node keeps
    /// a copy of them to replay if the flow has to retry on another
    /// connection; past the bound it stops reading the client until the 200.
    pub early_data_limit: usize,
    /// Early data goes only on a connection that heard from its peer
    /// within this time (default 1 s). A pooled connection silent for
    /// longer may be dead unnoticed (a crashed peer), and its flows must be
    /// free to retry elsewhere; a flow that sent early bytes retries only
    /// when the peer says it did not process them (REFUSED_STREAM), since
    /// otherwise a target could see them twice.
    pub early_data_max_silence: Duration,
    /// Deadlines.
    pub timeouts: Timeouts,
    /// Serve the HBONE listener as a hub (see [`crate::hub`]).
    pub hub: Option<crate::hub::HubRole>,
    /// The hubs this node keeps connections to (see [`crate::hub`]).
    pub hub_links: crate::hub::HubLinks,
    /// Identities refused: their connections end as soon as they are
    /// verified, and at once when a new list names them.
    pub revocation: crate::revocation::RevocationList,
    /// Exported service ports a hub may relay in plaintext (an export's
    /// `end_to_end = false`). Every other export takes flows from a hub
    /// only end to end (see [`crate::hub`]): a plain relayed CONNECT for
    /// it is refused, since only the inner TLS session proves the source.
    pub relay_plaintext: std::collections::BTreeSet<crate::control::ServicePort>,
}

impl NodeConfig {
    /// A node with this identity and nothing else: no listeners, no
    /// exports, no rules (egress denied), default limits.
    pub fn new(identity: MeshIdentity) -> NodeConfig {
        NodeConfig {
            identity,
            hbone_listen: None,
            exports: Exports::default(),
            authz: AuthzPolicy::default(),
            egress: EgressPolicy::default(),
            fronts: Vec::new(),
            directory: BTreeMap::new(),
            balance: Balancing::default(),
            h2: h2::Config::default(),
            pool: PoolConfig::default(),
            tls_buffer_limit: DEFAULT_BUFFER_LIMIT,
            early_data_limit: DEFAULT_EARLY_DATA_LIMIT,
            early_data_max_silence: Duration::from_secs(1),
            timeouts: Timeouts::default(),
            hub: None,
            hub_links: crate::hub::HubLinks::default(),
            revocation: crate::revocation::RevocationList::default(),
            relay_plaintext: std::collections::BTreeSet::new(),
        }
    }
}
