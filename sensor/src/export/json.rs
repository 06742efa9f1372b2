use std::io::Write;

use super::RecordSink;
use super::json_write::{Serde, WriteJson};
use super::records::{FlowRecord, connection_records, flow_records};
use super::summary::{RunStats, Summary};
use crate::model::{Connection, Flow, FlowReport};

/// JSON lines, one record per line, as RECORDS.md specifies.
pub struct JsonLines<W: Write> {
    out: W,
    /// The line being written, handed to `out` whole.
    line: Vec<u8>,
    /// The first write error; later writes are skipped (e.g. a closed pipe).
    pub error: Option<std::io::Error>,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            line: Vec::with_capacity(4096),
            error: None,
        }
    }

    fn line(&mut self, v: &impl WriteJson) {
        if self.error.is_some() {
            return;
        }
        self.line.clear();
        v.write_json(&mut self.line);
        self.line.push(b'\n');
        if let Err(e) = self.out.write_all(&self.line) {
            self.error = Some(e);
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> RecordSink for JsonLines<W> {
    fn connection(&mut self, conn: &Connection) {
        for r in connection_records(conn) {
            self.line(&r);
        }
    }

    fn flow(&mut self, flow: &Flow) {
        for r in flow_records(flow) {
            self.line(&r);
        }
    }

    fn flow_report(&mut self, report: &FlowReport) {
        self.line(&FlowRecord::from(report));
    }

    fn finish(&mut self, stats: &RunStats) {
        self.line(&Serde(Summary::from(stats)));
        self.flush();
    }

    fn flush(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e);
        }
    }
}
