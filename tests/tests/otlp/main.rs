//! OTLP export into real receivers: VictoriaMetrics (OTLP/HTTP metrics,
//! queried back with PromQL) and rotel (gRPC and HTTP, logs and metrics
//! printed as received). The data is `sensor analyze` over a capture of
//! openssl s_server/s_client handshakes on loopback (tests/data/otlp).

mod receivers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use receivers::{Dump, Proc, Rotel, TempDir, Victoria, free_port, wait_listening};
use sensor::analysis::Analysis;
use sensor::analyze::analyze;
use sensor::export::otlp::{OtlpArgs, OtlpConfig, OtlpExporter, OtlpSink, SensorSnapshot};
use sensor::export::{RecordSink, RunStats};
use sensor::model::{
    CertManagerRef, ConnTraffic, Connection, Counts, Finding, Flow, FlowEnd, FlowReport, FlowTls,
    IssuerRef, Mesh, MeshKind, ObjectRef, Owner, Peer, PeerKind, ProtocolVersion, Rule, Severity,
    Verdict,
};
use sensor::pipeline::PipelineConfig;
use serde_json::{Value, json};

const WEB_SHA: &str = "189acf0a0db61c394164a14c504b884fb814f45c37cacd82e7a2d71794bf341b";
const EXPIRED_SHA: &str = "c5a200e2326c2df5f79e72d3ff5858df829dec1949050ee756eb4fbce408b1eb";
/// 2035-01-01T00:00:00Z and 2021-01-01T00:00:00Z.
const WEB_NOT_AFTER: f64 = 2_051_222_400.0;
const EXPIRED_NOT_AFTER: f64 = 1_609_459_200.0;

fn pcap() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/otlp/loopback-tls.pcap")
}

fn sensor_bin() -> PathBuf {
    // target/release/deps/otlp-HASH → target/release/sensor
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("sensor");
    assert!(
        bin.exists(),
        "{} missing: build the binaries first (cargo xtask test does)",
        bin.display()
    );
    bin
}

/// `sensor ARGS` with a clean OTLP environment plus `env`.
fn sensor(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(sensor_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") || k.starts_with("K8S_") || k == "NODE_NAME" {
            c.env_remove(k);
        }
    }
    c.args(args).envs(env.iter().copied());
    c.output().expect("sensor runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "sensor failed: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json_lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of_kind<'a>(recs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    recs.iter().filter(|r| r["kind"] == kind).collect()
}

/// "2026-11-27T17:01:12.862121Z" → unix microseconds.
fn rfc3339_us(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    let frac = s[20..s.len() - 1].parse::<i64>().unwrap_or(0);
    secs * 1_000_000 + frac
}

fn tls_version(v: &Value) -> String {
    match v.as_str() {
        None => "unknown".into(),
        Some(s) => s.strip_prefix("TLS ").unwrap_or(s).to_string(),
    }
}

