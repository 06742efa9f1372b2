//! `sensor analyze` on the captures the project records itself
//! (tests/data, `cargo xtask record-fixtures`) and on broken input.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use std::net::SocketAddr;
use std::sync::Arc;

use sensor::model::{Connection, Correlation, Correlator, Peer, PeerKind};
use sensor::pipeline::PipelineConfig;
use serde_json::Value;
use tests::collect::{analyze_files, analyze_with};
use tests::compare::{mismatches, parse_lines};
use tests::pcap_writer::{Noise, PcapWriter, TCP_ACK, TCP_PSH, TCP_SYN, TcpPacket, ipv4_tcp_frame};
use tests::{captures, data_dir, sensor_cli};

fn expected(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("reading an expected file");
    parse_lines(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kind<'a>(lines: &'a [Value], k: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == k).collect()
}

/// A file in the temp directory, removed when the test ends (also on failure).
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, bytes: &[u8]) -> Self {
        let p = std::env::temp_dir().join(format!("tls-sensor-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).expect("writing a temp file");
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// (offset, caplen) of each packet record of a classic little-endian pcap.
fn pcap_records(bytes: &[u8]) -> Vec<(usize, usize)> {
    assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes(), "a classic pcap");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        out.push((at, caplen));
        at += 16 + caplen;
    }
    out
}

#[test]
fn the_recorded_captures_are_all_there() {
    let names: Vec<String> = captures().into_iter().map(|(n, _, _)| n).collect();
    for want in [
        "tls12-rsa-chain",
        "tls12-ecdsa",
        "tls13",
        "tls12-mutual",
        "tls12-resume-ticket",
        "tls12-resume-session-id",
        "tls13-resume",
        "tls13-hello-retry",
        "tls12-mtu400",
        "tls12-ipv6",
        "tls12-alpn-nginx",
        "tls12-alert-unknown-ca",
        "tls12-alert-no-client-cert",
        "tls12-expired",
        "tls12-san-mismatch",
        "tls12-warning-alert",
        "tls12-stray-intermediate",
        "tls12-validity-398d",
        "tls12-dn-attributes",
        "tls12-tcp-fast-open",
        "tls10-sslv2-hello",
        "starttls-postgres",
        "postgres-ssl-refused",
        "starttls-smtp",
        "starttls-http-connect",
        "starttls-ftp",
        "starttls-imap",
        "starttls-pop3",
        "starttls-ldap",
        "starttls-mysql",
        "plain-http",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

/// The library path: `analyze` with a collecting sink, every capture alone.
#[test]
fn library_records_match_the_expected_records() {
    let mut failures = Vec::new();
    for (name, pcap, exp_file) in captures() {
        let exp = expected(&exp_file);
        let got = analyze_files(std::slice::from_ref(&pcap));
        assert!(got.failed.is_empty(), "{name}: {:?}", got.failed);
        let actual = &got.records.lines;
        for m in mismatches(&exp, actual) {
            failures.push(format!("{name}: {m}"));
        }
        // Our own captures: every handshake and certificate is expected, and
        // none of them is damaged.
        let (eh, ah) = (
            kind(&exp, "handshake").len(),
            got.records.handshakes().count(),
        );
        if eh != ah {
            failures.push(format!("{name}: {eh} handshakes expected, {ah} reported"));
        }
        let (ec, ac) = (
            kind(&exp, "certificate").len(),
            got.records.certificates().count(),
        );
        if ec != ac {
            failures.push(format!("{name}: {ec} certificates expected, {ac} reported"));
        }
        if got.summary.handshakes as usize != eh {
            failures.push(format!(
                "{name}: summary counts {} handshakes",
                got.summary.handshakes
            ));
        }
        if !got.summary.errors.is_empty() {
            failures.push(format!("{name}: errors {:?}", got.summary.errors));
        }
        for hs in got.records.handshakes() {
            if hs["complete"] != true {
                failures.push(format!("{name}: handshake not followed to its end: {hs}"));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The CLI path: `sensor analyze --json FILE`, as the oracle runs it.
#[test]
fn cli_json_matches_the_expected_records() {
    let mut failures = Vec::new();
    for (name, pcap, exp_file) in captures() {
        let out = sensor_cli::run(["analyze".as_ref(), "--json".as_ref(), pcap.as_os_str()]);
        out.assert_no_panic();
        assert_eq!(out.code, Some(0), "{name}: {}", out.stderr);
        let lines = parse_lines(&out.stdout).unwrap_or_else(|e| panic!("{name}: {e}"));
        let summaries = kind(&lines, "summary");
        assert_eq!(summaries.len(), 1, "{name}: one summary line");
        assert_eq!(
            lines.last().map(|l| &l["kind"]),
            Some(&Value::from("summary")),
            "{name}: the summary comes last"
        );
        let exp = expected(&exp_file);
        assert_eq!(
            summaries[0]["handshakes"],
            kind(&exp, "handshake").len(),
            "{name}"
        );
        for m in mismatches(&exp, &lines) {
            failures.push(format!("{name}: {m}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn handshakes_of(name: &str) -> Vec<Value> {
    let lines = expected(&data_dir().join(format!("{name}.expected.jsonl")));
    kind(&lines, "handshake").into_iter().cloned().collect()
}

fn field<'a>(hs: &'a [Value], f: &str) -> Vec<&'a Value> {
    hs.iter().map(|h| &h[f]).collect()
}

/// The expected files say what each scenario is about, so that comparing
/// against them means something (a re-recording that lost the point of a
/// scenario fails here).
#[test]
fn expected_records_carry_each_scenarios_point() {
    for (name, _, exp_file) in captures() {
        if NOT_TLS.contains(&name.as_str()) {
            continue;
        }
        let exp = expected(&exp_file);
        let hs = kind(&exp, "handshake");
        assert!(!hs.is_empty(), "{name}: no handshake expected");
        for h in hs {
            for f in ["time", "version", "cipher", "ja3", "ja3s", "ja4"] {
                assert!(h[f].is_string(), "{name}: {f} in {h}");
            }
            assert_eq!(
                h["sni"].is_string(),
                !NO_SNI.contains(&name.as_str()),
                "{name}: sni in {h}"
            );
        }
    }
    for n in [
        "tls12-resume-ticket",
        "tls12-resume-session-id",
        "tls13-resume",
    ] {
        let hs = handshakes_of(n);
        assert_eq!(
            field(&hs, "resumed"),
            [&Value::Bool(false), &Value::Bool(true)],
            "{n}"
        );
    }
    assert_eq!(
        handshakes_of("tls12-resume-ticket")[1]["server_chain"],
        Value::Array(vec![])
    );
    // psql and openssl s_client -starttls postgres, both after an SSLRequest.
    let pg = handshakes_of("starttls-postgres");
    assert_eq!(field(&pg, "starttls"), [&"postgres", &"postgres"]);
    assert_eq!(
        field(&handshakes_of("starttls-smtp"), "starttls"),
        [&"smtp"]
    );
    assert_eq!(
        field(&handshakes_of("starttls-http-connect"), "starttls"),
        [&"http_connect"]
    );
    assert_eq!(field(&handshakes_of("starttls-ftp"), "starttls"), [&"ftp"]);
    for (n, how) in [
        ("starttls-imap", "imap"),
        ("starttls-pop3", "pop3"),
        ("starttls-ldap", "ldap"),
    ] {
        assert_eq!(field(&handshakes_of(n), "starttls"), [&how], "{n}");
    }
    assert_eq!(
        field(&handshakes_of("starttls-mysql"), "starttls"),
        [&"mysql"]
    );
    assert_eq!(field(&handshakes_of("tls13"), "starttls"), [&Value::Null]);
    let m = &handshakes_of("tls12-mutual")[0];
    assert_eq!(m["mutual"], true);
    assert_eq!(m["client_chain"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        handshakes_of("tls12-alert-unknown-ca")[0]["alert"],
        "unknown_ca"
    );
    let refused = &handshakes_of("tls12-alert-no-client-cert")[0];
    assert_eq!(refused["alert"], "handshake_failure");
    assert_eq!(refused["mutual"], true);
    assert_eq!(refused["client_chain"], Value::Array(vec![]));
    let v2 = &handshakes_of("tls10-sslv2-hello")[0];
    assert_eq!(v2["version"], "TLS 1.0");
    assert!(v2["ja4"].as_str().is_some_and(|j| j.starts_with("t10i")));
    assert_eq!(v2["server_chain"].as_array().map(Vec::len), Some(1));
    let hrr = &handshakes_of("tls13-hello-retry")[0];
    assert_eq!(hrr["version"], "TLS 1.3");
    assert_eq!(handshakes_of("tls13")[0]["alpn"], Value::Null);
    assert_eq!(
        field(&handshakes_of("tls12-alpn-nginx"), "alpn"),
        [&Value::from("h2"), &Value::from("http/1.1")]
    );
    assert_eq!(
        handshakes_of("tls12-ipv6")[0]["server"]["ip"],
        "fd00:123::1"
    );
    let certs = kind(
        &expected(&data_dir().join("tls12-expired.expected.jsonl")),
        "certificate",
    )
    .into_iter()
    .cloned()
    .collect::<Vec<_>>();
    assert_eq!(certs[0]["not_after"], "2021-01-01T00:00:00Z");
    // MTU 400: no frame is larger, so the two-certificate chain (> 1.5 KB)
    // crossed several segments.
    let mtu = std::fs::read(data_dir().join("tls12-mtu400.pcap")).unwrap();
    let largest = pcap_records(&mtu).iter().map(|r| r.1).max().unwrap();
    assert!(largest <= 14 + 400, "largest frame {largest}");
    assert_eq!(
        handshakes_of("tls12-mtu400")[0]["server_chain"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

/// The rules of each finding of the one handshake `sensor analyze` reports
/// for a recorded capture.
fn findings_of(name: &str) -> Vec<(String, String)> {
    let got = analyze_files(&[data_dir().join(format!("{name}.pcap"))]);
    let hs: Vec<&Value> = got.records.handshakes().collect();
    assert_eq!(hs.len(), 1, "{name}");
    hs[0]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["severity"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Issue 14.1: a warning unrecognized_name before the ServerHello does not
/// end the handshake (the expected records hold its version, ja3s, chain).
#[test]
fn a_warning_alert_is_reported_and_the_handshake_goes_on() {
    let h = &handshakes_of("tls12-warning-alert")[0];
    assert_eq!(h["alert"], "unrecognized_name");
    assert_eq!(h["version"], "TLS 1.2");
    assert!(h["ja3s"].is_string());
    assert_eq!(h["server_chain"].as_array().map(Vec::len), Some(1));
    assert!(
        findings_of("tls12-warning-alert")
            .iter()
            .any(|(r, _)| r == "cert.untrusted"),
        "the chain was followed and judged"
    );
}

/// Issue 14.7: an unrelated intermediate beside a leaf of an unknown PKI
/// does not make the chain merely incomplete.
#[test]
fn a_stray_intermediate_leaves_the_leaf_untrusted() {
    let f = findings_of("tls12-stray-intermediate");
    assert!(
        f.contains(&("cert.untrusted".into(), "high".into())),
        "{f:?}"
    );
    assert!(
        !f.iter().any(|(r, _)| r == "cert.incomplete_chain"),
        "{f:?}"
    );
}

/// Issue 14.6: 398 days and one second is over the 398-day limit.
#[test]
fn validity_of_398_days_and_a_second_is_too_long() {
    let certs = kind(
        &expected(&data_dir().join("tls12-validity-398d.expected.jsonl")),
        "certificate",
    )
    .into_iter()
    .cloned()
    .collect::<Vec<_>>();
    assert_eq!(certs[0]["not_before"], "2026-01-01T00:00:00Z");
    assert_eq!(certs[0]["not_after"], "2027-02-03T00:00:00Z");
    let f = findings_of("tls12-validity-398d");
    assert!(f.iter().any(|(r, _)| r == "cert.long_validity"), "{f:?}");
}

/// Issue 14.4: TCP Fast Open. The second connection's ClientHello rides
/// in its SYN (which carries the cookie the first one got); both
/// handshakes are followed to their end.
#[test]
fn a_client_hello_in_the_syn_is_followed() {
    let pcap = std::fs::read(data_dir().join("tls12-tcp-fast-open.pcap")).unwrap();
    // Ethernet, IPv4 without options: TCP at 34, flags at 34 + 13.
    let hellos_in_syn = pcap_records(&pcap)
        .into_iter()
        .filter(|&(at, len)| {
            let f = &pcap[at + 16..at + 16 + len];
            let tcp = &f[34..];
            let payload = &tcp[(tcp[12] >> 4) as usize * 4..];
            tcp[13] & 0x12 == 0x02 && payload.first() == Some(&22)
        })
        .count();
    assert_eq!(hellos_in_syn, 1);
    let hs = handshakes_of("tls12-tcp-fast-open");
    assert_eq!(field(&hs, "version"), [&Value::from("TLS 1.2"); 2]);
    assert_eq!(field(&hs, "sni"), [&Value::from("tfo.test"); 2]);
    let got = analyze_files(&[data_dir().join("tls12-tcp-fast-open.pcap")]);
    let reported: Vec<_> = got.records.handshakes().collect();
    assert_eq!(reported.len(), 2);
    for h in reported {
        assert_eq!(h["complete"], true, "{h}");
        assert_eq!(h["server_chain"].as_array().map(Vec::len), Some(1), "{h}");
    }
}

#[test]
fn plain_http_is_no_handshake() {
    let got = analyze_files(&[data_dir().join("plain-http.pcap")]);
    assert!(got.failed.is_empty());
    assert_eq!(got.records.handshakes().count(), 0);
    assert_eq!(got.records.certificates().count(), 0);
    let s = &got.summary;
    assert_eq!((s.connections, s.tls_connections, s.handshakes), (1, 0, 0));
    assert!(s.tcp_segments > 5, "the HTTP exchange was read: {s:?}");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

/// Stands in for the Kubernetes inventory: the listed addresses are pods.
struct Pods(Vec<&'static str>);

impl Pods {
    fn pod(&self, ip: std::net::IpAddr) -> Option<Peer> {
        let ip = ip.to_string();
        self.0.contains(&ip.as_str()).then(|| Peer {
            kind: PeerKind::Pod,
            namespace: Some("default".into()),
            name: Some(format!("pod-{ip}")),
            ..Peer::external()
        })
    }
}

impl Correlator for Pods {
    fn correlate(&self, c: &Connection) -> Correlation {
        self.peers(c.client, c.server)
    }

    fn peers(&self, client: SocketAddr, server: SocketAddr) -> Correlation {
        Correlation {
            source: self.pod(client.ip()),
            destination: self.pod(server.ip()),
            ..Default::default()
        }
    }
}

fn config_with_pods(pods: &[&'static str]) -> PipelineConfig {
    PipelineConfig {
        correlator: Arc::new(Pods(pods.to_vec())),
        ..PipelineConfig::default()
    }
}

/// curl against nginx without TLS, both peers pods: one finding, with the
/// client that sent the SYN and the bytes each way tshark shows (74 and 153).
#[test]
fn plain_http_between_pods_is_tls_plaintext() {
    let pcap = data_dir().join("plain-http.pcap");
    let got = analyze_with(
        std::slice::from_ref(&pcap),
        config_with_pods(&["10.123.0.1", "10.123.0.2"]),
    );
    let f: Vec<&Value> = got.records.findings().collect();
    assert_eq!(f.len(), 1, "{f:?}");
    let f = f[0];
    assert_eq!(f["rule"], "tls.plaintext");
    assert_eq!(f["severity"], "medium");
    assert_eq!(f["client"]["ip"], "10.123.0.2");
    assert_eq!(f["server"]["ip"], "10.123.0.1");
    assert_eq!(f["server"]["port"], 80);
    assert_eq!(f["evidence"]["bytes_to_server"], 74);
    assert_eq!(f["evidence"]["bytes_to_client"], 153);
    assert_eq!(got.summary.plaintext_flows, 1);
    assert_eq!(got.summary.findings.get("tls.plaintext"), Some(&1));
    assert!(got.summary.errors.is_empty(), "{:?}", got.summary.errors);

    // One peer unknown to the inventory: not "between workloads".
    let got = analyze_with(
        std::slice::from_ref(&pcap),
        config_with_pods(&["10.123.0.1"]),
    );
    assert_eq!(got.records.findings().count(), 0);
    assert_eq!(got.summary.plaintext_flows, 1);
    // No inventory at all.
    let got = analyze_files(std::slice::from_ref(&pcap));
    assert_eq!(got.records.findings().count(), 0);
}

/// The CLI with a Kubernetes snapshot naming both peers of plain-http.pcap
/// as pods: the capture read twice is two plaintext connections to one
/// server endpoint in one window, so one tls.plaintext line (both counted
/// in the summary), naming the pods. Without the snapshot: none.
#[test]
fn plain_http_with_an_inventory_is_one_finding_per_server() {
    let pcap = data_dir().join("plain-http.pcap");
    let pods = data_dir().join("plaintext-pods.yaml");
    let out = sensor_cli::run([
        "analyze".as_ref(),
        "--json".as_ref(),
        "--inventory".as_ref(),
        pods.as_os_str(),
        pcap.as_os_str(),
        pcap.as_os_str(),
    ]);
    out.assert_no_panic();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines = parse_lines(&out.stdout).expect("JSON lines");
    let found = kind(&lines, "finding");
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = found[0];
    assert_eq!(f["rule"], "tls.plaintext");
    assert_eq!(
        f["server"],
        serde_json::json!({"ip": "10.123.0.1", "port": 80})
    );
    assert_eq!(f["source"]["kind"], "pod");
    assert_eq!(f["source"]["name"], "client");
    assert_eq!(f["destination"]["name"], "web");
    assert_eq!(f["destination"]["namespace"], "shop");
    assert_eq!(f["evidence"]["bytes_to_server"], 74);
    let summary = kind(&lines, "summary")[0];
    assert_eq!(summary["plaintext_flows"], 2);
    assert_eq!(summary["findings"]["tls.plaintext"], 2);

    let out = sensor_cli::run(["analyze".as_ref(), "--json".as_ref(), pcap.as_os_str()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines = parse_lines(&out.stdout).expect("JSON lines");
    assert!(kind(&lines, "finding").is_empty());
    assert_eq!(kind(&lines, "summary")[0]["plaintext_flows"], 1);
}

/// The captures that hold no TLS connection.
const NOT_TLS: &[&str] = &["plain-http", "postgres-ssl-refused"];
/// Captures whose ClientHello carries no SNI: ldapsearch connects to an
/// address, and an SSLv2-compatible hello has no room for extensions.
const NO_SNI: &[&str] = &["starttls-ldap", "tls10-sslv2-hello"];

/// PostgreSQL with ssl=off answers the SSLRequest with 'N' and psql goes
/// on in clear: one plaintext flow, a tls.plaintext finding between pods,
/// no handshake.
#[test]
fn a_refused_postgres_upgrade_is_plaintext() {
    let pcap = data_dir().join("postgres-ssl-refused.pcap");
    let got = analyze_with(
        std::slice::from_ref(&pcap),
        config_with_pods(&["10.123.0.1", "10.123.0.2"]),
    );
    let plain: Vec<&Value> = got
        .records
        .findings()
        .filter(|f| f["rule"] == "tls.plaintext")
        .collect();
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert_eq!(plain[0]["server"]["port"], 5432);
    assert_eq!(got.summary.plaintext_flows, 1);
    assert_eq!(got.summary.handshakes, 0);
}

/// Every TLS capture, peers known as pods: TLS is never plaintext.
#[test]
fn tls_captures_are_never_plaintext() {
    for (name, pcap, _) in captures() {
        if NOT_TLS.contains(&name.as_str()) {
            continue;
        }
        let got = analyze_with(
            std::slice::from_ref(&pcap),
            config_with_pods(&["10.123.0.1", "10.123.0.2", "fd00:123::1", "fd00:123::2"]),
        );
        let plain: Vec<&Value> = got
            .records
            .findings()
            .filter(|f| f["rule"] == "tls.plaintext")
            .collect();
        assert!(plain.is_empty(), "{name}: {plain:?}");
        assert_eq!(got.summary.plaintext_flows, 0, "{name}");
    }
}

#[test]
fn empty_file_is_a_clear_error() {
    let f = TempFile::new("empty.pcap", b"");
    let out = sensor_cli::run(["analyze".as_ref(), "--json".as_ref(), f.0.as_os_str()]);
    out.assert_no_panic();
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("the file is empty"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&*f.0.to_string_lossy()),
        "names the file: {}",
        out.stderr
    );
    let got = analyze_files(std::slice::from_ref(&f.0));
    assert_eq!(got.failed.len(), 1);
    assert_eq!(got.summary.errors.get("capture_file_unreadable"), Some(&1));
}

#[test]
fn files_that_are_not_captures_are_a_clear_error() {
    let mut noise = Noise::new(7);
    let mut random = noise.bytes(4096);
    random[0] = 0x42; // no capture format starts with this byte
    let text = TempFile::new("notes.txt", b"These are not packets.\nJust text.\n");
    let bytes = TempFile::new("random.bin", &random);
    for f in [&text, &bytes] {
        let out = sensor_cli::run(["analyze".as_ref(), f.0.as_os_str()]);
        out.assert_no_panic();
        assert_eq!(out.code, Some(1), "{}", out.stderr);
        assert!(
            out.stderr.contains("not a pcap or pcapng file"),
            "{}",
            out.stderr
        );
        let got = analyze_files(std::slice::from_ref(&f.0));
        assert_eq!(got.failed.len(), 1, "{}", f.0.display());
    }
    // A good file next to a bad one is still read; the exit status says one failed.
    let good = data_dir().join("tls12-rsa-chain.pcap");
    let out = sensor_cli::run([
        "analyze".as_ref(),
        "--json".as_ref(),
        text.0.as_os_str(),
        good.as_os_str(),
    ]);
    out.assert_no_panic();
    assert_eq!(out.code, Some(1));
    let lines = parse_lines(&out.stdout).unwrap();
    assert_eq!(kind(&lines, "handshake").len(), 1);
}

/// Cut in the middle of the largest packet (the server's flight with the
/// chain): what came before is reported, the damaged tail is counted.
#[test]
fn truncated_capture_keeps_what_came_before() {
    let bytes = std::fs::read(data_dir().join("tls12-rsa-chain.pcap")).unwrap();
    let records = pcap_records(&bytes);
    let (index, &(at, caplen)) = records.iter().enumerate().max_by_key(|(_, r)| r.1).unwrap();
    let cut = TempFile::new("truncated.pcap", &bytes[..at + 16 + caplen / 2]);
    let got = analyze_files(std::slice::from_ref(&cut.0));
    assert!(got.failed.is_empty(), "a damaged tail is not a failed file");
    assert_eq!(got.summary.frames, index as u64);
    assert_eq!(got.summary.errors.get("capture_file_damaged"), Some(&1));
    let hs: Vec<&Value> = got.records.handshakes().collect();
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0]["sni"], "good.test");
    assert_eq!(hs[0]["complete"], false);
    assert_eq!(hs[0]["server_chain"], Value::Array(vec![]));

    let out = sensor_cli::run(["analyze".as_ref(), "--json".as_ref(), cut.0.as_os_str()]);
    out.assert_no_panic();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines = parse_lines(&out.stdout).unwrap();
    let summary = kind(&lines, "summary")[0];
    assert_eq!(summary["errors"]["capture_file_damaged"], 1);
    assert!(
        out.stderr.contains("damaged"),
        "says so once: {}",
        out.stderr
    );
}

/// A valid header, then noise: the records' lengths are nonsense (up to
/// 4 GiB), which must neither allocate that much nor crash.
#[test]
fn garbage_after_a_valid_header_is_counted() {
    let mut bytes = PcapWriter::default().into_bytes();
    bytes.extend(Noise::new(11).bytes(64 << 10));
    let f = TempFile::new("corrupt.pcap", &bytes);
    let out = sensor_cli::run(["analyze".as_ref(), "--json".as_ref(), f.0.as_os_str()]);
    out.assert_no_panic();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines = parse_lines(&out.stdout).unwrap();
    assert_eq!(
        kind(&lines, "summary")[0]["errors"]["capture_file_damaged"],
        1
    );
}

/// A TLS record of `ctype` around `body`, with a correct length.
fn tls_record(ctype: u8, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ctype, 3, 1];
    r.extend((body.len() as u16).to_be_bytes());
    r.extend(body);
    r
}

/// A handshake message of `htype` whose body is noise, in a record.
fn noise_handshake(noise: &mut Noise, htype: u8, len: usize) -> Vec<u8> {
    let mut m = vec![htype];
    m.extend(&(len as u32).to_be_bytes()[1..]);
    if htype <= 2 {
        // Hello version, so the parser gets past the first field.
        m.extend([3, 3]);
        m.extend(noise.bytes(len.saturating_sub(2)));
    } else {
        m.extend(noise.bytes(len));
    }
    tls_record(22, &m)
}

/// One payload of noise: raw, or records of every content type with noise
/// inside, or a handshake message header whose length lies.
fn noise_payload(noise: &mut Noise) -> Vec<u8> {
    let len = 1 + noise.below(1400) as usize;
    match noise.below(4) {
        0 => noise.bytes(len),
        1 => {
            let t = [20, 21, 22, 23, 24][noise.below(5) as usize];
            tls_record(t, &noise.bytes(len))
        }
        2 => {
            let t = [1, 2, 4, 11, 12, 13, 14, 16, 20][noise.below(9) as usize];
            noise_handshake(noise, t, len)
        }
        _ => {
            // Claims a message far longer than what follows.
            let mut m = vec![11, 0x7f, 0xff, 0xff];
            m.extend(noise.bytes(len));
            tls_record(22, &m)
        }
    }
}

/// The TCP payload of the first ClientHello in a recorded capture.
fn recorded_client_hello() -> Vec<u8> {
    let bytes = std::fs::read(data_dir().join("tls12-rsa-chain.pcap")).unwrap();
    for (at, caplen) in pcap_records(&bytes) {
        let frame = &bytes[at + 16..at + 16 + caplen];
        let ip = &frame[14..];
        let tcp = &ip[((ip[0] & 0x0f) as usize) * 4..];
        let payload = &tcp[((tcp[12] >> 4) as usize) * 4..];
        if payload.len() > 6 && payload[0] == 22 && payload[5] == 1 {
            return payload.to_vec();
        }
    }
    panic!("no ClientHello in tls12-rsa-chain.pcap");
}

/// Connections whose payloads are noise shaped like TLS at several depths:
/// a quarter open with a real ClientHello (so the server's noise reaches the
/// ServerHello, Certificate and record parsers), most others with a
/// ClientHello record whose body is noise (so the hello parser runs on it);
/// sequence numbers jump and repeat now and then.
fn garbage_capture(conns: u32, segments_per_conn: u32) -> (Vec<u8>, u64) {
    let real_hello = recorded_client_hello();
    let mut noise = Noise::new(2024);
    let mut pcap = PcapWriter::default();
    let mut ts = 1_700_000_000_000_000u64;
    for c in 0..conns {
        let client = (
            Ipv4Addr::new(10, 9, (c / 200) as u8, (c % 200) as u8 + 2),
            40000 + c as u16,
        );
        let port = [443, 8443, 993, noise.below(60000) as u16 + 1][c as usize % 4];
        let server = (Ipv4Addr::new(10, 9, 255, 1), port);
        let (mut cseq, mut sseq) = (noise.next_u64() as u32, noise.next_u64() as u32);
        if c % 2 == 0 {
            // Half open with a handshake, half are picked up mid-stream.
            for (src, dst, seq, ack, flags) in [
                (client, server, cseq, 0, TCP_SYN),
                (
                    server,
                    client,
                    sseq,
                    cseq.wrapping_add(1),
                    TCP_SYN | TCP_ACK,
                ),
            ] {
                ts += 10;
                let f = ipv4_tcp_frame(&TcpPacket {
                    src,
                    dst,
                    seq,
                    ack,
                    flags,
                    payload: &[],
                });
                pcap.packet(ts, &f);
            }
            cseq = cseq.wrapping_add(1);
            sseq = sseq.wrapping_add(1);
        }
        for n in 0..segments_per_conn {
            let from_client = n == 0 || (n > 1 && noise.below(2) == 0);
            let payload = match n {
                0 if c % 4 == 1 => real_hello.clone(),
                0 if c % 8 != 7 => {
                    let len = 40 + noise.below(400) as usize;
                    noise_handshake(&mut noise, 1, len)
                }
                1 if noise.below(2) == 0 => {
                    let len = 40 + noise.below(200) as usize;
                    noise_handshake(&mut noise, 2, len)
                }
                _ => noise_payload(&mut noise),
            };
            let (src, dst, seq, ack) = if from_client {
                (client, server, &mut cseq, sseq)
            } else {
                (server, client, &mut sseq, cseq)
            };
            let this_seq = match noise.below(20) {
                0 => seq.wrapping_add(noise.below(100_000) as u32), // a gap
                1 => seq.wrapping_sub(noise.below(3000) as u32),    // old data again
                _ => *seq,
            };
            ts += 10 + noise.below(1000);
            let f = ipv4_tcp_frame(&TcpPacket {
                src,
                dst,
                seq: this_seq,
                ack,
                flags: TCP_ACK | TCP_PSH,
                payload: &payload,
            });
            pcap.packet(ts, &f);
            *seq = this_seq.wrapping_add(payload.len() as u32);
        }
    }
    let packets = pcap.packets;
    (pcap.into_bytes(), packets)
}

/// Thousands of TCP segments of noise: every frame is read, the noise is
/// counted as errors, nothing crashes.
#[test]
fn garbage_tcp_payloads_are_skipped_and_counted() {
    let conns = 80;
    let (bytes, written) = garbage_capture(conns, 40);
    assert!(written >= 3000);
    let f = TempFile::new("garbage-tcp.pcap", &bytes);

    let got = analyze_files(std::slice::from_ref(&f.0));
    assert!(got.failed.is_empty());
    let s = &got.summary;
    assert_eq!(s.frames, written);
    assert_eq!(s.tcp_segments, written, "every frame is a TCP segment");
    assert_eq!(s.connections, conns as u64);
    // The ClientHello-shaped openings get the connections into the TLS stage.
    assert!(s.tls_connections >= conns as u64 / 2, "{s:?}");
    assert!(s.handshakes <= s.tls_connections, "{s:?}");
    let hello_errors = s.errors.get("tls_hello_unparsable").copied().unwrap_or(0);
    assert!(hello_errors > 0, "noise hellos are counted: {:?}", s.errors);
    let real = got
        .records
        .handshakes()
        .filter(|h| h["sni"] == "good.test")
        .count();
    assert_eq!(real, conns as usize / 4, "the real hellos are all read");
    for h in got.records.handshakes() {
        assert!(
            h["client"]["ip"].as_str().unwrap().starts_with("10.9."),
            "{h}"
        );
    }
    // Whatever came of the server's noise is counted too, not a crash.
    assert!(s.errors.len() >= 2, "{:?}", s.errors);

    let out = sensor_cli::run(["analyze".as_ref(), "--json".as_ref(), f.0.as_os_str()]);
    out.assert_no_panic();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines = parse_lines(&out.stdout).unwrap();
    let summary = kind(&lines, "summary")[0];
    assert_eq!(summary["frames"], written);
    assert_eq!(summary["errors"]["tls_hello_unparsable"], hello_errors);
}

/// The default output: a header, one row per handshake, the summary.
#[test]
fn table_output_lists_every_handshake() {
    let caps = captures();
    let files: Vec<&std::ffi::OsStr> = caps.iter().map(|(_, p, _)| p.as_os_str()).collect();
    let mut args = vec!["analyze".as_ref()];
    args.extend(files);
    let out = sensor_cli::run(args);
    out.assert_no_panic();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mut lines = out.stdout.lines();
    let header = lines.next().expect("a header line");
    for col in [
        "TIME",
        "CLIENT -> SERVER",
        "SNI",
        "VERSION",
        "CIPHER",
        "ALPN",
        "CHAIN",
        "LEAF SUBJECT",
        "NOT AFTER",
    ] {
        assert!(header.contains(col), "{col} in {header:?}");
    }
    let rows: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
    let mut want = 0;
    for (name, _, exp_file) in &caps {
        for h in kind(&expected(exp_file), "handshake") {
            want += 1;
            // The table's "-" for a ClientHello without SNI.
            let sni = h["sni"].as_str().unwrap_or("-");
            let client = format!(
                "{}:{}",
                h["client"]["ip"].as_str().unwrap(),
                h["client"]["port"]
            );
            let version = h["version"].as_str().unwrap();
            assert!(
                rows.iter()
                    .any(|r| r.contains(&client) && r.contains(sni) && r.contains(version)),
                "{name}: no row with {client}, {sni} and {version} in\n{}",
                rows.join("\n")
            );
        }
    }
    assert_eq!(rows.len(), want, "one row per handshake");
    let rest: String = lines.collect::<Vec<_>>().join("\n");
    assert!(
        rest.contains(&format!("{want} handshakes")),
        "summary: {rest}"
    );
    assert!(rest.contains("errors: none"), "summary: {rest}");
    // The leaf of the good chain, as the table shows it.
    assert!(out.stdout.contains("CN=good.test,O=tls-sensor tests,C=XX"));
}
