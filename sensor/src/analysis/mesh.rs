//! Service-mesh classification from the ClientHello alone (SNI, offered
//! ALPN, server port), with the identity the SNI carries.

use std::borrow::Cow;

use crate::model::Connection;
pub use crate::model::{Mesh, MeshKind};

/// Istio ambient's HBONE tunnel port (ztunnel to ztunnel, mTLS over HTTP/2 CONNECT).
pub const HBONE_PORT: u16 = 15008;

const ISTIO_ALPN: [&str; 5] = [
    "istio-peer-exchange",
    "istio",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];

const LINKERD_ALPN: &str = "transport.l5d.io/v1";
const LINKERD_MARK: &str = ".serviceaccount.identity.linkerd.";

/// `outbound_.PORT_.SUBSET_.HOST` → `host:port[/subset]`.
fn istio_sni(sni: &str) -> Option<String> {
    // Most SNIs are no mesh's: a prefix test turns them away before a
    // substring searcher is built for them.
    let rest = sni.strip_prefix("outbound_.")?;
    let mut parts = rest.splitn(3, "_.");
    let port = parts.next()?;
    let subset = parts.next()?;
    let host = parts.next()?;
    if host.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match subset {
        "" | "_" => format!("{host}:{port}"),
        s => format!("{host}:{port}/{s}"),
    })
}

/// `SA.NS.serviceaccount.identity.linkerd.TRUST-DOMAIN` → `system:serviceaccount:NS:SA`.
fn linkerd_sni(sni: &str) -> Option<String> {
    // The mark holds the label `linkerd`: looking for that label first
    // spares other SNIs the substring searcher.
    if !sni.split('.').any(|label| label == "linkerd") {
        return None;
    }
    let (who, _) = sni.split_once(LINKERD_MARK)?;
    let (sa, ns) = who.rsplit_once('.')?;
    (!sa.is_empty() && !ns.is_empty()).then(|| format!("system:serviceaccount:{ns}:{sa}"))
}

fn consul_sni(sni: &str) -> Option<String> {
    let host = sni.strip_suffix(".consul")?;
    let service = host.split('.').next().filter(|s| !s.is_empty())?;
    Some(service.to_string())
}

/// Sets the connection's mesh from its ClientHello and server port.
/// Classifies the connection; a served leaf with a SPIFFE ID (a sidecar's
/// workload certificate, probed under TLS 1.3) names the mesh identity.
pub fn apply(conn: &mut Connection) {
    let hs = &conn.handshake;
    conn.mesh = classify(hs.sni.as_deref(), &hs.alpn_offered, conn.server.port());
    if let Some(m) = &mut conn.mesh
        && let Some(id) = conn
            .server_chain
            .first()
            .and_then(|leaf| leaf.san.uri.iter().find(|u| u.starts_with("spiffe://")))
    {
        m.identity = Some(id.clone());
    }
}

