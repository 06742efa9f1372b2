//! Who a connection's endpoints are, as the inventory knows them.

use serde::Serialize;

/// What kind of peer an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    Pod,
    Service,
    Node,
    External,
}

impl PeerKind {
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Pod => "pod",
            PeerKind::Service => "service",
            PeerKind::Node => "node",
            PeerKind::External => "external",
        }
    }
}

/// A pod's controller (Deployment, StatefulSet, DaemonSet, CronJob...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

/// RECORDS.md `source` / `destination`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Peer {
    pub kind: PeerKind,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub workload: Option<Owner>,
    pub service_account: Option<String>,
    pub node: Option<String>,
}

/// A peer's workload, as policy exceptions and issuer rules match it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    pub namespace: Option<String>,
    /// Owner kind (Deployment, StatefulSet...), "Service" or "Pod".
    pub kind: Option<String>,
    pub name: Option<String>,
}

impl Peer {
    pub fn external() -> Self {
        Peer {
            kind: PeerKind::External,
            namespace: None,
            name: None,
            workload: None,
            service_account: None,
            node: None,
        }
    }

    /// The workload behind a pod or a service; a node or an outside
    /// address is no workload.
    pub fn workload(&self) -> Option<Workload> {
        if !matches!(self.kind, PeerKind::Pod | PeerKind::Service) {
            return None;
        }
        let (kind, name) = match (&self.workload, self.kind) {
            (Some(w), _) => (w.kind.clone(), w.name.clone()),
            (None, PeerKind::Service) => ("Service".to_string(), self.name.clone()?),
            (None, _) => ("Pod".to_string(), self.name.clone()?),
        };
        Some(Workload {
            namespace: self.namespace.clone(),
            kind: Some(kind),
            name: Some(name),
        })
    }
}
