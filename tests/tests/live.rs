//! Live capture end to end: the real kernel program on veths and loopback
//! in network namespaces made here, real openssl peers, the sensor binary.
//! Needs root.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tests::certs::Pki;
use tests::live_sensor::LiveSensor as Sensor;
use tests::netns::{CLIENT4, Netns, Pair, SERVER4, SERVER6, Tcpdump};
use tests::peers::{curl, http_server, s_client, s_server};
use tests::proc::{Reaped, run};
use tests::{json_lines, of_kind, patience, require_root, sensor_bin};

const SNI: &str = "server.test";

fn handshakes(lines: &[Value]) -> Vec<&Value> {
    of_kind(lines, "handshake")
}

fn summary(lines: &[Value]) -> &Value {
    of_kind(lines, "summary").pop().expect("a summary line")
}

fn kernel(lines: &[Value], counter: &str) -> u64 {
    summary(lines)["kernel"][counter]
        .as_u64()
        .unwrap_or_else(|| panic!("no kernel counter {counter}"))
}

fn by_sni<'a>(lines: &'a [Value], sni: &str) -> Vec<&'a Value> {
    handshakes(lines)
        .into_iter()
        .filter(|h| h["sni"] == sni)
        .collect()
}

fn one<'a>(hs: Vec<&'a Value>, what: &str) -> &'a Value {
    assert_eq!(hs.len(), 1, "expected one {what} handshake, got {hs:#?}");
    hs[0]
}

fn pki_with_leaf() -> Pki {
    let pki = Pki::new();
    pki.leaf("leaf", SNI, 0, false);
    pki
}

/// tcpdump on the client's side of `lab`, once listening.
fn tcpdump(lab: &Pair, pcap: &std::path::Path) -> Tcpdump {
    Tcpdump::start(&lab.client, &lab.client_if, pcap).expect("tcpdump")
}

/// The fields of a handshake record that a live run and `sensor analyze`
/// of a capture of the same traffic must agree on (all but the time).
fn comparable(h: &Value) -> Value {
    let mut h = h.clone();
    h.as_object_mut().expect("object").remove("time");
    h
}

/// `sensor analyze --json` of a capture, with these extra arguments.
fn analyze(pcap: &std::path::Path, extra: &[&str]) -> Vec<Value> {
    let out = run(Command::new(sensor_bin())
        .args(["analyze", "--json"])
        .args(extra)
        .arg(pcap));
    json_lines(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn tls12_tls13_ipv4_ipv6_and_live_equals_analyze() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("v");
    let _v4 = s_server(&lab.server, &pki, 4431, "leaf", &[]);
    let _v6 = s_server(&lab.server, &pki, 4432, "leaf", &["-6"]);
    let pcap = tempfile::NamedTempFile::new().expect("temp");
    let dump = tcpdump(&lab, pcap.path());
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if]);

    s_client(&lab.client, SERVER4, 4431, SNI, &["-tls1_2"]);
    s_client(&lab.client, SERVER4, 4431, SNI, &["-tls1_3"]);
    s_client(
        &lab.client,
        &format!("[{SERVER6}]"),
        4432,
        SNI,
        &["-tls1_2"],
    );
    let lines = sensor.stop();
    std::thread::sleep(patience(Duration::from_millis(300)));
    dump.stop().expect("tcpdump");

    let leaf = pki.fingerprint("leaf.pem");
    let int = pki.fingerprint("int.pem");
    let hs = handshakes(&lines);
    assert_eq!(hs.len(), 3, "{hs:#?}");
    let v12: Vec<_> = hs
        .iter()
        .filter(|h| h["version"] == "TLS 1.2" && h["client"]["ip"] == CLIENT4)
        .collect();
    let v13: Vec<_> = hs.iter().filter(|h| h["version"] == "TLS 1.3").collect();
    let v6: Vec<_> = hs.iter().filter(|h| h["server"]["ip"] == SERVER6).collect();
    assert_eq!((v12.len(), v13.len(), v6.len()), (1, 1, 1), "{hs:#?}");
    for h in v12.iter().chain(v6.iter()) {
        assert_eq!(h["sni"], SNI);
        assert_eq!(h["server_chain"], serde_json::json!([leaf, int]));
        assert_eq!(h["certificate_source"], "observed");
        assert_eq!(h["mutual"], false);
        assert_eq!(h["resumed"], false);
        assert!(h["ja3"].as_str().is_some_and(|j| j.len() == 32));
        assert!(h["ja4"].as_str().is_some_and(|j| j.starts_with("t12d")));
    }
    // A handshake's time is its connection's first packet, the SYN: the
    // same instant its flow records start at (both from the kernel's
    // CONNS entry), though the kernel ships only from the ClientHello.
    let flows = of_kind(&lines, "flow");
    for h in &hs {
        let f = flows
            .iter()
            .find(|f| f["client"] == h["client"])
            .unwrap_or_else(|| panic!("no flow record for {h}"));
        assert_eq!(f["start"], h["time"], "{h}\n{f}");
    }
    assert_eq!(v13[0]["server_chain"], serde_json::json!([]));
    assert_eq!(v13[0]["mutual"], Value::Null);
    assert!(
        v13[0]["cipher"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS_AES_") || c.starts_with("TLS_CHACHA"))
    );
    let leaf_cert = of_kind(&lines, "certificate")
        .into_iter()
        .find(|c| c["sha256"] == leaf)
        .expect("leaf record");
    assert_eq!(leaf_cert["subject"], format!("CN={SNI}"));
    assert_eq!(leaf_cert["issuer"], "CN=Test Intermediate CA");
    assert_eq!(leaf_cert["san"]["dns"], serde_json::json!([SNI]));

    // The same traffic captured by tcpdump, through `sensor analyze`.
    let offline = analyze(pcap.path(), &[]);
    let key = |h: &Value| format!("{}:{}", h["client"]["ip"], h["client"]["port"]);
    let live: BTreeMap<String, Value> = hs.iter().map(|h| (key(h), comparable(h))).collect();
    let off: BTreeMap<String, Value> = handshakes(&offline)
        .iter()
        .map(|h| (key(h), comparable(h)))
        .collect();
    assert_eq!(live, off);
    let certs = |l: &[Value]| -> BTreeMap<String, Value> {
        of_kind(l, "certificate")
            .iter()
            .map(|c| (c["sha256"].to_string(), (*c).clone()))
            .collect()
    };
    assert_eq!(certs(&lines), certs(&offline));
}

