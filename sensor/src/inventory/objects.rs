//! The trimmed objects the index keeps: only what answers "who is this IP"
//! and "which cert-manager object issued this fingerprint". Both sources
//! (watches and snapshot files) hand a `DynamicObject` to [`trim`], so a
//! field is read the same way whichever way it arrived.

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use kube::api::DynamicObject;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::crds;
use super::owner::owner_workload;
use crate::model::Owner;

/// Upper bound of every list kept per object (IPs, names, ports): a
/// malformed or hostile object cannot grow the index without limit.
pub const MAX_LIST: usize = 256;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Empty for cluster-scoped objects (Nodes, ClusterIssuers, Bundles).
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Key {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}

/// The kinds the inventory follows, with where each lives in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pod,
    Service,
    EndpointSlice,
    Node,
    Certificate,
    CertificateRequest,
    Issuer,
    ClusterIssuer,
    Secret,
    Bundle,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Pod,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Node,
        Kind::Certificate,
        Kind::CertificateRequest,
        Kind::Issuer,
        Kind::ClusterIssuer,
        Kind::Secret,
        Kind::Bundle,
    ];

    /// (group, version, kind, plural)
    pub fn gvk(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Kind::Pod => ("", "v1", "Pod", "pods"),
            Kind::Service => ("", "v1", "Service", "services"),
            Kind::EndpointSlice => ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
            Kind::Node => ("", "v1", "Node", "nodes"),
            Kind::Certificate => ("cert-manager.io", "v1", "Certificate", "certificates"),
            Kind::CertificateRequest => (
                "cert-manager.io",
                "v1",
                "CertificateRequest",
                "certificaterequests",
            ),
            Kind::Issuer => ("cert-manager.io", "v1", "Issuer", "issuers"),
            Kind::ClusterIssuer => ("cert-manager.io", "v1", "ClusterIssuer", "clusterissuers"),
            Kind::Secret => ("", "v1", "Secret", "secrets"),
            Kind::Bundle => ("trust.cert-manager.io", "v1alpha1", "Bundle", "bundles"),
        }
    }

    pub fn name(self) -> &'static str {
        self.gvk().2
    }

    pub fn cluster_scoped(self) -> bool {
        matches!(self, Kind::Node | Kind::ClusterIssuer | Kind::Bundle)
    }

    /// The kind an object of `api_version`/`kind` is, if we follow it.
    /// Only the group is compared, not the version: a snapshot taken with
    /// another served version (v1beta1 Bundles) reads the same.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        Kind::ALL.into_iter().find(|k| {
            let (g, _, n, _) = k.gvk();
            g == group && n == kind
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub ips: Vec<IpAddr>,
    pub host_network: bool,
    pub node: Option<String>,
    pub service_account: Option<String>,
    pub workload: Option<Owner>,
    /// Secrets mounted as volumes, directly or through projected volumes.
    pub secrets: Vec<String>,
    /// Container ports, to tell host-network pods on one node apart.
    pub ports: Vec<u16>,
    /// Succeeded, Failed or being deleted: its IP may already be reused.
    pub finished: bool,
    /// Creation time (unix seconds); the newest pod wins a shared IP.
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Cluster IPs, external IPs and load-balancer ingress IPs.
    pub ips: Vec<IpAddr>,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSlice {
    /// The Service the slice belongs to (label kubernetes.io/service-name).
    pub service: Option<String>,
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub ips: Vec<IpAddr>,
}

pub use crate::model::IssuerRef;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub common_name: Option<String>,
    pub secret_name: Option<String>,
    pub issuer: IssuerRef,
    pub revision: Option<u64>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub renewal_time: Option<i64>,
    /// The Ready condition's status, when there is one.
    pub ready: Option<bool>,
    /// (type, status, reason) of every condition.
    pub conditions: Vec<(String, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The Certificate that asked for it (owner reference, else annotation).
    pub certificate: Option<String>,
    pub revision: Option<u64>,
    pub issuer: IssuerRef,
    /// SHA-256 and DER of the issued leaf (status.certificate).
    pub leaf: Option<Leaf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub sha256: [u8; 32],
    pub der: Arc<[u8]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    pub ready: Option<bool>,
    /// ca, selfSigned, acme, vault, venafi... (the spec key that is set).
    pub issuer_type: Option<String>,
}

/// A `kubernetes.io/tls` Secret without its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub leaf: Option<Leaf>,
    /// ca.crt as PEM text (a trust anchor for chain verification).
    pub ca_pem: Option<String>,
    /// cert-manager.io/certificate-name: the Certificate that wrote it.
    pub certificate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The inLine PEM sources (ConfigMap and Secret sources are not read).
    pub pems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Pod(Pod),
    Service(Service),
    EndpointSlice(EndpointSlice),
    Node(Node),
    Certificate(Certificate),
    CertificateRequest(CertificateRequest),
    Issuer(Issuer),
    Secret(Secret),
    Bundle(Bundle),
}

