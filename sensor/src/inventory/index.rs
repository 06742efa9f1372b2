//! The one index both sources feed: trimmed objects by kind and key, plus
//! the lookups built from them (IP → claimants, fingerprint → issuers,
//! Secret → Certificates, Certificate → its CertificateRequests).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use super::objects::{
    Body, Certificate, CertificateRequest, Issuer, IssuerRef, Key, Kind, Leaf, Object, Pod,
};
use crate::model::{Peer, PeerKind};

#[derive(Debug, Clone)]
pub struct Limits {
    /// Objects of all kinds kept at once; past it new objects are dropped
    /// (and counted) until others are deleted.
    pub max_objects: usize,
    /// Fingerprints of deleted CertificateRequests remembered (oldest
    /// forgotten first): cert-manager prunes old requests
    /// (revisionHistoryLimit), yet their certificates may still be served.
    pub max_retired: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_objects: 1_000_000,
            max_retired: 100_000,
        }
    }
}

fn pod_peer(key: &Key, p: &Pod) -> Peer {
    Peer {
        kind: PeerKind::Pod,
        namespace: Some(key.namespace.clone()),
        name: Some(key.name.clone()),
        workload: p.workload.clone(),
        service_account: p.service_account.clone(),
        node: p.node.clone(),
    }
}

fn node_peer(name: &str) -> Peer {
    Peer {
        kind: PeerKind::Node,
        name: Some(name.to_string()),
        node: Some(name.to_string()),
        ..Peer::external()
    }
}

fn service_peer(namespace: &str, name: &str) -> Peer {
    Peer {
        kind: PeerKind::Service,
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        ..Peer::external()
    }
}

/// Which cert-manager Certificate issued a certificate, and which revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub certificate: Key,
    /// The revision this certificate was issued for.
    pub revision: Option<u64>,
    /// The Certificate's current status.revision.
    pub current_revision: Option<u64>,
    pub issuer: IssuerRef,
    /// The Certificate object itself is known (not only its requests).
    pub certificate_known: bool,
    pub renewal_time: Option<i64>,
    pub not_after: Option<i64>,
    /// Where the fingerprint was found: a CertificateRequest or a Secret.
    pub via: Kind,
}

impl Issued {
    /// cert-manager issued a newer revision than this one.
    pub fn is_stale(&self) -> bool {
        matches!((self.revision, self.current_revision), (Some(r), Some(c)) if r < c)
    }
}

/// The certificate a pod most likely serves when it cannot be seen (TLS 1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inferred {
    pub leaf: Leaf,
    pub issued: Issued,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexStats {
    pub objects: BTreeMap<Kind, usize>,
    /// New objects refused because `max_objects` was reached.
    pub objects_dropped: u64,
    /// Objects whose lists were cut to objects::MAX_LIST.
    pub objects_truncated: u64,
    /// Objects that could not be read, by cause.
    pub objects_rejected: BTreeMap<String, u64>,
    /// Objects removed because a relist no longer had them.
    pub relist_removed: u64,
    /// Certificates of deleted CertificateRequests still recognised.
    pub retired_fingerprints: usize,
    /// Retired fingerprints forgotten because `max_retired` was reached.
    pub retired_dropped: u64,
}

struct Stored {
    body: Body,
    /// The relist generation that last saw it.
    generation: u64,
}

type Claims = Vec<(Kind, Arc<Key>)>;

/// What a deleted CertificateRequest had issued.
struct Retired {
    certificate: Key,
    revision: Option<u64>,
    issuer: IssuerRef,
}

#[derive(Default)]
pub struct Index {
    limits: Limits,
    tables: BTreeMap<Kind, HashMap<Arc<Key>, Stored>>,
    total: usize,
    generation: BTreeMap<Kind, u64>,
    by_ip: HashMap<IpAddr, Claims>,
    by_fingerprint: HashMap<[u8; 32], Claims>,
    /// (namespace, secretName) → Certificates writing that Secret.
    by_secret: HashMap<Key, Vec<Arc<Key>>>,
    /// (namespace, certificate name) → its CertificateRequests.
    requests_of: HashMap<Key, Vec<Arc<Key>>>,
    retired: HashMap<[u8; 32], Retired>,
    retired_order: VecDeque<[u8; 32]>,
    stats: IndexStats,
    warned_full: bool,
}

