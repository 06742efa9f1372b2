//! A TCP connection's traffic as it flows: counts sampled while it is open
//! (`ConnTraffic`), and the periodic reports made of them (`FlowReport`,
//! RECORDS.md `kind = "flow"`), each with the delta since the previous one.

use std::net::SocketAddr;
use std::sync::Arc;

use super::connection::Mesh;
use super::correlation::Verdict;
use super::peer::Peer;
use super::tls::{CipherSuite, ProtocolVersion};

/// TCP payload bytes and payload-carrying segments, each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub packets_to_server: u64,
    pub packets_to_client: u64,
}

impl Counts {
    pub fn bytes(&self) -> u64 {
        self.bytes_to_server + self.bytes_to_client
    }

    pub fn packets(&self) -> u64 {
        self.packets_to_server + self.packets_to_client
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }

    /// What was added since `earlier` (saturating: counts never go back,
    /// but a reader must not panic on a torn read).
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            bytes_to_server: self.bytes_to_server.saturating_sub(earlier.bytes_to_server),
            bytes_to_client: self.bytes_to_client.saturating_sub(earlier.bytes_to_client),
            packets_to_server: self
                .packets_to_server
                .saturating_sub(earlier.packets_to_server),
            packets_to_client: self
                .packets_to_client
                .saturating_sub(earlier.packets_to_client),
        }
    }
}

/// Why a connection's last report is its last (RECORDS.md `end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlowEnd {
    Fin,
    Rst,
    /// Nothing seen for the idle timeout.
    Idle,
    /// The capture ended (sensor stopped, end of the capture file).
    Shutdown,
}

impl FlowEnd {
    pub fn name(self) -> &'static str {
        match self {
            FlowEnd::Fin => "fin",
            FlowEnd::Rst => "rst",
            FlowEnd::Idle => "idle",
            FlowEnd::Shutdown => "shutdown",
        }
    }
}

/// One connection's counts since its start, as the capture sees them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnTraffic {
    /// The side that sent the SYN (without one, the higher port).
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// Its SYN, or its first packet seen when `partial`; µs since the epoch.
    pub start_us: i64,
    /// When these counts were taken (an end: the last packet); µs.
    pub time_us: i64,
    pub total: Counts,
    /// Its first payload was TLS.
    pub encrypted: bool,
    /// Open before its SYN was seen.
    pub partial: bool,
    /// `Some` when the connection ended.
    pub end: Option<FlowEnd>,
}

/// What a TLS connection's handshake said, as its flow reports carry it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FlowTls {
    pub version: Option<ProtocolVersion>,
    pub cipher: Option<CipherSuite>,
    pub sni: Option<String>,
    pub alpn_offered: Vec<String>,
    pub alpn: Option<String>,
    pub mesh: Option<Mesh>,
    pub mutual: Option<bool>,
    pub verdict: Option<Verdict>,
    /// SHA-256 of the served leaf, lowercase hex.
    pub server_leaf: Option<String>,
}

/// One report of a connection's traffic (RECORDS.md `kind = "flow"`).
#[derive(Debug, Clone)]
pub struct FlowReport {
    pub traffic: ConnTraffic,
    /// Since the previous report of this connection.
    pub interval: Counts,
    /// `None` for plaintext; for TLS, its handshake's facts (default when
    /// the handshake was not seen: a connection picked up mid-way).
    pub tls: Option<Arc<FlowTls>>,
    pub source: Option<Peer>,
    pub destination: Option<Peer>,
}

impl FlowReport {
    /// Seconds from the start to this report (the duration, on the last).
    pub fn duration_s(&self) -> f64 {
        (self.traffic.time_us - self.traffic.start_us).max(0) as f64 / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_the_delta_and_never_negative() {
        let a = Counts {
            bytes_to_server: 10,
            bytes_to_client: 20,
            packets_to_server: 1,
            packets_to_client: 2,
        };
        let b = Counts {
            bytes_to_server: 15,
            bytes_to_client: 20,
            packets_to_server: 2,
            packets_to_client: 2,
        };
        assert_eq!(b.since(&a).bytes(), 5);
        assert_eq!(b.since(&a).packets(), 1);
        assert!(a.since(&b).is_zero());
    }
}
