//! `cargo xtask bench analyze`: `sensor analyze` against Suricata 7 and
//! tshark on one capture of real traffic, in MB/s and handshakes found.
//! Figures are printed, never asserted: the machine is shared.

mod capture;
mod suricata;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::{root, run};

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Time `sensor analyze`, Suricata 7 and tshark on a generated capture
    /// (>= 100 MB of real TLS and plain traffic, thousands of handshakes).
    Analyze(AnalyzeArgs),
    /// Kernel per-packet cost through BPF_PROG_TEST_RUN (root).
    Bpf {
        /// Passed to the benchmark: --repeat N --rounds N --shots N --ship bpf-loop|bounded.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Make a new capture even when .cache/bench holds one.
    #[arg(long)]
    regenerate: bool,
    /// Time this capture instead of the generated one.
    #[arg(long)]
    capture: Option<PathBuf>,
    /// Timed runs of each tool; the fastest counts.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// TLS connections per curl job when generating (5 jobs).
    #[arg(long, default_value_t = capture::Spec::default().curl_connections)]
    curl_connections: usize,
    /// Size in MB of the file downloaded twice over https and twice over http.
    #[arg(long, default_value_t = capture::Spec::default().bulk_mb)]
    bulk_mb: usize,
    /// Leave tshark out (it is by far the slowest).
    #[arg(long)]
    no_tshark: bool,
}

pub fn main(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Analyze(a) => analyze(a),
        BenchCmd::Bpf { args } => {
            crate::setup::setup()?;
            crate::bench_bpf::bench_bpf(&args)
        }
    }
}

/// What one tool found in one run.
struct Found {
    handshakes: u64,
    /// Handshakes by (version, resumed), where the tool says.
    detail: BTreeMap<String, u64>,
}

struct Timed {
    tool: String,
    wall: Duration,
    cpu: Duration,
    found: Found,
}

/// CPU time (user + system) of the children waited for so far, threads
/// included: on a shared machine this is the figure that does not depend on
/// what else runs.
fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs the tool's command, returning its wall time.
fn run_timed(cmd: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    run(cmd)?;
    Ok(t.elapsed())
}

/// Runs `once` `runs` times; the fastest wall and CPU times of the tool's
/// process count (reading its output afterwards is not timed).
fn timed(
    tool: String,
    runs: usize,
    mut once: impl FnMut() -> Result<(Duration, Found)>,
) -> Result<Timed> {
    let mut wall = Duration::MAX;
    let mut cpu = Duration::MAX;
    let mut found = None;
    for _ in 0..runs.max(1) {
        let c = children_cpu();
        let (w, f) = once()?;
        wall = wall.min(w);
        cpu = cpu.min(children_cpu().saturating_sub(c));
        found = Some(f);
    }
    Ok(Timed {
        tool,
        wall,
        cpu,
        found: found.expect("at least one run"),
    })
}

/// Drops the file from the page cache and reads it back once, so every tool
/// starts from memory, in the state a file read from disk leaves behind: the
/// kernel's read-ahead fills it in large folios. Straight after tcpdump wrote
/// it, the cache holds small ones, which makes reading it two to three times
/// dearer for every tool.
fn prepare_page_cache(file: &Path) -> Result<()> {
    run(Command::new("dd")
        .arg(format!("if={}", file.display()))
        .args(["iflag=nocache", "count=0", "status=none"]))?;
    std::io::copy(&mut std::fs::File::open(file)?, &mut std::io::sink())?;
    Ok(())
}

fn sensor(bin: &Path, file: &Path, out: &Path) -> Result<(Duration, Found)> {
    let wall = run_timed(
        Command::new(bin)
            .args(["analyze", "--json"])
            .arg(file)
            .stdout(std::fs::File::create(out)?),
    )?;
    let mut detail = BTreeMap::new();
    let mut handshakes = None;
    for line in BufReader::new(std::fs::File::open(out)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        match v["kind"].as_str() {
            Some("handshake") => {
                let key = format!(
                    "{} resumed={}",
                    v["version"].as_str().unwrap_or("-"),
                    v["resumed"]
                );
                *detail.entry(key).or_default() += 1;
            }
            Some("summary") => handshakes = v["handshakes"].as_u64(),
            _ => {}
        }
    }
    let found = Found {
        handshakes: handshakes.context("sensor printed no summary")?,
        detail,
    };
    Ok((wall, found))
}

fn suricata_run(
    s: &suricata::Suricata,
    config: &Path,
    logs: &Path,
    file: &Path,
    single: bool,
) -> Result<(Duration, Found)> {
    let _ = std::fs::remove_dir_all(logs);
    std::fs::create_dir_all(logs)?;
    let mut c = s.command();
    c.arg("-c")
        .arg(config)
        .args(["-S", "/dev/null", "-k", "none", "-l"])
        .arg(logs)
        .arg("-r")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if single {
        c.args(["--runmode", "single"]);
    }
    let wall = run_timed(&mut c)?;
    let mut detail = BTreeMap::new();
    let mut handshakes = 0;
    for line in BufReader::new(std::fs::File::open(logs.join("eve.json"))?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        if v["event_type"] == "tls" {
            handshakes += 1;
            let tls = &v["tls"];
            let key = format!(
                "{} resumed={}",
                tls["version"].as_str().unwrap_or("-"),
                tls["session_resumed"].as_bool().unwrap_or(false)
            );
            *detail.entry(key).or_default() += 1;
        }
    }
    Ok((wall, Found { handshakes, detail }))
}