pub fn classify(sni: Option<&str>, alpn_offered: &[String], server_port: u16) -> Option<Mesh> {
    // Copied only when there is a capital to lower.
    let sni = sni.map(|s| {
        let s = s.trim_end_matches('.');
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(s.to_ascii_lowercase())
        } else {
            Cow::Borrowed(s)
        }
    });
    let sni = sni.as_deref();
    let offers = |p: &str| alpn_offered.iter().any(|a| a == p);
    let istio_identity = sni.and_then(istio_sni);
    if istio_identity.is_some() || ISTIO_ALPN.iter().any(|p| offers(p)) {
        return Some(Mesh {
            kind: MeshKind::Istio,
            identity: istio_identity,
        });
    }
    let linkerd_identity = sni.and_then(linkerd_sni);
    if linkerd_identity.is_some() || offers(LINKERD_ALPN) {
        return Some(Mesh {
            kind: MeshKind::Linkerd,
            identity: linkerd_identity,
        });
    }
    if let Some(service) = sni.and_then(consul_sni) {
        return Some(Mesh {
            kind: MeshKind::Consul,
            identity: Some(service),
        });
    }
    if server_port == HBONE_PORT {
        return Some(Mesh {
            kind: MeshKind::Istio,
            identity: None,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(sni: Option<&str>, alpn: &[&str], port: u16) -> Option<(MeshKind, Option<String>)> {
        let alpn: Vec<String> = alpn.iter().map(|s| s.to_string()).collect();
        classify(sni, &alpn, port).map(|m| (m.kind, m.identity))
    }

    /// A sidecar's workload certificate (probed under TLS 1.3) names the
    /// mesh identity by its SPIFFE ID; a chain without one leaves the SNI's.
    #[test]
    fn a_served_spiffe_id_names_the_mesh_identity() {
        let mut conn = Connection::new(
            "10.0.0.1:40000".parse().unwrap(),
            "10.0.0.2:15006".parse().unwrap(),
            0,
        );
        conn.handshake.sni = Some("outbound_.9080_._.reviews.default.svc.cluster.local".into());
        conn.handshake.alpn_offered = vec!["istio".into()];
        apply(&mut conn);
        let sni_identity = Some("reviews.default.svc.cluster.local:9080".to_string());
        assert_eq!(conn.mesh.as_ref().unwrap().identity, sni_identity);
        let mut leaf = crate::x509::describe(b"not parsed: only the SANs matter here");
        leaf.san.uri = vec![
            "https://example.test/".into(),
            "spiffe://cluster.local/ns/default/sa/reviews".into(),
        ];
        conn.server_chain = vec![std::sync::Arc::new(leaf)];
        apply(&mut conn);
        let m = conn.mesh.unwrap();
        assert_eq!(m.kind, MeshKind::Istio);
        assert_eq!(
            m.identity.as_deref(),
            Some("spiffe://cluster.local/ns/default/sa/reviews")
        );
    }

    #[test]
    fn istio() {
        assert_eq!(
            c(
                Some("outbound_.9080_._.reviews.default.svc.cluster.local"),
                &["istio-peer-exchange", "istio"],
                15006
            ),
            Some((
                MeshKind::Istio,
                Some("reviews.default.svc.cluster.local:9080".into())
            ))
        );
        assert_eq!(
            c(
                Some("outbound_.8080_.v2_.ratings.shop.svc.cluster.local"),
                &[],
                8080
            ),
            Some((
                MeshKind::Istio,
                Some("ratings.shop.svc.cluster.local:8080/v2".into())
            ))
        );
        assert_eq!(c(None, &["istio-h2"], 443), Some((MeshKind::Istio, None)));
        assert_eq!(c(None, &["h2"], HBONE_PORT), Some((MeshKind::Istio, None)));
    }

    #[test]
    fn linkerd() {
        assert_eq!(
            c(
                Some("web.shop.serviceaccount.identity.linkerd.cluster.local"),
                &["transport.l5d.io/v1"],
                4143
            ),
            Some((
                MeshKind::Linkerd,
                Some("system:serviceaccount:shop:web".into())
            ))
        );
        assert_eq!(
            c(Some("api.example.com"), &["transport.l5d.io/v1"], 4143),
            Some((MeshKind::Linkerd, None))
        );
        // The SNI alone names it, whatever its case and a root's dot; a
        // service account's name may hold dots of its own.
        assert_eq!(
            c(
                Some("Web.v2.Shop.ServiceAccount.identity.linkerd.cluster.local."),
                &[],
                4143
            ),
            Some((
                MeshKind::Linkerd,
                Some("system:serviceaccount:shop:web.v2".into())
            ))
        );
        assert_eq!(c(Some("linkerd.example.com"), &[], 443), None);
    }

    #[test]
    fn consul_and_none() {
        assert_eq!(
            c(Some("web.default.dc1.internal.1a2b3c.consul"), &[], 20000),
            Some((MeshKind::Consul, Some("web".into())))
        );
        assert_eq!(c(Some("www.example.com"), &["h2", "http/1.1"], 443), None);
        assert_eq!(c(None, &[], 443), None);
        // Look-alikes are not meshes.
        assert_eq!(c(Some("outbound_.x_._.a"), &[], 443), None);
        assert_eq!(c(Some("consul"), &[], 443), None);
    }
}
