//! Attribute values derived from the RECORDS.md records: one place decides
//! how "not known" and "does not apply" look, for metrics and logs alike.
//!
//! - `"unknown"`: the sensor could not see it (no inventory, TLS 1.3 hides it,
//!   no ServerHello).
//! - `"none"`: seen, and absent (no ALPN chosen, no mesh, no cert-manager object).

use super::cardinality::{AttrValue, Attrs};
use crate::model::{
    Certificate, Connection, Finding, FlowEnd, FlowReport, Mesh, Peer, PeerKind, ProtocolVersion,
};

pub const UNKNOWN: &str = "unknown";
pub const NONE: &str = "none";

/// `tls.protocol.version` as OTel semantic conventions write it: `"1.2"`,
/// `"1.3"`; SSL 3.0 as `"ssl3"` (there is no protocol-name attribute to
/// tell it from a TLS version); other codes as RECORDS.md hex.
pub fn protocol_version(v: Option<ProtocolVersion>) -> String {
    match v {
        None => UNKNOWN.into(),
        Some(ProtocolVersion::SSL3) => "ssl3".into(),
        Some(v) => v.number().map_or_else(|| v.to_string(), str::to_string),
    }
}

fn tri(b: Option<bool>) -> String {
    match b {
        Some(true) => "true".into(),
        Some(false) => "false".into(),
        None => UNKNOWN.into(),
    }
}

/// The ALPN protocol chosen; TLS 1.3 and a missing ServerHello hide it.
pub fn next_protocol(c: &Connection) -> String {
    let hs = &c.handshake;
    match (&hs.alpn, hs.version) {
        (Some(a), _) => a.to_lowercase(),
        (None, None) | (None, Some(ProtocolVersion::TLS13)) => UNKNOWN.into(),
        (None, Some(_)) => NONE.into(),
    }
}

pub fn mesh(m: Option<&Mesh>) -> String {
    m.map_or(NONE, |m| m.kind.name()).to_string()
}

/// `(namespace, owner)` of a RECORDS.md source/destination: the owner is
/// the workload (Deployment, StatefulSet...) or the object's own name;
/// external peers are `external`, nodes are in namespace `node`.
pub fn peer(v: Option<&Peer>) -> (String, String) {
    let Some(v) = v else {
        return (UNKNOWN.into(), UNKNOWN.into());
    };
    let kind = v.kind.name();
    let ns = v.namespace.clone().unwrap_or_else(|| match v.kind {
        PeerKind::External | PeerKind::Node => kind.to_string(),
        _ => UNKNOWN.into(),
    });
    let owner = v
        .workload
        .as_ref()
        .map(|w| w.name.clone())
        .or_else(|| v.name.clone())
        .unwrap_or_else(|| match v.kind {
            PeerKind::External => kind.to_string(),
            _ => UNKNOWN.into(),
        });
    (ns, owner)
}

pub fn verdict(c: &Connection) -> &'static str {
    c.correlation.verdict.map_or(UNKNOWN, |v| v.name())
}

/// cert-manager `(certificate name, namespace, issuer name, issuer kind)`.
pub fn cert_manager(c: &Connection) -> [String; 4] {
    let Some(cm) = c.correlation.cert_manager.as_ref() else {
        // With an inventory (a verdict) no object means none; without, unknown.
        let v = if c.correlation.verdict.is_some() {
            NONE
        } else {
            UNKNOWN
        };
        return std::array::from_fn(|_| v.to_string());
    };
    [
        cm.certificate.name.clone(),
        cm.certificate.namespace.clone(),
        cm.issuer.name.clone(),
        cm.issuer.kind.clone(),
    ]
}

/// Validity of a certificate at `at_s` (unix seconds).
pub fn status(c: &Certificate, at_s: i64) -> &'static str {
    c.status(at_s).name()
}

/// `tls.handshakes` attributes, exactly DESIGN.md's list.
pub fn handshake(c: &Connection) -> Attrs {
    let hs = &c.handshake;
    let (src_ns, src_owner) = peer(c.correlation.source.as_ref());
    let (dst_ns, dst_owner) = peer(c.correlation.destination.as_ref());
    vec![
        (
            "tls.protocol.version",
            AttrValue::Str(protocol_version(hs.version)),
        ),
        (
            "tls.cipher",
            AttrValue::Str(hs.cipher.map_or_else(|| UNKNOWN.into(), |s| s.to_string())),
        ),
        ("tls.next_protocol", AttrValue::Str(next_protocol(c))),
        ("tls.mesh", AttrValue::Str(mesh(c.mesh.as_ref()))),
        ("tls.mutual", AttrValue::Str(tri(hs.mutual))),
        ("tls.resumed", AttrValue::Str(tri(hs.resumed))),
        ("k8s.src.namespace", AttrValue::Str(src_ns)),
        ("k8s.src.owner.name", AttrValue::Str(src_owner)),
        ("k8s.dst.namespace", AttrValue::Str(dst_ns)),
        ("k8s.dst.owner.name", AttrValue::Str(dst_owner)),
        ("server.port", AttrValue::Int(c.server.port() as i64)),
    ]
}

