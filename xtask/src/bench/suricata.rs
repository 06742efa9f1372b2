//! Suricata 7 from bookworm-backports, unpacked into `.cache/tools/suricata`
//! and never installed into the system: a private apt state and source list
//! (the system's apt configuration stays untouched), `apt-get download` of
//! suricata and the libraries the machine lacks, `dpkg -x` of each.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run;

const SOURCES: &str = "\
deb http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
deb http://deb.debian.org/debian bookworm-backports main
";

pub struct Suricata {
    pub bin: PathBuf,
    pub lib_path: String,
    pub version: String,
}

impl Suricata {
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("LD_LIBRARY_PATH", &self.lib_path);
        c
    }
}

fn apt_options(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        format!("-oDir::State={d}/apt/state"),
        // What the machine already has comes from its own dpkg database, so
        // only the missing libraries are fetched.
        "-oDir::State::status=/var/lib/dpkg/status".into(),
        format!("-oDir::Cache={d}/apt/cache"),
        format!("-oDir::Etc::sourcelist={d}/apt/sources.list"),
        "-oDir::Etc::sourceparts=/nonexistent".into(),
        // Nothing is installed, so the system's dpkg lock is not needed.
        "-oDebug::NoLocking=1".into(),
    ]
}

fn found(dir: &Path) -> Option<Suricata> {
    let root = dir.join("root");
    let bin = root.join("usr/bin/suricata");
    if !bin.is_file() {
        return None;
    }
    let lib_path = format!(
        "{}:{}",
        root.join("usr/lib/x86_64-linux-gnu").display(),
        root.join("lib/x86_64-linux-gnu").display()
    );
    let out = Command::new(&bin)
        .arg("-V")
        .env("LD_LIBRARY_PATH", &lib_path)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)?
        .to_string();
    (out.status.success() && version.starts_with("7.")).then_some(Suricata {
        bin,
        lib_path,
        version,
    })
}

/// Returns the private Suricata, fetching it first when it is not there.
pub fn ensure(root: &Path) -> Result<Suricata> {
    let dir = root.join(".cache/tools/suricata");
    if let Some(s) = found(&dir) {
        return Ok(s);
    }
    eprintln!(
        "xtask bench: fetching Suricata 7 from bookworm-backports into {}",
        dir.display()
    );
    for sub in [
        "apt/state/lists/partial",
        "apt/cache/archives/partial",
        "debs",
        "root",
    ] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    std::fs::write(dir.join("apt/sources.list"), SOURCES)?;
    let opts = apt_options(&dir);
    run(Command::new("apt-get").args(&opts).args(["-qq", "update"]))?;
    let plan = Command::new("apt-get")
        .args(&opts)
        .args([
            "-s",
            "install",
            "--no-install-recommends",
            "-t",
            "bookworm-backports",
            "suricata",
        ])
        .output()
        .context("apt-get -s install suricata")?;
    if !plan.status.success() {
        bail!(
            "apt-get cannot resolve suricata from bookworm-backports: {}",
            String::from_utf8_lossy(&plan.stderr)
        );
    }
    // "Inst NAME (VERSION ...)" is a package the machine lacks; "Inst NAME
    // [OLD] (NEW ...)" an upgrade of one it has, which is not needed.
    let wanted: Vec<String> = String::from_utf8_lossy(&plan.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "Inst").then_some(())?;
            let name = w.next()?;
            let version = w.next()?;
            let version = version.strip_prefix('(')?;
            Some(format!("{name}={version}"))
        })
        .collect();
    if !wanted.iter().any(|p| p.starts_with("suricata=")) {
        bail!("apt-get did not plan to fetch suricata");
    }
    let debs = dir.join("debs");
    run(Command::new("apt-get")
        .current_dir(&debs)
        .args(&opts)
        .args(["-qq", "download"])
        .args(&wanted))?;
    for entry in std::fs::read_dir(&debs)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            run(Command::new("dpkg")
                .arg("-x")
                .arg(&path)
                .arg(dir.join("root")))?;
        }
    }
    found(&dir).context("the unpacked suricata does not run")
}

/// The smallest configuration that runs the TLS parser and logs each TLS
/// session as an eve `tls` event; no rules are loaded.
pub fn config(dir: &Path) -> Result<PathBuf> {
    let empty = dir.join("empty.config");
    std::fs::write(&empty, "")?;
    let yaml = format!(
        "%YAML 1.1
---
vars:
  address-groups:
    HOME_NET: \"any\"
    EXTERNAL_NET: \"any\"
  port-groups:
    HTTP_PORTS: \"80\"
classification-file: {empty}
reference-config-file: {empty}
outputs:
  - eve-log:
      enabled: yes
      filetype: regular
      filename: eve.json
      types:
        - tls:
            extended: yes
app-layer:
  protocols:
    tls:
      enabled: yes
      detection-ports:
        dp: 443
",
        empty = empty.display()
    );
    let path = dir.join("suricata.yaml");
    std::fs::write(&path, yaml)?;
    Ok(path)
}
