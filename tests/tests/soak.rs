//! The soak (`cargo xtask soak --minutes N`, not in CI): steady mixed
//! traffic on a veth while the API server's pods churn, sampling the
//! sensor's RSS, CPU and counters every 10 s; prints a table and a verdict:
//! RSS flat after warm-up (no growth beyond 5 % over the last two thirds),
//! no drop counted and no short handshake missing from the records.
//! Traffic: back-to-back short TLS handshakes and plain HTTP requests
//! (openssl s_client, curl), long-lived TLS and plaintext connections that
//! carry 64 bytes each way every second, and 20 pods replaced every second
//! in the inventory beside the two stable pods that own the traffic's
//! addresses. Ignored by `cargo test`; the xtask runs it.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tests::certs::Pki;
use tests::kube::api::FakeApi;
use tests::kube::objects::{self as o, Owner, PodSpec};
use tests::proc::{Reaped, Watched, run};
use tests::{patience, require_root, sensor_bin};

struct Ns(String);

impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("rel-soak-{tag}-{}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Ns(name);
        ns.sh("ip link set lo up");
        ns
    }
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }
    fn sh(&self, script: &str) {
        run(self.cmd("sh").args(["-c", script]));
    }
    fn python(&self, script: &str, args: &[&str]) -> Reaped {
        Reaped::spawn(
            self.cmd("python3")
                .args(["-c", script])
                .args(args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        )
    }
    fn spawn(&self, script: &str) -> Reaped {
        Reaped::spawn(
            self.cmd("sh")
                .args(["-c", script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn pod(i: u64) -> serde_json::Value {
    let name = format!("churn-{i}");
    let ip = format!(
        "10.{}.{}.{}",
        100 + (i >> 16) % 100,
        (i >> 8) & 255,
        i & 255
    );
    o::pod(&PodSpec {
        namespace: "soak",
        name: &name,
        ips: &[&ip],
        node: "node-1",
        host_ip: "172.18.0.2",
        service_account: "default",
        owner: Owner::Deployment("churn", "5d9f7c8b6"),
        secrets: &[],
        projected_secrets: &[],
        ports: &[8080],
        host_network: false,
        phase: "Running",
        created: o::CREATED,
    })
}

struct Sample {
    t: u64,
    rss_kib: u64,
    cpu_pct: f64,
    stats: String,
}

/// A field of /proc/PID/status, in KiB.
fn status_kib(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: i32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Where a process's resident memory is: its heap and stacks (anonymous),
/// shared memory, and file pages (the binary's, and the ring buffer's,
/// which is mapped twice).
fn rss_parts(pid: i32) -> String {
    let mib = |field: &str| status_kib(pid, field) as f64 / 1024.0;
    format!(
        "anonymous {:.1}, shared {:.1}, file {:.1} MiB",
        mib("RssAnon:"),
        mib("RssShmem:"),
        mib("RssFile:"),
    )
}

fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(i) = stat.rfind(')') else { return 0 };
    let f: Vec<&str> = stat[i + 2..].split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// `name=value` of a `statistics` log line; its kernel counters are
/// `kernel=packets=N flows_opened=N ...`, so they read the same way.
fn field(line: &str, name: &str) -> u64 {
    let pat = format!(" {name}=");
    line.find(&pat)
        .map(|i| {
            line[i + pat.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// The kernel's and the reader's drop counters (summary names).
const DROPS: [&str; 5] = [
    "ring_buffer_full",
    "flow_map_full",
    "untracked",
    "partial_map_full",
    "malformed_records",
];

fn header() -> String {
    format!(
        "{:>6} {:>8} {:>6} {:>10} {:>6} {:>7} {:>9} {:>5} {:>5} {:>6} {:>5}",
        "t(s)",
        "RSS MiB",
        "CPU%",
        "handshakes",
        "open",
        "k.flows",
        "inventory",
        "ring",
        "fmap",
        "untrk",
        "pmap"
    )
}

fn row(s: &Sample) -> String {
    format!(
        "{:>6} {:>8.1} {:>6.1} {:>10} {:>6} {:>7} {:>9} {:>5} {:>5} {:>6} {:>5}",
        s.t,
        s.rss_kib as f64 / 1024.0,
        s.cpu_pct,
        field(&s.stats, "handshakes"),
        field(&s.stats, "open_connections"),
        field(&s.stats, "kernel_flows"),
        field(&s.stats, "inventory_objects"),
        field(&s.stats, DROPS[0]),
        field(&s.stats, DROPS[1]),
        field(&s.stats, DROPS[2]),
        field(&s.stats, DROPS[3]),
    )
}

/// Echo servers for the long-lived connections: TLS on 4444, plaintext on
/// 8081 (argv: certificate, key). Prints "listening" when both are bound.
const ECHO: &str = r#"
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
def echo(c):
    try:
        while True:
            d = c.recv(4096)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    c.close()
def serve(s, tls):
    while True:
        c, _ = s.accept()
        if tls:
            try:
                c = ctx.wrap_socket(c, server_side=True)
            except OSError:
                c.close()
                continue
        threading.Thread(target=echo, args=(c,), daemon=True).start()
for port, tls in ((4444, True), (8081, False)):
    s = socket.create_server(("0.0.0.0", port))
    threading.Thread(target=serve, args=(s, tls), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"#;

/// N long-lived TLS and N plaintext connections to the echo servers, each
/// sending 64 bytes and reading them back every second until killed; any
/// broken connection ends the script (the soak checks it is still alive).
const LONG: &str = r#"
import socket, ssl, sys, time
host, n = sys.argv[1], int(sys.argv[2])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conns = []
for i in range(n):
    conns.append(ctx.wrap_socket(socket.create_connection((host, 4444)), server_hostname="long.test"))
    conns.append(socket.create_connection((host, 8081)))
print("open", len(conns), flush=True)
while True:
    for c in conns:
        c.sendall(b"x" * 64)
        got = 0
        while got < 64:
            d = c.recv(64 - got)
            if not d:
                sys.exit("a long-lived connection closed")
            got += len(d)
    time.sleep(1)
"#;

/// One round of the short traffic: 10 TLS handshakes and 10 plain HTTP
/// requests, back to back; prints `tls` or `plain` per success. s_client
/// reads /dev/null, so it closes as soon as the handshake is done (with
/// stdin left open it would wait for its 5 s timeout).
const ROUND: &str = "for i in 1 2 3 4 5 6 7 8 9 10; do \
    timeout 5 openssl s_client -connect 10.91.0.2:4443 -servername short.test </dev/null >/dev/null 2>&1 && echo tls; \
    curl -s -o /dev/null --max-time 5 http://10.91.0.2:8080/ && echo plain; \
    done";

/// The stable pods that own the traffic's addresses.
fn peer_pod(name: &str, ip: &str, ports: &[u16]) -> serde_json::Value {
    o::pod(&PodSpec {
        namespace: "soak",
        name,
        ips: &[ip],
        node: "node-1",
        host_ip: "172.18.0.2",
        service_account: "default",
        owner: Owner::Deployment(name, "7c9d8f6b5"),
        secrets: &[],
        projected_secrets: &[],
        ports,
        host_network: false,
        phase: "Running",
        created: o::CREATED,
    })
}

/// Reads a line from a spawned script's stdout.
fn first_line(p: &mut Reaped) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(p.0.stdout.as_mut().expect("stdout piped")),
        &mut line,
    )
    .expect("read");
    line.trim().to_string()
}

#[test]
#[ignore = "the soak: cargo xtask soak --minutes N"]
fn soak() {
    require_root();
    let minutes: u64 = std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30);
    let pki = Pki::new();
    pki.leaf_sans("srv", "srv.test", &["DNS:srv.test", "IP:10.91.0.2"]);
    let (c, s) = (Ns::new("c"), Ns::new("s"));
    run(Command::new("ip").args([
        "link", "add", "sc0", "netns", &c.0, "type", "veth", "peer", "name", "ss0", "netns", &s.0,
    ]));
    c.sh("ip addr add 10.91.0.1/24 dev sc0 && ip link set sc0 up");
    s.sh("ip addr add 10.91.0.2/24 dev ss0 && ip link set ss0 up");
    let _tls = s.spawn(&format!(
        "exec openssl s_server -accept 4443 -www -quiet -cert {} -key {} -cert_chain {}",
        pki.p("srv.pem"),
        pki.p("srv.key"),
        pki.p("int.pem")
    ));
    let _http = s.spawn("cd /tmp && exec python3 -m http.server 8080");
    let mut echo = s.python(ECHO, &[&pki.p("srv.pem"), &pki.p("srv.key")]);
    assert_eq!(first_line(&mut echo), "listening");
    std::thread::sleep(Duration::from_secs(1));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeApi::start_in_netns(&c.0));
    api.apply(peer_pod("client", "10.91.0.1", &[]));
    api.apply(peer_pod("server", "10.91.0.2", &[4443, 4444, 8080, 8081]));
    for i in 0..2000 {
        api.apply(pod(i));
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path());
    let out = tempfile::NamedTempFile::new().unwrap();
    let bin = sensor_bin();
    let mut cmd = c.cmd(bin.to_str().unwrap());
    cmd.env("RUST_LOG", "info")
        .args(["run", "--json", "--stats-interval", "10", "-i", "sc0"])
        .args(["--flow-report-interval", "10", "--kubeconfig"])
        .arg(&kc);
    let mut sensor = Watched::spawn(&mut cmd, out.reopen().unwrap());
    sensor.wait_for("attached", Duration::from_secs(60));
    let pid = sensor.child.pid();

    // Long-lived TLS and plaintext connections for the whole run.
    let mut long = c.python(LONG, &["10.91.0.2", "4"]);
    assert_eq!(first_line(&mut long), "open 8");
    let stop = AtomicBool::new(false);
    let (made_tls, made_plain) = (AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    let samples = std::thread::scope(|scope| {
        // Short handshakes and plaintext requests, back to back.
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let o = c
                    .cmd("sh")
                    .args(["-c", ROUND])
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output()
                    .expect("sh");
                let text = String::from_utf8_lossy(&o.stdout);
                let n = |w: &str| text.lines().filter(|l| *l == w).count() as u64;
                made_tls.fetch_add(n("tls"), Ordering::Relaxed);
                made_plain.fetch_add(n("plain"), Ordering::Relaxed);
            }
        });
        // Pod churn: 20 replaced every second.
        scope.spawn(|| {
            let mut next = 2000u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..20 {
                    api.delete("v1", "Pod", "soak", &format!("churn-{}", next - 2000));
                    api.apply(pod(next));
                    next += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let mut samples = Vec::new();
        println!("{}", header());
        let mut last_cpu = (cpu_ticks(pid), Instant::now());
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        while start.elapsed() < Duration::from_secs(minutes * 60) {
            sensor.wait_for("statistics", Duration::from_secs(30));
            let line = sensor.seen.last().cloned().unwrap_or_default();
            let now = (cpu_ticks(pid), Instant::now());
            let cpu_pct = (now.0 - last_cpu.0) as f64 / hz * 100.0
                / now.1.duration_since(last_cpu.1).as_secs_f64();
            last_cpu = now;
            samples.push(Sample {
                t: start.elapsed().as_secs(),
                rss_kib: rss_kib(pid),
                cpu_pct,
                stats: line,
            });
            // Live, so a 30-minute run shows where it stands.
            println!("{}", row(samples.last().expect("just pushed")));
        }
        stop.store(true, Ordering::Relaxed);
        samples
    });
    let elapsed = start.elapsed().as_secs_f64();
    let long_alive = long.0.try_wait().expect("try_wait").is_none();
    drop(long);
    let log = sensor.stop();
    let mut short_seen = 0u64;
    let mut plain_flows = 0u64;
    let mut summary = serde_json::Value::Null;
    // Read line by line: 30 minutes make a few hundred MB of records.
    let file = std::io::BufReader::new(std::fs::File::open(out.path()).unwrap());
    for l in std::io::BufRead::lines(file).map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) else {
            continue;
        };
        match v["kind"].as_str() {
            Some("handshake") if v["sni"] == "short.test" => short_seen += 1,
            Some("flow") if v["end"].is_string() && v["server"]["port"] == 8080 => plain_flows += 1,
            Some("summary") => summary = v,
            _ => {}
        }
    }
    let made_tls = made_tls.load(Ordering::Relaxed);
    let made_plain = made_plain.load(Ordering::Relaxed);

    // The whole table again, for the note (the rows also came live).
    println!("{}", header());
    for s in &samples {
        println!("{}", row(s));
    }
    let third = samples.len() / 3;
    let tail = &samples[third..];
    let base = tail.first().map(|s| s.rss_kib).unwrap_or(0);
    let peak = tail.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let growth = (peak as f64 - base as f64) / base.max(1) as f64 * 100.0;
    let cpu_mean = samples.iter().map(|s| s.cpu_pct).sum::<f64>() / samples.len().max(1) as f64;
    let drops: Vec<(&str, u64)> = DROPS
        .iter()
        .map(|d| (*d, summary["kernel"][*d].as_u64().unwrap_or(0)))
        .chain(
            summary["errors"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.as_u64().unwrap_or(0))),
        )
        .filter(|(_, n)| *n > 0)
        .collect();
    let flat = growth <= 5.0;
    let missing = made_tls.saturating_sub(short_seen);
    println!(
        "soak {minutes} min: {} samples; made {made_tls} short handshakes ({:.1}/s) and \
         {made_plain} plain requests ({:.1}/s), 8 long-lived connections {}; \
         records: {short_seen} short handshakes ({missing} missing), {plain_flows} plain HTTP flows ended; \
         summary handshakes {}, plaintext flows {}, own connections {}; mean CPU {cpu_mean:.1} %",
        samples.len(),
        made_tls as f64 / elapsed,
        made_plain as f64 / elapsed,
        if long_alive {
            "alive to the end"
        } else {
            "BROKEN"
        },
        summary["handshakes"],
        summary["plaintext_flows"],
        summary["own_connections"],
    );
    println!(
        "RSS over the last two thirds {:.1} -> peak {:.1} MiB ({growth:+.1} %): {}; drops {:?}: {}",
        base as f64 / 1024.0,
        peak as f64 / 1024.0,
        if flat { "flat" } else { "GROWING" },
        drops,
        if drops.is_empty() {
            "none"
        } else {
            "UNEXPLAINED"
        },
    );
    let pass = flat && drops.is_empty() && missing == 0 && long_alive;
    println!("verdict: {}", if pass { "PASS" } else { "FAIL" });
    let _ = log;
    assert!(long_alive, "a long-lived connection broke");
    assert!(made_tls > 0 && made_plain > 0, "no short traffic made");
    assert!(flat, "RSS grew {growth:.1} % after warm-up");
    assert!(drops.is_empty(), "drops: {drops:?}");
    assert_eq!(missing, 0, "short handshakes made but not recorded");
    drop(rt);
}

/// Holds every connection it accepts on the port given, never answering:
/// the sensor then follows each one as a handshake in progress. One
/// process per port: a process may hold no more sockets than its
/// open-files limit (20,000 on the machines this runs on, and only root
/// with CAP_SYS_RESOURCE may raise the hard limit), so it takes what the
/// hard limit allows.
const HOLD: &str = r#"
import resource, socket, ssl, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ctx = None
if len(sys.argv) > 2:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(65535)
print("listening", flush=True)
kept = []
while True:
    c, _ = s.accept()
    if ctx:
        try:
            c = ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError):
            continue
    kept.append(c)
"#;

/// Opens N connections to one port of the server and sends the same real
/// ClientHello (made by Python's ssl) on each, or with `plain` an HTTP
/// request, or with `tls` completes a TLS handshake and sends 4 bytes
/// (the server then needs a certificate and key); prints "open N" and keeps
/// them until its stdin closes. N stays under the open-files limit (see
/// `HOLD`): the connections are spread over several of these processes.
const OPEN: &str = r#"
import resource, socket, ssl, sys, time
n, host, kind = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ports = [int(p) for p in sys.argv[4:]]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
obj = ctx.wrap_bio(inc, out, server_hostname="memory.soak.test")
try:
    obj.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
if kind == "plain":
    hello = b"GET / HTTP/1.1\r\nHost: memory.soak.test\r\n\r\n"
kept = []
for i in range(n):
    s = socket.create_connection((host, ports[i % len(ports)]))
    if kind == "tls":
        s = ctx.wrap_socket(s, server_hostname="memory.soak.test")
        s.sendall(b"ping")
    else:
        s.sendall(hello)
    kept.append(s)
    if i % 100 == 99:
        # At most 200 a second from each process: unpaced, the seven
        # processes overflow the 8 MiB ring buffer (counted, but then the
        # connections are not all followed and there is no figure); at
        # 500 a second each it still lost 3,431 of 100,000.
        time.sleep(0.5)
print("open", len(kept), flush=True)
sys.stdin.read()
"#;

fn stat_line(sensor: &mut Watched) -> String {
    sensor.wait_for("statistics", Duration::from_secs(60));
    sensor.seen.last().cloned().unwrap_or_default()
}

fn hwm_kib(pid: i32) -> u64 {
    status_kib(pid, "VmHWM:")
}

/// The memory figure of issue 17: the sensor's resident set with 10,000
/// pods in its inventory (listed from the fake API server, as live) and
/// 100,000 connections followed at once. SOAK_FLOW_KIND=tls (default,
/// the steady state of a node's pooled connections): each completes a TLS
/// handshake and stays open, so CONNS counts it and user space keeps its
/// flow-report totals and its join to the handshake. SOAK_FLOW_KIND=plain:
/// each sends an HTTP request, so CONNS counts it as plaintext.
/// SOAK_FLOW_KIND=hello (the worst case, beyond the default bounds): each
/// sends a ClientHello and gets no answer, so the kernel's flow table,
/// CONNS and user space's handshake state hold one entry per connection.
/// Target: at most 64 MiB. Sizes: SOAK_PODS, SOAK_FLOWS. Too slow for CI
/// (a few minutes); alone, as root:
/// `cargo test --release -p tests --test soak -- --ignored --nocapture soak_memory`
/// (`cargo xtask soak` runs it after the soak).
#[test]
#[ignore = "the soak's memory figure: cargo xtask soak"]
fn soak_memory_at_10000_pods_and_100000_flows() {
    require_root();
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let pods = env("SOAK_PODS", 10_000);
    let flows = env("SOAK_FLOWS", 100_000);
    let kind = std::env::var("SOAK_FLOW_KIND").unwrap_or_else(|_| "tls".into());
    assert!(
        ["hello", "plain", "tls"].contains(&kind.as_str()),
        "SOAK_FLOW_KIND is hello, plain or tls"
    );
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = (keys.path().join("cert.pem"), keys.path().join("key.pem"));
    if kind == "tls" {
        // ECDSA: 100,000 handshakes of RSA signatures would take minutes.
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=memory.soak.test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert));
    }
    let (c, s) = (Ns::new("mc"), Ns::new("ms"));
    run(Command::new("ip").args([
        "link", "add", "mc0", "netns", &c.0, "type", "veth", "peer", "name", "ms0", "netns", &s.0,
    ]));
    c.sh("ip addr add 10.92.0.1/24 dev mc0 && ip link set mc0 up");
    s.sh("ip addr add 10.92.0.2/24 dev ms0 && ip link set ms0 up");
    // One server process and one client process per destination port,
    // each holding at most PER_PROCESS connections (under the open-files
    // limit, see HOLD).
    c.sh("sysctl -qw net.ipv4.ip_local_port_range='1024 65535'");
    s.sh("sysctl -qw net.core.somaxconn=65535");
    const PER_PROCESS: u64 = 15_000;
    let ports: Vec<String> = (0..flows.div_ceil(PER_PROCESS))
        .map(|i| (9000 + i).to_string())
        .collect();
    let hold: Vec<Reaped> = ports
        .iter()
        .map(|p| {
            let mut args = vec![p.as_str()];
            if kind == "tls" {
                args.extend([cert.to_str().unwrap(), key.to_str().unwrap()]);
            }
            let mut h = s.python(HOLD, &args);
            assert_eq!(first_line(&mut h), "listening");
            h
        })
        .collect();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeApi::start_in_netns(&c.0));
    for i in 0..pods {
        api.apply(pod(i));
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path());
    let out = tempfile::NamedTempFile::new().unwrap();
    let bin = sensor_bin();
    // Room for every connection in the kernel's tables, and no idle
    // expiry while they are measured.
    let room = (flows + flows / 4).to_string();
    let mut cmd = c.cmd(bin.to_str().unwrap());
    cmd.env("RUST_LOG", "info")
        .args(["run", "--json", "--stats-interval", "5", "-i", "mc0"])
        .args(["--flow-report-interval", "5"])
        .args(["--flow-idle", "3600", "--flow-entries", &room])
        .args(["--conn-entries", &room, "--kubeconfig"])
        .arg(&kc);
    let mut sensor = Watched::spawn(&mut cmd, out.reopen().unwrap());
    sensor.wait_for("attached", Duration::from_secs(60));
    let pid = sensor.child.pid();
    let attached = rss_kib(pid);
    let attached_parts = rss_parts(pid);
    let start = Instant::now();
    while field(&stat_line(&mut sensor), "inventory_objects") < pods {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "inventory not listed"
        );
    }
    let listed = rss_kib(pid);
    let listed_parts = rss_parts(pid);

    let mut open: Vec<Reaped> = Vec::new();
    let mut left = flows;
    for p in &ports {
        let n = left.min(PER_PROCESS);
        left -= n;
        open.push(c.python(OPEN, &[&n.to_string(), "10.92.0.2", &kind, p]));
    }
    let opened: u64 = open
        .iter_mut()
        .map(|o| {
            let l = first_line(o);
            l.strip_prefix("open ")
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("the client's connections: {l:?}"))
        })
        .sum();
    assert_eq!(opened, flows, "the client's connections");
    // Followed: every connection's ClientHello reached user space (hello),
    // or the kernel counts every connection as plaintext and user space has
    // made a flow report of each (plain: two report intervals more).
    let start = Instant::now();
    let mut stats = loop {
        let l = stat_line(&mut sensor);
        let n = match kind.as_str() {
            "hello" => field(&l, "open_connections"),
            "tls" => field(&l, "handshakes"),
            _ => field(&l, "plain_flows"),
        };
        if n >= flows {
            break l;
        }
        // A hang guard (a lost ClientHello would leave it short forever).
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "not every connection followed: {l}"
        );
    };
    if kind != "hello" {
        for _ in 0..3 {
            stats = stat_line(&mut sensor);
        }
    }
    let followed = rss_kib(pid);
    let followed_parts = rss_parts(pid);
    let peak = hwm_kib(pid);
    let mib = |k: u64| k as f64 / 1024.0;
    // Printed before the sensor stops: its shutdown reports every open
    // connection (100,000 flow records) and may take a while.
    println!(
        "memory ({kind}): attached {:.1} MiB; {pods} pods listed {:.1} MiB; {flows} connections \
         followed (open_connections {}, kernel_flows {}, plain_flows {}) {:.1} MiB, peak {:.1} MiB; \
         target 64 MiB: {}",
        mib(attached),
        mib(listed),
        field(&stats, "open_connections"),
        field(&stats, "kernel_flows"),
        field(&stats, "plain_flows"),
        mib(followed),
        mib(peak),
        if followed <= 64 * 1024 {
            "within"
        } else {
            "OVER"
        },
    );
    println!(
        "memory: resident, attached: {attached_parts}; listed: {listed_parts}; followed: {followed_parts}"
    );
    let kernel = stats.split(" kernel=").nth(1).unwrap_or_default();
    println!("memory: statistics at the measurement: kernel={kernel}");
    drop(open);
    // Not Watched::stop, which gives a sensor 20 s to end: a hang guard.
    let end = sensor.child.interrupt(patience(Duration::from_secs(300)));
    drop(hold);
    assert!(end.status.success(), "sensor exited with {}", end.status);
    assert!(followed <= 64 * 1024, "{:.1} MiB", mib(followed));
    drop(rt);
}
