//! The log events: `tls.certificate`, `tls.finding`, `tls.handshake`.
//!
//! Each record's body is its RECORDS.md JSON object; its attributes are the
//! same fields flattened under the event's prefix (`tls.certificate.not_after`,
//! `tls.handshake.server.port`, list fields as arrays, null fields left out),
//! plus a few semantic-convention keys to join logs with metrics.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, Severity};
use opentelemetry::{Key, StringValue};
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger};
use serde_json::Value as Json;

use super::attributes::peer;
use crate::export::records::{CertificateRecord, FindingRecord, HandshakeRecord};
use crate::model::{Certificate, Connection, Severity as Level};

pub const EVENT_CERTIFICATE: &str = "tls.certificate";
pub const EVENT_FINDING: &str = "tls.finding";
pub const EVENT_HANDSHAKE: &str = "tls.handshake";

fn any(v: &Json) -> Option<AnyValue> {
    Some(match v {
        Json::Null => return None,
        Json::Bool(b) => AnyValue::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => AnyValue::Int(i),
            None => AnyValue::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => AnyValue::String(StringValue::from(s.clone())),
        Json::Array(a) => AnyValue::ListAny(Box::new(a.iter().filter_map(any).collect())),
        Json::Object(m) => AnyValue::Map(Box::new(
            m.iter()
                .filter_map(|(k, v)| Some((Key::from(k.clone()), any(v)?)))
                .collect::<HashMap<_, _>>(),
        )),
    })
}

