//! The correlation test scenario: one node, namespace `shop`, cert-manager
//! with a CA ClusterIssuer, eleven TLS connections recorded on loopback in
//! a network namespace, and the verdict each must get.
//!
//! `cargo test -p tests --test kube -- --ignored regenerate_fixture`
//! rewrites tests/data/kube/ (capture.pcap, snapshot.yaml) from scratch.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::objects::{self as o, CertSpec, Owner, PodSpec, RequestSpec};
use crate::certs::Pki;
use crate::netns::{Netns, Tcpdump};
use crate::proc::Reaped;

pub const NODE: &str = "kind-worker";
pub const NODE_IP: &str = "172.18.0.3";
pub const FRONTEND_IP: &str = "10.244.1.10";
pub const FRONTEND_IP6: &str = "fd00:10:244:1::10";
pub const API_IP: &str = "10.244.1.20";
pub const PAYMENTS_IP: &str = "10.244.1.30";
pub const LEGACY_IP: &str = "10.244.1.40";
pub const WEB_IP: &str = "10.244.1.50";
pub const WEB_IP6: &str = "fd00:10:244:1::50";
pub const REPORT_IP: &str = "10.244.1.60";
pub const API_SVC_IP: &str = "10.96.0.20";
pub const EXTERNAL_IP: &str = "198.51.100.7";
const ISSUER: (&str, &str) = ("ClusterIssuer", "shop-ca");

pub const API_POD: &str = "api-5c8d7b9f4-q7w2e";
pub const FRONTEND_POD: &str = "frontend-7d9c8b6f5-k2x4v";

pub fn data_dir() -> PathBuf {
    crate::workspace_root().join("tests/data/kube")
}

/// One recorded connection.
pub struct Conn {
    pub name: &'static str,
    pub client: &'static str,
    pub server: &'static str,
    pub port: u16,
    pub sni: Option<&'static str>,
    pub alpn: &'static [&'static str],
    pub tls13: bool,
    /// The PKI certificate the server presents.
    pub cert: &'static str,
}

pub const CONNS: [Conn; 11] = [
    Conn {
        name: "api",
        client: FRONTEND_IP,
        server: API_IP,
        port: 8443,
        sni: Some("api.shop.svc"),
        alpn: &["h2", "http/1.1"],
        tls13: false,
        cert: "api-2",
    },
    Conn {
        name: "payments",
        client: FRONTEND_IP,
        server: PAYMENTS_IP,
        port: 8443,
        sni: Some("payments.shop.svc"),
        alpn: &[],
        tls13: false,
        cert: "payments-1",
    },
    Conn {
        name: "legacy",
        client: REPORT_IP,
        server: LEGACY_IP,
        port: 8443,
        sni: Some("legacy.shop.svc"),
        alpn: &[],
        tls13: false,
        cert: "legacy",
    },
    Conn {
        name: "external",
        client: FRONTEND_IP,
        server: EXTERNAL_IP,
        port: 443,
        sni: Some("www.example.test"),
        alpn: &["h2"],
        tls13: false,
        cert: "external",
    },
    Conn {
        name: "web",
        client: FRONTEND_IP,
        server: WEB_IP,
        port: 8443,
        sni: Some("web.shop.svc"),
        alpn: &["h2"],
        tls13: true,
        cert: "web-1",
    },
    Conn {
        name: "web6",
        client: FRONTEND_IP6,
        server: WEB_IP6,
        port: 8443,
        sni: Some("web.shop.svc.cluster.local"),
        alpn: &[],
        tls13: true,
        cert: "web-1",
    },
    Conn {
        name: "service",
        client: FRONTEND_IP,
        server: API_SVC_IP,
        port: 443,
        sni: Some("api.shop.svc"),
        alpn: &[],
        tls13: false,
        cert: "api-2",
    },
    Conn {
        name: "kubelet",
        client: FRONTEND_IP,
        server: NODE_IP,
        port: 10250,
        sni: None,
        alpn: &[],
        tls13: false,
        cert: "kubelet",
    },
    Conn {
        name: "node-exporter",
        client: FRONTEND_IP,
        server: NODE_IP,
        port: 9100,
        sni: None,
        alpn: &[],
        tls13: false,
        cert: "exporter",
    },
    Conn {
        name: "istio",
        client: FRONTEND_IP,
        server: API_IP,
        port: 15006,
        sni: Some("outbound_.8443_._.api.shop.svc.cluster.local"),
        alpn: &["istio-peer-exchange", "istio"],
        tls13: true,
        cert: "api-2",
    },
    Conn {
        name: "linkerd",
        client: FRONTEND_IP,
        server: API_IP,
        port: 4143,
        sni: Some("api.shop.serviceaccount.identity.linkerd.cluster.local"),
        alpn: &["transport.l5d.io/v1"],
        tls13: true,
        cert: "api-2",
    },
];

