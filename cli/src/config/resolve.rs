//! From the file as written to an [`AgentConfig`]: defaults, the checks
//! that span several values (duplicates, listeners on one address), limits
//! in range, and paths relative to the file.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use warren_host::LoopOptions;
use warren_proto::front::HttpConnectConfig;
use warren_proto::h2::{self, frame};
use warren_proto::policy::{
    Action, AuthzPolicy, AuthzRule, Conditions, EgressPolicy, EgressRule, Export, Exports,
    RuleName, Scope,
};

use super::error::Locator;
use super::raw::{
    RawAction, RawAgent, RawBalance, RawHub, RawIdentity, RawLimits, RawPool, RawRoute, RawRuntime,
    RawStrategy, RawTls,
};
use super::value::Parsed;
use super::{
    AgentConfig, ConfigError, Endpoint, HttpProxyListener, IdentityFiles, IdentitySource,
    Socks5Listener, TunnelListener, DEFAULT_ADMIN, DEFAULT_HBONE_LISTEN, DEFAULT_HUB_LISTEN,
};
use warren_proto::balance::{Ejection, Strategy};
use warren_proto::control::{AnnouncePolicy, ExportRule, ServiceAllowance, ServicePort};
use warren_proto::hub::{
    AgentLimits, HubLinks, HubRole, Rate, Route, DEFAULT_CONTROL_OUTBOX, DEFAULT_REGISTRY_WAIT,
};
use warren_proto::identity::{Resumption, MAX_MAX_AGE};
use warren_proto::node::Balancing;
use warren_proto::policy::Glob;
use warren_proto::pool::PoolConfig;
use warren_proto::registry::DEFAULT_MAX_ENTRIES;

/// The smallest connection window: RFC 9113 fixes the initial one at
/// 65535 and a receiver can only widen it.
const MIN_CONNECTION_WINDOW: u32 = 65_535;

fn action(raw: RawAction) -> Action {
    match raw {
        RawAction::Allow => Action::Allow,
        RawAction::Deny => Action::Deny,
    }
}

fn unwrap<T>(list: Vec<Parsed<T>>) -> Vec<T> {
    list.into_iter().map(|p| p.0).collect()
}

/// Listen addresses seen so far, so two listeners never share one.
struct Listeners<'a> {
    seen: Vec<(SocketAddr, &'static str)>,
    locator: &'a Locator<'a>,
}

impl Listeners<'_> {
    fn claim(
        &mut self,
        what: &'static str,
        addr: &Spanned<Parsed<SocketAddr>>,
    ) -> Result<SocketAddr, ConfigError> {
        let value = addr.get_ref().0;
        if let Some((first, first_what)) = self.seen.iter().find(|(seen, _)| overlap(*seen, value))
        {
            return Err(self.locator.error(
                Some(addr.span()),
                format!(
                    "{value} overlaps the {first_what} address {first}; expected another port or address for the {what}"
                ),
            ));
        }
        self.seen.push((value, what));
        Ok(value)
    }
}

/// Whether two listeners could not both bind: the same port on the same
/// address, or on any address when one of them is a wildcard (`0.0.0.0`
/// or `[::]`, which on Linux also takes IPv4). Port 0 asks the system for
/// a free port, so it never clashes.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip().to_canonical() == b.ip().to_canonical()
            || a.ip().is_unspecified()
            || b.ip().is_unspecified())
}

/// A listener the file may leave out. The span 0..0 marks "not in the
/// file": the locator reports it at line 1 with no key.
fn default_addr(
    given: Option<Spanned<Parsed<SocketAddr>>>,
    default: SocketAddr,
) -> Spanned<Parsed<SocketAddr>> {
    given.unwrap_or_else(|| Spanned::new(0..0, Parsed(default)))
}

/// Refuses a second rule with the same name: decisions are logged by rule
/// name, so a name must say which rule it was.
fn unique_name(
    names: &mut BTreeSet<RuleName>,
    name: &Spanned<Parsed<RuleName>>,
    locator: &Locator<'_>,
) -> Result<RuleName, ConfigError> {
    let value = name.get_ref().0.clone();
    if !names.insert(value.clone()) {
        return Err(locator.error(
            Some(name.span()),
            format!("a rule named \"{value}\" already exists; expected a unique rule name"),
        ));
    }
    Ok(value)
}