/// `prefix.a.b = value` for every non-null leaf; lists stay lists.
fn flatten(prefix: &str, v: &Json, out: &mut Vec<(String, AnyValue)>) {
    match v {
        Json::Object(m) => {
            for (k, v) in m {
                if k == "kind" && prefix.matches('.').count() <= 1 {
                    continue;
                }
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => {
            if let Some(a) = any(other) {
                out.push((prefix.to_string(), a));
            }
        }
    }
}

fn time(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

/// OTel severity of a finding's configured severity word.
pub fn finding_severity(s: Level) -> (Severity, &'static str) {
    let number = match s {
        Level::Critical => Severity::Fatal,
        Level::High => Severity::Error,
        Level::Medium => Severity::Warn,
        Level::Low | Level::Info => Severity::Info,
    };
    (number, s.name())
}

fn base(
    logger: &SdkLogger,
    event: &'static str,
    time_us: i64,
    sev: (Severity, &'static str),
) -> SdkLogRecord {
    let mut r = logger.create_log_record();
    r.set_event_name(event);
    r.set_timestamp(time(time_us));
    r.set_observed_timestamp(SystemTime::now());
    r.set_severity_number(sev.0);
    r.set_severity_text(sev.1);
    r
}

fn add(r: &mut SdkLogRecord, attrs: Vec<(String, AnyValue)>) {
    for (k, v) in attrs {
        r.add_attribute(Key::from(k), v);
    }
}

/// Keys shared with the metrics, to go from a series to its log records.
fn context(c: &Connection, out: &mut Vec<(String, AnyValue)>) {
    let s = |v: &str| AnyValue::String(StringValue::from(v.to_string()));
    out.push(("server.address".into(), s(&c.server.ip().to_string())));
    out.push(("server.port".into(), AnyValue::Int(c.server.port() as i64)));
    out.push(("client.address".into(), s(&c.client.ip().to_string())));
    out.push(("client.port".into(), AnyValue::Int(c.client.port() as i64)));
    if let Some(leaf) = c.server_leaf() {
        out.push(("tls.server.hash.sha256".into(), s(&leaf.sha256)));
    }
    let (ns, owner) = peer(c.correlation.destination.as_ref());
    out.push(("k8s.dst.namespace".into(), s(&ns)));
    out.push(("k8s.dst.owner.name".into(), s(&owner)));
}

pub fn certificate(logger: &SdkLogger, cert: &Certificate, time_us: i64) -> SdkLogRecord {
    let json = serde_json::to_value(CertificateRecord::from(cert)).unwrap_or(Json::Null);
    let sev = if cert.parse_error.is_some() {
        (Severity::Warn, "WARN")
    } else {
        (Severity::Info, "INFO")
    };
    let mut r = base(logger, EVENT_CERTIFICATE, time_us, sev);
    let mut attrs = Vec::new();
    flatten(EVENT_CERTIFICATE, &json, &mut attrs);
    add(&mut r, attrs);
    if let Some(b) = any(&json) {
        r.set_body(b);
    }
    r
}

/// The analysis stage's finding record (already deduplicated per window).
/// A finding line: `severity` and `time_us` are the finding's and its
/// connection's (or flow's).
pub fn finding(
    logger: &SdkLogger,
    f: &FindingRecord<'_>,
    severity: Level,
    time_us: i64,
) -> SdkLogRecord {
    let json = serde_json::to_value(f).unwrap_or(Json::Null);
    let mut r = base(logger, EVENT_FINDING, time_us, finding_severity(severity));
    let mut attrs = Vec::new();
    flatten(EVENT_FINDING, &json, &mut attrs);
    let s = |v: &str| AnyValue::String(StringValue::from(v.to_string()));
    attrs.push(("server.address".into(), s(&f.server.ip.to_string())));
    attrs.push(("server.port".into(), AnyValue::Int(f.server.port as i64)));
    attrs.push(("client.address".into(), s(&f.client.ip.to_string())));
    attrs.push(("client.port".into(), AnyValue::Int(f.client.port as i64)));
    if let Some(fp) = f.server_chain.first() {
        attrs.push(("tls.server.hash.sha256".into(), s(fp)));
    }
    if let Some(sni) = f.sni {
        attrs.push(("tls.client.server_name".into(), s(sni)));
    }
    let (ns, owner) = peer(f.destination);
    attrs.push(("k8s.dst.namespace".into(), s(&ns)));
    attrs.push(("k8s.dst.owner.name".into(), s(&owner)));
    add(&mut r, attrs);
    if let Some(b) = any(&json) {
        r.set_body(b);
    }
    r
}

pub fn handshake(logger: &SdkLogger, c: &Connection) -> SdkLogRecord {
    let json = serde_json::to_value(HandshakeRecord::from(c)).unwrap_or(Json::Null);
    let sev = if c.handshake.alert.is_some() {
        (Severity::Warn, "WARN")
    } else {
        (Severity::Info, "INFO")
    };
    let mut r = base(logger, EVENT_HANDSHAKE, c.time_us, sev);
    let mut attrs = Vec::new();
    flatten(EVENT_HANDSHAKE, &json, &mut attrs);
    context(c, &mut attrs);
    add(&mut r, attrs);
    if let Some(b) = any(&json) {
        r.set_body(b);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattening_keeps_lists_and_drops_nulls() {
        let mut out = Vec::new();
        flatten(
            "tls.certificate",
            &json!({"kind": "certificate", "sha256": "ab", "san": {"dns": ["a", "b"], "ip": []},
                    "key": {"type": "ec", "bits": 256, "curve": null}, "is_ca": false}),
            &mut out,
        );
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "tls.certificate.is_ca",
                "tls.certificate.key.bits",
                "tls.certificate.key.type",
                "tls.certificate.san.dns",
                "tls.certificate.san.ip",
                "tls.certificate.sha256"
            ]
        );
        assert_eq!(
            out[3].1,
            AnyValue::ListAny(Box::new(vec!["a".into(), "b".into()]))
        );
    }

    #[test]
    fn severities() {
        assert_eq!(finding_severity(Level::Critical).0, Severity::Fatal);
        assert_eq!(finding_severity(Level::High), (Severity::Error, "high"));
        assert_eq!(finding_severity(Level::Medium).0, Severity::Warn);
        assert_eq!(finding_severity(Level::Low).0, Severity::Info);
    }
}
