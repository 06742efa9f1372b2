//! The log path's back-pressure: a bounded queue between the pipeline and
//! the exporter thread. `emit` never waits; a full queue drops the record
//! and counts it, a failed export counts its batch as lost.
//!
//! Written here rather than using the SDK's BatchLogProcessor because that
//! one drops silently: its drop count is private, and every drop must be
//! a metric.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};

/// Counts of the export path, read by the `sensor.export.*` instruments.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub logs_exported: AtomicU64,
    pub logs_dropped_queue_full: AtomicU64,
    pub logs_dropped_export_failed: AtomicU64,
    pub log_export_failures: AtomicU64,
    pub metric_export_failures: AtomicU64,
    pub metric_exports: AtomicU64,
}

impl ExportStats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

type Item = Box<(SdkLogRecord, InstrumentationScope)>;

enum Msg {
    Record(Item),
    Flush(SyncSender<()>),
    Shutdown(SyncSender<()>),
}

/// Tells the exporter thread's outcome to the rest of the sensor, once per
/// change, so a collector outage is one warning rather than one per batch.
#[derive(Debug, Default)]
pub struct FailureLog {
    failing: std::sync::atomic::AtomicBool,
}

impl FailureLog {
    pub fn failed(&self, signal: &str, err: &OTelSdkError) {
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                signal,
                "OTLP export failing, data is dropped and counted: {err}"
            );
        }
    }

    pub fn succeeded(&self, signal: &str) {
        if self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!(signal, "OTLP export recovered");
        }
    }
}

#[derive(Debug)]
pub struct BoundedLogProcessor {
    tx: SyncSender<Msg>,
    stats: Arc<ExportStats>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

pub struct QueueConfig {
    pub capacity: usize,
    pub batch: usize,
    pub delay: Duration,
}

impl BoundedLogProcessor {
    pub fn new<E: LogExporter + 'static>(
        mut exporter: E,
        resource: &Resource,
        cfg: QueueConfig,
        stats: Arc<ExportStats>,
    ) -> std::io::Result<Self> {
        exporter.set_resource(resource);
        let (tx, rx) = sync_channel(cfg.capacity);
        let st = stats.clone();
        let worker = std::thread::Builder::new()
            .name("otlp-logs".into())
            .spawn(move || worker(exporter, rx, cfg.batch.max(1), cfg.delay, st))?;
        Ok(Self {
            tx,
            stats,
            worker: Mutex::new(Some(worker)),
        })
    }

    fn control(
        &self,
        make: impl FnOnce(SyncSender<()>) -> Msg,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (ack_tx, ack_rx) = sync_channel(1);
        // Blocking send: flush and shutdown may wait for room, emit never does.
        self.tx
            .send(make(ack_tx))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        ack_rx
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

fn worker<E: LogExporter>(
    exporter: E,
    rx: Receiver<Msg>,
    max_batch: usize,
    delay: Duration,
    stats: Arc<ExportStats>,
) {
    let failures = FailureLog::default();
    let mut batch: Vec<Item> = Vec::with_capacity(max_batch);
    let mut deadline: Option<Instant> = None;
    let export = |batch: &mut Vec<Item>| {
        if batch.is_empty() {
            return;
        }
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> =
            batch.iter().map(|b| (&b.0, &b.1)).collect();
        // Not inside a tokio context: the HTTP client is reqwest's blocking
        // one, and the gRPC channel runs on the exporter's own runtime.
        match futures::executor::block_on(exporter.export(LogBatch::new(&refs))) {
            Ok(()) => {
                stats
                    .logs_exported
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                failures.succeeded("logs");
            }
            Err(e) => {
                stats.log_export_failures.fetch_add(1, Ordering::Relaxed);
                stats
                    .logs_dropped_export_failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                failures.failed("logs", &e);
            }
        }
        batch.clear();
    };
    loop {
        let wait = deadline.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Msg::Record(r)) => {
                batch.push(r);
                deadline.get_or_insert_with(|| Instant::now() + delay);
                if batch.len() >= max_batch {
                    export(&mut batch);
                    deadline = None;
                }
            }
            Ok(Msg::Flush(ack)) => {
                // Everything queued before the flush request is ahead of it.
                export(&mut batch);
                deadline = None;
                ack.send(()).ok();
            }
            Ok(Msg::Shutdown(ack)) => {
                export(&mut batch);
                exporter.shutdown().ok();
                ack.send(()).ok();
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                export(&mut batch);
                deadline = None;
            }
            Err(RecvTimeoutError::Disconnected) => {
                export(&mut batch);
                return;
            }
        }
    }
}

