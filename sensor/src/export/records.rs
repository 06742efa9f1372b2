//! The record shapes of RECORDS.md, rendered from `model` values. This is
//! the one module that knows them: the JSON lines, the OTLP log bodies and
//! the tests all serialize these.

use std::net::{IpAddr, SocketAddr};

use serde::{Serialize, Serializer};

use crate::model::time;
use crate::model::{
    AlertDescription, CertManagerRef, Certificate, CipherSuite, Connection, Counts, Finding, Flow,
    FlowReport, FlowTls, IssuerRef, KeyInfo, ObjectRef, Peer, ProbeOutcome, ProtocolVersion, Sans,
    Verdict,
};

/// A time in microseconds since the epoch, RFC 3339 when serialized. The
/// record holds the number and the text is written straight out: a String
/// per time field was an allocation per field on the hot path.
#[derive(Debug, Clone, Copy)]
pub struct Micros(pub i64);

impl Serialize for Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        time::with_micros(self.0, |t| s.serialize_str(t))
    }
}

/// A time in whole seconds since the epoch, RFC 3339 when serialized.
#[derive(Debug, Clone, Copy)]
pub struct Seconds(pub i64);

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        time::with_seconds(self.0, |t| s.serialize_str(t))
    }
}

/// A protocol number serialized as its `Display` spells it (a name, or
/// the hex of an unknown one), without a String in between.
#[derive(Debug, Clone, Copy)]
pub struct Shown<T>(pub T);

impl<T: std::fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: IpAddr,
    pub port: u16,
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Self {
        Endpoint {
            ip: a.ip(),
            port: a.port(),
        }
    }
}

/// A finding as it appears inside a handshake record.
#[derive(Debug, Serialize)]
pub struct FindingEntry<'a> {
    pub rule: &'static str,
    pub severity: &'static str,
    pub message: &'a str,
    /// Not in RECORDS.md: SHA-256 of the certificate the finding is about,
    /// null for findings about the connection.
    pub certificate: Option<&'a str>,
}

impl<'a> From<&'a Finding> for FindingEntry<'a> {
    fn from(f: &'a Finding) -> Self {
        FindingEntry {
            rule: f.rule.id(),
            severity: f.severity.name(),
            message: &f.message,
            certificate: f.certificate.as_deref(),
        }
    }
}

/// RECORDS.md `cert_manager`, plus the current revision, renewal time and
/// the issuer's type and readiness.
#[derive(Debug, Serialize)]
pub struct CertManagerRecord<'a> {
    pub certificate: &'a ObjectRef,
    pub revision: Option<u64>,
    pub issuer: &'a IssuerRef,
    pub current_revision: Option<u64>,
    pub renewal_time: Option<Seconds>,
    pub issuer_type: Option<&'a str>,
    pub issuer_ready: Option<bool>,
}

impl<'a> From<&'a CertManagerRef> for CertManagerRecord<'a> {
    fn from(c: &'a CertManagerRef) -> Self {
        CertManagerRecord {
            certificate: &c.certificate,
            revision: c.revision,
            issuer: &c.issuer,
            current_revision: c.current_revision,
            renewal_time: c.renewal_time.map(Seconds),
            issuer_type: c.issuer_type.as_deref(),
            issuer_ready: c.issuer_ready,
        }
    }
}

fn fingerprints(chain: &[std::sync::Arc<Certificate>]) -> Vec<&str> {
    chain.iter().map(|c| c.sha256.as_str()).collect()
}

/// RECORDS.md `probe`.
#[derive(Debug, Serialize)]
pub struct ProbeRecord {
    pub result: &'static str,
    pub time: Option<Micros>,
    pub cached: bool,
}

impl From<&ProbeOutcome> for ProbeRecord {
    fn from(p: &ProbeOutcome) -> Self {
        ProbeRecord {
            result: p.result.name(),
            time: p.time_us.map(Micros),
            cached: p.cached,
        }
    }
}

/// `kind: "handshake"`.
#[derive(Debug, Serialize)]
pub struct HandshakeRecord<'a> {
    pub kind: &'static str,
    pub time: Micros,
    pub client: Endpoint,
    pub server: Endpoint,
    pub version: Option<Shown<ProtocolVersion>>,
    pub cipher: Option<Shown<CipherSuite>>,
    pub sni: Option<&'a str>,
    pub alpn_offered: &'a [String],
    pub alpn: Option<&'a str>,
    pub ja3: Option<&'a str>,
    pub ja3s: Option<&'a str>,
    pub ja4: Option<&'a str>,
    pub resumed: Option<bool>,
    pub mutual: Option<bool>,
    pub server_chain: Vec<&'a str>,
    pub client_chain: Vec<&'a str>,
    pub certificate_source: Option<&'static str>,
    pub probe: Option<ProbeRecord>,
    pub starttls: Option<&'static str>,
    pub alert: Option<Shown<AlertDescription>>,
    pub mesh: Option<&'static str>,
    /// The served mesh certificate's URI SAN, else what the mesh SNI carries.
    pub mesh_identity: Option<&'a str>,
    pub findings: Vec<FindingEntry<'a>>,
    pub source: Option<&'a Peer>,
    pub destination: Option<&'a Peer>,
    pub verdict: Option<Verdict>,
    pub cert_manager: Option<CertManagerRecord<'a>>,
    /// Not in RECORDS.md: false when the handshake was cut short (gap,
    /// end of capture, bound) so its nulls mean "not seen" rather than "absent".
    pub complete: bool,
}