fn add_claim<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Claims>,
    k: K,
    kind: Kind,
    key: &Arc<Key>,
) {
    let v = map.entry(k).or_default();
    if !v.iter().any(|(kk, x)| *kk == kind && x == key) {
        v.push((kind, key.clone()));
    }
}

fn drop_claim<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Claims>, k: &K, kind: Kind, key: &Key) {
    if let Some(v) = map.get_mut(k) {
        v.retain(|(kk, x)| !(*kk == kind && **x == *key));
        if v.is_empty() {
            map.remove(k);
        }
    }
}

fn add_ref(map: &mut HashMap<Key, Vec<Arc<Key>>>, k: Key, key: &Arc<Key>) {
    let v = map.entry(k).or_default();
    if !v.contains(key) {
        v.push(key.clone());
    }
}

fn drop_ref(map: &mut HashMap<Key, Vec<Arc<Key>>>, k: &Key, key: &Key) {
    if let Some(v) = map.get_mut(k) {
        v.retain(|x| **x != *key);
        if v.is_empty() {
            map.remove(k);
        }
    }
}

/// TLS host name matching: the strict RFC 6125 matcher the certificate
/// checks use, so the inventory and the findings agree on what a name covers.
pub use crate::x509::names::name_covers;

impl Index {
    pub fn new(limits: Limits) -> Self {
        Index {
            limits,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn get(&self, kind: Kind, key: &Key) -> Option<&Body> {
        self.tables.get(&kind)?.get(key).map(|s| &s.body)
    }

    fn pod(&self, key: &Key) -> Option<&Pod> {
        match self.get(Kind::Pod, key)? {
            Body::Pod(p) => Some(p),
            _ => None,
        }
    }

    pub fn certificate(&self, key: &Key) -> Option<&Certificate> {
        match self.get(Kind::Certificate, key)? {
            Body::Certificate(c) => Some(c),
            _ => None,
        }
    }

    /// The Issuer or ClusterIssuer an issuerRef in `namespace` names
    /// (cert-manager.io issuers only; external issuers are not followed).
    pub fn issuer(&self, r: &IssuerRef, namespace: &str) -> Option<&Issuer> {
        if !r.group.is_empty() {
            return None;
        }
        let (kind, key) = match r.kind.as_str() {
            "ClusterIssuer" => (Kind::ClusterIssuer, Key::new("", &r.name)),
            "Issuer" => (Kind::Issuer, Key::new(namespace, &r.name)),
            _ => return None,
        };
        match self.get(kind, &key)? {
            Body::Issuer(i) => Some(i),
            _ => None,
        }
    }

    fn request(&self, key: &Key) -> Option<&CertificateRequest> {
        match self.get(Kind::CertificateRequest, key)? {
            Body::CertificateRequest(r) => Some(r),
            _ => None,
        }
    }

    /// Adds or replaces one object.
    pub fn apply(&mut self, obj: Object) {
        if obj.truncated {
            self.stats.objects_truncated += 1;
        }
        let generation = self.generation.get(&obj.kind).copied().unwrap_or(0);
        let table = self.tables.entry(obj.kind).or_default();
        let key = match table.get_key_value(&obj.key) {
            Some((k, _)) => k.clone(),
            None => {
                if self.total >= self.limits.max_objects {
                    self.stats.objects_dropped += 1;
                    if !self.warned_full {
                        self.warned_full = true;
                        tracing::warn!(
                            max = self.limits.max_objects,
                            "inventory full: new objects are dropped (counted in objects_dropped)"
                        );
                    }
                    return;
                }
                self.total += 1;
                Arc::new(obj.key)
            }
        };
        let old = self.tables.get_mut(&obj.kind).and_then(|t| t.remove(&key));
        if let Some(old) = old {
            self.unlink(obj.kind, &key, &old.body);
        }
        self.link(obj.kind, &key, &obj.body);
        self.tables.entry(obj.kind).or_default().insert(
            key,
            Stored {
                body: obj.body,
                generation,
            },
        );
    }

    /// Removes one object, if present.
    pub fn delete(&mut self, kind: Kind, key: &Key) {
        let Some(table) = self.tables.get_mut(&kind) else {
            return;
        };
        if let Some((k, old)) = table.remove_entry(key) {
            self.total -= 1;
            self.unlink(kind, &k, &old.body);
            if let Body::CertificateRequest(r) = old.body
                && let (Some(leaf), Some(cert)) = (r.leaf, r.certificate)
            {
                self.retire(
                    leaf.sha256,
                    Retired {
                        certificate: Key::new(&k.namespace, cert),
                        revision: r.revision,
                        issuer: r.issuer,
                    },
                );
            }
        }
    }

    fn retire(&mut self, sha256: [u8; 32], r: Retired) {
        if self.limits.max_retired == 0 {
            self.stats.retired_dropped += 1;
            return;
        }
        if self.retired.insert(sha256, r).is_none() {
            self.retired_order.push_back(sha256);
        }
        while self.retired.len() > self.limits.max_retired {
            let Some(oldest) = self.retired_order.pop_front() else {
                break;
            };
            self.retired.remove(&oldest);
            self.stats.retired_dropped += 1;
        }
    }

    /// A fresh list of `kind` starts: what it does not repeat goes at the end.
    pub fn begin_relist(&mut self, kind: Kind) {
        *self.generation.entry(kind).or_default() += 1;
    }

    /// The list is complete: drops objects of `kind` it did not contain.
    pub fn end_relist(&mut self, kind: Kind) -> usize {
        let generation = self.generation.get(&kind).copied().unwrap_or(0);
        let gone: Vec<Arc<Key>> = self
            .tables
            .get(&kind)
            .into_iter()
            .flat_map(|t| t.iter())
            .filter(|(_, s)| s.generation < generation)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            self.delete(kind, k);
        }
        self.stats.relist_removed += gone.len() as u64;
        gone.len()
    }

    pub fn note_rejected(&mut self, label: &str) {
        *self
            .stats
            .objects_rejected
            .entry(label.to_string())
            .or_default() += 1;
    }

    fn link(&mut self, kind: Kind, key: &Arc<Key>, body: &Body) {
        match body {
            Body::Pod(p) => p
                .ips
                .iter()
                .for_each(|ip| add_claim(&mut self.by_ip, *ip, kind, key)),
            Body::Service(s) => s
                .ips
                .iter()
                .for_each(|ip| add_claim(&mut self.by_ip, *ip, kind, key)),
            Body::EndpointSlice(s) => s
                .ips
                .iter()
                .for_each(|ip| add_claim(&mut self.by_ip, *ip, kind, key)),
            Body::Node(n) => n
                .ips
                .iter()
                .for_each(|ip| add_claim(&mut self.by_ip, *ip, kind, key)),
            Body::Certificate(c) => {
                if let Some(s) = &c.secret_name {
                    add_ref(&mut self.by_secret, Key::new(&key.namespace, s), key);
                }
            }
            Body::CertificateRequest(r) => {
                if let Some(l) = &r.leaf {
                    add_claim(&mut self.by_fingerprint, l.sha256, kind, key);
                }
                if let Some(c) = &r.certificate {
                    add_ref(&mut self.requests_of, Key::new(&key.namespace, c), key);
                }
            }
            Body::Secret(s) => {
                if let Some(l) = &s.leaf {
                    add_claim(&mut self.by_fingerprint, l.sha256, kind, key);
                }
            }
            Body::Issuer(_) | Body::Bundle(_) => {}
        }
    }

    fn unlink(&mut self, kind: Kind, key: &Key, body: &Body) {
        let ips = match body {
            Body::Pod(p) => &p.ips[..],
            Body::Service(s) => &s.ips[..],
            Body::EndpointSlice(s) => &s.ips[..],
            Body::Node(n) => &n.ips[..],
            _ => &[],
        };
        for ip in ips {
            drop_claim(&mut self.by_ip, ip, kind, key);
        }
        match body {
            Body::Certificate(c) => {
                if let Some(s) = &c.secret_name {
                    drop_ref(&mut self.by_secret, &Key::new(&key.namespace, s), key);
                }
            }
            Body::CertificateRequest(r) => {
                if let Some(l) = &r.leaf {
                    drop_claim(&mut self.by_fingerprint, &l.sha256, kind, key);
                }
                if let Some(c) = &r.certificate {
                    drop_ref(&mut self.requests_of, &Key::new(&key.namespace, c), key);
                }
            }
            Body::Secret(s) => {
                if let Some(l) = &s.leaf {
                    drop_claim(&mut self.by_fingerprint, &l.sha256, kind, key);
                }
            }
            _ => {}
        }
    }

    /// Who `ip` is. `port` (the server side's) tells host-network pods on
    /// one node apart by their container ports.
    pub fn identify(&self, ip: IpAddr, port: Option<u16>) -> Peer {
        let Some(claims) = self.by_ip.get(&ip) else {
            return Peer::external();
        };
        // A pod IP can be reused while the old pod's object lingers
        // (Completed, Terminating): the newest live pod wins.
        let mut best: Option<(&Key, &Pod)> = None;
        let mut host_pods: Vec<(&Key, &Pod)> = Vec::new();
        for (kind, key) in claims {
            if *kind != Kind::Pod {
                continue;
            }
            let Some(p) = self.pod(key) else { continue };
            if p.host_network {
                host_pods.push((key, p));
                continue;
            }
            let better = best.is_none_or(|(bk, b)| {
                (!p.finished, p.created, &**key) > (!b.finished, b.created, bk)
            });
            if better {
                best = Some((key, p));
            }
        }
        if let Some((k, p)) = best {
            return pod_peer(k, p);
        }
        if let Some((_, key)) = claims.iter().find(|(k, _)| *k == Kind::Service) {
            return service_peer(&key.namespace, &key.name);
        }
        if let Some(port) = port
            && let Some((k, p)) = host_pods
                .iter()
                .filter(|(_, p)| !p.finished && p.ports.contains(&port))
                .min_by_key(|(k, _)| *k)
        {
            return pod_peer(k, p);
        }
        if let Some((_, key)) = claims.iter().find(|(k, _)| *k == Kind::Node) {
            return node_peer(&key.name);
        }
        // Host-network pods without a visible Node object still name it.
        if let Some(node) = host_pods.iter().find_map(|(_, p)| p.node.as_deref()) {
            return node_peer(node);
        }
        // An endpoint of a Service that is not a pod we know (a
        // selector-less Service pointing outside, a control-plane endpoint).
        for (kind, key) in claims {
            if *kind == Kind::EndpointSlice
                && let Some(Body::EndpointSlice(s)) = self.get(Kind::EndpointSlice, key)
            {
                let name = s.service.as_deref().unwrap_or(&key.name);
                return service_peer(&key.namespace, name);
            }
        }
        Peer::external()
    }

    fn issued_by_request(&self, key: &Key, r: &CertificateRequest) -> Option<Issued> {
        let name = r.certificate.as_ref()?;
        let cert_key = Key::new(&key.namespace, name);
        let cert = self.certificate(&cert_key);
        Some(Issued {
            revision: r.revision,
            current_revision: cert.and_then(|c| c.revision),
            issuer: r.issuer.clone(),
            certificate_known: cert.is_some(),
            renewal_time: cert.and_then(|c| c.renewal_time),
            not_after: cert.and_then(|c| c.not_after),
            via: Kind::CertificateRequest,
            certificate: cert_key,
        })
    }

    fn issued_by_secret(&self, key: &Key, name: &str) -> Issued {
        let cert_key = Key::new(&key.namespace, name);
        let cert = self.certificate(&cert_key);
        // A Secret always holds cert-manager's latest issuance.
        let current = cert.and_then(|c| c.revision);
        Issued {
            revision: current,
            current_revision: current,
            issuer: cert.map(|c| c.issuer.clone()).unwrap_or(IssuerRef {
                kind: "Issuer".into(),
                name: String::new(),
                group: String::new(),
            }),
            certificate_known: cert.is_some(),
            renewal_time: cert.and_then(|c| c.renewal_time),
            not_after: cert.and_then(|c| c.not_after),
            via: Kind::Secret,
            certificate: cert_key,
        }
    }

    /// The cert-manager Certificate behind a fingerprint, if any.
    pub fn issued(&self, sha256: &[u8; 32]) -> Option<Issued> {
        let claims = self.by_fingerprint.get(sha256).map_or(&[][..], |c| &c[..]);
        let from_requests = claims
            .iter()
            .filter(|(k, _)| *k == Kind::CertificateRequest)
            .filter_map(|(_, key)| self.issued_by_request(key, self.request(key)?))
            .max_by_key(|i| i.revision);
        from_requests
            .or_else(|| {
                claims
                    .iter()
                    .find_map(|(kind, key)| match self.get(*kind, key) {
                        Some(Body::Secret(s)) => {
                            let name = s.certificate.as_deref()?;
                            Some(self.issued_by_secret(key, name))
                        }
                        _ => None,
                    })
            })
            .or_else(|| self.issued_by_retired(sha256))
    }

    /// A pruned request's certificate counts only while its Certificate
    /// exists: then a newer revision exists too, and it is stale.
    fn issued_by_retired(&self, sha256: &[u8; 32]) -> Option<Issued> {
        let r = self.retired.get(sha256)?;
        let cert = self.certificate(&r.certificate)?;
        Some(Issued {
            certificate: r.certificate.clone(),
            revision: r.revision,
            current_revision: cert.revision,
            issuer: r.issuer.clone(),
            certificate_known: true,
            renewal_time: cert.renewal_time,
            not_after: cert.not_after,
            via: Kind::CertificateRequest,
        })
    }

    /// The certificate of the current revision of Certificate `key`.
    fn current_leaf(&self, key: &Key, cert: &Certificate) -> Option<Leaf> {
        let want = cert.revision?;
        self.requests_of
            .get(key)?
            .iter()
            .filter_map(|k| self.request(k))
            .find(|r| r.revision == Some(want))
            .and_then(|r| r.leaf.clone())
    }

    /// TLS 1.3 hides the certificate: when the server pod mounts a Secret
    /// that a Certificate covering the SNI (or the server IP, without SNI)
    /// writes, that Certificate's current certificate is the likely one.
    pub fn infer(&self, pod_key: &Key, sni: Option<&str>, server_ip: IpAddr) -> Option<Inferred> {
        let pod = self.pod(pod_key)?;
        for secret in &pod.secrets {
            let secret_key = Key::new(&pod_key.namespace, secret);
            for cert_key in self.by_secret.get(&secret_key).into_iter().flatten() {
                let Some(cert) = self.certificate(cert_key) else {
                    continue;
                };
                let covers = match sni {
                    Some(host) => cert
                        .dns_names
                        .iter()
                        .chain(cert.common_name.iter())
                        .any(|n| name_covers(n, host)),
                    None => cert.ip_addresses.contains(&server_ip),
                };
                if !covers {
                    continue;
                }
                let from_secret = || match self.get(Kind::Secret, &secret_key) {
                    Some(Body::Secret(s)) => s.leaf.clone(),
                    _ => None,
                };
                let Some(leaf) = self.current_leaf(cert_key, cert).or_else(from_secret) else {
                    continue;
                };
                let issued = Issued {
                    certificate: (**cert_key).clone(),
                    revision: cert.revision,
                    current_revision: cert.revision,
                    issuer: cert.issuer.clone(),
                    certificate_known: true,
                    renewal_time: cert.renewal_time,
                    not_after: cert.not_after,
                    via: Kind::Certificate,
                };
                return Some(Inferred { leaf, issued });
            }
        }
        None
    }

    /// A value that changes when pod `pod_key` is replaced or a
    /// Certificate it mounts (covering `sni`, when given) gets a new
    /// revision: what the pod serves may have changed then.
    pub fn serving_stamp(&self, pod_key: &Key, sni: Option<&str>) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let Some(pod) = self.pod(pod_key) else {
            return 0;
        };
        pod.created.hash(&mut h);
        pod.ips.hash(&mut h);
        for secret in &pod.secrets {
            let secret_key = Key::new(&pod_key.namespace, secret);
            for cert_key in self.by_secret.get(&secret_key).into_iter().flatten() {
                let Some(cert) = self.certificate(cert_key) else {
                    continue;
                };
                let covers = sni.is_none_or(|host| {
                    cert.dns_names
                        .iter()
                        .chain(cert.common_name.iter())
                        .any(|n| name_covers(n, host))
                });
                if covers {
                    cert_key.hash(&mut h);
                    cert.revision.hash(&mut h);
                }
            }
        }
        h.finish()
    }

