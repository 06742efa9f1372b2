//! `cargo xtask kernels`: the release sensor on Debian's own kernels
//! (5.10 bullseye, 6.1 bookworm, 6.12 trixie), each booted in a virtual
//! machine with the host's files shared read-only.
//!
//! - The kernel packages come from Debian through a private apt state in
//!   `.cache/kernels/apt` (`apt-get download`, `dpkg -x`), never installed.
//!   The generic amd64 images: their 9p modules let virtme-ng share the
//!   host's root (the cloud images have neither 9p nor a virtiofsd here).
//! - virtme-ng (PyPI, `pip install --target .cache/kernels/vng`) boots them
//!   under qemu-system-x86 with software emulation (TCG: the host is itself
//!   a VM whose KVM cannot boot stock kernels), busybox-static for its
//!   initramfs. One boot takes 20-60 s.
//! - Inside each guest, `xtask kernels-guest` (this file's `guest`) joins
//!   two network namespaces by a veth, starts TLS 1.2, mutual-TLS and
//!   plain HTTP servers, runs `sensor run --json` on the client's end, and
//!   writes what it found to a folder the guest may write (`--rwdir`): the
//!   guest's console is not a reliable channel. Then it runs the live tests
//!   (tests/tests/live.rs) that do not depend on timing, with the release
//!   sensor and their waits stretched tenfold.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use tests::certs::Pki;
use tests::netns::{CLIENT4, CLIENT6, End, Netns, Pair, SERVER4, SERVER6};

use crate::setup::receivers::{private_apt, private_apt_state};
use crate::{root, run};

/// Debian release, its apt sources, and the kernel series expected there.
const KERNELS: &[(&str, &str, &str)] = &[
    (
        "bullseye",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://deb.debian.org/debian bullseye main\n\
         deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://deb.debian.org/debian-security bullseye-security main\n",
        "5.10",
    ),
    (
        "bookworm",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://deb.debian.org/debian bookworm main\n",
        "6.1",
    ),
    (
        "trixie",
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://deb.debian.org/debian trixie main\n",
        "6.12",
    ),
];

const VIRTME_NG: &str = "virtme-ng==1.42";
/// One whole guest run: boot, checks, live tests, power-off. A hang guard:
/// on a quiet machine a guest takes 3-8 minutes, with builds beside it 15.
const GUEST_LIMIT: Duration = Duration::from_secs(2400);
/// Inside the guest: the sensor's load and attach, and each client.
const ATTACH_LIMIT: Duration = Duration::from_secs(600);
const CLIENT_LIMIT: &str = "120";

/// The live tests whose outcome does not hang on timing. Left out: the ring
/// buffer flood (user space must fall behind the kernel, a race), the full
/// flow map (idle expiry within seconds), the capability check (nothing
/// of the kernel in it).
const GUEST_LIVE_TESTS: &[&str] = &[
    "tls12_tls13_ipv4_ipv6_and_live_equals_analyze",
    "mutual_tls_client_chain",
    "mtu_400_spreads_the_certificate_over_many_segments",
    "gso_packets_of_64k_are_read_whole",
    "client_hello_split_across_two_segments",
    "an_sslv2_compatible_hello_is_followed_live",
    "loopback_sees_each_packet_twice_and_reports_once",
    "clsact_attach_sees_a_tls12_handshake",
    "bounded_loop_object_under_clsact_sees_a_whole_chain",
    "a_program_attached_after_ours_still_sees_every_packet",
    "plain_http_is_accounted_as_plaintext",
    "plain_http_between_pods_is_one_tls_plaintext_finding",
];
/// Emulation runs about ten times slower than the host.
const GUEST_SLOWDOWN: &str = "10";

const SNI_TLS: &str = "tls12.kernels.test";
const SNI_MTLS: &str = "mtls.kernels.test";
const TLS_PORT: u16 = 4443;
const MTLS_PORT: u16 = 4444;
const HTTP_PORT: u16 = 8080;

fn dir() -> PathBuf {
    root().join(".cache/kernels")
}

/// One `sensor run` in a guest: what it chose and what it saw.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Seen {
    pub loaded: bool,
    pub attach: String,
    pub ship: String,
    pub handshake: bool,
    pub mutual: bool,
    pub flow: bool,
}

impl Seen {
    fn ok(&self) -> bool {
        self.loaded && self.handshake && self.mutual && self.flow
    }
}