/// One trimmed object, ready for the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub kind: Kind,
    pub key: Key,
    pub body: Body,
    /// Some list was longer than [`MAX_LIST`] and was cut.
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TrimError {
    #[error("{kind} without metadata.name")]
    NoName { kind: &'static str },
    #[error("{kind} {key}: {field}: {source}")]
    Field {
        kind: &'static str,
        key: Key,
        field: &'static str,
        source: serde_json::Error,
    },
}

impl TrimError {
    /// A stable label for counting errors by cause.
    pub fn label(&self) -> &'static str {
        match self {
            TrimError::NoName { .. } => "no_name",
            TrimError::Field { .. } => "bad_field",
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            TrimError::NoName { kind } | TrimError::Field { kind, .. } => kind,
        }
    }
}

pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// Deserializes one field of the object body, absent or null as `None`.
fn field<T: DeserializeOwned>(
    data: &mut serde_json::Value,
    name: &'static str,
    kind: Kind,
    key: &Key,
) -> Result<Option<T>, TrimError> {
    match data.get_mut(name).map(serde_json::Value::take) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(|source| TrimError::Field {
                kind: kind.name(),
                key: key.clone(),
                field: name,
                source,
            }),
    }
}

/// Collects at most [`MAX_LIST`] items, noting a cut.
struct Bounded<'a> {
    truncated: &'a mut bool,
}

impl Bounded<'_> {
    fn take<T, I: IntoIterator<Item = T>>(&mut self, it: I) -> Vec<T> {
        let mut out = Vec::new();
        for x in it {
            if out.len() == MAX_LIST {
                *self.truncated = true;
                break;
            }
            out.push(x);
        }
        out
    }
}

