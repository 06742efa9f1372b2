//! The cluster's published CA bundles (trust-manager Bundles, `ca.crt` of
//! TLS Secrets) join the trust anchors as the correlator learns them.
//!
//! Anchors are only added: one that leaves the cluster stays trusted until
//! restart, which errs towards fewer `cert.untrusted` findings, not more.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use crate::model::Correlator;
use crate::x509::TrustStore;

#[derive(Debug, Default, Clone)]
pub struct TrustRefreshStats {
    /// Bundles that did not parse into any usable anchor.
    pub bad_bundles: u64,
}

/// Remembers which bundles the trust store has (by content hash).
#[derive(Default)]
pub struct TrustRefresh {
    seen: HashSet<u64>,
    pub stats: TrustRefreshStats,
}

impl TrustRefresh {
    pub fn refresh(&mut self, correlator: &dyn Correlator, store: &mut TrustStore) {
        for pem in correlator.trust_bundles() {
            let key = BuildHasherDefault::<DefaultHasher>::default().hash_one(&pem);
            if !self.seen.insert(key) {
                continue;
            }
            if let Err(e) = store.add_bundle(pem.as_bytes(), "cluster bundle") {
                if self.stats.bad_bundles == 0 {
                    tracing::warn!(error = %e, "a cluster CA bundle is not usable; skipped (logged once)");
                }
                self.stats.bad_bundles += 1;
            }
        }
    }
}
