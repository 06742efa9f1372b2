//! `sensor analyze`: capture files through the pipeline.
//!
//! A mapped capture file is read on two threads: one walks the file's
//! frames (first touches of the mapped memory) and decodes their link, IP
//! and TCP headers unless the other is waiting for them, the other runs
//! the pipeline on them in order. Frames and segments borrow from the map,
//! so nothing is copied between the two; they travel
//! in batches over a bounded channel, and the reader hands the map's pages
//! back to the kernel only behind the pipeline's position, so resident
//! memory follows what is in flight, not the file's size. A stream (a pipe)
//! is read on one thread.

use std::cell::Cell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use indicatif::{ProgressBar, ProgressStyle};

use crate::analysis::Analysis;
use crate::capture::pcap::{self, CaptureFileError, Frame, MappedCapture, Opened, ReadOutcome};
use crate::capture::{CaptureStats, Segment};
use crate::export::{RecordSink, RunStats, Summary};
use crate::pipeline::{Pipeline, PipelineConfig};

/// Inputs smaller than this finish before a progress bar is worth drawing.
const PROGRESS_MIN_BYTES: u64 = 32 << 20;

/// Segments handed over at once, or the frames of this many file bytes,
/// whichever comes first; and batches in flight. The work per byte differs
/// between the threads from one stretch of a capture to the next (bulk
/// transfers weigh on the reader, handshakes on the pipeline): 32 batches
/// let either run ahead through the other's heavy stretch, and the byte
/// bound keeps what is in flight, and so mapped, to 32 MiB.
const BATCH: usize = 1024;
const BATCH_BYTES: usize = 1 << 20;
const BATCHES_IN_FLIGHT: usize = 32;
/// Batches waiting for the pipeline from which on the reader decodes. A
/// frame decoded on the pipeline costs more CPU (its headers are read
/// again, on another core), so the reader hands frames over undecoded only
/// when the pipeline is about to run dry: on the bench capture that is
/// 6 % less wall time for 8 % more CPU.
const BACKLOG: usize = 3;
/// Frames the pipeline asks the CPU for ahead of decoding them: the reader
/// touched them on the other core, so the first look at each (link, IP and
/// TCP headers: one line, often two) otherwise waits for a transfer between
/// caches.
const AHEAD: usize = 4;

/// How the reader cuts the file into batches and when it decodes: the
/// constants above, or a test's smaller values (every capture of the
/// project fits in one batch of 1,024).
#[derive(Clone, Copy)]
struct Split {
    batch: usize,
    backlog: usize,
}

const SPLIT: Split = Split {
    batch: BATCH,
    backlog: BACKLOG,
};

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
            Opened::Mapped(m) => read_in_parallel(&m, &mut pipeline, progress, SPLIT),
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

/// A frame as the reader hands it over: decoded, or left for the pipeline
/// to decode while it would otherwise wait (see [`read_in_parallel`]).
enum Item<'a> {
    Segment(Segment<'a>),
    Frame(Frame<'a>),
}

/// The frames of one stretch of the file, which ends at `end`.
struct Batch<'a> {
    items: Vec<Item<'a>>,
    end: usize,
}

