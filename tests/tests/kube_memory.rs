//! What the inventory costs: 10,000 pods and 5,000 cert-manager
//! Certificates (each with two CertificateRequests carrying its issued
//! certificate and the intermediate, as cert-manager writes them), fed
//! through the same path as watch events. Alone in its test binary so the
//! resident set measured is this test's. Prints the figure; the assert is
//! a generous bound, not a timing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::api::DynamicObject;
use sensor::inventory::{Inventory, Kind};
use sensor::model::PeerKind;
use tests::certs::Pki;
use tests::kube::objects::{self as o, CertSpec, Owner, PodSpec, RequestSpec};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn pem(der: &[u8]) -> String {
    let b = STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

fn ingest(inv: &Inventory, kind: Kind, v: serde_json::Value) {
    let obj: DynamicObject = serde_json::from_value(v).expect("object");
    assert!(inv.ingest(kind, obj));
}

#[test]
fn index_of_10000_pods_and_5000_certificates() {
    let pki = Pki::new();
    pki.leaf_sans(
        "t",
        "svc.ns.svc",
        &["DNS:svc.ns.svc", "DNS:svc.ns.svc.cluster.local"],
    );
    let template = sensor::inventory::first_leaf(pki.read("t.pem").as_bytes())
        .unwrap()
        .der
        .to_vec();
    let int = pki.read("int.pem");
    let ca = pki.read("root.pem");
    let csr = pki.read("t.csr");
    // Distinct certificates: the template with its last bytes (signature) varied.
    let cert = |n: u32| {
        let mut d = template.clone();
        let l = d.len();
        d[l - 4..].copy_from_slice(&n.to_be_bytes());
        pem(&d)
    };

    #[cfg(target_env = "gnu")]
    // SAFETY: returns freed heap to the kernel; no other effect.
    unsafe {
        libc::malloc_trim(0);
    }
    let before = rss_kib();
    let inv = Inventory::default();
    for i in 0..10_000u32 {
        let ns = format!("team-{:02}", i % 50);
        let app = format!("app{:03}", i % 500);
        let name = format!("{app}-7d9c8b6f5-{i:05}");
        let ip = format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256);
        let secret = format!("{app}-tls");
        ingest(
            &inv,
            Kind::Pod,
            o::pod(&PodSpec {
                namespace: &ns,
                name: &name,
                ips: &[&ip],
                node: &format!("node-{:03}", i % 100),
                host_ip: "172.18.0.2",
                service_account: &app,
                owner: Owner::Deployment(&app, "7d9c8b6f5"),
                secrets: &[&secret],
                projected_secrets: &[],
                ports: &[8443],
                host_network: false,
                phase: "Running",
                created: o::CREATED,
            }),
        );
    }
    let after_pods = rss_kib();
    for i in 0..5_000u32 {
        let ns = format!("team-{:02}", i % 50);
        let name = format!("cert-{i:04}");
        let dns = format!("{name}.{ns}.svc");
        ingest(
            &inv,
            Kind::Certificate,
            o::certificate(&CertSpec {
                namespace: &ns,
                name: &name,
                dns: &[&dns],
                secret: &format!("{name}-tls"),
                issuer: ("ClusterIssuer", "ca"),
                revision: 2,
                not_before: 1_760_000_000,
                not_after: 1_790_000_000,
                renewal_time: 1_787_000_000,
                renewal_failed: false,
            }),
        );
        for rev in 1..=2u64 {
            ingest(
                &inv,
                Kind::CertificateRequest,
                o::certificate_request(&RequestSpec {
                    namespace: &ns,
                    name: &format!("{name}-r{rev}"),
                    certificate: &name,
                    revision: rev,
                    issuer: ("ClusterIssuer", "ca"),
                    csr_pem: &csr,
                    chain_pem: &format!("{}{int}", cert(i * 2 + rev as u32)),
                    ca_pem: &ca,
                    issued_at: 1_760_000_000,
                }),
            );
        }
    }
    let after_all = rss_kib();
    #[cfg(target_env = "gnu")]
    // SAFETY: as above.
    unsafe {
        libc::malloc_trim(0);
    }
    let trimmed = rss_kib();

    let stats = inv.stats().index;
    assert_eq!(stats.objects.get(&Kind::Pod), Some(&10_000));
    assert_eq!(stats.objects.get(&Kind::Certificate), Some(&5_000));
    assert_eq!(stats.objects.get(&Kind::CertificateRequest), Some(&10_000));
    let ix = inv.read();
    assert_eq!(
        ix.identify("10.64.39.15".parse().unwrap(), None).kind,
        PeerKind::Pod
    );
    let leaf = sensor::inventory::first_leaf(cert(2 * 4999 + 1).as_bytes()).unwrap();
    let issued = ix.issued(&leaf.sha256).expect("revision 1 of cert-4999");
    assert!(issued.is_stale());
    drop(ix);

    let mib = |k: u64| k as f64 / 1024.0;
    let line = format!(
        "inventory memory: 10000 pods +{:.1} MiB; + 5000 Certificates and 10000 CertificateRequests +{:.1} MiB; total +{:.1} MiB (+{:.1} MiB after malloc_trim)",
        mib(after_pods.saturating_sub(before)),
        mib(after_all.saturating_sub(after_pods)),
        mib(after_all.saturating_sub(before)),
        mib(trimmed.saturating_sub(before)),
    );
    eprintln!("{line}");
    assert!(
        trimmed.saturating_sub(before) < 256 * 1024,
        "the index grew past 256 MiB: {line}"
    );
    drop(inv);
}
