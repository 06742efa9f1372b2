//! Ties a connection to the inventory: who the peers are, which
//! cert-manager Certificate issued the server's certificate, and the
//! verdict (managed, stale, unmanaged, external). The findings that follow
//! from it (`cert.stale`, `cert.unmanaged`, cert-manager-aware expiry) are
//! the analysis stage's, which reads the same `Correlation`.

use std::net::SocketAddr;

use super::{Index, Inventory, Issued, Key};
use crate::model::{
    CertManagerRef, Connection, Correlation, Correlator, InferredLeaf, ObjectRef, PeerKind,
    Serving, Verdict,
};

fn cert_manager_ref(index: &Index, i: &Issued) -> CertManagerRef {
    let Key { namespace, name } = i.certificate.clone();
    let issuer = index.issuer(&i.issuer, &namespace);
    CertManagerRef {
        certificate: ObjectRef { namespace, name },
        revision: i.revision,
        issuer: i.issuer.clone(),
        current_revision: i.current_revision,
        renewal_time: i.renewal_time,
        not_after: i.not_after,
        issuer_type: issuer.and_then(|x| x.issuer_type.clone()),
        issuer_ready: issuer.and_then(|x| x.ready),
    }
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
        source: Some(source),
        destination: Some(destination),
        verdict,
        cert_manager: issued.as_ref().map(|i| cert_manager_ref(index, i)),
        inferred: inferred.map(|l| InferredLeaf { der: l.der }),
    }
}

/// The peers of a connection without a handshake (flow accounting's
/// plaintext flows): who they are, nothing about certificates.
pub fn peers(index: &Index, client: SocketAddr, server: SocketAddr) -> Correlation {
    Correlation {
        source: Some(index.identify(client.ip(), None)),
        destination: Some(index.identify(server.ip(), Some(server.port()))),
        ..Correlation::default()
    }
}

/// cert-manager's objects are not listed yet: only "external" stands.
fn without_certificates(c: &mut Correlation) {
    if c.verdict != Some(Verdict::External) {
        c.verdict = None;
    }
    c.cert_manager = None;
    c.inferred = None;
}

/// Before the first lists of pods and services, nothing is said: "external"
/// would be a guess.
impl Correlator for Inventory {
    fn correlate(&self, conn: &Connection) -> Correlation {
        let ready = self.readiness();
        if !ready.peers {
            return Correlation::default();
        }
        let mut c = correlate(
            &self.read(),
            &Facts {
                client: conn.client,
                server: conn.server,
                sni: conn.handshake.sni.as_deref(),
                leaf_sha256: conn.server_leaf().map(|c| c.sha256.as_str()),
            },
        );
        if !ready.certificates {
            without_certificates(&mut c);
        }
        c
    }

    fn peers(&self, client: SocketAddr, server: SocketAddr) -> Correlation {
        if !self.readiness().peers {
            return Correlation::default();
        }
        peers(&self.read(), client, server)
    }

    fn serving(&self, server: SocketAddr, sni: Option<&str>) -> Option<Serving> {
        if !self.readiness().peers {
            return None;
        }
        let index = self.read();
        let peer = index.identify(server.ip(), Some(server.port()));
        let stamp = match (&peer.kind, &peer.namespace, &peer.name) {
            (PeerKind::Pod, Some(ns), Some(name)) => index.serving_stamp(&Key::new(ns, name), sni),
            _ => 0,
        };
        Some(Serving {
            in_cluster: peer.kind != PeerKind::External,
            node: peer.node,
            stamp,
        })
    }

    fn trust_bundles(&self) -> Vec<String> {
        self.trust_pems()
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
        assert_eq!(c.destination.unwrap().kind, PeerKind::External);
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
