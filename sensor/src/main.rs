use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use sensor::analysis::{Analysis, AnalysisConfig, Clock, Policy};
use sensor::analyze::analyze;
use sensor::capture::live::{AttachMode, ShipMode};
use sensor::export::json::JsonLines;
use sensor::export::otlp::config::ProcessEnv;
use sensor::export::otlp::{OtlpArgs, OtlpConfig, OtlpExporter};
use sensor::export::table::Table;
use sensor::export::tee::Tee;
use sensor::inventory::snapshot::SnapshotOptions;
use sensor::inventory::watch::{self, WatchConfig};
use sensor::inventory::{Inventory, InventoryConfig, Limits};
use sensor::pipeline::PipelineConfig;
use sensor::probe::{ProbeConfig, ProbeScope, Watched};
use sensor::x509::{SystemRoots, TrustStore};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Parser)]
#[command(
    name = "sensor",
    version,
    about = "TLS handshake and certificate sensor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline over capture files (pcap, pcapng); no privileges needed.
    Analyze(AnalyzeArgs),
    /// Watch live traffic with the eBPF programs (needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON).
    Run(RunArgs),
    /// Policy files.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a policy file: exit 0 when it is valid, 1 with the line and key otherwise.
    Check {
        file: PathBuf,
        /// Judge exception expiry at this time instead of now (RFC 3339).
        #[arg(long, value_parser = parse_rfc3339)]
        now: Option<i64>,
    },
}

/// Flags shared by `run` and `analyze` that configure the analysis.
#[derive(Args)]
struct AnalysisArgs {
    /// Extra trust anchors: a PEM file or a folder of them (repeatable).
    #[arg(long = "trust-anchors", value_name = "PEM")]
    trust_anchors: Vec<PathBuf>,
    /// System roots: bundled (Mozilla's, compiled in), host (/etc/ssl/certs), none.
    #[arg(long, value_enum, default_value_t = SystemRoots::Bundled)]
    system_roots: SystemRoots,
    /// Policy file (rules, thresholds, exceptions).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Judge validity at this time (RFC 3339) instead of each connection's first packet.
    #[arg(long, value_parser = parse_rfc3339)]
    now: Option<i64>,
    /// Finding lines: one per rule and certificate (or flow) per window of this many seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..))]
    findings_window: i64,
}

/// Kubernetes inventory flags shared by `run` and `analyze`.
#[derive(Args, Clone)]
struct KubeArgs {
    /// Kubernetes objects from `kubectl get pods,services,endpointslices,nodes,certificates,certificaterequests,issuers,clusterissuers -A -o yaml` (YAML or JSON; repeatable).
    #[arg(long = "inventory", value_name = "FILE")]
    inventory: Vec<PathBuf>,
    /// Kubeconfig of the live Kubernetes API to correlate with.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig (default: its current context).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Use the Kubernetes API without --kubeconfig: $KUBECONFIG, ~/.kube/config, or in-cluster.
    #[arg(long)]
    kube: bool,
    /// Also read kubernetes.io/tls Secrets (tls.crt and ca.crt only; tls.key is dropped on receipt).
    #[arg(long)]
    read_secrets: bool,
    /// Objects kept in the inventory at most.
    #[arg(long, default_value_t = 1_000_000)]
    inventory_max_objects: usize,
}

impl KubeArgs {
    fn wants_api(&self) -> bool {
        self.kube || self.kubeconfig.is_some() || self.context.is_some()
    }

    fn watch_config(&self) -> WatchConfig {
        WatchConfig {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            ..WatchConfig::default()
        }
    }

