//! Chain verification: from the certificates a peer presented (in any
//! order, with extra or missing ones) to the configured trust anchors.
//!
//! Two passes. A walk links each certificate to its issuer by name and
//! signature (with legacy algorithms allowed, see `signature`) and says where
//! the chain ends: at an anchor, at a self-signed root nobody trusts, or at a
//! missing issuer. When it reaches an anchor, rustls-webpki then decides
//! whether the path is acceptable (extended key usage, name constraints,
//! path length, distrusted keys). Validity dates are left to the analysis
//! rules, which report them per certificate; webpki is asked at a moment
//! when every certificate of the path was valid.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::RandomState;
use foldhash::{HashMap, HashMapExt};
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::*;

use super::dn::rfc4514;
use super::signature::{self, SigCheck};
use super::trust::{AnchorInfo, TrustStore};
use crate::model::Certificate;

/// Longest path followed; real chains have 2 to 4 certificates.
pub const MAX_PATH: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The server's chain: checked for TLS server authentication.
    Server,
    /// The client's chain (mutual TLS): checked for client authentication.
    Client,
}

/// Why a chain is or is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainStatus {
    /// A path to an anchor that webpki accepts (apart from validity dates,
    /// and apart from weak algorithms and a CA leaf, which rules report).
    Trusted,
    /// The leaf is self-signed and not itself a trust anchor.
    SelfSigned,
    /// The chain ends at a self-signed root that is not a trust anchor.
    UnknownRoot { root: String },
    /// The last certificate's issuer was not sent and is neither an anchor
    /// nor a CA certificate seen elsewhere, whatever else was sent: no
    /// client can build a path.
    UnknownIssuer { issuer: String },
    /// The server did not send the CA certificate of `missing`, but one
    /// seen in another connection fills the gap and reaches an anchor.
    Incomplete { missing: String },
    /// A signature in the chain does not verify with its issuer's key.
    BadSignature { subject: String, issuer: String },
    /// The path reaches an anchor but is not acceptable (webpki's reason).
    Rejected { reason: String },
    /// The leaf does not parse.
    Unparsable,
    /// No certificate was presented.
    Empty,
}

/// What verification established for one chain.
#[derive(Debug, Clone)]
pub struct ChainVerdict {
    pub status: ChainStatus,
    /// Presented certificates on the path, leaf first (indices into the chain).
    pub path: Vec<usize>,
    /// The anchor the path ends at, when it does.
    pub anchor: Option<AnchorInfo>,
    /// webpki's objection to a path that the rules report more precisely
    /// (weak algorithm or key, CA certificate as leaf).
    pub note: Option<String>,
}

impl ChainVerdict {
    fn new(status: ChainStatus) -> Self {
        Self {
            status,
            path: Vec::new(),
            anchor: None,
            note: None,
        }
    }

    pub fn trusted(&self) -> bool {
        self.status == ChainStatus::Trusted
    }
}

#[derive(Debug, Default, Clone)]
pub struct VerifyStats {
    pub verified: u64,
    pub cache_hits: u64,
    /// Results not cached because the cache was full.
    pub cache_full: u64,
    /// CA certificates not remembered because the pool was full.
    pub pool_full: u64,
}

/// CA certificates seen on verified paths, by subject, to tell an
/// incomplete chain (the server forgot an intermediate that exists) from an
/// unknown issuer. Bounded: when full, new ones are not remembered.
struct IntermediatePool {
    by_subject: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    len: usize,
    capacity: usize,
    generation: u64,
}

impl IntermediatePool {
    fn insert(&mut self, der: &[u8], subject: &[u8], stats: &mut VerifyStats) {
        let entry = self.by_subject.get(subject);
        if entry.is_some_and(|v| v.iter().any(|d| d == der)) {
            return;
        }
        if self.len >= self.capacity {
            stats.pool_full += 1;
            return;
        }
        self.by_subject
            .entry(subject.to_vec())
            .or_default()
            .push(der.to_vec());
        self.len += 1;
        self.generation += 1;
    }
}

struct Cached {
    /// The chain's fingerprints: the key is only their hash.
    fingerprints: Box<[String]>,
    generation: (u64, u64),
    verdict: Arc<ChainVerdict>,
}

/// Verifies chains against a trust store, caching by the chain's fingerprints.
pub struct ChainVerifier {
    store: TrustStore,
    pool: IntermediatePool,
    /// By role and a keyed hash of the chain's fingerprints, so that a hit
    /// allocates nothing. foldhash, seeded per process: SipHash over the
    /// 192 hex digits of a chain was a tenth of a cache hit. A collision
    /// costs a miss, never a wrong verdict (`same_chain`).
    cache: HashMap<(Role, u64), Cached>,
    hasher: RandomState,
    cache_capacity: usize,
    pub stats: VerifyStats,
}

