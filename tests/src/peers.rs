//! Real TLS and HTTP peers for the live tests, each run inside a
//! [`Netns`]: openssl s_server and s_client, Python's http.server, curl.
//! Every wait here is stretched by [`crate::patience`] (`TESTS_SLOWDOWN`),
//! so the tests that use them also hold in slow virtual machines.

use std::process::{Output, Stdio};
use std::time::Duration;

use crate::certs::Pki;
use crate::netns::{Netns, SERVER4};
use crate::patience;
use crate::proc::{Reaped, run};

/// `limit` seconds stretched by patience, for `timeout N` and `--max-time N`.
fn secs(limit: u64) -> String {
    patience(Duration::from_secs(limit)).as_secs().to_string()
}

/// `openssl s_server -quiet` on `port`, serving leaf `leaf` of `pki`
/// (`leaf.pem`, `leaf.key`) with the intermediate, plus `extra` (its mode:
/// `-www`, `-rev`...). Stdin closed, output discarded; returns once it
/// listens.
pub fn openssl_server(ns: &Netns, pki: &Pki, port: u16, leaf: &str, extra: &[&str]) -> Reaped {
    let mut cmd = ns.cmd("openssl");
    cmd.args(["s_server", "-accept", &port.to_string(), "-quiet"])
        .args(["-cert", &pki.p(&format!("{leaf}.pem"))])
        .args(["-key", &pki.p(&format!("{leaf}.key"))])
        .args(["-cert_chain", &pki.p("int.pem")])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let r = Reaped::spawn(&mut cmd);
    ns.wait_listen(port);
    r
}

/// [`openssl_server`] with `-www`: it answers a GET with a status page
/// and closes, and serves any number of clients one after the other.
pub fn s_server(ns: &Netns, pki: &Pki, port: u16, leaf: &str, extra: &[&str]) -> Reaped {
    let args: Vec<&str> = std::iter::once("-www")
        .chain(extra.iter().copied())
        .collect();
    openssl_server(ns, pki, port, leaf, &args)
}

/// `openssl s_client` to `host:port` with SNI `sni`, plus `extra`. Its
/// stdin is closed, so it ends as soon as the handshake is done; killed
/// after 10 s (stretched).
pub fn s_client(ns: &Netns, host: &str, port: u16, sni: &str, extra: &[&str]) -> Output {
    ns.cmd("timeout")
        .arg(secs(10))
        .args(["openssl", "s_client", "-connect", &format!("{host}:{port}")])
        .args(["-servername", sni])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("s_client")
}

/// [`s_client`] that must complete its handshake.
pub fn handshake(ns: &Netns, host: &str, port: u16, sni: &str, extra: &[&str]) {
    let out = s_client(ns, host, port, sni, extra);
    assert!(
        out.status.success(),
        "s_client {host}:{port} {sni}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `python3 -m http.server` on [`SERVER4`]:`port` (HTTP/1.0: it closes
/// each connection after the answer); returns once it listens.
pub fn http_server(ns: &Netns, port: u16) -> Reaped {
    let mut cmd = ns.cmd("python3");
    cmd.args(["-m", "http.server", &port.to_string(), "--bind", SERVER4])
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let r = Reaped::spawn(&mut cmd);
    ns.wait_listen(port);
    r
}

/// `curl` of `url` with `extra`, which must succeed within 10 s (stretched).
pub fn curl_with(ns: &Netns, url: &str, extra: &[&str]) {
    run(ns
        .cmd("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", &secs(10)])
        .args(extra)
        .arg(url));
}

/// `curl` of `url`, which must succeed within 10 s (stretched).
pub fn curl(ns: &Netns, url: &str) {
    curl_with(ns, url, &[]);
}
