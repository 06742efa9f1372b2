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
#[derive(Default)]
struct Found {
    handshakes: u64,
    /// Frames read, where the tool says (the sensor's summary does).
    frames: u64,
    /// Handshakes by (version, resumed), where the tool says.
    detail: BTreeMap<String, u64>,
}

struct Timed {
    tool: String,
    wall: Duration,
    cpu: Duration,
    /// Peak resident memory of the tool's process, KiB.
    max_rss_kib: u64,
    found: Found,
}

impl Timed {
    /// µs of CPU per handshake found; None when none was.
    fn us_per_handshake(&self) -> Option<f64> {
        let n = self.found.handshakes;
        (n > 0).then(|| self.cpu.as_secs_f64() * 1e6 / n as f64)
    }
}

/// What one run of a tool's process cost.
#[derive(Clone, Copy)]
struct Usage {
    wall: Duration,
    /// User + system time of the process and its threads: on a shared
    /// machine this is the figure that does not depend on what else runs.
    cpu: Duration,
    max_rss_kib: u64,
}

/// Runs the tool's command and measures that one process (wait4 gives its
/// own rusage, where RUSAGE_CHILDREN would mix every child's peak memory).
fn run_timed(cmd: &mut Command) -> Result<Usage> {
    let t = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let mut status = 0;
    // SAFETY: wait4 writes only the status and the struct it is given; the
    // pid is our own unreaped child.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::wait4(child.id() as i32, &mut status, 0, &mut ru) < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        ru
    };
    let wall = t.elapsed();
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{cmd:?} failed (wait status {status})");
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Usage {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kib: ru.ru_maxrss as u64,
    })
}

/// Runs `once` `runs` times; the fastest wall and CPU times and the
/// largest peak memory of the tool's process count (reading its output
/// afterwards is not timed).
fn timed(
    tool: String,
    runs: usize,
    mut once: impl FnMut() -> Result<(Usage, Found)>,
) -> Result<Timed> {
    let mut wall = Duration::MAX;
    let mut cpu = Duration::MAX;
    let mut max_rss_kib = 0;
    let mut found = None;
    for _ in 0..runs.max(1) {
        let (u, f) = once()?;
        wall = wall.min(u.wall);
        cpu = cpu.min(u.cpu);
        max_rss_kib = max_rss_kib.max(u.max_rss_kib);
        found = Some(f);
    }
    Ok(Timed {
        tool,
        wall,
        cpu,
        max_rss_kib,
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

fn sensor(bin: &Path, file: &Path, out: &Path) -> Result<(Usage, Found)> {
    let usage = run_timed(
        Command::new(bin)
            .args(["analyze", "--json"])
            .arg(file)
            .stdout(std::fs::File::create(out)?),
    )?;
    let mut detail = BTreeMap::new();
    let mut handshakes = None;
    let mut frames = 0;
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
            Some("summary") => {
                handshakes = v["handshakes"].as_u64();
                frames = v["frames"].as_u64().unwrap_or(0);
            }
            _ => {}
        }
    }
    let found = Found {
        handshakes: handshakes.context("sensor printed no summary")?,
        frames,
        detail,
    };
    Ok((usage, found))
}

/// The sensor's own capture reader alone (sensor/examples/read_floor.rs),
/// with or without decoding each frame: the floor under `sensor analyze`.
/// `frames` is what it read, to be checked against the sensor's count.
fn floor(bin: &Path, file: &Path, decode: bool, out: &Path) -> Result<(Usage, Found)> {
    let mut cmd = Command::new(bin);
    if decode {
        cmd.arg("--decode");
    }
    let usage = run_timed(cmd.arg(file).stdout(std::fs::File::create(out)?))?;
    let printed = std::fs::read_to_string(out)?;
    let frames = printed
        .split_whitespace()
        .skip_while(|w| *w != "frames")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("read_floor printed no frame count: {printed}"))?;
    let found = Found {
        frames,
        ..Found::default()
    };
    Ok((usage, found))
}

