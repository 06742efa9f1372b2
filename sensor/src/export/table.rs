use std::io::Write;
use std::sync::Arc;

use super::records::{HandshakeRecord, RecordSink, Summary};
use super::timefmt;
use crate::x509::CertInfo;

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut c: String = s.chars().take(n.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// The human view: one row per handshake, streamed, then the summary.
pub struct Table<W: Write> {
    out: W,
    header_done: bool,
    pub error: Option<std::io::Error>,
}

impl<W: Write> Table<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            header_done: false,
            error: None,
        }
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

impl<W: Write> RecordSink for Table<W> {
    fn handshake(&mut self, hs: &HandshakeRecord, certs: &[Arc<CertInfo>]) {
        self.header();
        let dash = || "-".to_string();
        let leaf = certs.first();
        let flow = format!(
            "{}:{} -> {}:{}",
            hs.client.ip, hs.client.port, hs.server.ip, hs.server.port
        );
        let row = format!(
            "{:<20} {:<47} {:<28} {:<8} {:<40} {:<9} {:>5}  {:<40} {:<20} {}\n",
            timefmt::seconds(hs.time_us.div_euclid(1_000_000)),
            clip(&flow, 47),
            clip(hs.sni.as_deref().unwrap_or("-"), 28),
            hs.version.clone().unwrap_or_else(dash),
            clip(hs.cipher.as_deref().unwrap_or("-"), 40),
            clip(hs.alpn.as_deref().unwrap_or("-"), 9),
            hs.server_chain.len(),
            clip(leaf.map_or("-", |c| c.subject.as_str()), 40),
            leaf.map_or_else(dash, |c| timefmt::seconds(c.not_after)),
            hs.verdict.map_or("-", |v| v.name()),
        );
        self.write(row);
    }

    fn certificate(&mut self, _cert: &CertInfo) {}

    fn finish(&mut self, s: &Summary) {
        self.header();
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
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
    }
}