    /// The inventory with every `--inventory` file read, or `None` when
    /// no Kubernetes source was asked for.
    fn inventory(&self, api: bool) -> Result<Option<Inventory>> {
        if self.inventory.is_empty() && !api {
            if self.read_secrets {
                anyhow::bail!(
                    "--read-secrets needs --inventory, --kubeconfig, --context or --kube"
                );
            }
            return Ok(None);
        }
        if self.inventory_max_objects == 0 {
            anyhow::bail!("--inventory-max-objects must be at least 1");
        }
        let inv = Inventory::new(InventoryConfig {
            limits: Limits {
                max_objects: self.inventory_max_objects,
                ..Limits::default()
            },
            read_secrets: self.read_secrets,
        });
        for f in &self.inventory {
            let r = inv.load_snapshot(f, &SnapshotOptions::default())?;
            tracing::info!(file = %f.display(), objects = r.objects, ignored = ?r.ignored, rejected = ?r.rejected, "inventory file read");
        }
        Ok(Some(inv))
    }
}

/// Probing for the certificates handshakes hide, shared by `run` and `analyze`.
#[derive(Args)]
struct ProbeArgs {
    /// Fetch the certificate a server serves when its handshake hid it (TLS 1.3, resumption): off; local (servers the inventory places on this node; without an inventory, addresses behind the watched interfaces); cluster; all. Default: local for `run`, off for `analyze`.
    #[arg(long, value_enum, value_name = "SCOPE")]
    probe: Option<ProbeScope>,
    /// Seconds a probed chain is reused for the same server and SNI (refreshed early when the inventory shows a renewal or a new pod).
    #[arg(long, default_value_t = 3600.0)]
    probe_ttl: f64,
    /// Probes started per second at most.
    #[arg(long, default_value_t = 5.0)]
    probe_rate: f64,
    /// Probes at once at most.
    #[arg(long, default_value_t = 4)]
    probe_concurrency: usize,
    /// Seconds a probe may take.
    #[arg(long, default_value_t = 3.0)]
    probe_timeout: f64,
    /// This node's name, for `--probe local` with an inventory (default: $K8S_NODE_NAME, $NODE_NAME, else the host name).
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,
}

impl ProbeArgs {
    /// The probe stage's settings; a bad value stops start-up naming its flag.
    fn config(&self, default: ProbeScope, watched: Watched) -> Result<ProbeConfig> {
        if !self.probe_rate.is_finite() || self.probe_rate <= 0.0 {
            anyhow::bail!(
                "--probe-rate must be a positive number of probes per second, got {}",
                self.probe_rate
            );
        }
        if self.probe_concurrency == 0 {
            anyhow::bail!("--probe-concurrency must be at least 1");
        }
        let node = self
            .node_name
            .clone()
            .or_else(|| std::env::var("K8S_NODE_NAME").ok())
            .or_else(|| std::env::var("NODE_NAME").ok())
            .or_else(|| gethostname::gethostname().into_string().ok())
            .filter(|n| !n.is_empty());
        Ok(ProbeConfig {
            scope: self.probe.unwrap_or(default),
            ttl: seconds("probe-ttl", self.probe_ttl)?,
            rate: self.probe_rate,
            concurrency: self.probe_concurrency,
            timeout: seconds("probe-timeout", self.probe_timeout)?,
            node,
            watched,
            ..ProbeConfig::default()
        })
    }
}