fn suricata_run(
    s: &suricata::Suricata,
    config: &Path,
    logs: &Path,
    file: &Path,
    single: bool,
) -> Result<(Usage, Found)> {
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
    let usage = run_timed(&mut c)?;
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
    Ok((
        usage,
        Found {
            handshakes,
            detail,
            ..Default::default()
        },
    ))
}

/// Connections with a ClientHello: a HelloRetryRequest makes two hellos in one.
fn tshark(file: &Path, out: &Path) -> Result<(Usage, Found)> {
    let usage = run_timed(
        Command::new("tshark")
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
            .stdout(std::fs::File::create(out)?)
            .stderr(Stdio::null()),
    )?;
    let text = std::fs::read_to_string(out)?;
    let hellos = text.lines().count() as u64;
    let streams: BTreeSet<&str> = text.lines().collect();
    let mut detail = BTreeMap::new();
    detail.insert("ClientHello frames".to_string(), hellos);
    let found = Found {
        handshakes: streams.len() as u64,
        detail,
        ..Default::default()
    };
    Ok((usage, found))
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
        "--example",
        "read_floor",
    ]))?;
    let sensor_bin = root.join("target/release/sensor");
    let floor_bin = root.join("target/release/examples/read_floor");
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
    // What reading the file at all costs, and decoding its frames, from the
    // same page cache: the sensor's cost per handshake is read against these.
    let floor_out = work.join("floor.txt");
    let floor_run = |decode: bool| {
        let name = if decode {
            "read_floor --decode"
        } else {
            "read_floor"
        };
        timed(name.into(), a.runs, || {
            floor(&floor_bin, &file, decode, &floor_out)
        })
    };
    let (read_only, decoded) = (floor_run(false)?, floor_run(true)?);
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
        let out = work.join("tshark.txt");
        results.push(timed(format!("tshark {v} (1 run)"), 1, || {
            tshark(&file, &out)
        })?);
    }

    // The same capture four times over, each copy shifted past the one
    // before: the sensor's cost per handshake and its memory must not grow
    // with the length of a capture.
    let four = work.join("four.pcap");
    four_times(&file, &work, &four)?;
    prepare_page_cache(&four)?;
    let four_out = work.join("sensor-4x.jsonl");
    let scaled = timed("sensor analyze --json, 4x".into(), a.runs, || {
        sensor(&sensor_bin, &four, &four_out)
    })?;
    // Only the plain HTTP of the capture (nginx's port 80): packets of
    // connections that are counted and never parsed, the per-packet floor.
    let plain = work.join("plain.pcap");
    run(Command::new("tcpdump")
        .args(["-r"])
        .arg(&file)
        .arg("-w")
        .arg(&plain)
        .args(["tcp", "port", "80"])
        .stderr(Stdio::null()))?;
    prepare_page_cache(&plain)?;
    let plain_mb = std::fs::metadata(&plain)?.len() as f64 / 1e6;
    let plain_out = work.join("sensor-plain.jsonl");
    let plain_only = timed(
        "sensor analyze --json, plain HTTP only".into(),
        a.runs,
        || sensor(&sensor_bin, &plain, &plain_out),
    )?;
    let _ = std::fs::remove_dir_all(&work);

    println!("\ncapture: {} ({mb:.1} MB)", file.display());
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>9} {:>10} {:>8} {:>11}",
        "tool (best of runs)",
        "wall s",
        "MB/s",
        "CPU s",
        "MB/CPU-s",
        "µs CPU/hs",
        "peak MiB",
        "handshakes"
    );
    let row = |r: &Timed, mb: f64| {
        let per_hs = r
            .us_per_handshake()
            .map_or_else(|| "-".to_string(), |us| format!("{us:.1}"));
        println!(
            "{:<40} {:>8.3} {:>8.1} {:>8.3} {:>9.1} {:>10} {:>8.1} {:>11}",
            r.tool,
            r.wall.as_secs_f64(),
            mb / r.wall.as_secs_f64(),
            r.cpu.as_secs_f64(),
            mb / r.cpu.as_secs_f64(),
            per_hs,
            r.max_rss_kib as f64 / 1024.0,
            r.found.handshakes
        );
    };
    for r in &results {
        row(r, mb);
    }
    row(&scaled, 4.0 * mb);
    row(&plain_only, plain_mb);
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
    if sensor.found.handshakes < 5000 {
        println!(
            "note: {} handshakes in this capture, fewer than 5,000: --regenerate with more --curl-connections",
            sensor.found.handshakes
        );
    }
    for other in &results[1..] {
        let wall = other.wall.as_secs_f64() / sensor.wall.as_secs_f64();
        let cpu = other.cpu.as_secs_f64() / sensor.cpu.as_secs_f64();
        let target = if other.tool.starts_with("tshark") {
            100
        } else {
            10
        };
        println!(
            "sensor vs {}: {wall:.1}x by wall time, {cpu:.1}x by CPU time (target >= {target}x by wall); \
             handshakes {} vs {} ({})",
            other.tool,
            sensor.found.handshakes,
            other.found.handshakes,
            if sensor.found.handshakes == other.found.handshakes {
                "equal"
            } else {
                "DIFFERENT"
            }
        );
    }
    match plain_only.found.frames {
        0 => println!("sensor, plain HTTP only: the capture has no port-80 traffic"),
        n => println!(
            "sensor, plain HTTP only ({plain_mb:.1} MB, {n} packets, {} handshakes): {:.0} ns per packet by wall, {:.0} ns CPU per packet (start-up included)",
            plain_only.found.handshakes,
            plain_only.wall.as_secs_f64() * 1e9 / n as f64,
            plain_only.cpu.as_secs_f64() * 1e9 / n as f64,
        ),
    }
    let hs = sensor.found.handshakes.max(1) as f64;
    let us = |r: &Timed| r.cpu.as_secs_f64() * 1e6 / hs;
    println!(
        "floor under the sensor, its own reader and nothing else: reading every frame {:.1} µs CPU per handshake, \
         and decoding each {:.1}; the sensor's work above that {:.1} ({} frames{})",
        us(&read_only),
        us(&decoded),
        us(sensor) - us(&decoded),
        decoded.found.frames,
        if read_only.found.frames == sensor.found.frames
            && decoded.found.frames == sensor.found.frames
        {
            ", as many as the sensor read".to_string()
        } else {
            format!(", the sensor read {}: NOT THE SAME", sensor.found.frames)
        }
    );
    let per_hs = |r: &Timed| r.us_per_handshake().unwrap_or(f64::NAN);
    println!(
        "sensor 1x -> 4x: handshakes {} -> {} ({}), µs CPU per handshake {:.1} -> {:.1}, peak RSS {:.1} -> {:.1} MiB",
        sensor.found.handshakes,
        scaled.found.handshakes,
        if scaled.found.handshakes == 4 * sensor.found.handshakes {
            "4x"
        } else {
            "NOT 4x"
        },
        per_hs(sensor),
        per_hs(&scaled),
        sensor.max_rss_kib as f64 / 1024.0,
        scaled.max_rss_kib as f64 / 1024.0
    );
    Ok(())
}

/// `file` four times in a row, each copy's timestamps moved past the end of
/// the one before (editcap and mergecap, Wireshark's tools beside tshark).
fn four_times(file: &Path, work: &Path, out: &Path) -> Result<()> {
    let span = capture_span_secs(file)?.ceil() as u64 + 60;
    let mut parts = vec![file.to_path_buf()];
    for i in 1..4u64 {
        let shifted = work.join(format!("shift{i}.pcap"));
        run(Command::new("editcap")
            .args(["-F", "pcap", "-t", &(i * span).to_string()])
            .arg(file)
            .arg(&shifted))?;
        parts.push(shifted);
    }
    run(Command::new("mergecap")
        .args(["-F", "pcap", "-a", "-w"])
        .arg(out)
        .args(&parts))?;
    for p in &parts[1..] {
        std::fs::remove_file(p)?;
    }
    Ok(())
}

/// Seconds from a capture's first packet to its last (capinfos).
fn capture_span_secs(file: &Path) -> Result<f64> {
    let out = Command::new("capinfos")
        .args(["-u", "-M", "-T", "-r"])
        .arg(file)
        .output()
        .context("running capinfos")?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .context("capinfos gave no duration")
}
