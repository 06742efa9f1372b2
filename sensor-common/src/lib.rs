//! Types shared by the kernel programs and user space: the flow map's key
//! and value, the ring-buffer event header, counter indices, constants.
#![no_std]

/// Payload bytes per ring-buffer record. Records are variable-length: a
/// small segment costs its own size, a large one is split into chunks.
pub const MAX_CHUNK: usize = 4096;
/// Chunks per packet: 140 KiB covers BIG TCP's 130 KiB GSO packets.
pub const MAX_CHUNKS: usize = 35;
/// Bytes shipped per direction of a flow unless user space closes it sooner.
pub const DEFAULT_BUDGET: u32 = 64 * 1024;
/// Ring buffer size (a power of two multiple of the page size).
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;
/// Flows in the handshake phase tracked at once.
pub const DEFAULT_FLOW_ENTRIES: u32 = 16384;
/// Connections followed for plaintext accounting at once (from their SYN).
pub const DEFAULT_PLAIN_ENTRIES: u32 = 65536;

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

pub const TCP_SYN: u8 = 1;
pub const TCP_FIN: u8 = 2;
pub const TCP_RST: u8 = 4;
pub const TCP_ACK: u8 = 8;
/// Not a TCP flag: set in `EventHeader::tcp_flags` on the record of the
/// packet that opened the flow in FLOWS. The program ships no SYN, so
/// this is how user space learns that a 4-tuple it still holds (the
/// kernel stops following a connection once its handshake is done) now
/// carries a new connection: source ports are reused within seconds
/// under a storm of short connections.
pub const FLOW_START: u8 = 16;

/// `EventHeader::kind`: a TCP segment of a handshake flow, `len` payload
/// bytes (none for the FIN or RST of an open flow).
pub const EVENT_SEGMENT: u8 = 1;
/// `EventHeader::kind`: a `PlainSummary` of a plaintext connection that
/// ended in the kernel.
pub const EVENT_PLAIN_SUMMARY: u8 = 2;

/// A connection, both directions: the endpoint with the lower (port, addr)
/// is `lo`, so either direction's packet finds the same entry with one lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Addresses in network byte order as they sit in the packet; IPv4 uses word 0.
    pub lo_addr: [u32; 4],
    pub hi_addr: [u32; 4],
    pub lo_port: u16,
    pub hi_port: u16,
    pub family: u8,
    pub _pad: [u8; 3],
}

/// The gate in front of the flow map: slot `gate_slot` of a flow counts the
/// open flows that fall in it. A packet whose slot reads zero belongs to no
/// open flow and skips the hash lookup, which costs more than the rest of
/// the program. The kernel adds one before it inserts a flow (and takes it
/// back if the insert fails); user space takes one off after it deleted a
/// flow. So a flow in the map always has a non-zero slot; a collision only
/// costs a lookup.
pub const GATE_BITS: u32 = 16;
pub const GATE_SLOTS: u32 = 1 << GATE_BITS;

/// The gate slot of a connection from its endpoints XORed together, so the
/// kernel need not order them first: `addr_xor` = source ^ destination
/// address words (as in `FlowKey`), `port_xor` = source ^ destination port.
#[inline(always)]
pub fn gate_slot(addr_xor: [u32; 4], port_xor: u16) -> u32 {
    gate_slot_mixed(gate_mix(addr_xor), port_xor)
}

/// The address part of `gate_slot`; for IPv4 (words 1..3 zero) it is word 0,
/// which the kernel program uses to skip the rest.
#[inline(always)]
pub fn gate_mix(addr_xor: [u32; 4]) -> u32 {
    addr_xor[0]
        ^ addr_xor[1].rotate_left(7)
        ^ addr_xor[2].rotate_left(14)
        ^ addr_xor[3].rotate_left(21)
}

#[inline(always)]
pub fn gate_slot_mixed(mix: u32, port_xor: u16) -> u32 {
    // Fibonacci hashing: the top bits of the product mix every input bit.
    (mix ^ ((port_xor as u32) << 8)).wrapping_mul(0x9E37_79B1) >> (32 - GATE_BITS)
}

impl FlowKey {
    pub fn gate_slot(&self) -> u32 {
        let mut x = [0u32; 4];
        for (i, w) in x.iter_mut().enumerate() {
            *w = self.lo_addr[i] ^ self.hi_addr[i];
        }
        gate_slot(x, self.lo_port ^ self.hi_port)
    }
}

