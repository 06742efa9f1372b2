//! A whole capture file → `sensor analyze`: pcap/pcapng reading, link-layer
//! and IP decoding, then the pipeline.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use sensor::analyze::analyze;
use sensor::export::json::JsonLines;
use sensor::pipeline::PipelineConfig;

fn scratch() -> PathBuf {
    // tmpfs when there is one: this file is rewritten on every run.
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("sensor-fuzz-pcap-{}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(&path, data).expect("scratch file");
    let mut cfg = PipelineConfig::default();
    cfg.reassembly.max_pending_total = 1 << 20;
    cfg.max_handshake_message = 256 << 10;
    let out = analyze(
        &[path.clone()],
        cfg,
        sensor::analysis::Analysis::default(),
        JsonLines::new(std::io::sink()),
    );
    assert!(out.sink.error.is_none());
    assert!(out.summary.files + out.failed.len() as u64 == 1);
    let _ = std::fs::remove_file(&path);
});
