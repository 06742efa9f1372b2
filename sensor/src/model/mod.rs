//! What the sensor knows, typed: the ground floor every stage speaks.
//!
//! A [`Connection`] carries one TLS connection from the TLS stage to the
//! sinks (handshake facts as typed values, chains as shared parsed
//! certificates, mesh, correlation, findings); a [`Flow`] carries one TCP
//! connection's traffic. No I/O here and no strings made for output: the
//! `export` stage renders these values, and only it.

pub mod certificate;
pub mod connection;
pub mod correlation;
pub mod correlator;
pub mod finding;
pub mod flow;
pub mod peer;
pub mod rules;
pub mod time;
pub mod tls;
pub mod traffic;

pub use certificate::{CertStatus, Certificate, KeyInfo, Sans};
pub use connection::{
    CertificateSource, Connection, HandshakeFacts, Mesh, MeshKind, ProbeOutcome, ProbeResult,
};
pub use correlation::{CertManagerRef, Correlation, InferredLeaf, IssuerRef, ObjectRef, Verdict};
pub use correlator::{Correlator, NoInventory, Serving};
pub use finding::Finding;
pub use flow::Flow;
pub use peer::{Owner, Peer, PeerKind, Workload};
pub use rules::{Rule, Severity};
pub use tls::{Alert, AlertDescription, CipherSuite, ProtocolVersion};
pub use traffic::{ConnTraffic, Counts, FlowEnd, FlowReport, FlowTls};