impl<'a> From<&'a Connection> for HandshakeRecord<'a> {
    fn from(c: &'a Connection) -> Self {
        let hs = &c.handshake;
        HandshakeRecord {
            kind: "handshake",
            time: Micros(c.time_us),
            client: c.client.into(),
            server: c.server.into(),
            version: hs.version.map(Shown),
            cipher: hs.cipher.map(Shown),
            sni: hs.sni.as_deref(),
            alpn_offered: &hs.alpn_offered,
            alpn: hs.alpn.as_deref(),
            ja3: hs.ja3.as_deref(),
            ja3s: hs.ja3s.as_deref(),
            ja4: hs.ja4.as_deref(),
            resumed: hs.resumed,
            mutual: hs.mutual,
            server_chain: fingerprints(&c.server_chain),
            client_chain: fingerprints(&c.client_chain),
            certificate_source: c.certificate_source.map(|s| s.name()),
            probe: c.probe.as_ref().map(Into::into),
            starttls: hs.starttls,
            alert: hs.alert.map(|a| Shown(a.description)),
            mesh: c.mesh.as_ref().map(|m| m.kind.name()),
            mesh_identity: c.mesh.as_ref().and_then(|m| m.identity.as_deref()),
            findings: c.findings.iter().map(Into::into).collect(),
            source: c.correlation.source.as_ref(),
            destination: c.correlation.destination.as_ref(),
            verdict: c.correlation.verdict,
            cert_manager: c.correlation.cert_manager.as_ref().map(Into::into),
            complete: hs.complete,
        }
    }
}

/// `kind: "finding"`: one line per rule and certificate (or flow) per
/// window, with the connection that showed it first.
#[derive(Debug, Serialize)]
pub struct FindingRecord<'a> {
    pub kind: &'static str,
    pub time: Micros,
    pub rule: &'static str,
    pub severity: &'static str,
    pub message: &'a str,
    pub certificate: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub client: Endpoint,
    pub server: Endpoint,
    pub sni: Option<&'a str>,
    pub version: Option<Shown<ProtocolVersion>>,
    pub cipher: Option<Shown<CipherSuite>>,
    pub ja3: Option<&'a str>,
    pub ja4: Option<&'a str>,
    pub server_chain: Vec<&'a str>,
    pub source: Option<&'a Peer>,
    pub destination: Option<&'a Peer>,
    pub verdict: Option<Verdict>,
    pub evidence: &'a serde_json::Value,
}

impl<'a> FindingRecord<'a> {
    fn base(f: &'a Finding, time_us: i64, client: SocketAddr, server: SocketAddr) -> Self {
        FindingRecord {
            kind: "finding",
            time: Micros(time_us),
            rule: f.rule.id(),
            severity: f.severity.name(),
            message: &f.message,
            certificate: f.certificate.as_deref(),
            subject: f.subject.as_deref(),
            client: client.into(),
            server: server.into(),
            sni: None,
            version: None,
            cipher: None,
            ja3: None,
            ja4: None,
            server_chain: Vec::new(),
            source: None,
            destination: None,
            verdict: None,
            evidence: &f.evidence,
        }
    }

    /// A finding of a TLS connection, with the connection's facts.
    pub fn of_connection(f: &'a Finding, c: &'a Connection) -> Self {
        let hs = &c.handshake;
        FindingRecord {
            sni: hs.sni.as_deref(),
            version: hs.version.map(Shown),
            cipher: hs.cipher.map(Shown),
            ja3: hs.ja3.as_deref(),
            ja4: hs.ja4.as_deref(),
            server_chain: fingerprints(&c.server_chain),
            source: c.correlation.source.as_ref(),
            destination: c.correlation.destination.as_ref(),
            verdict: c.correlation.verdict,
            ..Self::base(f, c.time_us, c.client, c.server)
        }
    }

    /// A finding of a flow without a handshake (`tls.plaintext`).
    pub fn of_flow(f: &'a Finding, flow: &'a Flow) -> Self {
        FindingRecord {
            source: flow.source.as_ref(),
            destination: flow.destination.as_ref(),
            ..Self::base(f, flow.first_us, flow.client, flow.server)
        }
    }
}

/// `kind: "certificate"`.
#[derive(Debug, Serialize)]
pub struct CertificateRecord<'a> {
    pub kind: &'static str,
    pub sha256: &'a str,
    pub subject: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub not_before: Option<Seconds>,
    pub not_after: Option<Seconds>,
    pub san: &'a Sans,
    pub key: Option<&'a KeyInfo>,
    pub signature_algorithm: Option<&'a str>,
    pub is_ca: Option<bool>,
    pub self_signed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<&'a str>,
}