#[test]
fn mutual_tls_client_chain() {
    require_root();
    let pki = pki_with_leaf();
    pki.leaf("client", "client.test", 0, true);
    let lab = Pair::new("m");
    let _srv = s_server(
        &lab.server,
        &pki,
        4433,
        "leaf",
        &["-Verify", "1", "-CAfile", &pki.p("root.pem")],
    );
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if]);
    let out = s_client(
        &lab.client,
        SERVER4,
        4433,
        SNI,
        &[
            "-tls1_2",
            "-cert",
            &pki.p("client.pem"),
            "-key",
            &pki.p("client.key"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = sensor.stop();
    let h = one(by_sni(&lines, SNI), "mutual");
    assert_eq!(h["mutual"], true);
    assert_eq!(
        h["client_chain"],
        serde_json::json!([pki.fingerprint("client.pem")])
    );
}

#[test]
fn mtu_400_spreads_the_certificate_over_many_segments() {
    require_root();
    let pki = Pki::new();
    pki.leaf("big", SNI, 200, false);
    let lab = Pair::new("t");
    lab.mtu(400);
    // veth hands GSO packets over whole: segmentation offload off, so the
    // wire carries 400-byte packets.
    lab.server.sh(&format!(
        "ethtool -K {} tso off gso off >/dev/null",
        lab.server_if
    ));
    let _srv = s_server(&lab.server, &pki, 4434, "big", &[]);
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if]);
    s_client(&lab.client, SERVER4, 4434, SNI, &["-tls1_2"]);
    let lines = sensor.stop();
    let h = one(by_sni(&lines, SNI), "MTU 400");
    assert_eq!(
        h["server_chain"],
        serde_json::json!([pki.fingerprint("big.pem"), pki.fingerprint("int.pem")])
    );
    // Each record carries at most one segment's payload: many of them.
    assert!(kernel(&lines, "records") > 20, "{:?}", summary(&lines));
}

#[test]
fn gso_packets_of_64k_are_read_whole() {
    require_root();
    let pki = Pki::new();
    pki.leaf("huge", SNI, 1500, false);
    let lab = Pair::new("g");
    lab.server.sh(&format!(
        "ethtool -K {} tso on gso on >/dev/null 2>&1 || true",
        lab.server_if
    ));
    let _srv = s_server(&lab.server, &pki, 4435, "huge", &[]);
    let sensor = Sensor::start(
        &lab.client,
        &["-i", &lab.client_if, "--handshake-budget", "262144"],
    );
    s_client(&lab.client, SERVER4, 4435, SNI, &["-tls1_2"]);
    let lines = sensor.stop();
    let h = one(by_sni(&lines, SNI), "GSO");
    assert_eq!(
        h["server_chain"],
        serde_json::json!([pki.fingerprint("huge.pem"), pki.fingerprint("int.pem")])
    );
    assert_eq!(kernel(&lines, "truncated"), 0);
}

#[test]
fn client_hello_split_across_two_segments() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("s");
    // The server advertises a small MSS, so the client's ClientHello
    // (about 300 bytes with TLS 1.2 only) needs two segments.
    lab.server.sh(&format!(
        "ip route replace 10.77.0.0/24 dev {} advmss 180",
        lab.server_if
    ));
    let _srv = s_server(&lab.server, &pki, 4436, "leaf", &[]);
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if]);
    s_client(&lab.client, SERVER4, 4436, SNI, &["-tls1_2", "-no_ticket"]);
    let lines = sensor.stop();
    let h = one(by_sni(&lines, SNI), "split ClientHello");
    assert_eq!(h["version"], "TLS 1.2");
    assert!(h["ja4"].as_str().is_some_and(|j| j.starts_with("t12d")));
}

