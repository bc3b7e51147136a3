//! A short human-readable account of an [`AgentConfig`], for `warren
//! config check`: what would listen where, and which rules apply.

use core::fmt;

use warren_proto::control::ServicePort;
use warren_proto::policy::Scope;

use super::{AgentConfig, IdentitySource};

/// Displays a configuration as a few lines per section.
pub struct Summary<'a>(pub &'a AgentConfig);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        match &c.identity {
            IdentitySource::Files(files) => {
                writeln!(f, "identity:     cert {}", files.cert.display())?;
                writeln!(f, "              key  {}", files.key.display())?;
                writeln!(f, "              ca   {}", files.ca.display())?;
            }
            IdentitySource::Ticket(ticket) => {
                writeln!(f, "identity:     ticket {}", ticket.display())?;
            }
        }
        match c.hbone_listen {
            Some(addr) => writeln!(f, "hbone_listen: {addr}")?,
            None => writeln!(f, "hbone_listen: none (dials out only)")?,
        }
        if c.hub.is_some() {
            writeln!(f, "role:         hub")?;
        }
        for hub in &c.hub_links.hubs {
            writeln!(f, "hub:          {hub}")?;
        }
        if !c.hub_links.hubs.is_empty() {
            writeln!(f, "route:        {:?}", c.hub_links.route)?;
        }
        writeln!(f, "admin:        {}", c.admin)?;
        writeln!(f, "exports:      {}", c.exports.len())?;
        for e in c.exports.iter() {
            let sp = ServicePort {
                service: e.service.clone(),
                port: e.port,
            };
            let mode = match c.relay_plaintext.contains(&sp) {
                true => " (end_to_end = false)",
                false => "",
            };
            writeln!(f, "  {}:{} -> {}{mode}", e.service, e.port, e.target)?;
        }
        writeln!(f, "authz rules:  {}", c.authz.rules.len())?;
        for r in &c.authz.rules {
            let scope = match &r.scope {
                Scope::AllServices => "all services".to_owned(),
                Scope::Service(s) => s.to_string(),
            };
            writeln!(f, "  {} {} ({scope})", r.action, r.name)?;
        }
        writeln!(f, "egress rules: {}", c.egress.rules.len())?;
        for r in &c.egress.rules {
            writeln!(f, "  {} {}", r.action, r.name)?;
        }
        for t in &c.tunnels {
            writeln!(
                f,
                "tunnel:       {} -> {}:{}",
                t.listen, t.to.host, t.to.port
            )?;
        }
        if let Some(s) = &c.socks5 {
            writeln!(f, "socks5:       {}", s.listen)?;
        }
        if let Some(h) = &c.http_proxy {
            writeln!(f, "http_proxy:   {}", h.listen)?;
        }
        let b = &c.balance;
        writeln!(
            f,
            "balance:      {}, eject after {} failed connect(s) for {}..{} ms",
            b.strategy,
            b.ejection.consecutive_failures,
            b.ejection.base.as_millis(),
            b.ejection.max.as_millis()
        )?;
        for (name, strategy) in &b.services {
            writeln!(f, "  {name} {strategy}")?;
        }
        writeln!(f, "services:     {}", c.services.len())?;
        for (name, endpoints) in &c.services {
            for e in endpoints {
                writeln!(f, "  {name} at {} as {}", e.addr, e.identity)?;
            }
        }
        Ok(())
    }
}