/// Connections with a ClientHello: a HelloRetryRequest makes two hellos in one.
fn tshark(file: &Path) -> Result<(Duration, Found)> {
    let t = Instant::now();
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-d",
            "tcp.port==4443,tls",
            "-d",
            "tcp.port==8443,tls",
            "-Y",
            "tls.handshake.type == 1",
            "-T",
            "fields",
            "-e",
            "tcp.stream",
        ])
        .stderr(Stdio::null())
        .output()
        .context("running tshark")?;
    let wall = t.elapsed();
    if !out.status.success() {
        bail!("tshark failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let hellos = text.lines().count() as u64;
    let streams: BTreeSet<&str> = text.lines().collect();
    let mut detail = BTreeMap::new();
    detail.insert("ClientHello frames".to_string(), hellos);
    let found = Found {
        handshakes: streams.len() as u64,
        detail,
    };
    Ok((wall, found))
}

fn tool_version(cmd: &str, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn analyze(a: AnalyzeArgs) -> Result<()> {
    crate::setup::setup()?;
    let root = root();
    let cache = root.join(".cache/bench");
    std::fs::create_dir_all(&cache)?;
    let file = match &a.capture {
        Some(f) => f.clone(),
        None => {
            let f = cache.join("analyze.pcap");
            if a.regenerate || !f.is_file() {
                let spec = capture::Spec {
                    curl_connections: a.curl_connections,
                    bulk_mb: a.bulk_mb,
                    ..Default::default()
                };
                eprintln!("xtask bench: generating {} ({spec:?})", f.display());
                let made = capture::generate(&f, &spec)?;
                println!(
                    "generated in {:.0} s: about {} TLS connections made; tcpdump: {}",
                    made.seconds, made.tls_connections_attempted, made.tcpdump_report
                );
            }
            f
        }
    };
    let size = std::fs::metadata(&file)
        .with_context(|| file.display().to_string())?
        .len();
    let mb = size as f64 / 1e6;
    if a.capture.is_none() && mb < 100.0 {
        bail!(
            "{} holds {mb:.1} MB, less than 100 MB: run with --regenerate and a larger --bulk-mb",
            file.display()
        );
    }

    run(Command::new("cargo").current_dir(&root).args([
        "build",
        "--release",
        "-p",
        "sensor",
        "--bin",
        "sensor",
    ]))?;
    let sensor_bin = root.join("target/release/sensor");
    let suri = suricata::ensure(&root)?;
    let work = std::env::temp_dir().join(format!("tlsbench-run-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let config = suricata::config(&work)?;

    prepare_page_cache(&file)?;

    let mut results = Vec::new();
    let sensor_out = work.join("sensor.jsonl");
    results.push(timed("sensor analyze --json".into(), a.runs, || {
        sensor(&sensor_bin, &file, &sensor_out)
    })?);
    for single in [false, true] {
        let name = format!(
            "suricata {} ({})",
            suri.version,
            if single {
                "--runmode single"
            } else {
                "default runmode"
            }
        );
        results.push(timed(name, a.runs, || {
            suricata_run(&suri, &config, &work.join("logs"), &file, single)
        })?);
    }
    if !a.no_tshark {
        let v = tool_version("tshark", "--version");
        let v = v.split_whitespace().nth(2).unwrap_or("?");
        results.push(timed(format!("tshark {v} (1 run)"), 1, || tshark(&file))?);
    }
    let _ = std::fs::remove_dir_all(&work);

    println!("\ncapture: {} ({mb:.1} MB)", file.display());
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>11}",
        "tool (best of runs)", "wall s", "MB/s", "CPU s", "MB/CPU-s", "handshakes"
    );
    for r in &results {
        println!(
            "{:<40} {:>9.3} {:>9.1} {:>9.3} {:>9.1} {:>11}",
            r.tool,
            r.wall.as_secs_f64(),
            mb / r.wall.as_secs_f64(),
            r.cpu.as_secs_f64(),
            mb / r.cpu.as_secs_f64(),
            r.found.handshakes
        );
    }
    for r in &results {
        let d: Vec<String> = r
            .found
            .detail
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!("  {}: {}", r.tool, d.join(", "));
    }
    let sensor = &results[0];
    for suricata in &results[1..3] {
        let wall = suricata.wall.as_secs_f64() / sensor.wall.as_secs_f64();
        let cpu = suricata.cpu.as_secs_f64() / sensor.cpu.as_secs_f64();
        println!(
            "sensor vs {}: {wall:.1}x by wall time, {cpu:.1}x by CPU time (target >= 10x); handshakes {} vs {} ({})",
            suricata.tool,
            sensor.found.handshakes,
            suricata.found.handshakes,
            if sensor.found.handshakes == suricata.found.handshakes {
                "equal"
            } else {
                "DIFFERENT"
            }
        );
    }
    Ok(())
}
