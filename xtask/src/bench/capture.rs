//! Generates the benchmark capture from real peers: nginx and openssl
//! s_server serving curl and openssl s_client, in a private network namespace
//! on its loopback, captured by tcpdump. Loopback there gets an Ethernet MTU
//! and no segmentation offload, so the capture looks like one taken on a wire.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::run;

/// How much traffic to make.
#[derive(Debug, Clone)]
pub struct Spec {
    /// URLs per curl job; each is one TLS connection.
    pub curl_connections: usize,
    /// openssl s_client rounds per job.
    pub s_client_rounds: usize,
    /// Size of the file downloaded in bulk, twice over https and twice over http.
    pub bulk_mb: usize,
}

impl Default for Spec {
    fn default() -> Self {
        Self {
            curl_connections: 1150,
            s_client_rounds: 60,
            bulk_mb: 30,
        }
    }
}

/// What the generator did, for the report.
#[derive(Debug, Default)]
pub struct Made {
    pub seconds: f64,
    pub tls_connections_attempted: usize,
    pub tcpdump_report: String,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Result<Self> {
        run(Command::new("ip").args(["netns", "add", &name]))?;
        Ok(Netns(name))
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A server or capture process, killed on drop (`ip netns exec` execs the
/// program itself, so the pid is the program's).
struct Proc {
    child: Child,
    what: &'static str,
}

impl Proc {
    fn spawn(what: &'static str, cmd: &mut Command) -> Result<Self> {
        let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
        Ok(Proc { child, what })
    }

    /// SIGINT, so that tcpdump flushes and reports; then waits.
    fn interrupt(&mut self) -> Result<()> {
        run(Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string()))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                bail!("{} did not stop after SIGINT", self.what);
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stderr(Stdio::null()))
}

/// An RSA chain (root → intermediate → leaf) and an ECDSA one (root → leaf).
fn certificates(dir: &Path) -> Result<()> {
    let subj = |cn: &str| format!("/C=DE/O=tls-sensor bench/CN={cn}");
    let ca_ext = "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n";
    let leaf_ext = "subjectAltName=DNS:bench.example,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
    std::fs::write(dir.join("ca.ext"), ca_ext)?;
    std::fs::write(dir.join("leaf.ext"), leaf_ext)?;
    for (kind, key_args) in [
        ("rsa", &["-newkey", "rsa:2048"][..]),
        (
            "ec",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
        ),
    ] {
        let root = format!("{kind}-root");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "3650"];
        args.extend_from_slice(key_args);
        let (k, c, s) = (
            format!("{root}.key"),
            format!("{root}.pem"),
            subj(&format!("{kind} root")),
        );
        args.extend_from_slice(&["-keyout", &k, "-out", &c, "-subj", &s]);
        args.extend_from_slice(&["-addext", "basicConstraints=critical,CA:true"]);
        openssl(dir, &args)?;
        let mut issuer = root.clone();
        let mut chain = vec![];
        let names: &[&str] = if kind == "rsa" {
            &["int", "leaf"]
        } else {
            &["leaf"]
        };
        for name in names {
            let me = format!("{kind}-{name}");
            let mut args = vec!["req", "-nodes"];
            args.extend_from_slice(key_args);
            let (k, r, s) = (
                format!("{me}.key"),
                format!("{me}.csr"),
                subj(&if *name == "leaf" {
                    "bench.example".to_string()
                } else {
                    format!("{kind} intermediate")
                }),
            );
            args.extend_from_slice(&["-keyout", &k, "-out", &r, "-subj", &s]);
            openssl(dir, &args)?;
            let ext = if *name == "leaf" {
                "leaf.ext"
            } else {
                "ca.ext"
            };
            let (ca, cakey, out) = (
                format!("{issuer}.pem"),
                format!("{issuer}.key"),
                format!("{me}.pem"),
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-days",
                    "3650",
                    "-in",
                    &r,
                    "-CA",
                    &ca,
                    "-CAkey",
                    &cakey,
                    "-CAcreateserial",
                    "-extfile",
                    ext,
                    "-out",
                    &out,
                ],
            )?;
            chain.insert(0, std::fs::read_to_string(dir.join(&out))?);
            issuer = me;
        }
        // The served chain: leaf first, then the intermediates and the root.
        chain.push(std::fs::read_to_string(dir.join(format!("{root}.pem")))?);
        std::fs::write(dir.join(format!("{kind}-chain.pem")), chain.concat())?;
    }
    Ok(())
}

