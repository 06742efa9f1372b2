//! Output: the JSON records of RECORDS.md, JSON lines, the human table,
//! OTLP metrics and logs.

pub mod json;
pub mod metric_names;
pub mod otlp;
pub mod records;
pub mod table;
pub mod tee;
pub mod timefmt;

pub use records::{CertificateRecord, FindingRecord, HandshakeRecord, RecordSink, Summary};