fn unique<T: PartialEq>(mut v: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(v.len());
    for x in v.drain(..) {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn time_s(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_second()
}

/// One object read from either source: trimmed, of a kind or type the
/// index skips, or broken.
#[derive(Debug)]
pub enum Item {
    /// Boxed: an object is large next to the other two.
    Object(Box<Object>),
    Ignored(String),
    Rejected(TrimError),
}

/// The single entry of both sources: what to do with one object.
pub fn accept(kind: Kind, obj: DynamicObject) -> Item {
    if kind == Kind::Secret {
        let t = obj.data.get("type").and_then(|t| t.as_str()).unwrap_or("");
        if t != "kubernetes.io/tls" {
            return Item::Ignored(format!("Secret of type {t:?}"));
        }
    }
    match trim(kind, obj) {
        Ok(o) => Item::Object(Box::new(o)),
        Err(e) => Item::Rejected(e),
    }
}

/// Turns one object as the API (or kubectl) wrote it into what the index keeps.
pub fn trim(kind: Kind, obj: DynamicObject) -> Result<Object, TrimError> {
    let DynamicObject {
        metadata, mut data, ..
    } = obj;
    let name = metadata
        .name
        .clone()
        .ok_or(TrimError::NoName { kind: kind.name() })?;
    let namespace = if kind.cluster_scoped() {
        String::new()
    } else {
        metadata.namespace.clone().unwrap_or_default()
    };
    let key = Key::new(namespace, name);
    let mut truncated = false;
    let mut b = Bounded {
        truncated: &mut truncated,
    };
    let body = match kind {
        Kind::Pod => {
            let spec: core::PodSpec = field(&mut data, "spec", kind, &key)?.unwrap_or_default();
            let status: core::PodStatus =
                field(&mut data, "status", kind, &key)?.unwrap_or_default();
            let mut ips: Vec<IpAddr> = status
                .pod_ips
                .iter()
                .flatten()
                .filter_map(|p| parse_ip(&p.ip))
                .collect();
            // Older objects carry only podIP.
            if let Some(ip) = status.pod_ip.as_deref().and_then(parse_ip) {
                ips.insert(0, ip);
            }
            let mut secrets = Vec::new();
            for v in spec.volumes.iter().flatten() {
                if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                    secrets.push(s);
                }
                for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                    if let Some(s) = &src.secret {
                        secrets.push(s.name.clone());
                    }
                }
            }
            let ports = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .flat_map(|c| c.ports.iter().flatten())
                .filter_map(|p| u16::try_from(p.container_port).ok());
            let phase = status.phase.as_deref().unwrap_or("");
            Body::Pod(Pod {
                ips: b.take(unique(ips)),
                host_network: spec.host_network.unwrap_or(false),
                node: spec.node_name.clone(),
                service_account: spec.service_account_name.clone(),
                workload: owner_workload(&metadata),
                secrets: b.take(unique(secrets)),
                ports: b.take(unique(ports.collect())),
                finished: matches!(phase, "Succeeded" | "Failed")
                    || metadata.deletion_timestamp.is_some(),
                created: metadata.creation_timestamp.as_ref().map_or(0, time_s),
            })
        }
        Kind::Service => {
            let spec: core::ServiceSpec = field(&mut data, "spec", kind, &key)?.unwrap_or_default();
            let status: core::ServiceStatus =
                field(&mut data, "status", kind, &key)?.unwrap_or_default();
            let ips = spec
                .cluster_ip
                .iter()
                .chain(spec.cluster_ips.iter().flatten())
                .chain(spec.external_ips.iter().flatten())
                .filter_map(|s| parse_ip(s))
                .chain(
                    status
                        .load_balancer
                        .iter()
                        .flat_map(|l| l.ingress.iter().flatten())
                        .filter_map(|i| i.ip.as_deref().and_then(parse_ip)),
                );
            let ports = spec
                .ports
                .iter()
                .flatten()
                .filter_map(|p| u16::try_from(p.port).ok());
            Body::Service(Service {
                ips: b.take(unique(ips.collect())),
                ports: b.take(unique(ports.collect())),
            })
        }
        Kind::EndpointSlice => {
            let endpoints: Vec<discovery::Endpoint> =
                field(&mut data, "endpoints", kind, &key)?.unwrap_or_default();
            let ips = endpoints
                .iter()
                .flat_map(|e| e.addresses.iter())
                .filter_map(|a| parse_ip(a));
            Body::EndpointSlice(EndpointSlice {
                service: metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    .cloned(),
                ips: b.take(unique(ips.collect())),
            })
        }
        Kind::Node => {
            let status: core::NodeStatus =
                field(&mut data, "status", kind, &key)?.unwrap_or_default();
            let ips = status
                .addresses
                .iter()
                .flatten()
                .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
                .filter_map(|a| parse_ip(&a.address));
            Body::Node(Node {
                ips: b.take(unique(ips.collect())),
            })
        }
        Kind::Certificate => {
            let spec: crds::CertificateSpec =
                field(&mut data, "spec", kind, &key)?.unwrap_or_default();
            let status: crds::CertificateStatus =
                field(&mut data, "status", kind, &key)?.unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status == "True");
            Body::Certificate(Certificate {
                dns_names: b.take(spec.dns_names),
                ip_addresses: b.take(spec.ip_addresses.iter().filter_map(|s| parse_ip(s))),
                common_name: spec.common_name,
                secret_name: spec.secret_name,
                issuer: spec.issuer_ref.into(),
                revision: status.revision,
                not_before: status.not_before.as_ref().map(time_s),
                not_after: status.not_after.as_ref().map(time_s),
                renewal_time: status.renewal_time.as_ref().map(time_s),
                ready,
                conditions: b.take(
                    status
                        .conditions
                        .into_iter()
                        .map(|c| (c.type_, c.status, c.reason.unwrap_or_default())),
                ),
            })
        }
        Kind::CertificateRequest => {
            let spec: crds::CertificateRequestSpec =
                field(&mut data, "spec", kind, &key)?.unwrap_or_default();
            let status: crds::CertificateRequestStatus =
                field(&mut data, "status", kind, &key)?.unwrap_or_default();
            let annotations = metadata.annotations.as_ref();
            let owner = metadata
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.kind == "Certificate" && o.api_version.starts_with("cert-manager.io/"))
                .map(|o| o.name.clone());
            let certificate = owner.or_else(|| {
                annotations
                    .and_then(|a| a.get("cert-manager.io/certificate-name"))
                    .cloned()
            });
            let revision = annotations
                .and_then(|a| a.get("cert-manager.io/certificate-revision"))
                .and_then(|r| r.trim().parse().ok());
            Body::CertificateRequest(CertificateRequest {
                certificate,
                revision,
                issuer: spec.issuer_ref.into(),
                leaf: status.certificate.as_ref().and_then(|c| first_leaf(&c.0)),
            })
        }
        Kind::Issuer | Kind::ClusterIssuer => {
            let spec: serde_json::Map<String, serde_json::Value> =
                field(&mut data, "spec", kind, &key)?.unwrap_or_default();
            let status: crds::ConditionsStatus =
                field(&mut data, "status", kind, &key)?.unwrap_or_default();
            Body::Issuer(Issuer {
                ready: status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status == "True"),
                issuer_type: spec.keys().next().cloned(),
            })
        }
        Kind::Secret => {
            // Only the two public entries are deserialized; tls.key is
            // dropped with the rest of `data` right here.
            let secret_data: crds::TlsSecretData =
                field(&mut data, "data", kind, &key)?.unwrap_or_default();
            drop(data);
            Body::Secret(Secret {
                leaf: secret_data.tls_crt.as_ref().and_then(|c| first_leaf(&c.0)),
                ca_pem: secret_data
                    .ca_crt
                    .and_then(|c| String::from_utf8(c.0).ok())
                    .filter(|s| s.contains("-----BEGIN CERTIFICATE-----")),
                certificate: metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("cert-manager.io/certificate-name"))
                    .cloned(),
            })
        }
        Kind::Bundle => {
            let spec: crds::BundleSpec = field(&mut data, "spec", kind, &key)?.unwrap_or_default();
            Body::Bundle(Bundle {
                pems: b.take(spec.sources.into_iter().filter_map(|s| s.in_line)),
            })
        }
    };
    Ok(Object {
        kind,
        key,
        body,
        truncated,
    })
}