enum Node {
    Presented(usize),
    Pooled(usize),
}

enum End {
    Anchor(usize),
    SelfSigned,
    Missing,
    BadSignature { child: usize, issuer: usize },
    AnchorKeyMismatch(usize),
    TooLong,
}

/// Certificates the walk can use, in one indexable list: presented first,
/// then pooled ones.
struct Certs<'a> {
    parsed: Vec<X509Certificate<'a>>,
    presented: usize,
}

impl ChainVerifier {
    pub fn new(store: TrustStore, cache_capacity: usize, pool_capacity: usize) -> Self {
        Self {
            store,
            pool: IntermediatePool {
                by_subject: HashMap::new(),
                len: 0,
                capacity: pool_capacity,
                generation: 0,
            },
            cache: HashMap::new(),
            hasher: RandomState::default(),
            cache_capacity,
            stats: VerifyStats::default(),
        }
    }

    pub fn store(&self) -> &TrustStore {
        &self.store
    }

    /// For anchors added at run time (the cluster's CA bundles).
    pub fn store_mut(&mut self) -> &mut TrustStore {
        &mut self.store
    }

    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Verifies one presented chain, cached by the certificates' fingerprints.
    pub fn verify(&mut self, role: Role, chain: &[Arc<Certificate>]) -> Arc<ChainVerdict> {
        let generation = (self.store.generation(), self.pool.generation);
        let mut h = self.hasher.build_hasher();
        for c in chain {
            h.write(c.sha256.as_bytes());
        }
        let key = (role, h.finish());
        let same_chain = |c: &Cached| {
            c.fingerprints.len() == chain.len()
                && c.fingerprints
                    .iter()
                    .zip(chain)
                    .all(|(f, c)| *f == c.sha256)
        };
        if let Some(c) = self.cache.get(&key)
            && same_chain(c)
            && (c.generation == generation
                // Only a chain that ended at a missing issuer can change
                // when CA certificates are learnt.
                || (c.generation.0 == generation.0
                    && !matches!(c.verdict.status, ChainStatus::UnknownIssuer { .. })))
        {
            self.stats.cache_hits += 1;
            return c.verdict.clone();
        }
        self.stats.verified += 1;
        let ders: Vec<&[u8]> = chain.iter().map(|c| &*c.der).collect();
        let ders = ders.as_slice();
        let verdict = Arc::new(self.verify_uncached(role, ders));
        if verdict.trusted() {
            self.learn(ders, &verdict.path);
        }
        if self.cache.len() < self.cache_capacity || self.cache.contains_key(&key) {
            self.cache.insert(
                key,
                Cached {
                    fingerprints: chain.iter().map(|c| c.sha256.clone()).collect(),
                    generation: (self.store.generation(), self.pool.generation),
                    verdict: verdict.clone(),
                },
            );
        } else {
            self.stats.cache_full += 1;
        }
        verdict
    }

    fn learn(&mut self, ders: &[&[u8]], path: &[usize]) {
        for &i in path.iter().skip(1) {
            if let Ok((_, c)) = X509Certificate::from_der(ders[i])
                && c.is_ca()
                && c.subject().as_raw() != c.issuer().as_raw()
            {
                self.pool
                    .insert(ders[i], c.subject().as_raw(), &mut self.stats);
            }
        }
    }

