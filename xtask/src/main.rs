//! Developer tasks: `cargo xtask setup | test | demo | bench`.

mod bench_bpf;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

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
    /// Benchmarks: `bpf` = kernel per-packet cost through BPF_PROG_TEST_RUN (root).
    Bench {
        which: Bench,
        /// Passed to the benchmark (bpf: --repeat N --rounds N --shots N).
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    Bpf,
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
        Cmd::Bench { which, args } => {
            setup::setup()?;
            match which {
                Bench::Bpf => bench_bpf::bench_bpf(&args),
            }
        }
    }
}
