//! Flow records of live capture (RECORDS.md `kind = "flow"`) against what
//! tshark counts in a tcpdump of the same traffic: real openssl, curl and
//! python peers in network namespaces made here, the real kernel program,
//! the sensor binary. Needs root.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tests::certs::Pki;
use tests::live_sensor::LiveSensor;
use tests::netns::{Netns, Pair, SERVER4, Tcpdump};
use tests::peers::{self, http_server};
use tests::proc::{Reaped, run};
use tests::{json_lines, of_kind, require_root, sensor_bin, tshark};

const SNI: &str = "server.test";

fn pki() -> Pki {
    let pki = Pki::new();
    pki.leaf("leaf", SNI, 0, false);
    pki
}

/// `openssl s_server` serving `leaf`; with `-www` it answers a GET and
/// closes; with `-rev` it sends each line back reversed until the client
/// closes (interactive, it would close at its own stdin's end).
fn s_server(ns: &Netns, pki: &Pki, port: u16, extra: &[&str]) -> Reaped {
    peers::openssl_server(ns, pki, port, "leaf", extra)
}

/// curl, with the lab's server name resolved and its certificate unchecked.
fn curl(ns: &Netns, url: &str, extra: &[&str]) {
    let resolve = |port: u16| format!("{SNI}:{port}:{SERVER4}");
    let (r1, r2) = (resolve(4441), resolve(4444));
    let mut args = vec!["-k", "--resolve", &r1, "--resolve", &r2];
    args.extend(extra);
    peers::curl_with(ns, url, &args);
}

/// A TLS 1.3 client that sends a line every 0.3 s until `stop` exists,
/// then closes: a connection that lives as long as the test wants.
fn slow_client(ns: &Netns, port: u16, stop: &Path) -> Reaped {
    let script = format!(
        "while [ ! -e {stop} ]; do echo tick; sleep 0.3; done | \
         timeout 60 openssl s_client -connect {SERVER4}:{port} -servername {SNI} -tls1_3",
        stop = stop.display()
    );
    let mut cmd = ns.cmd("sh");
    cmd.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Reaped::spawn(&mut cmd)
}

/// Waits for a process to exit on its own (a client told to stop).
fn wait_exit(mut p: Reaped) {
    let start = std::time::Instant::now();
    while start.elapsed() < tests::patience(Duration::from_secs(20)) {
        if p.0.try_wait().expect("try_wait").is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("client {} did not exit", p.pid());
}

fn endpoint(v: &Value) -> SocketAddr {
    let ip = v["ip"].as_str().expect("ip").parse().expect("an address");
    SocketAddr::new(ip, v["port"].as_u64().expect("port") as u16)
}

fn server_port(f: &Value) -> u64 {
    f["server"]["port"].as_u64().expect("port")
}

/// The four counts tshark gives the connection of flow record `f`.
fn reference(pcap: &Path, f: &Value) -> Value {
    let by = tshark::payload_by_direction(pcap);
    let (c, s) = (endpoint(&f["client"]), endpoint(&f["server"]));
    let up = by.get(&(c, s)).copied().unwrap_or_default();
    let down = by.get(&(s, c)).copied().unwrap_or_default();
    json!({
        "bytes_to_server": up.0,
        "bytes_to_client": down.0,
        "packets_to_server": up.1,
        "packets_to_client": down.1,
    })
}

const COUNTS: [&str; 4] = [
    "bytes_to_server",
    "bytes_to_client",
    "packets_to_server",
    "packets_to_client",
];

/// The records of one connection in order, and the sum of their intervals.
fn intervals_sum(records: &[&Value]) -> Value {
    let mut sum = json!({});
    for k in COUNTS {
        let total: u64 = records
            .iter()
            .map(|r| r["interval"][k].as_u64().expect("a count"))
            .sum();
        sum[k] = json!(total);
    }
    sum
}

fn kernel(lines: &[Value], counter: &str) -> u64 {
    of_kind(lines, "summary").pop().expect("a summary")["kernel"][counter]
        .as_u64()
        .unwrap_or_else(|| panic!("no kernel counter {counter}"))
}

struct Lab {
    lab: Pair,
    pcap: tempfile::NamedTempFile,
    dump: Tcpdump,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        Self::with(tag, Tcpdump::start)
    }

    /// With tcpdump capturing headers only, into a large buffer: bulk.
    fn bulk(tag: &str) -> Lab {
        Self::with(tag, Tcpdump::start_headers)
    }

    fn with(tag: &str, dump: fn(&Netns, &str, &Path) -> anyhow::Result<Tcpdump>) -> Lab {
        let lab = Pair::new(tag);
        let pcap = tempfile::NamedTempFile::new().expect("temp");
        let dump = dump(&lab.client, &lab.client_if, pcap.path()).expect("tcpdump");
        Lab { lab, pcap, dump }
    }

    fn sensor(&self, extra: &[&str]) -> LiveSensor {
        let mut args = vec!["-i", &self.lab.client_if];
        args.extend_from_slice(extra);
        LiveSensor::start(&self.lab.client, &args)
    }

    /// Stops the sensor, then the capture; the sensor's lines.
    fn stop(self, sensor: LiveSensor) -> (Vec<Value>, tempfile::NamedTempFile) {
        let lines = sensor.stop();
        std::thread::sleep(Duration::from_millis(300));
        self.dump.stop().expect("tcpdump");
        (lines, self.pcap)
    }
}

