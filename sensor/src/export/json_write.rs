//! JSON text of the two record kinds written once per connection (handshake
//! and flow), written straight from their fields.
//!
//! serde_json escapes every key and scans every string byte by byte: with
//! its map bookkeeping, that was a quarter of `sensor analyze`'s pipeline
//! thread. Here keys are literals and strings are checked in one pass for
//! the few bytes JSON escapes, the escaping itself left to serde_json. The
//! output is byte for byte serde_json's, which the tests check against the
//! records' `Serialize` (still what OTLP log bodies and the rare kinds use).

use std::fmt::Display;
use std::io::Write as _;
use std::net::IpAddr;

use super::records::{
    CertManagerRecord, CountsRecord, Endpoint, FindingEntry, FlowRecord, FlowTlsRecord,
    HandshakeRecord, Micros, ProbeRecord, Record, Seconds, Shown,
};
use crate::model::time;
use crate::model::{Owner, Peer, Verdict};

/// A value with a JSON text.
pub trait WriteJson {
    fn write_json(&self, out: &mut Vec<u8>);
}

/// An object whose keys are literals: each key, with its quotes and
/// separators, is one copy of a constant the compiler sizes.
macro_rules! object {
    ($out:expr, $first:literal => $v:expr $(, $k:literal => $w:expr)* $(,)?) => {{
        let out: &mut Vec<u8> = $out;
        out.extend_from_slice(concat!("{\"", $first, "\":").as_bytes());
        WriteJson::write_json($v, out);
        $(
            out.extend_from_slice(concat!(",\"", $k, "\":").as_bytes());
            WriteJson::write_json($w, out);
        )*
        out.push(b'}');
    }};
}

/// No byte JSON must escape: controls, the quote and the backslash. A
/// fold rather than `all`: without the early exit the compiler checks
/// a vector of bytes at a time, and the strings are short.
fn plain(s: &[u8]) -> bool {
    !s.iter().fold(false, |bad, &b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// A string known to hold nothing to escape.
fn quoted(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

impl WriteJson for str {
    fn write_json(&self, out: &mut Vec<u8>) {
        if plain(self.as_bytes()) {
            quoted(self, out);
        } else {
            // Writing into a Vec cannot fail.
            let _ = serde_json::to_writer(out, self);
        }
    }
}

impl WriteJson for String {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.as_str().write_json(out)
    }
}

impl WriteJson for bool {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if *self { b"true" } else { b"false" });
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl WriteJson for $t {
            fn write_json(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(itoa::Buffer::new().format(*self).as_bytes());
            }
        }
    )*};
}
integers!(u16, u64);

impl<T: WriteJson + ?Sized> WriteJson for &T {
    fn write_json(&self, out: &mut Vec<u8>) {
        (**self).write_json(out)
    }
}

impl<T: WriteJson> WriteJson for Option<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.write_json(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl<T: WriteJson> WriteJson for [T] {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            v.write_json(out);
        }
        out.push(b']');
    }
}

impl<T: WriteJson> WriteJson for Vec<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.as_slice().write_json(out)
    }
}

/// A `Display` as a JSON string, as serde's `collect_str` gives it.
fn display(v: &impl Display, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(b'"');
    let _ = write!(out, "{v}");
    if plain(&out[start + 1..]) {
        out.push(b'"');
    } else {
        out.truncate(start);
        v.to_string().write_json(out);
    }
}

impl<T: Display> WriteJson for Shown<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        display(&self.0, out)
    }
}

// RFC 3339 text is digits and `-:.TZ+`: nothing to escape.
impl WriteJson for Micros {
    fn write_json(&self, out: &mut Vec<u8>) {
        time::with_micros(self.0, |t| quoted(t, out))
    }
}

impl WriteJson for Seconds {
    fn write_json(&self, out: &mut Vec<u8>) {
        time::with_seconds(self.0, |t| quoted(t, out))
    }
}

impl WriteJson for IpAddr {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            IpAddr::V4(ip) => {
                let mut digits = itoa::Buffer::new();
                out.push(b'"');
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    out.extend_from_slice(digits.format(octet).as_bytes());
                }
                out.push(b'"');
            }
            IpAddr::V6(_) => display(self, out),
        }
    }
}

impl WriteJson for Endpoint {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "ip" => &self.ip,
            "port" => &self.port,
        );
    }
}

impl WriteJson for Verdict {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.name().write_json(out)
    }
}

impl WriteJson for Owner {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "kind" => &self.kind,
            "name" => &self.name,
        );
    }
}

impl WriteJson for Peer {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "kind" => self.kind.name(),
            "namespace" => &self.namespace,
            "name" => &self.name,
            "workload" => &self.workload,
            "service_account" => &self.service_account,
            "node" => &self.node,
        );
    }
}