/// Per-flow state. Index 0 is the direction sent by `lo`, 1 by `hi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowState {
    /// Payload bytes still to ship per direction.
    pub budget: [u32; 2],
    /// The last shipped segment per direction: the same segment seen again
    /// (veth pair, loopback) is not shipped twice.
    pub last_seq: [u32; 2],
    pub last_len: [u32; 2],
    pub opened_ns: u64,
    pub last_ns: u64,
}

/// A connection followed for plaintext accounting (the PLAIN map, keyed
/// like FLOWS and behind the same gate). Opened by the client's SYN; its
/// first payload decides: a ClientHello hands it to FLOWS, anything else
/// makes it a plaintext flow whose bytes are counted (never shipped) until
/// RST, both FINs, or user space expires it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainState {
    /// Payload bytes per direction, index as in `FlowState`.
    pub bytes: [u64; 2],
    /// Duplicate detection, as in `FlowState` (veth pairs, loopback).
    pub last_seq: [u32; 2],
    pub last_len: [u32; 2],
    /// The SYN (bpf_ktime_get_ns).
    pub opened_ns: u64,
    pub last_ns: u64,
    /// Which end sent the SYN: 0 `lo`, 1 `hi`.
    pub client: u8,
    /// `PLAIN_PENDING` until the first payload, then `PLAIN_COUNTING`.
    pub phase: u8,
    /// FIN seen per direction (bit 0: sent by `lo`, bit 1: by `hi`).
    pub fins: u8,
    pub _pad: [u8; 5],
}

pub const PLAIN_PENDING: u8 = 0;
pub const PLAIN_COUNTING: u8 = 1;

/// The payload of an `EVENT_PLAIN_SUMMARY` record; the header's source is
/// the client, its destination the server, `ts_ns` the end, `tcp_flags` 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PlainSummary {
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub opened_ns: u64,
}

pub const PLAIN_SUMMARY_LEN: usize = core::mem::size_of::<PlainSummary>();

/// Header of every ring-buffer record; `len` payload bytes follow.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    /// bpf_ktime_get_ns (monotonic clock).
    pub ts_ns: u64,
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    /// TCP sequence number of the first payload byte of this record.
    pub seq: u32,
    pub ifindex: u32,
    /// Payload bytes following this header.
    pub len: u16,
    pub tcp_flags: u8,
    pub family: u8,
    /// 0 ingress, 1 egress.
    pub direction: u8,
    /// What follows the header: `EVENT_SEGMENT` or `EVENT_PLAIN_SUMMARY`.
    /// A reader rejects kinds it does not know rather than guess.
    pub kind: u8,
    pub _pad: [u8; 6],
}

pub const EVENT_HEADER_LEN: usize = core::mem::size_of::<EventHeader>();

/// Per-CPU counter indices.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    Packets = 0,
    FlowsOpened = 1,
    BytesShipped = 2,
    RingFull = 3,
    MapFull = 4,
    Truncated = 5,
    Duplicates = 6,
    Records = 7,
    /// SYNs that opened an entry in the PLAIN map.
    PlainOpened = 8,
    /// PLAIN entries whose first payload was not a ClientHello.
    PlainFlows = 9,
    PlainMapFull = 10,
    /// Plaintext connections that ended in the kernel (RST, both FINs)
    /// and were summarised; a full ring buffer loses the summary.
    PlainSummaries = 11,
}

pub const COUNTERS: usize = 12;

impl Counter {
    pub const ALL: [Counter; COUNTERS] = [
        Counter::Packets,
        Counter::FlowsOpened,
        Counter::BytesShipped,
        Counter::RingFull,
        Counter::MapFull,
        Counter::Truncated,
        Counter::Duplicates,
        Counter::Records,
        Counter::PlainOpened,
        Counter::PlainFlows,
        Counter::PlainMapFull,
        Counter::PlainSummaries,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::Packets => "packets",
            Counter::FlowsOpened => "flows_opened",
            Counter::BytesShipped => "bytes_shipped",
            Counter::RingFull => "ring_buffer_full",
            Counter::MapFull => "flow_map_full",
            Counter::Truncated => "truncated",
            Counter::Duplicates => "duplicates",
            Counter::Records => "records",
            Counter::PlainOpened => "plain_opened",
            Counter::PlainFlows => "plain_flows",
            Counter::PlainMapFull => "plain_map_full",
            Counter::PlainSummaries => "plain_summaries",
        }
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, repr(C), no padding holes that matter for maps
    // (explicit _pad fields).
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowState {}
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::PlainState {}
}