/// Each connection of TLS 1.2, TLS 1.3 and plain HTTP is one flow record
/// (it ends within the report interval) whose counts are tshark's: the
/// `tcp.len` sum and the segments with payload, each way.
#[test]
fn flow_counts_equal_tshark_for_tls12_tls13_and_plaintext() {
    require_root();
    let pki = pki();
    let lab = Lab::new("fa");
    let _tls = s_server(&lab.lab.server, &pki, 4441, &["-www"]);
    let _http = http_server(&lab.lab.server, 8083);
    let sensor = lab.sensor(&["--flow-report-interval", "3600"]);
    let client = &lab.lab.client;
    let url = format!("https://{SNI}:4441/");
    curl(client, &url, &["--tlsv1.2", "--tls-max", "1.2"]);
    curl(client, &url, &["--tlsv1.3"]);
    curl(client, &format!("http://{SERVER4}:8083/"), &[]);
    let (lines, pcap) = lab.stop(sensor);

    let flows = of_kind(&lines, "flow");
    assert_eq!(flows.len(), 3, "{flows:#?}");
    for f in &flows {
        let want = reference(pcap.path(), f);
        eprintln!("{} total {} tshark {want}", f["server"], f["total"]);
        assert_eq!(f["total"], want, "{f:#}");
        assert_eq!(f["interval"], f["total"], "one record: {f:#}");
        assert!(f["end"] == "fin" || f["end"] == "rst", "{f:#}");
        assert_eq!(f["partial"], false);
        assert!(f["total"]["bytes_to_client"].as_u64().unwrap() > 0);
    }
    let mut versions: Vec<&Value> = flows
        .iter()
        .filter(|f| server_port(f) == 4441)
        .map(|f| &f["tls"]["version"])
        .collect();
    versions.sort_by_key(|v| v.to_string());
    assert_eq!(versions, [&json!("TLS 1.2"), &json!("TLS 1.3")]);
    for f in flows.iter().filter(|f| server_port(f) == 4441) {
        assert_eq!(f["tls"]["sni"], SNI, "{f:#}");
    }
    let plain: Vec<_> = flows.iter().filter(|f| server_port(f) == 8083).collect();
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0]["tls"], Value::Null);

    // `sensor analyze` of the capture gives the same records, but for the
    // times (capture clock against the kernel's).
    let out = run(std::process::Command::new(sensor_bin())
        .args(["analyze", "--json", "--flow-report-interval", "3600"])
        .arg(pcap.path()));
    let offline = json_lines(&String::from_utf8_lossy(&out.stdout));
    let timeless = |f: &Value| {
        let mut f = f.clone();
        let o = f.as_object_mut().expect("object");
        o.remove("time");
        o.remove("start");
        f
    };
    let key = |f: &Value| f["client"]["port"].as_u64();
    let mut live: Vec<Value> = flows.iter().map(|f| timeless(f)).collect();
    let mut off: Vec<Value> = of_kind(&offline, "flow")
        .into_iter()
        .map(timeless)
        .collect();
    live.sort_by_key(key);
    off.sort_by_key(key);
    assert_eq!(live, off, "live and analyze flow records differ");
}

