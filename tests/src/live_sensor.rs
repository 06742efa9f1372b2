//! `sensor run --json` in a network namespace, as the live tests drive
//! it: started, waited for until attached, stopped, its JSON lines read.

use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::proc::Watched;
use crate::{json_lines, sensor_bin};

pub struct LiveSensor {
    pub watched: Watched,
    pub out: tempfile::NamedTempFile,
}

impl LiveSensor {
    /// Starts `sensor run --json` in `ns` and waits until it is attached.
    pub fn start(ns: &Netns, args: &[&str]) -> LiveSensor {
        let out = tempfile::NamedTempFile::new().expect("temp file");
        let bin = sensor_bin();
        let mut cmd = ns.cmd(bin.to_str().expect("utf-8"));
        cmd.env("RUST_LOG", "info")
            .args(["run", "--json", "--stats-interval", "3600"])
            // These tests are about capture; tests/tests/probe.rs covers
            // probing, whose connections a tcpdump here would also see.
            .args(["--probe", "off"])
            .args(args);
        let mut watched = Watched::spawn(&mut cmd, out.reopen().expect("reopen"));
        watched.wait_for("attached", Duration::from_secs(60));
        LiveSensor { watched, out }
    }

    /// Stops it; returns its JSON lines.
    pub fn stop(self) -> Vec<Value> {
        // Let the last ring-buffer records drain.
        std::thread::sleep(crate::patience(Duration::from_millis(300)));
        let log = self.watched.stop();
        let lines = json_lines(&std::fs::read_to_string(self.out.path()).expect("read output"));
        if lines.is_empty() {
            eprintln!("the sensor wrote nothing; its log:\n{}", log.join("\n"));
        }
        lines
    }
}