/// The certificates of the scenario.
pub fn make_pki() -> Pki {
    let pki = Pki::new();
    let api = ["DNS:api.shop.svc", "DNS:api.shop.svc.cluster.local"];
    pki.leaf_sans("api-1", "api.shop.svc", &api);
    pki.leaf_sans("api-2", "api.shop.svc", &api);
    let pay = ["DNS:payments.shop.svc"];
    pki.leaf_sans("payments-1", "payments.shop.svc", &pay);
    pki.leaf_sans("payments-2", "payments.shop.svc", &pay);
    pki.leaf_sans(
        "web-1",
        "web.shop.svc",
        &["DNS:web.shop.svc", "DNS:web.shop.svc.cluster.local"],
    );
    pki.leaf_sans("external", "www.example.test", &["DNS:www.example.test"]);
    pki.self_signed("legacy", "legacy.shop.svc");
    pki.self_signed("kubelet", NODE);
    pki.self_signed("exporter", "node-exporter");
    pki
}

fn validity(pem: &str) -> (i64, i64) {
    let leaf = sensor::inventory::first_leaf(pem.as_bytes()).expect("a PEM certificate");
    let info = sensor::x509::describe(&leaf.der);
    (info.not_before, info.not_after)
}

/// Every object of the scenario, cert-manager's included; TLS Secrets
/// (with their private keys) come separately, see [`secrets`].
pub fn objects(pki: &Pki) -> Vec<Value> {
    let ca = pki.read("root.pem");
    let int = pki.read("int.pem");
    let mut v = vec![o::node(NODE, &[NODE_IP])];
    let pod = |ns,
               name,
               ips,
               sa,
               owner,
               secrets,
               projected,
               ports: &[u16],
               host: bool,
               phase,
               created| {
        o::pod(&PodSpec {
            namespace: ns,
            name,
            ips,
            node: NODE,
            host_ip: NODE_IP,
            service_account: sa,
            owner,
            secrets,
            projected_secrets: projected,
            ports,
            host_network: host,
            phase,
            created,
        })
    };
    v.push(pod(
        "shop",
        FRONTEND_POD,
        &[FRONTEND_IP, FRONTEND_IP6],
        "frontend",
        Owner::Deployment("frontend", "7d9c8b6f5"),
        &[],
        &[],
        &[8080],
        false,
        "Running",
        o::CREATED,
    ));
    v.push(pod(
        "shop",
        API_POD,
        &[API_IP],
        "api",
        Owner::Deployment("api", "5c8d7b9f4"),
        &["api-tls"],
        &[],
        &[8443, 15006, 4143],
        false,
        "Running",
        "2026-01-12T09:00:00Z",
    ));
    // A finished Job pod that held the api pod's IP before: the live pod wins.
    v.push(pod(
        "shop",
        "migrate-db-x8v2k",
        &[API_IP],
        "default",
        Owner::Job("migrate-db"),
        &[],
        &[],
        &[],
        false,
        "Succeeded",
        "2026-01-12T08:40:00Z",
    ));
    v.push(pod(
        "shop",
        "payments-0",
        &[PAYMENTS_IP],
        "payments",
        Owner::StatefulSet("payments"),
        &[],
        &["payments-tls"],
        &[8443],
        false,
        "Running",
        o::CREATED,
    ));
    v.push(pod(
        "shop",
        "legacy-proxy-8kq2m",
        &[LEGACY_IP],
        "default",
        Owner::DaemonSet("legacy-proxy"),
        &["legacy-cert"],
        &[],
        &[8443],
        false,
        "Running",
        o::CREATED,
    ));
    v.push(pod(
        "shop",
        "web-6f9b8d7c5-m4n8p",
        &[WEB_IP, WEB_IP6],
        "web",
        Owner::Deployment("web", "6f9b8d7c5"),
        &["web-tls"],
        &[],
        &[8443],
        false,
        "Running",
        o::CREATED,
    ));
    v.push(pod(
        "shop",
        "report-29467380-h5j9c",
        &[REPORT_IP],
        "report",
        Owner::CronJob("report", "29467380"),
        &[],
        &[],
        &[],
        false,
        "Running",
        o::CREATED,
    ));
    v.push(pod(
        "monitoring",
        "node-exporter-x7k2p",
        &[NODE_IP],
        "node-exporter",
        Owner::DaemonSet("node-exporter"),
        &[],
        &[],
        &[9100],
        true,
        "Running",
        o::CREATED,
    ));
    v.push(o::service("shop", "api", &[API_SVC_IP], &[443]));
    v.push(o::service(
        "shop",
        "web",
        &["10.96.0.30", "fd00:10:96::30"],
        &[443],
    ));
    v.push(o::service("default", "kubernetes", &["10.96.0.1"], &[443]));
    v.push(o::endpoint_slice(
        "shop",
        "api-7xq2d",
        "api",
        &[(API_IP, API_POD, NODE)],
        8443,
    ));
    v.push(o::endpoint_slice(
        "default",
        "kubernetes",
        "kubernetes",
        &[("172.18.0.2", "", "")],
        6443,
    ));
    v.push(o::cluster_issuer(ISSUER.1, "shop-ca-key-pair"));
    v.push(o::issuer_self_signed("shop", "bootstrap"));
    for (name, dns, secret, revisions, current, renewal_failed) in [
        (
            "api",
            &["api.shop.svc", "api.shop.svc.cluster.local"][..],
            "api-tls",
            &["x7k2p", "9b4tz"][..],
            2u64,
            false,
        ),
        (
            "payments",
            &["payments.shop.svc"][..],
            "payments-tls",
            &["4hq8d", "c2w6n"][..],
            2,
            false,
        ),
        (
            "web",
            &["web.shop.svc", "web.shop.svc.cluster.local"][..],
            "web-tls",
            &["m8r5s"][..],
            1,
            true,
        ),
    ] {
        let current_pem = pki.read(&format!("{name}-{current}.pem"));
        let (nb, na) = validity(&current_pem);
        v.push(o::certificate(&CertSpec {
            namespace: "shop",
            name,
            dns,
            secret,
            issuer: ISSUER,
            revision: current,
            not_before: nb,
            not_after: na,
            // web: cert-manager tried to renew and failed, the renewal time is past.
            renewal_time: if renewal_failed { nb } else { na - 30 * 86400 },
            renewal_failed,
        }));
        for (i, suffix) in revisions.iter().enumerate() {
            let rev = i as u64 + 1;
            let pem = pki.read(&format!("{name}-{rev}.pem"));
            v.push(o::certificate_request(&RequestSpec {
                namespace: "shop",
                name: &format!("{name}-{suffix}"),
                certificate: name,
                revision: rev,
                issuer: ISSUER,
                csr_pem: &pki.read(&format!("{name}-{rev}.csr")),
                chain_pem: &format!("{pem}{int}"),
                ca_pem: &ca,
                issued_at: validity(&pem).0,
            }));
        }
    }
    v.push(o::bundle("shop-trust", &ca));
    v
}

