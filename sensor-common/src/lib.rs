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
pub const DEFAULT_RING_BYTES: u32 = 4 << 20;
/// Flows in the handshake phase tracked at once.
pub const DEFAULT_FLOW_ENTRIES: u32 = 16384;
/// Connections counted at once per address family (CONNS4, CONNS6), from
/// their SYN.
pub const DEFAULT_CONN_ENTRIES: u32 = 65536;

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
/// `EventHeader::kind`: a `ConnSummary` of a connection that ended in the
/// kernel (RST, both FINs).
pub const EVENT_CONN_SUMMARY: u8 = 2;

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

/// CONNS4's key: an IPv4 connection's endpoints in `FlowKey`'s order. The
/// kernel hashes and compares the whole key of every counted packet, so
/// 12 bytes instead of FlowKey's 40 is most of what a counted packet costs
/// beyond the parse; IPv6 connections keep the full key (CONNS6).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnKey4 {
    pub lo_addr: u32,
    pub hi_addr: u32,
    pub lo_port: u16,
    pub hi_port: u16,
}

impl ConnKey4 {
    /// The key of an IPv4 `FlowKey` (word 0 of each address).
    #[inline(always)]
    pub fn of(k: &FlowKey) -> Self {
        ConnKey4 {
            lo_addr: k.lo_addr[0],
            hi_addr: k.hi_addr[0],
            lo_port: k.lo_port,
            hi_port: k.hi_port,
        }
    }

    pub fn flow_key(&self) -> FlowKey {
        FlowKey {
            lo_addr: [self.lo_addr, 0, 0, 0],
            hi_addr: [self.hi_addr, 0, 0, 0],
            lo_port: self.lo_port,
            hi_port: self.hi_port,
            family: FAMILY_V4,
            _pad: [0; 3],
        }
    }
}

/// The gate in front of the flow map: slot `FlowKey::gate_slot` of a flow
/// counts the open flows that fall in it. A packet whose slot reads zero
/// belongs to no open flow and skips the hash lookup, which costs more than
/// the rest of the program. The kernel adds one before it inserts a flow
/// (and takes it back if the insert fails); user space takes one off after
/// it deleted a flow. So a flow in the map always has a non-zero slot; a
/// collision only costs a lookup.
pub const GATE_BITS: u32 = 16;
pub const GATE_SLOTS: u32 = 1 << GATE_BITS;

/// The address part of a gate slot, from the address words XORed
/// together (so the kernel need not order the endpoints first); for IPv4
/// (words 1..3 zero) it is word 0, which the kernel program uses to skip
/// the rest.
#[inline(always)]
pub fn gate_mix(addr_xor: [u32; 4]) -> u32 {
    addr_xor[0]
        ^ addr_xor[1].rotate_left(7)
        ^ addr_xor[2].rotate_left(14)
        ^ addr_xor[3].rotate_left(21)
}

/// `gate_mix` of two endpoints' addresses, in either order.
#[inline(always)]
pub fn gate_mix_pair(a: &[u32; 4], b: &[u32; 4]) -> u32 {
    gate_mix([a[0] ^ b[0], a[1] ^ b[1], a[2] ^ b[2], a[3] ^ b[3]])
}

/// The gate slot from `gate_mix` and the two ports XORed together.
#[inline(always)]
pub fn gate_slot_mixed(mix: u32, port_xor: u16) -> u32 {
    // Fibonacci hashing: the top bits of the product mix every input bit.
    (mix ^ ((port_xor as u32) << 8)).wrapping_mul(0x9E37_79B1) >> (32 - GATE_BITS)
}

