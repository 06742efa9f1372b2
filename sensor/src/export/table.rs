use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use super::RecordSink;
use super::summary::{RunStats, Summary};
use crate::model::time as timefmt;
use crate::model::{Connection, Finding, Flow, Rule, Severity};

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// What the findings table shows of one finding line.
struct FindingRow {
    severity: Severity,
    rule: Rule,
    time_us: i64,
    server: SocketAddr,
    sni: Option<String>,
    certificate: Option<Arc<str>>,
    subject: Option<Arc<str>>,
    message: Arc<str>,
}

impl FindingRow {
    fn new(f: &Finding, time_us: i64, server: SocketAddr, sni: Option<&str>) -> Self {
        FindingRow {
            severity: f.severity,
            rule: f.rule,
            time_us,
            server,
            sni: sni.map(str::to_string),
            certificate: f.certificate.clone(),
            subject: f.subject.clone(),
            message: f.message.clone(),
        }
    }
}

/// Finding rows kept for the findings table; past it they are counted.
pub const MAX_FINDING_ROWS: usize = 10_000;

/// The human view: one row per handshake, streamed, then the findings
/// (one per rule and certificate or flow), then the summary.
pub struct Table<W: Write> {
    out: W,
    header_done: bool,
    findings: Vec<FindingRow>,
    max_findings: usize,
    pub findings_not_shown: u64,
    pub error: Option<std::io::Error>,
}

impl<W: Write> Table<W> {
    pub fn new(out: W) -> Self {
        Self::with_finding_rows(out, MAX_FINDING_ROWS)
    }

    /// A table that keeps at most `max_findings` finding rows.
    pub fn with_finding_rows(out: W, max_findings: usize) -> Self {
        Self {
            out,
            header_done: false,
            findings: Vec::new(),
            max_findings,
            findings_not_shown: 0,
            error: None,
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    fn findings_table(&mut self) {
        if self.findings.is_empty() {
            self.write("\nfindings: none\n".into());
            return;
        }
        let mut rows = std::mem::take(&mut self.findings);
        // Most severe first; within a severity, in order of time.
        rows.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.time_us.cmp(&b.time_us))
                .then(a.rule.id().cmp(b.rule.id()))
        });
        let mut text = format!(
            "\n{:<8} {:<22} {:<28} {:<24} {:<32} {}\n",
            "SEVERITY", "RULE", "SERVER", "SNI", "CERTIFICATE", "MESSAGE"
        );
        for f in &rows {
            let server = format!("{}:{}", f.server.ip(), f.server.port());
            let cert = match (&f.subject, &f.certificate) {
                (Some(s), Some(fp)) => format!("{} {}", &fp[..fp.len().min(8)], s),
                _ => "-".into(),
            };
            text.push_str(&format!(
                "{:<8} {:<22} {:<28} {:<24} {:<32} {}\n",
                f.severity.name(),
                f.rule.id(),
                clip(&server, 28),
                clip(f.sni.as_deref().unwrap_or("-"), 24),
                clip(&cert, 32),
                f.message
            ));
        }
        if self.findings_not_shown > 0 {
            text.push_str(&format!(
                "... and {} more findings not shown\n",
                self.findings_not_shown
            ));
        }
        self.write(text);
    }

    fn write(&mut self, s: String) {
        if self.error.is_none()
            && let Err(e) = self.out.write_all(s.as_bytes())
        {
            self.error = Some(e);
        }
    }

    fn header(&mut self) {
        if !self.header_done {
            self.header_done = true;
            self.write(format!(
                "{:<20} {:<47} {:<28} {:<8} {:<40} {:<9} {:>5}  {:<40} {:<20} {}\n",
                "TIME",
                "CLIENT -> SERVER",
                "SNI",
                "VERSION",
                "CIPHER",
                "ALPN",
                "CHAIN",
                "LEAF SUBJECT",
                "NOT AFTER",
                "VERDICT"
            ));
        }
    }
}

impl<W: Write> Table<W> {
    fn keep(&mut self, row: FindingRow) {
        if self.findings.len() < self.max_findings {
            self.findings.push(row);
        } else {
            self.findings_not_shown += 1;
        }
    }
}

