//! Ties one handshake to the inventory: who the peers are, which
//! cert-manager Certificate issued the server's certificate, and the
//! verdict (managed, stale, unmanaged, external). The findings that follow
//! from it (`cert.stale`, `cert.unmanaged`, cert-manager-aware expiry) are
//! the analysis stage's: [`Correlation::for_analysis`] hands it the facts.

use std::net::SocketAddr;

use serde::Serialize;

use super::{Identity, Index, Issued, IssuerRef, Key, Leaf, PeerKind};
use crate::analysis::correlation::{self as analysis, Verdict};
use crate::export::timefmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

/// RECORDS.md `cert_manager`, plus the current revision and renewal time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertManagerRef {
    pub certificate: ObjectRef,
    /// The revision the served certificate was issued for.
    pub revision: Option<u64>,
    pub issuer: IssuerRef,
    /// The Certificate's status.revision now (greater than `revision` when stale).
    pub current_revision: Option<u64>,
    /// The Certificate's status.renewalTime, RFC 3339.
    pub renewal_time: Option<String>,
    /// The issuer's type (`ca`, `acme`, `vault`...) and Ready condition,
    /// when the Issuer or ClusterIssuer is known.
    pub issuer_type: Option<String>,
    pub issuer_ready: Option<bool>,
}

impl CertManagerRef {
    fn from_issued(index: &Index, i: &Issued) -> Self {
        let Key { namespace, name } = i.certificate.clone();
        let issuer = index.issuer(&i.issuer, &namespace);
        CertManagerRef {
            certificate: ObjectRef { namespace, name },
            revision: i.revision,
            issuer: i.issuer.clone(),
            current_revision: i.current_revision,
            renewal_time: i.renewal_time.map(timefmt::seconds),
            issuer_type: issuer.and_then(|x| x.issuer_type.clone()),
            issuer_ready: issuer.and_then(|x| x.ready),
        }
    }
}

/// What the inventory says about one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    pub source: Identity,
    pub destination: Identity,
    /// For the server's certificate; `None` when it is not visible and
    /// cannot be inferred.
    pub verdict: Option<Verdict>,
    pub cert_manager: Option<CertManagerRef>,
    /// The issuing Certificate's renewal time and expiry (unix seconds).
    pub renewal_time: Option<i64>,
    pub not_after: Option<i64>,
    /// TLS 1.3: the certificate the server pod most likely serves.
    pub inferred: Option<Leaf>,
}

impl Correlation {
    /// cert-manager's objects are not listed yet: only "external" stands.
    pub fn without_certificates(&mut self) {
        if self.verdict != Some(Verdict::External) {
            self.verdict = None;
        }
        self.cert_manager = None;
        self.renewal_time = None;
        self.not_after = None;
        self.inferred = None;
    }
}

impl Correlation {
    /// What the findings rules read: the verdict, the workloads (pods and
    /// services; a node or an outside address is no workload), and the
    /// cert-manager Certificate with its revisions and renewal time.
    pub fn for_analysis(&self) -> analysis::Correlation {
        analysis::Correlation {
            verdict: self.verdict,
            source: workload(&self.source),
            destination: workload(&self.destination),
            cert_manager: self.cert_manager.as_ref().map(|m| analysis::CertManager {
                namespace: m.certificate.namespace.clone(),
                name: m.certificate.name.clone(),
                issuer: Some(format!("{}/{}", m.issuer.kind, m.issuer.name)),
                renewal_time: self.renewal_time,
                revision: m.revision,
                current_revision: m.current_revision,
            }),
        }
    }
}

fn workload(id: &Identity) -> Option<analysis::Workload> {
    if !matches!(id.kind, PeerKind::Pod | PeerKind::Service) {
        return None;
    }
    let (kind, name) = match (&id.workload, id.kind) {
        (Some(w), _) => (w.kind.clone(), w.name.clone()),
        (None, PeerKind::Service) => ("Service".to_string(), id.name.clone()?),
        (None, _) => ("Pod".to_string(), id.name.clone()?),
    };
    Some(analysis::Workload {
        namespace: id.namespace.clone(),
        kind: Some(kind),
        name: Some(name),
    })
}

/// The handshake facts correlation needs.
pub struct Facts<'a> {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub sni: Option<&'a str>,
    /// SHA-256 (hex) of the server's leaf, when it was seen.
    pub leaf_sha256: Option<&'a str>,
}

fn parse_fingerprint(hex_fp: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_fp, &mut out).ok()?;
    Some(out)
}

pub fn correlate(index: &Index, f: &Facts<'_>) -> Correlation {
    let source = index.identify(f.client.ip(), None);
    let destination = index.identify(f.server.ip(), Some(f.server.port()));
    let external = destination.kind == PeerKind::External;
    let leaf = f.leaf_sha256.and_then(parse_fingerprint);
    let (issued, inferred) = match leaf {
        Some(fp) => (index.issued(&fp), None),
        None => match (&destination.kind, &destination.namespace, &destination.name) {
            (PeerKind::Pod, Some(ns), Some(name)) => {
                match index.infer(&Key::new(ns, name), f.sni, f.server.ip()) {
                    Some(inf) => (Some(inf.issued), Some(inf.leaf)),
                    None => (None, None),
                }
            }
            _ => (None, None),
        },
    };
    let certificate_known = leaf.is_some() || inferred.is_some();
    // A fingerprint cert-manager issued settles it even for an address
    // the inventory does not know (a load balancer in front of a pod).
    let verdict = match (&issued, certificate_known, external) {
        (Some(i), _, _) if i.is_stale() => Some(Verdict::Stale),
        (Some(_), _, _) => Some(Verdict::Managed),
        (None, _, true) => Some(Verdict::External),
        (None, true, false) => Some(Verdict::Unmanaged),
        (None, false, false) => None,
    };
    Correlation {
        source,
        destination,
        verdict,
        cert_manager: issued
            .as_ref()
            .map(|i| CertManagerRef::from_issued(index, i)),
        renewal_time: issued.as_ref().and_then(|i| i.renewal_time),
        not_after: issued.as_ref().and_then(|i| i.not_after),
        inferred,
    }
}

/// The peers of a connection without a handshake (flow accounting's
/// plaintext flows): who they are, nothing about certificates.
pub fn peers(index: &Index, client: SocketAddr, server: SocketAddr) -> Correlation {
    Correlation {
        source: index.identify(client.ip(), None),
        destination: index.identify(server.ip(), Some(server.port())),
        verdict: None,
        cert_manager: None,
        renewal_time: None,
        not_after: None,
        inferred: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(leaf: Option<&'a str>, sni: Option<&'a str>) -> Facts<'a> {
        Facts {
            client: "10.0.0.1:40000".parse().unwrap(),
            server: "10.0.0.2:443".parse().unwrap(),
            sni,
            leaf_sha256: leaf,
        }
    }

    #[test]
    fn empty_inventory_knows_nothing_in_cluster() {
        let ix = Index::default();
        let fp = "00".repeat(32);
        let c = correlate(&ix, &facts(Some(&fp), None));
        assert_eq!(c.destination.kind, PeerKind::External);
        assert_eq!(c.verdict, Some(Verdict::External));
        let c = correlate(&ix, &facts(None, None));
        assert_eq!(c.verdict, Some(Verdict::External));
    }

    #[test]
    fn garbage_fingerprint_is_not_a_match() {
        let ix = Index::default();
        assert_eq!(parse_fingerprint("zz"), None);
        let c = correlate(&ix, &facts(Some("not hex"), None));
        assert_eq!(c.cert_manager, None);
    }
}
