//! The certificate rules' findings for a chain as a connection saw it,
//! kept for the rest of the second they were judged in. A server that
//! takes a thousand connections a second presents them all one chain:
//! its findings' messages and evidence are built once a second instead of
//! on every handshake (13 % of the live sensor's CPU in a connection storm
//! with two findings a handshake). The key holds everything the rules
//! read besides the policy, which an `Analysis` never changes.
//! Certificates and verdicts are compared by identity (the certificate
//! cache and the verifier hand out one `Arc` per certificate and chain)
//! and held by the entry, so an address is not reused while it lives.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};

use super::cert_rules::{self, CertCtx};
use super::observation::Found;
use crate::model::{CertManagerRef, Certificate, MeshKind, Verdict, Workload};
use crate::x509::{ChainVerdict, Role};

/// Entries at most; the memo starts over when full (counted as
/// `findings_memo_full`). It starts over every second anyway (the rules'
/// messages say how long ago and how soon), so this bounds the chains one
/// second holds, not what is judged.
const ENTRIES: usize = 1024;

pub(super) struct CertMemo {
    second: i64,
    entries: HashMap<u64, Entry>,
    hasher: foldhash::fast::RandomState,
}

struct Entry {
    key: Key,
    found: Vec<Found>,
}

/// What the certificate rules read, as owned values.
struct Key {
    role: Role,
    chain: Vec<Arc<Certificate>>,
    verdict: Arc<ChainVerdict>,
    server: SocketAddr,
    sni: Option<String>,
    mesh: Option<MeshKind>,
    inventory: Option<Verdict>,
    cert_manager: Option<CertManagerRef>,
    destination: Option<Workload>,
}

impl CertCtx<'_> {
    fn hash(&self, state: &foldhash::fast::RandomState) -> u64 {
        let mut h = state.build_hasher();
        self.role.hash(&mut h);
        for c in self.chain {
            h.write_usize(Arc::as_ptr(c) as usize);
        }
        h.write_usize(Arc::as_ptr(self.verdict) as usize);
        self.obs.server.hash(&mut h);
        self.obs.sni.hash(&mut h);
        h.finish()
    }

    fn is(&self, k: &Key) -> bool {
        let o = self.obs;
        k.role == self.role
            && k.chain.len() == self.chain.len()
            && k.chain
                .iter()
                .zip(self.chain)
                .all(|(a, b)| Arc::ptr_eq(a, b))
            && Arc::ptr_eq(&k.verdict, self.verdict)
            && k.server == o.server
            && k.sni.as_deref() == o.sni
            && k.mesh == o.mesh
            && k.inventory == o.verdict
            && k.cert_manager.as_ref() == o.cert_manager
            && k.destination == o.destination
    }

    fn key(&self) -> Key {
        let o = self.obs;
        Key {
            role: self.role,
            chain: self.chain.to_vec(),
            verdict: self.verdict.clone(),
            server: o.server,
            sni: o.sni.map(str::to_string),
            mesh: o.mesh,
            inventory: o.verdict,
            cert_manager: o.cert_manager.cloned(),
            destination: o.destination.clone(),
        }
    }
}

impl CertMemo {
    pub(super) fn new() -> Self {
        Self {
            second: i64::MIN,
            entries: HashMap::with_capacity(16),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// Appends to `out` the certificate rules' findings for `cx`, or those
    /// of the same facts earlier in the same second (then true). `full`
    /// counts the times the memo started over because it was full.
    pub(super) fn findings(
        &mut self,
        cx: &CertCtx<'_>,
        out: &mut Vec<Found>,
        full: &mut u64,
    ) -> bool {
        if cx.now != self.second {
            self.entries.clear();
            self.second = cx.now;
        } else if self.entries.len() >= ENTRIES {
            self.entries.clear();
            *full += 1;
        }
        let h = cx.hash(&self.hasher);
        if let Some(e) = self.entries.get(&h)
            && cx.is(&e.key)
        {
            out.extend(e.found.iter().cloned());
            return true;
        }
        let start = out.len();
        cert_rules::evaluate(cx, out);
        let found = out[start..].to_vec();
        self.entries.insert(
            h,
            Entry {
                key: cx.key(),
                found,
            },
        );
        false
    }
}
