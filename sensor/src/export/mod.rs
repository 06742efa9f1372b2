//! Output: the JSON records of RECORDS.md, JSON lines, the human table.

pub mod json;
pub mod metric_names;
pub mod records;
pub mod table;
pub mod timefmt;

pub use records::{CertificateRecord, FindingRecord, HandshakeRecord, RecordSink, Summary};
