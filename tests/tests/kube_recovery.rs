//! How fast the live inventory catches up with the API server after a
//! 410 Gone, alone and after an outage: a 410 is the API's routine
//! "relist", not a failure, so it must never wait out an error backoff.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sensor::inventory::watch::{self, WatchConfig};
use sensor::inventory::{Inventory, Kind, Phase};
use tests::kube::api::FakeApi;
use tests::kube::objects::{self as o, Owner, PodSpec};

const IP: &str = "10.244.1.7";

fn pod(name: &str, ip: &str) -> serde_json::Value {
    o::pod(&PodSpec {
        namespace: "shop",
        name,
        ips: &[ip],
        node: "node-1",
        host_ip: "172.18.0.2",
        service_account: "default",
        owner: Owner::None,
        secrets: &[],
        projected_secrets: &[],
        ports: &[443],
        host_network: false,
        phase: "Running",
        created: o::CREATED,
    })
}

/// Who the inventory says holds `IP`.
fn holder(inv: &Inventory) -> Option<String> {
    inv.read()
        .identify(IP.parse::<IpAddr>().unwrap(), None)
        .name
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pods_synced(inv: &Inventory) -> bool {
    inv.sync().get(Kind::Pod).map(|s| s.phase) == Some(Phase::Synced)
}

/// The pod behind `IP` is replaced and the watch history compacted
/// (`old` deleted, `new` created), while nobody watches.
fn replace(api: &FakeApi, old: &str, new: &str) {
    api.delete("v1", "Pod", "shop", old);
    api.apply(pod(new, IP));
    api.compact();
}

async fn watching(cfg: WatchConfig) -> (Inventory, watch::Watches) {
    let client = watch::client(&cfg).await.expect("client");
    let inv = Inventory::default();
    let w = watch::start(client, &inv, &cfg);
    until("first list", Duration::from_secs(30), || {
        pods_synced(&inv) && holder(&inv).is_some()
    })
    .await;
    (inv, w)
}

/// A watch that ends (as at its timeout) and resumes from a version the
/// API has compacted meanwhile gets 410 Gone and relists at once: with an
/// error backoff of an hour, a watch that waited it out would never relist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_relists_at_once_whatever_the_error_backoff() {
    let api = FakeApi::start().await;
    api.apply(pod("web", IP));
    let dir = tempfile::tempdir().unwrap();
    let cfg = WatchConfig {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        backoff_min: Duration::from_secs(3600),
        backoff_max: Duration::from_secs(3600),
        ..WatchConfig::default()
    };
    let (inv, _w) = watching(cfg).await;
    let pods = |inv: &Inventory| inv.sync().get(Kind::Pod).unwrap().clone();
    // Twice: the second 410 comes after the API answered the first relist,
    // so it is routine again, not a loop of 410s.
    for round in 1..=2 {
        let before = pods(&inv);
        until("pods watched", Duration::from_secs(30), || {
            api.watchers("/api/v1/pods") > 0
        })
        .await;
        // Other resources move the version on; the history is compacted.
        api.advance(5);
        api.compact();
        api.end_watches();
        until("relisted after the 410", Duration::from_secs(60), || {
            pods(&inv).relists > before.relists && pods_synced(&inv)
        })
        .await;
        let after = pods(&inv);
        assert_eq!(
            after.relists,
            before.relists + 1,
            "round {round}: {after:?}"
        );
        assert_eq!(after.errors, 0, "a 410 is not an error: {after:?}");
        assert_eq!(holder(&inv).as_deref(), Some("web"));
    }
}

/// The API server goes away long enough for the error backoff to grow,
/// comes back with its history compacted and the pod behind `IP`
/// replaced: the watches get 410 Gone and must relist at once. Prints how
/// long correlation took to catch up after the API's return (the figure
/// issue 17 asks for); the production backoff settings are used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_correlation_catches_up_when_the_api_returns() {
    let api = FakeApi::start().await;
    api.apply(pod("web-old", IP));
    let dir = tempfile::tempdir().unwrap();
    let cfg = WatchConfig {
        kubeconfig: Some(api.kubeconfig(dir.path())),
        ..WatchConfig::default()
    };
    let outage_errors: u64 = std::env::var("REL_OUTAGE_ERRORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (inv, _w) = watching(cfg).await;
    let errors = |inv: &Inventory| inv.sync().get(Kind::Pod).unwrap().errors;
    api.stop();
    let down = Instant::now();
    until("errors while down", Duration::from_secs(600), || {
        errors(&inv) >= outage_errors
    })
    .await;
    // While away, the last state answers.
    assert_eq!(holder(&inv).as_deref(), Some("web-old"));
    assert_eq!(
        inv.sync().get(Kind::Pod).unwrap().phase,
        Phase::Failing,
        "{:?}",
        inv.sync().get(Kind::Pod)
    );
    replace(&api, "web-old", "web-new");
    api.restart().await;
    let back = Instant::now();
    until(
        "the new pod after the API's return",
        Duration::from_secs(300),
        || holder(&inv).as_deref() == Some("web-new"),
    )
    .await;
    let caught_up = back.elapsed();
    until("synced again", Duration::from_secs(30), || {
        pods_synced(&inv)
    })
    .await;
    eprintln!(
        "recovery: outage {:.1} s ({} pod watch errors), caught up {:.2} s after the API's return",
        (back - down).as_secs_f64(),
        errors(&inv),
        caught_up.as_secs_f64()
    );
}
