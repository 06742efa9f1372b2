//! Rules about certificates and chains.

use serde_json::{Value, json};

use std::sync::Arc;

use super::observation::{Found, Observation};
use super::policy::Policy;
use super::text::{date, list, short_name, span};
use crate::model::time as timefmt;
use crate::model::{Certificate, Finding, MeshKind, Rule, Verdict};
use crate::x509::signature::weak_hash;
use crate::x509::{ChainStatus, ChainVerdict, Role, names};

/// CA/Browser Forum Baseline Requirements 6.3.2: the 398-day limit holds
/// for certificates issued on or after 2020-09-01.
const LONG_VALIDITY_SINCE: i64 = 1_598_918_400;

pub(super) struct CertCtx<'a> {
    pub policy: &'a Policy,
    pub now: i64,
    pub role: Role,
    pub chain: &'a [Arc<Certificate>],
    pub verdict: &'a Arc<ChainVerdict>,
    pub obs: &'a Observation<'a>,
}

impl CertCtx<'_> {
    fn on(&self, rule: Rule) -> bool {
        self.policy.enabled(rule)
    }

    /// How a message names the certificate at a position of the path.
    fn who(&self, pos: usize, cert: &Certificate) -> String {
        let client = if self.role == Role::Client {
            "client "
        } else {
            ""
        };
        let what = if pos == 0 {
            "leaf"
        } else if cert.self_signed {
            "root"
        } else {
            "intermediate"
        };
        format!("{client}{what} {}", short_name(&cert.subject))
    }

    fn finding(&self, rule: Rule, cert: &Certificate, message: String, evidence: Value) -> Found {
        let sha256: Arc<str> = cert.sha256.as_str().into();
        let dedup_key = match self.obs.sni {
            Some(sni) if rule == Rule::CertNameMismatch => format!("{sha256}/{sni}").into(),
            _ => sha256.clone(),
        };
        Found {
            finding: Finding {
                rule,
                severity: self.policy.severity(rule),
                message: message.into(),
                certificate: Some(sha256),
                subject: Some(cert.subject.as_str().into()),
                evidence: Arc::new(evidence),
                first: false,
            },
            dedup_key,
        }
    }

    /// Certificates on the verified path (or as far as the walk got).
    fn path(&self) -> impl Iterator<Item = (usize, &Certificate)> {
        self.verdict
            .path
            .iter()
            .enumerate()
            .filter_map(|(pos, &i)| self.chain.get(i).map(|c| (pos, c.as_ref())))
            .filter(|(_, c)| c.parse_error.is_none())
    }

    fn leaf(&self) -> Option<&Certificate> {
        self.chain
            .first()
            .map(|c| c.as_ref())
            .filter(|c| c.parse_error.is_none())
    }
}

pub(super) fn evaluate(cx: &CertCtx<'_>, out: &mut Vec<Found>) {
    for (pos, cert) in cx.path() {
        validity(cx, pos, cert, out);
        weak_key(cx, pos, cert, out);
        weak_signature(cx, pos, cert, out);
    }
    let Some(leaf) = cx.leaf() else {
        return;
    };
    if cx.on(Rule::CertCaAsLeaf) && leaf.is_ca && !leaf.self_signed {
        out.push(cx.finding(
            Rule::CertCaAsLeaf,
            leaf,
            format!(
                "{} is a CA certificate (basicConstraints CA:TRUE) used as {} certificate",
                cx.who(0, leaf),
                if cx.role == Role::Server {
                    "a server"
                } else {
                    "a client"
                }
            ),
            json!({"is_ca": true}),
        ));
    }
    if cx.role == Role::Client {
        // Which CAs a server accepts for clients is the server's own
        // configuration, invisible here: no trust or name rules.
        return;
    }
    trust(cx, leaf, out);
    name_mismatch(cx, leaf, out);
    long_validity(cx, leaf, out);
    issuer_allowed(cx, leaf, out);
    inventory(cx, leaf, out);
}