/// A file name from the file, relative to its folder.
fn file_name(
    name: &Spanned<String>,
    base: &Path,
    locator: &Locator<'_>,
    expected: &str,
) -> Result<std::path::PathBuf, ConfigError> {
    if name.get_ref().is_empty() {
        return Err(locator.error(
            Some(name.span()),
            format!("empty file name; expected the path of {expected}"),
        ));
    }
    Ok(base.join(name.get_ref()))
}

/// The identity: `[identity]`'s three files or its ticket, or the ticket
/// given on the command line. Exactly one of these ways must be used, so
/// that nobody wonders which certificate the agent presents.
fn identity(
    raw: Option<Spanned<RawIdentity>>,
    ticket: Option<&Path>,
    base: &Path,
    locator: &Locator<'_>,
) -> Result<IdentitySource, ConfigError> {
    let raw = match (raw, ticket) {
        (Some(raw), Some(ticket)) => {
            return Err(locator.error(
                Some(raw.span()),
                format!(
                    "the identity is given twice: here and by --ticket {}; expected either an [identity] table or --ticket",
                    ticket.display()
                ),
            ))
        }
        (None, Some(ticket)) => return Ok(IdentitySource::Ticket(ticket.to_owned())),
        (None, None) => {
            return Err(locator.error(
                None,
                "no identity; expected an [identity] table with cert, key and ca (or ticket), or `warren agent --ticket FILE`",
            ))
        }
        (Some(raw), None) => raw,
    };
    let span = raw.span();
    let raw = raw.into_inner();
    if let Some(ticket) = raw.ticket {
        if let Some(file) = [&raw.cert, &raw.key, &raw.ca].into_iter().flatten().next() {
            return Err(locator.error(
                Some(file.span()),
                "a ticket already holds the certificate, key and CA; expected either ticket or cert, key and ca",
            ));
        }
        let path = file_name(&ticket, base, locator, "a join ticket")?;
        return Ok(IdentitySource::Ticket(path));
    }
    let file = |name: Option<Spanned<String>>, key: &str| match name {
        Some(name) => file_name(&name, base, locator, "a PEM file"),
        None => Err(locator.error(
            Some(span.clone()),
            format!("missing `identity.{key}`; expected cert, key and ca (PEM files), or ticket"),
        )),
    };
    Ok(IdentitySource::Files(IdentityFiles {
        cert: file(raw.cert, "cert")?,
        key: file(raw.key, "key")?,
        ca: file(raw.ca, "ca")?,
    }))
}

