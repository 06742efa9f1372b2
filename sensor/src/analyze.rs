//! `sensor analyze`: capture files through the pipeline.
//!
//! A mapped capture file is read on two threads: one walks the file and
//! decodes frames into segments (first touches of the mapped memory, link
//! and IP headers), the other runs the pipeline on them in order. Segments
//! borrow from the map, so nothing is copied between the two; they travel
//! in batches over a bounded channel. A stream (a pipe) is read on one.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;

use indicatif::{ProgressBar, ProgressStyle};

use crate::analysis::Analysis;
use crate::capture::pcap::{self, CaptureFileError, MappedCapture, Opened, ReadOutcome};
use crate::capture::{CaptureStats, Segment};
use crate::export::{RecordSink, RunStats, Summary};
use crate::pipeline::{Pipeline, PipelineConfig};

/// Inputs smaller than this finish before a progress bar is worth drawing.
const PROGRESS_MIN_BYTES: u64 = 32 << 20;

/// Segments handed over at once, and batches in flight: enough to keep
/// both threads busy, little enough to stay in the CPU caches.
const BATCH: usize = 1024;
const BATCHES_IN_FLIGHT: usize = 8;

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
        let progress = |pos| {
            if let Some(b) = &bar {
                b.set_position(done_before + pos);
            }
        };
        let outcome = pcap::open(path).and_then(|opened| match opened {
            Opened::Mapped(m) => read_in_parallel(&m, &mut pipeline, progress),
            Opened::Streamed { file, name } => pcap::read_streamed(
                file,
                name,
                |f| pipeline.frame(f.linktype, f.timestamp_us, f.data),
                progress,
            ),
        });
        done_before += path.metadata().map(|m| m.len()).unwrap_or(0);
        let capture = pipeline.capture_stats();
        match outcome {
            Ok(o) => {
                capture.files += 1;
                if let Some(why) = o.damaged {
                    tracing::warn!(file = %path.display(), "capture damaged after {} frames: {why}", o.frames);
                    capture.files_damaged += 1;
                }
            }
            Err(e) => {
                capture.files_unreadable += 1;
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

/// Reads and decodes `file` on a thread of its own while the pipeline
/// consumes the segments here, in order.
fn read_in_parallel<K: RecordSink>(
    file: &MappedCapture,
    pipeline: &mut Pipeline<K>,
    progress: impl FnMut(u64) + Send,
) -> Result<ReadOutcome, CaptureFileError> {
    let (tx, rx) = mpsc::sync_channel::<Vec<Segment<'_>>>(BATCHES_IN_FLIGHT);
    // Emptied batches come back, so the reader allocates none after the first few.
    let (back_tx, back_rx) = mpsc::channel::<Vec<Segment<'_>>>();
    let (outcome, counted) = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut counted = CaptureStats::default();
            let mut batch = Vec::with_capacity(BATCH);
            let outcome = file.read(
                |f| {
                    if let Some(seg) = counted.frame(f.linktype, f.timestamp_us, f.data) {
                        batch.push(seg);
                    }
                    if batch.len() == BATCH {
                        let next = back_rx
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(BATCH));
                        // A closed channel means the consumer is gone: nothing to do.
                        let _ = tx.send(std::mem::replace(&mut batch, next));
                    }
                },
                progress,
            );
            let _ = tx.send(batch);
            (outcome, counted)
        });
        for mut batch in rx {
            for seg in &batch {
                pipeline.segment(seg);
            }
            batch.clear();
            let _ = back_tx.send(batch);
        }
        reader
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    pipeline.capture_stats().add(&counted);
    outcome
}
