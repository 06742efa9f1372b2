//! Kubernetes and cert-manager correlation end to end: a recorded capture
//! (real openssl peers, certificates from a real PKI) against the same
//! objects read from a snapshot file, listed from an API server, and
//! followed live through its watch streams while the cluster changes and
//! the API server misbehaves.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sensor::analyze::analyze;
use sensor::export::json::JsonLines;
use sensor::inventory::watch::{self, WatchConfig};
use sensor::inventory::{Inventory, InventoryConfig, Kind, Phase, SnapshotOptions};
use sensor::pipeline::PipelineConfig;
use serde_json::{Value, json};
use tests::certs::Pki;
use tests::kube::api::FakeApi;
use tests::kube::objects as o;
use tests::kube::scenario::{
    self, API_IP, API_POD, LEGACY_IP, NODE, assert_table, expected, verdicts,
};
use tests::netns::Netns;
use tests::proc::Watched;
use tests::{json_lines, of_kind, sensor_bin};

fn fixture() -> (PathBuf, PathBuf) {
    let d = scenario::data_dir();
    (d.join("capture.pcap"), d.join("snapshot.yaml"))
}

fn sensor_analyze(args: &[&str]) -> (Vec<Value>, std::process::Output) {
    let out = Command::new(sensor_bin())
        .args(["analyze", "--json"])
        .args(args)
        .output()
        .expect("run sensor");
    let lines = if out.status.success() {
        json_lines(&String::from_utf8_lossy(&out.stdout))
    } else {
        Vec::new()
    };
    (lines, out)
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "sensor failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The pipeline in-process over `pcap`, correlating with `inv`.
fn analyze_with(pcap: &Path, inv: Option<&Inventory>) -> Vec<Value> {
    let cfg = PipelineConfig {
        inventory: inv.cloned(),
        ..PipelineConfig::default()
    };
    let out = analyze(
        &[pcap.to_path_buf()],
        cfg,
        sensor::analysis::Analysis::default(),
        JsonLines::new(Vec::new()),
    );
    assert!(out.failed.is_empty(), "{:?}", out.failed);
    json_lines(&String::from_utf8_lossy(&out.sink.into_inner()))
}

fn loaded(files: &[&Path], read_secrets: bool) -> Inventory {
    let inv = Inventory::new(InventoryConfig {
        read_secrets,
        ..Default::default()
    });
    for f in files {
        inv.load_snapshot(f, &SnapshotOptions::default())
            .expect("snapshot");
    }
    inv
}

fn handshakes(lines: &[Value]) -> Vec<Value> {
    let mut h: Vec<Value> = of_kind(lines, "handshake").into_iter().cloned().collect();
    h.sort_by_key(|v| v["server"].to_string());
    h
}

fn row<'a>(t: &'a [(String, Value)], name: &str) -> &'a Value {
    &t.iter()
        .find(|r| r.0 == name)
        .unwrap_or_else(|| panic!("no row {name}"))
        .1
}