/// What a guest found, written to `result.json` in its folder: the run
/// the kernel's features choose, then, where that is the bpf_loop
/// object, one more with the bounded-loop object forced.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub kernel: String,
    pub runs: Vec<Seen>,
    pub live: Option<LiveTests>,
    pub error: Option<String>,
}

/// The live tests' verdicts in a guest, from libtest's output.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LiveTests {
    pub passed: usize,
    pub failed: Vec<String>,
}

impl LiveTests {
    fn ok(&self) -> bool {
        self.failed.is_empty() && self.passed == GUEST_LIVE_TESTS.len()
    }
}

impl Outcome {
    fn ok(&self) -> bool {
        self.error.is_none()
            && !self.runs.is_empty()
            && self.runs.iter().all(Seen::ok)
            && self.live.as_ref().is_none_or(LiveTests::ok)
    }

    fn line(&self) -> String {
        fn yes(b: bool, y: &'static str) -> &'static str {
            if b { y } else { "MISSING" }
        }
        let first = self.runs.first();
        let dash = |s: Option<&String>| match s {
            Some(s) if !s.is_empty() => s.clone(),
            _ => "-".into(),
        };
        let bounded = match self.runs.get(1) {
            Some(r) if r.ok() => "ok",
            Some(_) => "FAIL",
            None => "-",
        };
        let live = match &self.live {
            Some(l) => format!("{}/{}", l.passed, GUEST_LIVE_TESTS.len()),
            None => "-".into(),
        };
        format!(
            "{:<22} load {:<4} attach {:<7} ship {:<9} handshake {:<7} mtls {:<7} flow {:<8} \
             forced-bounded {:<4} live-tests {:<5} {}",
            self.kernel,
            if first.is_some_and(|r| r.loaded) {
                "ok"
            } else {
                "FAIL"
            },
            dash(first.map(|r| &r.attach)),
            dash(first.map(|r| &r.ship)),
            yes(first.is_some_and(|r| r.handshake), "seen"),
            yes(first.is_some_and(|r| r.mutual), "seen"),
            yes(first.is_some_and(|r| r.flow), "counted"),
            bounded,
            live,
            match (&self.error, self.ok()) {
                (Some(e), _) => format!("FAIL: {e}"),
                (None, true) => "ok".into(),
                (None, false) => match &self.live {
                    Some(l) if !l.failed.is_empty() => {
                        format!("FAIL: live tests {}", l.failed.join(", "))
                    }
                    _ => "FAIL".into(),
                },
            }
        )
    }
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn vng_dir() -> PathBuf {
    dir().join("vng")
}

/// qemu, busybox-static, depmod (Debian) and virtme-ng (PyPI), each only
/// when missing.
fn tools() -> Result<()> {
    let wanted = [
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("busybox", "busybox-static"),
        ("depmod", "kmod"),
    ];
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(cmd, _)| !have(cmd) && !Path::new("/usr/sbin").join(cmd).exists())
        .map(|(_, p)| *p)
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask kernels: installing {}", missing.join(" "));
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing))?;
    }
    if !vng_dir().join("bin/vng").exists() {
        eprintln!(
            "xtask kernels: {VIRTME_NG} (PyPI) into {}",
            vng_dir().display()
        );
        run(Command::new("python3")
            .args(["-m", "pip", "install", "-q", "--root-user-action=ignore"])
            .arg("--target")
            .arg(vng_dir())
            .arg(VIRTME_NG))?;
    }
    Ok(())
}

