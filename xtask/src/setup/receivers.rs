//! OTLP receivers for the export tests, installed into the repo's ignored
//! `.cache/receivers/` and never into the system:
//!
//! - VictoriaMetrics from Debian trixie (bookworm has none): a private apt
//!   state and a trixie-only sources list, `apt-get download`, `dpkg -x`.
//!   Its package asks for libzstd1 >= 1.5.5; the binary runs with bookworm's.
//! - rotel from PyPI (`pip install --target`): an OTLP gRPC + HTTP receiver
//!   that prints what it receives. It links libpython3.11.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{root, run};

const VICTORIA_PACKAGE: &str = "victoria-metrics";
const ROTEL: &str = "rotel==0.0.1a15";

pub fn dir() -> PathBuf {
    root().join(".cache/receivers")
}

pub fn victoria_metrics_bin() -> PathBuf {
    dir().join("victoria-metrics/usr/bin/victoria-metrics")
}

pub fn rotel_bin() -> PathBuf {
    dir().join("rotel/rotel/rotel-agent")
}

fn works(bin: &Path, arg: &str) -> bool {
    Command::new(bin)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// apt-get with every state and source path inside `apt_dir`.
/// An apt state of its own under `apt_dir` (lists, cache, an empty dpkg
/// status, `sources`), so downloads from other releases never touch the
/// host's apt.
pub(crate) fn private_apt_state(apt_dir: &Path, sources: &str) -> Result<()> {
    for d in [
        "state/lists/partial",
        "cache/archives/partial",
        "sources.list.d",
        "preferences.d",
        "debs",
    ] {
        std::fs::create_dir_all(apt_dir.join(d))?;
    }
    std::fs::write(apt_dir.join("state/status"), "")?;
    std::fs::write(apt_dir.join("sources.list"), sources)?;
    Ok(())
}

pub(crate) fn private_apt(apt_dir: &Path) -> Command {
    let mut c = Command::new("apt-get");
    let p = |s: &str| apt_dir.join(s).display().to_string();
    for (k, v) in [
        ("Dir::State", p("state")),
        ("Dir::State::status", p("state/status")),
        ("Dir::Cache", p("cache")),
        ("Dir::Etc::SourceList", p("sources.list")),
        ("Dir::Etc::SourceParts", p("sources.list.d")),
        ("Dir::Etc::Preferences", p("preferences")),
        ("Dir::Etc::PreferencesParts", p("preferences.d")),
        // Downloads land in a root-owned folder; the _apt sandbox user can't write there.
        ("APT::Sandbox::User", "root".into()),
        ("Acquire::Languages", "none".into()),
    ] {
        c.arg("-o").arg(format!("{k}={v}"));
    }
    c.arg("-qq");
    c
}

fn victoria_metrics() -> Result<()> {
    let bin = victoria_metrics_bin();
    if works(&bin, "-version") {
        return Ok(());
    }
    eprintln!(
        "xtask setup: VictoriaMetrics (trixie) into {}",
        dir().display()
    );
    let apt_dir = dir().join("apt");
    private_apt_state(
        &apt_dir,
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://deb.debian.org/debian trixie main\n",
    )?;
    run(private_apt(&apt_dir).arg("update"))?;
    let debs = apt_dir.join("debs");
    for e in std::fs::read_dir(&debs)? {
        std::fs::remove_file(e?.path())?;
    }
    run(private_apt(&apt_dir)
        .current_dir(&debs)
        .args(["download", VICTORIA_PACKAGE]))?;
    let deb = std::fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let target = dir().join("victoria-metrics");
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&target))?;
    std::fs::remove_file(&deb)?;
    if !works(&bin, "-version") {
        bail!("{} does not run", bin.display());
    }
    Ok(())
}

fn have_libpython() -> bool {
    Command::new("sh")
        .args(["-c", "ldconfig -p | grep -q 'libpython3.11.so.1.0 '"])
        .status()
        .is_ok_and(|s| s.success())
}

fn rotel() -> Result<()> {
    if !have_libpython() {
        eprintln!("xtask setup: installing libpython3.11 (rotel links it)");
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "libpython3.11",
            ]))?;
    }
    let bin = rotel_bin();
    if works(&bin, "--version") {
        return Ok(());
    }
    eprintln!("xtask setup: rotel (PyPI) into {}", dir().display());
    let has_pip = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pip {
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "python3-pip",
            ]))?;
    }
    let target = dir().join("rotel");
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    // Only the receiver binary is used; the Python wrapper's deps are not needed.
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--root-user-action=ignore",
            "--no-deps",
            "--target",
        ])
        .arg(&target)
        .arg(ROTEL))?;
    if !works(&bin, "--version") {
        bail!("{} does not run", bin.display());
    }
    Ok(())
}

pub fn setup() -> Result<()> {
    victoria_metrics()?;
    rotel()
}
