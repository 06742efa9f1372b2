//! The record types of RECORDS.md, built from pipeline results.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

use super::timefmt;
use crate::analysis::correlation::Verdict;
use crate::inventory::correlate::CertManagerRef;
use crate::inventory::{Identity, InventoryStats};
use crate::tls::Handshake;
use crate::tls::names::{alert_name, cipher_name, version_name};
use crate::x509::{CertInfo, KeyInfo, Sans};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: String,
    pub port: u16,
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint {
            ip: a.ip().to_string(),
            port: a.port(),
        }
    }
}

/// A finding as it appears inside a handshake record.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: String,
    pub message: String,
    /// Not in RECORDS.md: SHA-256 of the certificate the finding is about,
    /// null for findings about the connection.
    pub certificate: Option<String>,
}

impl From<&crate::analysis::Finding> for Finding {
    fn from(f: &crate::analysis::Finding) -> Self {
        Finding {
            rule: f.rule.id().to_string(),
            severity: f.severity.name().to_string(),
            message: f.message.clone(),
            certificate: f.certificate.clone(),
        }
    }
}

/// `kind: "finding"`: one line per rule and certificate (or flow) per
/// window, with the connection that showed it first.
#[derive(Debug, Clone, Serialize)]
pub struct FindingRecord {
    pub kind: &'static str,
    pub time: String,
    pub rule: String,
    pub severity: String,
    pub message: String,
    pub certificate: Option<String>,
    pub subject: Option<String>,
    pub client: Endpoint,
    pub server: Endpoint,
    pub sni: Option<String>,
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub ja3: Option<String>,
    pub ja4: Option<String>,
    pub server_chain: Vec<String>,
    pub source: Option<Identity>,
    pub destination: Option<Identity>,
    pub verdict: Option<Verdict>,
    pub evidence: serde_json::Value,
    #[serde(skip)]
    pub time_us: i64,
    #[serde(skip)]
    pub rule_id: Option<crate::analysis::Rule>,
    #[serde(skip)]
    pub severity_level: Option<crate::analysis::Severity>,
}