/// A connection open across several report intervals (1 s) gets a record
/// per interval; only the last has an end, and the intervals sum to its
/// total, which is tshark's: nothing is counted twice at the end.
#[test]
fn a_connection_across_report_intervals_sums_its_deltas() {
    require_root();
    let pki = pki();
    let lab = Lab::new("fb");
    let _tls = s_server(&lab.lab.server, &pki, 4442, &["-rev"]);
    let sensor = lab.sensor(&["--flow-report-interval", "1"]);
    let stop = tempfile::NamedTempFile::new().expect("temp");
    let stop_path = stop.path().with_extension("stop");
    let client = slow_client(&lab.lab.client, 4442, &stop_path);
    // Five seconds of a line every 0.3 s: at least three 1 s intervals.
    std::thread::sleep(Duration::from_secs(5));
    std::fs::write(&stop_path, b"").expect("stop file");
    wait_exit(client);
    let (lines, pcap) = lab.stop(sensor);
    let _ = std::fs::remove_file(&stop_path);

    let mut mine: Vec<&Value> = of_kind(&lines, "flow")
        .into_iter()
        .filter(|f| server_port(f) == 4442)
        .collect();
    mine.sort_by_key(|f| f["time"].as_str().unwrap_or_default().to_string());
    assert!(mine.len() >= 3, "{mine:#?} in {lines:#?}");
    let (last, open) = mine.split_last().expect("records");
    assert!(open.iter().all(|f| f["end"].is_null()), "{mine:#?}");
    assert!(last["end"] == "fin" || last["end"] == "rst", "{last:#}");
    assert_eq!(intervals_sum(&mine), last["total"], "{mine:#?}");
    assert_eq!(last["total"], reference(pcap.path(), last), "{last:#}");
    assert_eq!(last["tls"]["version"], "TLS 1.3");
    assert!(mine.iter().all(|f| f["start"] == last["start"]));
    eprintln!("{} records, total {}", mine.len(), last["total"]);
}

/// A connection open before the sensor starts is picked up at its first
/// payload and reported `partial`; it is TLS by its record headers.
#[test]
fn a_connection_open_before_the_sensor_is_partial() {
    require_root();
    let pki = pki();
    let lab = Lab::new("fc");
    let _tls = s_server(&lab.lab.server, &pki, 4443, &["-rev"]);
    let stop = tempfile::NamedTempFile::new().expect("temp");
    let stop_path = stop.path().with_extension("stop");
    let client = slow_client(&lab.lab.client, 4443, &stop_path);
    std::thread::sleep(Duration::from_secs(1));
    let sensor = lab.sensor(&["--flow-report-interval", "3600"]);
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(&stop_path, b"").expect("stop file");
    wait_exit(client);
    let (lines, pcap) = lab.stop(sensor);
    let _ = std::fs::remove_file(&stop_path);

    let mine: Vec<&Value> = of_kind(&lines, "flow")
        .into_iter()
        .filter(|f| server_port(f) == 4443)
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let f = mine[0];
    assert_eq!(f["partial"], true, "{f:#}");
    assert_eq!(
        endpoint(&f["server"]).to_string(),
        format!("{SERVER4}:4443")
    );
    assert!(f["tls"].is_object(), "TLS by its record headers: {f:#}");
    assert_eq!(
        f["tls"]["version"],
        Value::Null,
        "its handshake was not seen"
    );
    let whole = reference(pcap.path(), f);
    for k in COUNTS {
        let (seen, all) = (f["total"][k].as_u64().unwrap(), whole[k].as_u64().unwrap());
        assert!(seen <= all, "{k}: {seen} > {all}");
    }
    assert!(f["total"]["packets_to_server"].as_u64().unwrap() > 0);
    assert_eq!(kernel(&lines, "partial_opened"), 1);
}