impl WriteJson for FindingEntry<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "rule" => self.rule,
            "severity" => self.severity,
            "message" => self.message,
            "certificate" => &self.certificate,
        );
    }
}

impl WriteJson for ProbeRecord {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "result" => self.result,
            "time" => &self.time,
            "cached" => &self.cached,
        );
    }
}

impl WriteJson for CertManagerRecord<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "certificate" => &Serde(self.certificate),
            "revision" => &self.revision,
            "issuer" => &Serde(self.issuer),
            "current_revision" => &self.current_revision,
            "renewal_time" => &self.renewal_time,
            "issuer_type" => &self.issuer_type,
            "issuer_ready" => &self.issuer_ready,
        );
    }
}

impl WriteJson for HandshakeRecord<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "kind" => self.kind,
            "time" => &self.time,
            "client" => &self.client,
            "server" => &self.server,
            "version" => &self.version,
            "cipher" => &self.cipher,
            "sni" => &self.sni,
            "alpn_offered" => self.alpn_offered,
            "alpn" => &self.alpn,
            "ja3" => &self.ja3,
            "ja3s" => &self.ja3s,
            "ja4" => &self.ja4,
            "resumed" => &self.resumed,
            "mutual" => &self.mutual,
            "server_chain" => &self.server_chain,
            "client_chain" => &self.client_chain,
            "certificate_source" => &self.certificate_source,
            "probe" => &self.probe,
            "starttls" => &self.starttls,
            "alert" => &self.alert,
            "mesh" => &self.mesh,
            "mesh_identity" => &self.mesh_identity,
            "findings" => &self.findings,
            "source" => &self.source,
            "destination" => &self.destination,
            "verdict" => &self.verdict,
            "cert_manager" => &self.cert_manager,
            "complete" => &self.complete,
        );
    }
}

impl WriteJson for CountsRecord {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "bytes_to_server" => &self.bytes_to_server,
            "bytes_to_client" => &self.bytes_to_client,
            "packets_to_server" => &self.packets_to_server,
            "packets_to_client" => &self.packets_to_client,
        );
    }
}

impl WriteJson for FlowTlsRecord<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "version" => &self.version,
            "cipher" => &self.cipher,
            "sni" => &self.sni,
            "alpn_offered" => self.alpn_offered,
            "alpn" => &self.alpn,
            "mesh" => &self.mesh,
            "mutual" => &self.mutual,
            "verdict" => &self.verdict,
            "server_leaf" => &self.server_leaf,
        );
    }
}

impl WriteJson for FlowRecord<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        object!(
            out,
            "kind" => self.kind,
            "time" => &self.time,
            "start" => &self.start,
            "client" => &self.client,
            "server" => &self.server,
            "interval" => &self.interval,
            "total" => &self.total,
            "end" => &self.end,
            "partial" => &self.partial,
            "tls" => &self.tls,
            "source" => &self.source,
            "destination" => &self.destination,
        );
    }
}

/// A value left to serde_json: kinds written a few times a run.
pub struct Serde<T>(pub T);

impl<T: serde::Serialize> WriteJson for Serde<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        // Writing into a Vec fails only for a Serialize impl that errs,
        // which none of the records' do.
        let _ = serde_json::to_writer(out, &self.0);
    }
}

impl WriteJson for Record<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Record::Handshake(h) => h.write_json(out),
            other => Serde(other).write_json(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same<T: WriteJson + serde::Serialize>(v: &T) {
        let mut ours = Vec::new();
        v.write_json(&mut ours);
        let theirs = serde_json::to_vec(v).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs)
        );
    }

    #[test]
    fn strings_that_need_escaping_are_escaped_as_serde_json_does() {
        for s in [
            "plain",
            "",
            "quo\"te",
            "back\\slash",
            "new\nline",
            "\u{1}\u{1f}",
            "del\u{7f}",
            "ünïcødé ✓",
            "tab\there",
        ] {
            same(&s);
        }
    }

    #[test]
    fn numbers_booleans_addresses_and_times_match_serde_json() {
        for n in [0u64, 9, 10, 65535, u64::MAX] {
            same(&n);
        }
        same(&true);
        same(&false);
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::8",
        ] {
            same(&ip.parse::<IpAddr>().unwrap());
        }
        for us in [0, 1, 1_700_000_000_123_456, -1, i64::MAX, i64::MIN] {
            same(&Micros(us));
            same(&Seconds(us));
        }
        same(&Shown(crate::model::ProtocolVersion(0x7f1c)));
        same(&Shown(crate::model::CipherSuite(0x1301)));
        same(&Shown(crate::model::CipherSuite(0xfefe)));
    }
}
