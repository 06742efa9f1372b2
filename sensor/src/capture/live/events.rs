use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::net::SocketAddr;

use sensor_common::{
    CONN_PARTIAL, CONN_SUMMARY_LEN, CONN_TLS, CONN_TLS_COUNTING, ConnState, ConnSummary, END_FIN,
    END_RST, EVENT_CONN_SUMMARY, EVENT_HEADER_LEN, EVENT_SEGMENT, EventHeader, FAMILY_V4,
    FLOW_START, FlowKey as KernelKey, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
};

use crate::capture::{FlowKey, Segment, TcpFlags};
use crate::model::{ConnTraffic, Counts, FlowEnd};

/// Turns the kernel's monotonic timestamps into wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset_ns: i64,
}

fn clock_ns(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct we pass.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The kernel's clock for programs (`bpf_ktime_get_ns`), now.
pub fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) as u64
}

impl Clock {
    pub fn new() -> Self {
        Self {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
        }
    }

    pub fn to_unix_us(self, mono_ns: u64) -> i64 {
        (mono_ns as i64 + self.offset_ns) / 1000
    }

    /// Now, as a packet of this moment would be dated.
    pub fn now_us(self) -> i64 {
        self.to_unix_us(mono_ns())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

fn addr(family: u8, words: [u32; 4]) -> IpAddr {
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::from(words[0].to_ne_bytes()))
    } else {
        let mut b = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&w.to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(b))
    }
}

fn header(record: &[u8]) -> Option<EventHeader> {
    if record.len() < EVENT_HEADER_LEN {
        return None;
    }
    // SAFETY: EventHeader is repr(C) plain data; the length was checked and
    // the read is unaligned-safe.
    Some(unsafe { std::ptr::read_unaligned(record.as_ptr() as *const EventHeader) })
}

/// One ring-buffer record: a segment, or the summary of a connection
/// that ended in the kernel.
pub enum Event<'a> {
    Segment(Segment<'a>),
    ConnEnd(ConnTraffic),
}

/// The record parsed by its header's kind; None when the record is
/// malformed or of a kind this build does not know.
pub fn decode(record: &[u8], clock: Clock) -> Option<Event<'_>> {
    let h = header(record)?;
    match h.kind {
        EVENT_SEGMENT => decode_event(record, clock).map(Event::Segment),
        EVENT_CONN_SUMMARY => conn_summary(&h, record, clock).map(Event::ConnEnd),
        _ => None,
    }
}

/// Only the TLS phases are encrypted: an upgrade preamble that has not
/// (yet) started TLS is plaintext so far, and one that ends so never did
/// (pending entries are never summarised nor reported).
fn encrypted(phase: u8) -> bool {
    phase == CONN_TLS || phase == CONN_TLS_COUNTING
}

fn conn_summary(h: &EventHeader, record: &[u8], clock: Clock) -> Option<ConnTraffic> {
    if h.len as usize != CONN_SUMMARY_LEN {
        return None;
    }
    let body = record.get(EVENT_HEADER_LEN..EVENT_HEADER_LEN + CONN_SUMMARY_LEN)?;
    // SAFETY: ConnSummary is repr(C) plain data; the length was checked.
    let s: ConnSummary = unsafe { std::ptr::read_unaligned(body.as_ptr() as *const ConnSummary) };
    let end = match s.end {
        END_FIN => FlowEnd::Fin,
        END_RST => FlowEnd::Rst,
        _ => return None,
    };
    Some(ConnTraffic {
        client: SocketAddr::new(addr(h.family, h.saddr), h.sport),
        server: SocketAddr::new(addr(h.family, h.daddr), h.dport),
        start_us: clock.to_unix_us(s.opened_ns),
        time_us: clock.to_unix_us(h.ts_ns),
        total: Counts {
            bytes_to_server: s.bytes_to_server,
            bytes_to_client: s.bytes_to_client,
            packets_to_server: s.packets_to_server,
            packets_to_client: s.packets_to_client,
        },
        encrypted: encrypted(s.phase),
        partial: s.flags & CONN_PARTIAL != 0,
        end: Some(end),
    })
}

