//! OTLP export: the metrics and log events of DESIGN.md "Telemetry".
//!
//! [`OtlpExporter::new`] builds the SDK providers from an [`OtlpConfig`];
//! [`OtlpExporter::sink`] gives a [`RecordSink`] for the pipeline (cheap to
//! clone, `Send`), which also takes the sensor's own counters
//! ([`OtlpSink::record_snapshot`]); [`OtlpExporter::shutdown`] sends what is
//! left. Nothing on the record path waits for the network: metrics are
//! aggregated in memory and read by the SDK's periodic reader thread, log
//! records go through a bounded queue ([`queue`]) to their own thread.

pub mod attributes;
pub mod cardinality;
pub mod config;
pub mod logs;
pub mod queue;
pub mod resource;
pub mod transport;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::logs::{Logger as _, LoggerProvider as _};
use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use self::attributes::CERTIFICATE_GAUGE_EXEMPT;
use self::cardinality::Limiter;
pub use self::config::{ConfigError, OtlpArgs, OtlpConfig, Protocol};
use self::queue::{BoundedLogProcessor, ExportStats, FailureLog, QueueConfig};
use self::transport::{CountingMetricExporter, TransportError};
use self::window::{CertSighting, CertWindow, DedupWindow, StreamClock};
use crate::export::RecordSink;
use crate::export::metric_names;
use crate::export::records::FindingRecord;
use crate::export::summary::RunStats;
pub use crate::export::summary::SensorSnapshot;
use crate::model::{Certificate, Connection, Flow, FlowReport};

// Named from the one list that the deployment's dashboard and alerts are
// checked against.
pub const M_HANDSHAKES: &str = metric_names::HANDSHAKES.name;
pub const M_NOT_AFTER: &str = metric_names::CERTIFICATE_NOT_AFTER.name;
pub const M_CERTIFICATES: &str = metric_names::CERTIFICATES.name;
pub const M_FINDINGS: &str = metric_names::FINDINGS.name;
pub const M_TRAFFIC: &str = metric_names::TRAFFIC_BYTES.name;
pub const M_PACKETS: &str = metric_names::TRAFFIC_PACKETS.name;
pub const M_CONNECTIONS: &str = metric_names::CONNECTIONS.name;
pub const M_DURATION: &str = metric_names::CONNECTION_DURATION.name;

/// `tls.connection.duration` buckets, seconds: from a request's
/// connection to a pooled one that lives for days.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// Keys remembered for log deduplication, per event.
const DEDUP_KEYS: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("starting the OTLP export threads: {0}")]
    Io(#[from] std::io::Error),
    #[error("OTLP {signal} {what}: {message}")]
    Sdk {
        signal: &'static str,
        what: &'static str,
        message: String,
    },
}

/// Totals of the export path, also returned by [`OtlpExporter::shutdown`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportReport {
    pub metric_exports: u64,
    pub metric_export_failures: u64,
    pub logs_exported: u64,
    pub logs_dropped_queue_full: u64,
    pub logs_dropped_export_failed: u64,
    pub log_export_failures: u64,
}

impl ExportReport {
    fn from_stats(s: &ExportStats) -> Self {
        let g = ExportStats::get;
        ExportReport {
            metric_exports: g(&s.metric_exports),
            metric_export_failures: g(&s.metric_export_failures),
            logs_exported: g(&s.logs_exported),
            logs_dropped_queue_full: g(&s.logs_dropped_queue_full),
            logs_dropped_export_failed: g(&s.logs_dropped_export_failed),
            log_export_failures: g(&s.log_export_failures),
        }
    }

    pub fn logs_dropped(&self) -> u64 {
        self.logs_dropped_queue_full + self.logs_dropped_export_failed
    }

    pub fn any_failure(&self) -> bool {
        self.metric_export_failures > 0 || self.log_export_failures > 0 || self.logs_dropped() > 0
    }
}

struct State {
    clock: StreamClock,
    limiters: HashMap<&'static str, Limiter>,
    certs: CertWindow,
    cert_logs: DedupWindow,
    overflows: BTreeMap<(&'static str, &'static str), u64>,
    snapshot: SensorSnapshot,
}

impl State {
    fn limit(&mut self, metric: &'static str, attrs: cardinality::Attrs) -> Vec<KeyValue> {
        let limiter = self.limiters.get_mut(metric).expect("a limiter per metric");
        let (kvs, over) = limiter.apply(attrs);
        for a in over {
            *self.overflows.entry((metric, a)).or_default() += 1;
        }
        kvs
    }
}