impl FlowKey {
    pub fn gate_slot(&self) -> u32 {
        gate_slot_mixed(
            gate_mix_pair(&self.lo_addr, &self.hi_addr),
            self.lo_port ^ self.hi_port,
        )
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

/// Every TCP connection the kernel counts (the CONNS4 and CONNS6 maps,
/// behind the same gate as FLOWS), from its SYN, or from its first payload
/// when it was open before the sensor (`CONN_PARTIAL`), to its end (RST,
/// both FINs) or user space's idle expiry. Its first payload decides its
/// phase: a ClientHello makes it TLS (and FLOWS ships its handshake), an
/// upgrade preamble keeps it shipped for a while (`CONN_PREAMBLE`),
/// anything else makes it plaintext. Payload is counted; only a
/// preamble's is shipped from here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnState {
    /// TCP payload bytes per direction (index as in `FlowState`) counted
    /// on `owner`, the CPU that made the entry: plain adds, for no other
    /// CPU writes them. Read through `bytes_of`.
    pub bytes: [u64; 2],
    /// Segments carrying payload per direction, on `owner`, plain adds.
    pub packets: [u64; 2],
    /// The same counted on every other CPU: atomic adds, for two of them
    /// may count one connection at once. A locked add costs more than the
    /// rest of the counting, and a flow's packets mostly stay on one CPU
    /// (RSS, RPS, the sending process's CPU), so most take the plain path.
    pub shared_bytes: [u64; 2],
    pub shared_packets: [u64; 2],
    /// The last counted segment per direction: the same segment seen again
    /// at another place (the other end of a veth pair, loopback's other
    /// direction) is counted once.
    pub last_seq: [u32; 2],
    pub last_len: [u32; 2],
    /// Where it was seen: ifindex << 1 | direction (0 ingress, 1 egress).
    /// The same segment again at the same place is a retransmission, and
    /// counted, as tshark counts it.
    pub last_at: [u32; 2],
    /// The SYN (or the first payload, when partial), bpf_ktime_get_ns.
    pub opened_ns: u64,
    pub last_ns: u64,
    /// The CPU whose program inserted the entry; never changes, so exactly
    /// one CPU writes `bytes` and `packets`.
    pub owner: u32,
    /// Which end sent the SYN: 0 `lo`, 1 `hi` (partial: the higher port).
    pub client: u8,
    /// `CONN_PENDING`, `CONN_PREAMBLE`, `CONN_PLAIN`, `CONN_TLS` or
    /// `CONN_TLS_COUNTING`.
    pub phase: u8,
    /// FIN seen per direction: one byte per direction, so the two
    /// directions never write the same byte.
    pub fin: [u8; 2],
    /// `CONN_PARTIAL`, `CONN_ENDED`.
    pub flags: u8,
    /// `END_FIN` or `END_RST` once ended in the kernel, else `END_NONE`.
    pub end: u8,
    pub _pad: [u8; 6],
}

impl ConnState {
    /// Payload bytes sent by side `dir` (0 `lo`, 1 `hi`), on every CPU.
    #[inline(always)]
    pub fn bytes_of(&self, dir: usize) -> u64 {
        self.bytes[dir & 1] + self.shared_bytes[dir & 1]
    }

    /// Payload-carrying segments sent by side `dir`, on every CPU.
    #[inline(always)]
    pub fn packets_of(&self, dir: usize) -> u64 {
        self.packets[dir & 1] + self.shared_packets[dir & 1]
    }
}

/// SYN seen, no payload yet.
pub const CONN_PENDING: u8 = 0;
/// First payload was not a ClientHello: plaintext, counted.
pub const CONN_PLAIN: u8 = 1;
/// First payload was a ClientHello: counted, and its handshake may still
/// be in FLOWS (one more lookup per packet until FLOWS lets it go).
pub const CONN_TLS: u8 = 2;
/// TLS whose handshake FLOWS no longer follows: counted only.
pub const CONN_TLS_COUNTING: u8 = 3;
/// First payload opened a protocol that may upgrade to TLS later
/// (PostgreSQL SSLRequest, SMTP greeting, ...; DESIGN.md "TLS inside other
/// protocols"): counted, and its payload shipped, up to `PREAMBLE_BYTES`
/// in all, so user space can follow the upgrade. A ClientHello makes it
/// `CONN_TLS`; past the bound it is `CONN_PLAIN`. Between `CONN_PENDING`
/// and those two; numbered last so the others keep their values.
pub const CONN_PREAMBLE: u8 = 4;
/// Preamble bytes (both directions) shipped before a connection that has
/// not started TLS is taken for plaintext; user space examines as many.
pub const PREAMBLE_BYTES: u64 = 8192;

/// `ConnState::flags`: the connection was open before its SYN was seen.
pub const CONN_PARTIAL: u8 = 1;
/// `ConnState::flags`: the kernel summarised it and is removing it; user
/// space's periodic reports skip it (the summary carries its last counts).
pub const CONN_ENDED: u8 = 2;

pub const END_NONE: u8 = 0;
pub const END_FIN: u8 = 1;
pub const END_RST: u8 = 2;

/// The payload of an `EVENT_CONN_SUMMARY` record; the header's source is
/// the client, its destination the server, `ts_ns` the end, `tcp_flags` 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnSummary {
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub packets_to_server: u64,
    pub packets_to_client: u64,
    pub opened_ns: u64,
    /// `ConnState::phase`, `flags`, `end`, then padding.
    pub phase: u8,
    pub flags: u8,
    pub end: u8,
    pub _pad: [u8; 5],
}

