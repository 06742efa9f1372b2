//! `cargo xtask bench bpf`: the kernel program's per-packet cost through
//! BPF_PROG_TEST_RUN. The measuring code is sensor/benches/bpf.rs, a bench
//! target of the sensor crate, because it loads the sensor's kernel object
//! (built by sensor/build.rs) — xtask must build before bpf-linker exists.

use std::process::Command;

use anyhow::Result;

use crate::{root, run};

/// Builds and runs the benchmark; `args` (`--repeat N --rounds N --shots N`)
/// go to the benchmark binary.
pub fn bench_bpf(args: &[String]) -> Result<()> {
    run(Command::new("cargo")
        .current_dir(root())
        .args(["bench", "-p", "sensor", "--bench", "bpf", "--"])
        .args(args))
}
