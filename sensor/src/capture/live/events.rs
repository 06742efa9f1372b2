use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use std::net::SocketAddr;

use sensor_common::{
    EVENT_HEADER_LEN, EVENT_PLAIN_SUMMARY, EventHeader, FAMILY_V4, FlowKey as KernelKey,
    PLAIN_SUMMARY_LEN, PlainState, PlainSummary, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN,
};

use crate::capture::{FlowKey, Segment, TcpFlags};
use crate::model::Flow;

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

impl Clock {
    pub fn new() -> Self {
        Self {
            offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
        }
    }

    pub fn to_unix_us(self, mono_ns: u64) -> i64 {
        (mono_ns as i64 + self.offset_ns) / 1000
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

/// One ring-buffer record: a segment, or the summary of a plaintext
/// connection that ended.
pub enum Event<'a> {
    Segment(Segment<'a>),
    Plaintext(Box<Flow>),
}

/// None when the record is malformed.
pub fn decode(record: &[u8], clock: Clock) -> Option<Event<'_>> {
    let h = header(record)?;
    if h.tcp_flags & EVENT_PLAIN_SUMMARY == 0 {
        return decode_event(record, clock).map(Event::Segment);
    }
    if h.len as usize != PLAIN_SUMMARY_LEN {
        return None;
    }
    let body = record.get(EVENT_HEADER_LEN..EVENT_HEADER_LEN + PLAIN_SUMMARY_LEN)?;
    // SAFETY: PlainSummary is repr(C) plain data; the length was checked.
    let s: PlainSummary = unsafe { std::ptr::read_unaligned(body.as_ptr() as *const PlainSummary) };
    Some(Event::Plaintext(Box::new(Flow::new(
        SocketAddr::new(addr(h.family, h.saddr), h.sport),
        SocketAddr::new(addr(h.family, h.daddr), h.dport),
        clock.to_unix_us(s.opened_ns),
        clock.to_unix_us(h.ts_ns),
        s.bytes_to_server,
        s.bytes_to_client,
    ))))
}

/// A plaintext connection user space removed from the PLAIN map (idle,
/// shutdown), as the kernel's summary would have described it.
pub fn plain_flow(key: &KernelKey, s: &PlainState, clock: Clock) -> Flow {
    let lo = SocketAddr::new(addr(key.family, key.lo_addr), key.lo_port);
    let hi = SocketAddr::new(addr(key.family, key.hi_addr), key.hi_port);
    let c = (s.client & 1) as usize;
    let (client, server) = if c == 0 { (lo, hi) } else { (hi, lo) };
    Flow::new(
        client,
        server,
        clock.to_unix_us(s.opened_ns),
        clock.to_unix_us(s.last_ns),
        s.bytes[c],
        s.bytes[c ^ 1],
    )
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
        },
        timestamp_us: clock.to_unix_us(h.ts_ns),
        payload,
    })
}