struct Shared {
    state: Mutex<State>,
    stats: Arc<ExportStats>,
    handshake_logs: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not stop the export of what is there.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
struct Instruments {
    handshakes: Counter<u64>,
    findings: Counter<u64>,
    traffic: Counter<u64>,
    packets: Counter<u64>,
    connections: Counter<u64>,
    duration: Histogram<f64>,
}

fn instruments(meter: &Meter, shared: &Arc<Shared>) -> Instruments {
    let s = shared.clone();
    meter
        .i64_observable_gauge(M_NOT_AFTER)
        .with_unit(metric_names::CERTIFICATE_NOT_AFTER.unit)
        .with_description(
            "Expiry (unix time) of each server certificate seen within the certificate window",
        )
        .with_callback(move |o| {
            let mut st = s.lock();
            let now = st.clock.now_us(Instant::now());
            for c in st.certs.live(now) {
                if let Some(na) = c.not_after {
                    o.observe(na, &c.attrs);
                }
            }
        })
        .build();
    let s = shared.clone();
    meter
        .u64_observable_gauge(M_CERTIFICATES)
        .with_unit(metric_names::CERTIFICATES.unit)
        .with_description(
            "Distinct server certificates seen within the certificate window, by verdict and status",
        )
        .with_callback(move |o| {
            let mut st = s.lock();
            let now = st.clock.now_us(Instant::now());
            let mut by: BTreeMap<(String, &'static str), std::collections::BTreeSet<String>> =
                BTreeMap::new();
            for c in st.certs.live(now) {
                by.entry((c.verdict.clone(), c.status))
                    .or_default()
                    .insert(c.sha256.clone());
            }
            for ((verdict, status), set) in by {
                o.observe(
                    set.len() as u64,
                    &[
                        KeyValue::new("tls.certificate.verdict", verdict),
                        KeyValue::new("tls.certificate.status", status),
                    ],
                );
            }
        })
        .build();
    self_telemetry(meter, shared);
    Instruments {
        handshakes: meter
            .u64_counter(M_HANDSHAKES)
            .with_unit(metric_names::HANDSHAKES.unit)
            .with_description("TLS handshakes seen")
            .build(),
        findings: meter
            .u64_counter(M_FINDINGS)
            .with_unit(metric_names::FINDINGS.unit)
            .with_description("Findings raised on handshakes and certificates")
            .build(),
        traffic: meter
            .u64_counter(M_TRAFFIC)
            .with_unit(metric_names::TRAFFIC_BYTES.unit)
            .with_description("TCP payload bytes between workloads, encrypted (TLS) or not")
            .build(),
        packets: meter
            .u64_counter(M_PACKETS)
            .with_unit(metric_names::TRAFFIC_PACKETS.unit)
            .with_description("TCP segments carrying payload, encrypted (TLS) or not")
            .build(),
        connections: meter
            .u64_counter(M_CONNECTIONS)
            .with_unit(metric_names::CONNECTIONS.unit)
            .with_description("TCP connections that ended, by how they ended")
            .build(),
        duration: meter
            .f64_histogram(M_DURATION)
            .with_unit(metric_names::CONNECTION_DURATION.unit)
            .with_description("How long TCP connections lived, from SYN (or first sighting) to end")
            .with_boundaries(DURATION_BUCKETS.to_vec())
            .build(),
    }
}

fn self_telemetry(meter: &Meter, shared: &Arc<Shared>) {
    let snap_counter =
        |metric: metric_names::Metric, desc: &'static str, f: fn(&SensorSnapshot) -> u64| {
            let s = shared.clone();
            meter
                .u64_observable_counter(metric.name)
                .with_unit(metric.unit)
                .with_description(desc)
                .with_callback(move |o| o.observe(f(&s.lock().snapshot), &[]))
                .build();
        };
    snap_counter(metric_names::PACKETS, "Packets seen by the capture", |s| {
        s.packets
    });
    snap_counter(
        metric_names::EVENTS_LOST,
        "Capture events lost between kernel and user space",
        |s| s.events_lost,
    );
    snap_counter(
        metric_names::FLOWS_EVICTED,
        "Flows evicted from a full flow map or connection table",
        |s| s.flows_evicted,
    );
    let s = shared.clone();
    meter
        .u64_observable_counter(metric_names::PARSE_ERRORS.name)
        .with_unit(metric_names::PARSE_ERRORS.unit)
        .with_description("Bad input counted and skipped, by kind")
        .with_callback(move |o| {
            for (k, v) in &s.lock().snapshot.parse_errors {
                o.observe(*v, &[KeyValue::new("error.type", *k)]);
            }
        })
        .build();
    let s = shared.clone();
    meter
        .u64_observable_counter(metric_names::PROBES.name)
        .with_unit(metric_names::PROBES.unit)
        .with_description(
            "Probes for certificates handshakes hid, by result (ok, failures, and probes not made)",
        )
        .with_callback(move |o| {
            for (k, v) in &s.lock().snapshot.probes {
                o.observe(*v, &[KeyValue::new("result", *k)]);
            }
        })
        .build();
    let s = shared.clone();
    meter
        .u64_observable_gauge(metric_names::INVENTORY_SYNCED.name)
        .with_description("1 when the inventory watch of a resource is synced, else 0")
        .with_callback(move |o| {
            for (k, v) in &s.lock().snapshot.inventory_synced {
                o.observe(
                    u64::from(*v),
                    &[KeyValue::new("sensor.inventory.resource", *k)],
                );
            }
        })
        .build();
    type ByResource = fn(&SensorSnapshot) -> &BTreeMap<&'static str, u64>;
    let by_resource: [(metric_names::Metric, &'static str, ByResource); 2] = [
        (
            metric_names::INVENTORY_RETRIES,
            "Failed Kubernetes lists and watches retried, by resource (410 Gone excluded)",
            |s| &s.inventory_retries,
        ),
        (
            metric_names::INVENTORY_RELISTS,
            "Kubernetes lists started, by resource",
            |s| &s.inventory_relists,
        ),
    ];
    for (metric, desc, f) in by_resource {
        let s = shared.clone();
        meter
            .u64_observable_counter(metric.name)
            .with_unit(metric.unit)
            .with_description(desc)
            .with_callback(move |o| {
                for (k, v) in f(&s.lock().snapshot) {
                    o.observe(*v, &[KeyValue::new("sensor.inventory.resource", *k)]);
                }
            })
            .build();
    }
    snap_counter(
        metric_names::OWN_CONNECTIONS,
        "The sensor's own connections, not reported as traffic",
        |s| s.own_connections,
    );
    let s = shared.clone();
    meter
        .u64_observable_counter(metric_names::EXPORT_FAILURES.name)
        .with_unit(metric_names::EXPORT_FAILURES.unit)
        .with_description("OTLP export requests that failed, by signal")
        .with_callback(move |o| {
            let g = ExportStats::get;
            o.observe(
                g(&s.stats.metric_export_failures),
                &[KeyValue::new("signal", "metrics")],
            );
            o.observe(
                g(&s.stats.log_export_failures),
                &[KeyValue::new("signal", "logs")],
            );
        })
        .build();
    let s = shared.clone();
    meter
        .u64_observable_counter(metric_names::EXPORT_DROPPED.name)
        .with_unit(metric_names::EXPORT_DROPPED.unit)
        .with_description("Log records dropped: queue full, or their export failed")
        .with_callback(move |o| {
            let g = ExportStats::get;
            for (reason, c) in [
                ("queue_full", &s.stats.logs_dropped_queue_full),
                ("export_failed", &s.stats.logs_dropped_export_failed),
            ] {
                o.observe(
                    g(c),
                    &[
                        KeyValue::new("signal", "logs"),
                        KeyValue::new("reason", reason),
                    ],
                );
            }
        })
        .build();
    let s = shared.clone();
    meter
        .u64_observable_counter(metric_names::EXPORT_RECORDS.name)
        .with_unit(metric_names::EXPORT_RECORDS.unit)
        .with_description("Log records the collector accepted")
        .with_callback(move |o| {
            o.observe(
                ExportStats::get(&s.stats.logs_exported),
                &[KeyValue::new("signal", "logs")],
            )
        })
        .build();
    let s = shared.clone();
    meter
        .u64_observable_counter(metric_names::CARDINALITY_OVERFLOWS.name)
        .with_unit(metric_names::CARDINALITY_OVERFLOWS.unit)
        .with_description(
            "Attribute values (or whole series) replaced by _overflow because a limit was reached",
        )
        .with_callback(move |o| {
            for ((metric, attr), n) in &s.lock().overflows {
                o.observe(
                    *n,
                    &[
                        KeyValue::new("metric", *metric),
                        KeyValue::new("attribute", *attr),
                    ],
                );
            }
        })
        .build();
    let s = shared.clone();
    meter
        .u64_observable_counter(metric_names::DEDUP_EVICTIONS.name)
        .with_unit(metric_names::DEDUP_EVICTIONS.unit)
        .with_description(
            "Log deduplication keys forgotten before their window ended (the table was full)",
        )
        .with_callback(move |o| {
            o.observe(
                s.lock().cert_logs.evictions,
                &[KeyValue::new("event", logs::EVENT_CERTIFICATE)],
            );
        })
        .build();
}

/// The running export: SDK providers, their threads and the gRPC runtime.
pub struct OtlpExporter {
    shared: Arc<Shared>,
    instruments: Instruments,
    meter_provider: Option<SdkMeterProvider>,
    logger_provider: Option<SdkLoggerProvider>,
    logger: Option<SdkLogger>,
    runtime: Option<IoRuntime>,
    metric_interval: Duration,
}

/// A current-thread tokio runtime driven by its own thread: the gRPC
/// channel's tasks live there, apart from whatever runtime the caller has.
struct IoRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IoRuntime {
    fn start() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("otlp-io".into())
            .spawn(move || {
                rt.block_on(async {
                    stopped.await.ok();
                });
            })?;
        Ok(IoRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            s.send(()).ok();
        }
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

impl OtlpExporter {
    /// Builds the exporters; the network is not touched until the first
    /// export, so an absent collector is not a start-up error. Callable from
    /// inside or outside a tokio runtime.
    pub fn new(cfg: OtlpConfig) -> Result<Self, OtlpError> {
        let runtime = IoRuntime::start()?;
        let handle = runtime.handle.clone();
        let stats = Arc::new(ExportStats::default());
        let resource = resource::build(&cfg.resource);
        let st = stats.clone();
        let c = cfg.clone();
        // Built on a plain thread inside our runtime's context: tonic's lazy
        // channel needs the context, and the caller's own context (if any)
        // must not be the one it lands in.
        let built = std::thread::spawn(move || -> Result<_, OtlpError> {
            let _guard = handle.enter();
            let meter_provider = match &c.metrics {
                Some(s) => {
                    let exporter = CountingMetricExporter {
                        inner: transport::metric_exporter(&c, s)?,
                        stats: st.clone(),
                        failures: FailureLog::default(),
                    };
                    let reader = PeriodicReader::builder(exporter)
                        .with_interval(c.metric_interval)
                        .build();
                    SdkMeterProvider::builder()
                        .with_resource(resource.clone())
                        .with_reader(reader)
                        .build()
                }
                // No reader: instruments are recorded into nothing.
                None => SdkMeterProvider::builder().build(),
            };
            let logger_provider = match &c.logs {
                Some(s) => {
                    let processor = BoundedLogProcessor::new(
                        transport::log_exporter(&c, s)?,
                        &resource,
                        QueueConfig {
                            capacity: c.log_queue,
                            batch: c.log_batch,
                            delay: c.log_delay,
                        },
                        st.clone(),
                    )?;
                    Some(
                        SdkLoggerProvider::builder()
                            .with_resource(resource)
                            .with_log_processor(processor)
                            .build(),
                    )
                }
                None => None,
            };
            Ok((meter_provider, logger_provider))
        })
        .join();
        let (meter_provider, logger_provider) = match built {
            Ok(r) => r?,
            Err(_) => {
                return Err(OtlpError::Sdk {
                    signal: "metrics",
                    what: "setup",
                    message: "the setup thread panicked".into(),
                });
            }
        };
        let window_us = cfg.certificate_window.as_micros() as i64;
        let dedup_us = cfg.log_dedup_window.as_micros() as i64;
        let mut limiters = HashMap::new();
        for m in [
            M_HANDSHAKES,
            M_FINDINGS,
            M_TRAFFIC,
            M_PACKETS,
            M_CONNECTIONS,
            M_DURATION,
        ] {
            limiters.insert(
                m,
                Limiter::new(cfg.max_attribute_values, cfg.max_series, &[]),
            );
        }
        // The certificate gauge's series are bounded by its window instead.
        limiters.insert(
            M_NOT_AFTER,
            Limiter::new(
                cfg.max_attribute_values,
                usize::MAX,
                CERTIFICATE_GAUGE_EXEMPT,
            ),
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                clock: StreamClock::default(),
                limiters,
                certs: CertWindow::new(window_us, cfg.max_series),
                cert_logs: DedupWindow::new(dedup_us, DEDUP_KEYS),
                overflows: BTreeMap::new(),
                snapshot: SensorSnapshot::default(),
            }),
            stats,
            handshake_logs: cfg.handshake_logs,
        });
        let meter = meter_provider.meter("tls-sensor");
        let instruments = instruments(&meter, &shared);
        let logger = logger_provider.as_ref().map(|p| p.logger("tls-sensor"));
        Ok(OtlpExporter {
            shared,
            instruments,
            meter_provider: Some(meter_provider),
            logger_provider,
            logger,
            runtime: Some(runtime),
            metric_interval: cfg.metric_interval,
        })
    }