fn nginx_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "worker_processes 1;
master_process off;
daemon off;
user root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000;
    client_body_temp_path {d}/tmp;
    proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp;
    scgi_temp_path {d}/tmp;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:bench:10m;
    ssl_session_tickets on;
    ssl_ecdh_curve X25519:prime256v1;
    server {{
        listen 127.0.0.1:443 ssl;
        ssl_certificate {d}/rsa-chain.pem;
        ssl_certificate_key {d}/rsa-leaf.key;
        root {d}/www;
    }}
    server {{
        listen 127.0.0.1:8443 ssl;
        ssl_certificate {d}/ec-chain.pem;
        ssl_certificate_key {d}/ec-leaf.key;
        root {d}/www;
    }}
    server {{
        listen 127.0.0.1:80;
        root {d}/www;
    }}
}}
"
    )
}

/// Bytes that neither compress nor repeat (xorshift), so bulk transfers are
/// full-size on the wire.
fn write_bulk(path: &Path, mb: usize) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mb {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(())
}

fn wait_for(ns: &Netns, url: &str) -> Result<()> {
    for _ in 0..100 {
        let ok = ns
            .cmd("curl")
            .args(["-sk", "-o", "/dev/null", "--max-time", "2", url])
            .status()?
            .success();
        if ok {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(100));
    }
    bail!("{url} did not answer in the benchmark namespace")
}

/// A request on s_client's standard input: it waits for the answer, and so
/// reads the TLS 1.3 tickets that come before it (-sess_out needs them).
fn get(dir: &Path) -> Stdio {
    match std::fs::File::open(dir.join("get.txt")) {
        Ok(f) => f.into(),
        Err(_) => Stdio::null(),
    }
}

/// openssl s_client, bounded in time: it has no timeout of its own.
fn s_client(ns: &Netns) -> Command {
    let mut c = ns.cmd("timeout");
    c.args(["60", "openssl", "s_client"]);
    c
}

/// One client job: commands run one after another.
type Job = Vec<Command>;