/// cert-manager's TLS Secrets, private keys included (as the API sends them).
pub fn secrets(pki: &Pki) -> Vec<Value> {
    let ca = pki.read("root.pem");
    let int = pki.read("int.pem");
    let mut v: Vec<Value> = [
        ("api", "api-2"),
        ("payments", "payments-2"),
        ("web", "web-1"),
    ]
    .iter()
    .map(|(cert, file)| {
        o::tls_secret(
            "shop",
            &format!("{cert}-tls"),
            cert,
            ISSUER,
            &format!("{}{int}", pki.read(&format!("{file}.pem"))),
            &pki.read(&format!("{file}.key")),
            &ca,
        )
    })
    .collect();
    v.push(json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db-password", "namespace": "shop"}, "data": {"password": o::b64(b"hunter2")}}));
    v
}

/// `kubectl get pods,services,endpointslices,nodes -A -o yaml` then the
/// cert-manager kinds, as two `kind: List` documents, then one object.
pub fn snapshot_yaml(objects: &[Value]) -> String {
    let strip = |v: &Value| {
        let mut v = v.clone();
        v["metadata"]["resourceVersion"] = json!("1");
        v
    };
    let core: Vec<Value> = objects
        .iter()
        .filter(|v| v["apiVersion"] == "v1" || v["apiVersion"] == "discovery.k8s.io/v1")
        .map(strip)
        .collect();
    let cm: Vec<Value> = objects
        .iter()
        .filter(|v| v["apiVersion"] == "cert-manager.io/v1")
        .map(strip)
        .collect();
    let rest: Vec<Value> = objects
        .iter()
        .filter(|v| {
            v["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("trust."))
        })
        .map(strip)
        .collect();
    let list = |items: Vec<Value>| json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}});
    let mut docs = vec![
        serde_norway::to_string(&list(core)).expect("yaml"),
        serde_norway::to_string(&list(cm)).expect("yaml"),
    ];
    docs.extend(
        rest.iter()
            .map(|v| serde_norway::to_string(v).expect("yaml")),
    );
    docs.join("---\n")
}

