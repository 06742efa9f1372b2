//! What the sensor saw, read back from its JSON lines: one row per server
//! for people, and the checks of `cargo xtask demo --check`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::inventory;
use super::scenarios::{BULK_BYTES, ClientResult, Kind, Server};

/// The sensor's records, by kind.
pub struct Records {
    pub handshakes: Vec<Value>,
    /// Flow reports (RECORDS.md `flow`): each connection's traffic.
    pub flows: Vec<Value>,
    pub certificates: HashMap<String, Value>,
    pub summary: Option<Value>,
}

pub fn parse(lines: &[String]) -> Result<Records> {
    let mut r = Records {
        handshakes: Vec::new(),
        flows: Vec::new(),
        certificates: HashMap::new(),
        summary: None,
    };
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("the sensor printed a line that is not JSON: {line}"))?;
        match v["kind"].as_str() {
            Some("handshake") => r.handshakes.push(v),
            Some("flow") => r.flows.push(v),
            Some("certificate") => {
                if let Some(fp) = v["sha256"].as_str() {
                    r.certificates.insert(fp.to_string(), v);
                }
            }
            Some("summary") => r.summary = Some(v),
            _ => {}
        }
    }
    Ok(r)
}

/// One server as the sensor saw it, with the facts drawn from its records.
pub struct Row<'a> {
    pub kind: Kind,
    pub server: &'a Server,
    pub client: &'a ClientResult,
    /// Every handshake record whose server is this one.
    pub handshakes: Vec<&'a Value>,
    pub leaf: Option<&'a Value>,
    pub client_leaf: Option<&'a Value>,
    /// Payload bytes to and from the server: the sum of its connections'
    /// flow report intervals.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

fn time_of(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()
}

/// RFC 6125 matching as clients do it: exact, or one wildcard label.
fn name_matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    match p.strip_prefix("*.") {
        Some(rest) => n
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => p == n,
    }
}

impl<'a> Row<'a> {
    pub fn handshake(&self) -> Option<&'a Value> {
        self.handshakes.first().copied()
    }

    pub fn chain(&self, side: &str) -> Vec<&'a str> {
        self.handshake()
            .and_then(|h| h[side].as_array())
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    pub fn expired(&self, now: OffsetDateTime) -> Option<bool> {
        Some(time_of(&self.leaf?["not_after"])? < now)
    }

    pub fn not_yet_valid(&self, now: OffsetDateTime) -> Option<bool> {
        Some(time_of(&self.leaf?["not_before"])? > now)
    }

    pub fn self_signed(&self) -> Option<bool> {
        self.leaf?["self_signed"].as_bool()
    }

    /// The SNI is not among the leaf's DNS names (no SNI: no verdict).
    pub fn san_mismatch(&self) -> Option<bool> {
        let sni = s(&self.handshake()?["sni"])?;
        let dns = self.leaf?["san"]["dns"].as_array()?;
        Some(
            !dns.iter()
                .filter_map(Value::as_str)
                .any(|p| name_matches(p, sni)),
        )
    }

    pub fn mutual(&self) -> bool {
        self.handshake().is_some_and(|h| {
            h["mutual"] == Value::Bool(true) || !self.chain("client_chain").is_empty()
        })
    }

    /// The pod serving, `namespace/name`, as the inventory named it.
    pub fn pod(&self) -> Option<String> {
        let d = &self.handshake()?["destination"];
        if s(&d["kind"]) != Some("pod") {
            return None;
        }
        Some(format!("{}/{}", s(&d["namespace"])?, s(&d["name"])?))
    }

    pub fn verdict(&self) -> Option<&'a str> {
        s(&self.handshake()?["verdict"])
    }

    pub fn certificate_source(&self) -> Option<&'a str> {
        s(&self.handshake()?["certificate_source"])
    }

    /// cert-manager's revision of the served certificate and its current one.
    pub fn revisions(&self) -> (Option<u64>, Option<u64>) {
        let cm = self.handshake().map(|h| &h["cert_manager"]);
        let n = |k: &str| cm.and_then(|c| c[k].as_u64());
        (n("revision"), n("current_revision"))
    }

    pub fn findings(&self) -> Vec<(String, String, String)> {
        let Some(list) = self.handshake().and_then(|h| h["findings"].as_array()) else {
            return Vec::new();
        };
        list.iter()
            .map(|f| {
                let get = |k: &str| f[k].as_str().unwrap_or("?").to_string();
                (get("severity"), get("rule"), get("message"))
            })
            .collect()
    }

    /// Notable facts, worst first, as short phrases; true marks a problem.
    pub fn notes(&self, now: OffsetDateTime) -> Vec<(bool, String)> {
        let mut n = Vec::new();
        let Some(h) = self.handshake() else {
            return vec![(
                true,
                "the sensor reported no handshake for this server".into(),
            )];
        };
        if self.expired(now) == Some(true) {
            n.push((true, "expired".to_string()));
        }
        if self.not_yet_valid(now) == Some(true) {
            n.push((true, "not yet valid".to_string()));
        }
        if self.self_signed() == Some(true) {
            n.push((true, "self-signed".to_string()));
        }
        if self.san_mismatch() == Some(true) {
            let dns: Vec<&str> = self
                .leaf
                .and_then(|l| l["san"]["dns"].as_array())
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            n.push((
                true,
                format!("SAN mismatch (certificate for {})", dns.join(", ")),
            ));
        }
        if self.mutual() {
            let who = self
                .client_leaf
                .and_then(|c| s(&c["subject"]))
                .map(|s| format!(", client certificate {s}"))
                .unwrap_or_default();
            n.push((false, format!("mutual TLS{who}")));
        }
        if s(&h["version"]) == Some("TLS 1.3") {
            n.push((
                false,
                match self.certificate_source() {
                    Some("probed") => "certificate encrypted (TLS 1.3), probed".to_string(),
                    _ => "certificates encrypted (TLS 1.3)".to_string(),
                },
            ));
        }
        if let Some(cm) = h["cert_manager"]["certificate"]["name"].as_str() {
            let rev = |r: Option<u64>| r.map_or("?".to_string(), |r| r.to_string());
            let (served, current) = self.revisions();
            let text = if self.verdict() == Some("stale") {
                format!(
                    "serves revision {} of Certificate {cm}, current is {}",
                    rev(served),
                    rev(current)
                )
            } else {
                format!("cert-manager Certificate {cm}, revision {}", rev(served))
            };
            n.push((self.verdict() == Some("stale"), text));
        }
        if let Some(a) = s(&h["alert"]) {
            n.push((false, format!("alert {a}")));
        }
        if self.handshakes.len() > 1 {
            n.push((true, format!("{} handshake records", self.handshakes.len())));
        }
        n
    }
}