/// Attributes of `tls.certificate.not_after` for the server's leaf.
pub fn certificate_gauge(c: &Connection, leaf: &Certificate) -> Attrs {
    let (dst_ns, dst_owner) = peer(c.correlation.destination.as_ref());
    let [cm_name, cm_ns, iss_name, iss_kind] = cert_manager(c);
    let cn = |cn: &Option<String>| cn.clone().unwrap_or_else(|| NONE.into());
    vec![
        ("tls.server.hash.sha256", AttrValue::str(&leaf.sha256)),
        (
            "tls.server.subject.cn",
            AttrValue::Str(cn(&leaf.subject_cn)),
        ),
        ("tls.server.issuer.cn", AttrValue::Str(cn(&leaf.issuer_cn))),
        (
            "tls.certificate.source",
            AttrValue::str(c.certificate_source.map_or(UNKNOWN, |s| s.name())),
        ),
        ("tls.certificate.verdict", AttrValue::str(verdict(c))),
        ("cert_manager.certificate.name", AttrValue::Str(cm_name)),
        ("cert_manager.certificate.namespace", AttrValue::Str(cm_ns)),
        ("cert_manager.issuer.name", AttrValue::Str(iss_name)),
        ("cert_manager.issuer.kind", AttrValue::Str(iss_kind)),
        ("k8s.dst.namespace", AttrValue::Str(dst_ns)),
        ("k8s.dst.owner.name", AttrValue::Str(dst_owner)),
    ]
}

/// Attributes bounded only by the series limit on the certificate gauge.
pub const CERTIFICATE_GAUGE_EXEMPT: &[&str] = &[
    "tls.server.hash.sha256",
    "tls.server.subject.cn",
    "tls.server.issuer.cn",
];

/// `tls.findings` attributes of a finding about a server.
pub fn finding(f: &Finding, destination: Option<&Peer>) -> Attrs {
    let (dst_ns, dst_owner) = peer(destination);
    vec![
        ("tls.finding.rule", AttrValue::str(f.rule.id())),
        ("tls.finding.severity", AttrValue::str(f.severity.name())),
        ("k8s.dst.namespace", AttrValue::Str(dst_ns)),
        ("k8s.dst.owner.name", AttrValue::Str(dst_owner)),
    ]
}

/// `tls.traffic.*` and `tls.connection.duration` attributes of a
/// connection's flow report; plaintext has version and mesh `none`.
pub fn traffic(r: &FlowReport) -> Attrs {
    let (src_ns, src_owner) = peer(r.source.as_ref());
    let (dst_ns, dst_owner) = peer(r.destination.as_ref());
    let tls = r.tls.as_deref();
    let version = match tls {
        Some(t) => protocol_version(t.version),
        None => NONE.into(),
    };
    vec![
        ("tls.encrypted", AttrValue::Bool(tls.is_some())),
        ("tls.protocol.version", AttrValue::Str(version)),
        (
            "tls.mesh",
            AttrValue::Str(mesh(tls.and_then(|t| t.mesh.as_ref()))),
        ),
        ("k8s.src.namespace", AttrValue::Str(src_ns)),
        ("k8s.src.owner.name", AttrValue::Str(src_owner)),
        ("k8s.dst.namespace", AttrValue::Str(dst_ns)),
        ("k8s.dst.owner.name", AttrValue::Str(dst_owner)),
        (
            "server.port",
            AttrValue::Int(r.traffic.server.port() as i64),
        ),
    ]
}

/// `tls.connections` attributes: `traffic`'s and how it ended.
pub fn connection_end(r: &FlowReport, end: FlowEnd) -> Attrs {
    let mut a = traffic(r);
    a.push(("tls.connection.end", AttrValue::str(end.name())));
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(protocol_version(Some(ProtocolVersion::TLS13)), "1.3");
        assert_eq!(protocol_version(Some(ProtocolVersion::SSL3)), "ssl3");
        assert_eq!(protocol_version(Some(ProtocolVersion(0xFB1A))), "0xFB1A");
        assert_eq!(protocol_version(None), "unknown");
    }

    fn id(kind: PeerKind, ns: Option<&str>, name: Option<&str>, owner: Option<&str>) -> Peer {
        Peer {
            kind,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            workload: owner.map(|o| crate::model::Owner {
                kind: "Deployment".into(),
                name: o.into(),
            }),
            service_account: None,
            node: None,
        }
    }

    #[test]
    fn peers() {
        assert_eq!(peer(None), ("unknown".into(), "unknown".into()));
        let pod = id(PeerKind::Pod, Some("shop"), Some("web-5d9c"), Some("web"));
        assert_eq!(peer(Some(&pod)), ("shop".into(), "web".into()));
        let svc = id(PeerKind::Service, Some("shop"), Some("api"), None);
        assert_eq!(peer(Some(&svc)), ("shop".into(), "api".into()));
        let ext = id(PeerKind::External, None, None, None);
        assert_eq!(peer(Some(&ext)), ("external".into(), "external".into()));
        let node = id(PeerKind::Node, None, Some("n1"), None);
        assert_eq!(peer(Some(&node)), ("node".into(), "n1".into()));
    }
}