fn validity(cx: &CertCtx<'_>, pos: usize, cert: &Certificate, out: &mut Vec<Found>) {
    let now = cx.now;
    // Built only for a finding: most certificates are within their dates,
    // and this ran for each of a chain's certificates on every handshake.
    let dates = || {
        json!({
            "not_before": timefmt::seconds(cert.not_before),
            "not_after": timefmt::seconds(cert.not_after),
            "judged_at": timefmt::seconds(now),
        })
    };
    if now > cert.not_after {
        if cx.on(Rule::CertExpired) {
            out.push(cx.finding(
                Rule::CertExpired,
                cert,
                format!(
                    "{} expired {} ago, on {}",
                    cx.who(pos, cert),
                    span(now - cert.not_after),
                    date(cert.not_after)
                ),
                dates(),
            ));
        }
        return;
    }
    if now < cert.not_before {
        if cx.on(Rule::CertNotYetValid) {
            out.push(cx.finding(
                Rule::CertNotYetValid,
                cert,
                format!(
                    "{} is not valid before {}, {} from now",
                    cx.who(pos, cert),
                    timefmt::seconds(cert.not_before),
                    span(cert.not_before - now)
                ),
                dates(),
            ));
        }
        return;
    }
    if !cx.on(Rule::CertExpiringSoon) {
        return;
    }
    let left = cert.not_after - now;
    let managed = (pos == 0 && cx.role == Role::Server)
        .then_some(cx.obs.cert_manager)
        .flatten()
        .filter(|_| cx.obs.verdict == Some(Verdict::Managed))
        .and_then(|cm| cm.renewal_time.map(|t| (cm, t)));
    if let Some((cm, renew)) = managed {
        if now >= renew {
            out.push(cx.finding(
                Rule::CertExpiringSoon,
                cert,
                format!(
                    "{} expires in {}, on {}; cert-manager Certificate {}/{} was due for renewal on {}, {} ago",
                    cx.who(pos, cert),
                    span(left),
                    date(cert.not_after),
                    cm.certificate.namespace,
                    cm.certificate.name,
                    date(renew),
                    span(now - renew)
                ),
                json!({
                    "not_after": timefmt::seconds(cert.not_after),
                    "renewal_time": timefmt::seconds(renew),
                    "judged_at": timefmt::seconds(now),
                }),
            ));
        }
        return;
    }
    // N days, or a third of the lifetime for short-lived certificates
    // (cert-manager's own default renewal point), so a 30-day certificate
    // is not "expiring soon" from the day it is issued.
    let days = i64::from(cx.policy.thresholds.expiring_soon_days) * 86_400;
    let lifetime = cert.not_after - cert.not_before;
    let threshold = days.min(lifetime / 3);
    if left < threshold {
        out.push(cx.finding(
            Rule::CertExpiringSoon,
            cert,
            format!(
                "{} expires in {}, on {}",
                cx.who(pos, cert),
                span(left),
                date(cert.not_after)
            ),
            json!({
                "not_after": timefmt::seconds(cert.not_after),
                "judged_at": timefmt::seconds(now),
                "threshold_days": threshold / 86_400,
            }),
        ));
    }
}

fn weak_key(cx: &CertCtx<'_>, pos: usize, cert: &Certificate, out: &mut Vec<Found>) {
    if !cx.on(Rule::CertWeakKey) {
        return;
    }
    let Some(bits) = cert.key.bits else { return };
    let t = &cx.policy.thresholds;
    let (label, minimum) = match cert.key.kind.as_str() {
        "rsa" | "rsa-pss" => ("RSA", t.rsa_min_bits),
        "dsa" => ("DSA", t.rsa_min_bits),
        "ec" => ("EC", t.ec_min_bits),
        _ => return,
    };
    if bits < minimum {
        let curve = cert
            .key
            .curve
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default();
        out.push(cx.finding(
            Rule::CertWeakKey,
            cert,
            format!(
                "{} has a {bits}-bit {label} key{curve}; the minimum is {minimum}",
                cx.who(pos, cert)
            ),
            json!({"key_type": cert.key.kind, "bits": bits, "curve": cert.key.curve, "minimum": minimum}),
        ));
    }
}

