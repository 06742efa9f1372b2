//! One TLS connection as the stages fill it in: the TLS stage's handshake
//! facts, the x509 stage's chains, mesh, correlation, findings.

use std::net::SocketAddr;
use std::sync::Arc;

use super::certificate::Certificate;
use super::correlation::Correlation;
use super::finding::Finding;
use super::tls::{Alert, CipherSuite, ProtocolVersion};

/// What one handshake showed in clear (RECORDS.md `handshake`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeFacts {
    /// Negotiated; from supported_versions when present.
    pub version: Option<ProtocolVersion>,
    pub cipher: Option<CipherSuite>,
    pub sni: Option<String>,
    pub alpn_offered: Vec<String>,
    /// Chosen in the ServerHello (TLS <= 1.2 only: TLS 1.3 encrypts it).
    pub alpn: Option<String>,
    pub ja3: Option<String>,
    pub ja3s: Option<String>,
    pub ja4: Option<String>,
    pub resumed: Option<bool>,
    pub mutual: Option<bool>,
    pub alert: Option<Alert>,
    /// The handshake was followed to its end (not cut by a gap, the
    /// capture's end or a bound): its nulls mean "absent", not "not seen".
    pub complete: bool,
    /// How TLS started inside another protocol (RECORDS.md `starttls`:
    /// "postgres", "smtp", ...), None when it started the connection.
    pub starttls: Option<&'static str>,
}

impl HandshakeFacts {
    /// TLS 1.3 or a draft of it: the chain is encrypted either way.
    pub fn is_tls13(&self) -> bool {
        self.version.is_some_and(ProtocolVersion::is_tls13_family)
    }
}

/// Where the server's certificate came from (RECORDS.md `certificate_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateSource {
    Observed,
    Probed,
    Inferred,
}

impl CertificateSource {
    pub fn name(self) -> &'static str {
        match self {
            CertificateSource::Observed => "observed",
            CertificateSource::Probed => "probed",
            CertificateSource::Inferred => "inferred",
        }
    }
}

/// How a probe for the served certificate ended (RECORDS.md `probe.result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeResult {
    Ok,
    Refused,
    Reset,
    Timeout,
    Alert,
    NotTls,
    RateLimited,
    OutOfScope,
    Off,
}

impl ProbeResult {
    pub const ALL: [ProbeResult; 9] = [
        ProbeResult::Ok,
        ProbeResult::Refused,
        ProbeResult::Reset,
        ProbeResult::Timeout,
        ProbeResult::Alert,
        ProbeResult::NotTls,
        ProbeResult::RateLimited,
        ProbeResult::OutOfScope,
        ProbeResult::Off,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProbeResult::Ok => "ok",
            ProbeResult::Refused => "refused",
            ProbeResult::Reset => "reset",
            ProbeResult::Timeout => "timeout",
            ProbeResult::Alert => "alert",
            ProbeResult::NotTls => "not_tls",
            ProbeResult::RateLimited => "rate_limited",
            ProbeResult::OutOfScope => "out_of_scope",
            ProbeResult::Off => "off",
        }
    }
}

/// The probe behind a handshake that hid the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub result: ProbeResult,
    /// When the probe ended (the chain was obtained, for `Ok`),
    /// microseconds since the epoch; `None` when no probe was made.
    pub time_us: Option<i64>,
    /// Answered from the cache rather than by a connection of its own.
    pub cached: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeshKind {
    Istio,
    Linkerd,
    Consul,
}

impl MeshKind {
    pub fn name(self) -> &'static str {
        match self {
            MeshKind::Istio => "istio",
            MeshKind::Linkerd => "linkerd",
            MeshKind::Consul => "consul",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mesh {
    pub kind: MeshKind,
    /// Istio: the destination `host:port` (`/subset` when set) of its
    /// `outbound_` SNI; Linkerd: `system:serviceaccount:NS:SA` of the
    /// server's identity; Consul: the destination service name.
    pub identity: Option<String>,
}

/// One TLS connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The side that sent the ClientHello.
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// The connection's first packet, microseconds since the epoch.
    pub time_us: i64,
    pub handshake: HandshakeFacts,
    /// In the order sent (or obtained, see `certificate_source`).
    pub server_chain: Vec<Arc<Certificate>>,
    pub client_chain: Vec<Arc<Certificate>>,
    pub certificate_source: Option<CertificateSource>,
    /// `None` when the handshake showed the server's chain (or no probe
    /// was considered).
    pub probe: Option<ProbeOutcome>,
    /// Certificates of this connection seen for the first time in the
    /// run, in order of sighting: each gets its record before the
    /// connection's.
    pub new_certificates: Vec<Arc<Certificate>>,
    pub mesh: Option<Mesh>,
    pub correlation: Correlation,
    pub findings: Vec<Finding>,
}

impl Connection {
    pub fn new(client: SocketAddr, server: SocketAddr, time_us: i64) -> Self {
        Connection {
            client,
            server,
            time_us,
            handshake: HandshakeFacts::default(),
            server_chain: Vec::new(),
            client_chain: Vec::new(),
            certificate_source: None,
            probe: None,
            new_certificates: Vec::new(),
            mesh: None,
            correlation: Correlation::default(),
            findings: Vec::new(),
        }
    }

    /// The server's leaf, when a chain is known.
    pub fn server_leaf(&self) -> Option<&Arc<Certificate>> {
        self.server_chain.first()
    }
}
