//! Developer tasks: `cargo xtask setup | test | demo | bench | kernels | record-fixtures`.

mod bench;
mod bench_bpf;
mod demo;
mod deploy_check;
mod fixtures;
mod kernels;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what builds and tests need (apt packages, rust-src, bpf-linker). Idempotent.
    Setup,
    /// Setup, then every test of the workspace (unit, integration, live in network namespaces,
    /// Debian's kernels in virtual machines).
    Test,
    /// The checks of deploy/ alone (kustomize, schemas, checkov, promtool, hadolint).
    DeployCheck,
    /// Record the test captures of tests/data anew between real peers in network
    /// namespaces (root), with their certificates and expected records.
    RecordFixtures {
        /// Where to write; tests/data by default.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Record only these scenarios, keeping the committed certificates
        /// and the other captures (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Derive the expected records of the captures in tests/data again (tshark, openssl).
    ExpectFixtures {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Benchmarks against reference tools (see xtask/src/bench.rs).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// TLS servers in network namespaces, real clients, and the sensor watching them (root).
    Demo(demo::Options),
    /// The release sensor on Debian's 5.10, 6.1 and 6.12 kernels in virtual machines
    /// (qemu, software emulation): one line per kernel (root).
    Kernels {
        /// Only these kernel series (`5.10`, `6.1`, `6.12`; comma-separated).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// Inside a `kernels` guest: the checks, written to DIR/result.json.
    #[command(hide = true)]
    KernelsGuest {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        sensor: PathBuf,
        /// The live test executable (tests/tests/live.rs) to run there too.
        #[arg(long)]
        live_tests: Option<PathBuf>,
    },
    /// Inside a fixtures namespace: the SSLv2-compatible hello's client.
    #[command(hide = true)]
    Sslv2Client {
        #[arg(long)]
        connect: String,
        /// Client version, e.g. 0x0301.
        #[arg(long, value_parser = parse_hex_u16)]
        version: u16,
    },
    /// The soak (root, not in CI): mixed traffic and pod churn for N minutes,
    /// RSS, CPU and counters every 10 s, a table and a verdict.
    Soak {
        #[arg(long, default_value_t = 30)]
        minutes: u64,
    },
}

fn parse_hex_u16(s: &str) -> Result<u16, std::num::ParseIntError> {
    u16::from_str_radix(s.trim_start_matches("0x"), 16)
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command, failing with its command line when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

/// The release binaries, built as `cargo xtask test` and the live tests
/// build them: another set of packages would unify features differently
/// and relink the sensor.
pub(crate) fn build_release_bins() -> Result<()> {
    run(Command::new("cargo").current_dir(root()).args([
        "build",
        "--release",
        "--workspace",
        "--bins",
    ]))
    .map(drop)
}

fn test() -> Result<()> {
    setup::setup()?;
    deploy_check::check()?;
    let root = root();
    build_release_bins()?;
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["test", "--release", "--workspace"]))?;
    demo::run(demo::Options {
        check: true,
        json: false,
    })?;
    // Debian's 5.10, 6.1 and 6.12 in virtual machines (a few minutes).
    kernels::kernels(&[])?;
    Ok(())
}

/// The soak lives with the live tests (tests/tests/soak.rs, ignored there)
/// to share their namespaces, fake API server and sensor helpers.
/// The soak runs first, then the memory figure at 10,000 pods and 100,000
/// followed connections; one at a time, so neither's RSS or CPU includes
/// the other's load.
fn soak(minutes: u64) -> Result<()> {
    setup::setup()?;
    build_release_bins()?;
    run(Command::new("cargo")
        .current_dir(root())
        .env("SOAK_MINUTES", minutes.to_string())
        .args(["test", "--release", "-p", "tests", "--test", "soak"])
        .args(["--", "--ignored", "--nocapture", "--test-threads=1"]))
}

/// `cargo run` hands its package's variables to xtask; passed on to the
/// cargo builds xtask starts, they change build-script inputs (ring's
/// watches CARGO_MANIFEST_DIR) and every switch between `cargo build` and
/// `cargo xtask` would rebuild half the workspace.
fn forget_cargo_run_env() {
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            k.starts_with("CARGO_PKG_")
                || matches!(
                    k.as_str(),
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                )
        })
        .collect();
    for k in names {
        // SAFETY: called first thing in main, before any thread exists.
        unsafe { std::env::remove_var(k) };
    }
}

fn main() -> Result<()> {
    forget_cargo_run_env();
    match Cli::parse().command {
        Cmd::Setup => setup::setup(),
        Cmd::Test => test(),
        Cmd::DeployCheck => {
            setup::deploy_tools::install()?;
            deploy_check::check()
        }
        Cmd::RecordFixtures { out, only } => {
            fixtures::record_all(&out.unwrap_or_else(fixtures::default_dir), &only)
        }
        Cmd::ExpectFixtures { dir } => {
            fixtures::expect_all(&dir.unwrap_or_else(fixtures::default_dir))
        }
        Cmd::Bench(b) => bench::main(b),
        Cmd::Demo(opts) => demo::demo(opts),
        Cmd::Kernels { only } => kernels::kernels(&only),
        Cmd::KernelsGuest {
            dir,
            sensor,
            live_tests,
        } => kernels::guest(&dir, &sensor, live_tests.as_deref()),
        Cmd::Soak { minutes } => soak(minutes),
        Cmd::Sslv2Client { connect, version } => tests::sslv2_hello::run(&connect, version),
    }
}
