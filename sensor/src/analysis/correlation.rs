//! What the Kubernetes inventory says about a connection: who the peers
//! are, and which cert-manager object (if any) issued the server's leaf.
//! The analysis only reads it; without an inventory every field is None
//! and the rules that need it (cert.unmanaged, cert.stale, the managed form
//! of cert.expiring_soon, per-namespace issuers) stay silent.

use std::net::SocketAddr;

use crate::export::HandshakeRecord;
use crate::tls::Handshake;
use crate::x509::CertInfo;

/// RECORDS.md `verdict` for the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
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

/// A peer's workload, as exceptions and issuer rules match it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workload {
    pub namespace: Option<String>,
    /// Owner kind (Deployment, StatefulSet...) or "Pod".
    pub kind: Option<String>,
    pub name: Option<String>,
}

/// The cert-manager Certificate behind the server's leaf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertManager {
    pub namespace: String,
    pub name: String,
    /// `Issuer/name` or `ClusterIssuer/name`.
    pub issuer: Option<String>,
    /// `status.renewalTime` of the Certificate, unix seconds.
    pub renewal_time: Option<i64>,
    /// The revision the leaf belongs to, and the Certificate's current one.
    pub revision: Option<u64>,
    pub current_revision: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Correlation {
    pub verdict: Option<Verdict>,
    pub source: Option<Workload>,
    pub destination: Option<Workload>,
    pub cert_manager: Option<CertManager>,
}

/// Fills a `Correlation` for each handshake. The Kubernetes inventory
/// implements it; `NoInventory` answers "unknown" to everything.
pub trait Correlator: Send {
    fn correlate(&mut self, record: &HandshakeRecord, leaf: Option<&CertInfo>) -> Correlation;

    /// The same for a connection that had no handshake (flow accounting's
    /// plaintext flows): by default, `correlate` on an empty record with
    /// the endpoints and the time.
    fn correlate_flow(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        time_us: i64,
    ) -> Correlation {
        let record = HandshakeRecord::new(
            &Handshake::default(),
            client,
            server,
            time_us,
            Vec::new(),
            Vec::new(),
        );
        self.correlate(&record, None)
    }
}

pub struct NoInventory;

impl Correlator for NoInventory {
    fn correlate(&mut self, _: &HandshakeRecord, _: Option<&CertInfo>) -> Correlation {
        Correlation::default()
    }

    // Every plaintext connection asks: answered without building a record.
    fn correlate_flow(&mut self, _: SocketAddr, _: SocketAddr, _: i64) -> Correlation {
        Correlation::default()
    }
}
