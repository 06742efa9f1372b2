//! Probing for the certificates TLS 1.3 hides, against real peers in
//! network namespaces made here (named `prb-*`): openssl s_server, a plain
//! HTTP server, and small TCP peers that reset, stall or count. Needs root.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sensor::capture::own::Announced;
use sensor::model::{Connection, NoInventory, ProbeResult, ProtocolVersion};
use sensor::probe::{Answer, ProbeConfig, ProbeScope, ProbeStage, Prober, Target};
use sensor::x509::CertCache;
use serde_json::Value;
use tests::certs::Pki;
use tests::netns::Netns;
use tests::proc::{Reaped, Watched, run};
use tests::{json_lines, of_kind, require_root, sensor_bin};

const SNI: &str = "server.test";

/// A namespace of this file, deleted when dropped.
fn netns() -> Netns {
    Netns::new("prb")
}

/// Moves the calling thread (and the threads it starts later: the
/// prober's workers) into `ns`.
fn enter(ns: &Netns) {
    ns.enter();
}

fn pki() -> Pki {
    let pki = Pki::new();
    pki.leaf("leaf", SNI, 0, false);
    pki.leaf("client", "client.test", 0, true);
    pki
}

fn s_server(
    ns: &Netns,
    pki: &Pki,
    port: u16,
    extra: &[&str],
    log: Option<&std::path::Path>,
) -> Reaped {
    s_server_with(ns, pki, "leaf", port, extra, log)
}

/// `openssl s_server` serving the leaf `leaf` (and the intermediate).
fn s_server_with(
    ns: &Netns,
    pki: &Pki,
    leaf: &str,
    port: u16,
    extra: &[&str],
    log: Option<&std::path::Path>,
) -> Reaped {
    let mut cmd = ns.cmd("openssl");
    cmd.args(["s_server", "-accept", &port.to_string()])
        .args(["-cert", &pki.p(&format!("{leaf}.pem"))])
        .args(["-key", &pki.p(&format!("{leaf}.key"))])
        .args(["-cert_chain", &pki.p("int.pem")])
        .args(extra)
        // Without -www, s_server stops at the end of its stdin: an open
        // pipe (kept by the child handle) keeps it serving and logging.
        .stdin(if log.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::null());
    match log {
        Some(p) => cmd.stdout(std::fs::File::create(p).expect("log")),
        None => cmd.stdout(Stdio::null()),
    };
    let r = Reaped::spawn(&mut cmd);
    ns.wait_listen(port);
    r
}

fn prober(rate: f64, timeout: Duration) -> Prober {
    Prober::new(
        ProbeConfig {
            scope: ProbeScope::All,
            rate,
            timeout,
            ..ProbeConfig::default()
        },
        Announced::default(),
    )
}

fn target(port: u16, sni: Option<&str>) -> Target {
    Target {
        server: SocketAddr::from(([127, 0, 0, 1], port)),
        sni: sni.map(String::from),
        alpn: vec!["h2".into(), "http/1.1".into()],
    }
}

/// Probes one target and waits for the outcome.
fn probe_one(p: &mut Prober, t: Target) -> (ProbeResult, Vec<String>) {
    probe_stamped(p, t, 0)
}

/// Like `probe_one`, with the inventory's stamp of the server.
fn probe_stamped(p: &mut Prober, t: Target, stamp: u64) -> (ProbeResult, Vec<String>) {
    match p.request(t, stamp) {
        Answer::Now(o, _) => panic!("expected a probe, got {o:?}"),
        Answer::Pending(_) => {}
    }
    let done = p.wait_all();
    assert_eq!(done.len(), 1);
    let chain = done[0]
        .chain
        .iter()
        .map(|d| sensor::x509::sha256_hex(d))
        .collect();
    (done[0].outcome.result, chain)
}