#[derive(Args)]
struct RunArgs {
    /// Interface to watch (repeatable); default: every interface but loopback, followed as they come and go.
    #[arg(long = "interface", short = 'i')]
    interfaces: Vec<String>,
    /// Only interfaces matching this glob (repeatable).
    #[arg(long)]
    include: Vec<String>,
    /// Never interfaces matching this glob (repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// JSON lines per RECORDS.md instead of the table.
    #[arg(long)]
    json: bool,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds between self-statistics log lines.
    #[arg(long, default_value_t = 30.0)]
    stats_interval: f64,
    /// Payload bytes shipped per direction of a handshake.
    #[arg(long, default_value_t = sensor_common::DEFAULT_BUDGET)]
    handshake_budget: u32,
    /// Handshakes the kernel follows at once.
    #[arg(long, default_value_t = sensor_common::DEFAULT_FLOW_ENTRIES)]
    flow_entries: u32,
    /// Connections the kernel counts at once (from their SYN, or their
    /// first payload when open before the sensor); beyond, `untracked`.
    #[arg(long, alias = "plain-entries", default_value_t = sensor_common::DEFAULT_CONN_ENTRIES)]
    conn_entries: u32,
    /// Ring buffer size in bytes (a power of two, at least one page).
    #[arg(long, default_value_t = sensor_common::DEFAULT_RING_BYTES)]
    ring_bytes: u32,
    /// Seconds a kernel flow may stay idle before it is dropped.
    #[arg(long, default_value_t = 30.0)]
    flow_idle: f64,
    /// Seconds a counted connection may carry nothing before it is
    /// reported ended (`end: "idle"`) and forgotten.
    #[arg(long, default_value_t = 600.0)]
    conn_idle: f64,
    /// Seconds between flow reports of an open connection (each carries
    /// the delta since the previous one; its end is reported at once).
    #[arg(long, default_value_t = 30.0)]
    flow_report_interval: f64,
    /// How the programs attach: auto (TCX where the kernel has it, else a clsact qdisc), tcx, clsact.
    #[arg(long, value_name = "auto|tcx|clsact", default_value = "auto")]
    attach_mode: AttachMode,
    /// How the kernel ships a payload's chunks: auto (bpf_loop where the
    /// kernel has it), bpf-loop, bounded. For tests of older kernels' path.
    #[arg(
        long,
        value_name = "auto|bpf-loop|bounded",
        default_value = "auto",
        hide = true
    )]
    ship_mode: ShipMode,
    /// Serve /healthz and /readyz (Kubernetes probes) on this address, e.g. 0.0.0.0:9878; `none`: off.
    #[arg(long, value_name = "ADDR|none", default_value = sensor::health::DEFAULT_LISTEN)]
    health_listen: String,
    #[command(flatten)]
    analysis: AnalysisArgs,
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    probe: ProbeArgs,
    #[command(flatten)]
    otlp: OtlpArgs,
}

#[derive(Args)]
struct AnalyzeArgs {
    /// Capture files, read in order as one stream of traffic.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// JSON lines per RECORDS.md instead of the table.
    #[arg(long)]
    json: bool,
    /// Connections followed at once.
    #[arg(long, default_value_t = 1 << 20)]
    max_connections: usize,
    /// Out-of-order bytes held across all connections.
    #[arg(long, default_value_t = 256 << 20)]
    max_reassembly_bytes: usize,
    /// Largest handshake message followed, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_handshake_message: usize,
    /// Seconds of capture time between flow reports of an open
    /// connection, as `sensor run` reports them in wall time.
    #[arg(long, default_value_t = 30.0)]
    flow_report_interval: f64,
    #[command(flatten)]
    analysis: AnalysisArgs,
    #[command(flatten)]
    kube: KubeArgs,
    /// Seconds to wait for the Kubernetes API to list everything.
    #[arg(long, default_value_t = 60.0)]
    kube_timeout: f64,
    #[command(flatten)]
    probe: ProbeArgs,
    #[command(flatten)]
    otlp: OtlpArgs,
}

fn parse_rfc3339(s: &str) -> Result<i64, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| format!("not an RFC 3339 time (2026-01-31T12:00:00Z): {e}"))
}

fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes are noise in container logs and files.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(log_filter())
        .init();
}

/// `RUST_LOG` (default `warn`), with kube's per-request logs off unless it
/// names them: kube-client logs an ERROR for every failed request and
/// kube-runtime a WARN for every refused list, so an outage would log each
/// retry; the watches log each change of state once instead.
fn log_filter() -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let env = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_default();
    let mut f = EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    if !env.contains("kube") {
        for d in ["kube_client=off", "kube_runtime=off"] {
            if let Ok(d) = d.parse() {
                f = f.add_directive(d);
            }
        }
    }
    f
}

/// Builds the analysis stage; any bad setting stops start-up with its name.
fn build_analysis(a: &AnalysisArgs, clock: Clock) -> Result<Analysis> {
    let policy = match &a.policy {
        Some(p) => Policy::load(p).context("--policy")?,
        None => Policy::default(),
    };
    let mut store = TrustStore::new(a.system_roots).context("--system-roots")?;
    for p in &a.trust_anchors {
        let n = store.add_path(p).context("--trust-anchors")?;
        tracing::info!(path = %p.display(), added = n, "trust anchors loaded");
    }
    let config = AnalysisConfig {
        clock: a.now.map_or(clock, Clock::Fixed),
        window_secs: a.findings_window,
        ..AnalysisConfig::default()
    };
    Ok(Analysis::new(config, policy, store))
}

