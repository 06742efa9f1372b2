//! `sensor run`: live capture through the pipeline until stopped.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{SignalKind, signal};

use crate::analysis::Analysis;
use crate::capture::live::{
    Clock, Event, Follower, InterfaceFilter, KernelStats, LiveConfig, LiveError, Programs,
    check_capabilities, conn_traffic, drain, mono_ns,
};
use crate::export::otlp::OtlpSink;
use crate::export::summary::kernel_line;
use crate::export::{RecordSink, RunStats, SensorSnapshot, Summary};
use crate::health::Health;
use crate::inventory::watch::{self, WatchConfig};
use crate::model::FlowEnd;
use crate::pipeline::{Pipeline, PipelineConfig};

pub struct RunOptions {
    pub filter: InterfaceFilter,
    pub duration: Option<Duration>,
    pub stats_interval: Duration,
    /// A kernel flow that shipped nothing for this long is dropped.
    pub flow_idle: Duration,
    /// A counted connection that carried nothing for this long is
    /// reported ended (idle) and removed.
    pub conn_idle: Duration,
    /// Open connections are reported this often (the delta since the
    /// previous report), and once at their end.
    pub flow_report_interval: Duration,
    pub live: LiveConfig,
    /// `pipeline.inventory` holds the index (and `pipeline.correlator`
    /// reads it); with `kube` set, live watches of the Kubernetes API keep
    /// it current.
    pub pipeline: PipelineConfig,
    /// Beaten every turn of the loop; told how many interfaces are attached.
    pub health: Arc<Health>,
    pub analysis: Analysis,
    /// A client (see `inventory::watch::client`) and its watch settings.
    pub kube: Option<(kube::Client, WatchConfig)>,
    /// The OTLP exporter's sink, given the sensor's own counters (`sensor.*`)
    /// every second; records reach it through the record sink.
    pub telemetry: Option<OtlpSink>,
}

pub struct RunOutcome<K> {
    pub sink: K,
    pub stats: RunStats,
    /// `stats` as the summary line renders them.
    pub summary: Summary,
    pub kernel: KernelStats,
}

/// Gives the heap's free pages back to the kernel. glibc keeps what a
/// burst freed (an inventory's first list, a report of 100,000
/// connections) in its arenas for reuse, so resident memory would stay at
/// the peak of the burst for good; a trim costs a walk of the free lists.
fn return_freed_memory() {
    // SAFETY: malloc_trim has no preconditions; 0 keeps no extra padding.
    unsafe { libc::malloc_trim(0) };
}

/// Sweeps between two trims of the heap (see `return_freed_memory`).
const SWEEPS_PER_TRIM: u32 = 10;

/// Every how many sweeps (one a second) the counted connections are read
/// for idle ones: a sixtieth of `--conn-idle`, at most every 10 s. A node
/// may count 100,000 connections, and an idle end is dated by its last
/// packet whenever it is noticed.
fn conn_sweep_every(conn_idle: Duration) -> u32 {
    (conn_idle.as_secs() / 60).clamp(1, 10) as u32
}

/// What user space counts of the capture, beside the kernel's counters.
#[derive(Default)]
struct UserCounts {
    expired: u64,
    conns_expired: u64,
    conns_pending_expired: u64,
    malformed: u64,
}

impl UserCounts {
    /// The kernel's counters with these added: the summary's `kernel`.
    fn with_kernel(&self, programs: &Programs) -> KernelStats {
        KernelStats {
            flows_expired: self.expired,
            conns_expired: self.conns_expired,
            conns_pending_expired: self.conns_pending_expired,
            malformed_records: self.malformed,
            ..programs.counters()
        }
    }
}

/// How often the ring buffer is read without being woken: the programs
/// wake this loop only once a quarter of the ring waits (ship.rs), since a
/// wakeup per record cost more than the rest of the kernel's work on it.
/// So a handshake's records wait at most this long. Each turn has a fixed
/// cost (the wakeup, the own-socket listing when new local connections
/// came, a write): in a storm of 630 connections/s, turns every 10 ms made
/// 27 µs of user-space CPU per handshake, every 100 ms 13 µs.
const RING_FLUSH: Duration = Duration::from_millis(100);

fn deliver<K: RecordSink>(pipeline: &mut Pipeline<K>, event: Event<'_>) {
    match event {
        Event::Segment(seg) => pipeline.segment(&seg),
        Event::ConnEnd(t) => pipeline.traffic(t),
    }
}

/// After a batch read from the ring: the kernel stops following what the
/// pipeline finished with.
fn close_finished<K: RecordSink>(pipeline: &mut Pipeline<K>, programs: &mut Programs) {
    programs.close_flows(&pipeline.take_finished());
}