impl FindingRecord {
    pub fn new(f: &crate::analysis::Finding, hs: &HandshakeRecord) -> Self {
        FindingRecord {
            kind: "finding",
            time: hs.time.clone(),
            rule: f.rule.id().to_string(),
            severity: f.severity.name().to_string(),
            message: f.message.clone(),
            certificate: f.certificate.clone(),
            subject: f.subject.clone(),
            client: hs.client.clone(),
            server: hs.server.clone(),
            sni: hs.sni.clone(),
            version: hs.version.clone(),
            cipher: hs.cipher.clone(),
            ja3: hs.ja3.clone(),
            ja4: hs.ja4.clone(),
            server_chain: hs.server_chain.clone(),
            source: hs.source.clone(),
            destination: hs.destination.clone(),
            verdict: hs.verdict,
            evidence: f.evidence.clone(),
            time_us: hs.time_us,
            rule_id: Some(f.rule),
            severity_level: Some(f.severity),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct HandshakeRecord {
    pub kind: &'static str,
    pub time: String,
    pub client: Endpoint,
    pub server: Endpoint,
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub sni: Option<String>,
    pub alpn_offered: Vec<String>,
    pub alpn: Option<String>,
    pub ja3: Option<String>,
    pub ja3s: Option<String>,
    pub ja4: Option<String>,
    pub resumed: Option<bool>,
    pub mutual: Option<bool>,
    pub server_chain: Vec<String>,
    pub client_chain: Vec<String>,
    pub certificate_source: Option<&'static str>,
    pub alert: Option<String>,
    pub mesh: Option<String>,
    /// Not in RECORDS.md: the identity the mesh SNI carries (see analysis::mesh).
    pub mesh_identity: Option<String>,
    pub findings: Vec<Finding>,
    pub source: Option<Identity>,
    pub destination: Option<Identity>,
    pub verdict: Option<Verdict>,
    pub cert_manager: Option<CertManagerRef>,
    /// Not in RECORDS.md: false when the handshake was cut short (gap,
    /// end of capture, bound) so its nulls mean "not seen" rather than "absent".
    pub complete: bool,
    #[serde(skip)]
    pub time_us: i64,
}

impl HandshakeRecord {
    pub fn new(
        hs: &Handshake,
        client: SocketAddr,
        server: SocketAddr,
        time_us: i64,
        server_chain: Vec<String>,
        client_chain: Vec<String>,
    ) -> Self {
        let ch = hs.client_hello.as_ref();
        let sh = hs.server_hello.as_ref();
        let tls13 = hs.is_tls13();
        let source = (!server_chain.is_empty() || !client_chain.is_empty()).then_some("observed");
        HandshakeRecord {
            kind: "handshake",
            time: timefmt::micros(time_us),
            client: client.into(),
            server: server.into(),
            version: hs.version().map(version_name),
            cipher: sh.map(|s| cipher_name(s.cipher)),
            sni: ch.and_then(|c| c.sni.clone()),
            alpn_offered: ch
                .map(|c| {
                    c.alpn
                        .iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            alpn: if tls13 {
                None
            } else {
                sh.and_then(|s| s.alpn.as_ref())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
            },
            ja3: hs.ja3.clone(),
            ja3s: hs.ja3s.clone(),
            ja4: hs.ja4.clone(),
            resumed: hs.resumed(),
            mutual: hs.mutual(),
            server_chain,
            client_chain,
            certificate_source: source,
            alert: hs.alert.map(alert_name),
            mesh: None,
            mesh_identity: None,
            findings: Vec::new(),
            source: None,
            destination: None,
            verdict: None,
            cert_manager: None,
            complete: hs.complete,
            time_us,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CertificateRecord {
    pub kind: &'static str,
    pub sha256: String,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub serial: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub san: Sans,
    pub key: Option<KeyInfo>,
    pub signature_algorithm: Option<String>,
    pub is_ca: Option<bool>,
    pub self_signed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
}

impl From<&CertInfo> for CertificateRecord {
    fn from(c: &CertInfo) -> Self {
        let ok = c.parse_error.is_none();
        let known = |s: &String| ok.then(|| s.clone());
        CertificateRecord {
            kind: "certificate",
            sha256: c.sha256.clone(),
            subject: known(&c.subject),
            issuer: known(&c.issuer),
            serial: known(&c.serial),
            not_before: ok.then(|| timefmt::seconds(c.not_before)),
            not_after: ok.then(|| timefmt::seconds(c.not_after)),
            san: c.san.clone(),
            key: ok.then(|| c.key.clone()),
            signature_algorithm: known(&c.signature_algorithm),
            is_ca: ok.then_some(c.is_ca),
            self_signed: ok.then_some(c.self_signed),
            parse_error: c.parse_error.clone(),
        }
    }
}

/// Totals of one run, and every error by kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub kind: &'static str,
    pub files: u64,
    pub frames: u64,
    pub bytes: u64,
    pub tcp_segments: u64,
    pub connections: u64,
    pub tls_connections: u64,
    pub handshakes: u64,
    pub certificates: u64,
    /// TCP connections that carried payload and never started TLS.
    pub plaintext_flows: u64,
    /// Findings in handshake records, by rule.
    pub findings: BTreeMap<String, u64>,
    /// Findings suppressed by policy exceptions, by rule.
    pub findings_suppressed: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    /// Live capture only: the kernel program's counters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kernel: BTreeMap<String, u64>,
    /// With an inventory: objects, drops, rejections and sync state per kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventoryStats>,
}

/// Where records go: JSON lines, the table, OTLP.
pub trait RecordSink {
    fn handshake(&mut self, hs: &HandshakeRecord, certs: &[std::sync::Arc<CertInfo>]);
    fn certificate(&mut self, cert: &CertInfo);
    /// A finding's own line (first of its rule and certificate or flow in
    /// the window); it follows the handshake record that carries it.
    fn finding(&mut self, _finding: &FindingRecord) {}
    /// Bytes of a connection that ended (`tls.traffic.bytes`); only the
    /// OTLP sink counts them.
    fn traffic(&mut self, _sample: &super::otlp::attributes::TrafficSample) {}
    fn finish(&mut self, _summary: &Summary) {}
}