/// Reads `file` on a thread of its own while the pipeline consumes its
/// frames here, in order.
///
/// Which thread decodes a frame's link, IP and TCP headers is decided per
/// batch by how many batches wait for the pipeline: with a backlog the
/// reader decodes, so that the pipeline has less to do; with none the
/// pipeline is about to wait for the reader, so the reader hands the
/// frames over undecoded and gets ahead sooner. The two threads' loads then
/// even out over stretches of the capture that weigh on either.
fn read_in_parallel<K: RecordSink>(
    file: &MappedCapture,
    pipeline: &mut Pipeline<K>,
    mut progress: impl FnMut(u64) + Send,
    split: Split,
) -> Result<ReadOutcome, CaptureFileError> {
    let (tx, rx) = mpsc::sync_channel::<Batch<'_>>(BATCHES_IN_FLIGHT);
    // Emptied batches come back, so the reader allocates none after the first few.
    let (back_tx, back_rx) = mpsc::channel::<Vec<Item<'_>>>();
    // How far the pipeline got: the reader releases the pages before it.
    let consumed = AtomicUsize::new(0);
    // Batches sent and not yet taken by the pipeline.
    let waiting = AtomicUsize::new(0);
    let (outcome, counted) = std::thread::scope(|s| {
        let (consumed, waiting) = (&consumed, &waiting);
        // Named, so that profiles and `top` tell the two threads apart.
        let reader = std::thread::Builder::new().name("capture-reader".into());
        let reader = match reader.spawn_scoped(s, move || {
            let mut counted = CaptureStats::default();
            let parsed = Cell::new(0);
            let mut batch = Batch {
                items: Vec::with_capacity(split.batch),
                end: 0,
            };
            let mut start = 0;
            // The pipeline starts out waiting.
            let mut decode = false;
            let outcome = file.read(
                // Inlined: a frame passed to a closure of its own is read
                // back whole right after it was written field by field,
                // a store-forwarding stall on every frame.
                #[inline(always)]
                |f| {
                    if !decode {
                        batch.items.push(Item::Frame(f));
                    } else if let Some(seg) = counted.frame(f.linktype, f.timestamp_us, f.data) {
                        batch.items.push(Item::Segment(seg));
                    }
                    // Frames before this one are in the batch or were skipped.
                    let end = parsed.get();
                    if batch.items.len() == split.batch || end - start >= BATCH_BYTES {
                        let next = back_rx
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(split.batch));
                        let full = std::mem::replace(&mut batch.items, next);
                        start = end;
                        decode = waiting.fetch_add(1, Ordering::Relaxed) + 1 >= split.backlog;
                        // A closed channel means the consumer is gone: nothing to do.
                        let _ = tx.send(Batch { items: full, end });
                    }
                },
                |at| {
                    parsed.set(at as usize);
                    progress(at);
                },
                |_| consumed.load(Ordering::Acquire),
            );
            batch.end = parsed.get();
            waiting.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(batch);
            (outcome, counted)
        }) {
            Ok(reader) => reader,
            Err(source) => {
                let path = file.name().to_string();
                let failed = Err(CaptureFileError::Open { path, source });
                return (failed, CaptureStats::default());
            }
        };
        for mut batch in rx {
            waiting.fetch_sub(1, Ordering::Relaxed);
            for (i, item) in batch.items.iter().enumerate() {
                if let Some(Item::Frame(f)) = batch.items.get(i + AHEAD) {
                    pcap::prefetch(f.data.as_ptr());
                    // The TCP header's end, when the frame starts late in a line.
                    pcap::prefetch(f.data.as_ptr().wrapping_add(63));
                }
                match item {
                    Item::Segment(seg) => pipeline.segment(seg),
                    Item::Frame(f) => pipeline.frame(f.linktype, f.timestamp_us, f.data),
                }
            }
            batch.items.clear();
            consumed.store(batch.end, Ordering::Release);
            let _ = back_tx.send(batch.items);
        }
        reader
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    });
    pipeline.capture_stats().add(&counted);
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::json::JsonLines;

    fn finish(pipeline: Pipeline<JsonLines<Vec<u8>>>) -> String {
        let (sink, _) = pipeline.finish();
        String::from_utf8(sink.into_inner()).unwrap()
    }

    /// Whichever thread decodes a frame, and however the file is cut into
    /// batches, the records and the summary (frames, skips) are those of
    /// the same file read and decoded on one thread.
    #[test]
    fn both_threads_decode_alike_and_count_every_frame_once() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
        let mut captures: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
            .collect();
        captures.sort();
        assert!(captures.len() > 5, "captures in {}", dir.display());
        let new = || Pipeline::new(PipelineConfig::default(), JsonLines::new(Vec::new()));
        let splits = [
            // Never decoded by the reader.
            Split {
                batch: 2,
                backlog: usize::MAX,
            },
            // The first batch raw (the pipeline starts out waiting), every
            // later one decoded by the reader.
            Split {
                batch: 3,
                backlog: 1,
            },
            // Either, as the two threads happen to run.
            Split {
                batch: 1,
                backlog: 2,
            },
        ];
        for path in &captures {
            let mut one = new();
            pcap::read_file(
                path,
                |f| one.frame(f.linktype, f.timestamp_us, f.data),
                |_| {},
            )
            .unwrap();
            let expected = finish(one);
            assert!(expected.contains("\"frames\":"), "{}", path.display());
            for split in splits {
                let Ok(Opened::Mapped(m)) = pcap::open(path) else {
                    panic!("{} is not mapped", path.display());
                };
                let mut two = new();
                read_in_parallel(&m, &mut two, |_| {}, split).unwrap();
                assert_eq!(
                    finish(two),
                    expected,
                    "{} in batches of {} (backlog {})",
                    path.display(),
                    split.batch,
                    split.backlog
                );
            }
        }
    }
}