    fn verify_uncached(&self, role: Role, ders: &[&[u8]]) -> ChainVerdict {
        if ders.is_empty() {
            return ChainVerdict::new(ChainStatus::Empty);
        }
        let mut parsed = Vec::with_capacity(ders.len());
        let mut skip = vec![false; ders.len()];
        for (i, der) in ders.iter().enumerate() {
            match X509Certificate::from_der(der) {
                Ok((_, c)) => parsed.push(c),
                Err(_) if i == 0 => return ChainVerdict::new(ChainStatus::Unparsable),
                // An unparsable extra certificate cannot be on any path; a
                // stand-in keeps the indices aligned and is skipped.
                Err(_) => {
                    skip[i] = true;
                    parsed.push(parsed[0].clone());
                }
            }
        }
        let mut pooled_ders: Vec<&[u8]> = Vec::new();
        let (nodes, end) = self.walk(&mut parsed, &skip, &mut pooled_ders);
        let certs = Certs {
            presented: ders.len(),
            parsed,
        };
        let path: Vec<usize> = nodes
            .iter()
            .filter_map(|n| match n {
                Node::Presented(i) => Some(*i),
                Node::Pooled(_) => None,
            })
            .collect();
        let name = |i: usize| rfc4514(certs.parsed[i].subject());
        let mut verdict = ChainVerdict::new(ChainStatus::Trusted);
        verdict.path = path.clone();
        let last = *path.last().unwrap_or(&0);
        verdict.status = match end {
            End::Anchor(a) => {
                verdict.anchor = Some(self.store.info(a).clone());
                if let Some(first_pooled) = nodes.iter().find_map(|n| match n {
                    Node::Pooled(p) => Some(*p),
                    Node::Presented(_) => None,
                }) {
                    ChainStatus::Incomplete {
                        missing: name(certs.presented + first_pooled),
                    }
                } else {
                    let all_valid = self.signatures_valid(&certs, &nodes, a);
                    match webpki_check(role, ders, &certs, &path, &self.store) {
                        Ok(()) => ChainStatus::Trusted,
                        Err(e) if covered(&e, all_valid) => {
                            verdict.note = Some(describe(&e));
                            ChainStatus::Trusted
                        }
                        Err(e) => ChainStatus::Rejected {
                            reason: describe(&e),
                        },
                    }
                }
            }
            End::SelfSigned if path.len() == 1 => ChainStatus::SelfSigned,
            End::SelfSigned => ChainStatus::UnknownRoot { root: name(last) },
            // Certificates sent beside the path (an unrelated intermediate,
            // the root without the intermediate) do not make it any more
            // trusted: nothing known completes it.
            End::Missing => ChainStatus::UnknownIssuer {
                issuer: rfc4514(certs.parsed[last].issuer()),
            },
            End::BadSignature { child, issuer } => ChainStatus::BadSignature {
                subject: name(child),
                issuer: name(issuer),
            },
            End::AnchorKeyMismatch(a) => ChainStatus::Rejected {
                reason: format!(
                    "{} names the trust anchor {} as issuer, but its signature does not verify with that anchor's key",
                    name(last),
                    self.store.info(a).subject
                ),
            },
            End::TooLong => ChainStatus::Rejected {
                reason: format!("no path to an anchor within {MAX_PATH} certificates"),
            },
        };
        verdict
    }

    /// Every link of the walk verified, or uses a broken hash (MD5, SHA-1
    /// where ring has no legacy form) that cert.weak_signature reports.
    fn signatures_valid(&self, certs: &Certs<'_>, nodes: &[Node], anchor: usize) -> bool {
        let idx = |n: &Node| match n {
            Node::Presented(i) => *i,
            Node::Pooled(p) => certs.presented + p,
        };
        let ok =
            |child: &X509Certificate<'_>, key: &SubjectPublicKeyInfo<'_>| match signature::check(
                child, key,
            ) {
                SigCheck::Valid => true,
                SigCheck::Invalid => false,
                SigCheck::Unsupported => {
                    signature::weak_hash(&child.signature_algorithm.algorithm.to_id_string())
                        .is_some()
                }
            };
        let links_ok = nodes.windows(2).all(|w| {
            let (child, parent) = (&certs.parsed[idx(&w[0])], &certs.parsed[idx(&w[1])]);
            ok(child, parent.public_key())
        });
        let top = &certs.parsed[idx(nodes.last().expect("walk has the leaf"))];
        let spki = self.store.spki_der(anchor);
        let top_ok = SubjectPublicKeyInfo::from_der(&spki).is_ok_and(|(_, k)| ok(top, &k));
        links_ok && top_ok
    }

