//! Developer tasks: `cargo xtask setup | test | demo | bench | record-fixtures`.

mod fixtures;
mod bench;
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
    /// Setup, then every test of the workspace (unit, integration, live in network namespaces).
    Test,
    /// Record the test captures of tests/data anew between real peers in network
    /// namespaces (root), with their certificates and expected records.
    RecordFixtures {
        /// Where to write; tests/data by default.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Derive the expected records of the captures in tests/data again (tshark, openssl).
    ExpectFixtures {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Benchmarks against reference tools (see xtask/src/bench.rs).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
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

fn test() -> Result<()> {
    setup::setup()?;
    let root = root();
    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "--workspace",
        "--bins",
    ]))?;
    run(Command::new("cargo")
        .current_dir(&root)
        .args(["test", "--release", "--workspace"]))?;
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Setup => setup::setup(),
        Cmd::Test => test(),
        Cmd::RecordFixtures { out } => {
            fixtures::record_all(&out.unwrap_or_else(fixtures::default_dir))
        }
        Cmd::ExpectFixtures { dir } => {
            fixtures::expect_all(&dir.unwrap_or_else(fixtures::default_dir))
        }
        Cmd::Bench(b) => bench::main(b),
    }
}
