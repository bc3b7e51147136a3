//! # warren-sim
//!
//! warren's deterministic simulator: one thread, virtual time that jumps to
//! the next event, and a seed behind every choice.
//! - [`rng`]: the seeded PRNG, with independent streams per purpose.
//! - [`net`]: the TCP model between simulated hosts (latency, bandwidth,
//!   segment split/merge, bounded windows, FIN/RST, partitions, clogs,
//!   black holes, crashes, frozen hosts, clock skew).
//! - [`world`]: hosts running applications on the net, stepped in time.
//! - [`app`]: seeded byte-stream clients and echo/sink servers that verify
//!   every byte without storing it.
//! - [`trace`]: the ordered record of a run and its `trace-hash`.
//! - [`crypto`]: a seeded rustls `CryptoProvider` (randomness, X25519,
//!   Ed25519), so a run's TLS bytes repeat for the same seed.
//! - [`certs`]: a CA and workload certificates derived from a seed, and the
//!   virtual clock rustls checks them against.
//! - [`pki`]: one run's CA, workload identities and certificate clock.
//! - [`node_host`]: a real `proto::node::Node` hosted on the net.
//! - [`peer`]: a scripted connection end (half-close, reset, slow reads).
//! - [`agents`]: a full mesh of agents on the net, the node tests' fixture.
//! - [`scenario`]: scenarios as TOML (nodes, applications, network, faults).
//! - [`mesh`]: a generated ztunnel-style mesh, the `[mesh]` section.
//! - [`oracle`]: a naive policy oracle, independent of proto's evaluator.
//! - [`invariants`]: integrity, policy, liveness and leak checks.
//! - [`run`]: run / sweep / replay / minimize a scenario.
//! - [`cli`]: the command line of all four (`warren sim`, `warren-sim`).

pub mod agents;
pub mod app;
pub mod certs;
pub mod cli;
pub mod crypto;
pub mod invariants;
pub mod mesh;
pub mod net;
pub mod node_host;
pub mod oracle;
pub mod peer;
pub mod pki;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod trace;
pub mod world;