/// With room for one connection, the connections beyond it are counted
/// as untracked, never evicting the one in the map; their handshakes are
/// still followed and reported.
#[test]
fn a_full_connection_map_counts_untracked_and_keeps_handshakes() {
    require_root();
    let pki = pki();
    let lab = Lab::new("fd");
    let _slow = s_server(&lab.lab.server, &pki, 4440, &["-rev"]);
    let _www = s_server(&lab.lab.server, &pki, 4444, &["-www"]);
    let sensor = lab.sensor(&["--flow-report-interval", "3600", "--conn-entries", "1"]);
    let stop = tempfile::NamedTempFile::new().expect("temp");
    let stop_path = stop.path().with_extension("stop");
    let client = slow_client(&lab.lab.client, 4440, &stop_path);
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..3 {
        curl(&lab.lab.client, &format!("https://{SNI}:4444/"), &[]);
    }
    std::fs::write(&stop_path, b"").expect("stop file");
    wait_exit(client);
    let (lines, pcap) = lab.stop(sensor);
    let _ = std::fs::remove_file(&stop_path);

    assert_eq!(kernel(&lines, "untracked"), 3);
    let hs = of_kind(&lines, "handshake");
    assert_eq!(
        hs.iter().filter(|h| h["server"]["port"] == 4444).count(),
        3,
        "{hs:#?}"
    );
    let flows = of_kind(&lines, "flow");
    assert_eq!(flows.len(), 1, "only the connection in the map: {flows:#?}");
    assert_eq!(server_port(flows[0]), 4440);
    assert_eq!(flows[0]["total"], reference(pcap.path(), flows[0]));
}

/// A 100 MB download over TLS 1.3 (curl from `openssl s_server -WWW`):
/// the flow record's counts are still exactly tshark's, GSO super-segments
/// and all.
#[test]
fn a_100_mb_transfer_counts_what_tshark_counts() {
    require_root();
    let pki = pki();
    let lab = Lab::bulk("fe");
    let www = tempfile::tempdir().expect("temp dir");
    let body: Vec<u8> = (0..100_000_000u64).map(|i| (i * 131 % 251) as u8).collect();
    std::fs::write(www.path().join("big.bin"), body).expect("write");
    let mut cmd = lab.lab.server.cmd("openssl");
    cmd.args(["s_server", "-accept", "4445", "-quiet", "-WWW", "-tls1_3"])
        .args(["-cert", &pki.p("leaf.pem"), "-key", &pki.p("leaf.key")])
        .current_dir(www.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _server = Reaped::spawn(&mut cmd);
    lab.lab.server.wait_listen(4445);
    let sensor = lab.sensor(&["--flow-report-interval", "3600"]);
    run(lab
        .lab
        .client
        .cmd("curl")
        .args(["-sSk", "-o", "/dev/null", "--max-time", "60"])
        .args(["--resolve", &format!("{SNI}:4445:{SERVER4}")])
        .arg(format!("https://{SNI}:4445/big.bin")));
    let (lines, pcap) = lab.stop(sensor);

    let mine: Vec<&Value> = of_kind(&lines, "flow")
        .into_iter()
        .filter(|f| server_port(f) == 4445)
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    let f = mine[0];
    let want = reference(pcap.path(), f);
    eprintln!("100 MB: total {} tshark {want}", f["total"]);
    assert_eq!(f["total"], want);
    assert!(f["total"]["bytes_to_client"].as_u64().unwrap() > 100_000_000);
    assert_eq!(f["tls"]["version"], "TLS 1.3");
}

/// On loopback the sensor sees every segment twice (egress, then ingress)
/// and tcpdump once: the flow record counts each once, as tshark does.
#[test]
fn loopback_segments_seen_twice_count_once() {
    require_root();
    let ns = Netns::new("fl");
    let mut cmd = ns.cmd("python3");
    cmd.args(["-m", "http.server", "8084", "--bind", "127.0.0.1"])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _http = Reaped::spawn(&mut cmd);
    ns.wait_listen(8084);
    let pcap = tempfile::NamedTempFile::new().expect("temp");
    let dump = Tcpdump::start(&ns, "lo", pcap.path()).expect("tcpdump");
    let sensor = LiveSensor::start(&ns, &["-i", "lo", "--flow-report-interval", "3600"]);
    run(ns
        .cmd("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "10"])
        .arg("http://127.0.0.1:8084/"));
    let lines = sensor.stop();
    std::thread::sleep(Duration::from_millis(300));
    dump.stop().expect("tcpdump");

    let mine: Vec<&Value> = of_kind(&lines, "flow")
        .into_iter()
        .filter(|f| server_port(f) == 8084)
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["total"], reference(pcap.path(), mine[0]));
    assert!(kernel(&lines, "duplicates") > 0);
}