impl LogProcessor for BoundedLogProcessor {
    fn emit(&self, data: &mut SdkLogRecord, scope: &InstrumentationScope) {
        let item = Box::new((data.clone(), scope.clone()));
        match self.tx.try_send(Msg::Record(item)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats
                    .logs_dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.control(Msg::Flush, Duration::from_secs(60))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let r = self.control(Msg::Shutdown, timeout);
        if let Ok(mut w) = self.worker.lock()
            && let Some(h) = w.take()
            && r.is_ok()
        {
            h.join().ok();
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
    use opentelemetry_sdk::logs::SdkLoggerProvider;
    use std::sync::Condvar;

    /// An exporter that holds its first export until released, then
    /// fails or succeeds as told, recording how many records it saw.
    #[derive(Debug, Clone, Default)]
    struct Gate {
        inner: Arc<(Mutex<GateState>, Condvar)>,
    }

    #[derive(Debug, Default)]
    struct GateState {
        open: bool,
        fail: bool,
        exported: usize,
        calls: usize,
    }

    impl LogExporter for Gate {
        async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
            let (m, cv) = &*self.inner;
            let mut s = m.lock().unwrap();
            s.calls += 1;
            cv.notify_all();
            while !s.open {
                s = cv.wait(s).unwrap();
            }
            if s.fail {
                return Err(OTelSdkError::InternalFailure("collector down".into()));
            }
            s.exported += batch.iter().count();
            Ok(())
        }
    }

    fn provider(
        gate: &Gate,
        capacity: usize,
        batch: usize,
    ) -> (SdkLoggerProvider, Arc<ExportStats>) {
        let stats = Arc::new(ExportStats::default());
        let p = BoundedLogProcessor::new(
            gate.clone(),
            &Resource::builder_empty().build(),
            QueueConfig {
                capacity,
                batch,
                delay: Duration::from_secs(3600),
            },
            stats.clone(),
        )
        .unwrap();
        (
            SdkLoggerProvider::builder().with_log_processor(p).build(),
            stats,
        )
    }

    fn emit(p: &SdkLoggerProvider, n: usize) {
        let logger = p.logger("test");
        for _ in 0..n {
            let mut r = logger.create_log_record();
            r.set_event_name("x");
            logger.emit(r);
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let gate = Gate::default();
        let (p, stats) = provider(&gate, 5, 1);
        // The first record reaches the exporter and blocks it there.
        emit(&p, 1);
        {
            let (m, cv) = &*gate.inner;
            let mut s = m.lock().unwrap();
            while s.calls == 0 {
                s = cv.wait(s).unwrap();
            }
        }
        // Five fit in the queue, the next seven are dropped.
        emit(&p, 12);
        assert_eq!(ExportStats::get(&stats.logs_dropped_queue_full), 7);
        {
            let (m, cv) = &*gate.inner;
            m.lock().unwrap().open = true;
            cv.notify_all();
        }
        p.force_flush().unwrap();
        assert_eq!(gate.inner.0.lock().unwrap().exported, 6);
        assert_eq!(ExportStats::get(&stats.logs_exported), 6);
        p.shutdown().unwrap();
    }

    #[test]
    fn failed_exports_count_their_records_as_lost() {
        let gate = Gate::default();
        {
            let mut s = gate.inner.0.lock().unwrap();
            s.open = true;
            s.fail = true;
        }
        let (p, stats) = provider(&gate, 100, 4);
        emit(&p, 10);
        p.force_flush().unwrap();
        assert_eq!(ExportStats::get(&stats.logs_dropped_export_failed), 10);
        assert_eq!(
            ExportStats::get(&stats.log_export_failures),
            3,
            "batches of 4, 4, 2"
        );
        gate.inner.0.lock().unwrap().fail = false;
        emit(&p, 3);
        p.force_flush().unwrap();
        assert_eq!(ExportStats::get(&stats.logs_exported), 3);
        assert_eq!(ExportStats::get(&stats.logs_dropped_export_failed), 10);
        p.shutdown().unwrap();
    }
}