pub const CONN_SUMMARY_LEN: usize = core::mem::size_of::<ConnSummary>();

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
    /// What follows the header: `EVENT_SEGMENT` or `EVENT_CONN_SUMMARY`.
    /// A reader rejects kinds it does not know rather than guess.
    pub kind: u8,
    pub _pad: [u8; 6],
    /// On the record that opened a flow (`FLOW_START`): when its
    /// connection's SYN was seen (its CONNS entry's `opened_ns`, the same
    /// clock as `ts_ns`), so the handshake's time is the connection's
    /// first packet as RECORDS.md asks; 0 when not known.
    pub opened_ns: u64,
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
    /// SYNs that opened an entry in CONNS.
    ConnsOpened = 8,
    /// CONNS entries that became plaintext: their first payload was
    /// neither a ClientHello nor an upgrade preamble, or their preamble
    /// passed PREAMBLE_BYTES.
    PlainFlows = 9,
    /// SYNs refused by a full CONNS: connections not counted.
    Untracked = 10,
    /// Connections that ended in the kernel (RST, both FINs) and were
    /// summarised; a full ring buffer loses the summary.
    ConnSummaries = 11,
    /// Connections picked up at their first payload (open before the
    /// sensor, or refused at their SYN): `partial`.
    PartialOpened = 12,
    /// Payload segments of no counted connection that a full CONNS
    /// refused to pick up (per segment, not per connection).
    PartialMapFull = 13,
    /// CONNS entries that became TLS: their first payload was a
    /// ClientHello, or one followed their upgrade preamble.
    TlsFlows = 14,
    /// CONNS entries whose first payload opened an upgrade preamble.
    PreambleFlows = 15,
    /// Upgrade preambles that reached PREAMBLE_BYTES without a ClientHello:
    /// no longer shipped, counted as plaintext (also in `PlainFlows`).
    PreamblePastBound = 16,
    /// Handshake flows that replaced an earlier connection's on the same
    /// 4-tuple, which user space had not closed yet (port reuse).
    FlowsReplaced = 17,
}

pub const COUNTERS: usize = 18;

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
        Counter::ConnsOpened,
        Counter::PlainFlows,
        Counter::Untracked,
        Counter::ConnSummaries,
        Counter::PartialOpened,
        Counter::PartialMapFull,
        Counter::TlsFlows,
        Counter::PreambleFlows,
        Counter::PreamblePastBound,
        Counter::FlowsReplaced,
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
            Counter::ConnsOpened => "conns_opened",
            Counter::PlainFlows => "plain_flows",
            Counter::Untracked => "untracked",
            Counter::ConnSummaries => "conn_summaries",
            Counter::PartialOpened => "partial_opened",
            Counter::PartialMapFull => "partial_map_full",
            Counter::TlsFlows => "tls_flows",
            Counter::PreambleFlows => "preamble_flows",
            Counter::PreamblePastBound => "preamble_past_bound",
            Counter::FlowsReplaced => "flows_replaced",
        }
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, repr(C), no padding holes that matter for maps
    // (explicit _pad fields).
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::ConnKey4 {}
    unsafe impl aya::Pod for super::FlowState {}
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::ConnState {}
}
