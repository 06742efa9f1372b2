//! Kubernetes state: who an IP is, and which cert-manager object issued a
//! certificate.
//!
//! One [`Index`] behind one [`Inventory`] handle, fed by two sources
//! through one path (`objects::accept` → [`Inventory::admit`]): live watches
//! ([`watch`]) and `kubectl get -o yaml` snapshot files ([`snapshot`]). The
//! sources write the index; the pipeline reads it through the `model`'s
//! `Correlator`, which [`Inventory`] implements ([`correlate`]), and TLS 1.3
//! connections get the certificate a pod's Secret holds ([`inference`]).

pub mod api_client;
pub mod correlate;
mod crds;
mod index;
pub mod inference;
mod objects;
mod outage;
mod owner;
mod retry;
pub mod snapshot;
mod sync;
pub mod watch;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::api::DynamicObject;
use serde::Serialize;

pub use index::{Index, IndexStats, Inferred, Issued, Limits, name_covers};
pub use objects::{Issuer, IssuerRef, Item, Key, Kind, Leaf, Object, accept, first_leaf};
pub use snapshot::{SnapshotError, SnapshotOptions, SnapshotReport};
pub use sync::{KindSync, Phase, SyncBoard};

#[derive(Debug, Clone, Default)]
pub struct InventoryConfig {
    pub limits: Limits,
    /// Keep `kubernetes.io/tls` Secrets (tls.crt and ca.crt only).
    pub read_secrets: bool,
}

/// Which answers the inventory can give yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Pods, Services, EndpointSlices and Nodes are listed: "external"
    /// means outside the cluster, not "not listed yet".
    pub peers: bool,
    /// cert-manager's Certificates and CertificateRequests are listed (or
    /// not installed): "unmanaged" means no cert-manager object issued it.
    pub certificates: bool,
}

struct Shared {
    index: RwLock<Index>,
    /// A snapshot file was read: it is all there is to know.
    snapshot: AtomicBool,
    sync: Mutex<SyncBoard>,
    read_secrets: bool,
    /// (kind, cause) pairs already logged: bad objects are logged once.
    logged: Mutex<HashSet<(&'static str, &'static str)>>,
}

/// A cheap, cloneable handle on the shared index.
#[derive(Clone)]
pub struct Inventory {
    shared: Arc<Shared>,
}

/// Self-telemetry of the inventory, for the summary and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryStats {
    #[serde(flatten)]
    pub index: IndexStats,
    pub sync: BTreeMap<Kind, KindSync>,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("objects", &self.read().len())
            .finish()
    }
}

impl Default for Inventory {
    fn default() -> Self {
        Self::new(InventoryConfig::default())
    }
}

impl Inventory {
    pub fn new(cfg: InventoryConfig) -> Self {
        Inventory {
            shared: Arc::new(Shared {
                index: RwLock::new(Index::new(cfg.limits)),
                sync: Mutex::new(SyncBoard::default()),
                read_secrets: cfg.read_secrets,
                logged: Mutex::new(HashSet::new()),
                snapshot: AtomicBool::new(false),
            }),
        }
    }

    pub fn read_secrets(&self) -> bool {
        self.shared.read_secrets
    }

    /// The index for lookups. A writer that panicked leaves a usable
    /// index (every write is a whole-object swap), so poisoning is ignored.
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.shared.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.shared.index.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn sync(&self) -> MutexGuard<'_, SyncBoard> {
        self.shared.sync.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one read object. Returns whether the index took it.
    pub fn admit(&self, item: Item) -> bool {
        match item {
            Item::Object(o) if o.kind == Kind::Secret && !self.shared.read_secrets => false,
            Item::Object(o) => {
                self.write().apply(*o);
                true
            }
            Item::Ignored(_) => false,
            Item::Rejected(e) => {
                let first = self
                    .shared
                    .logged
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((e.kind(), e.label()));
                if first {
                    tracing::warn!("skipping an unreadable object (further ones counted): {e}");
                } else {
                    tracing::debug!("skipping an unreadable object: {e}");
                }
                self.write()
                    .note_rejected(&format!("{}_{}", e.kind(), e.label()));
                false
            }
        }
    }

    /// One object as the API sent it (watch events).
    pub fn ingest(&self, kind: Kind, obj: DynamicObject) -> bool {
        self.admit(accept(kind, obj))
    }

    pub fn remove(&self, kind: Kind, obj: &DynamicObject) {
        let Some(name) = obj.metadata.name.clone() else {
            return;
        };
        let namespace = if kind.cluster_scoped() {
            String::new()
        } else {
            obj.metadata.namespace.clone().unwrap_or_default()
        };
        self.write().delete(kind, &Key::new(namespace, name));
    }

    pub fn begin_relist(&self, kind: Kind) {
        self.write().begin_relist(kind);
        self.sync().listing(kind);
    }

    pub fn end_relist(&self, kind: Kind) -> usize {
        let removed = self.write().end_relist(kind);
        let was = self.sync().synced(kind);
        if was == Phase::Listing {
            tracing::info!(kind = kind.name(), removed, "inventory synced");
        } else {
            tracing::info!(kind = kind.name(), removed, from = ?was, "inventory re-synced");
        }
        removed
    }

    /// Reads a `--inventory` file into the index.
    pub fn load_snapshot(
        &self,
        path: &Path,
        opts: &SnapshotOptions,
    ) -> Result<SnapshotReport, SnapshotError> {
        let items = snapshot::read_file(path, opts)?;
        let mut report = SnapshotReport::default();
        let mut kinds = Vec::new();
        for item in items {
            match &item {
                Item::Object(o) if o.kind == Kind::Secret && !self.shared.read_secrets => {
                    *report
                        .ignored
                        .entry("Secret (without --read-secrets)".into())
                        .or_default() += 1;
                }
                Item::Object(o) => {
                    report.objects += 1;
                    kinds.push(o.kind);
                }
                Item::Ignored(k) => *report.ignored.entry(k.clone()).or_default() += 1,
                Item::Rejected(e) => {
                    *report.rejected.entry(e.label().to_string()).or_default() += 1
                }
            }
            self.admit(item);
        }
        kinds.sort();
        kinds.dedup();
        self.shared.snapshot.store(true, Ordering::Relaxed);
        let mut sync = self.sync();
        for k in kinds {
            sync.snapshot(k);
        }
        Ok(report)
    }

    /// Until the first lists complete, the index would call every peer
    /// external and every certificate unmanaged: callers say nothing instead.
    pub fn readiness(&self) -> Readiness {
        if self.shared.snapshot.load(Ordering::Relaxed) {
            return Readiness {
                peers: true,
                certificates: true,
            };
        }
        let sync = self.sync();
        let all = |kinds: &[Kind]| kinds.iter().all(|k| sync.settled(*k));
        Readiness {
            peers: all(&[Kind::Pod, Kind::Service, Kind::EndpointSlice, Kind::Node]),
            certificates: all(&[Kind::Certificate, Kind::CertificateRequest]),
        }
    }

    pub fn stats(&self) -> InventoryStats {
        InventoryStats {
            index: self.read().stats(),
            sync: self.sync().all(),
        }
    }

    /// Cluster trust anchors (PEM) for chain verification.
    pub fn trust_pems(&self) -> Vec<String> {
        self.read().trust_pems()
    }
}