impl<W: Write> RecordSink for Table<W> {
    fn connection(&mut self, c: &Connection) {
        self.header();
        let hs = &c.handshake;
        let dash = || "-".to_string();
        let leaf = c.server_chain.first();
        let flow = format!(
            "{}:{} -> {}:{}",
            c.client.ip(),
            c.client.port(),
            c.server.ip(),
            c.server.port()
        );
        let row = format!(
            "{:<20} {:<47} {:<28} {:<8} {:<40} {:<9} {:>5}  {:<40} {:<20} {}\n",
            timefmt::seconds(c.time_us.div_euclid(1_000_000)),
            clip(&flow, 47),
            clip(hs.sni.as_deref().unwrap_or("-"), 28),
            hs.version.map_or_else(dash, |v| v.to_string()),
            clip(&hs.cipher.map_or_else(dash, |v| v.to_string()), 40),
            clip(hs.alpn.as_deref().unwrap_or("-"), 9),
            c.server_chain.len(),
            clip(leaf.map_or("-", |c| c.subject.as_str()), 40),
            leaf.map_or_else(dash, |c| timefmt::seconds(c.not_after)),
            c.correlation.verdict.map_or("-", |v| v.name()),
        );
        self.write(row);
        for f in c.findings.iter().filter(|f| f.first) {
            self.keep(FindingRow::new(f, c.time_us, c.server, hs.sni.as_deref()));
        }
    }

    fn flow(&mut self, flow: &Flow) {
        for f in flow.findings.iter().filter(|f| f.first) {
            self.keep(FindingRow::new(f, flow.first_us, flow.server, None));
        }
    }

    fn finish(&mut self, stats: &RunStats) {
        let s = &Summary::from(stats);
        self.header();
        self.findings_table();
        let mut text = format!(
            "\n{} file(s), {} frames, {} bytes, {} TCP segments; {} connections, {} TLS, {} handshakes, {} distinct certificates\n",
            s.files,
            s.frames,
            s.bytes,
            s.tcp_segments,
            s.connections,
            s.tls_connections,
            s.handshakes,
            s.certificates
        );
        if !s.findings.is_empty() || !s.findings_suppressed.is_empty() {
            let per_rule = |m: &std::collections::BTreeMap<&str, u64>| {
                m.iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            text.push_str(&format!(
                "findings in handshakes: {}\n",
                per_rule(&s.findings)
            ));
            if !s.findings_suppressed.is_empty() {
                text.push_str(&format!(
                    "suppressed by exceptions: {}\n",
                    per_rule(&s.findings_suppressed)
                ));
            }
        }
        if s.errors.is_empty() {
            text.push_str("errors: none\n");
        } else {
            text.push_str("errors:\n");
            for (k, v) in &s.errors {
                text.push_str(&format!("  {k:<32} {v}\n"));
            }
        }
        if !s.kernel.is_empty() {
            text.push_str("kernel:\n");
            for (k, v) in &s.kernel {
                text.push_str(&format!("  {k:<32} {v}\n"));
            }
        }
        self.write(text);
        self.flush();
    }

    fn flush(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.out.flush()
        {
            self.error = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Rule;

    fn flow(i: u16) -> Flow {
        let mut f = Flow::new(
            format!("10.0.0.1:{i}").parse().unwrap(),
            "10.0.0.1:443".parse().unwrap(),
            i64::from(i),
            i64::from(i),
            1,
            1,
        );
        f.findings.push(Finding {
            rule: Rule::CertExpired,
            severity: Severity::Critical,
            message: format!("finding {i}").into(),
            certificate: None,
            subject: None,
            evidence: Default::default(),
            first: true,
        });
        f
    }

    #[test]
    fn finding_rows_bound_is_kept_and_counted() {
        let mut t = Table::with_finding_rows(Vec::new(), 2);
        for i in 0..3 {
            t.flow(&flow(i));
        }
        assert_eq!(t.findings_not_shown, 1);
        t.finish(&RunStats::default());
        let out = String::from_utf8(t.into_inner()).unwrap();
        assert!(out.contains("finding 0") && out.contains("finding 1"));
        assert!(!out.contains("finding 2"));
        assert!(out.contains("... and 1 more findings not shown"));
    }
}
