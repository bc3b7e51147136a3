//! The service registry a hub keeps from its agents' announcements.
//!
//! Rows are keyed by the agent connection that announced them (verified
//! identity plus the hub's connection number), so two replicas sharing a
//! service account are two endpoints, and a connection that goes away takes
//! exactly its own rows with it. Every change bumps the epoch by one and
//! yields a [`RegistryDelta`]; a subscriber that applies the deltas in order
//! to a [`RegistrySnapshot`] holds the hub's current snapshot.
//!
//! The caller checks an announcement with
//! [`AnnouncePolicy`](crate::control::AnnouncePolicy) before filing it here.

use crate::control::{
    Announce, Endpoint, RegistryDelta, RegistryEntry, RegistrySnapshot, Rejection, ServicePort,
};
use crate::identity::SpiffeId;
use core::net::SocketAddr;
use std::collections::{BTreeMap, BTreeSet};

/// The default limit on rows in one hub's registry.
pub const DEFAULT_MAX_ENTRIES: usize = 65_536;

/// An agent connection: who (verified) and which connection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentKey {
    /// The identity the connection's TLS session verified.
    pub identity: SpiffeId,
    /// The hub's number for the connection.
    pub instance: u64,
}

#[derive(Clone, Debug)]
struct Agent {
    hbone: Option<SocketAddr>,
    services: BTreeSet<ServicePort>,
    /// The services relayed in plaintext (end-to-end mode off).
    plaintext: BTreeSet<ServicePort>,
}

/// A hub's registry.
#[derive(Clone, Debug)]
pub struct Registry {
    epoch: u64,
    max_entries: usize,
    entries: usize,
    agents: BTreeMap<AgentKey, Agent>,
    /// Endpoints per service, each with its end-to-end flag.
    by_service: BTreeMap<ServicePort, BTreeMap<Endpoint, bool>>,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new(DEFAULT_MAX_ENTRIES)
    }
}