/// The kernel image of `release`'s generic amd64 kernel, downloaded and
/// unpacked under `.cache/kernels/<package>` once.
fn kernel(release: &str, sources: &str) -> Result<PathBuf> {
    let apt_dir = dir().join("apt").join(release);
    private_apt_state(&apt_dir, sources)?;
    let stamp = apt_dir.join("package");
    let package = match std::fs::read_to_string(&stamp) {
        Ok(p) if !p.trim().is_empty() => p.trim().to_string(),
        _ => {
            run(private_apt(&apt_dir).arg("update"))?;
            // The metapackage names this release's current image package.
            let out = private_apt_cache(&apt_dir)
                .args(["depends", "linux-image-amd64"])
                .output()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let package = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Depends: "))
                .find(|p| p.starts_with("linux-image-"))
                .with_context(|| format!("no image package for {release}: {text}"))?
                .to_string();
            std::fs::write(&stamp, &package)?;
            package
        }
    };
    let target = dir().join(&package);
    if let Some(img) = vmlinuz(&target) {
        return Ok(img);
    }
    eprintln!("xtask kernels: downloading {package} ({release})");
    let debs = apt_dir.join("debs");
    for e in std::fs::read_dir(&debs)? {
        std::fs::remove_file(e?.path())?;
    }
    let fetched = run(private_apt(&apt_dir)
        .current_dir(&debs)
        .args(["download", &package]));
    if fetched.is_err() {
        // The list may have moved on since the package name was kept.
        let _ = std::fs::remove_file(&stamp);
        return fetched.map(|_| PathBuf::new());
    }
    let deb = std::fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    if target.exists() {
        std::fs::remove_dir_all(&target)?;
    }
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&target))?;
    std::fs::remove_file(&deb)?;
    vmlinuz(&target).with_context(|| format!("no vmlinuz in {}", target.display()))
}

fn private_apt_cache(apt_dir: &Path) -> Command {
    let mut c = Command::new("apt-cache");
    let p = |s: &str| apt_dir.join(s).display().to_string();
    for (k, v) in [
        ("Dir::State", p("state")),
        ("Dir::State::status", p("state/status")),
        ("Dir::Cache", p("cache")),
        ("Dir::Etc::SourceList", p("sources.list")),
        ("Dir::Etc::SourceParts", p("sources.list.d")),
    ] {
        c.arg("-o").arg(format!("{k}={v}"));
    }
    c
}

