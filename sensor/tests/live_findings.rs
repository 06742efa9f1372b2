//! End to end on real TLS peers: openssl s_server and s_client on
//! loopback, captured by tcpdump, then `sensor analyze --json`. The
//! finding lines must say what the servers really did wrong, at the time
//! of the packets.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Ends a process we started (by its PID) when the test ends, even on failure.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "s_server on {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn s_server(port: u16, cert: &Path, key: &Path, extra: &[&str]) -> Guard {
    let child = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed by cargo xtask setup");
    let g = Guard(child);
    wait_port(port);
    g
}

fn s_client(port: u16, args: &[&str]) {
    let mut c = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A closed stdin makes s_client leave after the handshake.
    drop(c.stdin.take());
    c.wait().unwrap();
}

/// tcpdump on lo for the given ports, packet-buffered; stopped by SIGINT.
struct Capture {
    child: Option<Guard>,
    stderr: std::process::ChildStderr,
    file: PathBuf,
}

impl Capture {
    fn start(file: PathBuf, ports: &[u16]) -> Capture {
        let filter = ports
            .iter()
            .map(|p| format!("tcp port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-U", "-s", "0", "-w"])
            .arg(&file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump is installed by cargo xtask setup (and needs root)");
        // tcpdump says "listening on lo" once the capture is armed.
        let mut err = child.stderr.take().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !String::from_utf8_lossy(&seen).contains("listening on") {
            use std::io::Read;
            let n = err.read(&mut buf).unwrap();
            assert!(n > 0, "tcpdump: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        Capture {
            child: Some(Guard(child)),
            stderr: err,
            file,
        }
    }

    fn stop(mut self) {
        let mut g = self.child.take().unwrap();
        // SIGINT lets tcpdump flush and close the file.
        let _ = Command::new("kill")
            .args(["-INT", &g.0.id().to_string()])
            .status();
        let _ = g.0.wait();
        let mut rest = String::new();
        use std::io::Read;
        let _ = self.stderr.read_to_string(&mut rest);
        eprintln!("tcpdump: {rest}");
    }
}

#[test]
fn findings_from_real_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let root = Ca::root("Live Test Root", now - 400 * DAY, now + 400 * DAY);
    let root_pem = d.join("root.pem");
    std::fs::write(&root_pem, &root.pem).unwrap();
    let other_root = d.join("other-root.pem");
    std::fs::write(
        &other_root,
        Ca::root("Other Root", now - DAY, now + DAY).pem,
    )
    .unwrap();
    let (expired_crt, expired_key) = root.leaf_files(
        d,
        "expired",
        &["www.example.test"],
        now - 100 * DAY,
        now - 12 * DAY,
    );
    let (good_crt, good_key) =
        root.leaf_files(d, "good", &["good.example.test"], now - DAY, now + 90 * DAY);
    let (p_expired, p_good, p_legacy) = (free_port(), free_port(), free_port());
    let cap = Capture::start(d.join("live.pcap"), &[p_expired, p_good, p_legacy]);
    {
        let _a = s_server(p_expired, &expired_crt, &expired_key, &[]);
        let _b = s_server(p_good, &good_crt, &good_key, &[]);
        let _c = s_server(
            p_legacy,
            &good_crt,
            &good_key,
            &["-tls1", "-cipher", "AECDH-AES128-SHA:@SECLEVEL=0"],
        );
        s_client(p_expired, &["-tls1_2", "-servername", "www.example.test"]);
        s_client(p_good, &["-tls1_2", "-servername", "wrong.example.test"]);
        s_client(p_good, &["-tls1_2", "-servername", "good.example.test"]);
        // The client refuses the server's CA: an alert in clear.
        s_client(
            p_good,
            &[
                "-tls1_2",
                "-servername",
                "good.example.test",
                "-CAfile",
                other_root.to_str().unwrap(),
                "-verify_return_error",
            ],
        );
        s_client(
            p_legacy,
            &["-tls1", "-cipher", "AECDH-AES128-SHA:@SECLEVEL=0"],
        );
    }
    // tcpdump stops without draining its buffer on SIGINT: wait until the
    // file holds the five handshakes (on a busy machine it lags behind).
    let analyze = || {
        Command::new(env!("CARGO_BIN_EXE_sensor"))
            .args([
                "analyze",
                "--json",
                "--system-roots",
                "none",
                "--trust-anchors",
            ])
            .arg(&root_pem)
            .arg(&cap.file)
            .output()
            .unwrap()
    };
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        let out = analyze();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.matches("\"kind\":\"handshake\"").count() >= 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(200));
    let out = analyze();
    cap.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let handshakes: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["kind"] == "handshake").collect();
    assert_eq!(handshakes.len(), 5, "{lines:#?}");
    // Findings per connection, in connection order, by server port and SNI.
    let by = |port: u16, sni: Option<&str>| -> Vec<Vec<String>> {
        handshakes
            .iter()
            .filter(|h| h["server"]["port"] == port && h["sni"].as_str() == sni)
            .map(|h| {
                h["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["rule"].as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    };
    assert_eq!(
        by(p_expired, Some("www.example.test")),
        vec![vec!["cert.expired"]]
    );
    assert_eq!(
        by(p_good, Some("wrong.example.test")),
        vec![vec!["cert.name_mismatch"]]
    );
    assert_eq!(
        by(p_good, Some("good.example.test")),
        vec![vec![], vec!["tls.handshake_failure"]]
    );
    assert_eq!(
        by(p_legacy, None),
        vec![vec!["tls.legacy_version", "tls.weak_cipher"]]
    );
    let findings: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["kind"] == "finding").collect();
    let expired = findings
        .iter()
        .find(|f| f["rule"] == "cert.expired")
        .unwrap();
    assert_eq!(
        expired["message"].as_str().unwrap(),
        format!(
            "leaf CN=www.example.test expired 12 days ago, on {}",
            &sensor::model::time::seconds(now - 12 * DAY)[..10]
        )
    );
    assert_eq!(expired["severity"], "critical");
    assert_eq!(expired["server"]["port"], p_expired);
    let alert = findings
        .iter()
        .find(|f| f["rule"] == "tls.handshake_failure")
        .unwrap();
    assert_eq!(
        alert["message"],
        "the client sent the alert unknown_ca (48) in clear: the handshake failed"
    );
    let weak = findings
        .iter()
        .find(|f| f["rule"] == "tls.weak_cipher")
        .unwrap();
    assert_eq!(
        weak["message"],
        "negotiated TLS_ECDH_anon_WITH_AES_128_CBC_SHA: anon weak"
    );
    // One finding line per rule and certificate or flow: 5 distinct here.
    assert_eq!(findings.len(), 5, "{findings:#?}");
}
