use std::io::Write;
use std::sync::Arc;

use super::records::{CertificateRecord, FindingRecord, HandshakeRecord, RecordSink, Summary};
use crate::x509::CertInfo;

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
    fn handshake(&mut self, hs: &HandshakeRecord, _certs: &[Arc<CertInfo>]) {
        self.line(hs);
    }

    fn certificate(&mut self, cert: &CertInfo) {
        self.line(&CertificateRecord::from(cert));
    }

    fn finding(&mut self, f: &FindingRecord) {
        self.line(f);
    }

    fn finish(&mut self, summary: &Summary) {
        self.line(summary);
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
    }
}