impl Registry {
    /// An empty registry at epoch 0 holding at most `max_entries` rows.
    pub fn new(max_entries: usize) -> Registry {
        Registry {
            epoch: 0,
            max_entries,
            entries: 0,
            agents: BTreeMap::new(),
            by_service: BTreeMap::new(),
        }
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How many rows the registry holds.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether the registry holds no rows.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The endpoints serving a service port, in a fixed order.
    pub fn endpoints(&self, service: &ServicePort) -> impl Iterator<Item = &Endpoint> {
        self.by_service
            .get(service)
            .into_iter()
            .flat_map(|eps| eps.keys())
    }

    /// The services the agent connection `agent` announced, in order.
    pub fn services_of(&self, agent: &AgentKey) -> impl Iterator<Item = &ServicePort> {
        self.agents.get(agent).into_iter().flat_map(|a| &a.services)
    }

    /// The whole registry.
    pub fn snapshot(&self) -> RegistrySnapshot {
        let entries = self
            .by_service
            .iter()
            .flat_map(|(service, eps)| {
                eps.iter().map(|(endpoint, end_to_end)| RegistryEntry {
                    service: service.clone(),
                    endpoint: endpoint.clone(),
                    end_to_end: *end_to_end,
                })
            })
            .collect();
        RegistrySnapshot {
            epoch: self.epoch,
            entries,
        }
    }

    /// Replaces what `agent` serves with `announce`. Returns the change,
    /// or `None` if nothing changed (the epoch stays). Refuses, changing
    /// nothing, when the registry would exceed its limit.
    pub fn announce(
        &mut self,
        agent: &AgentKey,
        announce: &Announce,
    ) -> Result<Option<RegistryDelta>, Rejection> {
        let old_rows = self.agent_rows(agent);
        let services: BTreeSet<ServicePort> = announce.services.iter().cloned().collect();
        let plaintext: BTreeSet<ServicePort> = announce
            .relay_plaintext
            .iter()
            .filter(|s| services.contains(*s))
            .cloned()
            .collect();
        let new_count = self.entries - old_rows.len() + services.len();
        if new_count > self.max_entries {
            return Err(Rejection::RegistryFull);
        }
        self.unfile(agent);
        let endpoint = Endpoint {
            identity: agent.identity.clone(),
            instance: agent.instance,
            hbone: announce.reachable_hbone,
        };
        for service in &services {
            self.by_service
                .entry(service.clone())
                .or_default()
                .insert(endpoint.clone(), !plaintext.contains(service));
        }
        self.entries = new_count;
        if !services.is_empty() {
            self.agents.insert(
                agent.clone(),
                Agent {
                    hbone: announce.reachable_hbone,
                    services,
                    plaintext,
                },
            );
        }
        let new_rows = self.agent_rows(agent);
        Ok(self.change(old_rows, new_rows))
    }

    /// Removes everything `agent` announced (withdrawal or disconnect).
    pub fn remove(&mut self, agent: &AgentKey) -> Option<RegistryDelta> {
        let old_rows = self.agent_rows(agent);
        self.unfile(agent);
        self.change(old_rows, BTreeSet::new())
    }

    /// Removes every connection of `identity` (revocation), as one change.
    pub fn remove_identity(&mut self, identity: &SpiffeId) -> Option<RegistryDelta> {
        let keys: Vec<AgentKey> = self
            .agents
            .keys()
            .filter(|k| &k.identity == identity)
            .cloned()
            .collect();
        let mut old_rows = BTreeSet::new();
        for key in &keys {
            old_rows.append(&mut self.agent_rows(key));
            self.unfile(key);
        }
        self.change(old_rows, BTreeSet::new())
    }

    fn agent_rows(&self, key: &AgentKey) -> BTreeSet<RegistryEntry> {
        let Some(agent) = self.agents.get(key) else {
            return BTreeSet::new();
        };
        let endpoint = Endpoint {
            identity: key.identity.clone(),
            instance: key.instance,
            hbone: agent.hbone,
        };
        agent
            .services
            .iter()
            .map(|service| RegistryEntry {
                service: service.clone(),
                endpoint: endpoint.clone(),
                end_to_end: !agent.plaintext.contains(service),
            })
            .collect()
    }

    /// Takes an agent's rows out of the indexes.
    fn unfile(&mut self, key: &AgentKey) {
        let Some(agent) = self.agents.remove(key) else {
            return;
        };
        let endpoint = Endpoint {
            identity: key.identity.clone(),
            instance: key.instance,
            hbone: agent.hbone,
        };
        for service in &agent.services {
            if let Some(eps) = self.by_service.get_mut(service) {
                eps.remove(&endpoint);
                if eps.is_empty() {
                    self.by_service.remove(service);
                }
            }
        }
        self.entries = self.entries.saturating_sub(agent.services.len());
    }

    /// The delta from `old` to `new` rows, bumping the epoch if non-empty.
    fn change(
        &mut self,
        old: BTreeSet<RegistryEntry>,
        new: BTreeSet<RegistryEntry>,
    ) -> Option<RegistryDelta> {
        let removed: Vec<RegistryEntry> = old.difference(&new).cloned().collect();
        let added: Vec<RegistryEntry> = new.difference(&old).cloned().collect();
        if removed.is_empty() && added.is_empty() {
            return None;
        }
        let base = self.epoch;
        self.epoch = base.saturating_add(1);
        Some(RegistryDelta {
            base,
            epoch: self.epoch,
            added,
            removed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ServiceName;
    use quickcheck::{quickcheck, Arbitrary, Gen};

    #[derive(Clone, Debug)]
    enum Op {
        Announce(AgentKey, Announce),
        Remove(AgentKey),
        RemoveIdentity(SpiffeId),
    }

    fn agent(g: &mut Gen) -> AgentKey {
        AgentKey {
            identity: SpiffeId::new("example.org", "shop", g.choose(&["a", "b"]).unwrap()).unwrap(),
            instance: u64::from(u8::arbitrary(g) % 3),
        }
    }

    impl Arbitrary for Op {
        fn arbitrary(g: &mut Gen) -> Op {
            match u8::arbitrary(g) % 5 {
                0 => Op::Remove(agent(g)),
                1 => Op::RemoveIdentity(agent(g).identity),
                _ => {
                    let n = usize::arbitrary(g) % 4;
                    let services: Vec<ServicePort> = (0..n)
                        .map(|_| ServicePort {
                            service: ServiceName::new(g.choose(&["x", "y"]).unwrap(), "shop")
                                .unwrap(),
                            port: 80 + u16::from(bool::arbitrary(g)),
                        })
                        .collect();
                    let hbone = bool::arbitrary(g).then(|| "10.0.0.1:15008".parse().unwrap());
                    Op::Announce(
                        agent(g),
                        Announce {
                            relay_plaintext: services
                                .iter()
                                .filter(|_| bool::arbitrary(g))
                                .cloned()
                                .collect(),
                            services,
                            reachable_hbone: hbone,
                        },
                    )
                }
            }
        }
    }

    /// Applying each delta to the snapshot before it gives the snapshot
    /// after it; no-op changes keep the epoch; the row count is honest.
    #[test]
    fn deltas_carry_snapshot_to_snapshot() {
        fn prop(ops: Vec<Op>, limit: u8) -> bool {
            let mut reg = Registry::new(usize::from(limit % 12));
            let mut mirror = reg.snapshot();
            for op in ops {
                let before = reg.snapshot();
                let delta = match op {
                    Op::Announce(k, a) => match reg.announce(&k, &a) {
                        Ok(d) => d,
                        Err(Rejection::RegistryFull) => {
                            if reg.snapshot() != before {
                                return false;
                            }
                            None
                        }
                        Err(_) => return false,
                    },
                    Op::Remove(k) => reg.remove(&k),
                    Op::RemoveIdentity(id) => reg.remove_identity(&id),
                };
                let after = reg.snapshot();
                match delta {
                    Some(d) => {
                        if d.epoch != before.epoch + 1 || mirror.apply(&d).is_err() {
                            return false;
                        }
                    }
                    None => {
                        if after != before {
                            return false;
                        }
                    }
                }
                if mirror != after
                    || after.entries.len() != reg.len()
                    || reg.len() > usize::from(limit % 12)
                    || !after.entries.windows(2).all(|w| w[0] < w[1])
                {
                    return false;
                }
            }
            true
        }
        quickcheck(prop as fn(Vec<Op>, u8) -> bool);
    }

    #[test]
    fn replicas_of_one_identity_are_separate_endpoints() {
        let id = SpiffeId::new("example.org", "shop", "cart").unwrap();
        let cart = ServicePort {
            service: ServiceName::parse("cart.shop").unwrap(),
            port: 80,
        };
        let a = Announce {
            services: vec![cart.clone()],
            reachable_hbone: None,
            relay_plaintext: Vec::new(),
        };
        let mut reg = Registry::default();
        let k1 = AgentKey {
            identity: id.clone(),
            instance: 1,
        };
        let k2 = AgentKey {
            identity: id.clone(),
            instance: 2,
        };
        assert!(reg.announce(&k1, &a).unwrap().is_some());
        assert!(reg.announce(&k2, &a).unwrap().is_some());
        assert_eq!(reg.announce(&k2, &a), Ok(None), "re-announcing is a no-op");
        let instances: Vec<u64> = reg.endpoints(&cart).map(|e| e.instance).collect();
        assert_eq!(instances, [1, 2]);
        let d = reg.remove(&k1).unwrap();
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].endpoint.instance, 1);
        assert_eq!(reg.endpoints(&cart).count(), 1);
        assert!(reg.remove_identity(&id).is_some());
        assert!(reg.is_empty());
        assert_eq!(reg.epoch(), 4);
    }

    #[test]
    fn end_to_end_flag_follows_the_announcement() {
        let id = SpiffeId::new("example.org", "shop", "cart").unwrap();
        let sp = |name: &str| ServicePort {
            service: ServiceName::new(name, "shop").unwrap(),
            port: 80,
        };
        let key = AgentKey {
            identity: id,
            instance: 1,
        };
        let mut reg = Registry::default();
        let a = Announce {
            services: vec![sp("cart"), sp("db")],
            reachable_hbone: None,
            // A plaintext entry for a service not announced is ignored.
            relay_plaintext: vec![sp("db"), sp("web")],
        };
        reg.announce(&key, &a).unwrap();
        let flags: Vec<(String, bool)> = reg
            .snapshot()
            .entries
            .iter()
            .map(|e| (e.service.service.to_string(), e.end_to_end))
            .collect();
        assert_eq!(
            flags,
            [
                ("cart.shop".to_string(), true),
                ("db.shop".to_string(), false)
            ]
        );
        let services: Vec<&ServicePort> = reg.services_of(&key).collect();
        assert_eq!(services, [&sp("cart"), &sp("db")]);
        // Turning end-to-end on for db is a change: one row out, one in.
        let on = Announce {
            relay_plaintext: Vec::new(),
            ..a
        };
        let d = reg.announce(&key, &on).unwrap().unwrap();
        assert_eq!((d.added.len(), d.removed.len()), (1, 1));
        assert!(d.added[0].end_to_end && !d.removed[0].end_to_end);
    }
}