#[test]
fn tls13_chain_is_the_configured_one_even_when_a_client_certificate_is_required() {
    require_root();
    let ns = netns();
    enter(&ns);
    let pki = pki();
    let log = tempfile::NamedTempFile::new().expect("temp");
    let _plain = s_server(&ns, &pki, 4431, &["-tls1_3", "-www", "-quiet"], None);
    let _mutual = s_server(
        &ns,
        &pki,
        4432,
        &["-tls1_3", "-Verify", "1", "-CAfile", &pki.p("root.pem")],
        Some(log.path()),
    );
    let want = vec![pki.fingerprint("leaf.pem"), pki.fingerprint("int.pem")];
    let mut p = prober(100.0, Duration::from_secs(3));
    assert_eq!(
        probe_one(&mut p, target(4431, Some(SNI))),
        (ProbeResult::Ok, want.clone())
    );
    assert_eq!(
        probe_one(&mut p, target(4432, Some(SNI))),
        (ProbeResult::Ok, want)
    );
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(log.path()).expect("server log");
    // The handshake never completed: no client certificate was taken and
    // no application data could be sent.
    assert!(!text.contains("CIPHER is"), "server log: {text}");
    assert!(!text.contains("Client certificate"), "server log: {text}");
    assert_eq!(p.stats.get(ProbeResult::Ok), 2);
}

/// A server restarted with a renewed certificate: the cache answers with
/// the old chain until its TTL, a new inventory stamp (a new revision of
/// the Certificate, a new pod) probes again at once.
#[test]
fn a_renewed_certificate_is_seen_after_the_ttl_and_at_once_after_a_revision_change() {
    require_root();
    let ns = netns();
    enter(&ns);
    let pki = pki();
    pki.leaf("renewed", SNI, 0, false);
    let old = vec![pki.fingerprint("leaf.pem"), pki.fingerprint("int.pem")];
    let new = vec![pki.fingerprint("renewed.pem"), pki.fingerprint("int.pem")];
    let ttl = Duration::from_secs(2);
    let mut p = Prober::new(
        ProbeConfig {
            scope: ProbeScope::All,
            rate: 100.0,
            ttl,
            ..ProbeConfig::default()
        },
        Announced::default(),
    );
    let args = ["-tls1_3", "-www", "-quiet"];
    let server = s_server_with(&ns, &pki, "leaf", 4470, &args, None);
    assert_eq!(
        probe_one(&mut p, target(4470, Some(SNI))),
        (ProbeResult::Ok, old.clone())
    );
    drop(server);
    let server = s_server_with(&ns, &pki, "renewed", 4470, &args, None);
    let cached = |p: &mut Prober, stamp| match p.request(target(4470, Some(SNI)), stamp) {
        Answer::Now(o, chain) => {
            assert!(o.cached, "{o:?}");
            chain
                .iter()
                .map(|d| sensor::x509::sha256_hex(d))
                .collect::<Vec<_>>()
        }
        Answer::Pending(_) => panic!("probed again within the TTL and the same stamp"),
    };
    assert_eq!(cached(&mut p, 0), old, "within the TTL: the cached chain");
    assert_eq!(
        probe_stamped(&mut p, target(4470, Some(SNI)), 1),
        (ProbeResult::Ok, new.clone()),
        "a new revision in the inventory probes at once"
    );
    drop(server);
    let _server = s_server_with(&ns, &pki, "leaf", 4470, &args, None);
    assert_eq!(cached(&mut p, 1), new);
    std::thread::sleep(ttl + Duration::from_millis(200));
    assert_eq!(
        probe_stamped(&mut p, target(4470, Some(SNI)), 1),
        (ProbeResult::Ok, old),
        "after the TTL the server is probed again"
    );
}

/// `sensor analyze` reads a file: it connects to nobody unless asked with
/// `--probe`, and then probes the server the capture shows.
#[test]
fn analyze_probes_only_when_asked() {
    require_root();
    let ns = netns();
    enter(&ns);
    let pki = pki();
    let _server = s_server(&ns, &pki, 4480, &["-tls1_3", "-www", "-quiet"], None);
    let counter = counting_proxy(4481..4482, 4480);
    let pcap = tempfile::NamedTempFile::new().expect("temp");
    let dump = tests::netns::Tcpdump::start(&ns, "lo", pcap.path()).expect("tcpdump");
    let o = ns
        .cmd("timeout")
        .args(["10", "openssl", "s_client", "-connect", "127.0.0.1:4481"])
        .args(["-servername", SNI])
        .stdin(Stdio::null())
        .output()
        .expect("s_client");
    assert!(o.status.success());
    dump.stop().expect("tcpdump");
    assert_eq!(counter.accepted.load(Ordering::SeqCst), 1);
    let analyze = |extra: &[&str]| {
        let o = ns
            .cmd(sensor_bin().to_str().expect("utf-8"))
            .args(["analyze", "--json"])
            .args(extra)
            .arg(pcap.path())
            .output()
            .expect("sensor analyze");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let lines = json_lines(&String::from_utf8_lossy(&o.stdout));
        // The proxy's own connection to the server is in the capture too.
        let hs: Vec<Value> = of_kind(&lines, "handshake")
            .into_iter()
            .filter(|h| h["server"]["port"] == 4481)
            .cloned()
            .collect();
        assert_eq!(hs.len(), 1, "{hs:#?}");
        hs[0].clone()
    };
    let h = analyze(&[]);
    assert_eq!(h["probe"]["result"], "off");
    assert_eq!(h["server_chain"], serde_json::json!([]));
    assert_eq!(
        counter.accepted.load(Ordering::SeqCst),
        1,
        "analyze connected"
    );
    let h = analyze(&["--probe", "all"]);
    assert_eq!(h["probe"]["result"], "ok", "{h}");
    assert_eq!(h["certificate_source"], "probed");
    assert_eq!(h["server_chain"][0], pki.fingerprint("leaf.pem"));
    assert_eq!(counter.accepted.load(Ordering::SeqCst), 2);
}

