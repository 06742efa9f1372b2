//! End-to-end tests of tls-sensor. The helpers here are shared by the test
//! files under `tests/`: where the committed captures are, how to run the
//! `sensor` binary, how to compare its records with expected ones.

pub mod collect;
pub mod compare;
pub mod pcap_writer;
pub mod sensor_cli;

use std::path::{Path, PathBuf};

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