pub fn resolve(
    raw: RawAgent,
    base: &Path,
    ticket: Option<&Path>,
    locator: &Locator<'_>,
) -> Result<AgentConfig, ConfigError> {
    let mut listeners = Listeners {
        seen: Vec::new(),
        locator,
    };
    // A hub listens on 15009; an agent with hubs dials out only unless
    // told to listen; any other agent listens on 15008.
    let hbone_default = match (&raw.hub, raw.hubs.is_empty()) {
        (Some(_), _) => Some(DEFAULT_HUB_LISTEN),
        (None, false) => None,
        (None, true) => Some(DEFAULT_HBONE_LISTEN),
    };
    let hbone_listen_is_default = raw.hbone_listen.is_none();
    let hbone_listen = match (raw.hbone_listen, hbone_default) {
        (Some(given), _) => Some(listeners.claim("hbone_listen", &given)?),
        (None, Some(default)) => {
            Some(listeners.claim("hbone_listen", &default_addr(None, default))?)
        }
        (None, None) => None,
    };
    let admin = listeners.claim("admin", &default_addr(raw.admin, DEFAULT_ADMIN))?;

    let identity = identity(raw.identity, ticket, base, locator)?;

    // Adding the exports one at a time finds the first that clashes with
    // an earlier one, which is the one to point at.
    let mut exports = Exports::default();
    let mut list = Vec::new();
    let mut relay_plaintext = BTreeSet::new();
    for export in raw.export {
        let span = export.span();
        let e = export.into_inner();
        if *e.port.get_ref() == 0 {
            return Err(locator.error(
                Some(e.port.span()),
                "port 0 cannot be named by clients; expected 1 to 65535",
            ));
        }
        if e.end_to_end == Some(false) {
            relay_plaintext.insert(ServicePort {
                service: e.service.0.clone(),
                port: *e.port.get_ref(),
            });
        }
        list.push(Export {
            service: e.service.0,
            port: e.port.into_inner(),
            target: e.target.0,
        });
        exports = Exports::new(list.clone()).map_err(|err| {
            locator.error(
                Some(span),
                format!("{err}; expected each service port and each target once"),
            )
        })?;
    }

    let mut names = BTreeSet::new();
    let mut authz_rules = Vec::new();
    for rule in raw.authz.rule {
        let name = unique_name(&mut names, &rule.name, locator)?;
        authz_rules.push(AuthzRule {
            name,
            action: action(rule.action),
            scope: rule
                .service
                .map_or(Scope::AllServices, |s| Scope::Service(s.0)),
            when: Conditions {
                principals: unwrap(rule.principals),
                not_principals: unwrap(rule.not_principals),
                namespaces: unwrap(rule.namespaces),
                not_namespaces: unwrap(rule.not_namespaces),
                ip_blocks: unwrap(rule.ip_blocks),
                not_ip_blocks: unwrap(rule.not_ip_blocks),
                ports: rule.ports.into_iter().map(|p| p.0).collect(),
                not_ports: rule.not_ports.into_iter().map(|p| p.0).collect(),
            },
        });
    }

    let mut names = BTreeSet::new();
    let mut egress_rules = Vec::new();
    for rule in raw.egress.rule {
        let name = unique_name(&mut names, &rule.name, locator)?;
        egress_rules.push(EgressRule {
            name,
            action: action(rule.action),
            sources: unwrap(rule.sources),
            destinations: unwrap(rule.destinations),
            ports: rule.ports.into_iter().map(|p| p.0).collect(),
        });
    }

    let mut tunnels = Vec::new();
    for tunnel in raw.tunnel {
        tunnels.push(TunnelListener {
            listen: listeners.claim("tunnel", &tunnel.listen)?,
            to: tunnel.to.0,
        });
    }
    let socks5 = match raw.socks5 {
        Some(s) => Some(Socks5Listener {
            listen: listeners.claim("socks5", &s.listen)?,
        }),
        None => None,
    };
    let http_proxy = match raw.http_proxy {
        Some(h) => {
            let mut limits = HttpConnectConfig::default();
            if let Some(n) = h.max_head_bytes {
                limits.max_head_bytes = at_least(n, 64, locator)?;
            }
            if let Some(n) = h.max_headers {
                limits.max_headers = at_least(n, 1, locator)?;
            }
            Some(HttpProxyListener {
                listen: listeners.claim("http_proxy", &h.listen)?,
                limits,
            })
        }
        None => None,
    };

    let mut services = BTreeMap::new();
    for service in raw.service {
        let name = service.name.get_ref().0.clone();
        if services.contains_key(&name) {
            return Err(locator.error(
                Some(service.name.span()),
                format!("service {name} is already listed; expected each service once, with all its endpoints"),
            ));
        }
        if service.endpoints.get_ref().is_empty() {
            return Err(locator.error(
                Some(service.endpoints.span()),
                "no endpoints; expected at least one { addr = \"ip:port\", identity = \"spiffe://...\" }",
            ));
        }
        let endpoints = service
            .endpoints
            .into_inner()
            .into_iter()
            .map(|e| Endpoint {
                addr: e.addr.0,
                identity: e.identity.0,
            })
            .collect();
        services.insert(name, endpoints);
    }

    Ok(AgentConfig {
        identity,
        hbone_listen,
        hbone_listen_is_default,
        admin,
        exports,
        relay_plaintext,
        authz: AuthzPolicy::new(authz_rules),
        egress: EgressPolicy::new(egress_rules),
        tunnels,
        socks5,
        http_proxy,
        services,
        h2: limits(raw.limits, locator)?,
        pool: pool(raw.pool, locator)?,
        balance: balancing(raw.balance, locator)?,
        hub_links: HubLinks {
            hubs: unwrap(raw.hubs),
            identities: unwrap(raw.hub_identities),
            route: match raw.route {
                Some(RawRoute::HubOnly) => Route::HubOnly,
                Some(RawRoute::DirectOnly) => Route::DirectOnly,
                Some(RawRoute::DirectFirst) | None => Route::DirectFirst,
            },
            registry_wait: Duration::from_millis(u64::from(in_range(
                raw.hub_registry_wait_ms,
                100..=300_000,
                u32::try_from(DEFAULT_REGISTRY_WAIT.as_millis()).unwrap_or(u32::MAX),
                locator,
            )?)),
            max_control_outbox: control_outbox(raw.hub_max_control_outbox, locator)?,
            max_registry_entries: registry_entries(raw.hub_max_registry_entries, locator)?,
            ..HubLinks::default()
        },
        revocation: match &raw.revocation {
            Some(name) => Some(file_name(name, base, locator, "a revocation list")?),
            None => None,
        },
        hub: match raw.hub {
            Some(hub) => Some(hub_role(hub, locator)?),
            None => None,
        },
        resumption: resumption(raw.tls, locator)?,
        runtime: loop_options(raw.runtime, locator)?,
    })
}

