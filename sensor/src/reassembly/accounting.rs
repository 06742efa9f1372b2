//! Flow accounting: which TCP connections carried payload without ever
//! starting TLS (DESIGN.md `tls.plaintext`). A connection is classified by
//! the first payload bytes seen on it; one that is not TLS is counted
//! (bytes only, never its payload) until it ends, and then reported as a
//! `Flow`. The analysis decides whether that is a finding (both
//! peers must be workloads).

use crate::model::{ConnTraffic, Counts, Flow};
use crate::reassembly::{ConnMeta, Side};

/// What the first payload bytes of a connection said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowClass {
    /// No payload yet.
    #[default]
    Undecided,
    Tls,
    /// Not TLS, and counted: reported when the connection ends.
    Plaintext,
    /// Not TLS, but the bound on plaintext flows was reached.
    Untracked,
}

/// A TLS record header: content type change_cipher_spec (20), alert (21),
/// handshake (22) or application_data (23), version 3.0 to 3.4. A capture
/// that starts mid-connection sees application data first, not a hello.
/// Checks only the bytes present: a first segment of one byte is judged on it.
pub fn starts_tls(b: &[u8]) -> bool {
    b.first().is_some_and(|t| (20..=23).contains(t))
        && b.get(1).is_none_or(|v| *v == 3)
        && b.get(2).is_none_or(|v| *v <= 4)
}

/// The client as the reassembly table saw it: the side that sent the SYN;
/// without one (the capture started later), the side with the higher port,
/// as ephemeral ports are the higher ones.
fn client_of(meta: &ConnMeta) -> Side {
    meta.syn_from.unwrap_or(if meta.a.port() >= meta.b.port() {
        Side::A
    } else {
        Side::B
    })
}

/// A connection's counts from the reassembly table's view of it, as of
/// its last packet; `partial` without its SYN.
pub fn traffic_of(meta: &ConnMeta, encrypted: bool) -> ConnTraffic {
    let (c, s) = (client_of(meta), client_of(meta).other());
    ConnTraffic {
        client: meta.addr(c),
        server: meta.addr(s),
        start_us: meta.first_seen_us,
        time_us: meta.last_seen_us,
        total: Counts {
            bytes_to_server: meta.payload_bytes[c as usize],
            bytes_to_client: meta.payload_bytes[s as usize],
            packets_to_server: meta.payload_packets[c as usize],
            packets_to_client: meta.payload_packets[s as usize],
        },
        encrypted,
        partial: meta.syn_from.is_none(),
        end: meta.end,
    }
}

/// A connection's flow from the reassembly table's view of it (the
/// client as `traffic_of` decides).
pub fn flow_of(meta: &ConnMeta) -> Flow {
    let client = client_of(meta);
    let server = client.other();
    Flow::new(
        meta.addr(client),
        meta.addr(server),
        meta.first_seen_us,
        meta.last_seen_us,
        meta.payload_bytes[client as usize],
        meta.payload_bytes[server as usize],
    )
}

#[derive(Debug, Default, Clone)]
pub struct AccountingStats {
    /// Connections classified plaintext and counted.
    pub plaintext_flows: u64,
    /// Plaintext connections not counted: the bound was reached.
    pub table_full: u64,
}

/// The bound on plaintext connections counted at once, and its counters.
/// The per-connection state (`FlowClass`, byte counts) lives with the
/// connection in the reassembly table, so accounting adds no lookup per
/// packet.
#[derive(Debug)]
pub struct Accounting {
    open: usize,
    capacity: usize,
    pub stats: AccountingStats,
}

impl Accounting {
    pub fn new(capacity: usize) -> Self {
        Self {
            open: 0,
            capacity,
            stats: AccountingStats::default(),
        }
    }

    /// Classifies a connection by its first payload; `tls_found` is the
    /// TLS stage's verdict on the same bytes (a ClientHello).
    pub fn classify(&mut self, first: &[u8], tls_found: bool) -> FlowClass {
        if tls_found || starts_tls(first) {
            return FlowClass::Tls;
        }
        if self.open >= self.capacity {
            self.stats.table_full += 1;
            return FlowClass::Untracked;
        }
        self.open += 1;
        self.stats.plaintext_flows += 1;
        FlowClass::Plaintext
    }

    /// A connection ended; true when it is a plaintext flow to report.
    pub fn close(&mut self, class: FlowClass) -> bool {
        if class == FlowClass::Plaintext {
            self.open = self.open.saturating_sub(1);
            return true;
        }
        false
    }

    pub fn open(&self) -> usize {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FlowEnd;

    #[test]
    fn tls_record_headers_are_tls_and_text_is_not() {
        assert!(starts_tls(&[22, 3, 1, 0, 200, 1]));
        assert!(starts_tls(&[23, 3, 3, 0, 40]));
        assert!(starts_tls(&[21]));
        assert!(!starts_tls(b"GET / HTTP/1.1\r\n"));
        assert!(!starts_tls(b"SSH-2.0-OpenSSH_9.2"));
        assert!(!starts_tls(&[22, 2, 0]));
        assert!(!starts_tls(&[23, 3, 9]));
        assert!(!starts_tls(&[]));
    }

    #[test]
    fn bound_is_kept_counted_and_freed() {
        let mut a = Accounting::new(2);
        assert_eq!(a.classify(b"GET /", false), FlowClass::Plaintext);
        assert_eq!(a.classify(b"PING", false), FlowClass::Plaintext);
        assert_eq!(a.classify(b"HELO", false), FlowClass::Untracked);
        assert_eq!(a.classify(&[22, 3, 1], true), FlowClass::Tls);
        assert_eq!(a.stats.table_full, 1);
        assert!(!a.close(FlowClass::Untracked));
        assert!(!a.close(FlowClass::Tls));
        assert_eq!(a.open(), 2);
        assert!(a.close(FlowClass::Plaintext));
        assert_eq!(a.classify(b"HELO", false), FlowClass::Plaintext);
        assert_eq!(a.stats.plaintext_flows, 3);
    }

    fn meta(syn_from: Option<Side>) -> ConnMeta {
        ConnMeta {
            a: "10.0.0.1:80".parse().unwrap(),
            b: "10.0.0.2:40000".parse().unwrap(),
            first_seen_us: 1,
            last_seen_us: 2,
            payload_bytes: [100, 7],
            payload_packets: [2, 1],
            end: Some(FlowEnd::Fin),
            syn_from,
        }
    }

    #[test]
    fn the_syn_sender_is_the_client() {
        let f = flow_of(&meta(Some(Side::A)));
        assert_eq!(f.client, "10.0.0.1:80".parse().unwrap());
        assert_eq!((f.bytes_to_server, f.bytes_to_client), (100, 7));
        let t = traffic_of(&meta(Some(Side::A)), false);
        assert_eq!((t.client, t.total.packets_to_server), (f.client, 2));
        assert_eq!((t.end, t.partial), (Some(FlowEnd::Fin), false));
        assert!(traffic_of(&meta(None), true).partial);
    }

    #[test]
    fn without_a_syn_the_lower_port_is_the_server() {
        let f = flow_of(&meta(None));
        assert_eq!(f.server, "10.0.0.1:80".parse().unwrap());
        assert_eq!(f.client, "10.0.0.2:40000".parse().unwrap());
        assert_eq!((f.bytes_to_server, f.bytes_to_client), (7, 100));
        assert_eq!(f.bytes(), 107);
    }
}
