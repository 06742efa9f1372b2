use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use sensor::analyze::analyze;
use sensor::export::json::JsonLines;
use sensor::export::table::Table;
use sensor::pipeline::PipelineConfig;

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
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

fn run_analyze(a: AnalyzeArgs) -> Result<ExitCode> {
    let mut cfg = PipelineConfig::default();
    cfg.reassembly.max_connections = a.max_connections;
    cfg.reassembly.max_pending_total = a.max_reassembly_bytes;
    cfg.max_handshake_message = a.max_handshake_message;
    let stdout = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let (failed, write_error) = if a.json {
        let out = analyze(&a.files, cfg, JsonLines::new(stdout));
        (out.failed, out.sink.error)
    } else {
        let out = analyze(&a.files, cfg, Table::new(stdout));
        (out.failed, out.sink.error)
    };
    if let Some(e) = write_error
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        anyhow::bail!("writing output: {e}");
    }
    for e in &failed {
        eprintln!("sensor analyze: {e}");
    }
    std::io::stderr().flush().ok();
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Analyze(a) => run_analyze(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sensor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