/// The largest spin by default: on a quiet 2-vCPU VM it cut warm setup's
/// p50 by 29–43 % with flows back to back (at less CPU per flow) and by
/// 23–28 % with flows 1 ms apart (at +6–9 % CPU per flow), where 50 µs
/// saved nothing with flows apart (benches/WARREN-BENCH.md, "Warm setup:
/// an adaptive spin").
const DEFAULT_SPIN_US: u32 = 100;

/// The `[runtime]` table: an adaptive spin of at most [`DEFAULT_SPIN_US`]
/// unless set, at most 1 ms of it (a longer spin only burns CPU: a
/// hand-off that takes longer than that is not one a wake-up slows down
/// noticeably); 0 turns it off.
fn loop_options(raw: RawRuntime, locator: &Locator<'_>) -> Result<LoopOptions, ConfigError> {
    let spin_us = in_range(raw.spin_us, 0..=1000, DEFAULT_SPIN_US, locator)?;
    Ok(LoopOptions {
        spin: Duration::from_micros(u64::from(spin_us)),
    })
}

/// The `[tls]` table: resumption on by default, its age at most a day.
fn resumption(raw: RawTls, locator: &Locator<'_>) -> Result<Resumption, ConfigError> {
    let d = Resumption::default();
    let max_age_secs = u32::try_from(d.max_age.as_secs()).unwrap_or(u32::MAX);
    let max_age = in_range(
        raw.resumption_max_age_secs,
        1..=u32::try_from(MAX_MAX_AGE.as_secs()).unwrap_or(u32::MAX),
        max_age_secs,
        locator,
    )?;
    let max_sessions = in_range(
        raw.resumption_max_sessions,
        1..=1_000_000,
        u32::try_from(d.max_sessions).unwrap_or(u32::MAX),
        locator,
    )?;
    Ok(Resumption {
        enabled: raw.resumption.unwrap_or(d.enabled),
        max_age: Duration::from_secs(u64::from(max_age)),
        max_sessions: usize::try_from(max_sessions).unwrap_or(usize::MAX),
    })
}

/// The `[hub]` table.
fn hub_role(raw: RawHub, locator: &Locator<'_>) -> Result<HubRole, ConfigError> {
    let mut rules = Vec::new();
    for rule in raw.announce {
        let mut services = Vec::new();
        for s in rule.services {
            let text = s.get_ref();
            services.push(if text == "own-namespace" {
                ServiceAllowance::OwnNamespace
            } else {
                ServiceAllowance::Matching(Glob::new(text).map_err(|e| {
                    locator.error(
                        Some(s.span()),
                        format!(
                            "{text:?}: {e}; expected \"own-namespace\" or a name.namespace glob such as \"*.shop\""
                        ),
                    )
                })?)
            });
        }
        rules.push(ExportRule {
            principals: unwrap(rule.principals),
            services,
        });
    }
    let mut announce = AnnouncePolicy::new(rules);
    if let Some(max) = raw.max_services_per_agent {
        announce = announce.with_max_services(max);
    }
    let d = HubRole::default();
    let l = d.limits;
    let rate = |per_second, burst, default: Rate| -> Result<Rate, ConfigError> {
        Ok(Rate {
            per_second: in_range(per_second, 1..=1_000_000, default.per_second, locator)?,
            burst: in_range(burst, 1..=1_000_000, default.burst, locator)?,
        })
    };
    let secs = |n, default: Duration| -> Result<Duration, ConfigError> {
        let default = u32::try_from(default.as_secs()).unwrap_or(u32::MAX);
        in_range(n, 1..=86_400, default, locator).map(|s| Duration::from_secs(u64::from(s)))
    };
    let limits = AgentLimits {
        control_messages: rate(
            raw.control_messages_per_second,
            raw.control_messages_burst,
            l.control_messages,
        )?,
        connects: rate(raw.connects_per_second, raw.connects_burst, l.connects)?,
        max_offences: in_range(raw.max_offences, 0..=1_000_000, l.max_offences, locator)?,
        offence_window: secs(raw.offence_window_secs, l.offence_window)?,
        suspension: secs(raw.suspension_secs, l.suspension)?,
    };
    let default_frame = u32::try_from(d.max_control_frame).unwrap_or(u32::MAX);
    let max_control_frame = in_range(
        raw.max_control_frame,
        1024..=16 << 20,
        default_frame,
        locator,
    )?;
    Ok(HubRole {
        announce,
        max_registry_entries: registry_entries(raw.max_registry_entries, locator)?,
        max_control_frame: max_control_frame as usize,
        max_control_outbox: control_outbox(raw.max_control_outbox, locator)?,
        limits,
        strategy: raw.strategy.map_or(Strategy::RoundRobin, strategy),
        ..d
    })
}

