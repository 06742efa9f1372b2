//! The demo's "cluster" as a `sensor run --inventory` snapshot: what
//! `kubectl get pods,nodes,certificates,certificaterequests,clusterissuers
//! -A -o yaml` would print had the pods been scheduled by Kubernetes and
//! their certificates issued by cert-manager. Only the fields the sensor
//! reads (sensor/src/inventory/objects.rs) are written, so each object stays
//! readable.
//!
//! Pods and Certificates are named after their scenario's `Kind::short`.
//! The pods sit on [`NODE`], the name the sensor is started with, so its
//! default `--probe local` probes them. Servers whose [`Kind::managed`] says
//! so mount the Secret of a Certificate whose CertificateRequests carry the
//! certificates issued for each revision; the others have none (unmanaged).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::pki::{Pair, Signer};
use super::scenarios::{Certificates, Kind};

/// The node the pods run on, passed to the sensor as `--node-name`.
pub const NODE: &str = "demo-node";
/// The pods' namespace.
pub const NAMESPACE: &str = "demo";
/// The client pod's name.
pub const CLIENT: &str = "client";

fn issuer_name(signer: Signer) -> &'static str {
    match signer {
        Signer::Root => "demo-root",
        Signer::Intermediate => "demo-intermediate",
    }
}

fn issuer_ref(signer: Signer) -> Value {
    json!({"group": "cert-manager.io", "kind": "ClusterIssuer", "name": issuer_name(signer)})
}

fn ready() -> Value {
    json!([{"type": "Ready", "status": "True", "reason": "Ready"}])
}

fn node(ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    })
}

/// A running pod on [`NODE`], mounting `secret` when given.
fn pod(name: &str, ip: &str, secret: Option<&str>) -> Value {
    let volumes: Vec<Value> = secret
        .iter()
        .map(|s| json!({"name": "tls", "secret": {"secretName": s}}))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"nodeName": NODE, "containers": [{"name": "app"}], "volumes": volumes},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

fn cluster_issuer(signer: Signer) -> Value {
    let name = issuer_name(signer);
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
        "metadata": {"name": name},
        "spec": {"ca": {"secretName": format!("{name}-ca")}},
        "status": {"conditions": ready()},
    })
}

/// A Certificate at `revision`, its dates those of `current` (the
/// certificate of that revision).
fn certificate(kind: Kind, revision: u64, signer: Signer, current: &Pair) -> Result<Value> {
    let (not_before, not_after) = current.dates()?;
    Ok(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": kind.short(), "namespace": NAMESPACE},
        "spec": {
            "dnsNames": [kind.sni()],
            "secretName": secret_name(kind),
            "issuerRef": issuer_ref(signer),
        },
        "status": {
            "revision": revision, "notBefore": not_before, "notAfter": not_after,
            "conditions": ready(),
        },
    }))
}

/// The request cert-manager made for `revision`, carrying what the issuer
/// returned: the leaf, then the intermediate when it signed.
fn request(kind: Kind, revision: u64, signer: Signer, chain_pem: &str, ca_pem: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {
            "name": format!("{}-{revision}", kind.short()),
            "namespace": NAMESPACE,
            "annotations": {
                "cert-manager.io/certificate-name": kind.short(),
                "cert-manager.io/certificate-revision": revision.to_string(),
            },
        },
        "spec": {"issuerRef": issuer_ref(signer)},
        "status": {
            "certificate": STANDARD.encode(chain_pem),
            "ca": STANDARD.encode(ca_pem),
            "conditions": ready(),
        },
    })
}

fn secret_name(kind: Kind) -> String {
    format!("{}-tls", kind.short())
}

/// The certificate issued for each revision of `kind`'s Certificate, oldest
/// first: the one served, then the renewal the server never loaded.
fn revisions(kind: Kind, certs: &Certificates) -> Vec<&Pair> {
    match kind {
        Kind::Renewed => vec![certs.leaf(kind), &certs.renewal],
        _ => vec![certs.leaf(kind)],
    }
}