fn weak_signature(cx: &CertCtx<'_>, pos: usize, cert: &Certificate, out: &mut Vec<Found>) {
    // A self-signed certificate's own signature vouches for nothing: the
    // trust is in the key, so a root signed with SHA-1 is not a weakness.
    if !cx.on(Rule::CertWeakSignature) || cert.self_signed {
        return;
    }
    if let Some(hash) = weak_hash(&cert.signature_oid) {
        out.push(cx.finding(
            Rule::CertWeakSignature,
            cert,
            format!(
                "{} is signed with {} ({hash}) by {}",
                cx.who(pos, cert),
                cert.signature_algorithm,
                short_name(&cert.issuer)
            ),
            json!({"signature_algorithm": cert.signature_algorithm, "hash": hash, "issuer": cert.issuer}),
        ));
    }
}

fn chain_evidence(cx: &CertCtx<'_>) -> Value {
    let path: Vec<&str> = cx
        .verdict
        .path
        .iter()
        .filter_map(|i| cx.chain.get(*i).map(|c| c.sha256.as_str()))
        .collect();
    json!({
        "path": path,
        "anchor": cx.verdict.anchor.as_ref().map(|a| &a.subject),
        "anchor_origin": cx.verdict.anchor.as_ref().map(|a| &a.origin),
        "note": cx.verdict.note,
    })
}

fn trust(cx: &CertCtx<'_>, leaf: &Certificate, out: &mut Vec<Found>) {
    let (rule, message) = match &cx.verdict.status {
        ChainStatus::Trusted | ChainStatus::Empty | ChainStatus::Unparsable => return,
        ChainStatus::SelfSigned => (
            Rule::CertSelfSigned,
            format!(
                "{} is self-signed and is not a trust anchor",
                cx.who(0, leaf)
            ),
        ),
        ChainStatus::UnknownRoot { root } => (
            Rule::CertUntrusted,
            format!(
                "the chain ends at the self-signed root {}, which is not a trust anchor",
                short_name(root)
            ),
        ),
        ChainStatus::UnknownIssuer { issuer } => (
            Rule::CertUntrusted,
            format!(
                "issuer {} was not sent and is not a trust anchor",
                short_name(issuer)
            ),
        ),
        ChainStatus::BadSignature { subject, issuer } => (
            Rule::CertUntrusted,
            format!(
                "the signature of {} does not verify with the key of its issuer {}",
                short_name(subject),
                short_name(issuer)
            ),
        ),
        ChainStatus::Rejected { reason } => (
            Rule::CertUntrusted,
            match &cx.verdict.anchor {
                Some(a) => format!(
                    "the path to the trust anchor {} is not acceptable: {reason}",
                    short_name(&a.subject)
                ),
                None => format!("the chain is not acceptable: {reason}"),
            },
        ),
        ChainStatus::Incomplete { missing } => (
            Rule::CertIncompleteChain,
            format!(
                "the server did not send the intermediate {}; it completes the path to the trust anchor {} but clients without a cached copy fail",
                short_name(missing),
                cx.verdict
                    .anchor
                    .as_ref()
                    .map_or("?".to_string(), |a| short_name(&a.subject))
            ),
        ),
    };
    if cx.on(rule) {
        out.push(cx.finding(rule, leaf, message, chain_evidence(cx)));
    }
}

fn name_mismatch(cx: &CertCtx<'_>, leaf: &Certificate, out: &mut Vec<Found>) {
    let Some(sni) = cx.obs.sni else { return };
    // Istio's SNI names a cluster route (outbound_.PORT_.SUBSET_.HOST) and
    // its certificates carry a SPIFFE URI: the names are never meant to match.
    if !cx.on(Rule::CertNameMismatch) || cx.obs.mesh == Some(MeshKind::Istio) {
        return;
    }
    if names::covers(&leaf.san, sni) {
        return;
    }
    let mut presented: Vec<String> = leaf.san.dns.clone();
    presented.extend(leaf.san.ip.iter().cloned());
    out.push(cx.finding(
        Rule::CertNameMismatch,
        leaf,
        format!(
            "SNI {sni} is not covered by the subjectAltName of {} ({})",
            cx.who(0, leaf),
            list(&presented, 5)
        ),
        json!({"sni": sni, "san_dns": leaf.san.dns, "san_ip": leaf.san.ip}),
    ));
}