/// The first certificate of a PEM chain: SHA-256 and DER.
pub fn first_leaf(pem: &[u8]) -> Option<Leaf> {
    use sha2::{Digest, Sha256};
    let der = x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")?
        .contents;
    Some(Leaf {
        sha256: Sha256::digest(&der).into(),
        der: der.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynamic(v: serde_json::Value) -> DynamicObject {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pod_keeps_every_ip_secret_and_owner() {
        let o = trim(
            Kind::Pod,
            dynamic(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-7d9c8b6f5-x2x7q", "namespace": "shop",
                    "creationTimestamp": "2024-05-01T10:00:00Z",
                    "labels": {"pod-template-hash": "7d9c8b6f5"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "web-7d9c8b6f5", "uid": "u", "controller": true}]},
                "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 8443}]}],
                    "nodeName": "n1", "serviceAccountName": "web",
                    "volumes": [{"name": "tls", "secret": {"secretName": "web-tls"}},
                        {"name": "p", "projected": {"sources": [{"secret": {"name": "extra-tls"}},
                            {"serviceAccountToken": {"path": "t"}}]}}]},
                "status": {"phase": "Running", "podIP": "10.0.0.5",
                    "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
            })),
        )
        .unwrap();
        let Body::Pod(p) = o.body else { panic!() };
        assert_eq!(o.key, Key::new("shop", "web-7d9c8b6f5-x2x7q"));
        assert_eq!(
            p.ips,
            vec![
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
        assert_eq!(p.secrets, vec!["web-tls", "extra-tls"]);
        assert_eq!(p.ports, vec![8443]);
        assert_eq!(
            p.workload,
            Some(Owner {
                kind: "Deployment".into(),
                name: "web".into()
            })
        );
        assert_eq!(p.created, 1714557600);
        assert!(!p.finished);
    }

    #[test]
    fn secret_key_is_never_kept() {
        // ByteString serializes as base64, as the API writes Secret data.
        let encode = |b: &[u8]| serde_json::to_value(k8s_openapi::ByteString(b.to_vec())).unwrap();
        let o = trim(
            Kind::Secret,
            dynamic(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": "s", "namespace": "n"},
                "data": {"tls.crt": encode(b"not pem"), "tls.key": encode(b"SECRET KEY"),
                    "ca.crt": encode(b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")}
            })),
        )
        .unwrap();
        let dump = format!("{o:?}");
        assert!(!dump.contains("SECRET"), "{dump}");
        let Body::Secret(s) = o.body else { panic!() };
        assert!(s.leaf.is_none());
        assert!(s.ca_pem.is_some());
    }

    #[test]
    fn list_cut_is_flagged() {
        let names: Vec<String> = (0..MAX_LIST + 10).map(|i| format!("h{i}.test")).collect();
        let o = trim(
            Kind::Certificate,
            dynamic(serde_json::json!({
                "metadata": {"name": "c", "namespace": "n"},
                "spec": {"dnsNames": names, "secretName": "s", "issuerRef": {"name": "i"}}
            })),
        )
        .unwrap();
        assert!(o.truncated);
        let Body::Certificate(c) = o.body else {
            panic!()
        };
        assert_eq!(c.dns_names.len(), MAX_LIST);
        assert_eq!(c.issuer.kind, "Issuer");
    }

    #[test]
    fn bad_field_is_an_error_not_a_panic() {
        let e = trim(
            Kind::Pod,
            dynamic(serde_json::json!({
                "metadata": {"name": "p", "namespace": "n"},
                "spec": {"containers": "not a list"}
            })),
        )
        .unwrap_err();
        assert_eq!(e.label(), "bad_field");
        assert!(e.to_string().contains("n/p"), "{e}");
    }

    #[test]
    fn kinds_from_type_ignore_version() {
        assert_eq!(
            Kind::from_type("trust.cert-manager.io/v1beta1", "Bundle"),
            Some(Kind::Bundle)
        );
        assert_eq!(Kind::from_type("v1", "Pod"), Some(Kind::Pod));
        assert_eq!(Kind::from_type("apps/v1", "Pod"), None);
        assert_eq!(Kind::from_type("v1", "ConfigMap"), None);
    }
}