/// The cert-manager objects behind `kind`'s server, if it is managed.
fn cert_manager(kind: Kind, certs: &Certificates) -> Result<Vec<Value>> {
    let Some((revision, signer)) = kind.managed() else {
        return Ok(Vec::new());
    };
    let ca_pem = certs.pki.root.pem()?;
    let revisions = revisions(kind, certs);
    debug_assert_eq!(revisions.len() as u64, revision);
    let mut out = vec![certificate(
        kind,
        revision,
        signer,
        revisions.last().expect("one at least"),
    )?];
    for (r, leaf) in (1..).zip(revisions) {
        let mut chain = leaf.pem()?;
        if signer == Signer::Intermediate {
            chain.push_str(&certs.pki.intermediate.pem()?);
        }
        out.push(request(kind, r, signer, &chain, &ca_pem));
    }
    Ok(out)
}

/// The snapshot's objects: the node, the client pod, each server's pod
/// (`servers`: its scenario and IP), the issuers, and the Certificates and
/// CertificateRequests of the managed servers.
pub fn objects(
    node_ip: &str,
    client_ip: &str,
    servers: &[(Kind, &str)],
    certs: &Certificates,
) -> Result<Vec<Value>> {
    let mut items = vec![node(node_ip), pod(CLIENT, client_ip, None)];
    for (kind, ip) in servers {
        let secret = kind.managed().map(|_| secret_name(*kind));
        items.push(pod(kind.short(), ip, secret.as_deref()));
    }
    items.extend([
        cluster_issuer(Signer::Root),
        cluster_issuer(Signer::Intermediate),
    ]);
    for (kind, _) in servers {
        items.extend(cert_manager(*kind, certs)?);
    }
    Ok(items)
}

/// Writes the objects as one `kind: List` YAML document, as kubectl does.
pub fn write(dir: &Path, items: Vec<Value>) -> Result<PathBuf> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let path = dir.join("inventory.yaml");
    let yaml = serde_norway::to_string(&list).context("inventory as YAML")?;
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::scenarios::{ALL, certificates};

    /// The renewed scenario's Certificate is at revision 2 and both of its
    /// requests carry a certificate, the served one in revision 1's; the
    /// unmanaged servers' pods mount nothing.
    #[test]
    fn renewal_has_two_revisions_and_the_file_reads_back() {
        let dir = std::env::temp_dir().join(format!("xtask-inventory-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let certs = certificates(&dir.join("pki")).unwrap();
        let servers: Vec<(Kind, String)> = ALL
            .iter()
            .map(|k| (*k, format!("10.88.0.{}", k.host())))
            .collect();
        let servers: Vec<(Kind, &str)> = servers.iter().map(|(k, ip)| (*k, ip.as_str())).collect();
        let items = objects("10.88.0.1", "10.88.0.10", &servers, &certs).unwrap();
        let path = write(&dir, items).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let list: Value = serde_norway::from_str(&text).unwrap();
        let items = list["items"].as_array().unwrap();
        let find = |kind: &str, name: &str| {
            items
                .iter()
                .find(|i| i["kind"] == kind && i["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("{kind} {name}"))
        };
        assert_eq!(find("Certificate", "renewed")["status"]["revision"], 2);
        let served = certs.leaf(Kind::Renewed).pem().unwrap();
        let carried = |name: &str| {
            let b64 = find("CertificateRequest", name)["status"]["certificate"].clone();
            String::from_utf8(STANDARD.decode(b64.as_str().unwrap()).unwrap()).unwrap()
        };
        assert_eq!(carried("renewed-1"), served);
        assert_eq!(carried("renewed-2"), certs.renewal.pem().unwrap());
        assert_ne!(carried("renewed-2"), served);
        assert_eq!(
            find("Pod", "renewed")["spec"]["volumes"][0]["secret"]["secretName"],
            "renewed-tls"
        );
        assert_eq!(find("Pod", "expired")["spec"]["volumes"], json!([]));
        assert_eq!(find("Pod", "good")["spec"]["nodeName"], NODE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
