//! Kubernetes and cert-manager objects as the API server and cert-manager
//! v1 write them (field names, defaults, annotations, owner references,
//! base64 `[]byte` fields), for the fake API server and snapshot files.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub fn b64(b: &[u8]) -> String {
    STANDARD.encode(b)
}

fn uid(seed: &str) -> String {
    // Stable, distinct uids from the object's identity.
    let h = seed.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 20) & 0xfff,
        h & 0xffff_ffff_ffff
    )
}

pub fn rfc3339(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).expect("time");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub const CREATED: &str = "2026-01-12T08:30:00Z";

/// Who owns a pod, as its controller writes the reference.
pub enum Owner<'a> {
    /// Deployment `name` through ReplicaSet `name-hash`.
    Deployment(&'a str, &'a str),
    StatefulSet(&'a str),
    DaemonSet(&'a str),
    /// CronJob `name` through Job `name-scheduled`.
    CronJob(&'a str, &'a str),
    Job(&'a str),
    None,
}

pub struct PodSpec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub ips: &'a [&'a str],
    pub node: &'a str,
    pub host_ip: &'a str,
    pub service_account: &'a str,
    pub owner: Owner<'a>,
    pub secrets: &'a [&'a str],
    /// Secrets mounted through a projected volume.
    pub projected_secrets: &'a [&'a str],
    pub ports: &'a [u16],
    pub host_network: bool,
    pub phase: &'a str,
    pub created: &'a str,
}

pub fn pod(p: &PodSpec<'_>) -> Value {
    let mut labels = json!({"app.kubernetes.io/name": p.name.split('-').next().unwrap_or(p.name)});
    let (kind, owner_name, api_version) = match p.owner {
        Owner::Deployment(d, hash) => {
            labels["pod-template-hash"] = json!(hash);
            ("ReplicaSet", format!("{d}-{hash}"), "apps/v1")
        }
        Owner::StatefulSet(s) => {
            labels["statefulset.kubernetes.io/pod-name"] = json!(p.name);
            ("StatefulSet", s.to_string(), "apps/v1")
        }
        Owner::DaemonSet(d) => ("DaemonSet", d.to_string(), "apps/v1"),
        Owner::CronJob(c, t) => {
            labels["job-name"] = json!(format!("{c}-{t}"));
            ("Job", format!("{c}-{t}"), "batch/v1")
        }
        Owner::Job(j) => {
            labels["job-name"] = json!(j);
            ("Job", j.to_string(), "batch/v1")
        }
        Owner::None => ("", String::new(), ""),
    };
    let mut metadata = json!({
        "name": p.name, "namespace": p.namespace, "uid": uid(&format!("pod/{}/{}", p.namespace, p.name)),
        "creationTimestamp": p.created, "labels": labels,
    });
    if !kind.is_empty() {
        metadata["generateName"] = json!(format!("{owner_name}-"));
        metadata["ownerReferences"] = json!([{"apiVersion": api_version, "kind": kind,
            "name": owner_name, "uid": uid(&format!("{kind}/{owner_name}")),
            "controller": true, "blockOwnerDeletion": true}]);
    }
    let mut volumes: Vec<Value> = p
        .secrets
        .iter()
        .map(|s| json!({"name": format!("{s}-vol"), "secret": {"secretName": s, "defaultMode": 420}}))
        .collect();
    let mut projected = vec![
        json!({"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}),
        json!({"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}),
        json!({"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}),
    ];
    for s in p.projected_secrets {
        projected.push(json!({"secret": {"name": s, "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}]}}));
    }
    volumes.push(json!({"name": "kube-api-access-7gq2x", "projected": {"defaultMode": 420, "sources": projected}}));
    let ports: Vec<Value> = p
        .ports
        .iter()
        .map(|port| json!({"containerPort": port, "protocol": "TCP", "name": format!("p{port}")}))
        .collect();
    let mut spec = json!({
        "containers": [{"name": "app", "image": "registry.example.test/app:1.4.2",
            "imagePullPolicy": "IfNotPresent", "ports": ports,
            "resources": {}, "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "name": "kube-api-access-7gq2x", "readOnly": true}]}],
        "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": p.node,
        "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
        "schedulerName": "default-scheduler", "securityContext": {},
        "serviceAccount": p.service_account, "serviceAccountName": p.service_account,
        "terminationGracePeriodSeconds": 30,
        "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready",
            "operator": "Exists", "tolerationSeconds": 300}],
        "volumes": volumes,
    });
    if p.host_network {
        spec["hostNetwork"] = json!(true);
        spec["dnsPolicy"] = json!("ClusterFirstWithHostNet");
    }
    let pod_ips: Vec<Value> = p.ips.iter().map(|ip| json!({"ip": ip})).collect();
    let ready = if p.phase == "Running" {
        "True"
    } else {
        "False"
    };
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
        "status": {
            "conditions": [
                {"lastProbeTime": null, "lastTransitionTime": p.created, "status": "True", "type": "PodScheduled"},
                {"lastProbeTime": null, "lastTransitionTime": p.created, "status": ready, "type": "Ready"}],
            "hostIP": p.host_ip, "hostIPs": [{"ip": p.host_ip}],
            "phase": p.phase, "podIP": p.ips.first(), "podIPs": pod_ips,
            "qosClass": "BestEffort", "startTime": p.created,
        }
    })
}

pub fn service(namespace: &str, name: &str, cluster_ips: &[&str], ports: &[u16]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|p| json!({"name": format!("p{p}"), "port": p, "protocol": "TCP", "targetPort": 8443}))
        .collect();
    let families: Vec<&str> = cluster_ips
        .iter()
        .map(|ip| if ip.contains(':') { "IPv6" } else { "IPv4" })
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "uid": uid(&format!("svc/{namespace}/{name}")),
            "creationTimestamp": CREATED},
        "spec": {"clusterIP": cluster_ips[0], "clusterIPs": cluster_ips,
            "internalTrafficPolicy": "Cluster", "ipFamilies": families,
            "ipFamilyPolicy": if cluster_ips.len() > 1 { "PreferDualStack" } else { "SingleStack" },
            "ports": ports, "selector": {"app.kubernetes.io/name": name},
            "sessionAffinity": "None", "type": "ClusterIP"},
        "status": {"loadBalancer": {}}
    })
}

/// One slice of `service` with endpoints (ip, pod name or "").
pub fn endpoint_slice(
    namespace: &str,
    name: &str,
    service: &str,
    endpoints: &[(&str, &str, &str)],
    port: u16,
) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, pod, node)| {
            let mut e = json!({"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}});
            if !pod.is_empty() {
                e["nodeName"] = json!(node);
                e["targetRef"] = json!({"kind": "Pod", "name": pod, "namespace": namespace,
                    "uid": uid(&format!("pod/{namespace}/{pod}"))});
            }
            e
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "addressType": "IPv4", "endpoints": eps,
        "metadata": {"name": name, "namespace": namespace, "generateName": format!("{service}-"),
            "uid": uid(&format!("eps/{namespace}/{name}")), "creationTimestamp": CREATED,
            "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                "kubernetes.io/service-name": service},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": service,
                "uid": uid(&format!("svc/{namespace}/{service}")), "controller": true, "blockOwnerDeletion": true}]},
        "ports": [{"name": format!("p{port}"), "port": port, "protocol": "TCP"}]
    })
}

pub fn node(name: &str, internal_ips: &[&str]) -> Value {
    let mut addresses: Vec<Value> = internal_ips
        .iter()
        .map(|ip| json!({"address": ip, "type": "InternalIP"}))
        .collect();
    addresses.push(json!({"address": name, "type": "Hostname"}));
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": uid(&format!("node/{name}")), "creationTimestamp": CREATED,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"],
            "providerID": format!("kind://docker/kind/{name}")},
        "status": {"addresses": addresses,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status", "lastHeartbeatTime": CREATED,
                "lastTransitionTime": CREATED}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"kubeletVersion": "v1.33.1", "containerRuntimeVersion": "containerd://2.1.1",
                "architecture": "amd64", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "kernelVersion": "6.18.0", "kubeProxyVersion": "", "machineID": "m", "systemUUID": "s", "bootID": "b"}}
    })
}