impl<'a> From<&'a Certificate> for CertificateRecord<'a> {
    fn from(c: &'a Certificate) -> Self {
        let ok = c.parse_error.is_none();
        let known = |s: &'a String| ok.then_some(s.as_str());
        CertificateRecord {
            kind: "certificate",
            sha256: &c.sha256,
            subject: known(&c.subject),
            issuer: known(&c.issuer),
            serial: known(&c.serial),
            not_before: ok.then_some(Seconds(c.not_before)),
            not_after: ok.then_some(Seconds(c.not_after)),
            san: &c.san,
            key: ok.then_some(&c.key),
            signature_algorithm: known(&c.signature_algorithm),
            is_ca: ok.then_some(c.is_ca),
            self_signed: ok.then_some(c.self_signed),
            parse_error: c.parse_error.as_deref(),
        }
    }
}

/// RECORDS.md `interval` and `total` of a `flow` record.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct CountsRecord {
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub packets_to_server: u64,
    pub packets_to_client: u64,
}

impl From<&Counts> for CountsRecord {
    fn from(c: &Counts) -> Self {
        CountsRecord {
            bytes_to_server: c.bytes_to_server,
            bytes_to_client: c.bytes_to_client,
            packets_to_server: c.packets_to_server,
            packets_to_client: c.packets_to_client,
        }
    }
}

/// RECORDS.md `tls` of a `flow` record: its handshake's facts.
#[derive(Debug, Serialize)]
pub struct FlowTlsRecord<'a> {
    pub version: Option<Shown<ProtocolVersion>>,
    pub cipher: Option<Shown<CipherSuite>>,
    pub sni: Option<&'a str>,
    pub alpn_offered: &'a [String],
    pub alpn: Option<&'a str>,
    pub mesh: Option<&'static str>,
    pub mutual: Option<bool>,
    pub verdict: Option<Verdict>,
    pub server_leaf: Option<&'a str>,
}

impl<'a> From<&'a FlowTls> for FlowTlsRecord<'a> {
    fn from(t: &'a FlowTls) -> Self {
        FlowTlsRecord {
            version: t.version.map(Shown),
            cipher: t.cipher.map(Shown),
            sni: t.sni.as_deref(),
            alpn_offered: &t.alpn_offered,
            alpn: t.alpn.as_deref(),
            mesh: t.mesh.as_ref().map(|m| m.kind.name()),
            mutual: t.mutual,
            verdict: t.verdict,
            server_leaf: t.server_leaf.as_deref(),
        }
    }
}

/// `kind: "flow"`: one report of a connection's traffic.
#[derive(Debug, Serialize)]
pub struct FlowRecord<'a> {
    pub kind: &'static str,
    pub time: Micros,
    pub start: Micros,
    pub client: Endpoint,
    pub server: Endpoint,
    pub interval: CountsRecord,
    pub total: CountsRecord,
    pub end: Option<&'static str>,
    pub partial: bool,
    pub tls: Option<FlowTlsRecord<'a>>,
    pub source: Option<&'a Peer>,
    pub destination: Option<&'a Peer>,
}

impl<'a> From<&'a FlowReport> for FlowRecord<'a> {
    fn from(r: &'a FlowReport) -> Self {
        let t = &r.traffic;
        FlowRecord {
            kind: "flow",
            time: Micros(t.time_us),
            start: Micros(t.start_us),
            client: t.client.into(),
            server: t.server.into(),
            interval: (&r.interval).into(),
            total: (&t.total).into(),
            end: t.end.map(|e| e.name()),
            partial: t.partial,
            tls: r.tls.as_deref().map(Into::into),
            source: r.source.as_ref(),
            destination: r.destination.as_ref(),
        }
    }
}

/// Any record line.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Record<'a> {
    Certificate(CertificateRecord<'a>),
    Handshake(Box<HandshakeRecord<'a>>),
    Finding(Box<FindingRecord<'a>>),
}

/// The lines a TLS connection gives, in order: its certificates seen for
/// the first time, the handshake, and the finding lines of its findings
/// that are the first of their kind in the window.
pub fn connection_records(c: &Connection) -> impl Iterator<Item = Record<'_>> {
    let certs = c
        .new_certificates
        .iter()
        .map(|cert| Record::Certificate(cert.as_ref().into()));
    let findings = c
        .findings
        .iter()
        .filter(|f| f.first)
        .map(move |f| Record::Finding(Box::new(FindingRecord::of_connection(f, c))));
    certs
        .chain(std::iter::once(Record::Handshake(Box::new(c.into()))))
        .chain(findings)
}

/// The lines a flow gives: the finding lines of its first findings.
pub fn flow_records(flow: &Flow) -> impl Iterator<Item = Record<'_>> {
    flow.findings
        .iter()
        .filter(|f| f.first)
        .map(move |f| Record::Finding(Box::new(FindingRecord::of_flow(f, flow))))
}
