//! Output, and only output: renders `model` values as the JSON records of
//! RECORDS.md, JSON lines, the human table, OTLP metrics and logs.

pub mod json;
pub mod json_write;
pub mod metric_names;
pub mod otlp;
pub mod records;
pub mod summary;
pub mod table;
pub mod tee;

pub use records::{CertificateRecord, FindingRecord, HandshakeRecord};
pub use summary::{RunStats, SensorSnapshot, Summary};

use crate::model::{Connection, Flow, FlowReport};

/// Where the pipeline's results go: JSON lines, the table, OTLP.
pub trait RecordSink {
    /// A TLS connection whose handshake was judged: its first-seen
    /// certificates, the handshake, and its findings (those marked `first`
    /// get a finding line of their own).
    fn connection(&mut self, conn: &Connection);
    /// A plaintext TCP connection that ended: its findings.
    fn flow(&mut self, _flow: &Flow) {}
    /// A connection's traffic since its previous report (RECORDS.md
    /// `flow`; `tls.traffic.*`, `tls.connections`, `tls.connection.duration`).
    fn flow_report(&mut self, _report: &FlowReport) {}
    /// The end of the run, with every stage's statistics.
    fn finish(&mut self, _stats: &RunStats) {}
    /// What was written so far reaches its reader. Live, records are
    /// written through a buffer and flushed once per batch read from the
    /// kernel: a write per line cost a sixth of the sensor's CPU in a
    /// connection storm.
    fn flush(&mut self) {}
}
