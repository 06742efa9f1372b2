//! Runs the `sensor` binary. Cargo gives `CARGO_BIN_EXE_*` only to a
//! package's own tests, so the binary is found beside this test executable
//! (`target/<profile>/`) and built first, with the same profile, so that it is
//! never older than the library the other tests use.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `target/<profile>` of the running test executable (`.../deps/name-hash`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable is in target/<profile>/deps")
        .to_path_buf()
}

/// `SENSOR_BIN`, when set, names a binary built beforehand: where the tests
/// run without a toolchain or a writable tree (the guests of `cargo xtask
/// kernels`) they cannot build one.
pub fn sensor_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SENSOR_BIN") {
            return PathBuf::from(bin);
        }
        let dir = profile_dir();
        let profile = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("profile directory name")
            .to_string();
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut build = Command::new(cargo);
        // Cargo gives a running test the variables of its own crate; build
        // scripts that watch them (ring's watches CARGO_MANIFEST_DIR) would
        // see a change and rebuild half the graph.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            if k.starts_with("CARGO_PKG_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&k.as_ref())
            {
                build.env_remove(k.as_ref());
            }
        }
        build
            .current_dir(crate::workspace_root())
            // The same selection as `cargo xtask test`'s build, so that after
            // it this is a no-op rather than a build with other features.
            .args(["build", "--quiet", "--workspace", "--bins"]);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let status = build
            .status()
            .expect("running cargo build for the sensor binary");
        assert!(
            status.success(),
            "building the sensor binary failed: {status}"
        );
        let bin = dir.join("sensor");
        assert!(bin.is_file(), "{} missing after the build", bin.display());
        bin
    })
}

pub struct Output {
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Exit status 101 and "panicked" are how a Rust program panics.
    pub fn assert_no_panic(&self) {
        assert!(
            self.code.is_some() && self.code != Some(101) && !self.stderr.contains("panicked"),
            "the sensor crashed ({:?}): {}",
            self.code,
            self.stderr
        );
    }
}

pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new(sensor_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running the sensor binary");
    Output {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
