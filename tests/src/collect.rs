//! A record sink that keeps every record as the JSON value `--json` would
//! print, so library results compare like the binary's output.

use std::path::PathBuf;

use sensor::analyze::analyze;
use sensor::export::records::{connection_records, flow_records};
use sensor::export::{RecordSink, RunStats, Summary};
use sensor::model::{Connection, Flow};
use sensor::pipeline::PipelineConfig;
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
    fn connection(&mut self, c: &Connection) {
        let lines =
            connection_records(c).map(|r| serde_json::to_value(r).expect("a record serializes"));
        self.lines.extend(lines);
    }

    fn flow(&mut self, flow: &Flow) {
        let lines =
            flow_records(flow).map(|r| serde_json::to_value(r).expect("a record serializes"));
        self.lines.extend(lines);
    }

    fn finish(&mut self, stats: &RunStats) {
        self.summary = Some(Summary::from(stats));
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
    analyze_with(files, PipelineConfig::default())
}

/// `analyze_files` with a pipeline configuration of the caller's (a correlator).
pub fn analyze_with(files: &[PathBuf], cfg: PipelineConfig) -> Analyzed {
    let out = analyze(
        files,
        cfg,
        sensor::analysis::Analysis::default(),
        Collect::default(),
    );
    Analyzed {
        records: out.sink,
        summary: out.summary,
        failed: out.failed.iter().map(|e| e.to_string()).collect(),
    }
}