/// A bound on control bytes queued towards one peer (`[hub]
/// max_control_outbox` on a hub, `hub_max_control_outbox` on an agent):
/// 64 KiB to 64 MiB, default 1 MiB. Below 64 KiB a registry snapshot in
/// several frames would not fit and the control stream would drop at
/// once; the cap keeps one slow peer from holding unbounded memory.
fn control_outbox(n: Option<Spanned<u32>>, locator: &Locator<'_>) -> Result<usize, ConfigError> {
    let default = u32::try_from(DEFAULT_CONTROL_OUTBOX).unwrap_or(u32::MAX);
    in_range(n, 64 << 10..=64 << 20, default, locator).map(|n| n as usize)
}

/// A bound on registry rows (`[hub] max_registry_entries` on a hub,
/// `hub_max_registry_entries` on an agent): 1 to 10,000,000, default
/// 65,536. An agent's bound should be at least its hubs' (a registry
/// past it drops the control stream).
fn registry_entries(n: Option<Spanned<u32>>, locator: &Locator<'_>) -> Result<usize, ConfigError> {
    let default = u32::try_from(DEFAULT_MAX_ENTRIES).unwrap_or(u32::MAX);
    in_range(n, 1..=10_000_000, default, locator).map(|n| n as usize)
}

fn strategy(raw: RawStrategy) -> Strategy {
    match raw {
        RawStrategy::RoundRobin => Strategy::RoundRobin,
        RawStrategy::LeastFlows => Strategy::LeastFlows,
        RawStrategy::Sticky => Strategy::Sticky,
    }
}

/// The `[balance]` table: the default strategy, per-service ones, and
/// when endpoints are ejected.
fn balancing(raw: RawBalance, locator: &Locator<'_>) -> Result<Balancing, ConfigError> {
    let d = Balancing::default();
    let mut services = BTreeMap::new();
    for s in raw.service {
        let name = s.name.get_ref().0.clone();
        if services
            .insert(name.clone(), strategy(s.strategy))
            .is_some()
        {
            return Err(locator.error(
                Some(s.name.span()),
                format!("{name} already has a strategy; expected each service once in [[balance.service]]"),
            ));
        }
    }
    let consecutive_failures = match raw.eject_after_failures {
        Some(n) if *n.get_ref() == 0 => {
            return Err(locator.error(
                Some(n.span()),
                "0 failures cannot eject; expected at least 1",
            ))
        }
        Some(n) => n.into_inner(),
        None => d.ejection.consecutive_failures,
    };
    let millis = |ms: &Option<Spanned<u64>>, default: Duration| {
        ms.as_ref()
            .map_or(default, |ms| Duration::from_millis(*ms.get_ref()))
    };
    let base = millis(&raw.eject_base_ms, d.ejection.base);
    let max = millis(&raw.eject_max_ms, d.ejection.max);
    if let Some(ms) = raw.eject_base_ms.as_ref().filter(|ms| *ms.get_ref() == 0) {
        return Err(locator.error(
            Some(ms.span()),
            "an ejection of 0 ms ejects nothing; expected at least 1",
        ));
    }
    if max < base {
        // Point at whichever of the two the file set (the max, if both).
        let span = raw
            .eject_max_ms
            .as_ref()
            .or(raw.eject_base_ms.as_ref())
            .map(Spanned::span);
        return Err(locator.error(
            span,
            format!(
                "the longest ejection ({} ms) is shorter than the first ({} ms); expected eject_max_ms >= eject_base_ms",
                max.as_millis(),
                base.as_millis()
            ),
        ));
    }
    Ok(Balancing {
        strategy: raw.strategy.map_or(d.strategy, strategy),
        services,
        ejection: Ejection {
            consecutive_failures,
            base,
            max,
        },
        seed: d.seed,
    })
}