#[test]
fn snapshot_file_gives_the_verdict_table() {
    let (pcap, snap) = fixture();
    let (lines, out) = sensor_analyze(&[
        pcap.to_str().unwrap(),
        "--inventory",
        snap.to_str().unwrap(),
    ]);
    ok(&out);
    let table = verdicts(&lines);
    eprintln!("{}", scenario::render(&table));
    assert_table(&table, &expected());
    // The inferred certificate (TLS 1.3) is in the chain and has its record.
    let web = handshakes(&lines)
        .into_iter()
        .find(|h| h["sni"] == "web.shop.svc")
        .expect("web handshake");
    let fp = web["server_chain"][0]
        .as_str()
        .expect("inferred fingerprint")
        .to_string();
    let certs = of_kind(&lines, "certificate");
    let rec = certs
        .iter()
        .find(|c| c["sha256"] == fp.as_str())
        .expect("certificate record of the inferred leaf");
    assert_eq!(
        rec["san"]["dns"],
        json!(["web.shop.svc", "web.shop.svc.cluster.local"])
    );
    assert_eq!(
        web["cert_manager"]["issuer"],
        json!({"kind": "ClusterIssuer", "name": "shop-ca"})
    );
    assert_eq!(web["cert_manager"]["current_revision"], json!(1));
    assert_eq!(web["cert_manager"]["issuer_type"], json!("ca"));
    assert_eq!(web["cert_manager"]["issuer_ready"], json!(true));
    let stale = handshakes(&lines)
        .into_iter()
        .find(|h| h["sni"] == "payments.shop.svc")
        .unwrap();
    assert_eq!(stale["cert_manager"]["revision"], json!(1));
    assert_eq!(stale["cert_manager"]["current_revision"], json!(2));
    assert_eq!(stale["destination"]["service_account"], json!("payments"));
    assert_eq!(stale["destination"]["node"], json!(NODE));
    // The summary reports what the inventory holds and where it came from.
    let summary = of_kind(&lines, "summary").pop().unwrap().clone();
    let inv = &summary["inventory"];
    assert_eq!(inv["objects"]["pod"], json!(8));
    assert_eq!(inv["objects"]["certificaterequest"], json!(5));
    assert_eq!(inv["sync"]["certificate"]["phase"], json!("snapshot"));
    assert_eq!(inv["objects_rejected"], json!({}));
    // The findings engine reports each inventory finding once per server
    // certificate and window, with the workload and the cert-manager facts.
    let findings = of_kind(&lines, "finding");
    let stale: Vec<&&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "cert.stale")
        .collect();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!(stale[0]["severity"], json!("high"));
    assert_eq!(stale[0]["destination"]["name"], json!("payments-0"));
    assert_eq!(stale[0]["evidence"]["revision"], json!(1));
    assert_eq!(stale[0]["evidence"]["current_revision"], json!(2));
    let unmanaged: Vec<&&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "cert.unmanaged")
        .collect();
    let mut ports: Vec<u64> = unmanaged
        .iter()
        .map(|f| f["server"]["port"].as_u64().unwrap())
        .collect();
    ports.sort();
    // legacy-proxy, node-exporter and the kubelet: each once.
    assert_eq!(ports, [8443, 9100, 10250], "{unmanaged:?}");
    // The cluster's CA bundle is a trust anchor: the cert-manager chains verify.
    assert!(
        !findings
            .iter()
            .any(|f| f["rule"] == "cert.untrusted" && f["sni"] == "api.shop.svc"),
        "{findings:?}"
    );
}

#[test]
fn without_an_inventory_correlation_is_null_but_mesh_is_not() {
    let (pcap, _) = fixture();
    let (lines, out) = sensor_analyze(&[pcap.to_str().unwrap()]);
    ok(&out);
    let hs = handshakes(&lines);
    assert_eq!(hs.len(), scenario::CONNS.len());
    for h in &hs {
        for f in ["source", "destination", "verdict", "cert_manager"] {
            assert!(h[f].is_null(), "{f} without inventory: {h}");
        }
    }
    let meshes: Vec<&Value> = hs
        .iter()
        .map(|h| &h["mesh"])
        .filter(|m| !m.is_null())
        .collect();
    assert_eq!(meshes.len(), 2, "{meshes:?}");
    assert!(of_kind(&lines, "summary")[0].get("inventory").is_none());
}