    /// A record sink feeding this exporter; clones share all state.
    pub fn sink(&self) -> OtlpSink {
        OtlpSink {
            shared: self.shared.clone(),
            instruments: self.instruments.clone(),
            logger: self.logger.clone(),
        }
    }

    pub fn report(&self) -> ExportReport {
        ExportReport::from_stats(&self.shared.stats)
    }

    pub fn metric_interval(&self) -> Duration {
        self.metric_interval
    }

    /// Exports metrics now and sends every queued log record; waits for both.
    pub fn flush(&self) -> Result<(), OtlpError> {
        if let Some(p) = &self.logger_provider {
            p.force_flush().map_err(|e| OtlpError::Sdk {
                signal: "logs",
                what: "flush",
                message: e.to_string(),
            })?;
        }
        if let Some(p) = &self.meter_provider {
            p.force_flush().map_err(|e| OtlpError::Sdk {
                signal: "metrics",
                what: "flush",
                message: e.to_string(),
            })?;
        }
        Ok(())
    }

    /// Sends the last logs and a final metric export, stops the threads.
    /// A failed final export is in the report (and was logged), not an error.
    pub fn shutdown(mut self) -> ExportReport {
        self.stop();
        self.report()
    }

    fn stop(&mut self) {
        // Logs first: their drop counters then reach the final metric export.
        if let Some(p) = self.logger_provider.take() {
            self.logger = None;
            if let Err(e) = p.shutdown() {
                tracing::warn!("OTLP logs shutdown: {e}");
            }
        }
        if let Some(p) = self.meter_provider.take()
            && let Err(e) = p.shutdown()
        {
            tracing::debug!("OTLP metrics shutdown: {e}");
        }
        if let Some(mut rt) = self.runtime.take() {
            rt.stop();
        }
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A log record decided under the lock, built after it.
enum PendingLog<'a> {
    Certificate(&'a Certificate),
    Handshake,
    Finding(&'a crate::model::Finding),
}

/// Feeds records into the exporter's instruments and log queue.
#[derive(Clone)]
pub struct OtlpSink {
    shared: Arc<Shared>,
    instruments: Instruments,
    logger: Option<SdkLogger>,
}

impl OtlpSink {
    /// Replaces the `sensor.*` totals read at the next metric export.
    pub fn record_snapshot(&self, snapshot: SensorSnapshot) {
        self.shared.lock().snapshot = snapshot;
    }

    pub fn report(&self) -> ExportReport {
        ExportReport::from_stats(&self.shared.stats)
    }
}

impl RecordSink for OtlpSink {
    fn connection(&mut self, c: &Connection) {
        let mut logs: Vec<PendingLog<'_>> = Vec::new();
        let (hs_attrs, findings) = {
            let mut st = self.shared.lock();
            st.clock.observe(c.time_us, Instant::now());
            let now_us = st.clock.now_us(Instant::now());
            let hs_attrs = st.limit(M_HANDSHAKES, attributes::handshake(c));
            // The gauge describes the server's own certificate, which is
            // what verdict, source and cert-manager attributes are about.
            if let Some(leaf) = c.server_leaf() {
                let attrs = st.limit(M_NOT_AFTER, attributes::certificate_gauge(c, leaf));
                let sighting = CertSighting {
                    attrs,
                    not_after: leaf.parse_error.is_none().then_some(leaf.not_after),
                    sha256: leaf.sha256.clone(),
                    verdict: attributes::verdict(c).to_string(),
                    status: attributes::status(leaf, c.time_us.div_euclid(1_000_000)),
                    // Stream time, so a replayed old record counts as seen now.
                    last_seen_us: now_us,
                };
                if !st.certs.see(sighting, now_us) {
                    *st.overflows.entry((M_NOT_AFTER, "series")).or_default() += 1;
                }
            }
            let destination = c.correlation.destination.as_ref();
            let findings: Vec<Vec<KeyValue>> = c
                .findings
                .iter()
                .map(|f| st.limit(M_FINDINGS, attributes::finding(f, destination)))
                .collect();
            if self.logger.is_some() {
                for cert in c.server_chain.iter().chain(&c.client_chain) {
                    if st.cert_logs.first_in_window(&cert.sha256, c.time_us) {
                        logs.push(PendingLog::Certificate(cert));
                    }
                }
                if self.shared.handshake_logs {
                    logs.push(PendingLog::Handshake);
                }
                logs.extend(
                    c.findings
                        .iter()
                        .filter(|f| f.first)
                        .map(PendingLog::Finding),
                );
            }
            (hs_attrs, findings)
        };
        // Outside the lock: the SDK's own locks are never taken while ours is held.
        self.instruments.handshakes.add(1, &hs_attrs);
        for attrs in &findings {
            self.instruments.findings.add(1, attrs);
        }
        if let Some(l) = &self.logger {
            for p in logs {
                let record = match p {
                    PendingLog::Certificate(cert) => logs::certificate(l, cert, c.time_us),
                    PendingLog::Handshake => logs::handshake(l, c),
                    PendingLog::Finding(f) => logs::finding(
                        l,
                        &FindingRecord::of_connection(f, c),
                        f.severity,
                        c.time_us,
                    ),
                };
                l.emit(record);
            }
        }
    }

    /// A plaintext flow's finding lines are counted in `tls.findings`
    /// (one per server endpoint and window, not per connection) and logged.
    fn flow(&mut self, flow: &Flow) {
        let findings: Vec<Vec<KeyValue>> = {
            let mut st = self.shared.lock();
            flow.findings
                .iter()
                .filter(|f| f.first)
                .map(|f| {
                    st.limit(
                        M_FINDINGS,
                        attributes::finding(f, flow.destination.as_ref()),
                    )
                })
                .collect()
        };
        for attrs in &findings {
            self.instruments.findings.add(1, attrs);
        }
        if let Some(l) = &self.logger {
            for f in flow.findings.iter().filter(|f| f.first) {
                l.emit(logs::finding(
                    l,
                    &FindingRecord::of_flow(f, flow),
                    f.severity,
                    flow.first_us,
                ));
            }
        }
    }

    /// A flow report's interval goes to `tls.traffic.bytes` and
    /// `.packets`, live as it flows, encrypted or not; its end to
    /// `tls.connections` and `tls.connection.duration`.
    fn flow_report(&mut self, r: &FlowReport) {
        let (bytes, packets, ended) = {
            let mut st = self.shared.lock();
            let attrs = attributes::traffic(r);
            let bytes = st.limit(M_TRAFFIC, attrs.clone());
            let packets = st.limit(M_PACKETS, attrs.clone());
            let ended = r.traffic.end.map(|end| {
                (
                    st.limit(M_CONNECTIONS, attributes::connection_end(r, end)),
                    st.limit(M_DURATION, attrs),
                )
            });
            (bytes, packets, ended)
        };
        self.instruments.traffic.add(r.interval.bytes(), &bytes);
        self.instruments.packets.add(r.interval.packets(), &packets);
        if let Some((conn, dur)) = ended {
            self.instruments.connections.add(1, &conn);
            self.instruments.duration.record(r.duration_s(), &dur);
        }
    }

    fn finish(&mut self, stats: &RunStats) {
        self.record_snapshot(SensorSnapshot::from(stats));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon is async: building, feeding and stopping the exporter
    /// from inside a tokio runtime must neither panic nor need its runtime.
    #[test]
    fn usable_from_inside_a_tokio_runtime() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for proto in ["grpc", "http/protobuf"] {
                // A loopback port nobody listens on.
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let args = OtlpArgs {
                    otlp: Some(format!("http://127.0.0.1:{port}")),
                    otlp_protocol: Some(proto.into()),
                    otlp_interval: Some(3600.0),
                    ..Default::default()
                };
                let cfg = OtlpConfig::from_args(&args, &BTreeMap::<String, String>::new())
                    .unwrap()
                    .unwrap();
                let exp = OtlpExporter::new(cfg).unwrap();
                let mut sink = exp.sink();
                sink.finish(&RunStats::default());
                let report = exp.shutdown();
                assert_eq!(report.metric_export_failures, 1, "{proto}: {report:?}");
                assert_eq!(report.metric_exports, 0);
            }
        });
    }
}
