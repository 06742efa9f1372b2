//! A record sink that keeps every record as the JSON value `--json` would
//! print, so library results compare like the binary's output.

use std::path::PathBuf;
use std::sync::Arc;

use sensor::analyze::analyze;
use sensor::export::{CertificateRecord, FindingRecord, HandshakeRecord, RecordSink, Summary};
use sensor::pipeline::PipelineConfig;
use sensor::x509::CertInfo;
use serde_json::Value;

#[derive(Default)]
pub struct Collect {
    pub lines: Vec<Value>,
    pub summary: Option<Summary>,
}

impl Collect {
    pub fn handshakes(&self) -> impl Iterator<Item = &Value> {
        self.lines.iter().filter(|l| l["kind"] == "handshake")
    }

    pub fn certificates(&self) -> impl Iterator<Item = &Value> {
        self.lines.iter().filter(|l| l["kind"] == "certificate")
    }

    pub fn findings(&self) -> impl Iterator<Item = &Value> {
        self.lines.iter().filter(|l| l["kind"] == "finding")
    }
}

impl RecordSink for Collect {
    fn handshake(&mut self, hs: &HandshakeRecord, _certs: &[Arc<CertInfo>]) {
        self.lines
            .push(serde_json::to_value(hs).expect("a handshake record serializes"));
    }

    fn certificate(&mut self, cert: &CertInfo) {
        self.lines.push(
            serde_json::to_value(CertificateRecord::from(cert))
                .expect("a certificate record serializes"),
        );
    }

    fn finding(&mut self, f: &FindingRecord) {
        self.lines
            .push(serde_json::to_value(f).expect("a finding record serializes"));
    }

    fn finish(&mut self, summary: &Summary) {
        self.summary = Some(summary.clone());
    }
}

/// What the library makes of some capture files.
pub struct Analyzed {
    pub records: Collect,
    pub summary: Summary,
    /// Files that could not be read, as the CLI would print them.
    pub failed: Vec<String>,
}

pub fn analyze_files(files: &[PathBuf]) -> Analyzed {
    analyze_with(files, sensor::analysis::Analysis::default())
}

/// `analyze_files` with an analysis of the caller's (a correlator, a policy).
pub fn analyze_with(files: &[PathBuf], analysis: sensor::analysis::Analysis) -> Analyzed {
    let out = analyze(
        files,
        PipelineConfig::default(),
        analysis,
        Collect::default(),
    );
    Analyzed {
        records: out.sink,
        summary: out.summary,
        failed: out.failed.iter().map(|e| e.to_string()).collect(),
    }
}