fn long_validity(cx: &CertCtx<'_>, leaf: &Certificate, out: &mut Vec<Found>) {
    let limit = i64::from(cx.policy.thresholds.long_validity_days);
    // Validity includes both end seconds (RFC 5280 4.1.2.5), and the
    // Baseline Requirements (6.3.2) count any part of a day as a day: the
    // comparison is in seconds, so 398 days and one second exceeds 398 days.
    let seconds = leaf.not_after - leaf.not_before + 1;
    if !cx.on(Rule::CertLongValidity)
        || leaf.not_before < LONG_VALIDITY_SINCE
        || seconds <= limit * 86_400
    {
        return;
    }
    let days = seconds / 86_400;
    // Whole days only when they say it; a part of a day over the limit
    // would otherwise read as "398 days; the limit is 398 days".
    let length = if days > limit {
        format!("{days} days")
    } else {
        format!("more than {limit} days")
    };
    out.push(cx.finding(
        Rule::CertLongValidity,
        leaf,
        format!(
            "{} is valid for {length} ({} to {}); the limit is {limit} days",
            cx.who(0, leaf),
            date(leaf.not_before),
            date(leaf.not_after)
        ),
        json!({"days": days, "limit": limit}),
    ));
}

fn issuer_allowed(cx: &CertCtx<'_>, leaf: &Certificate, out: &mut Vec<Found>) {
    if !cx.on(Rule::CertIssuerNotAllowed) {
        return;
    }
    let ns = cx
        .obs
        .destination
        .as_ref()
        .and_then(|d| d.namespace.as_deref());
    let Some(rule) = cx.policy.allowed_issuers(ns) else {
        return;
    };
    let cm_issuer = cx
        .obs
        .cert_manager
        .map(|c| format!("{}/{}", c.issuer.kind, c.issuer.name));
    let cm_issuer = cm_issuer.as_deref();
    let ok = rule
        .allowed
        .iter()
        .any(|p| p.matches(&leaf.issuer) || cm_issuer.is_some_and(|i| p.matches(i)));
    if ok {
        return;
    }
    let allowed: Vec<String> = rule
        .allowed
        .iter()
        .map(|p| p.as_str().to_string())
        .collect();
    out.push(cx.finding(
        Rule::CertIssuerNotAllowed,
        leaf,
        format!(
            "{} is issued by {}{}, which is not allowed {} (allowed: {})",
            cx.who(0, leaf),
            leaf.issuer,
            cm_issuer
                .map(|i| format!(" (cert-manager {i})"))
                .unwrap_or_default(),
            ns.map_or("for servers here".to_string(), |n| format!(
                "in namespace {n}"
            )),
            list(&allowed, 5)
        ),
        json!({"issuer": leaf.issuer, "cert_manager_issuer": cm_issuer, "namespace": ns}),
    ));
}

fn inventory(cx: &CertCtx<'_>, leaf: &Certificate, out: &mut Vec<Found>) {
    let dest = cx.obs.destination.as_ref();
    let where_ = dest
        .map(|d| {
            format!(
                "{}/{}",
                d.namespace.as_deref().unwrap_or("?"),
                d.name.as_deref().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| format!("the server {}", cx.obs.server));
    match cx.obs.verdict {
        Some(Verdict::Unmanaged) if cx.on(Rule::CertUnmanaged) => out.push(cx.finding(
            Rule::CertUnmanaged,
            leaf,
            format!(
                "{where_} serves {}, which no cert-manager object issued",
                cx.who(0, leaf)
            ),
            json!({"verdict": "unmanaged"}),
        )),
        Some(Verdict::Stale) if cx.on(Rule::CertStale) => {
            let cm = cx.obs.cert_manager;
            let detail = cm
                .map(|c| {
                    format!(
                        " of cert-manager Certificate {}/{} (revision {}, current {})",
                        c.certificate.namespace,
                        c.certificate.name,
                        c.revision.map_or("?".into(), |r| r.to_string()),
                        c.current_revision.map_or("?".into(), |r| r.to_string())
                    )
                })
                .unwrap_or_default();
            out.push(cx.finding(
                Rule::CertStale,
                leaf,
                format!(
                    "{where_} still serves {}, an older revision{detail}: cert-manager renewed it",
                    cx.who(0, leaf)
                ),
                json!({
                    "verdict": "stale",
                    "revision": cm.and_then(|c| c.revision),
                    "current_revision": cm.and_then(|c| c.current_revision),
                }),
            ))
        }
        _ => {}
    }
}
