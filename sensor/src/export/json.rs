use std::io::Write;

use super::RecordSink;
use super::records::{FlowRecord, connection_records, flow_records};
use super::summary::{RunStats, Summary};
use crate::model::{Connection, Flow, FlowReport};

/// JSON lines, one record per line, as RECORDS.md specifies.
pub struct JsonLines<W: Write> {
    out: W,
    /// The first write error; later writes are skipped (e.g. a closed pipe).
    pub error: Option<std::io::Error>,
}

impl<W: Write> JsonLines<W> {
    pub fn new(out: W) -> Self {
        Self { out, error: None }
    }

    fn line<T: serde::Serialize>(&mut self, v: &T) {
        if self.error.is_some() {
            return;
        }
        let r = serde_json::to_writer(&mut self.out, v)
            .map_err(std::io::Error::from)
            .and_then(|_| self.out.write_all(b"\n"));
        if let Err(e) = r {
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
        self.line(&Summary::from(stats));
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
