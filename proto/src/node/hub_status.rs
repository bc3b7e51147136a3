//! What a hub reports about itself for status pages: agents, registry,
//! relays and refusals, counted out of the hub role's state.

use super::hub_guard::RefusalCounts;
use super::Node;

/// A hub's state at a glance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubStatus {
    /// Agent connections (forward and reverse) that are up.
    pub connections: usize,
    /// Agents with an open control stream (one per forward connection).
    pub agents: usize,
    /// The registry's epoch.
    pub registry_epoch: u64,
    /// Rows in the registry.
    pub registry_entries: usize,
    /// Flows relayed now.
    pub relays: usize,
    /// Identities suspended now.
    pub suspended: usize,
    /// Refused requests per identity and offence since start.
    pub refusals: RefusalCounts,
}

impl Node {
    /// The hub's status, or `None` when the node is no hub.
    pub fn hub_status(&self) -> Option<HubStatus> {
        self.config.hub.as_ref()?;
        Some(HubStatus {
            connections: self.hub.conns.len(),
            agents: self.hub.agents.len(),
            registry_epoch: self.hub.registry.epoch(),
            registry_entries: self.hub.registry.len(),
            relays: self.hub.relays.len(),
            suspended: self.hub.guard.suspended(self.now),
            refusals: self.hub_refusals().clone(),
        })
    }
}
