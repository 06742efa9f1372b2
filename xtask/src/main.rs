//! Developer tasks: `cargo xtask setup | test | demo | bench`.

mod deploy_check;
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
    /// The checks of deploy/ alone (kustomize, schemas, checkov, promtool, hadolint).
    DeployCheck,
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
    deploy_check::check()?;
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
        Cmd::DeployCheck => {
            setup::deploy_tools::install()?;
            deploy_check::check()
        }
    }
}