/// Objects back from a snapshot file (as JSON values with apiVersion/kind).
pub fn read_snapshot(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read snapshot");
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("snapshot YAML"))
        .filter(|d| !d.is_null())
        .flat_map(|d| match d.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => vec![d],
        })
        .collect()
}

/// Gives the namespace's loopback every address of the scenario.
pub fn add_addresses(ns: &Netns) {
    let mut script = String::new();
    for ip in [
        NODE_IP,
        FRONTEND_IP,
        API_IP,
        PAYMENTS_IP,
        LEGACY_IP,
        WEB_IP,
        REPORT_IP,
        API_SVC_IP,
        EXTERNAL_IP,
    ] {
        script.push_str(&format!("ip addr add {ip}/32 dev lo && "));
    }
    for ip in [FRONTEND_IP6, WEB_IP6] {
        script.push_str(&format!("ip -6 addr add {ip}/128 dev lo nodad && "));
    }
    script.push_str("true");
    ns.sh(&script);
}

/// Makes the eleven connections, one openssl server and client each.
pub fn play(ns: &Netns, pki: &Pki) {
    let bracket = |ip: &str| {
        if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        }
    };
    for c in &CONNS {
        let accept = format!("{}:{}", bracket(c.server), c.port);
        let mut server = ns.cmd("openssl");
        server
            .args(["s_server", "-accept", &accept, "-naccept", "1", "-quiet"])
            .args([
                "-cert",
                &pki.p(&format!("{}.pem", c.cert)),
                "-key",
                &pki.p(&format!("{}.key", c.cert)),
            ]);
        if c.cert.contains('-') || c.cert == "external" {
            server.args(["-cert_chain", &pki.p("int.pem")]);
        }
        let server = Reaped::spawn(
            server
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        ns.wait_listen(c.port);
        let mut client = ns.cmd("timeout");
        client.args([
            "10",
            "openssl",
            "s_client",
            "-connect",
            &accept,
            "-bind",
            &format!("{}:0", bracket(c.client)),
        ]);
        match c.sni {
            Some(s) => client.args(["-servername", s]),
            None => client.arg("-noservername"),
        };
        if !c.alpn.is_empty() {
            client.args(["-alpn", &c.alpn.join(",")]);
        }
        client.arg(if c.tls13 { "-tls1_3" } else { "-tls1_2" });
        let out = client.stdin(Stdio::null()).output().expect("s_client");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"),
            "{}: no handshake: {}",
            c.name,
            String::from_utf8_lossy(&out.stderr)
        );
        drop(server);
    }
}