/// A TCP peer on `port` doing `serve` with each accepted connection.
fn peer(port: u16, serve: fn(TcpStream)) {
    let l = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve(s));
        }
    });
}

#[test]
fn failures_are_counted_by_reason() {
    require_root();
    let ns = netns();
    enter(&ns);
    let pki = pki();
    // Resets the connection as soon as the ClientHello arrives.
    peer(4441, |mut s| {
        let mut b = [0u8; 512];
        let _ = s.read(&mut b);
        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
    });
    // Accepts and says nothing.
    peer(4442, |s| {
        std::thread::sleep(Duration::from_secs(5));
        drop(s);
    });
    let mut http = Reaped::spawn(
        ns.cmd("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", "4443"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    ns.wait_listen(4443);
    // Only a cipher rustls does not offer: the server refuses with an alert.
    let _legacy = s_server(
        &ns,
        &pki,
        4444,
        &["-tls1_2", "-cipher", "AES128-SHA", "-www", "-quiet"],
        None,
    );
    let mut p = prober(100.0, Duration::from_secs(1));
    let cases = [
        (4440, ProbeResult::Refused),
        (4441, ProbeResult::Reset),
        (4442, ProbeResult::Timeout),
        (4443, ProbeResult::NotTls),
        (4444, ProbeResult::Alert),
    ];
    for (port, want) in cases {
        let (got, chain) = probe_one(&mut p, target(port, Some(SNI)));
        assert_eq!((port, got), (port, want));
        assert!(chain.is_empty());
        assert_eq!(p.stats.get(want), 1);
    }
    let _ = http.0.kill();
}

/// Connections waiting for their probe are held, at most `max_held`:
/// beyond that a connection goes on at once, unprobed (`rate_limited`),
/// counted in `held_dropped`; the held ones come out when their probes end.
#[test]
fn connections_beyond_max_held_go_on_unprobed_and_are_counted() {
    require_root();
    let ns = netns();
    enter(&ns);
    // Accepts and says nothing: every probe waits for its timeout.
    peer(4445, |s| {
        std::thread::sleep(Duration::from_secs(5));
        drop(s);
    });
    let mut stage = ProbeStage::new(
        ProbeConfig {
            scope: ProbeScope::All,
            rate: 100.0,
            timeout: Duration::from_secs(1),
            max_held: 2,
            ..ProbeConfig::default()
        },
        Announced::default(),
        false,
    );
    let mut certs = CertCache::new(16);
    let server = SocketAddr::from(([127, 0, 0, 1], 4445));
    let mut at_once = Vec::new();
    for i in 0..5u16 {
        let mut c = Connection::new(SocketAddr::from(([127, 0, 0, 1], 40000 + i)), server, 0);
        c.handshake.version = Some(ProtocolVersion(0x0304));
        // One probe each: (server, SNI) is the probe's key.
        c.handshake.sni = Some(format!("held{i}.test"));
        at_once.extend(stage.admit(c, &NoInventory, &mut certs));
    }
    let result = |c: &Connection| c.probe.as_ref().map(|p| p.result);
    assert_eq!(at_once.len(), 3, "two held, three on at once");
    for c in &at_once {
        assert_eq!(result(c), Some(ProbeResult::RateLimited));
    }
    assert_eq!(stage.stats().expect("probing on").held_dropped, 3);
    let released = stage.release(true, &mut certs);
    assert_eq!(released.len(), 2);
    for c in &released {
        assert_eq!(result(c), Some(ProbeResult::Timeout));
    }
}

/// Counts the connections it accepts and the most open at once, and
/// passes each on to `upstream`.
struct Counter {
    accepted: AtomicU64,
    open: AtomicU64,
    max_open: AtomicU64,
}

fn counting_proxy(ports: std::ops::Range<u16>, upstream: u16) -> Arc<Counter> {
    let c = Arc::new(Counter {
        accepted: AtomicU64::new(0),
        open: AtomicU64::new(0),
        max_open: AtomicU64::new(0),
    });
    for port in ports {
        let l = TcpListener::bind(("127.0.0.1", port)).expect("bind");
        let c = c.clone();
        std::thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                c.accepted.fetch_add(1, Ordering::SeqCst);
                let n = c.open.fetch_add(1, Ordering::SeqCst) + 1;
                c.max_open.fetch_max(n, Ordering::SeqCst);
                let c = c.clone();
                std::thread::spawn(move || {
                    let up = TcpStream::connect(("127.0.0.1", upstream)).expect("upstream");
                    let (mut a, mut b) = (
                        s.try_clone().expect("clone"),
                        up.try_clone().expect("clone"),
                    );
                    let back = std::thread::spawn(move || std::io::copy(&mut b, &mut a));
                    let (mut s, mut up) = (s, up);
                    let _ = std::io::copy(&mut s, &mut up);
                    // Closed by the prober: no longer one of its probes.
                    c.open.fetch_sub(1, Ordering::SeqCst);
                    let _ = up.shutdown(std::net::Shutdown::Write);
                    let _ = back.join();
                });
            }
        });
    }
    c
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu_ms() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    ms(u.ru_utime) + ms(u.ru_stime)
}