pub fn rows<'a>(
    records: &'a Records,
    servers: &'a [Server],
    clients: &'a [(Kind, ClientResult)],
) -> Vec<Row<'a>> {
    servers
        .iter()
        .map(|server| {
            let handshakes: Vec<&Value> = records
                .handshakes
                .iter()
                .filter(|h| s(&h["server"]["ip"]) == Some(server.ip()))
                .collect();
            let first = |side: &str| {
                handshakes
                    .first()
                    .and_then(|h| h[side].as_array())
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                    .and_then(|fp| records.certificates.get(fp))
            };
            let (mut bytes_in, mut bytes_out) = (0, 0);
            for f in records
                .flows
                .iter()
                .filter(|f| s(&f["server"]["ip"]) == Some(server.ip()))
            {
                bytes_in += f["interval"]["bytes_to_server"].as_u64().unwrap_or(0);
                bytes_out += f["interval"]["bytes_to_client"].as_u64().unwrap_or(0);
            }
            Row {
                kind: server.kind,
                bytes_in,
                bytes_out,
                server,
                client: &clients
                    .iter()
                    .find(|(k, _)| *k == server.kind)
                    .expect("every server has a client")
                    .1,
                leaf: first("server_chain"),
                client_leaf: first("client_chain"),
                handshakes,
            }
        })
        .collect()
}

