//! `cargo xtask record-fixtures`: records the captures under `tests/data/`
//! between real peers (openssl s_server/s_client, nginx, curl) in a pair of
//! network namespaces, and writes each capture's expected records, derived
//! with tshark and openssl rather than with the sensor.
//! `cargo xtask expect-fixtures` re-derives the expected records only.

mod certinfo;
mod certs;
mod expect;
mod ja4;
mod record;
mod scenarios;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use scenarios::{Paths, Scenario, scenarios};

/// A scratch directory (keys, session files, logs), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let p = std::env::temp_dir().join(format!("tls-sensor-fixtures-{}", std::process::id()));
        fs::create_dir_all(&p)?;
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn default_dir() -> PathBuf {
    crate::root().join("tests").join("data")
}

/// Certificates, captures and expected records, all made anew in `out`;
/// with `only`, just the captures of those scenarios (and the certificates
/// not yet in `out`), so that adding a scenario leaves the others as they
/// were recorded. The expected records of every capture are derived again.
pub fn record_all(out: &Path, only: &[String]) -> Result<()> {
    let scratch = Scratch::new()?;
    fs::create_dir_all(out)?;
    let pki = certs::generate(&scratch.0, &out.join("certs"), !only.is_empty())?;
    let paths = Paths {
        pki: &pki,
        work: &scratch.0,
    };
    let all = scenarios(&paths);
    for name in only {
        anyhow::ensure!(
            all.iter().any(|s| s.name == name),
            "no scenario named {name}"
        );
    }
    for s in all
        .iter()
        .filter(|s| only.is_empty() || only.contains(&s.name.to_string()))
    {
        eprintln!("record-fixtures: {} ({})", s.name, s.about);
        record::record(s, &pki, &scratch.0, &pcap(out, s))
            .with_context(|| format!("recording {}", s.name))?;
    }
    expect_all(out)
}

fn pcap(dir: &Path, s: &Scenario) -> PathBuf {
    dir.join(format!("{}.pcap", s.name))
}

/// The expected records of every capture in `dir`, and its README.
pub fn expect_all(dir: &Path) -> Result<()> {
    let pki = certs::Pki {
        certs: dir.join("certs"),
        keys: dir.join("no-keys"),
    };
    let paths = Paths {
        pki: &pki,
        work: dir,
    };
    let ciphers = expect::cipher_names()?;
    let mut readme = String::from(README_HEAD);
    let mut total = 0;
    for s in scenarios(&paths) {
        let cap = pcap(dir, &s);
        let lines = expect::expected_lines(&s, &cap, &pki.certs, &ciphers)
            .with_context(|| format!("expected records of {}", cap.display()))?;
        let mut text = lines.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        fs::write(dir.join(format!("{}.expected.jsonl", s.name)), text)?;
        let size = fs::metadata(&cap)?.len();
        total += size;
        readme.push_str(&format!(
            "| `{}.pcap` | {} | {} | {} |\n",
            s.name,
            size,
            s.conns.iter().filter(|c| c.intent.is_some()).count(),
            s.about
        ));
        eprintln!(
            "record-fixtures: {} {} bytes, {} lines",
            s.name,
            size,
            lines.len()
        );
    }
    fs::write(dir.join("README.md"), readme)?;
    eprintln!(
        "record-fixtures: {total} bytes of captures in {}",
        dir.display()
    );
    Ok(())
}

const README_HEAD: &str = "\
# Test captures

Written by `cargo xtask record-fixtures` (do not edit by hand): certificates
made with `openssl ca` (`certs/`, the keys are thrown away), each scenario
played between real peers (openssl s_server/s_client, nginx, curl) in a pair
of network namespaces and captured with tcpdump on the server's veth.
`X.expected.jsonl` holds the records `sensor analyze --json` must print for
`X.pcap` (RECORDS.md format; only the fields present are compared), derived
from tshark's dissection and `openssl x509` output, and checked against what
the peers were asked to do. `cargo xtask expect-fixtures` re-derives them.

| capture | bytes | TLS connections | what it shows |
|---|---|---|---|
";
