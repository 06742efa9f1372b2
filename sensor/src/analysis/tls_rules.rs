//! Rules about the connection: version, cipher suite, alerts, plaintext.

use serde_json::json;

use super::ciphers::{self, CipherFamily};
use super::policy::Policy;
use super::rules::Rule;
use super::{Finding, Observation};
use crate::tls::names::{alert_name, cipher_name, version_name};

const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_USER_CANCELED: u8 = 90;
const ALERT_LEVEL_FATAL: u8 = 2;

/// Flow findings are deduplicated per client, server and port: one
/// client's many connections to one service are one problem.
fn flow_key(obs: &Observation<'_>) -> String {
    format!("{}>{}", obs.client.ip(), obs.server)
}

fn finding(
    policy: &Policy,
    obs: &Observation<'_>,
    rule: Rule,
    message: String,
    evidence: serde_json::Value,
) -> Finding {
    Finding {
        rule,
        severity: policy.severity(rule),
        message,
        certificate: None,
        subject: None,
        evidence,
        dedup_key: flow_key(obs),
    }
}

pub(super) fn evaluate(policy: &Policy, obs: &Observation<'_>, out: &mut Vec<Finding>) {
    if let Some(v) = obs.version
        && policy.enabled(Rule::TlsLegacyVersion)
        // Only the five real versions compare; drafts and oddities say nothing.
        && (0x0300..=0x0304).contains(&v)
        && v < policy.min_version
    {
        out.push(finding(
            policy,
            obs,
            Rule::TlsLegacyVersion,
            format!(
                "negotiated {}; the minimum is {}",
                version_name(v),
                version_name(policy.min_version)
            ),
            json!({"version": version_name(v), "minimum": version_name(policy.min_version)}),
        ));
    }
    if let Some(id) = obs.cipher
        && policy.enabled(Rule::TlsWeakCipher)
        && let Some((name, families)) = ciphers::families(id)
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
                obs,
                Rule::TlsWeakCipher,
                format!("negotiated {name}: {} {why}", names.join(" and ")),
                json!({"cipher": cipher_name(id), "families": names}),
            ));
        }
    }
    if let Some(a) = &obs.alert
        && policy.enabled(Rule::TlsHandshakeFailure)
        && a.description != ALERT_CLOSE_NOTIFY
        && a.description != ALERT_USER_CANCELED
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
            obs,
            Rule::TlsHandshakeFailure,
            format!(
                "{by} sent the alert {} ({}) in clear: the handshake failed",
                alert_name(a.description),
                a.description
            ),
            json!({"alert": alert_name(a.description), "level": a.level, "from_client": a.from_client}),
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
) -> Option<Finding> {
    if !policy.enabled(Rule::TlsPlaintext) {
        return None;
    }
    let both_workloads = obs.correlation.source.is_some() && obs.correlation.destination.is_some();
    if !both_workloads {
        return None;
    }
    let bytes = bytes_to_server + bytes_to_client;
    let mut f = finding(
        policy,
        obs,
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
    );
    f.dedup_key = obs.server.to_string();
    Some(f)
}