/// An SSLv2-compatible ClientHello, the form old clients reach TLS 1.0
/// servers with: the kernel opens a handshake flow for it, and the
/// server's TLS 1.0 reply and chain are reported as `sensor analyze`
/// reports them from a capture of the same traffic.
#[test]
fn an_sslv2_compatible_hello_is_followed_live() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("l");
    let legacy = ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"];
    let _srv = s_server(&lab.server, &pki, 4439, "leaf", &legacy);
    let pcap = tempfile::NamedTempFile::new().expect("temp");
    let dump = tcpdump(&lab, pcap.path());
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if]);
    let hello = lab
        .client
        .cmd(env!("CARGO_BIN_EXE_sslv2-hello"))
        .args([&format!("{SERVER4}:4439"), "0301"])
        .output()
        .expect("sslv2-hello");
    assert!(
        String::from_utf8_lossy(&hello.stdout).contains(tests::sslv2_hello::DONE),
        "{hello:?}"
    );
    let lines = sensor.stop();
    std::thread::sleep(patience(Duration::from_millis(300)));
    dump.stop().expect("tcpdump");

    let hs = handshakes(&lines);
    let h = one(hs.clone(), "SSLv2-compatible hello");
    assert_eq!(h["version"], "TLS 1.0");
    assert_eq!(h["cipher"], "TLS_RSA_WITH_AES_128_CBC_SHA");
    assert_eq!(h["sni"], Value::Null);
    // Version 769 and every spec, SSL 2.0 ones included, as Zeek's JA3
    // counts them: the same for any challenge.
    assert_eq!(h["ja3"], "791adb59dad95bb9ae5e5329e3b044d0");
    assert!(
        h["ja4"]
            .as_str()
            .is_some_and(|j| j.starts_with("t10i040000_"))
    );
    assert_eq!(h["server_chain"].as_array().map(Vec::len), Some(2), "{h}");

    let out = run(Command::new(sensor_bin()).args([
        "analyze",
        "--json",
        pcap.path().to_str().expect("utf-8"),
    ]));
    let offline = json_lines(&String::from_utf8_lossy(&out.stdout));
    let off = one(handshakes(&offline), "SSLv2-compatible hello, offline");
    assert_eq!(comparable(h), comparable(off));
}

#[test]
fn loopback_sees_each_packet_twice_and_reports_once() {
    require_root();
    let pki = pki_with_leaf();
    let ns = Netns::new("l");
    let _srv = s_server(&ns, &pki, 4437, "leaf", &[]);
    let sensor = Sensor::start(&ns, &["-i", "lo"]);
    s_client(&ns, "127.0.0.1", 4437, SNI, &["-tls1_2"]);
    let lines = sensor.stop();
    let h = one(by_sni(&lines, SNI), "loopback");
    assert_eq!(h["server_chain"].as_array().map(Vec::len), Some(2));
    assert!(kernel(&lines, "duplicates") > 0, "{:?}", summary(&lines));
}

/// The clsact path, forced on a kernel that has TCX (as older kernels
/// would take it): a qdisc with our filters on both directions, and the
/// same handshake seen.
#[test]
fn clsact_attach_sees_a_tls12_handshake() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("k");
    let _srv = s_server(&lab.server, &pki, 4441, "leaf", &[]);
    let sensor = Sensor::start(
        &lab.client,
        &["-i", &lab.client_if, "--attach-mode", "clsact"],
    );
    assert!(
        sensor
            .watched
            .seen
            .iter()
            .any(|l| l.contains("attach mode") && l.contains("clsact")),
        "{:#?}",
        sensor.watched.seen
    );
    for dir in ["ingress", "egress"] {
        let out = lab
            .client
            .sh(&format!("tc filter show dev {} {dir}", lab.client_if));
        let filters = String::from_utf8_lossy(&out.stdout);
        assert!(
            filters.contains("tls_tc_eth") && filters.contains("direct-action"),
            "no filter of ours on {dir}: {filters}"
        );
    }
    s_client(&lab.client, SERVER4, 4441, SNI, &["-tls1_2"]);
    let lines = sensor.stop();
    let h = one(by_sni(&lines, SNI), "clsact");
    assert_eq!(h["version"], "TLS 1.2");
    assert_eq!(
        h["server_chain"],
        serde_json::json!([pki.fingerprint("leaf.pem"), pki.fingerprint("int.pem")])
    );
}

/// The path kernels 5.10 to 5.16 take, forced on one that has TCX and
/// bpf_loop: the bounded-loop object (a tail-called `tls_ship`) under a
/// clsact qdisc that was there before it. GSO packets of 64 KiB make each
/// payload many chunks; the records are the same as the bpf_loop object's,
/// so is the handshake.
#[test]
fn bounded_loop_object_under_clsact_sees_a_whole_chain() {
    require_root();
    let pki = Pki::new();
    pki.leaf("huge", SNI, 1500, false);
    let lab = Pair::new("b");
    lab.server.sh(&format!(
        "ethtool -K {} tso on gso on >/dev/null 2>&1 || true",
        lab.server_if
    ));
    let _srv = s_server(&lab.server, &pki, 4442, "huge", &[]);
    // A clsact qdisc there already, as after a restart (the qdisc is left
    // in place) or beside another agent's filters: it is used as it is.
    lab.client
        .sh(&format!("tc qdisc add dev {} clsact", lab.client_if));
    let sensor = Sensor::start(
        &lab.client,
        &[
            "-i",
            &lab.client_if,
            "--attach-mode",
            "clsact",
            "--ship-mode",
            "bounded",
            "--handshake-budget",
            "262144",
        ],
    );
    let said = |what: &str, mode: &str| {
        sensor
            .watched
            .seen
            .iter()
            .any(|l| l.contains(what) && l.contains(mode))
    };
    assert!(said("ship mode", "bounded"), "{:#?}", sensor.watched.seen);
    assert!(said("attach mode", "clsact"), "{:#?}", sensor.watched.seen);
    s_client(&lab.client, SERVER4, 4442, SNI, &["-tls1_2"]);
    let lines = sensor.stop();
    let h = one(by_sni(&lines, SNI), "bounded loop");
    assert_eq!(h["version"], "TLS 1.2");
    assert_eq!(
        h["server_chain"],
        serde_json::json!([pki.fingerprint("huge.pem"), pki.fingerprint("int.pem")])
    );
    assert_eq!(kernel(&lines, "truncated"), 0, "{:?}", summary(&lines));
    assert!(kernel(&lines, "records") > 1, "{:?}", summary(&lines));
}