pub fn cluster_issuer(name: &str, ca_secret: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
        "metadata": {"name": name, "uid": uid(&format!("ci/{name}")), "generation": 1, "creationTimestamp": CREATED},
        "spec": {"ca": {"secretName": ca_secret}},
        "status": {"conditions": [{"lastTransitionTime": CREATED, "message": "Signing CA verified",
            "observedGeneration": 1, "reason": "KeyPairVerified", "status": "True", "type": "Ready"}]}
    })
}

pub fn issuer_self_signed(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
        "metadata": {"name": name, "namespace": namespace, "uid": uid(&format!("i/{namespace}/{name}")),
            "generation": 1, "creationTimestamp": CREATED},
        "spec": {"selfSigned": {}},
        "status": {"conditions": [{"lastTransitionTime": CREATED, "observedGeneration": 1,
            "reason": "IsReady", "status": "True", "type": "Ready"}]}
    })
}

pub struct CertSpec<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub dns: &'a [&'a str],
    pub secret: &'a str,
    pub issuer: (&'a str, &'a str),
    pub revision: u64,
    pub not_before: i64,
    pub not_after: i64,
    pub renewal_time: i64,
    /// cert-manager's last renewal attempt failed.
    pub renewal_failed: bool,
}

pub fn certificate(c: &CertSpec<'_>) -> Value {
    let mut conditions = vec![json!({"lastTransitionTime": rfc3339(c.not_before),
        "message": "Certificate is up to date and has not expired", "observedGeneration": 1,
        "reason": "Ready", "status": "True", "type": "Ready"})];
    if c.renewal_failed {
        conditions.push(json!({"lastTransitionTime": rfc3339(c.renewal_time),
            "message": "The certificate request has failed to complete and will be retried: the CA refused",
            "observedGeneration": 1, "reason": "Failed", "status": "False", "type": "Issuing"}));
    }
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": c.name, "namespace": c.namespace, "generation": 1,
            "uid": uid(&format!("cert/{}/{}", c.namespace, c.name)), "creationTimestamp": CREATED},
        "spec": {"dnsNames": c.dns, "duration": "2160h0m0s", "renewBefore": "360h0m0s",
            "issuerRef": {"group": "cert-manager.io", "kind": c.issuer.0, "name": c.issuer.1},
            "privateKey": {"algorithm": "RSA", "encoding": "PKCS1", "rotationPolicy": "Always", "size": 2048},
            "revisionHistoryLimit": 3, "secretName": c.secret, "usages": ["digital signature", "key encipherment"]},
        "status": {"conditions": conditions, "notAfter": rfc3339(c.not_after),
            "notBefore": rfc3339(c.not_before), "renewalTime": rfc3339(c.renewal_time),
            "revision": c.revision}
    })
}

