//! Builds the kernel programs (sensor-ebpf) with the nightly toolchain and
//! bpf-linker through aya-build, the way aya-template does.

use std::path::Path;
use std::process::Command;

fn check_prerequisites() {
    let fix = "run `cargo xtask setup` (as root) to install the eBPF build prerequisites";
    let linker = Command::new("bpf-linker").arg("--version").output();
    if !linker.is_ok_and(|o| o.status.success()) {
        panic!(
            "bpf-linker not found on PATH: {fix} (or `cargo install bpf-linker@0.10.4 --locked`)"
        );
    }
    let src = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output();
    let has_src = src.is_ok_and(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.starts_with("rust-src"))
    });
    if !has_src {
        panic!(
            "the nightly toolchain's rust-src is missing: {fix} (or `rustup component add rust-src --toolchain nightly`)"
        );
    }
}

fn main() {
    check_prerequisites();
    // Read when the script runs, not baked in when it compiles: a target
    // folder copied from another checkout reuses this script's binary,
    // which would otherwise build (and watch) that checkout's programs.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("../sensor-ebpf");
    let root = root.canonicalize().expect("sensor-ebpf next to sensor");
    let package = aya_build::Package {
        name: "sensor-ebpf",
        root_dir: root.to_str().expect("utf-8 path"),
        no_default_features: false,
        features: &[],
    };
    println!("cargo:rerun-if-changed=../sensor-common/src");
    if let Err(e) = aya_build::build_ebpf([package], aya_build::Toolchain::default()) {
        panic!("building sensor-ebpf: {e:#}");
    }
}