/// Attaches the auxiliary peer counter to `iface` inside `ns` (after the
/// sensor, as a CNI's program would be), runs `during`, returns its count.
fn with_peer_counter(ns: &Netns, iface: &str, during: impl FnOnce()) -> u64 {
    use aya::maps::PerCpuArray;
    use aya::programs::{SchedClassifier, tc::TcAttachType};
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let ns_path = format!("/var/run/netns/{}", ns.name);
    let iface = iface.to_string();
    let worker = std::thread::spawn(move || -> u64 {
        let f = std::fs::File::open(&ns_path).expect("netns file");
        use std::os::fd::AsRawFd;
        // SAFETY: moves only this thread into the namespace.
        assert_eq!(
            unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns"
        );
        let mut ebpf = aya::Ebpf::load(sensor::capture::live::aux_object()).expect("load aux");
        let prog: &mut SchedClassifier = ebpf
            .program_mut("tc_peer_counter")
            .expect("program")
            .try_into()
            .expect("classifier");
        prog.load().expect("load program");
        let a = prog
            .attach(&iface, TcAttachType::Ingress)
            .expect("attach ingress");
        let b = prog
            .attach(&iface, TcAttachType::Egress)
            .expect("attach egress");
        ready_tx.send(()).expect("ready");
        rx.recv().expect("done");
        prog.detach(a).expect("detach");
        prog.detach(b).expect("detach");
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(ebpf.map("PEER_PACKETS").expect("map")).expect("array");
        map.get(&0, 0).expect("read").iter().sum()
    });
    ready_rx.recv().expect("peer attached");
    during();
    tx.send(()).expect("stop");
    worker.join().expect("peer thread")
}

#[test]
fn a_program_attached_after_ours_still_sees_every_packet() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("c");
    let _srv = s_server(&lab.server, &pki, 4438, "leaf", &[]);
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if]);
    let pings = 30;
    let peer = with_peer_counter(&lab.client, &lab.client_if, || {
        lab.client
            .sh(&format!("ping -q -c {pings} -i 0.01 {SERVER4} >/dev/null"));
        s_client(&lab.client, SERVER4, 4438, SNI, &["-tls1_2"]);
    });
    let lines = sensor.stop();
    one(by_sni(&lines, SNI), "chained");
    let ours = kernel(&lines, "packets");
    assert!(
        peer >= 2 * pings,
        "the peer saw {peer} packets, fewer than the {} pings and replies",
        2 * pings
    );
    assert!(
        peer <= ours,
        "the peer saw {peer} packets, more than our {ours}"
    );
}

#[test]
fn ring_buffer_flood_is_counted_and_recovers() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("r");
    let _srv = s_server(&lab.server, &pki, 4439, "leaf", &[]);
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if, "--ring-bytes", "8192"]);
    // User space is stopped during the flood, so the kernel fills the ring
    // however fast the machine is; the program must count and carry on.
    let pid = sensor.watched.child.pid();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    lab.client.sh(&format!(
        "for i in $(seq 60); do timeout 10 openssl s_client -connect {SERVER4}:4439 -servername flood.test \
         -tls1_2 </dev/null >/dev/null 2>&1 & done; wait"
    ));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    std::thread::sleep(patience(Duration::from_millis(500)));
    s_client(&lab.client, SERVER4, 4439, "after.flood", &["-tls1_2"]);
    let lines = sensor.stop();
    assert!(
        kernel(&lines, "ring_buffer_full") > 0,
        "{:?}",
        summary(&lines)
    );
    one(by_sni(&lines, "after.flood"), "post-flood");
}