#[test]
fn snapshot_formats_agree() {
    let (pcap, snap) = fixture();
    let want = verdicts(&analyze_with(&pcap, Some(&loaded(&[&snap], false))));
    assert_table(&want, &expected());
    let objects = scenario::read_snapshot(&snap);
    let dir = tempfile::tempdir().unwrap();
    // kubectl -o json: one List document.
    let json_list = dir.path().join("all.json");
    std::fs::write(
        &json_list,
        serde_json::to_string_pretty(&json!({"apiVersion": "v1", "kind": "List",
        "items": objects, "metadata": {"resourceVersion": ""}}))
        .unwrap(),
    )
    .unwrap();
    // One object per YAML document.
    let per_doc = dir.path().join("docs.yaml");
    let docs: Vec<String> = objects
        .iter()
        .map(|v| serde_norway::to_string(v).unwrap())
        .collect();
    std::fs::write(&per_doc, docs.join("---\n")).unwrap();
    // Typed lists as the API returns them: items without apiVersion/kind,
    // split over two files given as two --inventory flags.
    let strip = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("kind");
        v.as_object_mut().unwrap().remove("apiVersion");
        v
    };
    let typed = |kind: &str, api: &str| {
        json!({"apiVersion": api, "kind": format!("{kind}List"), "metadata": {},
            "items": objects.iter().filter(|v| v["kind"] == kind).map(strip).collect::<Vec<_>>()})
    };
    let nested = dir.path().join("nested.json");
    let a = dir.path().join("core.yaml");
    let b = dir.path().join("rest.yaml");
    std::fs::write(
        &nested,
        serde_json::to_string(&json!({"kind": "List", "apiVersion": "v1", "items": [
        typed("Pod", "v1"), typed("Service", "v1")]}))
        .unwrap(),
    )
    .unwrap();
    let mut rest = vec![
        serde_norway::to_string(&typed("Node", "v1")).unwrap(),
        serde_norway::to_string(&typed("EndpointSlice", "discovery.k8s.io/v1")).unwrap(),
    ];
    for k in [
        "Certificate",
        "CertificateRequest",
        "Issuer",
        "ClusterIssuer",
    ] {
        rest.push(serde_norway::to_string(&typed(k, "cert-manager.io/v1")).unwrap());
    }
    rest.push(serde_norway::to_string(&typed("Bundle", "trust.cert-manager.io/v1alpha1")).unwrap());
    std::fs::write(&b, rest.join("---\n")).unwrap();
    // A List of typed lists is not what kubectl writes: its items are
    // skipped as unknown kinds, not misread.
    let report = Inventory::default()
        .load_snapshot(&nested, &SnapshotOptions::default())
        .unwrap();
    assert_eq!(
        (report.objects, report.ignored.get("PodList")),
        (0, Some(&1))
    );
    std::fs::write(
        &a,
        [
            serde_norway::to_string(&typed("Pod", "v1")).unwrap(),
            serde_norway::to_string(&typed("Service", "v1")).unwrap(),
        ]
        .join("---\n"),
    )
    .unwrap();
    for files in [
        vec![json_list.as_path()],
        vec![per_doc.as_path()],
        vec![a.as_path(), b.as_path()],
    ] {
        let got = verdicts(&analyze_with(&pcap, Some(&loaded(&files, false))));
        assert_table(&got, &want);
    }
}

#[test]
fn bad_snapshot_input_is_an_error_naming_the_file_or_is_skipped() {
    let (pcap, snap) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.yaml");
    std::fs::write(&bad, "apiVersion: v1\nitems: [\n").unwrap();
    let (_, out) = sensor_analyze(&[pcap.to_str().unwrap(), "--inventory", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--inventory") && err.contains("broken.yaml"),
        "{err}"
    );
    let (_, out) = sensor_analyze(&[pcap.to_str().unwrap(), "--inventory", "/nonexistent.yaml"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.yaml"));
    // Unreadable objects among good ones: counted and skipped, the rest works.
    let mut objects = scenario::read_snapshot(&snap);
    objects.push(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad", "namespace": "shop"},
        "spec": {"containers": "none"}}),
    );
    objects.push(json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"namespace": "shop"}}));
    objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "shop"}}));
    let mixed = dir.path().join("mixed.json");
    std::fs::write(
        &mixed,
        serde_json::to_string(&json!({"kind": "List", "apiVersion": "v1", "items": objects}))
            .unwrap(),
    )
    .unwrap();
    let (lines, out) = sensor_analyze(&[
        pcap.to_str().unwrap(),
        "--inventory",
        mixed.to_str().unwrap(),
    ]);
    ok(&out);
    assert_table(&verdicts(&lines), &expected());
    let summary = of_kind(&lines, "summary").pop().unwrap().clone();
    assert_eq!(
        summary["inventory"]["objects_rejected"],
        json!({"Pod_bad_field": 1, "Certificate_no_name": 1})
    );
    // A bound on the inventory drops objects and says so.
    let (lines, out) = sensor_analyze(&[
        pcap.to_str().unwrap(),
        "--inventory",
        snap.to_str().unwrap(),
        "--inventory-max-objects",
        "5",
    ]);
    ok(&out);
    let summary = of_kind(&lines, "summary").pop().unwrap().clone();
    let total: u64 = summary["inventory"]["objects"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 5);
    assert_eq!(summary["inventory"]["objects_dropped"], json!(20));
}