    /// PEM trust anchors the cluster publishes: trust-manager Bundles'
    /// inline sources and TLS Secrets' ca.crt, without duplicates.
    pub fn trust_pems(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (kind, table) in &self.tables {
            for s in table.values() {
                let pems: Vec<&String> = match (&s.body, kind) {
                    (Body::Bundle(b), _) => b.pems.iter().collect(),
                    (Body::Secret(sec), _) => sec.ca_pem.iter().collect(),
                    _ => continue,
                };
                for p in pems {
                    if seen.insert(p.as_str()) {
                        out.push(p.clone());
                    }
                }
            }
        }
        out
    }

    pub fn stats(&self) -> IndexStats {
        let mut s = self.stats.clone();
        s.retired_fingerprints = self.retired.len();
        s.objects = self
            .tables
            .iter()
            .map(|(k, t)| (*k, t.len()))
            .filter(|(_, n)| *n > 0)
            .collect();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::objects::{EndpointSlice, Node, Secret, Service};

    fn pod(ns: &str, name: &str, ip: &str, created: i64, finished: bool) -> Object {
        Object {
            kind: Kind::Pod,
            key: Key::new(ns, name),
            body: Body::Pod(Pod {
                ips: vec![ip.parse().unwrap()],
                host_network: false,
                node: Some("n1".into()),
                service_account: Some("sa".into()),
                workload: None,
                secrets: vec!["tls".into()],
                ports: vec![],
                finished,
                created,
            }),
            truncated: false,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn leaf(b: u8) -> Leaf {
        Leaf {
            sha256: [b; 32],
            der: Arc::from(vec![b]),
        }
    }

    fn cert(ns: &str, name: &str, revision: u64, dns: &[&str]) -> Object {
        Object {
            kind: Kind::Certificate,
            key: Key::new(ns, name),
            body: Body::Certificate(Certificate {
                dns_names: dns.iter().map(|s| s.to_string()).collect(),
                ip_addresses: vec![],
                common_name: None,
                secret_name: Some("tls".into()),
                issuer: IssuerRef {
                    kind: "ClusterIssuer".into(),
                    name: "ca".into(),
                    group: String::new(),
                },
                revision: Some(revision),
                not_before: None,
                not_after: Some(2_000_000_000),
                renewal_time: Some(1_900_000_000),
                ready: Some(true),
                conditions: vec![],
            }),
            truncated: false,
        }
    }

    fn request(ns: &str, cert: &str, revision: u64, fp: u8) -> Object {
        Object {
            kind: Kind::CertificateRequest,
            key: Key::new(ns, format!("{cert}-{revision}")),
            body: Body::CertificateRequest(CertificateRequest {
                certificate: Some(cert.into()),
                revision: Some(revision),
                issuer: IssuerRef {
                    kind: "ClusterIssuer".into(),
                    name: "ca".into(),
                    group: String::new(),
                },
                leaf: Some(leaf(fp)),
            }),
            truncated: false,
        }
    }

    #[test]
    fn reused_pod_ip_goes_to_the_live_newest_pod() {
        let mut ix = Index::default();
        ix.apply(pod("a", "old", "10.0.0.1", 100, false));
        assert_eq!(
            ix.identify(ip("10.0.0.1"), None).name.as_deref(),
            Some("old")
        );
        ix.apply(pod("a", "new", "10.0.0.1", 200, false));
        assert_eq!(
            ix.identify(ip("10.0.0.1"), None).name.as_deref(),
            Some("new")
        );
        // The newer one completed: the older live one holds the IP.
        ix.apply(pod("a", "new", "10.0.0.1", 200, true));
        assert_eq!(
            ix.identify(ip("10.0.0.1"), None).name.as_deref(),
            Some("old")
        );
        ix.delete(Kind::Pod, &Key::new("a", "old"));
        assert_eq!(
            ix.identify(ip("10.0.0.1"), None).name.as_deref(),
            Some("new")
        );
        ix.delete(Kind::Pod, &Key::new("a", "new"));
        assert_eq!(ix.identify(ip("10.0.0.1"), None), Peer::external());
        assert!(ix.by_ip.is_empty());
        assert!(ix.is_empty());
    }

    #[test]
    fn services_nodes_host_pods_and_endpoints() {
        let mut ix = Index::default();
        ix.apply(Object {
            kind: Kind::Service,
            key: Key::new("a", "svc"),
            body: Body::Service(Service {
                ips: vec![ip("10.96.0.10")],
                ports: vec![443],
            }),
            truncated: false,
        });
        ix.apply(Object {
            kind: Kind::Node,
            key: Key::new("", "n1"),
            body: Body::Node(Node {
                ips: vec![ip("172.18.0.2")],
            }),
            truncated: false,
        });
        let mut host = pod("kube-system", "agent-x", "172.18.0.2", 1, false);
        if let Body::Pod(p) = &mut host.body {
            p.host_network = true;
            p.ports = vec![9100];
        }
        ix.apply(host);
        ix.apply(Object {
            kind: Kind::EndpointSlice,
            key: Key::new("default", "kubernetes-abcde"),
            body: Body::EndpointSlice(EndpointSlice {
                service: Some("kubernetes".into()),
                ips: vec![ip("192.0.2.1")],
            }),
            truncated: false,
        });
        assert_eq!(
            ix.identify(ip("10.96.0.10"), Some(443)).kind,
            PeerKind::Service
        );
        let n = ix.identify(ip("172.18.0.2"), Some(10250));
        assert_eq!((n.kind, n.name.as_deref()), (PeerKind::Node, Some("n1")));
        let p = ix.identify(ip("172.18.0.2"), Some(9100));
        assert_eq!(
            (p.kind, p.name.as_deref()),
            (PeerKind::Pod, Some("agent-x"))
        );
        let e = ix.identify(ip("192.0.2.1"), Some(6443));
        assert_eq!(
            (e.kind, e.name.as_deref()),
            (PeerKind::Service, Some("kubernetes"))
        );
        assert_eq!(ix.identify(ip("8.8.8.8"), None).kind, PeerKind::External);
    }

    #[test]
    fn fingerprints_current_stale_and_renewal() {
        let mut ix = Index::default();
        ix.apply(cert("a", "web", 1, &["web.a.svc"]));
        ix.apply(request("a", "web", 1, 1));
        let i = ix.issued(&[1; 32]).unwrap();
        assert!(!i.is_stale());
        assert_eq!(i.certificate, Key::new("a", "web"));
        ix.apply(cert("a", "web", 2, &["web.a.svc"]));
        ix.apply(request("a", "web", 2, 2));
        assert!(ix.issued(&[1; 32]).unwrap().is_stale());
        assert!(!ix.issued(&[2; 32]).unwrap().is_stale());
        assert_eq!(ix.issued(&[3; 32]), None);
        // Inference picks the current revision's certificate.
        ix.apply(pod("a", "web-0", "10.0.0.9", 1, false));
        let inf = ix
            .infer(&Key::new("a", "web-0"), Some("WEB.a.svc."), ip("10.0.0.9"))
            .unwrap();
        assert_eq!(inf.leaf.sha256, [2; 32]);
        assert_eq!(inf.issued.revision, Some(2));
        assert!(
            ix.infer(&Key::new("a", "web-0"), Some("other"), ip("10.0.0.9"))
                .is_none()
        );
    }

    #[test]
    fn pruned_requests_still_mark_their_certificate_stale() {
        let mut ix = Index::new(Limits {
            max_retired: 2,
            ..Limits::default()
        });
        ix.apply(cert("a", "web", 1, &["web"]));
        for rev in 1..=4u8 {
            ix.apply(request("a", "web", rev as u64, rev));
            ix.apply(cert("a", "web", rev as u64, &["web"]));
            // revisionHistoryLimit 1: cert-manager deletes the previous request.
            if rev > 1 {
                ix.delete(
                    Kind::CertificateRequest,
                    &Key::new("a", format!("web-{}", rev - 1)),
                );
            }
        }
        assert!(!ix.issued(&[4; 32]).unwrap().is_stale());
        let three = ix.issued(&[3; 32]).unwrap();
        assert_eq!((three.revision, three.current_revision), (Some(3), Some(4)));
        assert!(three.is_stale());
        assert!(ix.issued(&[2; 32]).unwrap().is_stale());
        // The bound: revision 1 was forgotten first, and counted.
        assert_eq!(ix.issued(&[1; 32]), None);
        let s = ix.stats();
        assert_eq!((s.retired_fingerprints, s.retired_dropped), (2, 1));
        // Without its Certificate a pruned request proves nothing.
        ix.delete(Kind::Certificate, &Key::new("a", "web"));
        assert_eq!(ix.issued(&[3; 32]), None);
    }

    #[test]
    fn secrets_name_their_certificate() {
        let mut ix = Index::default();
        ix.apply(cert("a", "web", 3, &["web"]));
        ix.apply(Object {
            kind: Kind::Secret,
            key: Key::new("a", "tls"),
            body: Body::Secret(Secret {
                leaf: Some(leaf(7)),
                ca_pem: Some("PEM".into()),
                certificate: Some("web".into()),
            }),
            truncated: false,
        });
        let i = ix.issued(&[7; 32]).unwrap();
        assert_eq!((i.revision, i.via), (Some(3), Kind::Secret));
        assert_eq!(ix.trust_pems(), vec!["PEM".to_string()]);
    }

    #[test]
    fn relist_drops_what_it_no_longer_lists() {
        let mut ix = Index::default();
        ix.apply(pod("a", "p1", "10.0.0.1", 1, false));
        ix.apply(pod("a", "p2", "10.0.0.2", 1, false));
        ix.apply(cert("a", "c", 1, &[]));
        ix.begin_relist(Kind::Pod);
        ix.apply(pod("a", "p2", "10.0.0.2", 1, false));
        assert_eq!(ix.end_relist(Kind::Pod), 1);
        assert_eq!(ix.identify(ip("10.0.0.1"), None).kind, PeerKind::External);
        assert_eq!(ix.identify(ip("10.0.0.2"), None).kind, PeerKind::Pod);
        // Other kinds are untouched.
        assert!(ix.certificate(&Key::new("a", "c")).is_some());
        assert_eq!(ix.stats().relist_removed, 1);
    }

    #[test]
    fn full_index_drops_and_counts() {
        let mut ix = Index::new(Limits {
            max_objects: 3,
            ..Limits::default()
        });
        for i in 0..5 {
            ix.apply(pod("a", &format!("p{i}"), &format!("10.0.0.{i}"), 1, false));
        }
        assert_eq!(ix.len(), 3);
        assert_eq!(ix.stats().objects_dropped, 2);
        // Updates of kept objects still apply.
        ix.apply(pod("a", "p0", "10.0.1.0", 1, false));
        assert_eq!(ix.identify(ip("10.0.1.0"), None).kind, PeerKind::Pod);
        assert_eq!(ix.identify(ip("10.0.0.0"), None).kind, PeerKind::External);
        assert_eq!(ix.stats().objects_dropped, 2);
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(name_covers("*.a.svc", "x.a.svc"));
        assert!(!name_covers("*.a.svc", "a.svc"));
        assert!(!name_covers("*.a.svc", "y.x.a.svc"));
        assert!(name_covers("Web.A", "web.a."));
    }

    #[test]
    fn wildcard_of_a_top_level_domain_covers_nothing() {
        for host in ["example.com", "com", "a.example.com"] {
            assert!(!name_covers("*.com", host), "{host}");
        }
    }
}