#[test]
fn full_flow_map_is_counted_and_recovers() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("f");
    let _srv = s_server(&lab.server, &pki, 4440, "leaf", &[]);
    // A listener that accepts and never answers: handshakes stall after the ClientHello.
    let mut hold = lab.server.cmd("python3");
    hold.args([
        "-c",
        "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
         s.bind(('0.0.0.0',4441))\ns.listen(64)\nc=[]\nwhile True: c.append(s.accept()[0])",
    ]);
    let _hold = Reaped::spawn(&mut hold);
    lab.server.wait_listen(4441);
    let sensor = Sensor::start(
        &lab.client,
        &[
            "-i",
            &lab.client_if,
            "--flow-entries",
            "2",
            "--flow-idle",
            "1",
        ],
    );
    lab.client.sh(&format!(
        "for i in 1 2 3 4 5; do timeout 2 openssl s_client -connect {SERVER4}:4441 -servername stall.test \
         </dev/null >/dev/null 2>&1 & done; wait"
    ));
    // The stalled flows expire after a second idle; then the map has room again.
    std::thread::sleep(patience(Duration::from_secs(3)));
    s_client(&lab.client, SERVER4, 4440, "after.full", &["-tls1_2"]);
    let lines = sensor.stop();
    assert!(
        kernel(&lines, "flow_map_full") >= 3,
        "{:?}",
        summary(&lines)
    );
    assert!(
        kernel(&lines, "flows_expired") >= 2,
        "{:?}",
        summary(&lines)
    );
    one(by_sni(&lines, "after.full"), "post-full");
}

#[test]
fn without_capabilities_it_names_the_missing_ones() {
    require_root();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(sensor_bin())
        .args(["run", "--duration", "1"])
        .output()
        .expect("setpriv");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for cap in ["CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON"] {
        assert!(err.contains(cap), "{cap} not named in: {err}");
    }
}

/// Plain HTTP between two namespaces: the kernel follows each connection
/// from its SYN, counts it without shipping its payload, and summarises it
/// when it closes; a TLS connection next to it is not plaintext. Live and
/// `sensor analyze` of a capture of the same traffic count the same flows.
/// Without an inventory nobody is a workload: no tls.plaintext finding.
#[test]
fn plain_http_is_accounted_as_plaintext() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("p");
    let _http = http_server(&lab.server, 8080);
    let _tls = s_server(&lab.server, &pki, 4438, "leaf", &[]);
    let pcap = tempfile::NamedTempFile::new().expect("temp");
    let dump = tcpdump(&lab, pcap.path());
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if]);
    for path in ["/", "/nothing-here", "/"] {
        curl(&lab.client, &format!("http://{SERVER4}:8080{path}"));
    }
    s_client(&lab.client, SERVER4, 4438, SNI, &["-tls1_3"]);
    let lines = sensor.stop();
    std::thread::sleep(patience(Duration::from_millis(300)));
    dump.stop().expect("tcpdump");

    let s = summary(&lines);
    assert_eq!(s["plaintext_flows"], 3, "{s}");
    assert_eq!(kernel(&lines, "plain_flows"), 3);
    // Both sides closed each connection: the kernel summarised all three,
    // and the TLS one beside them.
    assert_eq!(kernel(&lines, "conn_summaries"), 4);
    assert_eq!(kernel(&lines, "untracked"), 0);
    assert_eq!(one(by_sni(&lines, SNI), "tls")["version"], "TLS 1.3");
    assert!(
        s["findings"].get("tls.plaintext").is_none(),
        "no inventory, no workloads: {s}"
    );

    let offline = analyze(pcap.path(), &[]);
    assert_eq!(summary(&offline)["plaintext_flows"], 3);
}

/// The same with a Kubernetes snapshot naming both namespaces' addresses
/// as pods: three plaintext connections to one server endpoint are one
/// tls.plaintext line, with the bytes `sensor analyze` counts in a capture
/// of the same traffic (with the same snapshot); the TLS connection beside
/// them raises none.
#[test]
fn plain_http_between_pods_is_one_tls_plaintext_finding() {
    require_root();
    let pki = pki_with_leaf();
    let pods = tests::data_dir().join("plaintext-pods.yaml");
    let pods = pods.to_str().expect("utf-8");
    let lab = Pair::new("q");
    let _http = http_server(&lab.server, 8081);
    let _tls = s_server(&lab.server, &pki, 4439, "leaf", &[]);
    let pcap = tempfile::NamedTempFile::new().expect("temp");
    let dump = tcpdump(&lab, pcap.path());
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if, "--inventory", pods]);
    for path in ["/", "/a", "/b"] {
        curl(&lab.client, &format!("http://{SERVER4}:8081{path}"));
    }
    s_client(&lab.client, SERVER4, 4439, SNI, &["-tls1_3"]);
    let lines = sensor.stop();
    std::thread::sleep(patience(Duration::from_millis(300)));
    dump.stop().expect("tcpdump");

    let found = of_kind(&lines, "finding");
    let plain: Vec<_> = found
        .iter()
        .filter(|f| f["rule"] == "tls.plaintext")
        .collect();
    assert_eq!(plain.len(), 1, "{found:#?}");
    let f = plain[0];
    assert_eq!(f["client"]["ip"], CLIENT4);
    assert_eq!(
        f["server"],
        serde_json::json!({"ip": SERVER4, "port": 8081})
    );
    assert_eq!(f["source"]["name"], "client");
    assert_eq!(f["destination"]["name"], "web");
    assert_eq!(summary(&lines)["findings"]["tls.plaintext"], 3);

    let offline = analyze(pcap.path(), &["--inventory", pods]);
    let off: Vec<_> = of_kind(&offline, "finding")
        .into_iter()
        .filter(|f| f["rule"] == "tls.plaintext")
        .collect();
    assert_eq!(off.len(), 1, "{offline:#?}");
    assert_eq!(
        off[0]["client"], f["client"],
        "the first connection in both"
    );
    assert_eq!(off[0]["evidence"], f["evidence"], "live and offline bytes");
    assert!(f["evidence"]["bytes_to_client"].as_u64().unwrap() > 100);
}

