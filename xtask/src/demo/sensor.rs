//! `sensor run --json` in the node namespace: started, waited on until its
//! programs sit on every pod veth, stopped with SIGINT once it has reported
//! each server, its output collected.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::lab::Lab;

const NAME: &str = "sensor";
/// A backstop: the demo stops the sensor long before this.
const MAX_SECONDS: &str = "120";

pub struct Sensor {
    lines: Receiver<String>,
    stderr: Arc<Mutex<Vec<String>>>,
    stderr_new: Receiver<String>,
    /// JSON lines received so far.
    pub out: Vec<String>,
}

fn forward(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Whether this build of the sensor knows a flag (later features add some).
fn supports(binary: &Path, subcommand: &str, flag: &str) -> bool {
    std::process::Command::new(binary)
        .args([subcommand, "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(flag))
}

impl Sensor {
    /// Starts it and waits until it is attached to each of `interfaces`.
    /// `inventory` is the demo's snapshot; the pods in it run on `node`.
    pub fn start(
        lab: &Lab,
        ns: &str,
        binary: &Path,
        interfaces: &[String],
        trust_anchor: &Path,
        inventory: &Path,
        node: &str,
    ) -> Result<Self> {
        let bin = binary.to_string_lossy();
        let anchor = trust_anchor.to_string_lossy();
        let inventory = inventory.to_string_lossy();
        let mut argv = vec![bin.as_ref(), "run", "--json", "--duration", MAX_SECONDS];
        // The default `--probe local` probes the servers the inventory
        // places on this node; the node is named explicitly so the host
        // name does not matter.
        argv.extend(["--inventory", &inventory, "--node-name", node]);
        // The demo's CA is nobody's system root; tell the sensor about it
        // so the good chain is judged as trusted.
        if supports(binary, "run", "--trust-anchors") {
            argv.extend(["--trust-anchors", &anchor]);
        }
        let (stdout, stderr) = lab.spawn_piped(
            NAME,
            ns,
            &argv,
            &[("RUST_LOG", "warn,sensor=info"), ("NO_COLOR", "1")],
        )?;
        let mut sensor = Sensor {
            lines: forward(stdout),
            stderr: Arc::new(Mutex::new(Vec::new())),
            stderr_new: forward(stderr),
            out: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut missing: Vec<&String> = interfaces.iter().collect();
        while !missing.is_empty() {
            sensor.drain_stderr();
            {
                let log = sensor.stderr.lock().expect("not poisoned");
                missing.retain(|i| {
                    let needle = format!("interface={i} ");
                    !log.iter()
                        .any(|l| l.contains("attached") && l.contains(&needle))
                });
            }
            if let Some(status) = lab.exited(NAME) {
                bail!("the sensor exited ({status}):\n{}", sensor.stderr_text());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the sensor did not attach to {missing:?} within 20 s:\n{}",
                    sensor.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sensor)
    }

    fn drain_stderr(&mut self) {
        let mut log = self.stderr.lock().expect("not poisoned");
        while let Ok(l) = self.stderr_new.try_recv() {
            log.push(l);
        }
    }

    pub fn stderr_text(&mut self) -> String {
        self.drain_stderr();
        self.stderr.lock().expect("not poisoned").join("\n")
    }

    /// Warnings and errors it logged.
    pub fn warnings(&mut self) -> Vec<String> {
        self.drain_stderr();
        self.stderr
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
            .cloned()
            .collect()
    }

    /// Collects lines until `done` says the output is complete enough or
    /// `wait` has passed.
    fn collect_until(&mut self, wait: Duration, done: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + wait;
        while !done(&self.out) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.out.push(l),
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => return done(&self.out),
            }
        }
        true
    }

    /// Waits (a few seconds at most) for a handshake record with each of
    /// `servers`, then stops the sensor and reads the rest of its output,
    /// its summary last.
    pub fn stop(&mut self, lab: &Lab, servers: &[&str]) -> Result<Vec<String>> {
        let seen_all = |out: &[String]| {
            servers.iter().all(|ip| {
                let needle = format!("\"server\":{{\"ip\":\"{ip}\"");
                out.iter()
                    .any(|l| l.contains("\"kind\":\"handshake\"") && l.contains(&needle))
            })
        };
        // Records appear as soon as a handshake completes; an incomplete
        // one only when the sensor stops, so this wait may time out.
        self.collect_until(Duration::from_secs(5), seen_all);
        lab.signal(NAME, libc::SIGINT);
        self.collect_until(Duration::from_secs(15), |_| false);
        let status = lab.wait(NAME, Duration::from_secs(15))?;
        if !status.success() {
            bail!("the sensor failed ({status}):\n{}", self.stderr_text());
        }
        Ok(std::mem::take(&mut self.out))
    }
}
