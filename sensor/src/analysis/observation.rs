//! What the rules look at: one connection's or flow's facts, with the
//! peers' workloads worked out once; and a finding with its dedup key.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::model::{
    Alert, CertManagerRef, Certificate, CipherSuite, Connection, Finding, Flow, MeshKind,
    ProtocolVersion, Verdict, Workload,
};

/// What the rules look at for one connection or flow: the model's facts,
/// with the peers' workloads worked out once.
pub(super) struct Observation<'a> {
    /// The connection's first packet, microseconds since the epoch.
    pub time_us: i64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub sni: Option<&'a str>,
    pub mesh: Option<MeshKind>,
    pub version: Option<ProtocolVersion>,
    pub cipher: Option<CipherSuite>,
    pub alert: Option<Alert>,
    pub server_chain: &'a [Arc<Certificate>],
    pub client_chain: &'a [Arc<Certificate>],
    pub verdict: Option<Verdict>,
    pub cert_manager: Option<&'a CertManagerRef>,
    pub source: Option<Workload>,
    pub destination: Option<Workload>,
}

impl<'a> Observation<'a> {
    pub(super) fn of_connection(c: &'a Connection) -> Self {
        let hs = &c.handshake;
        Observation {
            time_us: c.time_us,
            client: c.client,
            server: c.server,
            sni: hs.sni.as_deref(),
            mesh: c.mesh.as_ref().map(|m| m.kind),
            version: hs.version,
            cipher: hs.cipher,
            alert: hs.alert,
            server_chain: &c.server_chain,
            client_chain: &c.client_chain,
            verdict: c.correlation.verdict,
            cert_manager: c.correlation.cert_manager.as_ref(),
            source: c.correlation.source.as_ref().and_then(|p| p.workload()),
            destination: c
                .correlation
                .destination
                .as_ref()
                .and_then(|p| p.workload()),
        }
    }

    pub(super) fn of_flow(f: &'a Flow) -> Self {
        Observation {
            time_us: f.first_us,
            client: f.client,
            server: f.server,
            sni: None,
            mesh: None,
            version: None,
            cipher: None,
            alert: None,
            server_chain: &[],
            client_chain: &[],
            verdict: None,
            cert_manager: None,
            source: f.source.as_ref().and_then(|p| p.workload()),
            destination: f.destination.as_ref().and_then(|p| p.workload()),
        }
    }
}

/// A finding with the key its finding line is deduplicated by.
#[derive(Clone)]
pub(super) struct Found {
    pub finding: Finding,
    pub dedup_key: Arc<str>,
}