/// PostgreSQL with `ssl=on` between two pods (Debian's server, psql and
/// `openssl s_client -starttls postgres` as clients): the SSLRequest
/// preamble is no plaintext, the handshake after it is reported with
/// `starttls: "postgres"` and the chain the server sent; a second server
/// with `ssl=off` answers 'N' to psql's `sslmode=prefer`, and that
/// connection is plaintext. `sensor analyze` of a capture of the same
/// traffic reports the same.
#[test]
fn postgres_sslrequest_is_tls_and_a_refused_one_plaintext() {
    require_root();
    let pki = pki_with_leaf();
    let pods = tests::data_dir().join("plaintext-pods.yaml");
    let pods = pods.to_str().expect("utf-8");
    let lab = Pair::new("g");
    let chain = [pki.read("leaf.pem"), pki.read("int.pem")].concat();
    let key = pki.read("leaf.key");
    let tls = tests::postgres::Tls {
        chain_pem: chain.as_bytes(),
        key_pem: key.as_bytes(),
        max_version: "TLSv1.2",
    };
    let _tls_pg = tests::postgres::Postgres::start(&lab.server, SERVER4, 5432, Some(tls))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let _plain_pg = tests::postgres::Postgres::start(&lab.server, SERVER4, 5433, None)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let pcap = tempfile::NamedTempFile::new().expect("temp");
    let dump = tcpdump(&lab, pcap.path());
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if, "--inventory", pods]);
    let psql = |port, mode| {
        tests::postgres::psql(&lab.client, SERVER4, port, mode).unwrap_or_else(|e| panic!("{e:#}"))
    };
    assert_eq!(psql(5432, "require").trim(), "1");
    let out = s_client(
        &lab.client,
        SERVER4,
        5432,
        SNI,
        &["-starttls", "postgres", "-tls1_2"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"),
        "s_client -starttls postgres saw no certificate: {out:?}"
    );
    assert_eq!(psql(5433, "prefer").trim(), "1");
    let lines = sensor.stop();
    std::thread::sleep(Duration::from_millis(300));
    dump.stop().expect("tcpdump");

    let chain = vec![pki.fingerprint("leaf.pem"), pki.fingerprint("int.pem")];
    let check = |lines: &[Value], how: &str| {
        let hs: Vec<&Value> = handshakes(lines)
            .into_iter()
            .filter(|h| h["server"]["port"] == 5432)
            .collect();
        assert_eq!(hs.len(), 2, "{how}: psql and s_client: {hs:#?}");
        for h in hs {
            assert_eq!(h["starttls"], "postgres", "{how}: {h}");
            assert_eq!(h["version"], "TLS 1.2", "{how}: {h}");
            assert_eq!(h["server_chain"], serde_json::json!(chain), "{how}: {h}");
            assert_eq!(h["certificate_source"], "observed", "{how}: {h}");
        }
        assert!(
            handshakes(lines)
                .iter()
                .all(|h| h["server"]["port"] != 5433),
            "{how}: the refused upgrade is no handshake"
        );
        let plain: Vec<&Value> = of_kind(lines, "finding")
            .into_iter()
            .filter(|f| f["rule"] == "tls.plaintext")
            .collect();
        assert_eq!(plain.len(), 1, "{how}: {plain:#?}");
        assert_eq!(
            plain[0]["server"]["port"], 5433,
            "{how}: only the refused one"
        );
        assert_eq!(summary(lines)["findings"]["tls.plaintext"], 1, "{how}");
        // The flow records agree: the upgraded connections' traffic is
        // encrypted, the refused one's plaintext.
        let ended = |port: u16| -> Vec<&Value> {
            of_kind(lines, "flow")
                .into_iter()
                .filter(|f| f["server"]["port"] == port && !f["end"].is_null())
                .collect()
        };
        let tls = ended(5432);
        assert_eq!(tls.len(), 2, "{how}: {tls:#?}");
        assert!(tls.iter().all(|f| f["tls"].is_object()), "{how}: {tls:#?}");
        let plain = ended(5433);
        assert_eq!(plain.len(), 1, "{how}: {plain:#?}");
        assert!(plain[0]["tls"].is_null(), "{how}: {plain:#?}");
    };
    check(&lines, "live");
    assert_eq!(
        kernel(&lines, "preamble_flows"),
        3,
        "psql, s_client and the refused psql opened with an SSLRequest"
    );
    assert_eq!(
        kernel(&lines, "plain_flows"),
        0,
        "no preamble turned plaintext by the bound"
    );
    check(&analyze(pcap.path(), &["--inventory", pods]), "offline");
}

