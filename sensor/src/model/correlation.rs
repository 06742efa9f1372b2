//! What the cluster says about a connection: who the peers are, which
//! cert-manager object issued the server's certificate, and the verdict.
//! One result type, one trait; the Kubernetes inventory implements it and
//! [`NoInventory`] answers "unknown" to everything.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use super::connection::Connection;
use super::peer::Peer;

/// RECORDS.md `verdict` for the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Managed,
    Stale,
    Unmanaged,
    External,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Managed => "managed",
            Verdict::Stale => "stale",
            Verdict::Unmanaged => "unmanaged",
            Verdict::External => "external",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

/// A cert-manager issuer reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuerRef {
    pub kind: String,
    pub name: String,
    /// Empty means cert-manager.io; external issuers name their own group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
}

/// The cert-manager Certificate behind the server's leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertManagerRef {
    pub certificate: ObjectRef,
    /// The revision the served certificate was issued for.
    pub revision: Option<u64>,
    pub issuer: IssuerRef,
    /// The Certificate's status.revision now (greater than `revision` when stale).
    pub current_revision: Option<u64>,
    /// The Certificate's status.renewalTime and notAfter, unix seconds.
    pub renewal_time: Option<i64>,
    pub not_after: Option<i64>,
    /// The issuer's type (`ca`, `acme`, `vault`...) and Ready condition,
    /// when the Issuer or ClusterIssuer is known.
    pub issuer_type: Option<String>,
    pub issuer_ready: Option<bool>,
}

/// The certificate a server pod most likely serves (its cert-manager
/// Secret), for a handshake that hid it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InferredLeaf {
    pub der: Arc<[u8]>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correlation {
    /// `None` without an inventory, or before its first lists.
    pub source: Option<Peer>,
    pub destination: Option<Peer>,
    /// For the server's certificate; `None` when it is not known.
    pub verdict: Option<Verdict>,
    pub cert_manager: Option<CertManagerRef>,
    pub inferred: Option<InferredLeaf>,
}

/// What the inventory says of a server, for probing it: where it runs, and
/// a stamp that changes when what it should serve changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Serving {
    /// The node of the server pod (or host-network node).
    pub node: Option<String>,
    /// A pod, service or node of the cluster.
    pub in_cluster: bool,
    /// Changes when the pod is replaced or a Certificate it mounts for the
    /// SNI gets a new revision: a cached probe of it is then out of date.
    pub stamp: u64,
}

/// Answers who a connection's peers are and what issued its certificate.
pub trait Correlator: Send + Sync {
    /// A TLS connection: endpoints, SNI and the server's chain as seen.
    fn correlate(&self, conn: &Connection) -> Correlation;

    /// A connection without a handshake: who the peers are, nothing about
    /// certificates.
    fn peers(&self, client: SocketAddr, server: SocketAddr) -> Correlation;

    /// The server as probing sees it; `None` without an inventory (or
    /// before its first lists).
    fn serving(&self, _server: SocketAddr, _sni: Option<&str>) -> Option<Serving> {
        None
    }

    /// PEM CA bundles the cluster publishes (trust-manager Bundles, `ca.crt`
    /// of TLS Secrets), to add to the trust anchors.
    fn trust_bundles(&self) -> Vec<String> {
        Vec::new()
    }
}

pub struct NoInventory;

impl Correlator for NoInventory {
    fn correlate(&self, _: &Connection) -> Correlation {
        Correlation::default()
    }

    fn peers(&self, _: SocketAddr, _: SocketAddr) -> Correlation {
        Correlation::default()
    }
}
