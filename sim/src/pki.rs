//! The mesh's certificates for one run: a CA, workload identities and the
//! virtual certificate clock, all derived from the run's seed.
//!
//! Every node gets its own seeded crypto provider per incarnation (label
//! `node/<name>/<generation>`), so a restarted node draws fresh randomness
//! and adding a node does not shift anyone else's.

use std::sync::Arc;

use rustls::time_provider::TimeProvider;
use warren_proto::identity::{MeshTlsParams, MeshTrust, SpiffeId, TrustDomain};
use warren_proto::node::MeshIdentity;

use crate::certs::{CertClock, SimCa, Validity};
use crate::crypto::{derive_seed, seeded_provider};

/// Unix time at network time zero: 2027-01-15.
pub const EPOCH_UNIX: u64 = 1_800_000_000;

/// One run's CA, trust bundle and certificate clock.
#[derive(Debug)]
pub struct MeshPki {
    run_seed: u64,
    ca: SimCa,
    trust: Arc<MeshTrust>,
    clock: CertClock,
    next_serial: u64,
}

impl MeshPki {
    /// A CA for `trust_domain` valid for a year around [`EPOCH_UNIX`].
    pub fn new(run_seed: u64, trust_domain: &str) -> Result<MeshPki, String> {
        let year = 365 * 86_400;
        let validity = Validity {
            not_before: EPOCH_UNIX - year,
            not_after: EPOCH_UNIX + year,
        };
        let ca = SimCa::new(derive_seed(run_seed, "ca"), "warren sim CA", 1, validity)
            .map_err(|e| e.to_string())?;
        let td = TrustDomain::new(trust_domain).map_err(|e| format!("trust domain: {e:?}"))?;
        let trust = MeshTrust::new(td, std::slice::from_ref(ca.cert()))
            .map_err(|e| format!("trust: {e:?}"))?;
        Ok(MeshPki {
            run_seed,
            ca,
            trust: Arc::new(trust),
            clock: CertClock::new(EPOCH_UNIX),
            next_serial: 2,
        })
    }

    /// The certificate clock every node reads (the run moves it).
    pub fn clock(&self) -> &CertClock {
        &self.clock
    }

    /// Issues a certificate for `id` valid `valid_secs` from now (certificate
    /// time), and builds the node's identity with a provider seeded from
    /// `label`. `skew_secs` offsets the node's certificate clock.
    pub fn identity(
        &mut self,
        id: &SpiffeId,
        label: &str,
        valid_secs: u64,
        skew_secs: i64,
    ) -> Result<MeshIdentity, String> {
        let now = self.clock.now();
        let validity = Validity {
            not_before: now.saturating_sub(3600),
            not_after: now.saturating_add(valid_secs),
        };
        let serial = self.next_serial;
        self.next_serial += 1;
        let leaf = self
            .ca
            .issue(id, serial, validity)
            .map_err(|e| e.to_string())?;
        let time: Arc<dyn TimeProvider> = if skew_secs == 0 {
            Arc::new(self.clock.clone())
        } else {
            Arc::new(self.clock.skewed(skew_secs))
        };
        let provider = seeded_provider(derive_seed(self.run_seed, label));
        let params = MeshTlsParams::new(
            provider,
            time,
            self.trust.clone(),
            leaf.chain.clone(),
            leaf.key(),
        )
        .map_err(|e| e.to_string())?
        // As `warren agent` runs by default, so sweeps exercise resumption.
        .with_resumption(warren_proto::identity::Resumption::default());
        MeshIdentity::new(params).map_err(|e| e.to_string())
    }
}
