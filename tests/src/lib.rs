//! Shared helpers of the end-to-end tests: network namespaces, processes
//! that are always reaped, certificates made with openssl, the sensor binary.

pub mod certs;
pub mod kube;
pub mod netns;
pub mod proc;

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ in the workspace")
        .to_path_buf()
}

/// The release `sensor` binary; `cargo xtask test` builds it first.
pub fn sensor_bin() -> PathBuf {
    let p = root().join("target/release/sensor");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release -p sensor` (cargo xtask test does)",
        p.display()
    );
    p
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