fn fast() -> WatchConfig {
    WatchConfig {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        page_size: 4,
        ..WatchConfig::default()
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn phase(inv: &Inventory, kind: Kind) -> Option<Phase> {
    inv.sync().get(kind).map(|s| s.phase)
}

fn all_synced(inv: &Inventory, kinds: &[Kind]) -> bool {
    kinds.iter().all(|k| phase(inv, *k) == Some(Phase::Synced))
}

async fn serve_snapshot(snap: &Path) -> FakeApi {
    let api = FakeApi::start().await;
    for obj in scenario::read_snapshot(snap) {
        api.apply(obj);
    }
    api
}

fn lists_of(api: &FakeApi, path: &str) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.starts_with(&format!("{path}?")) && !r.contains("watch=true"))
        .filter(|r| !r.contains("continue="))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_with_kubeconfig_equals_the_snapshot_file() {
    let (pcap, snap) = fixture();
    let api = serve_snapshot(&snap).await;
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path());
    let (p, s, k) = (pcap.clone(), snap.clone(), kc.clone());
    let (from_file, from_api, wrong_context, bad_kc) = tokio::task::spawn_blocking(move || {
        let a = sensor_analyze(&[p.to_str().unwrap(), "--inventory", s.to_str().unwrap()]);
        let b = sensor_analyze(&[p.to_str().unwrap(), "--kubeconfig", k.to_str().unwrap()]);
        let c = sensor_analyze(&[
            p.to_str().unwrap(),
            "--kubeconfig",
            k.to_str().unwrap(),
            "--context",
            "elsewhere",
            "--kube-timeout",
            "2",
        ]);
        let d = sensor_analyze(&[
            p.to_str().unwrap(),
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ]);
        (a, b, c, d)
    })
    .await
    .unwrap();
    ok(&from_file.1);
    ok(&from_api.1);
    // Every handshake and certificate record is identical, not only the verdicts.
    assert_eq!(handshakes(&from_file.0), handshakes(&from_api.0));
    assert_eq!(
        of_kind(&from_file.0, "certificate"),
        of_kind(&from_api.0, "certificate")
    );
    assert_table(&verdicts(&from_api.0), &expected());
    let summary = of_kind(&from_api.0, "summary").pop().unwrap().clone();
    assert_eq!(
        summary["inventory"]["sync"]["pod"]["phase"],
        json!("synced")
    );
    assert!(lists_of(&api, "/api/v1/pods") >= 1);
    assert!(
        !api.requests()
            .iter()
            .any(|r| r.starts_with("/api/v1/secrets"))
    );
    assert!(!wrong_context.1.status.success());
    let err = String::from_utf8_lossy(&wrong_context.1.stderr);
    assert!(err.contains("did not list") && err.contains("Pod"), "{err}");
    assert!(!bad_kc.1.status.success());
    assert!(
        String::from_utf8_lossy(&bad_kc.1.stderr).contains("--kubeconfig /nonexistent/kubeconfig")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_watch_follows_the_cluster_and_survives_the_api_server() {
    let (pcap, snap) = fixture();
    let api = serve_snapshot(&snap).await;
    // trust-manager not installed yet.
    api.set_served("trust.cert-manager.io/v1alpha1", "Bundle", false);
    let dir = tempfile::tempdir().unwrap();
    let cfg = WatchConfig {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..fast()
    };
    let inv = Inventory::default();
    // Nothing listed yet: no answers rather than wrong ones.
    let before = handshakes(&analyze_with(&pcap, Some(&inv)));
    assert!(
        before
            .iter()
            .all(|h| h["destination"].is_null() && h["verdict"].is_null())
    );
    let client = watch::client(&cfg).await.expect("client");
    let _watches = watch::start(client, &inv, &cfg);
    let core = [
        Kind::Pod,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Node,
        Kind::Certificate,
        Kind::CertificateRequest,
        Kind::Issuer,
        Kind::ClusterIssuer,
    ];
    until("first sync", || all_synced(&inv, &core)).await;
    assert_table(&verdicts(&analyze_with(&pcap, Some(&inv))), &expected());
    // Paged lists: 8 pods at 4 a page.
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("/api/v1/pods?") && r.contains("continue="))
    );

    // A missing CRD: reported, retried, picked up once installed.
    until("bundle missing", || {
        phase(&inv, Kind::Bundle) == Some(Phase::Missing)
    })
    .await;
    assert!(inv.trust_pems().is_empty());
    api.set_served("trust.cert-manager.io/v1alpha1", "Bundle", true);
    until("bundle synced", || {
        phase(&inv, Kind::Bundle) == Some(Phase::Synced)
    })
    .await;
    let pems = inv.trust_pems();
    assert_eq!(pems.len(), 1);
    assert!(pems[0].starts_with("-----BEGIN CERTIFICATE-----"));

    // Renewal: cert-manager issues revision 3 of shop/api; the workload
    // still serves revision 2, which becomes stale.
    let pki = Pki::new();
    pki.leaf_sans(
        "api-3",
        "api.shop.svc",
        &["DNS:api.shop.svc", "DNS:api.shop.svc.cluster.local"],
    );
    let pem3 = pki.read("api-3.pem");
    api.apply(o::certificate_request(&o::RequestSpec {
        namespace: "shop",
        name: "api-r3q8w",
        certificate: "api",
        revision: 3,
        issuer: ("ClusterIssuer", "shop-ca"),
        csr_pem: &pki.read("api-3.csr"),
        chain_pem: &pem3,
        ca_pem: &pki.read("root.pem"),
        issued_at: 1_780_000_000,
    }));
    let mut cert = scenario::read_snapshot(&snap)
        .into_iter()
        .find(|v| v["kind"] == "Certificate" && v["metadata"]["name"] == "api")
        .unwrap();
    cert["status"]["revision"] = json!(3);
    api.apply(cert);
    until("api stale", || {
        row(&verdicts(&analyze_with(&pcap, Some(&inv))), "api")["verdict"] == "stale"
    })
    .await;
    let t = verdicts(&analyze_with(&pcap, Some(&inv)));
    assert_eq!(row(&t, "api")["certificate"], "shop/api@2");
    assert_eq!(row(&t, "api")["findings"], json!(["cert.stale"]));
    assert_eq!(row(&t, "service")["verdict"], "stale");
    let fp3 = sensor::inventory::first_leaf(pem3.as_bytes())
        .unwrap()
        .sha256;
    let issued = inv.read().issued(&fp3).expect("revision 3 known");
    assert_eq!((issued.revision, issued.is_stale()), (Some(3), false));

    // A pod IP reused: the api pod is replaced by a newer one on the same IP
    // while the old object still exists (terminating), then the old one goes.
    let mut pods: Vec<Value> = scenario::read_snapshot(&snap)
        .into_iter()
        .filter(|v| v["kind"] == "Pod")
        .collect();
    let old = pods
        .iter_mut()
        .find(|v| v["metadata"]["name"] == API_POD)
        .unwrap()
        .clone();
    let mut newer = old.clone();
    newer["metadata"]["name"] = json!("api-5c8d7b9f4-zz9xq");
    newer["metadata"]["uid"] = json!("11111111-2222-4333-8444-555555555555");
    newer["metadata"]["creationTimestamp"] = json!("2026-01-13T10:00:00Z");
    let mut terminating = old.clone();
    terminating["metadata"]["deletionTimestamp"] = json!("2026-01-13T10:00:05Z");
    api.apply(terminating);
    api.apply(newer);
    until("ip reused", || {
        row(&verdicts(&analyze_with(&pcap, Some(&inv))), "api")["destination"]
            == "pod:api-5c8d7b9f4-zz9xq"
    })
    .await;
    api.delete("v1", "Pod", "shop", API_POD);
    until("old pod gone", || {
        inv.read()
            .identify(API_IP.parse().unwrap(), None)
            .name
            .as_deref()
            == Some("api-5c8d7b9f4-zz9xq")
    })
    .await;

    // Bookmarks: the resourceVersion moves on elsewhere; a bookmark carries
    // it to the quiet ClusterIssuer watch, which resumes from it (watches
    // end after a bookmark here, so the next request shows what was kept).
    api.advance(100);
    let bookmark_rv = api.resource_version();
    let seen = api.requests().len();
    api.bookmark();
    let is_issuer_watch = |r: &String| {
        r.starts_with("/apis/cert-manager.io/v1/clusterissuers?") && r.contains("watch=true")
    };
    until("clusterissuers re-watched", || {
        api.requests()[seen..].iter().any(is_issuer_watch)
    })
    .await;
    let rewatch = api.requests()[seen..]
        .iter()
        .find(|r| is_issuer_watch(r))
        .unwrap()
        .clone();
    assert!(
        rewatch.contains(&format!("resourceVersion={bookmark_rv}")),
        "{rewatch}"
    );
    // Compaction up to the bookmark does not force a relist after a drop.
    let issuer_lists = lists_of(&api, "/apis/cert-manager.io/v1/clusterissuers");
    api.compact();
    let seen = api.requests().len();
    api.drop_connections();
    until("clusterissuers re-watched after drop", || {
        api.requests()[seen..].iter().any(is_issuer_watch)
    })
    .await;
    let rewatch = api.requests()[seen..]
        .iter()
        .find(|r| is_issuer_watch(r))
        .unwrap()
        .clone();
    assert!(
        rewatch.contains(&format!("resourceVersion={bookmark_rv}")),
        "{rewatch}"
    );
    assert_eq!(
        lists_of(&api, "/apis/cert-manager.io/v1/clusterissuers"),
        issuer_lists
    );

    // A dropped connection: events made meanwhile arrive from the backlog.
    api.drop_connections();
    api.apply(o::node("kind-worker2", &["172.18.0.4"]));
    until("node after drop", || {
        inv.read()
            .identify("172.18.0.4".parse().unwrap(), None)
            .name
            .as_deref()
            == Some("kind-worker2")
    })
    .await;

    // 410 Gone forces a relist: the API server goes down, the legacy pod is
    // deleted and the history compacted while nobody watches.
    let pod_lists = lists_of(&api, "/api/v1/pods");
    api.stop();
    until("failing while down", || {
        phase(&inv, Kind::Pod) == Some(Phase::Failing)
    })
    .await;
    // The last state is kept and still answers.
    let down = verdicts(&analyze_with(&pcap, Some(&inv)));
    assert_eq!(row(&down, "legacy")["verdict"], "unmanaged");
    assert_eq!(row(&down, "payments")["verdict"], "stale");
    let s = inv.stats();
    assert!(s.sync[&Kind::Pod].synced_once && s.sync[&Kind::Pod].last_error.is_some());
    api.delete("v1", "Pod", "shop", "legacy-proxy-8kq2m");
    api.compact();
    api.restart().await;
    until("relisted after 410", || {
        lists_of(&api, "/api/v1/pods") > pod_lists
    })
    .await;
    until("resynced", || all_synced(&inv, &core)).await;
    until("legacy gone", || {
        inv.read().identify(LEGACY_IP.parse().unwrap(), None).kind
            == sensor::inventory::PeerKind::External
    })
    .await;
    let after = verdicts(&analyze_with(&pcap, Some(&inv)));
    assert_eq!(row(&after, "legacy")["verdict"], "external");
    assert_eq!(row(&after, "api")["verdict"], "stale");
    assert_eq!(
        row(&after, "kubelet")["destination"],
        format!("node:{NODE}")
    );
    assert!(inv.stats().index.relist_removed >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cert_manager_in_cluster_certificates_are_unmanaged() {
    let (pcap, snap) = fixture();
    let api = FakeApi::start().await;
    for obj in scenario::read_snapshot(&snap) {
        if !obj["apiVersion"]
            .as_str()
            .unwrap()
            .contains("cert-manager.io")
        {
            api.apply(obj);
        }
    }
    for kind in [
        "Certificate",
        "CertificateRequest",
        "Issuer",
        "ClusterIssuer",
    ] {
        api.set_served("cert-manager.io/v1", kind, false);
    }
    api.set_served("trust.cert-manager.io/v1alpha1", "Bundle", false);
    let dir = tempfile::tempdir().unwrap();
    let cfg = WatchConfig {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..fast()
    };
    let inv = Inventory::default();
    watch::list_once(&inv, &cfg, Duration::from_secs(60))
        .await
        .expect("list");
    assert_eq!(phase(&inv, Kind::CertificateRequest), Some(Phase::Missing));
    let t = verdicts(&analyze_with(&pcap, Some(&inv)));
    for (name, verdict) in [
        ("api", json!("unmanaged")),
        ("payments", json!("unmanaged")),
        ("service", json!("unmanaged")),
        ("external", json!("external")),
        ("web", Value::Null),
    ] {
        assert_eq!(row(&t, name)["verdict"], verdict, "{name}");
    }
    assert_eq!(row(&t, "api")["findings"], json!(["cert.unmanaged"]));
    assert_eq!(row(&t, "web")["certificate_source"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_secrets_only_when_asked_and_without_their_keys() {
    let (_, snap) = fixture();
    let pki = Pki::new();
    pki.leaf_sans("api-2", "api.shop.svc", &["DNS:api.shop.svc"]);
    let api = serve_snapshot(&snap).await;
    let crt = pki.read("api-2.pem");
    api.apply(o::tls_secret(
        "shop",
        "api-tls",
        "api",
        ("ClusterIssuer", "shop-ca"),
        &crt,
        &pki.read("api-2.key"),
        &pki.read("root.pem"),
    ));
    api.apply(json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db-password", "namespace": "shop"}, "data": {"password": o::b64(b"hunter2")}}));
    let dir = tempfile::tempdir().unwrap();
    let cfg = WatchConfig {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..fast()
    };
    let without = Inventory::default();
    watch::list_once(&without, &cfg, Duration::from_secs(60))
        .await
        .expect("list");
    assert!(
        !api.requests()
            .iter()
            .any(|r| r.starts_with("/api/v1/secrets"))
    );
    let with = Inventory::new(InventoryConfig {
        read_secrets: true,
        ..Default::default()
    });
    watch::list_once(&with, &cfg, Duration::from_secs(60))
        .await
        .expect("list");
    let secret_requests: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("/api/v1/secrets"))
        .collect();
    assert!(
        secret_requests
            .iter()
            .all(|r| r.contains("fieldSelector=type%3Dkubernetes.io%2Ftls")),
        "{secret_requests:?}"
    );
    assert_eq!(with.stats().index.objects.get(&Kind::Secret), Some(&1));
    // The Secret names its Certificate: the served certificate is managed
    // at the Certificate's current revision even without its request.
    let fp = sensor::inventory::first_leaf(crt.as_bytes())
        .unwrap()
        .sha256;
    let issued = with.read().issued(&fp).expect("found through the Secret");
    assert_eq!((issued.via, issued.revision), (Kind::Secret, Some(2)));
    assert!(with.trust_pems().iter().any(|p| p == &pki.read("root.pem")));
    assert!(without.read().issued(&fp).is_none());
}

/// Needs root: records the scenario afresh (new PKI, new capture, new
/// snapshot) and checks it gives the same table as the committed fixture.
#[test]
fn fresh_capture_and_snapshot_give_the_same_table() {
    tests::require_root();
    let dir = tempfile::tempdir().unwrap();
    let (pcap, snap) = generate(dir.path());
    let (lines, out) = sensor_analyze(&[
        pcap.to_str().unwrap(),
        "--inventory",
        snap.to_str().unwrap(),
    ]);
    ok(&out);
    assert_table(&verdicts(&lines), &expected());
}

/// Needs root: `sensor run` in a network namespace, watching the fake API
/// server (reached inside that namespace) while the scenario's traffic
/// crosses loopback: the live daemon gets the same table.
#[test]
fn sensor_run_watching_the_api_correlates_live_traffic() {
    tests::require_root();
    let pki = scenario::make_pki();
    let ns = Netns::new("kr");
    scenario::add_addresses(&ns);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeApi::start_in_netns(&ns.name));
    for obj in scenario::objects(&pki) {
        api.apply(obj);
    }
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path());
    let out = tempfile::NamedTempFile::new().unwrap();
    let bin = sensor_bin();
    let mut cmd = ns.cmd(bin.to_str().unwrap());
    cmd.env("RUST_LOG", "info")
        .args([
            "run",
            "--json",
            "--stats-interval",
            "3600",
            "-i",
            "lo",
            "--health-listen",
            "127.0.0.1:19878",
            "--kubeconfig",
        ])
        .arg(&kc);
    let mut sensor = Watched::spawn(&mut cmd, out.reopen().unwrap());
    sensor.wait_for("attached", Duration::from_secs(60));
    // Every followed kind listed (no Secrets without --read-secrets).
    for _ in 0..9 {
        sensor.wait_for("inventory synced", Duration::from_secs(60));
    }
    // Ready: attached and listed (the flag is refreshed every second).
    let start = std::time::Instant::now();
    while readyz(&ns, 19878).0 != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            readyz(&ns, 19878)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    scenario::play(&ns, &pki);
    std::thread::sleep(Duration::from_millis(300));
    sensor.stop();
    let lines = json_lines(&std::fs::read_to_string(out.path()).unwrap());
    assert_table(&verdicts(&lines), &expected());
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("/api/v1/pods?") && r.contains("watch=true"))
    );
    drop(rt);
}

/// `/readyz` on `port` in `ns`: status and body.
fn readyz(ns: &Netns, port: u16) -> (u16, String) {
    let out = ns
        .cmd("curl")
        .args(["-s", "--max-time", "5", "-w", "\\n%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/readyz"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// With live watches, the sensor is not ready until the inventory is
/// listed: here the API server is gone, so attached is not enough.
#[test]
fn not_ready_while_the_inventory_is_not_listed() {
    tests::require_root();
    let ns = Netns::new("kn");
    ns.sh("ip link set lo up");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(FakeApi::start_in_netns(&ns.name));
    let dir = tempfile::tempdir().unwrap();
    let kc = api.kubeconfig(dir.path());
    api.stop();
    let out = tempfile::NamedTempFile::new().unwrap();
    let bin = sensor_bin();
    let mut cmd = ns.cmd(bin.to_str().unwrap());
    cmd.env("RUST_LOG", "info")
        .args(["run", "--json", "--stats-interval", "3600", "-i", "lo"])
        .args(["--health-listen", "127.0.0.1:19879", "--kubeconfig"])
        .arg(&kc);
    let mut sensor = Watched::spawn(&mut cmd, out.reopen().unwrap());
    sensor.wait_for("attached", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500));
    let (code, body) = readyz(&ns, 19879);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("inventory not synced"), "{body}");
    sensor.stop();
    drop(rt);
}

fn generate(dir: &Path) -> (PathBuf, PathBuf) {
    let pki = scenario::make_pki();
    let pcap = dir.join("capture.pcap");
    let snap = dir.join("snapshot.yaml");
    scenario::record_capture(&pki, &pcap);
    std::fs::write(&snap, scenario::snapshot_yaml(&scenario::objects(&pki))).unwrap();
    (pcap, snap)
}

/// Rewrites tests/data/kube/ (root): `cargo test -p tests --test kube -- --ignored regenerate_fixture`.
#[test]
#[ignore]
fn regenerate_fixture() {
    tests::require_root();
    let d = scenario::data_dir();
    std::fs::create_dir_all(&d).unwrap();
    generate(&d);
}
