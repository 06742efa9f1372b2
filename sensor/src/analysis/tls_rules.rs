//! Rules about the connection: version, cipher suite, alerts, plaintext.

use std::sync::Arc;

use serde_json::json;

use super::ciphers::{self, CipherFamily};
use super::observation::{Found, Observation};
use super::policy::Policy;
use crate::model::Rule;
use crate::model::{Finding, ProtocolVersion};

const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_USER_CANCELED: u8 = 90;
const ALERT_LEVEL_FATAL: u8 = 2;

/// Flow findings are deduplicated per client, server and port: one
/// client's many connections to one service are one problem.
fn flow_key(obs: &Observation<'_>) -> Arc<str> {
    format!("{}>{}", obs.client.ip(), obs.server).into()
}

fn finding(
    policy: &Policy,
    dedup_key: Arc<str>,
    rule: Rule,
    message: String,
    evidence: serde_json::Value,
) -> Found {
    Found {
        finding: Finding {
            rule,
            severity: policy.severity(rule),
            message: message.into(),
            certificate: None,
            subject: None,
            evidence: Arc::new(evidence),
            first: false,
        },
        dedup_key,
    }
}

pub(super) fn evaluate(policy: &Policy, obs: &Observation<'_>, out: &mut Vec<Found>) {
    if let Some(v) = obs.version
        && policy.enabled(Rule::TlsLegacyVersion)
        // Only the five real versions compare; drafts and oddities say nothing.
        && (0x0300..=0x0304).contains(&v.0)
        && v.0 < policy.min_version
    {
        let min = ProtocolVersion(policy.min_version);
        out.push(finding(
            policy,
            flow_key(obs),
            Rule::TlsLegacyVersion,
            format!("negotiated {}; the minimum is {}", v, min),
            json!({"version": v.to_string(), "minimum": min.to_string()}),
        ));
    }
    if let Some(id) = obs.cipher
        && policy.enabled(Rule::TlsWeakCipher)
        && let Some((name, families)) = ciphers::families(id.0)
    {
        let bad: Vec<CipherFamily> = match &policy.allowed_cipher_families {
            Some(allowed) => families
                .iter()
                .copied()
                .filter(|f| !allowed.contains(f))
                .collect(),
            None => families
                .iter()
                .copied()
                .filter(|f| ciphers::WEAK_BY_DEFAULT.contains(f))
                .collect(),
        };
        if !bad.is_empty() {
            let names: Vec<&str> = bad.iter().map(|f| f.name()).collect();
            let why = if policy.allowed_cipher_families.is_some() {
                "not in the allowed cipher families"
            } else {
                "weak"
            };
            out.push(finding(
                policy,
                flow_key(obs),
                Rule::TlsWeakCipher,
                format!("negotiated {name}: {} {why}", names.join(" and ")),
                json!({"cipher": id.to_string(), "families": names}),
            ));
        }
    }
    if let Some(a) = &obs.alert
        && policy.enabled(Rule::TlsHandshakeFailure)
        && a.description.0 != ALERT_CLOSE_NOTIFY
        && a.description.0 != ALERT_USER_CANCELED
        // A warning (unrecognized_name, say) lets the handshake go on.
        && a.level.is_none_or(|l| l == ALERT_LEVEL_FATAL)
    {
        let by = match a.from_client {
            Some(true) => "the client",
            Some(false) => "the server",
            None => "a peer",
        };
        out.push(finding(
            policy,
            flow_key(obs),
            Rule::TlsHandshakeFailure,
            format!(
                "{by} sent the alert {} ({}) in clear: the handshake failed",
                a.description, a.description.0
            ),
            json!({"alert": a.description.to_string(), "level": a.level, "from_client": a.from_client}),
        ));
    }
    // tls.plaintext is not about a handshake: flow accounting feeds
    // `plaintext_flow` with the connections that never started one.
}

/// tls.plaintext's finding for a TCP flow between two workloads that
/// carried payload without a TLS handshake (fed by flow accounting).
/// Deduplicated per server endpoint: many clients talking plaintext to one
/// service are one problem to fix, at the service.
pub fn plaintext_flow(
    policy: &Policy,
    obs: &Observation<'_>,
    bytes_to_server: u64,
    bytes_to_client: u64,
) -> Option<Found> {
    if !policy.enabled(Rule::TlsPlaintext) {
        return None;
    }
    let both_workloads = obs.source.is_some() && obs.destination.is_some();
    if !both_workloads {
        return None;
    }
    let bytes = bytes_to_server + bytes_to_client;
    Some(finding(
        policy,
        obs.server.to_string().into(),
        Rule::TlsPlaintext,
        format!(
            "{bytes} bytes between {} and {} without TLS ({bytes_to_server} to the server, {bytes_to_client} back)",
            obs.client, obs.server
        ),
        json!({
            "bytes": bytes,
            "bytes_to_server": bytes_to_server,
            "bytes_to_client": bytes_to_client,
        }),
    ))
}