fn tri(v: &Value) -> String {
    match v.as_bool() {
        Some(b) => b.to_string(),
        None => "unknown".into(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(","))
}

const RESOURCE_LABELS: &[&str] = &[
    "service_name",
    "service_version",
    "host_name",
    "k8s_cluster_name",
    "k8s_node_name",
    "telemetry_sdk_language",
    "telemetry_sdk_name",
    "telemetry_sdk_version",
];

fn assert_label_names(s: &receivers::Sample, attrs: &[&str]) {
    let got: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = attrs
        .iter()
        .chain(RESOURCE_LABELS)
        .chain(&["__name__"])
        .copied()
        .collect();
    assert_eq!(got, want, "labels of {:?}", s.labels);
}

/// `sensor analyze --otlp` over HTTP/protobuf into VictoriaMetrics; every
/// metric of the capture is read back with PromQL, values and labels.
#[test]
fn analyze_exports_metrics_to_victoria_metrics() {
    let vm = Victoria::start(None);
    let base = vm.otlp_base();
    let out = sensor(
        &[
            "analyze",
            "--json",
            "--otlp",
            &base,
            "--otlp-protocol",
            "http/protobuf",
            "--cluster-name",
            "kind-otlp",
            pcap().to_str().unwrap(),
        ],
        &[("OTEL_LOGS_EXPORTER", "none"), ("K8S_NODE_NAME", "node-7")],
    );
    let recs = json_lines(&ok(&out));
    let handshakes = of_kind(&recs, "handshake");
    assert_eq!(handshakes.len(), 5);

    // tls.handshakes: one series per distinct attribute set, counted per port here.
    let series = vm.query_n("tls_handshakes_total", 4);
    let hs_attrs = [
        "tls_protocol_version",
        "tls_cipher",
        "tls_next_protocol",
        "tls_mesh",
        "tls_mutual",
        "tls_resumed",
        "k8s_src_namespace",
        "k8s_src_owner_name",
        "k8s_dst_namespace",
        "k8s_dst_owner_name",
        "server_port",
    ];
    for s in &series {
        assert_label_names(s, &hs_attrs);
        let l = &s.labels;
        assert_eq!(l["service_name"], "tls-sensor");
        assert_eq!(l["k8s_cluster_name"], "kind-otlp");
        assert_eq!(l["k8s_node_name"], "node-7");
        assert!(!l["host_name"].is_empty());
        let port: u64 = l["server_port"].parse().unwrap();
        let mine: Vec<&&Value> = handshakes
            .iter()
            .filter(|h| h["server"]["port"] == port)
            .collect();
        assert_eq!(s.value, mine.len() as f64, "handshakes to port {port}");
        let h = mine[0];
        assert_eq!(l["tls_protocol_version"], tls_version(&h["version"]));
        assert_eq!(l["tls_cipher"], h["cipher"].as_str().unwrap());
        let alpn = match (h["alpn"].as_str(), h["version"].as_str()) {
            (Some(a), _) => a,
            (None, Some("TLS 1.3")) => "unknown",
            (None, _) => "none",
        };
        assert_eq!(l["tls_next_protocol"], alpn);
        assert_eq!(l["tls_mutual"], tri(&h["mutual"]));
        assert_eq!(l["tls_resumed"], tri(&h["resumed"]));
        assert_eq!(l["tls_mesh"], "none");
        for k in [
            "k8s_src_namespace",
            "k8s_src_owner_name",
            "k8s_dst_namespace",
            "k8s_dst_owner_name",
        ] {
            assert_eq!(l[k], "unknown", "no inventory");
        }
    }
    assert_eq!(vm.value("sum(tls_handshakes_total)"), 5.0);
    assert_eq!(
        vm.value(r#"tls_handshakes_total{server_port="18443",tls_next_protocol="h2"}"#),
        2.0
    );

    // tls.findings: every finding of every handshake, by rule and severity.
    let mut by_rule: BTreeMap<(String, String), usize> = BTreeMap::new();
    for h in &handshakes {
        for f in h["findings"].as_array().unwrap() {
            let key = (
                f["rule"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            );
            *by_rule.entry(key).or_default() += 1;
        }
    }
    assert!(
        by_rule.keys().any(|(r, _)| r == "cert.expired"),
        "{by_rule:?}"
    );
    let total: usize = by_rule.values().sum();
    assert_eq!(vm.value("sum(tls_findings_total)"), total as f64);
    for ((rule, sev), n) in &by_rule {
        assert_eq!(
            vm.value(&format!(
                "sum(tls_findings_total{})",
                labels(&[("tls_finding_rule", rule), ("tls_finding_severity", sev)])
            )),
            *n as f64,
            "{rule} {sev}"
        );
    }

    // tls.certificate.not_after: the servers' own certificates only.
    let web = vm.query_n(
        r#"tls_certificate_not_after_seconds{tls_server_subject_cn="web.otlp.test"}"#,
        1,
    );
    assert_label_names(
        &web[0],
        &[
            "tls_server_hash_sha256",
            "tls_server_subject_cn",
            "tls_server_issuer_cn",
            "tls_certificate_source",
            "tls_certificate_verdict",
            "cert_manager_certificate_name",
            "cert_manager_certificate_namespace",
            "cert_manager_issuer_name",
            "cert_manager_issuer_kind",
            "k8s_dst_namespace",
            "k8s_dst_owner_name",
        ],
    );
    assert_eq!(web[0].value, WEB_NOT_AFTER);
    let l = &web[0].labels;
    assert_eq!(l["tls_server_hash_sha256"], WEB_SHA);
    assert_eq!(l["tls_server_issuer_cn"], "OTLP Test CA");
    assert_eq!(l["tls_certificate_source"], "observed");
    assert_eq!(l["tls_certificate_verdict"], "unknown");
    assert_eq!(
        vm.value(&format!(
            "tls_certificate_not_after_seconds{}",
            labels(&[("tls_server_hash_sha256", EXPIRED_SHA)])
        )),
        EXPIRED_NOT_AFTER
    );
    assert_eq!(vm.value("count(tls_certificate_not_after_seconds)"), 2.0);

    // tls.certificates: distinct server certificates by verdict and status.
    let certs = vm.query_n("tls_certificates", 2);
    for s in &certs {
        assert_label_names(s, &["tls_certificate_verdict", "tls_certificate_status"]);
        assert_eq!(s.value, 1.0);
    }
    let statuses: BTreeSet<&str> = certs
        .iter()
        .map(|s| s.labels["tls_certificate_status"].as_str())
        .collect();
    assert_eq!(statuses, BTreeSet::from(["expired", "valid"]));

    // sensor.*: frames of the file as packets; nothing failed or dropped.
    let summary = of_kind(&recs, "summary")[0];
    assert_eq!(
        vm.value("sensor_packets_total"),
        summary["frames"].as_f64().unwrap()
    );
    assert_eq!(vm.value("sensor_events_lost_total"), 0.0);
    assert_eq!(vm.value("sensor_flows_evicted_total"), 0.0);
    assert_eq!(
        vm.value(r#"sensor_export_failures_total{signal="metrics"}"#),
        0.0
    );

    // A damaged copy of the capture: its parse error arrives by kind; the
    // run is told apart by a resource attribute from OTEL_RESOURCE_ATTRIBUTES.
    let dir = TempDir::new("damaged");
    let damaged = dir.path("damaged.pcap");
    let bytes = std::fs::read(pcap()).unwrap();
    std::fs::write(&damaged, &bytes[..10_000]).unwrap();
    ok(&sensor(
        &["analyze", "--otlp", &base, damaged.to_str().unwrap()],
        &[
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_RESOURCE_ATTRIBUTES", "test.run=damaged"),
        ],
    ));
    assert_eq!(
        vm.value(
            r#"sensor_parse_errors_total{test_run="damaged",error_type="capture_file_damaged"}"#
        ),
        1.0
    );
}

/// Adds what the inventory would (another module), and replaces the
/// handshakes' findings by one known finding, so every attribute and metric
/// carries a value the test can predict.
struct Enrich(OtlpSink);

fn pod(ns: &str, workload: &str) -> Peer {
    Peer {
        kind: PeerKind::Pod,
        namespace: Some(ns.into()),
        name: Some(format!("{workload}-5d9c")),
        workload: Some(Owner {
            kind: "Deployment".into(),
            name: workload.into(),
        }),
        service_account: Some("default".into()),
        node: Some("node-7".into()),
    }
}

impl RecordSink for Enrich {
    fn connection(&mut self, c: &Connection) {
        let mut c = c.clone();
        let corr = &mut c.correlation;
        corr.source = Some(pod("shop", "frontend"));
        c.findings = Vec::new();
        match c.server.port() {
            18443 | 21443 => {
                corr.destination = Some(pod("shop", "web"));
                corr.verdict = Some(Verdict::Managed);
                corr.cert_manager = Some(CertManagerRef {
                    certificate: ObjectRef {
                        namespace: "shop".into(),
                        name: "web-tls".into(),
                    },
                    revision: Some(3),
                    issuer: IssuerRef {
                        kind: "ClusterIssuer".into(),
                        name: "internal-ca".into(),
                        group: String::new(),
                    },
                    current_revision: Some(3),
                    renewal_time: None,
                    not_after: None,
                    issuer_type: None,
                    issuer_ready: None,
                });
            }
            19443 => {
                corr.destination = Some(pod("legacy", "old-api"));
                corr.verdict = Some(Verdict::Unmanaged);
                c.findings = vec![Finding {
                    rule: Rule::CertExpired,
                    severity: Severity::Critical,
                    message: "certificate expired 2021-01-01T00:00:00Z".into(),
                    certificate: Some(EXPIRED_SHA.into()),
                    subject: None,
                    evidence: Value::Null.into(),
                    first: true,
                }];
            }
            _ => {
                corr.destination = Some(pod("payments", "pay"));
                c.mesh = Some(Mesh {
                    kind: MeshKind::Istio,
                    identity: None,
                });
            }
        }
        self.0.connection(&c);
    }

    // The capture's own traffic is left out: the test feeds flows of its own.

    fn finish(&mut self, s: &RunStats) {
        self.0.finish(s);
    }
}

fn exporter(args: OtlpArgs, env: &[(&str, &str)]) -> OtlpExporter {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let cfg = OtlpConfig::from_args(&args, &env)
        .unwrap()
        .expect("an endpoint is configured");
    OtlpExporter::new(cfg).unwrap()
}

/// Finding records the analysis stage emits for one pass over the capture.
fn findings_per_pass() -> usize {
    struct Count(usize);
    impl RecordSink for Count {
        fn connection(&mut self, c: &Connection) {
            self.0 += c.findings.iter().filter(|f| f.first).count();
        }
        fn flow(&mut self, f: &Flow) {
            self.0 += f.findings.iter().filter(|f| f.first).count();
        }
    }
    run_pcap(Count(0)).0
}

fn run_pcap<K: RecordSink>(sink: K) -> K {
    let out = analyze(
        &[pcap()],
        PipelineConfig::default(),
        Analysis::default(),
        sink,
    );
    assert!(out.failed.is_empty());
    out.sink
}

/// The library API the daemon uses: inventory-enriched handshakes,
/// findings, flow bytes, the sensor's own counters, and attribute limits,
/// read back from VictoriaMetrics.
#[test]
fn library_exports_findings_traffic_self_telemetry_and_overflows() {
    let vm = Victoria::start(None);
    let dead_logs = format!("http://127.0.0.1:{}/v1/logs", free_port());
    let exp = exporter(
        OtlpArgs {
            otlp: Some(vm.otlp_base()),
            otlp_interval: Some(3600.0),
            otlp_max_attribute_values: 2,
            cluster_name: Some("lib".into()),
            ..Default::default()
        },
        // Logs go to a port where nothing listens: every record is lost, and counted.
        &[
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &dead_logs),
            ("K8S_NODE_NAME", "node-7"),
        ],
    );
    let sink = exp.sink();
    run_pcap(Enrich(sink.clone()));
    let src = pod("shop", "frontend");
    let mut sink = sink;
    // Two reports of one TLS connection (the second its end, after 2 s),
    // one of a plaintext connection that ended by RST.
    for (bytes, encrypted, mesh, dst, end) in [
        (1000, true, Some(MeshKind::Istio), pod("shop", "web"), None),
        (
            500,
            true,
            Some(MeshKind::Istio),
            pod("shop", "web"),
            Some(FlowEnd::Fin),
        ),
        (
            300,
            false,
            None,
            pod("legacy", "old-api"),
            Some(FlowEnd::Rst),
        ),
    ] {
        let interval = Counts {
            bytes_to_server: bytes,
            packets_to_server: bytes / 100,
            ..Counts::default()
        };
        let tls = encrypted.then(|| {
            std::sync::Arc::new(FlowTls {
                version: Some(ProtocolVersion::TLS13),
                mesh: mesh.map(|kind| Mesh {
                    kind,
                    identity: None,
                }),
                ..FlowTls::default()
            })
        });
        sink.flow_report(&FlowReport {
            traffic: ConnTraffic {
                client: "10.0.0.1:40000".parse().unwrap(),
                server: "10.0.0.2:443".parse().unwrap(),
                start_us: 0,
                time_us: 2_000_000,
                total: interval,
                encrypted,
                partial: false,
                end,
            },
            interval,
            tls,
            source: Some(src.clone()),
            destination: Some(dst),
        });
    }
    sink.record_snapshot(SensorSnapshot {
        packets: 1000,
        events_lost: 7,
        flows_evicted: 3,
        parse_errors: BTreeMap::from([("tls_hello_unparsable", 2)]),
        inventory_synced: BTreeMap::from([("pods", true), ("certificaterequests", false)]),
        inventory_retries: BTreeMap::from([("pods", 4)]),
        inventory_relists: BTreeMap::from([("pods", 2)]),
        own_connections: 9,
        probes: BTreeMap::from([("ok", 4), ("rate_limited", 2)]),
    });
    let report = exp.shutdown();
    assert_eq!(report.metric_export_failures, 0);
    assert_eq!(report.metric_exports, 1);
    // 4 certificates and the finding lines (Enrich's one expired
    // certificate), all lost with the logs collector absent.
    let lost = 4 + 1;
    assert_eq!(report.logs_dropped_export_failed, lost);
    assert_eq!(
        vm.value(r#"sensor_export_dropped_total{signal="logs",reason="export_failed"}"#),
        lost as f64
    );
    assert_eq!(
        vm.value(r#"sensor_export_dropped_total{signal="logs",reason="queue_full"}"#),
        0.0
    );
    assert_eq!(
        vm.value(r#"sensor_export_records_total{signal="logs"}"#),
        0.0
    );
    assert_eq!(
        vm.value(r#"sensor_export_failures_total{signal="logs"}"#),
        report.log_export_failures as f64
    );
    assert!(report.log_export_failures >= 1);
    assert_eq!(
        vm.value(r#"sensor_export_failures_total{signal="metrics"}"#),
        0.0
    );
    assert_eq!(
        vm.value(r#"sensor_dedup_evictions_total{event="tls.certificate"}"#),
        0.0
    );
    assert_eq!(
        vm.value(r#"sensor_inventory_retries_total{sensor_inventory_resource="pods"}"#),
        4.0
    );
    assert_eq!(
        vm.value(r#"sensor_inventory_relists_total{sensor_inventory_resource="pods"}"#),
        2.0
    );
    assert_eq!(vm.value("sensor_own_connections_total"), 9.0);
    assert_eq!(vm.value(r#"sensor_probes_total{result="ok"}"#), 4.0);
    assert_eq!(
        vm.value(r#"sensor_probes_total{result="rate_limited"}"#),
        2.0
    );

    let f = vm.query_n("tls_findings_total", 1);
    assert_label_names(
        &f[0],
        &[
            "tls_finding_rule",
            "tls_finding_severity",
            "k8s_dst_namespace",
            "k8s_dst_owner_name",
        ],
    );
    assert_eq!(
        vm.value(&format!(
            "tls_findings_total{}",
            labels(&[
                ("tls_finding_rule", "cert.expired"),
                ("tls_finding_severity", "critical"),
                ("k8s_dst_namespace", "legacy"),
                ("k8s_dst_owner_name", "old-api"),
            ])
        )),
        1.0
    );

    let managed = vm.query_n(
        &format!(
            "tls_certificate_not_after_seconds{}",
            labels(&[
                ("tls_certificate_verdict", "managed"),
                ("cert_manager_certificate_name", "web-tls"),
                ("cert_manager_certificate_namespace", "shop"),
                ("cert_manager_issuer_name", "internal-ca"),
                ("cert_manager_issuer_kind", "ClusterIssuer"),
                ("k8s_dst_namespace", "shop"),
                ("k8s_dst_owner_name", "web"),
            ])
        ),
        1,
    );
    assert_eq!(managed[0].value, WEB_NOT_AFTER);
    assert_eq!(
        vm.value(r#"tls_certificate_not_after_seconds{tls_certificate_verdict="unmanaged",cert_manager_certificate_name="none"}"#),
        EXPIRED_NOT_AFTER
    );
    assert_eq!(
        vm.value(
            r#"tls_certificates{tls_certificate_verdict="managed",tls_certificate_status="valid"}"#
        ),
        1.0
    );
    assert_eq!(
        vm.value(r#"tls_certificates{tls_certificate_verdict="unmanaged",tls_certificate_status="expired"}"#),
        1.0
    );

    // Prometheus naming: unit By on a name ending in "bytes" adds nothing.
    let t = vm.query_n("tls_traffic_bytes_total", 2);
    for s in &t {
        assert_label_names(
            s,
            &[
                "tls_encrypted",
                "tls_protocol_version",
                "tls_mesh",
                "k8s_src_namespace",
                "k8s_src_owner_name",
                "k8s_dst_namespace",
                "k8s_dst_owner_name",
                "server_port",
            ],
        );
    }
    assert_eq!(
        vm.value(r#"tls_traffic_packets_total{tls_encrypted="true",tls_protocol_version="1.3"}"#),
        15.0
    );
    assert_eq!(
        vm.value(r#"tls_connections_total{tls_connection_end="fin",tls_mesh="istio"}"#),
        1.0
    );
    assert_eq!(
        vm.value(r#"tls_connections_total{tls_connection_end="rst",tls_protocol_version="none"}"#),
        1.0
    );
    assert_eq!(
        vm.value(r#"sum(tls_connection_duration_seconds_count)"#),
        2.0
    );
    assert_eq!(vm.value(r#"sum(tls_connection_duration_seconds_sum)"#), 4.0);
    assert_eq!(
        vm.value(&format!(
            "tls_traffic_bytes_total{}",
            labels(&[
                ("tls_encrypted", "true"),
                ("tls_mesh", "istio"),
                ("k8s_src_namespace", "shop"),
                ("k8s_src_owner_name", "frontend"),
                ("k8s_dst_namespace", "shop"),
                ("k8s_dst_owner_name", "web"),
            ])
        )),
        1500.0
    );
    assert_eq!(
        vm.value(r#"tls_traffic_bytes_total{tls_encrypted="false",tls_mesh="none",k8s_dst_namespace="legacy"}"#),
        300.0
    );

    assert_eq!(vm.value("sensor_packets_total"), 1000.0);
    assert_eq!(vm.value("sensor_events_lost_total"), 7.0);
    assert_eq!(vm.value("sensor_flows_evicted_total"), 3.0);
    assert_eq!(
        vm.value(r#"sensor_parse_errors_total{error_type="tls_hello_unparsable"}"#),
        2.0
    );
    assert_eq!(
        vm.value(r#"sensor_inventory_synced{sensor_inventory_resource="pods"}"#),
        1.0
    );
    assert_eq!(
        vm.value(r#"sensor_inventory_synced{sensor_inventory_resource="certificaterequests"}"#),
        0.0
    );

    // Three destination namespaces with a limit of two: the third handshake's
    // namespace is reported as _overflow and counted.
    assert_eq!(
        vm.value(r#"tls_handshakes_total{k8s_dst_namespace="_overflow"}"#),
        1.0
    );
    assert_eq!(
        vm.value(r#"sensor_cardinality_overflows_total{metric="tls.handshakes",attribute="k8s.dst.namespace"}"#),
        1.0
    );
    assert_eq!(
        vm.value(r#"sum(tls_handshakes_total{k8s_dst_namespace=~"shop|legacy"})"#),
        4.0
    );
}

fn handshake_by_client_port<'a>(recs: &'a [Value], port: &str) -> &'a Value {
    recs.iter()
        .find(|r| {
            r["kind"] == "handshake"
                && r["client"]["port"]
                    .as_u64()
                    .map(|p| p.to_string())
                    .as_deref()
                    == Some(port)
        })
        .unwrap_or_else(|| panic!("no handshake from client port {port}"))
}

fn check_resource(r: &BTreeMap<String, String>, service: &str) {
    assert_eq!(r.get("service.name").map(String::as_str), Some(service));
    assert_eq!(
        r.get("service.version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(r.get("k8s.cluster.name").map(String::as_str), Some("c1"));
    assert_eq!(r.get("k8s.node.name").map(String::as_str), Some("n1"));
    assert!(r.get("host.name").is_some_and(|h| !h.is_empty()));
}

fn check_certificate_logs(d: &Dump, recs: &[Value]) {
    let json_certs = of_kind(recs, "certificate");
    let logs = d.events("tls.certificate");
    assert_eq!(logs.len(), json_certs.len(), "one per distinct certificate");
    for c in json_certs {
        let sha = c["sha256"].as_str().unwrap();
        let l = logs
            .iter()
            .find(|l| l.attr("tls.certificate.sha256").as_deref() == Some(sha))
            .unwrap_or_else(|| panic!("no tls.certificate log for {sha}"));
        for f in [
            "subject",
            "issuer",
            "serial",
            "not_before",
            "not_after",
            "signature_algorithm",
        ] {
            assert_eq!(
                l.attr(&format!("tls.certificate.{f}")).as_deref(),
                c[f].as_str(),
                "{f} of {sha}"
            );
        }
        assert_eq!(
            l.attr("tls.certificate.key.type").as_deref(),
            c["key"]["type"].as_str()
        );
        assert_eq!(
            l.attr("tls.certificate.key.bits"),
            Some(c["key"]["bits"].to_string())
        );
        assert_eq!(
            l.attr("tls.certificate.is_ca"),
            Some(c["is_ca"].to_string())
        );
        assert_eq!(l.severity_text, "INFO");
        assert!(l.severity_number.ends_with("(9)"), "{}", l.severity_number);
        assert!(l.body.contains(sha), "body carries the record");
        // Its time is that of the first handshake that showed it.
        let first = recs
            .iter()
            .find(|r| {
                r["kind"] == "handshake"
                    && (r["server_chain"].as_array().unwrap().contains(&json!(sha))
                        || r["client_chain"].as_array().unwrap().contains(&json!(sha)))
            })
            .unwrap();
        assert_eq!(
            l.timestamp as i64,
            rfc3339_us(first["time"].as_str().unwrap()) * 1000
        );
        assert!(l.observed > 0);
    }
}

/// Each finding record of the JSON output arrives as a tls.finding log record.
fn check_finding_logs(d: &Dump, recs: &[Value]) {
    let json = of_kind(recs, "finding");
    let logs = d.events("tls.finding");
    assert_eq!(logs.len(), json.len());
    for f in json {
        let l = logs
            .iter()
            .find(|l| {
                l.attr("tls.finding.rule").as_deref() == f["rule"].as_str()
                    && l.attr("tls.finding.certificate").as_deref() == f["certificate"].as_str()
                    && l.attr("tls.finding.client.port") == Some(f["client"]["port"].to_string())
            })
            .unwrap_or_else(|| panic!("no tls.finding log for {f}"));
        for k in ["severity", "message", "time", "sni"] {
            assert_eq!(
                l.attr(&format!("tls.finding.{k}")).as_deref(),
                f[k].as_str(),
                "{k}"
            );
        }
        assert_eq!(
            l.attr("tls.finding.certificate").as_deref(),
            f["certificate"].as_str()
        );
        assert_eq!(l.severity_text, f["severity"].as_str().unwrap());
        let number = match f["severity"].as_str().unwrap() {
            "critical" => "(21)",
            "high" => "(17)",
            "medium" => "(13)",
            _ => "(9)",
        };
        assert!(l.severity_number.ends_with(number), "{}", l.severity_number);
        assert_eq!(
            l.timestamp as i64,
            rfc3339_us(f["time"].as_str().unwrap()) * 1000
        );
        assert_eq!(l.attr("server.port"), Some(f["server"]["port"].to_string()));
        assert!(l.body.contains(f["rule"].as_str().unwrap()));
    }
}

/// `sensor analyze --otlp` over gRPC, with per-connection handshake logs,
/// then over HTTP/protobuf configured only by OTEL_* variables, without them.
#[test]
fn analyze_exports_logs_and_metrics_to_rotel_over_grpc_and_http() {
    let r = Rotel::start();
    let out = sensor(
        &[
            "analyze",
            "--json",
            "--otlp",
            &r.grpc(),
            "--otlp-protocol",
            "grpc",
            "--otlp-handshake-logs",
            "--cluster-name",
            "c1",
            pcap().to_str().unwrap(),
        ],
        &[("K8S_NODE_NAME", "n1")],
    );
    let recs = json_lines(&ok(&out));
    let findings = of_kind(&recs, "finding");
    let expected = 4 + 5 + findings.len();
    let d = r.wait("every log record and a metric export", |d| {
        d.logs.len() >= expected && d.metric_exports >= 1
    });
    assert_eq!(d.logs.len(), expected);
    check_finding_logs(&d, &recs);
    for l in &d.logs {
        check_resource(&l.resource, "tls-sensor");
    }
    check_certificate_logs(&d, &recs);

    let hs_logs = d.events("tls.handshake");
    assert_eq!(hs_logs.len(), of_kind(&recs, "handshake").len());
    for l in hs_logs {
        let port = l.attr("client.port").unwrap();
        let h = handshake_by_client_port(&recs, &port);
        assert_eq!(
            l.timestamp as i64,
            rfc3339_us(h["time"].as_str().unwrap()) * 1000
        );
        assert_eq!(l.severity_text, "INFO");
        for (k, v) in h.as_object().unwrap() {
            let attr = l.attr(&format!("tls.handshake.{k}"));
            match v {
                Value::Null => assert_eq!(attr, None, "{k} is null"),
                Value::String(s) if k != "kind" => {
                    assert_eq!(attr.as_deref(), Some(s.as_str()), "{k}")
                }
                Value::Bool(b) => assert_eq!(attr, Some(b.to_string()), "{k}"),
                _ => {}
            }
        }
        assert_eq!(
            l.attr("tls.handshake.server.port"),
            Some(h["server"]["port"].to_string())
        );
        assert_eq!(l.attr("server.port"), Some(h["server"]["port"].to_string()));
        assert_eq!(
            l.attr("server.address").as_deref(),
            h["server"]["ip"].as_str()
        );
        assert!(l.body.contains(h["ja4"].as_str().unwrap()));
    }

    let hs = d.last("tls.handshakes");
    assert_eq!(hs.iter().map(|p| p.value).sum::<f64>(), 5.0);
    assert!(
        hs.iter()
            .all(|p| p.unit == "{handshake}" && p.kind == "Sum")
    );
    check_resource(&hs[0].resource, "tls-sensor");
    let na = d.last("tls.certificate.not_after");
    assert_eq!(na.len(), 2);
    assert!(na.iter().all(|p| p.unit == "s" && p.kind == "Gauge"));
    let web = na
        .iter()
        .find(|p| p.attr("tls.server.hash.sha256").as_deref() == Some(WEB_SHA))
        .unwrap();
    assert_eq!(web.value, WEB_NOT_AFTER);
    assert_eq!(
        web.attr("tls.server.subject.cn").as_deref(),
        Some("web.otlp.test")
    );
    let rec = d.last("sensor.export.records");
    assert_eq!(rec.len(), 1);
    assert_eq!(
        rec[0].value, expected as f64,
        "all log records went before the last export"
    );
    drop(r);

    // HTTP, configured by the standard variables only; handshake logs off by default.
    let r = Rotel::start();
    let endpoint = r.http();
    ok(&sensor(
        &["analyze", pcap().to_str().unwrap()],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "sensor-under-test"),
            ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
            ("K8S_CLUSTER_NAME", "c1"),
            ("NODE_NAME", "n1"),
        ],
    ));
    let d = r.wait("certificate and finding logs and a metric export", |d| {
        d.logs.len() >= 4 + findings.len() && d.metric_exports >= 1
    });
    check_certificate_logs(&d, &recs);
    check_finding_logs(&d, &recs);
    assert!(d.events("tls.handshake").is_empty(), "off by default");
    for l in &d.logs {
        check_resource(&l.resource, "sensor-under-test");
        assert_eq!(
            l.resource.get("deployment.environment").map(String::as_str),
            Some("test")
        );
    }
    assert_eq!(
        d.last("tls.handshakes")
            .iter()
            .map(|p| p.value)
            .sum::<f64>(),
        5.0
    );
}

/// A certificate leaves tls.certificate.not_after once it has not been seen
/// for the window, and comes back when it is seen again.
#[test]
fn certificate_gauge_forgets_certificates_after_the_window() {
    let r = Rotel::start();
    let exp = exporter(
        OtlpArgs {
            otlp: Some(r.grpc()),
            otlp_protocol: Some("grpc".into()),
            otlp_interval: Some(3600.0),
            otlp_certificate_window: 1.0,
            ..Default::default()
        },
        &[("OTEL_LOGS_EXPORTER", "none")],
    );
    let sink = run_pcap(exp.sink());
    exp.flush().unwrap();
    let d = r.wait("first export", |d| d.metric_exports >= 1);
    assert_eq!(d.last("tls.certificate.not_after").len(), 2);
    assert_eq!(d.last("tls.certificates").len(), 2);
    // Past the window (stream time advances with the wall clock).
    std::thread::sleep(Duration::from_millis(1500));
    exp.flush().unwrap();
    let d = r.wait("second export", |d| d.metric_exports >= 2);
    assert!(d.last("tls.certificate.not_after").is_empty());
    assert!(d.last("tls.certificates").is_empty());
    assert_eq!(
        d.last("tls.handshakes")
            .iter()
            .map(|p| p.value)
            .sum::<f64>(),
        5.0,
        "counters stay"
    );
    run_pcap(sink);
    exp.flush().unwrap();
    let d = r.wait("third export", |d| d.metric_exports >= 3);
    assert_eq!(d.last("tls.certificate.not_after").len(), 2);
    exp.shutdown();
}

/// The collector goes away while records keep coming, then comes back:
/// nothing crashes or blocks, and what the receiver got plus what the drop
/// counter says equals what was emitted.
#[test]
fn collector_outage_is_counted_and_export_resumes() {
    let r = Rotel::start();
    let (grpc, http) = (r.grpc_port, r.http_port);
    let exp = exporter(
        OtlpArgs {
            otlp: Some(r.grpc()),
            otlp_protocol: Some("grpc".into()),
            otlp_interval: Some(3600.0),
            otlp_handshake_logs: true,
            otlp_log_queue: 16,
            ..Default::default()
        },
        &[("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "8")],
    );
    let mut sink = exp.sink();
    // Each pass is a new pipeline: its findings are new, its certificates are
    // not (the exporter deduplicates those).
    let per_pass = (5 + findings_per_pass()) as u64;
    // Up: 4 certificate logs (first sightings), handshake and finding logs.
    sink = run_pcap(sink);
    exp.flush().unwrap();
    let first = 4 + per_pass as usize;
    r.wait("the first pass's log records", |d| d.logs.len() >= first);
    let before = r.stop();
    assert_eq!(before.logs.len(), first);

    // Down: 40 passes.
    for _ in 0..40 {
        sink = run_pcap(sink);
    }
    exp.flush().ok(); // the metric export fails; the log flush returns after its attempt
    let down = exp.report();
    assert_eq!(down.logs_exported, first as u64);
    assert_eq!(down.logs_dropped(), 40 * per_pass, "{down:?}");
    assert!(
        down.logs_dropped_queue_full > 0,
        "the queue filled: {down:?}"
    );
    assert!(down.log_export_failures > 0 && down.metric_export_failures > 0);

    // Back on the same ports.
    let r = Rotel::start_on(grpc, http);
    run_pcap(sink);
    exp.flush().unwrap();
    r.wait("a pass's log records after the outage", |d| {
        d.logs.len() >= per_pass as usize
    });
    let report = exp.shutdown();
    // Two exports reach the new receiver: the flush's and the final one.
    let after = r.wait("the final metric export", |d| d.metric_exports >= 2);
    assert_eq!(after.events("tls.handshake").len(), 5);
    let received = (before.logs.len() + after.logs.len()) as u64;
    let emitted = 4 + 42 * per_pass;
    let dropped: f64 = after
        .last("sensor.export.dropped")
        .iter()
        .map(|p| p.value)
        .sum();
    assert_eq!(dropped as u64, emitted - received);
    assert_eq!(report.logs_dropped(), emitted - received);
    assert_eq!(
        after.last("sensor.export.records")[0].value as u64,
        received
    );
    let failures: f64 = after
        .last("sensor.export.failures")
        .iter()
        .map(|p| p.value)
        .sum();
    assert!(failures >= 2.0);
}

fn openssl(dir: &TempDir, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(&dir.0)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn test_pki(dir: &TempDir) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=otlp test CA",
        "-days",
        "2",
    ]);
    openssl(dir, &a);
    std::fs::write(
        dir.path("srv.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    std::fs::write(dir.path("cli.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ext) in [("srv", "srv.ext"), ("cli", "cli.ext")] {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=otlp test"]);
        openssl(dir, &a);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }
}

/// TLS to the collector with a custom CA: HTTP/protobuf into
/// VictoriaMetrics serving https, gRPC through nginx (TLS, client
/// certificate required) into rotel.
#[test]
fn tls_to_the_collector_with_a_custom_ca() {
    let pki = TempDir::new("pki");
    test_pki(&pki);
    let (ca, srv, key) = (pki.path("ca.pem"), pki.path("srv.pem"), pki.path("srv.key"));
    let vm = Victoria::start(Some((&srv, &key, &ca)));
    let base = vm.otlp_base();
    assert!(base.starts_with("https://"));
    let p = pcap();
    let pcap_arg = p.to_str().unwrap();
    ok(&sensor(
        &[
            "analyze",
            "--otlp",
            &base,
            "--otlp-ca",
            ca.to_str().unwrap(),
            pcap_arg,
        ],
        &[("OTEL_LOGS_EXPORTER", "none")],
    ));
    assert_eq!(vm.value("sum(tls_handshakes_total)"), 5.0);
    // The system roots do not know this CA: the export fails, and says so.
    let o = sensor(
        &["analyze", "--otlp", &base, pcap_arg],
        &[("OTEL_LOGS_EXPORTER", "none")],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("OTLP export incomplete"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // gRPC over TLS with a client certificate, all from OTEL_* variables.
    let r = Rotel::start();
    let port = free_port();
    let ngx = TempDir::new("nginx");
    std::fs::create_dir_all(ngx.path("tmp")).unwrap();
    let d = ngx.0.display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{}}\nhttp {{\n access_log off;\n client_body_temp_path {d}/tmp;\n\
         proxy_temp_path {d}/tmp;\n fastcgi_temp_path {d}/tmp;\n uwsgi_temp_path {d}/tmp;\n\
         scgi_temp_path {d}/tmp;\n server {{\n  listen 127.0.0.1:{port} ssl http2;\n\
         ssl_certificate {srv};\n  ssl_certificate_key {key};\n\
         ssl_client_certificate {ca};\n  ssl_verify_client on;\n\
         location / {{ grpc_pass grpc://127.0.0.1:{grpc}; }}\n }}\n}}\n",
        srv = srv.display(),
        key = key.display(),
        ca = ca.display(),
        grpc = r.grpc_port
    );
    std::fs::write(ngx.path("nginx.conf"), conf).unwrap();
    let _nginx = Proc::spawn(
        "nginx",
        Command::new("nginx")
            .arg("-e")
            .arg(ngx.path("error.log"))
            .arg("-p")
            .arg(&ngx.0)
            .arg("-c")
            .arg(ngx.path("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_listening(port, "nginx to listen");
    let endpoint = format!("https://127.0.0.1:{port}");
    let (cli_pem, cli_key) = (pki.path("cli.pem"), pki.path("cli.key"));
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.to_str().unwrap()),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            cli_pem.to_str().unwrap(),
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", cli_key.to_str().unwrap()),
    ];
    ok(&sensor(&["analyze", pcap_arg], &env));
    let got = r.wait("4 certificate logs through nginx", |d| {
        d.events("tls.certificate").len() >= 4 && d.metric_exports >= 1
    });
    assert_eq!(got.events("tls.certificate").len(), 4);
    // Without the client certificate nginx refuses the connection.
    let o = sensor(&["analyze", pcap_arg], &env[..3]);
    assert!(!o.status.success(), "nginx requires a client certificate");
}

/// Bad configuration stops start-up with the flag or variable named.
#[test]
fn bad_configuration_names_the_key() {
    let p = pcap();
    let f = p.to_str().unwrap();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--otlp-protocol", "grpc"], &[], "--otlp:"),
        (
            &["--otlp", "http://127.0.0.1:1", "--otlp-protocol", "thrift"],
            &[],
            "--otlp-protocol:",
        ),
        (&["--otlp", "127.0.0.1:4317"], &[], "--otlp:"),
        (
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
                ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json"),
            ],
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL:",
        ),
        (
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "authorization"),
            ],
            "OTEL_EXPORTER_OTLP_HEADERS:",
        ),
        (
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:1"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
            ],
            "OTEL_EXPORTER_OTLP_CERTIFICATE:",
        ),
        (
            &["--otlp", "http://127.0.0.1:1", "--otlp-ca", f],
            &[],
            "--otlp-ca:",
        ),
    ];
    for (args, env, key) in cases {
        let mut a = vec!["analyze"];
        a.extend_from_slice(args);
        a.push(f);
        let o = sensor(&a, env);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} {env:?} was accepted");
        assert!(err.contains(key), "{args:?} {env:?}: {err}");
        assert!(o.stdout.is_empty(), "nothing ran");
    }
}

/// `sensor run` exports too: live capture on a namespace's loopback, a real
/// openssl handshake, and rotel (in the same namespace) receives the
/// certificate log, the handshake metric and the sensor's own counters.
#[test]
fn run_exports_live_handshakes_to_rotel() {
    tests::require_root();
    let ns = tests::netns::Netns::new("otlprun");
    ns.sh("ip link set lo up");
    let r = Rotel::start_in(Some(&ns), 14317, 14318);
    let pki = tests::certs::Pki::new();
    pki.leaf("leaf", "run.otlp.test", 0, false);
    let _server = tests::peers::s_server(&ns, &pki, 4460, "leaf", &[]);
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let bin = sensor_bin();
    let mut cmd = ns.cmd(bin.to_str().expect("utf-8"));
    cmd.env("RUST_LOG", "info")
        .env("K8S_NODE_NAME", "n1")
        .args(["run", "--json", "-i", "lo", "--stats-interval", "3600"])
        .args(["--otlp", &r.grpc(), "--otlp-protocol", "grpc"])
        .args(["--otlp-interval", "1", "--cluster-name", "c1"]);
    let mut sensor = tests::proc::Watched::spawn(&mut cmd, out.reopen().expect("reopen"));
    sensor.wait_for("attached", Duration::from_secs(60));
    let client = ns
        .cmd("timeout")
        .args(["10", "openssl", "s_client", "-connect", "127.0.0.1:4460"])
        .args(["-servername", "run.otlp.test", "-tls1_2"])
        .stdin(Stdio::null())
        .output()
        .expect("s_client");
    assert!(client.status.success(), "{client:?}");
    let d = r.wait("the certificate log and live metrics", |d| {
        !d.events("tls.certificate").is_empty()
            && d.last("tls.handshakes").iter().any(|p| p.value >= 1.0)
            && d.last("sensor.packets").iter().any(|p| p.value > 0.0)
    });
    sensor.stop();
    let certs = d.events("tls.certificate");
    assert!(
        certs
            .iter()
            .any(|l| l.attrs.values().any(|v| v.contains("run.otlp.test"))),
        "{certs:#?}"
    );
    let hs = d.last("tls.handshakes");
    assert!(
        hs.iter()
            .any(|p| p.attr("tls.protocol.version").as_deref() == Some("1.2")),
        "{hs:#?}"
    );
    for p in hs {
        check_resource(&p.resource, "tls-sensor");
    }
    let recs = json_lines(&std::fs::read_to_string(out.path()).expect("output"));
    assert_eq!(
        of_kind(&recs, "handshake")
            .iter()
            .filter(|h| h["sni"] == "run.otlp.test")
            .count(),
        1,
        "the JSON lines still reach stdout"
    );
}

/// TCP payload bytes of a capture, as tshark counts them.
fn tshark_payload_bytes(pcap: &Path) -> f64 {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-e", "tcp.len"])
        .output()
        .expect("tshark");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<f64>().ok())
        .sum()
}

/// `tls.traffic.bytes` from a capture: every byte of a TLS connection is
/// encrypted traffic, every byte of plain HTTP is not; the totals are the
/// TCP payload bytes tshark counts in each capture.
#[test]
fn analyze_exports_traffic_bytes_by_encryption() {
    let vm = Victoria::start(None);
    let data = tests::data_dir();
    let (plain, tls) = (
        data.join("plain-http.pcap"),
        data.join("tls12-rsa-chain.pcap"),
    );
    let out = sensor(
        &[
            "analyze",
            "--json",
            "--otlp",
            &vm.otlp_base(),
            "--otlp-protocol",
            "http/protobuf",
            "--inventory",
            data.join("plaintext-pods.yaml").to_str().unwrap(),
            plain.to_str().unwrap(),
            tls.to_str().unwrap(),
        ],
        &[("OTEL_LOGS_EXPORTER", "none")],
    );
    ok(&out);
    // The plaintext flows between the snapshot's pods: one finding line,
    // counted on tls.findings like a handshake's findings.
    let plaintext = vm.query_n(
        "sum by (tls_finding_rule, k8s_dst_owner_name) (tls_findings_total{tls_finding_rule=\"tls.plaintext\"})",
        1,
    );
    assert_eq!(plaintext[0].value, 1.0, "{plaintext:?}");
    let series = vm.query_n("sum by (tls_encrypted) (tls_traffic_bytes_total)", 2);
    let by = |enc: &str| {
        series
            .iter()
            .find(|s| s.labels.get("tls_encrypted").map(String::as_str) == Some(enc))
            .unwrap_or_else(|| panic!("no tls_encrypted={enc}: {series:?}"))
            .value
    };
    assert_eq!(by("false"), tshark_payload_bytes(&plain));
    assert_eq!(by("true"), tshark_payload_bytes(&tls));
}

/// `name: N` inside the Debug text of the exporter's final report (the
/// "OTLP export stopped" line of `sensor run`).
fn report_field(line: &str, name: &str) -> u64 {
    let at = line
        .find(&format!("{name}: "))
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    line[at + name.len() + 2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// `sensor run` exports live handshake logs while the collector restarts:
/// nothing blocks, export resumes by itself when the collector is back on
/// the same address, and every log record made (handshakes, findings,
/// certificates) either reached a receiver or is in the dropped count,
/// which the new receiver also gets as `sensor.export.dropped`.
#[test]
fn run_export_resumes_after_the_collector_restarts_and_counts_what_was_lost() {
    tests::require_root();
    let ns = tests::netns::Netns::new("otlprestart");
    ns.sh("ip link set lo up");
    let (grpc, http) = (14317, 14318);
    let r = Rotel::start_in(Some(&ns), grpc, http);
    let pki = tests::certs::Pki::new();
    pki.leaf("leaf", "restart.otlp.test", 0, false);
    let _server = tests::peers::s_server(&ns, &pki, 4461, "leaf", &[]);
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let bin = sensor_bin();
    let mut cmd = ns.cmd(bin.to_str().expect("utf-8"));
    for (k, _) in std::env::vars() {
        if k.starts_with("OTEL_") {
            cmd.env_remove(k);
        }
    }
    // A small queue and batch, so the outage overflows the queue within a
    // few dozen handshakes instead of thousands.
    cmd.env("RUST_LOG", "info")
        .env("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "8")
        .args(["run", "--json", "-i", "lo", "--stats-interval", "3600"])
        .args(["--otlp", &r.grpc(), "--otlp-protocol", "grpc"])
        .args(["--otlp-interval", "1", "--otlp-handshake-logs"])
        .args(["--otlp-log-queue", "16"]);
    let mut sensor = tests::proc::Watched::spawn(&mut cmd, out.reopen().expect("reopen"));
    sensor.wait_for("attached", Duration::from_secs(60));
    let handshake = |sni: &str| {
        let o = ns
            .cmd("timeout")
            .args(["10", "openssl", "s_client", "-connect", "127.0.0.1:4461"])
            .args(["-servername", sni, "-tls1_2"])
            .stdin(Stdio::null())
            .output()
            .expect("s_client");
        assert!(o.status.success(), "{o:?}");
    };
    let with_sni = |d: &Dump, prefix: &str| {
        d.events("tls.handshake")
            .iter()
            .filter(|l| l.attrs.values().any(|v| v.contains(prefix)))
            .count()
    };
    // Up.
    for i in 0..5 {
        handshake(&format!("up-{i}.restart.test"));
    }
    r.wait("the handshake logs before the outage", |d| {
        with_sni(d, "up-") == 5
    });
    let before = r.stop();
    // Down: more than the queue holds.
    for i in 0..40 {
        handshake(&format!("down-{i}.restart.test"));
    }
    // Not a timing requirement: gives the batch processor (1 s schedule)
    // time to try an export against the closed port.
    std::thread::sleep(Duration::from_secs(3));
    // Back on the same address; the sensor is not told.
    let r = Rotel::start_in(Some(&ns), grpc, http);
    for i in 0..5 {
        handshake(&format!("back-{i}.restart.test"));
    }
    r.wait("the handshake logs after the restart", |d| {
        with_sni(d, "back-") == 5
    });
    let log = sensor.stop();
    let stopped = log
        .iter()
        .find(|l| l.contains("OTLP export stopped"))
        .unwrap_or_else(|| panic!("no final report:\n{}", log.join("\n")));
    let exported = report_field(stopped, "logs_exported");
    let dropped = report_field(stopped, "logs_dropped_queue_full")
        + report_field(stopped, "logs_dropped_export_failed");
    // The final metric export (at shutdown) carries the final count.
    r.wait("the final sensor.export.dropped", |d| {
        let v: f64 = d
            .last("sensor.export.dropped")
            .iter()
            .map(|p| p.value)
            .sum();
        v as u64 == dropped
    });
    let after = r.stop();
    let recs = json_lines(&std::fs::read_to_string(out.path()).expect("output"));
    let made = of_kind(&recs, "handshake")
        .iter()
        .filter(|h| h["server"]["port"] == 4461)
        .count() as u64;
    assert_eq!(made, 50, "every handshake recorded on stdout");
    // Each JSON line of these kinds is one log record (a handshake, each of
    // its findings, a certificate's first sighting): what the sensor made.
    let made_logs: u64 = ["handshake", "finding", "certificate"]
        .iter()
        .map(|k| of_kind(&recs, k).len() as u64)
        .sum();
    let received =
        (before.events("tls.handshake").len() + after.events("tls.handshake").len()) as u64;
    let received_all = (before.logs.len() + after.logs.len()) as u64;
    eprintln!(
        "collector restart: {made_logs} log records made ({made} handshake logs), \
         {received_all} received ({received} handshake logs), {dropped} counted dropped \
         ({} queue full, {} export failed); {exported} exported",
        report_field(stopped, "logs_dropped_queue_full"),
        report_field(stopped, "logs_dropped_export_failed"),
    );
    assert_eq!(received_all, exported, "what the sensor exported arrived");
    assert!(dropped > 0, "the outage lost records: {stopped}");
    assert_eq!(received_all + dropped, made_logs, "{stopped}");
    assert!(made - received <= dropped, "{stopped}");
    assert_eq!(with_sni(&before, "up-"), 5);
    assert_eq!(with_sni(&after, "back-"), 5);
}
