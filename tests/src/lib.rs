//! End-to-end tests of tls-sensor. The helpers here are shared by the test
//! files under `tests/`: where the committed captures are, how to run the
//! `sensor` binary, how to compare its records with expected ones.

pub mod certs;
#[cfg(feature = "suite")]
pub mod collect;
pub mod compare;
#[cfg(feature = "suite")]
pub mod kube;
pub mod live_sensor;
pub mod netns;
pub mod pcap_writer;
pub mod peers;
pub mod postgres;
pub mod proc;
pub mod sensor_cli;
pub mod servers;
pub mod sslv2_hello;
pub mod tshark;

pub use sensor_cli::sensor_bin;

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `limit` stretched by `TESTS_SLOWDOWN` (a factor, default 1): `cargo xtask
/// kernels` runs these tests in machines under software emulation, about
/// ten times slower than the host, and a wait that suits the host would
/// fail there for no fault of the sensor.
pub fn patience(limit: Duration) -> Duration {
    let factor = std::env::var("TESTS_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    limit * factor
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// The captures recorded by `cargo xtask record-fixtures`.
pub fn data_dir() -> PathBuf {
    workspace_root().join("tests").join("data")
}

/// Every `X.pcap` of `data_dir()` with its `X.expected.jsonl`, by name.
pub fn captures() -> Vec<(String, PathBuf, PathBuf)> {
    let mut out = Vec::new();
    let dir = data_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries {
        let path = e.expect("directory entry").path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".pcap"))
        else {
            continue;
        };
        let expected = dir.join(format!("{name}.expected.jsonl"));
        assert!(
            expected.is_file(),
            "{} has no expected file",
            path.display()
        );
        out.push((name.to_string(), path, expected));
    }
    out.sort();
    out
}

/// Live tests need root; say so instead of failing obscurely.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "live-capture tests need root (network namespaces, eBPF)"
    );
}

/// The JSON lines a sensor printed, parsed; panics on a line that is not JSON.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn of_kind<'a>(lines: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}
