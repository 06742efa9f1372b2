//! The real receivers `cargo xtask setup` installs under `.cache/receivers/`,
//! started on loopback ports the tests pick and stopped by PID on drop.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repo")
        .to_path_buf()
}

fn receiver(rel: &str) -> PathBuf {
    let p = repo().join(".cache/receivers").join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask setup`",
        p.display()
    );
    p
}

/// A scratch folder removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "otlp-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

/// A loopback port free right now (the receiver binds it just after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_listening(port: u16, what: &str) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for(what, Duration::from_secs(30), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .ok()
            .map(|_| ())
    });
}

/// A child process stopped (by PID) and reaped on drop: SIGTERM first, so
/// a master process (nginx) takes its workers down with it, then SIGKILL.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { child }
    }

    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().ok();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// VictoriaMetrics, OTLP/HTTP metrics in, PromQL out.
pub struct Victoria {
    pub port: u16,
    /// For https: the CA that verifies it.
    pub ca: Option<PathBuf>,
    _proc: Proc,
    _dir: TempDir,
}

impl Victoria {
    /// Prometheus naming: dots become underscores, units and `_total` are appended.
    pub fn start(tls: Option<(&Path, &Path, &Path)>) -> Self {
        let dir = TempDir::new("vm");
        let port = free_port();
        let mut cmd = Command::new(receiver("victoria-metrics/usr/bin/victoria-metrics"));
        cmd.arg(format!("-storageDataPath={}", dir.path("data").display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg("-opentelemetry.usePrometheusNaming")
            // Points are queryable as soon as they are in, not a minute later.
            .arg("-search.latencyOffset=0s")
            .arg("-loggerLevel=ERROR")
            .stdout(Stdio::null())
            .stderr(File::create(dir.path("vm.log")).unwrap());
        let mut ca = None;
        if let Some((cert, key, ca_pem)) = tls {
            cmd.arg("-tls")
                .arg(format!("-tlsCertFile={}", cert.display()))
                .arg(format!("-tlsKeyFile={}", key.display()));
            ca = Some(ca_pem.to_path_buf());
        }
        let proc = Proc::spawn("victoria-metrics", &mut cmd);
        wait_listening(port, "VictoriaMetrics to listen");
        Victoria {
            port,
            ca,
            _proc: proc,
            _dir: dir,
        }
    }

    fn scheme(&self) -> &'static str {
        if self.ca.is_some() { "https" } else { "http" }
    }

    /// The OTLP/HTTP base: the exporter appends /v1/metrics.
    pub fn otlp_base(&self) -> String {
        format!("{}://127.0.0.1:{}/opentelemetry", self.scheme(), self.port)
    }

    fn curl(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let mut c = Command::new("curl");
        c.args(["-sS", "--fail", "--max-time", "10"]);
        if let Some(ca) = &self.ca {
            c.arg("--cacert").arg(ca);
        }
        for (k, v) in form {
            c.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        c.arg(format!("{}://127.0.0.1:{}{path}", self.scheme(), self.port));
        let out = c.output().expect("curl runs");
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Makes freshly ingested points searchable.
    pub fn flush(&self) {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "10", "-X", "POST"]);
        if let Some(ca) = &self.ca {
            c.arg("--cacert").arg(ca);
        }
        c.arg(format!(
            "{}://127.0.0.1:{}/internal/force_flush",
            self.scheme(),
            self.port
        ));
        c.output().ok();
    }

    /// An instant PromQL query: each series' labels and value.
    pub fn query(&self, promql: &str) -> Vec<Sample> {
        let v = self.curl("/api/v1/query", &[("query", promql)]);
        assert_eq!(v["status"], "success", "{promql}: {v}");
        v["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| Sample {
                labels: r["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                value: r["value"][1]
                    .as_str()
                    .unwrap_or("NaN")
                    .parse()
                    .unwrap_or(f64::NAN),
            })
            .collect()
    }

    /// Waits until `promql` returns `n` series (ingestion is asynchronous).
    pub fn query_n(&self, promql: &str, n: usize) -> Vec<Sample> {
        let r = wait_for(
            &format!("{n} series of {promql}"),
            Duration::from_secs(30),
            || {
                self.flush();
                let r = self.query(promql);
                (r.len() == n).then_some(r)
            },
        );
        // The transcript `cargo test -- --nocapture` shows, for the docs.
        eprintln!("PromQL> {promql}");
        for s in &r {
            let l: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| !k.starts_with("telemetry_") && !k.starts_with("service_"))
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            eprintln!("  {{{}}} {}", l.join(","), s.value);
        }
        r
    }

    /// The one value of a query that must return one series.
    pub fn value(&self, promql: &str) -> f64 {
        self.query_n(promql, 1)[0].value
    }
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// rotel: OTLP gRPC and HTTP in, a text dump of every log record and metric out.
pub struct Rotel {
    pub grpc_port: u16,
    pub http_port: u16,
    out: PathBuf,
    proc: Proc,
    _dir: TempDir,
}

impl Rotel {
    pub fn start() -> Self {
        Self::start_on(free_port(), free_port())
    }

    pub fn start_on(grpc_port: u16, http_port: u16) -> Self {
        Self::start_in(None, grpc_port, http_port)
    }

    /// In network namespace `ns` (for a sensor that runs there), or here.
    pub fn start_in(ns: Option<&tests::netns::Netns>, grpc_port: u16, http_port: u16) -> Self {
        let dir = TempDir::new("rotel");
        let out = dir.path("out.txt");
        let agent = receiver("rotel/rotel/rotel-agent");
        let mut cmd = match ns {
            Some(ns) => ns.cmd(agent.to_str().expect("utf-8 path")),
            None => Command::new(agent),
        };
        cmd.arg("start")
            .arg(format!("--otlp-grpc-endpoint=127.0.0.1:{grpc_port}"))
            .arg(format!("--otlp-http-endpoint=127.0.0.1:{http_port}"))
            .args(["--exporter", "blackhole"])
            .args(["--debug-log", "metrics", "--debug-log", "logs"])
            .args(["--debug-log-verbosity", "detailed"])
            .arg(format!("--pid-file={}", dir.path("rotel.pid").display()))
            .arg(format!("--log-file={}", dir.path("rotel.log").display()))
            .stdout(File::create(&out).unwrap())
            .stderr(Stdio::null());
        let proc = Proc::spawn("rotel", &mut cmd);
        match ns {
            Some(ns) => {
                ns.wait_listen(grpc_port);
                ns.wait_listen(http_port);
            }
            None => {
                wait_listening(grpc_port, "rotel gRPC to listen");
                wait_listening(http_port, "rotel HTTP to listen");
            }
        }
        Rotel {
            grpc_port,
            http_port,
            out,
            proc,
            _dir: dir,
        }
    }

    pub fn grpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn http(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn dump(&self) -> Dump {
        parse(&std::fs::read_to_string(&self.out).unwrap_or_default())
    }

    /// Waits until the dump satisfies `ok` (rotel batches for 200 ms) and
    /// rotel has stopped writing: it prints an export in several writes,
    /// so a dump read mid-export counts the export (its header is out)
    /// without all of its points.
    pub fn wait(&self, what: &str, ok: impl Fn(&Dump) -> bool) -> Dump {
        let mut seen = None;
        wait_for(what, Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&self.out).unwrap_or_default();
            let d = parse(&text);
            if !ok(&d) {
                seen = None;
                return None;
            }
            // Two reads a poll apart (100 ms) that found the same bytes.
            let settled = seen.as_ref() == Some(&text);
            seen = Some(text);
            settled.then_some(d)
        })
    }

    pub fn stop(mut self) -> Dump {
        self.proc.stop();
        self.dump()
    }
}

/// One log record as rotel prints it.
#[derive(Debug, Clone, Default)]
pub struct LogRec {
    pub resource: BTreeMap<String, String>,
    pub timestamp: u64,
    pub observed: u64,
    pub severity_text: String,
    pub severity_number: String,
    pub event: String,
    pub body: String,
    pub attrs: BTreeMap<String, String>,
}

impl LogRec {
    /// The value inside `Str(...)`, `Int(...)`, `Bool(...)`.
    pub fn attr(&self, k: &str) -> Option<String> {
        self.attrs.get(k).map(|v| unwrap_value(v))
    }
}

/// One number data point of one metric.
#[derive(Debug, Clone, Default)]
pub struct Point {
    pub resource: BTreeMap<String, String>,
    pub metric: String,
    pub unit: String,
    pub kind: String,
    pub attrs: BTreeMap<String, String>,
    pub value: f64,
}

impl Point {
    pub fn attr(&self, k: &str) -> Option<String> {
        self.attrs.get(k).map(|v| unwrap_value(v))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Dump {
    pub logs: Vec<LogRec>,
    pub points: Vec<Point>,
    /// How many metric exports (ResourceMetrics blocks) arrived.
    pub metric_exports: usize,
}

impl Dump {
    pub fn events(&self, name: &str) -> Vec<&LogRec> {
        self.logs.iter().filter(|l| l.event == name).collect()
    }

    /// Points of `metric` in the last metric export received.
    pub fn last(&self, metric: &str) -> Vec<&Point> {
        self.last_export_points()
            .into_iter()
            .filter(|p| p.metric == metric)
            .collect()
    }

    fn last_export_points(&self) -> Vec<&Point> {
        // Points carry their export's index in `resource["#export"]`.
        let last = self.metric_exports.to_string();
        self.points
            .iter()
            .filter(|p| p.resource.get("#export") == Some(&last))
            .collect()
    }
}

pub fn unwrap_value(v: &str) -> String {
    for p in ["Str(", "Int(", "Bool(", "Double("] {
        if let Some(inner) = v.strip_prefix(p).and_then(|s| s.strip_suffix(')')) {
            return inner.to_string();
        }
    }
    v.to_string()
}

fn kv(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix("-> ")?;
    let (k, v) = rest.split_once(": ")?;
    Some((k.to_string(), v.to_string()))
}

enum Section {
    None,
    Resource,
    LogAttrs,
    Descriptor,
    PointAttrs,
}

/// Parses rotel's `--debug-log-verbosity detailed` text.
pub fn parse(text: &str) -> Dump {
    let mut d = Dump::default();
    let mut resource = BTreeMap::new();
    let mut sec = Section::None;
    let mut metric = (String::new(), String::new(), String::new());
    let mut in_logs = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("ResourceLog #") {
            in_logs = true;
            resource = BTreeMap::new();
            sec = Section::None;
        } else if t.starts_with("ResourceMetrics #") {
            in_logs = false;
            resource = BTreeMap::new();
            d.metric_exports += 1;
            resource.insert("#export".to_string(), d.metric_exports.to_string());
            sec = Section::None;
        } else if t == "Resource attributes:" {
            sec = Section::Resource;
        } else if t.starts_with("LogRecord #") && in_logs {
            d.logs.push(LogRec {
                resource: resource.clone(),
                ..Default::default()
            });
            sec = Section::None;
        } else if t == "Attributes:" {
            sec = Section::LogAttrs;
        } else if t == "Descriptor:" {
            sec = Section::Descriptor;
            metric = Default::default();
        } else if t.starts_with("NumberDataPoints #") {
            d.points.push(Point {
                resource: resource.clone(),
                metric: metric.0.clone(),
                unit: metric.1.clone(),
                kind: metric.2.clone(),
                ..Default::default()
            });
            sec = Section::None;
        } else if t == "Data point attributes:" {
            sec = Section::PointAttrs;
        } else if let Some((k, v)) = kv(line) {
            match sec {
                Section::Resource => {
                    resource.insert(k, unwrap_value(&v));
                }
                Section::LogAttrs => {
                    if let Some(l) = d.logs.last_mut() {
                        l.attrs.insert(k, v);
                    }
                }
                Section::Descriptor => match k.as_str() {
                    "Name" => metric.0 = v,
                    "Unit" => metric.1 = v,
                    "DataType" => metric.2 = v,
                    _ => {}
                },
                Section::PointAttrs => {
                    if let Some(p) = d.points.last_mut() {
                        p.attrs.insert(k, v);
                    }
                }
                Section::None => {}
            }
        } else if let Some(v) = t.strip_prefix("Value: ") {
            if let Some(p) = d.points.last_mut() {
                p.value = v.parse().unwrap_or(f64::NAN);
            }
        } else if let Some(l) = d.logs.last_mut().filter(|_| in_logs) {
            if let Some(v) = t.strip_prefix("Timestamp: ") {
                l.timestamp = v.parse().unwrap_or(0);
            } else if let Some(v) = t.strip_prefix("ObservedTimestamp: ") {
                l.observed = v.parse().unwrap_or(0);
            } else if let Some(v) = t.strip_prefix("SeverityText: ") {
                l.severity_text = v.to_string();
            } else if let Some(v) = t.strip_prefix("SeverityNumber: ") {
                l.severity_number = v.to_string();
            } else if let Some(v) = t.strip_prefix("EventName: ") {
                l.event = v.to_string();
            } else if let Some(v) = t.strip_prefix("Body: ") {
                l.body = v.to_string();
            }
        }
    }
    d
}