#[test]
fn a_burst_of_1000_endpoints_holds_the_rate_and_concurrency_bounds() {
    require_root();
    let ns = netns();
    enter(&ns);
    let pki = pki();
    let _server = s_server(&ns, &pki, 4450, &["-tls1_3", "-www", "-quiet"], None);
    let counter = counting_proxy(5000..5010, 4450);
    let endpoints: Vec<Target> = (0..1000)
        .map(|i| target(5000 + (i % 10) as u16, Some(&format!("s{i}.{SNI}"))))
        .collect();
    // Defaults: 5 per second, 4 at once, 3 s timeout.
    let mut p = Prober::new(
        ProbeConfig {
            scope: ProbeScope::All,
            ..ProbeConfig::default()
        },
        Announced::default(),
    );
    let start = Instant::now();
    // The burst, then the same endpoints asked again and again for 3 s,
    // as busy traffic would.
    while start.elapsed() < Duration::from_secs(3) {
        for t in &endpoints {
            let _ = p.request(t.clone(), 0);
        }
        p.poll();
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed().as_secs_f64();
    p.wait_all();
    std::thread::sleep(Duration::from_millis(200));
    let accepted = counter.accepted.load(Ordering::SeqCst);
    let max_open = counter.max_open.load(Ordering::SeqCst);
    let ok = p.stats.get(ProbeResult::Ok);
    eprintln!(
        "burst: {:?} accepted={accepted} max_open={max_open} elapsed={elapsed:.1}s cache_hits={}",
        ProbeResult::ALL
            .iter()
            .map(|&r| (r.name(), p.stats.get(r)))
            .filter(|&(_, n)| n > 0)
            .collect::<Vec<_>>(),
        p.stats.cache_hits
    );
    assert!(
        ok >= 5,
        "the first burst's five probes succeed: {:?}",
        p.stats.results
    );
    assert_eq!(
        accepted,
        p.stats.results.iter().sum::<u64>() - p.stats.get(ProbeResult::RateLimited)
    );
    // Rate: the burst of 5 plus 5 per second.
    assert!(
        accepted as f64 <= 5.0 + 5.0 * elapsed + 1.0,
        "{accepted} in {elapsed}s"
    );
    // The proxy sees a probe's end a moment after the prober's worker has
    // moved on to its next connection: one more may look open.
    assert!(max_open <= 4 + 1, "{max_open} at once");
    assert!(p.stats.get(ProbeResult::RateLimited) > 900);
}

#[test]
fn cost_of_probing_1000_endpoints() {
    require_root();
    let ns = netns();
    enter(&ns);
    let pki = pki();
    let _server = s_server(&ns, &pki, 4460, &["-tls1_3", "-www", "-quiet"], None);
    let mut p = prober(1e6, Duration::from_secs(3));
    let (rss0, cpu0) = (rss_kib(), cpu_ms());
    let start = Instant::now();
    let mut results = std::collections::BTreeMap::new();
    for chunk in 0..100 {
        for i in 0..10 {
            let sni = format!("c{}.{SNI}", chunk * 10 + i);
            let _ = p.request(target(4460, Some(&sni)), 0);
        }
        for d in p.wait_all() {
            *results.entry(d.outcome.result.name()).or_insert(0u64) += 1;
        }
    }
    let (rss1, cpu1) = (rss_kib(), cpu_ms());
    eprintln!(
        "cost: 1000 probes {results:?} in {:.1}s: cpu {} ms, rss +{} KiB ({} -> {} KiB)",
        start.elapsed().as_secs_f64(),
        cpu1 - cpu0,
        rss1.saturating_sub(rss0),
        rss0,
        rss1
    );
    assert_eq!(results.get("ok"), Some(&1000), "{results:?}");
}

/// `sensor run` watching a client's veth: its handshake to a TLS 1.3
/// server gets the probed chain, and the probe itself is no handshake.
fn live(probe: &str) -> (Vec<Value>, Vec<String>) {
    let (c, s) = (netns(), netns());
    run(Command::new("ip").args([
        "link", "add", "pc0", "netns", &c.name, "type", "veth", "peer", "name", "ps0", "netns",
        &s.name,
    ]));
    c.sh("ip addr add 10.79.0.1/24 dev pc0 && ip link set pc0 up");
    s.sh("ip addr add 10.79.0.2/24 dev ps0 && ip link set ps0 up");
    let pki = pki();
    let _server = s_server(&s, &pki, 443, &["-tls1_3", "-www", "-quiet"], None);
    let out = tempfile::NamedTempFile::new().expect("temp");
    let mut cmd = c.cmd(sensor_bin().to_str().expect("utf-8"));
    cmd.env("RUST_LOG", "info").args([
        "run",
        "--json",
        "--stats-interval",
        "3600",
        "-i",
        "pc0",
        "--probe",
        probe,
    ]);
    let mut w = Watched::spawn(&mut cmd, out.reopen().expect("reopen"));
    w.wait_for("attached", Duration::from_secs(60));
    let o = c
        .cmd("timeout")
        .args([
            "10",
            "openssl",
            "s_client",
            "-connect",
            "10.79.0.2:443",
            "-servername",
            SNI,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("s_client");
    assert!(o.status.success());
    std::thread::sleep(Duration::from_secs(2));
    let want = vec![pki.fingerprint("leaf.pem"), pki.fingerprint("int.pem")];
    w.stop();
    let lines = json_lines(&std::fs::read_to_string(out.path()).expect("out"));
    (lines, want)
}

#[test]
fn live_tls13_handshake_gets_the_probed_chain_and_the_probe_is_not_reported() {
    require_root();
    let (lines, want) = live("all");
    let hs = of_kind(&lines, "handshake");
    assert_eq!(hs.len(), 1, "{hs:#?}");
    let h = hs[0];
    assert_eq!(h["version"], "TLS 1.3");
    assert_eq!(h["certificate_source"], "probed");
    assert_eq!(h["probe"]["result"], "ok");
    assert_eq!(h["probe"]["cached"], false);
    let chain: Vec<&str> = h["server_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(chain, want);
    let summary = of_kind(&lines, "summary").pop().expect("summary").clone();
    assert_eq!(summary["handshakes"], 1);
    assert_eq!(summary["probe"]["results"]["ok"], 1);
    assert!(
        summary["own_connections"].as_u64().unwrap() >= 1,
        "the probe's connection is the sensor's own: {summary}"
    );
}

#[test]
fn probe_off_sends_nothing() {
    require_root();
    let (lines, _) = live("off");
    let hs = of_kind(&lines, "handshake");
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0]["probe"]["result"], "off");
    assert_eq!(hs[0]["server_chain"], serde_json::json!([]));
    let summary = of_kind(&lines, "summary").pop().expect("summary").clone();
    // The capture sees every connection on the veth: only the client's.
    assert_eq!(summary["connections"], 1, "{summary}");
    assert!(summary.get("probe").is_none());
}