fn vmlinuz(target: &Path) -> Option<PathBuf> {
    std::fs::read_dir(target.join("boot"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
}

/// The certificates every guest uses, made on the host (key generation
/// under emulation is slow): copied into `into`.
fn pki(into: &Path) -> Result<()> {
    let pki = Pki::new();
    pki.leaf("tls", SNI_TLS, 0, false);
    pki.leaf("mtls", SNI_MTLS, 0, false);
    pki.leaf("client", "client.kernels.test", 0, false);
    for f in [
        "root.pem",
        "int.pem",
        "tls.pem",
        "tls.key",
        "mtls.pem",
        "mtls.key",
        "client.pem",
        "client.key",
    ] {
        std::fs::copy(pki.path(f), into.join(f)).with_context(|| format!("copying {f}"))?;
    }
    Ok(())
}

/// Every kernel of `KERNELS`, or the series named in `only`.
pub fn kernels(only: &[String]) -> Result<()> {
    tools()?;
    let root = root();
    crate::build_release_bins()?;
    let sensor = root.join("target/release/sensor");
    let xtask = root.join("target/release/xtask");
    let live_tests = live_test_executable()?;
    let runs = dir().join("runs");
    let mut outcomes = Vec::new();
    for (release, sources, series) in KERNELS {
        if !only.is_empty() && !only.iter().any(|o| o == series) {
            continue;
        }
        let img = kernel(release, sources)?;
        let name = img
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("vmlinuz-"))
            .unwrap_or(series)
            .to_string();
        let out = runs.join(&name);
        let started = Instant::now();
        let mut outcome = None;
        // Under emulation a guest now and then dies before its checks write
        // anything (seen once in CI, never here): one more boot tells a
        // fluke from a kernel that fails.
        for attempt in 1..=2 {
            if out.exists() {
                std::fs::remove_dir_all(&out)?;
            }
            std::fs::create_dir_all(&out)?;
            pki(&out)?;
            eprintln!("xtask kernels: booting {name} ({release}), attempt {attempt}");
            match boot(&img, &xtask, &sensor, &live_tests, &out) {
                Ok(o) => {
                    outcome = Some(o);
                    break;
                }
                Err(e) => {
                    eprintln!("xtask kernels: {name}: {e:#}");
                    show_tail(&out.join("console.log"), 30);
                    show_tail(&out.join("guest.log"), 30);
                    outcome = Some(Outcome {
                        kernel: name.clone(),
                        error: Some(format!("{e:#}")),
                        ..Outcome::default()
                    });
                }
            }
        }
        let outcome = outcome.expect("at least one boot");
        if !outcome.ok() {
            show_tail(&out.join("live-tests.log"), 60);
        }
        eprintln!(
            "xtask kernels: {name} done in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        outcomes.push(outcome);
    }
    println!();
    for o in &outcomes {
        println!("{}", o.line());
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.ok())
        .map(|o| o.kernel.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "kernels failed: {} (guest logs under {})",
            failed.join(", "),
            runs.display()
        );
    }
    Ok(())
}

/// The last `n` lines of a guest's log on stderr, where CI keeps them.
fn show_tail(path: &Path, n: usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("--- last lines of {}", path.display());
    for l in &lines[lines.len().saturating_sub(n)..] {
        eprintln!("    {l}");
    }
}

/// The release build of tests/tests/live.rs, for the guests to run.
fn live_test_executable() -> Result<PathBuf> {
    let out = Command::new("cargo")
        .current_dir(root())
        .args([
            "test",
            "--release",
            "--workspace",
            "--test",
            "live",
            "--no-run",
            "--message-format",
            "json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("building the live tests")?;
    if !out.status.success() {
        bail!("building the live tests failed: {}", out.status);
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "live")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .context("cargo named no executable for the live tests")
}

/// Boots `img` with the host's root read-only and `out` writable, runs
/// the guest checks, and reads their result.
fn boot(img: &Path, xtask: &Path, sensor: &Path, live_tests: &Path, out: &Path) -> Result<Outcome> {
    let vng = vng_dir();
    let exec = format!(
        "{} kernels-guest --dir {} --sensor {} --live-tests {}",
        xtask.display(),
        out.display(),
        sensor.display(),
        live_tests.display()
    );
    let console = std::fs::File::create(out.join("console.log"))?;
    let mut child = Command::new(vng.join("bin/vng"))
        .env("PYTHONPATH", &vng)
        .env(
            "PATH",
            format!(
                "{}:{}",
                vng.join("bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .arg("--run")
        .arg(img)
        .args([
            "--disable-kvm",
            "--memory",
            "2G",
            "--cpus",
            "2",
            "--verbose",
        ])
        .arg("--rwdir")
        .arg(out)
        .arg("--exec")
        .arg(&exec)
        .stdin(Stdio::null())
        .stdout(console.try_clone()?)
        .stderr(console)
        // Its own process group: on a timeout, qemu goes with it.
        .process_group(0)
        .spawn()
        .context("starting vng")?;
    let start = Instant::now();
    // vng's own exit status says nothing here (it cannot relay the
    // script's without a virtio-serial channel): result.json does.
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > GUEST_LIMIT {
            // SAFETY: kill has no memory preconditions; the group is vng's.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            bail!("the guest did not finish within {GUEST_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let result = out.join("result.json");
    let text = std::fs::read_to_string(&result).with_context(|| {
        format!(
            "the guest wrote no {} (vng: {status}; console: {})",
            result.display(),
            out.join("console.log").display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

/// Progress lines in the shared folder: the console may lose them.
struct Log(std::fs::File);

impl Log {
    fn say(&mut self, what: &str) {
        let _ = writeln!(self.0, "{what}");
    }
}

/// Inside the guest: the checks, written to `dir/result.json`.
pub fn guest(dir: &Path, sensor: &Path, live_tests: Option<&Path>) -> Result<()> {
    let mut log = Log(std::fs::File::create(dir.join("guest.log"))?);
    let kernel = String::from_utf8_lossy(&Command::new("uname").arg("-r").output()?.stdout)
        .trim()
        .to_string();
    let mut outcome = Outcome {
        kernel,
        ..Outcome::default()
    };
    if let Err(e) = checks(dir, sensor, &mut outcome, &mut log) {
        log.say(&format!("error: {e:#}"));
        outcome.error = Some(format!("{e:#}"));
    }
    // The verdict so far is kept should the tests take the guest down.
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_string_pretty(&outcome)?,
    )?;
    if let Some(bin) = live_tests {
        log.say("live tests");
        match run_live_tests(bin, dir, sensor) {
            Ok(l) => outcome.live = Some(l),
            Err(e) => {
                log.say(&format!("live tests: {e:#}"));
                outcome.error.get_or_insert(format!("live tests: {e:#}"));
            }
        }
    }
    std::fs::write(
        dir.join("result.json"),
        serde_json::to_string_pretty(&outcome)?,
    )?;
    log.say("done");
    Ok(())
}

/// Runs the chosen live tests, two at a time as the guest has two CPUs
/// (they run in parallel on the host too), output in `dir/live-tests.log`.
fn run_live_tests(bin: &Path, dir: &Path, sensor: &Path) -> Result<LiveTests> {
    let log = dir.join("live-tests.log");
    let out = std::fs::File::create(&log)?;
    let status = Command::new(bin)
        .args(GUEST_LIVE_TESTS)
        .args(["--exact", "--test-threads", "2"])
        .env("SENSOR_BIN", sensor)
        .env("TESTS_SLOWDOWN", GUEST_SLOWDOWN)
        .env("RUST_BACKTRACE", "1")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    let text = std::fs::read_to_string(&log)?;
    // The sensor's own stderr interleaves with libtest's `test X ... ok`
    // lines; its summary and failure headers stand on lines of their own.
    let mut live = LiveTests {
        passed: text
            .lines()
            .filter_map(|l| l.strip_prefix("test result: "))
            .filter_map(|r| {
                r.split("; ")
                    .next()?
                    .rsplit(". ")
                    .next()?
                    .strip_suffix(" passed")
            })
            .filter_map(|n| n.trim().parse().ok())
            .next()
            .unwrap_or(0),
        failed: GUEST_LIVE_TESTS
            .iter()
            .filter(|t| text.contains(&format!("---- {t} stdout ----")))
            .map(|t| t.to_string())
            .collect(),
    };
    if !status.success() && live.failed.is_empty() {
        live.failed
            .push(format!("(the test run ended with {status})"));
    }
    Ok(live)
}

fn wait_listen(ns: &Netns, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = ns
            .cmd("ss")
            .args(["-Hltn", &format!("sport = :{port}")])
            .output()?;
        if !out.stdout.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing listens on port {port} after 120 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child killed when dropped.
struct Kid(std::process::Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command) -> Result<Kid> {
    Ok(Kid(cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?))
}

fn checks(dir: &Path, sensor: &Path, outcome: &mut Outcome, log: &mut Log) -> Result<()> {
    // Debian builds these as modules; the guest's /lib/modules is the package's.
    for m in ["veth", "sch_ingress", "cls_bpf"] {
        let ok = Command::new("modprobe")
            .arg(m)
            .status()
            .is_ok_and(|s| s.success());
        log.say(&format!(
            "modprobe {m}: {}",
            if ok { "ok" } else { "failed" }
        ));
    }
    let end = |tag: &str, iface, v4, v6| -> Result<End<'static>> {
        Ok(End {
            ns: Netns::create(format!("kern{tag}"))?,
            iface,
            v4,
            v6,
        })
    };
    let lab = Pair::join(
        end("c", "vc0", CLIENT4, CLIENT6)?,
        end("s", "vs0", SERVER4, SERVER6)?,
        false,
    )?;
    log.say("namespaces joined");
    let p = |f: &str| dir.join(f).display().to_string();
    let s_server = |port: u16, leaf: &str, extra: &[&str]| -> Result<Kid> {
        let mut cmd = lab.server.cmd("openssl");
        cmd.args(["s_server", "-accept", &port.to_string(), "-www", "-quiet"])
            .args(["-cert", &p(&format!("{leaf}.pem"))])
            .args(["-key", &p(&format!("{leaf}.key"))])
            .args(["-cert_chain", &p("int.pem")])
            .args(extra);
        spawn(&mut cmd)
    };
    let _tls = s_server(TLS_PORT, "tls", &[])?;
    let ca = p("root.pem");
    let _mtls = s_server(
        MTLS_PORT,
        "mtls",
        &["-Verify", "2", "-CAfile", &ca, "-verify_return_error"],
    )?;
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), "plain\n")?;
    let _http = spawn(
        lab.server
            .cmd("python3")
            .args([
                "-m",
                "http.server",
                &HTTP_PORT.to_string(),
                "--bind",
                SERVER4,
            ])
            .current_dir(&www),
    )?;
    for port in [TLS_PORT, MTLS_PORT, HTTP_PORT] {
        wait_listen(&lab.server, port)?;
    }
    log.say("servers listening");

    let mut seen = Seen::default();
    let done = watch(&lab, dir, sensor, &[], "sensor", &mut seen, log);
    let bpf_loop = seen.ship == "bpf-loop";
    outcome.runs.push(seen);
    done?;
    if bpf_loop {
        let mut seen = Seen::default();
        let done = watch(
            &lab,
            dir,
            sensor,
            &["--ship-mode", "bounded"],
            "bounded",
            &mut seen,
            log,
        );
        outcome.runs.push(seen);
        done?;
    }
    Ok(())
}

/// `sensor run` on the client's end with `extra` arguments while the
/// clients call each server once; its output goes to `dir/<name>.*`.
fn watch(
    lab: &Pair,
    dir: &Path,
    sensor: &Path,
    extra: &[&str],
    name: &str,
    outcome: &mut Seen,
    log: &mut Log,
) -> Result<()> {
    let p = |f: &str| dir.join(f).display().to_string();
    let ca = p("root.pem");
    let json = dir.join(format!("{name}.json"));
    let stderr = dir.join(format!("{name}.log"));
    let mut sensor = Kid(lab
        .client
        .cmd(&sensor.display().to_string())
        .env("RUST_LOG", "info")
        .args([
            "run",
            "--json",
            "--stats-interval",
            "3600",
            "--probe",
            "off",
        ])
        .args(["-i", &lab.client_if])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&json)?)
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()
        .context("starting the sensor")?);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&stderr).unwrap_or_default();
        for l in text.lines() {
            if l.contains("attach mode") {
                outcome.attach = quoted_mode(l);
            }
            if l.contains("ship mode") {
                outcome.ship = quoted_mode(l);
            }
        }
        if text.contains("attached") {
            outcome.loaded = true;
            break;
        }
        if let Some(status) = sensor.0.try_wait()? {
            let last: Vec<&str> = text.lines().rev().take(3).collect();
            bail!(
                "{name}: the sensor exited with {status}: {}",
                last.join(" | ")
            );
        }
        if start.elapsed() > ATTACH_LIMIT {
            bail!("the sensor did not attach within {ATTACH_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    log.say(&format!(
        "{name}: attached in {:.0} s ({}, {})",
        start.elapsed().as_secs_f64(),
        outcome.attach,
        outcome.ship
    ));

    let s_client = |port: u16, sni: &str, extra: &[&str]| -> Result<bool> {
        let status = lab
            .client
            .cmd("timeout")
            .args([CLIENT_LIMIT, "openssl", "s_client"])
            .args(["-connect", &format!("{SERVER4}:{port}"), "-servername", sni])
            .args(["-tls1_2", "-CAfile", &ca])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        Ok(status.success())
    };
    let tls = s_client(TLS_PORT, SNI_TLS, &[])?;
    log.say(&format!("TLS 1.2 client: {tls}"));
    let mtls = s_client(
        MTLS_PORT,
        SNI_MTLS,
        &[
            "-cert",
            &p("client.pem"),
            "-key",
            &p("client.key"),
            "-cert_chain",
            &p("int.pem"),
        ],
    )?;
    log.say(&format!("mutual TLS client: {mtls}"));
    let http = lab
        .client
        .cmd("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", CLIENT_LIMIT])
        .arg(format!("http://{SERVER4}:{HTTP_PORT}/"))
        .status()?
        .success();
    log.say(&format!("plain HTTP client: {http}"));
    // Let the last records drain, then stop it as an operator would.
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(sensor.0.id() as i32, libc::SIGINT) };
    let start = Instant::now();
    while sensor.0.try_wait()?.is_none() {
        if start.elapsed() > Duration::from_secs(200) {
            bail!("the sensor did not stop within 200 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    log.say("sensor stopped");

    let lines = tests::json_lines(&std::fs::read_to_string(&json)?);
    let handshake = |sni: &str| {
        tests::of_kind(&lines, "handshake")
            .iter()
            .any(|h| h["sni"] == sni && h["version"] == "TLS 1.2")
    };
    outcome.handshake = handshake(SNI_TLS);
    outcome.mutual = handshake(SNI_MTLS)
        && tests::of_kind(&lines, "handshake").iter().any(|h| {
            h["sni"] == SNI_MTLS && h["client_chain"].as_array().is_some_and(|c| !c.is_empty())
        });
    let summary = tests::of_kind(&lines, "summary");
    outcome.flow = summary
        .last()
        .is_some_and(|s| s["plaintext_flows"].as_u64().unwrap_or(0) >= 1);
    log.say(&format!("records: {}", lines.len()));
    if !(tls && mtls && http) {
        bail!("{name}: a client failed (tls {tls}, mtls {mtls}, http {http})");
    }
    Ok(())
}

/// `mode="clsact"` → `clsact`.
fn quoted_mode(line: &str) -> String {
    line.split("mode=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}