fn run_analyze(a: AnalyzeArgs) -> Result<ExitCode> {
    let mut cfg = PipelineConfig {
        flow_report_interval_us: seconds("flow-report-interval", a.flow_report_interval)?
            .as_micros() as i64,
        ..PipelineConfig::default()
    };
    cfg.reassembly.max_connections = a.max_connections;
    cfg.reassembly.max_pending_total = a.max_reassembly_bytes;
    cfg.max_handshake_message = a.max_handshake_message;
    // A capture file names no watched interfaces: every directly
    // reachable address counts as local.
    cfg.probe = a
        .probe
        .config(ProbeScope::Off, std::sync::Arc::new(|_: &str| true))?;
    let analysis = build_analysis(&a.analysis, Clock::PacketTime)?;
    let api = a.kube.wants_api();
    let inventory = a.kube.inventory(api)?;
    if api && let Some(inv) = &inventory {
        let timeout = seconds("kube-timeout", a.kube_timeout)?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(watch::list_once(inv, &a.kube.watch_config(), timeout))?;
    }
    let cfg = cfg.with_inventory(inventory);
    let otlp = match OtlpConfig::from_args(&a.otlp, &ProcessEnv)? {
        Some(c) => Some(OtlpExporter::new(c)?),
        None => None,
    };
    let otlp_sink = otlp.as_ref().map(OtlpExporter::sink);
    let stdout = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let (failed, write_error) = if a.json {
        let out = analyze(
            &a.files,
            cfg,
            analysis,
            Tee(JsonLines::new(stdout), otlp_sink),
        );
        (out.failed, out.sink.0.error)
    } else {
        let out = analyze(&a.files, cfg, analysis, Tee(Table::new(stdout), otlp_sink));
        (out.failed, out.sink.0.error)
    };
    let mut export_failed = false;
    if let Some(exporter) = otlp {
        let report = exporter.shutdown();
        tracing::debug!(?report, "OTLP export done");
        if report.any_failure() {
            export_failed = true;
            eprintln!(
                "sensor analyze: OTLP export incomplete: {} of {} metric export(s) failed, {} log record(s) dropped",
                report.metric_export_failures,
                report.metric_exports + report.metric_export_failures,
                report.logs_dropped()
            );
        }
    }
    if let Some(e) = write_error
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        anyhow::bail!("writing output: {e}");
    }
    for e in &failed {
        eprintln!("sensor analyze: {e}");
    }
    std::io::stderr().flush().ok();
    Ok(if failed.is_empty() && !export_failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn seconds(key: &str, v: f64) -> Result<std::time::Duration> {
    if !v.is_finite() || v <= 0.0 {
        anyhow::bail!("--{key} must be a positive number of seconds, got {v}");
    }
    Ok(std::time::Duration::from_secs_f64(v))
}

fn run_live(a: RunArgs) -> Result<ExitCode> {
    use sensor::capture::live::{InterfaceFilter, LiveConfig};
    use sensor::run::{RunOptions, run};
    let page = 4096u32;
    if a.ring_bytes < page || !a.ring_bytes.is_power_of_two() {
        anyhow::bail!(
            "--ring-bytes must be a power of two of at least {page}, got {}",
            a.ring_bytes
        );
    }
    if a.flow_entries == 0 {
        anyhow::bail!("--flow-entries must be at least 1");
    }
    if a.conn_entries == 0 {
        anyhow::bail!("--conn-entries must be at least 1");
    }
    // Checked before anything starts: a bad value names its key.
    let flow_report_interval = seconds("flow-report-interval", a.flow_report_interval)?;
    let conn_idle = seconds("conn-idle", a.conn_idle)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Inside a pod the API is there to be used: correlate by default, but
    // only flags make a configuration failure fatal. An unreachable API is
    // never fatal: the watches retry, correlation waits for the first lists.
    let asked = a.kube.wants_api();
    let mut kube = None;
    if asked || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        let cfg = a.kube.watch_config();
        match rt.block_on(watch::client(&cfg)) {
            Ok(client) => kube = Some((client, cfg)),
            Err(e) if !asked => tracing::warn!("running without Kubernetes correlation: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    // Built before anything starts so a bad OTLP setting fails start-up.
    let otlp = match OtlpConfig::from_args(&a.otlp, &ProcessEnv)? {
        Some(c) => Some(OtlpExporter::new(c)?),
        None => None,
    };
    let filter = InterfaceFilter::new(a.interfaces, &a.include, &a.exclude)?;
    let watched = {
        let f = filter.clone();
        std::sync::Arc::new(move |name: &str| f.wants(name))
    };
    let pipeline = PipelineConfig {
        tls_traffic: false,
        probe: a.probe.config(ProbeScope::Local, watched)?,
        ..PipelineConfig::default()
    }
    .with_inventory(a.kube.inventory(kube.is_some())?);
    let health_listen = sensor::health::parse_listen(&a.health_listen)?;
    let health = sensor::health::Health::new();
    // With live watches, ready means the first lists are in as well.
    if kube.is_some() {
        health.require_inventory();
    }
    let opts = RunOptions {
        filter,
        duration: a.duration.map(|d| seconds("duration", d)).transpose()?,
        stats_interval: seconds("stats-interval", a.stats_interval)?,
        flow_idle: seconds("flow-idle", a.flow_idle)?,
        conn_idle,
        flow_report_interval,
        live: LiveConfig {
            budget: a.handshake_budget,
            flow_entries: a.flow_entries,
            ring_bytes: a.ring_bytes,
            conn_entries: a.conn_entries,
            attach: a.attach_mode,
            ship: a.ship_mode,
        },
        pipeline,
        health: health.clone(),
        analysis: build_analysis(&a.analysis, Clock::Wall)?,
        kube,
        telemetry: otlp.as_ref().map(OtlpExporter::sink),
    };
    let otlp_sink = otlp.as_ref().map(OtlpExporter::sink);
    if let Some(addr) = health_listen {
        let server = rt.block_on(sensor::health::HealthServer::bind(addr, health))?;
        rt.spawn(server.serve());
    }
    // Flushed after each batch of records (RecordSink::flush).
    let stdout = BufWriter::with_capacity(1 << 16, std::io::stdout());
    let write_error = if a.json {
        let out = rt.block_on(run(opts, Tee(JsonLines::new(stdout), otlp_sink)))?;
        out.sink.0.error
    } else {
        let out = rt.block_on(run(opts, Tee(Table::new(stdout), otlp_sink)))?;
        out.sink.0.error
    };
    if let Some(exporter) = otlp {
        let report = exporter.shutdown();
        tracing::info!(?report, "OTLP export stopped");
    }
    if let Some(e) = write_error
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        anyhow::bail!("writing output: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

fn run_policy_check(file: PathBuf, now: Option<i64>) -> Result<ExitCode> {
    let policy = Policy::load(&file)?;
    let now = now.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
    let expired: Vec<_> = policy
        .exceptions
        .iter()
        .enumerate()
        .filter(|(_, e)| e.expires.is_some_and(|t| t < now))
        .collect();
    println!(
        "{}: valid: {} rule override(s), {} exception(s), {} issuer rule(s)",
        file.display(),
        policy.overrides(),
        policy.exceptions.len(),
        policy.issuers.len()
    );
    for (i, e) in expired {
        println!(
            "{}: note: exceptions[{i}] expired on {} and no longer applies ({})",
            file.display(),
            sensor::model::time::seconds(e.expires.unwrap_or_default()),
            e.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Analyze(a) => run_analyze(a),
        Command::Run(a) => run_live(a),
        Command::Policy(PolicyCommand::Check { file, now }) => run_policy_check(file, now),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sensor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