pub struct RequestSpec<'a> {
    pub namespace: &'a str,
    /// The generated name (cert-manager: `<certificate>-<random>`).
    pub name: &'a str,
    pub certificate: &'a str,
    pub revision: u64,
    pub issuer: (&'a str, &'a str),
    pub csr_pem: &'a str,
    /// Leaf then intermediates, PEM.
    pub chain_pem: &'a str,
    pub ca_pem: &'a str,
    pub issued_at: i64,
}

pub fn certificate_request(r: &RequestSpec<'_>) -> Value {
    let at = rfc3339(r.issued_at);
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": r.name, "namespace": r.namespace, "generateName": format!("{}-", r.certificate),
            "generation": 1, "uid": uid(&format!("cr/{}/{}", r.namespace, r.name)), "creationTimestamp": at,
            "annotations": {"cert-manager.io/certificate-name": r.certificate,
                "cert-manager.io/certificate-revision": r.revision.to_string(),
                "cert-manager.io/private-key-secret-name": format!("{}-pk{}", r.certificate, r.revision)},
            "labels": {"app.kubernetes.io/managed-by": "cert-manager"},
            "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "blockOwnerDeletion": true,
                "controller": true, "kind": "Certificate", "name": r.certificate,
                "uid": uid(&format!("cert/{}/{}", r.namespace, r.certificate))}]},
        "spec": {"duration": "2160h0m0s",
            "extra": {"authentication.kubernetes.io/pod-name": ["cert-manager-6d5b9c7f8-pq4lz"]},
            "groups": ["system:serviceaccounts", "system:serviceaccounts:cert-manager", "system:authenticated"],
            "issuerRef": {"group": "cert-manager.io", "kind": r.issuer.0, "name": r.issuer.1},
            "request": b64(r.csr_pem.as_bytes()), "uid": "4f7a1c2e-0d3b-4e5f-9a8b-7c6d5e4f3a2b",
            "usages": ["digital signature", "key encipherment"],
            "username": "system:serviceaccount:cert-manager:cert-manager"},
        "status": {"ca": b64(r.ca_pem.as_bytes()), "certificate": b64(r.chain_pem.as_bytes()),
            "conditions": [
                {"lastTransitionTime": at, "message": "Certificate request has been approved by cert-manager.io",
                    "reason": "cert-manager.io", "status": "True", "type": "Approved"},
                {"lastTransitionTime": at, "message": "Certificate fetched from issuer successfully",
                    "reason": "Issued", "status": "True", "type": "Ready"}]}
    })
}

pub fn bundle(name: &str, pem: &str) -> Value {
    json!({
        "apiVersion": "trust.cert-manager.io/v1alpha1", "kind": "Bundle",
        "metadata": {"name": name, "uid": uid(&format!("bundle/{name}")), "generation": 1, "creationTimestamp": CREATED},
        "spec": {"sources": [{"useDefaultCAs": false}, {"inLine": pem}],
            "target": {"configMap": {"key": "trust-bundle.pem"}}},
        "status": {"conditions": [{"lastTransitionTime": CREATED, "message": "Successfully synced Bundle to all namespaces",
            "observedGeneration": 1, "reason": "Synced", "status": "True", "type": "Synced"}]}
    })
}

/// A TLS Secret as cert-manager writes it, private key included.
pub fn tls_secret(
    namespace: &str,
    name: &str,
    certificate: &str,
    issuer: (&str, &str),
    crt: &str,
    key: &str,
    ca: &str,
) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace, "uid": uid(&format!("secret/{namespace}/{name}")),
            "creationTimestamp": CREATED,
            "annotations": {"cert-manager.io/certificate-name": certificate,
                "cert-manager.io/issuer-group": "cert-manager.io", "cert-manager.io/issuer-kind": issuer.0,
                "cert-manager.io/issuer-name": issuer.1, "cert-manager.io/common-name": "",
                "cert-manager.io/uri-sans": ""},
            "labels": {"controller.cert-manager.io/fao": "true"}},
        "data": {"ca.crt": b64(ca.as_bytes()), "tls.crt": b64(crt.as_bytes()), "tls.key": b64(key.as_bytes())}
    })
}