fn at_least(n: Spanned<usize>, min: usize, locator: &Locator<'_>) -> Result<usize, ConfigError> {
    let value = *n.get_ref();
    if value < min {
        return Err(locator.error(
            Some(n.span()),
            format!("{value} is too small; expected at least {min}"),
        ));
    }
    Ok(value)
}

fn in_range(
    n: Option<Spanned<u32>>,
    range: core::ops::RangeInclusive<u32>,
    default: u32,
    locator: &Locator<'_>,
) -> Result<u32, ConfigError> {
    let Some(n) = n else {
        return Ok(default);
    };
    let value = *n.get_ref();
    if !range.contains(&value) {
        return Err(locator.error(
            Some(n.span()),
            format!(
                "{value} is out of range; expected {} to {}",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(value)
}

/// The `[pool]` table. At most 64 connections per endpoint: each may hold
/// a connection window of the peer's memory, so spreading must stay
/// small; a congestion window of at least 1 KiB (below that nearly every
/// connection with a byte in flight would count as congested).
fn pool(raw: RawPool, locator: &Locator<'_>) -> Result<PoolConfig, ConfigError> {
    let d = PoolConfig::default();
    let idle_secs = u32::try_from(d.idle_timeout.as_secs()).unwrap_or(u32::MAX);
    Ok(PoolConfig {
        max_connections_per_endpoint: in_range(
            raw.max_connections_per_endpoint,
            1..=64,
            d.max_connections_per_endpoint,
            locator,
        )?,
        congestion_window: in_range(
            raw.congestion_window,
            1024..=frame::MAX_WINDOW,
            d.congestion_window,
            locator,
        )?,
        idle_timeout: Duration::from_secs(u64::from(in_range(
            raw.idle_timeout_secs,
            1..=86_400,
            idle_secs,
            locator,
        )?)),
        ..d
    })
}

fn limits(raw: RawLimits, locator: &Locator<'_>) -> Result<h2::Config, ConfigError> {
    let d = h2::Config::default();
    let keepalive_timeout =
        match raw.keepalive_timeout_secs {
            None => d.keepalive_timeout,
            Some(secs) if *secs.get_ref() == 0 => return Err(locator.error(
                Some(secs.span()),
                "0 would close every connection at its first keepalive; expected at least 1 second",
            )),
            Some(secs) => Duration::from_secs(*secs.get_ref()),
        };
    Ok(h2::Config {
        initial_stream_window: in_range(
            raw.stream_window,
            1..=frame::MAX_WINDOW,
            d.initial_stream_window,
            locator,
        )?,
        initial_connection_window: in_range(
            raw.connection_window,
            MIN_CONNECTION_WINDOW..=frame::MAX_WINDOW,
            d.initial_connection_window,
            locator,
        )?,
        max_frame_size: in_range(
            raw.max_frame_size,
            frame::DEFAULT_MAX_FRAME_SIZE..=frame::MAX_MAX_FRAME_SIZE,
            d.max_frame_size,
            locator,
        )?,
        max_header_list_size: in_range(
            raw.max_header_list_size,
            1..=u32::MAX,
            d.max_header_list_size,
            locator,
        )?,
        max_concurrent_streams: in_range(
            raw.max_concurrent_streams,
            1..=u32::MAX,
            d.max_concurrent_streams,
            locator,
        )?,
        max_send_buffer: in_range(
            raw.max_send_buffer,
            1..=u32::MAX,
            d.max_send_buffer,
            locator,
        )?,
        keepalive_interval: match raw.keepalive_interval_secs {
            None => d.keepalive_interval,
            Some(0) => None,
            Some(secs) => Some(Duration::from_secs(secs)),
        },
        keepalive_timeout,
        ..d
    })
}