pub async fn run<K: RecordSink>(opts: RunOptions, sink: K) -> Result<RunOutcome<K>, LiveError> {
    check_capabilities()?;
    // Started before the programs load so the first list overlaps it;
    // they stop when `_watches` drops at the end of the run.
    let _watches = match (&opts.kube, &opts.pipeline.inventory) {
        (Some((client, cfg)), Some(inv)) => Some(watch::start(client.clone(), inv, cfg)),
        _ => None,
    };
    let (mut programs, attacher, ring) = Programs::load(&opts.live)?;
    let inventory = opts.pipeline.inventory.clone();
    let pipeline_cfg = PipelineConfig {
        skip_own: true,
        ..opts.pipeline
    };
    let mut pipeline = Pipeline::with_analysis(pipeline_cfg, opts.analysis, sink);
    pipeline.report_finished();
    let clock = Clock::new();
    let health = opts.health.clone();
    let follower = Follower::start(
        attacher,
        opts.filter.clone(),
        Box::new(move |n| health.set_attached(n)),
    )?;
    // AsyncFd::new is deprecated for types that merely expose a raw fd; this
    // one owns its fd for as long as the AsyncFd lives.
    #[allow(deprecated)]
    let mut ring = AsyncFd::new(ring)?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut stats = tokio::time::interval(opts.stats_interval);
    stats.tick().await;
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    let mut flush = tokio::time::interval(RING_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reports = tokio::time::interval(opts.flow_report_interval);
    reports.tick().await;
    let deadline = async {
        match opts.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut counts = UserCounts::default();
    let mut sweeps = 0u32;
    loop {
        opts.health.beat();
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                counts.malformed += drain(guard.get_inner_mut(), clock, |e| deliver(&mut pipeline, e)).malformed;
                guard.clear_ready();
                close_finished(&mut pipeline, &mut programs);
            }
            _ = flush.tick() => {
                counts.malformed += drain(ring.get_mut(), clock, |e| deliver(&mut pipeline, e)).malformed;
                close_finished(&mut pipeline, &mut programs);
            }
            _ = sweep.tick() => {
                sweeps += 1;
                if sweeps.is_multiple_of(SWEEPS_PER_TRIM) {
                    return_freed_memory();
                }
                pipeline.poll_probes();
                let idle = opts.flow_idle.as_nanos() as u64;
                counts.expired += programs.expire_flows(mono_ns(), idle);
                if sweeps.is_multiple_of(conn_sweep_every(opts.conn_idle)) {
                    let now = mono_ns();
                    let conn_idle = opts.conn_idle.as_nanos() as u64;
                    let (ended, pending) = programs.expire_conns(now, conn_idle);
                    counts.conns_pending_expired += pending;
                    counts.conns_expired += ended.len() as u64;
                    for (k, s) in ended {
                        pipeline.traffic(conn_traffic(&k, &s, clock, now, Some(FlowEnd::Idle)));
                    }
                }
                if let Some(inv) = &inventory {
                    pipeline.refresh_trust();
                    let r = inv.readiness();
                    opts.health.set_inventory_synced(r.peers && r.certificates);
                }
                if let Some(t) = &opts.telemetry {
                    let mut s = pipeline.totals();
                    s.kernel = Some(counts.with_kernel(&programs));
                    t.record_snapshot(SensorSnapshot::from(&s));
                }
            }
            _ = reports.tick() => {
                // Ends already in the ring come first: an ended connection
                // read from the map would be reported open after its end.
                counts.malformed += drain(ring.get_mut(), clock, |e| deliver(&mut pipeline, e)).malformed;
                let now = mono_ns();
                programs.for_each_open_conn(|k, s| {
                    pipeline.traffic(conn_traffic(k, s, clock, now, None));
                });
                pipeline.reports_done();
            }
            _ = stats.tick() => {
                let s = pipeline.totals();
                let k = programs.counters();
                tracing::info!(
                    segments = s.reassembly.segments,
                    tls = s.tls_connections,
                    handshakes = s.handshakes,
                    open_connections = pipeline.open_connections(),
                    kernel_flows = programs.open_flows(),
                    kernel = %kernel_line(&k),
                    inventory_objects = inventory.as_ref().map(|i| i.read().len()),
                    health_connections_rejected = opts.health.rejected_connections(),
                    "statistics"
                );
            }
            _ = &mut deadline => break,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
        // Whatever this turn wrote reaches its reader (RecordSink::flush).
        pipeline.sink().flush();
    }
    // Records already in the ring (summaries of connections that just
    // ended) come before the connections still open.
    counts.malformed += drain(ring.get_mut(), clock, |e| deliver(&mut pipeline, e)).malformed;
    // Connections still open end with the capture, as at the end of a file.
    let now = mono_ns();
    let (open, _) = programs.expire_conns(now, 0);
    for (k, s) in open {
        pipeline.traffic(conn_traffic(&k, &s, clock, now, Some(FlowEnd::Shutdown)));
    }
    let kernel = counts.with_kernel(&programs);
    follower.stop();
    opts.health.set_attached(0);
    let (sink, stats) = pipeline.finish_with(|s| {
        s.kernel = Some(kernel);
    });
    if let Some(t) = &opts.telemetry {
        t.record_snapshot(SensorSnapshot::from(&stats));
    }
    Ok(RunOutcome {
        sink,
        summary: Summary::from(&stats),
        stats,
        kernel,
    })
}
