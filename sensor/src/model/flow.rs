//! One TCP connection's traffic, as flow accounting reports it when the
//! connection ends.

use std::net::SocketAddr;

use super::connection::Mesh;
use super::finding::Finding;
use super::peer::Peer;
use super::tls::ProtocolVersion;

#[derive(Debug, Clone)]
pub struct Flow {
    /// The side that sent the SYN (without one, the higher port).
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// First and last packet, microseconds since the epoch.
    pub first_us: i64,
    pub last_us: i64,
    /// TCP payload bytes each way.
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    /// The bytes were TLS records (false: plaintext TCP).
    pub encrypted: bool,
    pub version: Option<ProtocolVersion>,
    pub mesh: Option<Mesh>,
    /// Who the peers are (from the handshake's correlation, or asked of
    /// the correlator for a plaintext flow); `None` when not known.
    pub source: Option<Peer>,
    pub destination: Option<Peer>,
    /// `tls.plaintext` and the like, judged when the flow ended.
    pub findings: Vec<Finding>,
}

impl Flow {
    pub fn bytes(&self) -> u64 {
        self.bytes_to_server + self.bytes_to_client
    }
}

impl Flow {
    /// A connection's counts as capture or reassembly saw them, before
    /// correlation and analysis.
    pub fn new(
        client: SocketAddr,
        server: SocketAddr,
        first_us: i64,
        last_us: i64,
        bytes_to_server: u64,
        bytes_to_client: u64,
    ) -> Self {
        Flow {
            client,
            server,
            first_us,
            last_us,
            bytes_to_server,
            bytes_to_client,
            encrypted: false,
            version: None,
            mesh: None,
            source: None,
            destination: None,
            findings: Vec::new(),
        }
    }
}
