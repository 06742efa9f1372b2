//! `cargo xtask demo`: seven TLS servers in pod-like network namespaces,
//! real clients talking to them, and the sensor watching the pods' veths in
//! a node namespace with an inventory snapshot naming the pods and their
//! cert-manager certificates; then a summary of what it saw. `--check`
//! asserts it.

mod inventory;
mod lab;
mod net;
mod pki;
mod report;
mod scenarios;
mod sensor;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};
use time::OffsetDateTime;

use lab::Lab;
use net::Node;
use scenarios::ALL;
use sensor::Sensor;

#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Options {
    /// Assert that each scenario was observed with the expected facts; fail otherwise.
    #[arg(long)]
    pub check: bool,
    /// Print the sensor's JSON lines instead of the summary.
    #[arg(long)]
    pub json: bool,
}

fn sensor_binary() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"))
        .join("release/sensor")
}

fn ensure_root() -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "the demo needs root: it creates network namespaces and loads eBPF programs (try: sudo -E cargo xtask demo)"
        );
    }
    Ok(())
}

/// The command: prerequisites, the sensor's build, then the demo.
pub fn demo(opts: Options) -> Result<()> {
    ensure_root()?;
    crate::setup::setup()?;
    // The same build as `cargo xtask test`, so one does not redo the other's
    // work (a narrower `-p sensor` unifies dependency features differently).
    eprintln!("building the sensor (cargo build --release; the first build takes several minutes)");
    // Quiet: a fresh build replays the eBPF build's log as warnings.
    crate::run(Command::new("cargo").current_dir(crate::root()).args([
        "build",
        "--release",
        "--quiet",
        "--workspace",
        "--bins",
    ]))?;
    run(opts)
}

/// Progress on one line of stderr, so stdout holds only the result.
struct Progress {
    started: Instant,
}

impl Progress {
    fn step(&self, what: &str) {
        eprint!("{what}… ");
        let _ = std::io::stderr().flush();
    }

    fn done(&self) {
        eprintln!("done in {:.1} s", self.started.elapsed().as_secs_f64());
    }
}

/// The demo over an already built sensor (`cargo xtask test` builds it).
pub fn run(opts: Options) -> Result<()> {
    let result = run_demo(opts);
    if result.is_err() {
        // End the progress line.
        eprintln!();
    }
    if result.is_err() && lab::interrupted() {
        // Ctrl-C also reached the short-lived commands we were running, so
        // the error is only its echo; the signal handler is cleaning up and
        // exits with 130.
        loop {
            std::thread::park();
        }
    }
    result
}

fn run_demo(opts: Options) -> Result<()> {
    ensure_root()?;
    let binary = sensor_binary();
    if !binary.exists() {
        bail!(
            "{} is missing: cargo build --release -p sensor",
            binary.display()
        );
    }
    if !opts.json {
        println!(
            "tls-sensor demo: seven TLS servers, each in a network namespace of its own (a \"pod\"),\n\
             real clients (curl, openssl s_client) calling them from another, and the sensor's eBPF\n\
             programs watching the pods' veths from a \"node\" namespace, as on a Kubernetes node.\n\
             An inventory snapshot (kubectl get -o yaml style) names the pods and the cert-manager\n\
             Certificates behind their certificates; one was renewed but its server never reloaded.\n"
        );
    }
    let progress = Progress {
        started: Instant::now(),
    };
    let lab = Lab::new()?;
    progress.step("certificates");
    let certs = scenarios::certificates(&lab.dir().join("pki"))?;
    progress.step("namespaces");
    let node = Node::new(&lab)?;
    let client = node.pod(&lab, "client", 10)?;
    let mut pods = Vec::new();
    for kind in ALL {
        pods.push((kind, node.pod(&lab, kind.short(), kind.host())?));
    }
    let mut veths: Vec<String> = pods.iter().map(|(_, p)| p.veth.clone()).collect();
    veths.push(client.veth.clone());
    progress.step("servers");
    let servers = scenarios::start_servers(&lab, &certs, pods)?;
    progress.step("inventory");
    let pods: Vec<(scenarios::Kind, &str)> = servers.iter().map(|s| (s.kind, s.ip())).collect();
    let objects = inventory::objects(net::NODE_IP, &client.ip, &pods, &certs)?;
    let snapshot = inventory::write(lab.dir(), objects)?;
    progress.step("sensor");
    let mut sensor = Sensor::start(
        &lab,
        &node.ns,
        &binary,
        &veths,
        &certs.pki.root.cert,
        &snapshot,
        inventory::NODE,
    )?;
    progress.step("clients");
    let clients = scenarios::run_clients(&lab, &client, &servers, &certs)?;
    let ips: Vec<&str> = servers.iter().map(|s| s.ip()).collect();
    let lines = sensor.stop(&lab, &ips)?;
    let warnings = sensor.warnings();
    progress.done();

    let records = report::parse(&lines)?;
    let now = OffsetDateTime::now_utc();
    let rows = report::rows(&records, &servers, &clients);
    if opts.json {
        for l in &lines {
            println!("{l}");
        }
    } else {
        println!();
        print!("{}", report::render(&rows, &records, now));
        println!();
        print!("{}", report::render_summary(records.summary.as_ref()));
        for w in warnings.iter().take(5) {
            println!("The sensor warned: {w}");
        }
        println!(
            "\nEvery row comes from the sensor's JSON lines (RECORDS.md); `cargo xtask demo --json` \
             prints them.\nOn a machine of your own: `sudo target/release/sensor run --json` \
             (without --json: a live table)."
        );
    }
    let failures = if opts.check {
        report::check(&rows, &records, now)?
    } else {
        Vec::new()
    };
    // Leftovers are an error too, so clean up before judging.
    lab.cleanup()?;
    if opts.check {
        if !failures.is_empty() {
            bail!(
                "demo check failed:\n  {}\n--- sensor output ---\n{}",
                failures.join("\n  "),
                lines.join("\n")
            );
        }
        eprintln!(
            "demo check: all {} scenarios observed as expected",
            ALL.len()
        );
    }
    Ok(())
}
