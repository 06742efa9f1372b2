//! Attribute values derived from the RECORDS.md records: one place decides
//! how "not known" and "does not apply" look, for metrics and logs alike.
//!
//! - `"unknown"`: the sensor could not see it (no inventory, TLS 1.3 hides it,
//!   no ServerHello).
//! - `"none"`: seen, and absent (no ALPN chosen, no mesh, no cert-manager object).

use super::cardinality::{AttrValue, Attrs};
use crate::export::records::{Finding, FindingRecord, HandshakeRecord};
use crate::inventory::{Identity, PeerKind};
use crate::x509::CertInfo;

pub const UNKNOWN: &str = "unknown";
pub const NONE: &str = "none";

/// `tls.protocol.version` as OTel semantic conventions write it: `"1.2"`,
/// `"1.3"`; SSL 3.0 as `"ssl3"` (there is no protocol-name attribute to
/// tell it from a TLS version); other codes as RECORDS.md hex.
pub fn protocol_version(v: Option<&str>) -> String {
    match v {
        None => UNKNOWN.into(),
        Some(v) => match v.strip_prefix("TLS ") {
            Some(n) => n.to_string(),
            None if v == "SSL 3.0" => "ssl3".into(),
            None => v.to_string(),
        },
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
pub fn next_protocol(hs: &HandshakeRecord) -> String {
    match (&hs.alpn, hs.version.as_deref()) {
        (Some(a), _) => a.to_lowercase(),
        (None, None) | (None, Some("TLS 1.3")) => UNKNOWN.into(),
        (None, Some(_)) => NONE.into(),
    }
}

pub fn mesh(m: Option<&str>) -> String {
    m.unwrap_or(NONE).to_string()
}

/// `(namespace, owner)` of a RECORDS.md source/destination: the owner is
/// the workload (Deployment, StatefulSet...) or the object's own name;
/// external peers are `external`, nodes are in namespace `node`.
pub fn peer(v: Option<&Identity>) -> (String, String) {
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

pub fn verdict(hs: &HandshakeRecord) -> String {
    hs.verdict.map_or(UNKNOWN, |v| v.name()).to_string()
}

/// cert-manager `(certificate name, namespace, issuer name, issuer kind)`.
pub fn cert_manager(hs: &HandshakeRecord) -> [String; 4] {
    let Some(cm) = hs.cert_manager.as_ref() else {
        // With an inventory (a verdict) no object means none; without, unknown.
        let v = if hs.verdict.is_some() { NONE } else { UNKNOWN };
        return std::array::from_fn(|_| v.to_string());
    };
    [
        cm.certificate.name.clone(),
        cm.certificate.namespace.clone(),
        cm.issuer.name.clone(),
        cm.issuer.kind.clone(),
    ]
}

/// The first CN of an RFC 4514 string (most specific first), unescaped.
pub fn common_name(dn: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = dn.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' | '+' => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    let raw = parts
        .iter()
        .find_map(|p| p.trim().strip_prefix("CN=").map(str::to_string))?;
    Some(unescape(&raw))
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(x) => {
                    out.push(x);
                    i += 3;
                }
                None => {
                    out.push(b[i + 1]);
                    i += 2;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Validity of a certificate at `at_s` (unix seconds).
pub fn status(c: &CertInfo, at_s: i64) -> &'static str {
    if c.parse_error.is_some() {
        "unparsable"
    } else if at_s > c.not_after {
        "expired"
    } else if at_s < c.not_before {
        "not_yet_valid"
    } else {
        "valid"
    }
}

/// `tls.handshakes` attributes, exactly DESIGN.md's list.
pub fn handshake(hs: &HandshakeRecord) -> Attrs {
    let (src_ns, src_owner) = peer(hs.source.as_ref());
    let (dst_ns, dst_owner) = peer(hs.destination.as_ref());
    vec![
        (
            "tls.protocol.version",
            AttrValue::Str(protocol_version(hs.version.as_deref())),
        ),
        (
            "tls.cipher",
            AttrValue::Str(hs.cipher.clone().unwrap_or_else(|| UNKNOWN.into())),
        ),
        ("tls.next_protocol", AttrValue::Str(next_protocol(hs))),
        ("tls.mesh", AttrValue::Str(mesh(hs.mesh.as_deref()))),
        ("tls.mutual", AttrValue::Str(tri(hs.mutual))),
        ("tls.resumed", AttrValue::Str(tri(hs.resumed))),
        ("k8s.src.namespace", AttrValue::Str(src_ns)),
        ("k8s.src.owner.name", AttrValue::Str(src_owner)),
        ("k8s.dst.namespace", AttrValue::Str(dst_ns)),
        ("k8s.dst.owner.name", AttrValue::Str(dst_owner)),
        ("server.port", AttrValue::Int(hs.server.port as i64)),
    ]
}

/// Attributes of `tls.certificate.not_after` for the server's leaf.
pub fn certificate_gauge(hs: &HandshakeRecord, leaf: &CertInfo) -> Attrs {
    let (dst_ns, dst_owner) = peer(hs.destination.as_ref());
    let [cm_name, cm_ns, iss_name, iss_kind] = cert_manager(hs);
    let cn = |dn: &str| common_name(dn).unwrap_or_else(|| NONE.into());
    vec![
        ("tls.server.hash.sha256", AttrValue::str(&leaf.sha256)),
        ("tls.server.subject.cn", AttrValue::Str(cn(&leaf.subject))),
        ("tls.server.issuer.cn", AttrValue::Str(cn(&leaf.issuer))),
        (
            "tls.certificate.source",
            AttrValue::str(hs.certificate_source.unwrap_or(UNKNOWN)),
        ),
        ("tls.certificate.verdict", AttrValue::Str(verdict(hs))),
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

pub fn finding(hs: &HandshakeRecord, f: &Finding) -> Attrs {
    finding_attrs(&f.rule, &f.severity, hs.destination.as_ref())
}

/// `tls.findings` attributes of a finding line without a handshake record.
pub fn finding_line(f: &FindingRecord) -> Attrs {
    finding_attrs(&f.rule, &f.severity, f.destination.as_ref())
}

fn finding_attrs(rule: &str, severity: &str, destination: Option<&Identity>) -> Attrs {
    let (dst_ns, dst_owner) = peer(destination);
    vec![
        ("tls.finding.rule", AttrValue::str(rule)),
        ("tls.finding.severity", AttrValue::str(severity)),
        ("k8s.dst.namespace", AttrValue::Str(dst_ns)),
        ("k8s.dst.owner.name", AttrValue::Str(dst_owner)),
    ]
}

/// Bytes of one flow direction or connection, for `tls.traffic.bytes`
/// (fed by flow accounting).
#[derive(Debug, Clone)]
pub struct TrafficSample {
    pub bytes: u64,
    /// The bytes were TLS records (false: plaintext TCP).
    pub encrypted: bool,
    pub mesh: Option<String>,
    /// RECORDS.md `source` / `destination` objects, or `None` without an inventory.
    pub source: Option<Identity>,
    pub destination: Option<Identity>,
}

pub fn traffic(t: &TrafficSample) -> Attrs {
    let (src_ns, src_owner) = peer(t.source.as_ref());
    let (dst_ns, dst_owner) = peer(t.destination.as_ref());
    vec![
        ("tls.encrypted", AttrValue::Bool(t.encrypted)),
        ("tls.mesh", AttrValue::Str(mesh(t.mesh.as_deref()))),
        ("k8s.src.namespace", AttrValue::Str(src_ns)),
        ("k8s.src.owner.name", AttrValue::Str(src_owner)),
        ("k8s.dst.namespace", AttrValue::Str(dst_ns)),
        ("k8s.dst.owner.name", AttrValue::Str(dst_owner)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(protocol_version(Some("TLS 1.3")), "1.3");
        assert_eq!(protocol_version(Some("SSL 3.0")), "ssl3");
        assert_eq!(protocol_version(Some("0xFB1A")), "0xFB1A");
        assert_eq!(protocol_version(None), "unknown");
    }

    fn id(kind: PeerKind, ns: Option<&str>, name: Option<&str>, owner: Option<&str>) -> Identity {
        Identity {
            kind,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
            workload: owner.map(|o| crate::inventory::Workload {
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

    #[test]
    fn common_names() {
        assert_eq!(
            common_name("O=OTLP Test,CN=web.otlp.test").as_deref(),
            Some("web.otlp.test")
        );
        assert_eq!(
            common_name("CN=a\\,b+OU=x,O=y").as_deref(),
            Some("a,b"),
            "escaped comma and multi-valued RDN"
        );
        assert_eq!(common_name("CN=caf\\C3\\A9").as_deref(), Some("café"));
        assert_eq!(common_name("O=nobody"), None);
    }
}