fn curl(ns: &Netns, args: &[&str], url: String) -> Command {
    let mut c = ns.cmd("curl");
    c.args(["-sk", "--max-time", "120", "-o", "/dev/null"])
        .args(args)
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn jobs(ns: &Netns, dir: &Path, spec: &Spec) -> (Vec<Job>, usize) {
    let n = spec.curl_connections;
    // `Connection: close` makes every URL of the glob a new connection; curl
    // resumes its TLS session on the next one unless told not to.
    let many = |port: u16| format!("https://127.0.0.1:{port}/index.html?n=[1-{n}]");
    let close = ["-H", "Connection: close"];
    let mut attempted = 0;
    let mut jobs: Vec<Job> = Vec::new();
    for (port, args) in [
        (443, &["--tlsv1.2", "--tls-max", "1.2"][..]),
        (443, &["--tlsv1.3", "--no-sessionid"][..]),
        (8443, &["--tlsv1.3"][..]),
        (
            8443,
            &["--tlsv1.2", "--tls-max", "1.2", "--no-sessionid"][..],
        ),
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(&close);
        jobs.push(vec![curl(ns, &all, many(port))]);
        attempted += n;
    }
    // A key share for a group the server lacks: HelloRetryRequest.
    let hrr = n / 4;
    let mut all = vec!["--tlsv1.3", "--curves", "secp384r1:X25519"];
    all.extend_from_slice(&close);
    jobs.push(vec![curl(
        ns,
        &all,
        format!("https://127.0.0.1:443/index.html?hrr=[1-{hrr}]"),
    )]);
    attempted += hrr;

    // openssl s_client against s_server: -reconnect is one full TLS 1.2
    // handshake and five resumed by session id; -sess_out/-sess_in a TLS
    // 1.3 ticket and its PSK resumption.
    let mut sc = Job::new();
    for i in 0..spec.s_client_rounds {
        let mut c = s_client(ns);
        c.args(["-connect", "127.0.0.1:4443", "-servername", "bench.example"]);
        if i % 2 == 0 {
            c.args(["-tls1_2", "-reconnect"]);
            attempted += 6;
        } else {
            c.args(["-tls1_3", "-sess_out", "/dev/null"]);
            attempted += 1;
        }
        c.stdin(get(dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        sc.push(c);
    }
    jobs.push(sc);
    let mut resume = Job::new();
    for _ in 0..spec.s_client_rounds / 2 {
        for flag in ["-sess_out", "-sess_in"] {
            let mut c = s_client(ns);
            c.args(["-connect", "127.0.0.1:4443", "-tls1_3", flag])
                .arg(dir.join("tls13.sess"))
                .stdin(get(dir))
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            resume.push(c);
            attempted += 1;
        }
    }
    jobs.push(resume);

    // Bulk: the same file twice over https (TLS 1.3, then 1.2) and twice over http.
    let rate = ["--limit-rate", "60M"];
    let mut bulk = Job::new();
    for (url, extra) in [
        ("https://127.0.0.1:443/bulk.bin", &["--tlsv1.3"][..]),
        ("https://127.0.0.1:8443/bulk.bin", &["--tls-max", "1.2"][..]),
        ("http://127.0.0.1:80/bulk.bin", &[][..]),
        ("http://127.0.0.1:80/bulk.bin", &[][..]),
    ] {
        let mut all = rate.to_vec();
        all.extend_from_slice(extra);
        bulk.push(curl(ns, &all, url.to_string()));
        attempted += url.starts_with("https") as usize;
    }
    jobs.push(bulk);
    (jobs, attempted)
}

/// Writes the capture to `out`.
pub fn generate(out: &Path, spec: &Spec) -> Result<Made> {
    let start = Instant::now();
    let pid = std::process::id();
    let tmp = TempDir(std::env::temp_dir().join(format!("tlsbench-{pid}")));
    let dir = &tmp.0;
    std::fs::create_dir_all(dir.join("www"))?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    certificates(dir)?;
    std::fs::write(
        dir.join("www/index.html"),
        "<html>bench</html>\n".repeat(64),
    )?;
    write_bulk(&dir.join("www/bulk.bin"), spec.bulk_mb)?;
    std::fs::write(dir.join("nginx.conf"), nginx_conf(dir))?;
    std::fs::write(dir.join("get.txt"), "GET / HTTP/1.0\r\n\r\n")?;

    let ns = Netns::new(format!("tlsbench-{pid}"))?;
    run(ns.cmd("ip").args(["link", "set", "lo", "up"]))?;
    run(ns.cmd("ip").args([
        "link",
        "set",
        "lo",
        "mtu",
        "1500",
        "gso_max_size",
        "1500",
        "gso_max_segs",
        "1",
    ]))?;
    let partial = out.with_extension("partial");
    let mut dump = Proc::spawn(
        "tcpdump",
        ns.cmd("tcpdump")
            .args(["-i", "lo", "-s", "0", "-B", "262144", "-w"])
            .arg(&partial)
            .arg("tcp")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )?;
    let mut dump_err = BufReader::new(dump.child.stderr.take().context("tcpdump stderr")?);
    let mut line = String::new();
    dump_err.read_line(&mut line)?;
    if !line.contains("listening on") {
        bail!("tcpdump did not start: {line}");
    }
    let nginx = Proc::spawn(
        "nginx",
        ns.cmd("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .stdout(Stdio::null()),
    )?;
    let s_server = Proc::spawn(
        "openssl s_server",
        ns.cmd("openssl")
            .current_dir(dir)
            .args([
                "s_server",
                "-accept",
                "127.0.0.1:4443",
                "-cert",
                "ec-leaf.pem",
                "-key",
                "ec-leaf.key",
                "-cert_chain",
                "ec-root.pem",
                "-www",
                "-quiet",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    for url in [
        "https://127.0.0.1:443/",
        "https://127.0.0.1:8443/",
        "http://127.0.0.1:80/",
        "https://127.0.0.1:4443/",
    ] {
        wait_for(&ns, url)?;
    }
    let (jobs, attempted) = jobs(&ns, dir, spec);
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            thread::spawn(move || -> Result<()> {
                for mut c in job {
                    let status = c.status()?;
                    // A TLS 1.3 ticket comes after the handshake: on a busy
                    // machine s_client may leave before it, and the -sess_in
                    // that follows has nothing to resume. One fewer
                    // resumption, not a broken capture.
                    let resumes = c.get_args().any(|a| a == "-sess_in");
                    if !status.success() && !resumes {
                        bail!("{c:?}: {status}");
                    }
                }
                Ok(())
            })
        })
        .collect();
    let mut failures = Vec::new();
    for h in handles {
        if let Err(e) = h.join().expect("client job thread") {
            failures.push(e.to_string());
        }
    }
    drop(s_server);
    drop(nginx);
    thread::sleep(Duration::from_millis(500));
    dump.interrupt()?;
    let mut report = String::new();
    for l in dump_err.lines() {
        report.push_str(l?.trim());
        report.push_str("; ");
    }
    if !failures.is_empty() {
        let _ = std::fs::remove_file(&partial);
        bail!("client jobs failed: {}", failures.join("; "));
    }
    std::fs::rename(&partial, out)?;
    Ok(Made {
        seconds: start.elapsed().as_secs_f64(),
        tls_connections_attempted: attempted,
        tcpdump_report: report.trim_end_matches("; ").to_string(),
    })
}
