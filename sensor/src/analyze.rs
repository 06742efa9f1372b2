//! `sensor analyze`: capture files through the pipeline.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::analysis::Analysis;
use crate::capture::pcap::{CaptureFileError, read_file};
use crate::export::{RecordSink, RunStats, Summary};
use crate::pipeline::{Pipeline, PipelineConfig};

/// Inputs smaller than this finish before a progress bar is worth drawing.
const PROGRESS_MIN_BYTES: u64 = 32 << 20;

pub struct AnalyzeOutcome<K> {
    pub sink: K,
    pub stats: RunStats,
    /// `stats` as the summary line renders them.
    pub summary: Summary,
    /// Files that could not be read at all, with the reason.
    pub failed: Vec<CaptureFileError>,
}

pub fn analyze<K: RecordSink>(
    files: &[PathBuf],
    cfg: PipelineConfig,
    analysis: Analysis,
    sink: K,
) -> AnalyzeOutcome<K> {
    let mut pipeline = Pipeline::with_analysis(cfg, analysis, sink);
    let total: u64 = files
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    let bar = (std::io::stderr().is_terminal() && total >= PROGRESS_MIN_BYTES).then(|| {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut failed = Vec::new();
    let mut done_before: u64 = 0;
    for path in files {
        let outcome = read_file(
            path,
            |f| pipeline.frame(f.linktype, f.timestamp_us, f.data),
            |pos| {
                if let Some(b) = &bar {
                    b.set_position(done_before + pos);
                }
            },
        );
        done_before += path.metadata().map(|m| m.len()).unwrap_or(0);
        match outcome {
            Ok(o) => {
                pipeline.capture_stats().files += 1;
                if let Some(why) = o.damaged {
                    tracing::warn!(file = %path.display(), "capture damaged after {} frames: {why}", o.frames);
                    pipeline.capture_stats().files_damaged += 1;
                }
            }
            Err(e) => {
                pipeline.capture_stats().files_unreadable += 1;
                failed.push(e);
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let (sink, stats) = pipeline.finish();
    AnalyzeOutcome {
        sink,
        summary: Summary::from(&stats),
        stats,
        failed,
    }
}