    /// Follows issuer links from the leaf. Pooled certificates are parsed
    /// into `parsed` after the presented ones as they are needed.
    fn walk<'a>(
        &'a self,
        parsed: &mut Vec<X509Certificate<'a>>,
        skip: &[bool],
        pooled: &mut Vec<&'a [u8]>,
    ) -> (Vec<Node>, End) {
        let presented = skip.len();
        let mut nodes = vec![Node::Presented(0)];
        let mut on_path = vec![0usize];
        let mut cur = 0usize;
        loop {
            if nodes.len() > MAX_PATH {
                return (nodes, End::TooLong);
            }
            let issuer_name = parsed[cur].issuer().as_raw();
            // 1. An anchor issued it (this also ends a chain that carries the root).
            let mut anchor_mismatch = None;
            for &a in self.store.by_subject(issuer_name) {
                let spki = self.store.spki_der(a);
                let Ok((_, key)) = SubjectPublicKeyInfo::from_der(&spki) else {
                    continue;
                };
                match signature::check(&parsed[cur], &key) {
                    SigCheck::Valid | SigCheck::Unsupported => return (nodes, End::Anchor(a)),
                    SigCheck::Invalid => anchor_mismatch = Some(a),
                }
            }
            // 2. It is a self-signed root nobody trusts.
            if signature::is_self_signed(&parsed[cur]) {
                return (nodes, End::SelfSigned);
            }
            // 3. A presented certificate issued it.
            let mut bad = None;
            let mut next = None;
            for j in 0..presented {
                if skip[j] || on_path.contains(&j) || parsed[j].subject().as_raw() != issuer_name {
                    continue;
                }
                match signature::check(&parsed[cur], parsed[j].public_key()) {
                    SigCheck::Valid => {
                        next = Some(j);
                        break;
                    }
                    SigCheck::Unsupported if signature::key_ids_agree(&parsed[cur], &parsed[j]) => {
                        next = next.or(Some(j));
                    }
                    SigCheck::Unsupported => {}
                    SigCheck::Invalid => bad = bad.or(Some(j)),
                }
            }
            if let Some(j) = next {
                nodes.push(Node::Presented(j));
                on_path.push(j);
                cur = j;
                continue;
            }
            // 4. A CA certificate seen on another verified path issued it.
            if let Some(candidates) = self.pool.by_subject.get(issuer_name) {
                let mut found = None;
                for der in candidates {
                    if pooled.contains(&der.as_slice()) {
                        continue;
                    }
                    if let Ok((_, c)) = X509Certificate::from_der(der)
                        && signature::check(&parsed[cur], c.public_key()) == SigCheck::Valid
                    {
                        found = Some((der.as_slice(), c));
                        break;
                    }
                }
                if let Some((der, c)) = found {
                    pooled.push(der);
                    parsed.push(c);
                    let p = pooled.len() - 1;
                    nodes.push(Node::Pooled(p));
                    let idx = presented + p;
                    on_path.push(idx);
                    cur = idx;
                    continue;
                }
            }
            let end = match (bad, anchor_mismatch) {
                (Some(j), _) => End::BadSignature {
                    child: cur,
                    issuer: j,
                },
                (None, Some(a)) => End::AnchorKeyMismatch(a),
                (None, None) => End::Missing,
            };
            return (nodes, end);
        }
    }
}

/// webpki's opinion of the path the walk found, at a moment when all its
/// certificates were valid (dates are the rules' business).
fn webpki_check(
    role: Role,
    ders: &[&[u8]],
    certs: &Certs<'_>,
    path: &[usize],
    store: &TrustStore,
) -> Result<(), webpki::Error> {
    let leaf_der = CertificateDer::from(ders[0]);
    let leaf = EndEntityCert::try_from(&leaf_der)?;
    let intermediates: Vec<CertificateDer<'_>> =
        ders[1..].iter().map(|d| CertificateDer::from(*d)).collect();
    let validity = |i: usize| {
        let v = certs.parsed[i].validity();
        (v.not_before.timestamp(), v.not_after.timestamp())
    };
    let start = path.iter().map(|i| validity(*i).0).max().unwrap_or(0);
    let end = path.iter().map(|i| validity(*i).1).min().unwrap_or(0);
    // No common moment: ask when the leaf was valid, the intermediates'
    // dates are then reported by the rules anyway.
    let at = if start <= end { start } else { validity(0).0 };
    let time = UnixTime::since_unix_epoch(Duration::from_secs(at.max(0) as u64));
    let usage = match role {
        Role::Server => KeyUsage::server_auth(),
        Role::Client => KeyUsage::client_auth(),
    };
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        store.anchors(),
        &intermediates,
        time,
        usage,
        None,
        None,
    )
    .map(|_| ())
}

/// webpki errors that the rules already report more precisely, when the
/// walk proved every signature: weak algorithms and keys (cert.weak_*),
/// a CA certificate as leaf (cert.ca_as_leaf), dates (cert.expired...).
#[allow(deprecated)] // webpki still returns the context-less variants in places
fn covered(e: &webpki::Error, signatures_valid: bool) -> bool {
    use webpki::Error as E;
    match e {
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
        | E::InvalidSignatureForPublicKey => signatures_valid,
        E::CaUsedAsEndEntity | E::CertExpired { .. } | E::CertNotValidYet { .. } => true,
        _ => false,
    }
}

#[allow(deprecated)]
fn describe(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => "no acceptable path to a trust anchor".into(),
        E::CertDistrusted => "a certificate on the path is distrusted".into(),
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => {
            "the leaf's extendedKeyUsage does not allow this use".into()
        }
        E::NameConstraintViolation => "the path violates a name constraint".into(),
        E::PathLenConstraintViolated => "the path violates a pathLenConstraint".into(),
        E::EndEntityUsedAsCa => "a non-CA certificate issued another certificate".into(),
        E::UnsupportedCertVersion => "a certificate is X.509 v1 or v2".into(),
        E::UnsupportedCriticalExtension => "a certificate has an unknown critical extension".into(),
        E::CaUsedAsEndEntity => "the leaf is a CA certificate".into(),
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            "a signature algorithm or key on the path is not accepted by current verifiers".into()
        }
        E::InvalidSignatureForPublicKey => "a signature does not verify".into(),
        other => format!("{other:?}"),
    }
}
