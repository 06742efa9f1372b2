//! What the cluster says about a connection: who the peers are, which
//! cert-manager object issued the server's certificate, and the verdict;
//! one result type, which every `Correlator` answers with.

use std::sync::Arc;

use serde::Serialize;

use super::peer::Peer;

/// RECORDS.md `verdict` for the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
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