/// What a live run and `sensor analyze` of its capture must both show of
/// one upgraded connection to `port`: one handshake, `starttls` `how`,
/// TLS 1.2 with `chain` in clear, its flow encrypted, and no
/// `tls.plaintext` anywhere (the preamble is no plaintext).
fn check_upgrade(lines: &[Value], port: u16, how: &str, chain: &[String], run: &str) {
    let hs: Vec<&Value> = handshakes(lines)
        .into_iter()
        .filter(|h| h["server"]["port"] == port)
        .collect();
    let h = one(hs, &format!("{run} {how}"));
    assert_eq!(h["starttls"], how, "{run}: {h}");
    assert_eq!(h["version"], "TLS 1.2", "{run}: {h}");
    assert_eq!(h["server_chain"], serde_json::json!(chain), "{run}: {h}");
    let ended: Vec<&Value> = of_kind(lines, "flow")
        .into_iter()
        .filter(|f| f["server"]["port"] == port && !f["end"].is_null())
        .collect();
    assert_eq!(ended.len(), 1, "{run}: {ended:#?}");
    assert!(ended[0]["tls"].is_object(), "{run}: {ended:#?}");
    let plain: Vec<&Value> = of_kind(lines, "finding")
        .into_iter()
        .filter(|f| f["rule"] == "tls.plaintext")
        .collect();
    assert!(plain.is_empty(), "{run}: {plain:#?}");
}

/// One upgraded connection to a real server in `lab`'s server namespace,
/// made by `openssl s_client -starttls how`, watched live with the pods
/// inventory and captured: both runs must show the upgrade
/// (`check_upgrade`), and the kernel must have shipped the preamble
/// rather than counted it plaintext.
fn upgrade_live_and_offline(lab: &Pair, pki: &Pki, port: u16, how: &str) {
    upgrade_by(lab, pki, port, how, || {
        starttls_client(lab, SERVER4, port, &["-starttls", how, "-tls1_2"])
    });
}

/// `openssl s_client` to `host:port` with `extra`, which must have seen
/// the server's certificate.
fn starttls_client(lab: &Pair, host: &str, port: u16, extra: &[&str]) {
    let out = s_client(&lab.client, host, port, SNI, extra);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BEGIN CERTIFICATE"),
        "s_client {extra:?} saw no certificate: {out:?}"
    );
}

/// [`upgrade_live_and_offline`] with the connection made by `client`; the
/// handshake is the one on the TCP connection to `port` (the server's
/// side the client reaches: a proxy's, for a CONNECT tunnel).
fn upgrade_by(lab: &Pair, pki: &Pki, port: u16, how: &str, client: impl FnOnce()) {
    let pods = tests::data_dir().join("plaintext-pods.yaml");
    let pods = pods.to_str().expect("utf-8");
    let pcap = tempfile::NamedTempFile::new().expect("temp");
    let dump = tcpdump(lab, pcap.path());
    let sensor = Sensor::start(&lab.client, &["-i", &lab.client_if, "--inventory", pods]);
    client();
    let lines = sensor.stop();
    std::thread::sleep(Duration::from_millis(300));
    dump.stop().expect("tcpdump");
    let chain = vec![pki.fingerprint("leaf.pem"), pki.fingerprint("int.pem")];
    check_upgrade(&lines, port, how, &chain, "live");
    assert_eq!(kernel(&lines, "preamble_flows"), 1, "{how}");
    assert_eq!(kernel(&lines, "plain_flows"), 0, "{how}");
    let offline = analyze(pcap.path(), &["--inventory", pods]);
    check_upgrade(&offline, port, how, &chain, "offline");
    let port_of = |lines: &[Value]| -> Vec<Value> {
        handshakes(lines)
            .into_iter()
            .filter(|h| h["server"]["port"] == port)
            .map(comparable)
            .collect()
    };
    assert_eq!(
        port_of(&lines),
        port_of(&offline),
        "{how}: live and offline"
    );
}

/// A Debian server started by `cmd` in `lab`'s server namespace, its
/// output discarded; returned once it listens on `port`.
fn serve(lab: &Pair, cmd: &mut Command, port: u16) -> Reaped {
    let server = Reaped::spawn(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    lab.server.wait_listen(port);
    server
}

/// The leaf and intermediate, leaf first, in one file (servers that take
/// their chain from the certificate file).
fn chain_file(pki: &Pki) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(
        f.path(),
        [pki.read("leaf.pem"), pki.read("int.pem")].concat(),
    )
    .expect("chain file");
    f
}

/// SMTP STARTTLS between two pods: Debian's aiosmtpd and
/// `openssl s_client -starttls smtp`.
#[test]
fn smtp_starttls_is_tls_with_its_chain() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("e");
    let chain = chain_file(&pki);
    let _smtp = serve(
        &lab,
        lab.server
            .cmd("aiosmtpd")
            .args(["-n", "-l", &format!("{SERVER4}:25"), "--tlscert"])
            .arg(chain.path())
            .args(["--tlskey", &pki.p("leaf.key")]),
        25,
    );
    upgrade_live_and_offline(&lab, &pki, 25, "smtp");
}

/// FTP AUTH TLS between two pods: Debian's vsftpd (anonymous, TLS on the
/// control connection) and `openssl s_client -starttls ftp`.
#[test]
fn ftp_auth_tls_is_tls_with_its_chain() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("d");
    let chain = chain_file(&pki);
    let dir = tempfile::tempdir().expect("temp");
    let conf = dir.path().join("vsftpd.conf");
    let text = tests::servers::vsftpd_conf(SERVER4, chain.path(), &pki.path("leaf.key"));
    std::fs::write(&conf, text).expect("vsftpd.conf");
    std::fs::create_dir_all(tests::servers::VSFTPD_EMPTY).expect("vsftpd's empty directory");
    let _ftp = serve(&lab, lab.server.cmd("vsftpd").arg(&conf), 21);
    upgrade_live_and_offline(&lab, &pki, 21, "ftp");
}