/// A CONNS entry as user space reads it: its counts so far, taken at
/// `now_ns` (monotonic), ending with `end` when user space removes it
/// (idle, shutdown).
pub fn conn_traffic(
    key: &KernelKey,
    s: &ConnState,
    clock: Clock,
    now_ns: u64,
    end: Option<FlowEnd>,
) -> ConnTraffic {
    let lo = SocketAddr::new(addr(key.family, key.lo_addr), key.lo_port);
    let hi = SocketAddr::new(addr(key.family, key.hi_addr), key.hi_port);
    let c = (s.client & 1) as usize;
    let (client, server) = if c == 0 { (lo, hi) } else { (hi, lo) };
    // An idle end is dated by the last packet, not by when it was noticed;
    // the kernel stamps packets with a clock that may lag the connection's
    // opening by up to a tick.
    let at = if end == Some(FlowEnd::Idle) {
        s.last_ns.max(s.opened_ns)
    } else {
        now_ns
    };
    ConnTraffic {
        client,
        server,
        start_us: clock.to_unix_us(s.opened_ns),
        time_us: clock.to_unix_us(at),
        total: Counts {
            bytes_to_server: s.bytes_of(c),
            bytes_to_client: s.bytes_of(c ^ 1),
            packets_to_server: s.packets_of(c),
            packets_to_client: s.packets_of(c ^ 1),
        },
        encrypted: encrypted(s.phase),
        partial: s.flags & CONN_PARTIAL != 0,
        end,
    }
}

/// One ring-buffer record as a segment; None when the record is malformed.
pub fn decode_event(record: &[u8], clock: Clock) -> Option<Segment<'_>> {
    let h = header(record)?;
    let payload = record.get(EVENT_HEADER_LEN..EVENT_HEADER_LEN + h.len as usize)?;
    Some(Segment {
        flow: FlowKey::new(
            addr(h.family, h.saddr),
            h.sport,
            addr(h.family, h.daddr),
            h.dport,
        ),
        seq: h.seq,
        flags: TcpFlags {
            syn: h.tcp_flags & TCP_SYN != 0,
            ack: h.tcp_flags & TCP_ACK != 0,
            fin: h.tcp_flags & TCP_FIN != 0,
            rst: h.tcp_flags & TCP_RST != 0,
            flow_start: h.tcp_flags & FLOW_START != 0,
        },
        timestamp_us: clock.to_unix_us(h.ts_ns),
        conn_start_us: (h.tcp_flags & FLOW_START != 0 && h.opened_ns != 0)
            .then(|| clock.to_unix_us(h.opened_ns)),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_common::CONN_PLAIN;

    fn record(kind: u8, len: u16, body: &[u8]) -> Vec<u8> {
        let h = EventHeader {
            ts_ns: 1_000,
            saddr: [u32::from_ne_bytes([10, 0, 0, 1]), 0, 0, 0],
            daddr: [u32::from_ne_bytes([10, 0, 0, 2]), 0, 0, 0],
            sport: 40000,
            dport: 443,
            seq: 7,
            len,
            family: FAMILY_V4,
            kind,
            ..EventHeader::default()
        };
        // SAFETY: EventHeader is repr(C) plain data.
        let head = unsafe {
            std::slice::from_raw_parts(&h as *const EventHeader as *const u8, EVENT_HEADER_LEN)
        };
        [head, body].concat()
    }

    #[test]
    fn records_are_parsed_by_kind() {
        let clock = Clock::new();
        let seg = record(EVENT_SEGMENT, 3, b"abc");
        let Some(Event::Segment(s)) = decode(&seg, clock) else {
            panic!("a segment");
        };
        assert_eq!((s.seq, s.payload), (7, &b"abc"[..]));

        let mut body = Vec::new();
        for v in [10u64, 20, 1, 2, 500] {
            body.extend_from_slice(&v.to_ne_bytes());
        }
        body.extend_from_slice(&[CONN_PLAIN, CONN_PARTIAL, END_RST, 0, 0, 0, 0, 0]);
        let sum = record(EVENT_CONN_SUMMARY, CONN_SUMMARY_LEN as u16, &body);
        let Some(Event::ConnEnd(p)) = decode(&sum, clock) else {
            panic!("a connection summary");
        };
        assert_eq!((p.total.bytes_to_server, p.total.bytes_to_client), (10, 20));
        assert_eq!(p.total.packets(), 3);
        assert_eq!(p.server.port(), 443);
        assert_eq!(p.end, Some(FlowEnd::Rst));
        assert!(p.partial && !p.encrypted);
    }

    #[test]
    fn a_preamble_is_plaintext_until_it_starts_tls() {
        use sensor_common::{CONN_PENDING, CONN_PREAMBLE};
        assert!(!encrypted(CONN_PREAMBLE));
        assert!(!encrypted(CONN_PLAIN));
        assert!(!encrypted(CONN_PENDING));
        assert!(encrypted(CONN_TLS) && encrypted(CONN_TLS_COUNTING));
    }

    #[test]
    fn unknown_kinds_and_short_records_are_malformed() {
        let clock = Clock::new();
        assert!(decode(&record(0, 0, &[]), clock).is_none());
        assert!(decode(&record(9, 0, &[]), clock).is_none());
        assert!(decode(&record(EVENT_SEGMENT, 4, b"abc"), clock).is_none());
        assert!(decode(&record(EVENT_CONN_SUMMARY, 3, b"abc"), clock).is_none());
        assert!(decode(&[0u8; 10], clock).is_none());
    }
}