/// Columns padded to their widest cell.
fn table(header: &[&str], body: &[(Vec<String>, Vec<String>)]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for (cells, _) in body {
        for (w, c) in width.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| -> String {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        l.trim_end().to_string()
    };
    let mut out = line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    out.push('\n');
    for (cells, extra) in body {
        out.push_str(&line(cells));
        out.push('\n');
        let indent = width[0] + 2;
        for e in extra {
            let _ = writeln!(out, "{:indent$}{e}", "");
        }
    }
    out
}

pub fn render(rows: &[Row], records: &Records, now: OffsetDateTime) -> String {
    let dash = || "-".to_string();
    let body: Vec<(Vec<String>, Vec<String>)> = rows
        .iter()
        .map(|r| {
            let h = r.handshake();
            let field = |k: &str| h.and_then(|h| s(&h[k])).map_or_else(dash, String::from);
            let chain = r.chain("server_chain");
            let cells = vec![
                r.kind.name().to_string(),
                r.pod().unwrap_or_else(dash),
                field("sni"),
                field("version"),
                match (chain.len(), r.certificate_source()) {
                    (0, _) => dash(),
                    (n, Some("probed")) => format!("{n} probed"),
                    (n, _) => n.to_string(),
                },
                r.leaf
                    .and_then(|l| s(&l["subject"]))
                    .map_or_else(dash, String::from),
                r.leaf
                    .and_then(|l| s(&l["not_after"]))
                    .map_or_else(dash, |t| t.split('T').next().unwrap_or(t).to_string()),
                field("verdict"),
                human_bytes(r.bytes_in),
                human_bytes(r.bytes_out),
            ];
            let notes = r.notes(now);
            let mark = if notes.iter().any(|(bad, _)| *bad) || !r.client.accepted {
                "✗"
            } else {
                "✓"
            };
            let client = if r.client.accepted {
                format!("{} accepted it", r.kind.client_program())
            } else {
                format!(
                    "{} refused it: {}",
                    r.kind.client_program(),
                    r.client.reason.as_deref().unwrap_or("handshake failed")
                )
            };
            let mut first: Vec<String> = notes.into_iter().map(|(_, t)| t).collect();
            first.push(client);
            // The cipher goes here, not in a column: the table stays narrow.
            let mut extra = vec![format!(
                "{mark} {}   [{} at {}, {}]",
                first.join(" · "),
                r.kind.server_program(),
                r.server.ip(),
                field("cipher")
            )];
            for (sev, rule, msg) in r.findings() {
                extra.push(format!("  finding {sev} {rule}: {msg}"));
            }
            (cells, extra)
        })
        .collect();
    let mut out = table(
        &[
            "SERVER",
            "POD",
            "SNI",
            "VERSION",
            "CHAIN",
            "LEAF SUBJECT",
            "NOT AFTER",
            "VERDICT",
            "IN",
            "OUT",
        ],
        &body,
    );
    let ours: usize = rows.iter().map(|r| r.handshakes.len()).sum();
    if records.handshakes.len() > ours {
        let _ = writeln!(
            out,
            "(and {} handshakes with other servers)",
            records.handshakes.len() - ours
        );
    }
    out
}

/// Bytes for people: `812 B`, `4.1 kB`, `3.2 MB`.
fn human_bytes(n: u64) -> String {
    match n {
        0..1000 => format!("{n} B"),
        1000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

fn counters(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The totals of the sensor's final summary record.
pub fn render_summary(summary: Option<&Value>) -> String {
    let Some(sm) = summary else {
        return "The sensor printed no summary record.\n".to_string();
    };
    let n = |k: &str| sm[k].as_u64().unwrap_or(0);
    let mut out = format!(
        "Sensor totals: {} TCP segments, {} connections, {} TLS, {} handshakes reported, {} certificates.\n",
        n("tcp_segments"),
        n("connections"),
        n("tls_connections"),
        n("handshakes"),
        n("certificates"),
    );
    let errors = counters(&sm["errors"]);
    if !errors.is_empty() {
        let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "Skipped input, by kind: {}.", list.join(", "));
    }
    let kernel = counters(&sm["kernel"]);
    if !kernel.is_empty() {
        let list: Vec<String> = kernel.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "Kernel counters: {}.", list.join(", "));
    }
    out
}

/// What the inventory adds to a row: the client and server pods, the
/// verdict, and for a managed certificate its cert-manager revisions (the
/// renewed scenario serves revision 1 of 2).
fn inventory_facts(r: &Row) -> Vec<String> {
    let mut out = Vec::new();
    let Some(h) = r.handshake() else {
        return out;
    };
    let pod = |name: &str| format!("{}/{name}", inventory::NAMESPACE);
    let want_pod = pod(r.kind.short());
    if r.pod().as_deref() != Some(&want_pod) {
        out.push(format!(
            "destination {}, want pod {want_pod}",
            h["destination"]
        ));
    }
    let source = &h["source"];
    if s(&source["kind"]) != Some("pod") || s(&source["name"]) != Some(inventory::CLIENT) {
        out.push(format!(
            "source {source}, want pod {}",
            pod(inventory::CLIENT)
        ));
    }
    if r.verdict() != Some(r.kind.verdict()) {
        out.push(format!(
            "verdict {}, want {}",
            h["verdict"],
            r.kind.verdict()
        ));
    }
    let cm = &h["cert_manager"];
    match r.kind.managed() {
        None if !cm.is_null() => out.push(format!("cert_manager {cm}, want null")),
        None => {}
        Some((current, _)) => {
            if s(&cm["certificate"]["name"]) != Some(r.kind.short()) {
                out.push(format!(
                    "cert_manager {cm}, want Certificate {}",
                    r.kind.short()
                ));
            }
            // What is served is revision 1: the first or the only one.
            let want = (Some(1), Some(current));
            if r.revisions() != want {
                out.push(format!(
                    "cert_manager revision/current_revision {:?}, want {want:?}",
                    r.revisions()
                ));
            }
        }
    }
    out
}

/// What `--check` asserts: each scenario seen once, with its facts.
pub fn check(rows: &[Row], records: &Records, now: OffsetDateTime) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    let findings_on = rows.iter().any(|r| !r.findings().is_empty());
    for r in rows {
        let name = r.kind.name();
        let mut fail = |what: String| failures.push(format!("{name}: {what}"));
        // Pod-to-pod traffic crosses two watched veths; the sensor must
        // report the connection once.
        if r.handshakes.len() != 1 {
            fail(format!("{} handshake records, want 1", r.handshakes.len()));
            if r.handshakes.is_empty() {
                continue;
            }
        }
        let h = r.handshake().expect("checked above");
        // Every connection's bytes are counted, encrypted ones included.
        if r.bytes_in == 0 || r.bytes_out == 0 {
            fail(format!(
                "flow records count {} bytes in, {} out; want both above zero",
                r.bytes_in, r.bytes_out
            ));
        }
        if r.kind == Kind::Tls13 && r.bytes_out < BULK_BYTES {
            fail(format!(
                "flow records count {} bytes to the client; the bulk download alone is {BULK_BYTES}",
                r.bytes_out
            ));
        }
        if r.client.accepted != r.kind.client_accepts() {
            fail(format!(
                "{} {} the handshake, expected the opposite ({:?})",
                r.kind.client_program(),
                if r.client.accepted {
                    "accepted"
                } else {
                    "refused"
                },
                r.client.reason
            ));
        }
        if s(&h["sni"]) != Some(r.kind.sni()) {
            fail(format!("sni {}, want {}", h["sni"], r.kind.sni()));
        }
        let want_version = if r.kind.tls13() { "TLS 1.3" } else { "TLS 1.2" };
        if s(&h["version"]) != Some(want_version) {
            fail(format!("version {}, want {want_version}", h["version"]));
        }
        if h["cipher"].is_null() {
            fail("no cipher".into());
        }
        let chain = r.chain("server_chain");
        if r.kind.tls13() {
            // Encrypted on the wire: the sensor probes the server for it.
            if r.certificate_source() != Some("probed") {
                fail(format!(
                    "certificate_source {}, want probed (probe: {})",
                    h["certificate_source"], h["probe"]
                ));
            }
            let leaf = r.server.leaf_sha256()?;
            if chain.first() != Some(&leaf.as_str()) {
                fail(format!(
                    "probed leaf {:?}, want the server's {leaf}",
                    chain.first()
                ));
            }
        } else {
            let want_len = r.kind.chain_len();
            if chain.len() != want_len {
                fail(format!("server chain of {}, want {want_len}", chain.len()));
            }
            let leaf = r.server.leaf_sha256()?;
            if chain.first() != Some(&leaf.as_str()) {
                fail(format!(
                    "leaf {:?}, want the server's {leaf}",
                    chain.first()
                ));
            }
            if r.leaf.is_none() {
                fail("no certificate record for the leaf".into());
            }
        }
        let expect = |fact: Option<bool>, want: bool, what: &str| -> Option<String> {
            (fact != Some(want)).then(|| format!("{what} is {fact:?}, want {want}"))
        };
        for problem in [
            expect(r.expired(now), r.kind == Kind::Expired, "expired"),
            expect(r.self_signed(), r.kind == Kind::SelfSigned, "self_signed"),
            expect(r.san_mismatch(), r.kind == Kind::WrongSan, "SAN mismatch"),
        ]
        .into_iter()
        .flatten()
        {
            fail(problem);
        }
        if r.kind == Kind::Expired
            && r.leaf.and_then(|l| s(&l["not_after"])) != Some("2021-01-01T00:00:00Z")
        {
            fail(format!(
                "leaf not_after {:?}, want 2021-01-01T00:00:00Z",
                r.leaf.map(|l| &l["not_after"])
            ));
        }
        if r.kind == Kind::Mutual {
            if h["mutual"] != Value::Bool(true) {
                fail(format!("mutual {}, want true", h["mutual"]));
            }
            if r.chain("client_chain").is_empty() {
                fail("empty client_chain".into());
            }
            if r.client_leaf.and_then(|c| s(&c["subject"])) != Some("CN=demo-client") {
                fail(format!(
                    "client certificate subject {:?}, want CN=demo-client",
                    r.client_leaf.map(|c| &c["subject"])
                ));
            }
        } else if !r.kind.tls13() && h["mutual"] != Value::Bool(false) {
            fail(format!("mutual {}, want false", h["mutual"]));
        }
        for problem in inventory_facts(r) {
            fail(problem);
        }
        let alerted = !h["alert"].is_null();
        if r.kind.client_alerts() != alerted {
            fail(format!(
                "alert {}, want {}",
                h["alert"],
                if r.kind.client_alerts() {
                    "one"
                } else {
                    "none"
                }
            ));
        }
        if findings_on {
            let rules: Vec<String> = r.findings().into_iter().map(|(_, rule, _)| rule).collect();
            let want = match r.kind {
                Kind::Expired => Some("cert.expired"),
                Kind::SelfSigned => Some("cert.self_signed"),
                Kind::WrongSan => Some("cert.name_mismatch"),
                Kind::Renewed => Some("cert.stale"),
                _ => None,
            };
            if let Some(w) = want
                && !rules.iter().any(|x| x == w)
            {
                fail(format!("findings {rules:?} lack {w}"));
            }
            for bad in [
                "cert.expired",
                "cert.self_signed",
                "cert.name_mismatch",
                "cert.stale",
            ] {
                if Some(bad) != want && rules.iter().any(|x| x == bad) {
                    fail(format!("unexpected finding {bad}"));
                }
            }
        }
    }
    match &records.summary {
        None => failures.push("no summary record".into()),
        Some(sm) => {
            let kernel = counters(&sm["kernel"]);
            let k = |n: &str| kernel.get(n).copied();
            if k("flows_opened").is_none_or(|n| n < rows.len() as u64) {
                failures.push(format!(
                    "kernel flows_opened {:?}, want at least {}",
                    k("flows_opened"),
                    rows.len()
                ));
            }
            for zero in ["ring_buffer_full", "flow_map_full"] {
                if k(zero) != Some(0) {
                    failures.push(format!("kernel {zero} {:?}, want 0", k(zero)));
                }
            }
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(human_bytes(812), "812 B");
        assert_eq!(human_bytes(4_120), "4.1 kB");
        assert_eq!(human_bytes(3_200_000), "3.2 MB");
    }

    #[test]
    fn names_match_like_clients_match_them() {
        assert!(name_matches("good.demo.test", "GOOD.demo.test"));
        assert!(name_matches("*.demo.test", "good.demo.test"));
        assert!(!name_matches("*.demo.test", "demo.test"));
        assert!(!name_matches("*.demo.test", "a.b.demo.test"));
        assert!(!name_matches("other.demo.test", "wrong-san.demo.test"));
    }

    #[test]
    fn records_are_sorted_by_kind_and_garbage_is_an_error() {
        let lines: Vec<String> = [
            r#"{"kind":"certificate","sha256":"ab","subject":"CN=x"}"#,
            r#"{"kind":"handshake","server":{"ip":"10.0.0.1","port":443}}"#,
            "",
            r#"{"kind":"summary","kernel":{"packets":3}}"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = parse(&lines).unwrap();
        assert_eq!(r.handshakes.len(), 1);
        assert_eq!(r.certificates["ab"]["subject"], "CN=x");
        assert_eq!(counters(&r.summary.unwrap()["kernel"])["packets"], 3);
        let err = parse(&["not json".to_string()]).err().unwrap();
        assert!(err.to_string().contains("not json"), "{err}");
    }
}