/// A directory the servers that drop root (dovecot's login processes,
/// mariadbd as mysql) can walk into: a temporary directory is 0700.
fn server_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Debian's dovecot in a new pair `tag`'s server namespace, IMAP on 143
/// and POP3 on 110, STARTTLS with the leaf and intermediate; one upgrade
/// to `port` with `s_client -starttls how`, live and offline.
fn dovecot_upgrade(tag: &str, port: u16, how: &str) {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new(tag);
    let chain = chain_file(&pki);
    let dir = server_dir();
    let conf = dir.path().join("dovecot.conf");
    let text =
        tests::servers::dovecot_conf(SERVER4, dir.path(), chain.path(), &pki.path("leaf.key"));
    std::fs::write(&conf, text).expect("dovecot.conf");
    let _dovecot = serve(
        &lab,
        lab.server.cmd("dovecot").arg("-F").arg("-c").arg(&conf),
        port,
    );
    upgrade_live_and_offline(&lab, &pki, port, how);
}

/// IMAP STARTTLS between two pods: Debian's dovecot and
/// `openssl s_client -starttls imap`.
#[test]
fn imap_starttls_is_tls_with_its_chain() {
    dovecot_upgrade("i", 143, "imap");
}

/// POP3 STLS between two pods: Debian's dovecot and
/// `openssl s_client -starttls pop3`.
#[test]
fn pop3_stls_is_tls_with_its_chain() {
    dovecot_upgrade("o", 110, "pop3");
}

/// MySQL's SSL request in the connection phase between two pods: Debian's
/// MariaDB and `openssl s_client -starttls mysql`.
#[test]
fn mysql_ssl_request_is_tls_with_its_chain() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("y");
    let chain = chain_file(&pki);
    let dir = server_dir();
    let db = dir.path().join("mariadb");
    tests::servers::mariadb_prepare(&db, chain.path(), &pki.path("leaf.key"))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let _mysql = serve(
        &lab,
        lab.server
            .cmd("mariadbd")
            .args(tests::servers::mariadbd_args(SERVER4, &db)),
        3306,
    );
    upgrade_live_and_offline(&lab, &pki, 3306, "mysql");
}

/// An HTTP CONNECT tunnel between two pods: `openssl s_client -proxy`
/// through Debian's tinyproxy to an s_server beside it. The client's TCP
/// connection, and so the handshake the sensor sees, is to the proxy's
/// port; the proxy reaches s_server over its loopback, unseen.
#[test]
fn http_connect_tunnel_is_tls_with_its_chain() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("h");
    let _target = s_server(&lab.server, &pki, 443, "leaf", &["-tls1_2"]);
    let dir = tempfile::tempdir().expect("temp");
    let conf = dir.path().join("tinyproxy.conf");
    let text = tests::servers::tinyproxy_conf(SERVER4, &format!("{CLIENT4}/32"));
    std::fs::write(&conf, text).expect("tinyproxy.conf");
    let _proxy = serve(
        &lab,
        lab.server.cmd("tinyproxy").arg("-d").arg("-c").arg(&conf),
        3128,
    );
    let proxy = format!("{SERVER4}:3128");
    upgrade_by(&lab, &pki, 3128, "http_connect", || {
        starttls_client(&lab, SERVER4, 443, &["-proxy", &proxy, "-tls1_2"])
    });
}

/// LDAP StartTLS between two pods: Debian's slapd and
/// `ldapsearch -ZZ` (StartTLS required) of its root DSE, which sends no
/// SNI.
#[test]
fn ldap_starttls_is_tls_with_its_chain() {
    require_root();
    let pki = pki_with_leaf();
    let lab = Pair::new("a");
    let chain = chain_file(&pki);
    let dir = tempfile::tempdir().expect("temp");
    let key = dir.path().join("server.key");
    tests::servers::pkcs8(&pki.path("leaf.key"), &key).unwrap_or_else(|e| panic!("{e:#}"));
    let conf = dir.path().join("slapd.conf");
    let text = tests::servers::slapd_conf(dir.path(), chain.path(), &key);
    std::fs::write(&conf, text).expect("slapd.conf");
    let _ldap = serve(
        &lab,
        lab.server
            .cmd("slapd")
            .args(tests::servers::slapd_args(SERVER4, &conf)),
        389,
    );
    upgrade_by(&lab, &pki, 389, "ldap", || {
        let limit = patience(Duration::from_secs(10)).as_secs().to_string();
        let out = run(lab
            .client
            .cmd("timeout")
            .args([limit.as_str(), "ldapsearch"])
            .env("LDAPTLS_REQCERT", "never")
            .args(["-ZZ", "-x", "-H", &format!("ldap://{SERVER4}/")])
            .args(["-b", "", "-s", "base", "supportedExtension"]));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("result: 0 Success"),
            "ldapsearch -ZZ: {out:?}"
        );
    });
}