/// Records the eleven connections on loopback inside a fresh namespace.
pub fn record_capture(pki: &Pki, pcap: &Path) {
    let ns = Netns::new("kube");
    add_addresses(&ns);
    let dump = Tcpdump::start(&ns, "lo", pcap).expect("tcpdump");
    std::thread::sleep(Duration::from_millis(300));
    play(&ns, pki);
    std::thread::sleep(Duration::from_millis(500));
    dump.stop().expect("tcpdump");
}

/// Findings that come from the inventory's verdicts.
pub const INVENTORY_RULES: [&str; 3] = ["cert.stale", "cert.unmanaged", "cert.expiring_soon"];

/// The fields of each handshake the correlation decides, keyed by the
/// connection's name: what the verdict table compares.
pub fn verdicts(lines: &[Value]) -> Vec<(String, Value)> {
    let mut rows: Vec<(String, Value)> = lines
        .iter()
        .filter(|l| l["kind"] == "handshake")
        .map(|h| {
            let server = format!("{}:{}", h["server"]["ip"].as_str().unwrap_or(""), h["server"]["port"]);
            let name = CONNS
                .iter()
                .find(|c| c.server == h["server"]["ip"] && c.port as u64 == h["server"]["port"])
                .map_or(server, |c| c.name.to_string());
            let cm = &h["cert_manager"];
            // The rules the inventory decides; the others (long validity,
            // untrusted...) have their own tests in sensor/tests/findings.rs.
            let rules: Vec<&Value> = h["findings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| &f["rule"])
                .filter(|r| INVENTORY_RULES.iter().any(|x| r.as_str() == Some(x)))
                .collect();
            (
                name,
                json!({
                    "verdict": h["verdict"],
                    "destination": format!("{}:{}", h["destination"]["kind"].as_str().unwrap_or("-"),
                        h["destination"]["name"].as_str().unwrap_or("-")),
                    "workload": h["destination"]["workload"],
                    "source": h["source"]["name"],
                    "source_workload": h["source"]["workload"]["name"],
                    "certificate": if cm.is_null() { Value::Null } else {
                        json!(format!("{}/{}@{}", cm["certificate"]["namespace"].as_str().unwrap_or(""),
                            cm["certificate"]["name"].as_str().unwrap_or(""), cm["revision"]))
                    },
                    "certificate_source": h["certificate_source"],
                    "mesh": h["mesh"],
                    "mesh_identity": h["mesh_identity"],
                    "findings": rules,
                }),
            )
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// The verdict table of the scenario as recorded.
pub fn expected() -> Vec<(String, Value)> {
    let api = json!({"kind": "Deployment", "name": "api"});
    let web = json!({"kind": "Deployment", "name": "web"});
    let fe = FRONTEND_POD;
    let row = |verdict: Value,
               destination: String,
               workload: &Value,
               certificate: Value,
               source: Value| {
        json!({"verdict": verdict, "destination": destination, "workload": workload,
            "source": fe, "source_workload": "frontend", "certificate": certificate,
            "certificate_source": source, "mesh": null, "mesh_identity": null, "findings": []})
    };
    let with = |mut v: Value, key: &str, x: Value| {
        v[key] = x;
        v
    };
    let null = Value::Null;
    let mut rows = vec![
        (
            "api",
            row(
                json!("managed"),
                format!("pod:{API_POD}"),
                &api,
                json!("shop/api@2"),
                json!("observed"),
            ),
        ),
        (
            "payments",
            with(
                row(
                    json!("stale"),
                    "pod:payments-0".into(),
                    &json!({"kind": "StatefulSet", "name": "payments"}),
                    json!("shop/payments@1"),
                    json!("observed"),
                ),
                "findings",
                json!(["cert.stale"]),
            ),
        ),
        (
            "legacy",
            with(
                with(
                    with(
                        row(
                            json!("unmanaged"),
                            "pod:legacy-proxy-8kq2m".into(),
                            &json!({"kind": "DaemonSet", "name": "legacy-proxy"}),
                            null.clone(),
                            json!("observed"),
                        ),
                        "findings",
                        json!(["cert.unmanaged"]),
                    ),
                    "source",
                    json!("report-29467380-h5j9c"),
                ),
                "source_workload",
                json!("report"),
            ),
        ),
        (
            "external",
            row(
                json!("external"),
                "external:-".into(),
                &null,
                null.clone(),
                json!("observed"),
            ),
        ),
        (
            "web",
            with(
                row(
                    json!("managed"),
                    "pod:web-6f9b8d7c5-m4n8p".into(),
                    &web,
                    json!("shop/web@1"),
                    json!("inferred"),
                ),
                "findings",
                json!(["cert.expiring_soon"]),
            ),
        ),
        (
            "web6",
            with(
                row(
                    json!("managed"),
                    "pod:web-6f9b8d7c5-m4n8p".into(),
                    &web,
                    json!("shop/web@1"),
                    json!("inferred"),
                ),
                "findings",
                json!(["cert.expiring_soon"]),
            ),
        ),
        (
            "service",
            row(
                json!("managed"),
                "service:api".into(),
                &null,
                json!("shop/api@2"),
                json!("observed"),
            ),
        ),
        (
            "kubelet",
            with(
                row(
                    json!("unmanaged"),
                    format!("node:{NODE}"),
                    &null,
                    null.clone(),
                    json!("observed"),
                ),
                "findings",
                json!(["cert.unmanaged"]),
            ),
        ),
        (
            "node-exporter",
            with(
                row(
                    json!("unmanaged"),
                    "pod:node-exporter-x7k2p".into(),
                    &json!({"kind": "DaemonSet", "name": "node-exporter"}),
                    null.clone(),
                    json!("observed"),
                ),
                "findings",
                json!(["cert.unmanaged"]),
            ),
        ),
        (
            "istio",
            with(
                with(
                    row(
                        null.clone(),
                        format!("pod:{API_POD}"),
                        &api,
                        null.clone(),
                        null.clone(),
                    ),
                    "mesh",
                    json!("istio"),
                ),
                "mesh_identity",
                json!("api.shop.svc.cluster.local:8443"),
            ),
        ),
        (
            "linkerd",
            with(
                with(
                    row(
                        null.clone(),
                        format!("pod:{API_POD}"),
                        &api,
                        null.clone(),
                        null.clone(),
                    ),
                    "mesh",
                    json!("linkerd"),
                ),
                "mesh_identity",
                json!("system:serviceaccount:shop:api"),
            ),
        ),
    ];
    rows.sort_by(|a, b| a.0.cmp(b.0));
    rows.into_iter().map(|(n, v)| (n.to_string(), v)).collect()
}

/// Compares two verdict tables row by row, naming the first difference.
pub fn assert_table(got: &[(String, Value)], want: &[(String, Value)]) {
    let names = |t: &[(String, Value)]| t.iter().map(|r| r.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "handshakes differ");
    for ((n, g), (_, e)) in got.iter().zip(want) {
        assert_eq!(g, e, "verdict row {n}:\n got {g:#}\nwant {e:#}");
    }
}

/// The table as text, for reports.
pub fn render(t: &[(String, Value)]) -> String {
    let mut s = String::new();
    for (n, v) in t {
        s.push_str(&format!(
            "{n:<14} {:<10} {:<32} {:<18} {:<9} {:<9} {}\n",
            v["verdict"].as_str().unwrap_or("null"),
            v["destination"].as_str().unwrap_or(""),
            v["certificate"].as_str().unwrap_or("-"),
            v["certificate_source"].as_str().unwrap_or("-"),
            v["mesh"].as_str().unwrap_or("-"),
            v["findings"],
        ));
    }
    s
}
