use core::mem::MaybeUninit;

use aya_ebpf::bindings::{BPF_F_MMAPABLE, BPF_NOEXIST};
use aya_ebpf::helpers::generated::{
    bpf_ktime_get_ns, bpf_loop, bpf_ringbuf_output, bpf_skb_load_bytes,
};
use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::{Array, HashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::TcContext;
use sensor_common::{
    COUNTERS, Counter, DEFAULT_BUDGET, DEFAULT_FLOW_ENTRIES, DEFAULT_PLAIN_ENTRIES,
    DEFAULT_RING_BYTES, EVENT_HEADER_LEN, EVENT_PLAIN_SUMMARY, EVENT_SEGMENT, EventHeader, FAMILY_V4, FAMILY_V6,
    FlowKey, FlowState, GATE_SLOTS, MAX_CHUNK, MAX_CHUNKS, PLAIN_COUNTING, PLAIN_PENDING,
    PLAIN_SUMMARY_LEN, PlainState, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, gate_mix, gate_slot_mixed,
};

const TC_ACT_UNSPEC: i32 = -1;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;
const EEXIST: i32 = 17;

/// Set by user space before loading: bytes shipped per direction.
#[unsafe(no_mangle)]
static BUDGET: u32 = DEFAULT_BUDGET;

#[map]
static FLOWS: HashMap<FlowKey, FlowState> = HashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);

/// Connections from their SYN to their first payload, and plaintext ones
/// after it (sensor_common::PlainState). Behind the same gate as FLOWS: a
/// packet of a slot with neither costs no lookup.
#[map]
static PLAIN: HashMap<FlowKey, PlainState> = HashMap::with_max_entries(DEFAULT_PLAIN_ENTRIES, 0);

/// Open flows per gate slot (sensor_common::gate_slot); user space maps it
/// to take flows it deleted off atomically.
#[map]
static GATE: Array<u64> = Array::with_max_entries(GATE_SLOTS, BPF_F_MMAPABLE);

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

#[map]
static COUNTS: PerCpuArray<[u64; COUNTERS]> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
struct Scratch {
    header: EventHeader,
    data: [u8; MAX_CHUNK],
}

/// Records are built here: a 4 KiB buffer does not fit the BPF stack.
#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn count(c: Counter, n: u64) {
    if let Some(p) = COUNTS.get_ptr_mut(0) {
        // Per-CPU: no other writer.
        unsafe { (*p)[c as usize] += n };
    }
}

// The slow path reads headers with bpf_skb_load_bytes: their offsets vary
// (VLAN tags, IP options, IPv6 extension headers) and direct packet access
// at variable offsets does not survive LLVM's rewriting of the bounds checks.
#[inline(always)]
fn bytes<const N: usize>(ctx: &TcContext, off: usize) -> Option<[u8; N]> {
    ctx.load::<[u8; N]>(off).ok()
}

struct Packet {
    saddr: [u32; 4],
    daddr: [u32; 4],
    family: u8,
    sport: u16,
    dport: u16,
    seq: u32,
    flags: u8,
    payload_off: usize,
    payload_len: usize,
    /// `gate_mix` of the addresses, computed where the family is known.
    mix: u32,
    /// Whether the payload starts with a ClientHello record, when the
    /// direct-access parse could tell from the linear area.
    hello: Hello,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hello {
    Yes,
    No,
    /// Not in the linear area: `opens_flow` reads them through the helper.
    Unknown,
}

#[classifier]
pub fn tls_tc_eth(ctx: TcContext) -> i32 {
    let _ = observe(&ctx, true, 0);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn tls_tc_eth_egress(ctx: TcContext) -> i32 {
    let _ = observe(&ctx, true, 1);
    TC_ACT_UNSPEC
}

/// For devices without a link-layer header (tun, WireGuard, some CNIs).
#[classifier]
pub fn tls_tc_l3(ctx: TcContext) -> i32 {
    let _ = observe(&ctx, false, 0);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn tls_tc_l3_egress(ctx: TcContext) -> i32 {
    let _ = observe(&ctx, false, 1);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn observe(ctx: &TcContext, ethernet: bool, direction: u8) -> Option<()> {
    count(Counter::Packets, 1);
    let pkt = parse(ctx, ethernet)?;
    if pkt.payload_len == 0 && pkt.flags & (TCP_FIN | TCP_RST) == 0 {
        if pkt.flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            open_plain(&pkt);
        }
        return None;
    }
    let gate = GATE.get_ptr_mut(slot(&pkt));
    // No open flow in this packet's slot: not one of ours, no lookup needed.
    let maybe_open = match gate {
        Some(g) => unsafe { core::ptr::read_volatile(g) != 0 },
        None => true,
    };
    // The key is built only past this point: most packets never need it.
    if !maybe_open && !opens_flow(ctx, &pkt) {
        return None;
    }
    let (key, dir) = flow_key(&pkt);
    let found = if maybe_open {
        FLOWS.get_ptr_mut(&key)
    } else {
        None
    };
    let state = match found {
        Some(s) => s,
        None => {
            // A closed gate has asked opens_flow already.
            if maybe_open {
                let hello = match PLAIN.get_ptr_mut(&key) {
                    Some(p) => plain(ctx, &pkt, &key, dir, p, gate, direction),
                    None => opens_flow(ctx, &pkt),
                };
                if !hello {
                    return None;
                }
            }
            let budget = unsafe { core::ptr::read_volatile(&BUDGET) } as u64;
            let now = unsafe { bpf_ktime_get_ns() };
            // budget[2], last_seq[2], last_len[2], opened_ns, last_ns.
            let mut fresh = MaybeUninit::<FlowState>::uninit();
            let fresh = words_into(&mut fresh, [budget | budget << 32, 0, 0, now, now]);
            // Raised before the insert: a packet on another CPU that finds
            // the flow in the map must not find its slot at zero.
            gate_add(gate, 1);
            if FLOWS.insert(&key, fresh, BPF_NOEXIST as u64).is_err() {
                gate_add(gate, u64::MAX);
                count(Counter::MapFull, 1);
                return None;
            }
            count(Counter::FlowsOpened, 1);
            FLOWS.get_ptr_mut(&key)?
        }
    };
    let state = unsafe { &mut *state };
    if state.last_seq[dir] == pkt.seq
        && state.last_len[dir] == pkt.payload_len as u32
        && pkt.payload_len > 0
    {
        count(Counter::Duplicates, 1);
        return None;
    }
    state.last_seq[dir] = pkt.seq;
    state.last_len[dir] = pkt.payload_len as u32;
    state.last_ns = unsafe { bpf_ktime_get_ns() };
    let mut len = pkt.payload_len as u32;
    let budget = state.budget[dir];
    if len > budget {
        count(Counter::Truncated, 1);
        len = budget;
    }
    state.budget[dir] = budget - len;
    ship(ctx, &pkt, len as usize, direction);
    Some(())
}

/// Fills a map value on the stack one volatile word at a time: LLVM turns
/// runs of zero stores in a struct literal into a call to memset (a
/// BPF-to-BPF call, and a stack copy), as it did for FlowState.
#[inline(always)]
fn words_into<T, const N: usize>(v: &mut MaybeUninit<T>, words: [u64; N]) -> &T {
    const { assert!(core::mem::size_of::<T>() == N * 8) };
    let w = v.as_mut_ptr() as *mut u64;
    for (i, x) in words.into_iter().enumerate() {
        // SAFETY: in bounds (size checked above); the stack slot is 8-aligned
        // for the u64 fields of every T used here.
        unsafe { core::ptr::write_volatile(w.add(i), x) };
    }
    // SAFETY: every byte was written; the T used here are plain data.
    unsafe { v.assume_init_ref() }
}

/// A client's SYN: the connection is followed in PLAIN until its first
/// payload says whether it is TLS. Only SYNs pay for this, once per
/// connection; a retransmitted or twice-seen SYN finds its entry there.
#[inline(always)]
fn open_plain(pkt: &Packet) {
    let gate = GATE.get_ptr_mut(slot(pkt));
    let (key, dir) = flow_key(pkt);
    let now = unsafe { bpf_ktime_get_ns() };
    // bytes[2], last_seq[2] and last_len[2], opened_ns, last_ns, then
    // client, phase, fins and padding in the last word (little-endian BPF).
    let mut fresh = MaybeUninit::<PlainState>::uninit();
    let last = u64::from_le_bytes([dir as u8, PLAIN_PENDING, 0, 0, 0, 0, 0, 0]);
    let fresh = words_into(&mut fresh, [0, 0, 0, 0, now, now, last]);
    // Raised before the insert, as for FLOWS.
    gate_add(gate, 1);
    match PLAIN.insert(&key, fresh, BPF_NOEXIST as u64) {
        Ok(()) => count(Counter::PlainOpened, 1),
        Err(e) => {
            gate_add(gate, u64::MAX);
            if e != -EEXIST {
                count(Counter::PlainMapFull, 1);
            }
        }
    }
}

/// A packet of a connection in PLAIN. Returns true when it is the
/// ClientHello of a pending connection, which FLOWS takes over.
#[inline(always)]
fn plain(
    ctx: &TcContext,
    pkt: &Packet,
    key: &FlowKey,
    dir: usize,
    p: *mut PlainState,
    gate: Option<*mut u64>,
    direction: u8,
) -> bool {
    let s = unsafe { &mut *p };
    let len = pkt.payload_len as u32;
    if s.phase == PLAIN_PENDING {
        if len == 0 {
            // Closed before a byte was sent: nothing went in clear.
            drop_plain(key, gate);
            return false;
        }
        if opens_flow(ctx, pkt) {
            drop_plain(key, gate);
            return true;
        }
        s.phase = PLAIN_COUNTING;
        count(Counter::PlainFlows, 1);
    } else if len > 0 && s.last_seq[dir] == pkt.seq && s.last_len[dir] == len {
        count(Counter::Duplicates, 1);
        return false;
    }
    // Plain adds: two CPUs updating one connection at once may lose a
    // count, which costs less than atomics on every plaintext packet.
    s.last_seq[dir] = pkt.seq;
    s.last_len[dir] = len;
    s.bytes[dir] += len as u64;
    s.last_ns = unsafe { bpf_ktime_get_ns() };
    if pkt.flags & TCP_FIN != 0 {
        s.fins |= 1 << dir;
    }
    if pkt.flags & TCP_RST != 0 || s.fins == 3 {
        summarise(ctx, key, s, direction);
        drop_plain(key, gate);
    }
    false
}

/// Removes a PLAIN entry; only the remover (kernel or user space) takes
/// it off its gate slot.
#[inline(always)]
fn drop_plain(key: &FlowKey, gate: Option<*mut u64>) {
    if PLAIN.remove(key).is_ok() {
        gate_add(gate, u64::MAX);
    }
}

/// One `EVENT_PLAIN_SUMMARY` record for a plaintext connection that ended.
#[inline(always)]
fn summarise(ctx: &TcContext, key: &FlowKey, s: &PlainState, direction: u8) {
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let sc = unsafe { &mut *sc };
    let c = (s.client & 1) as usize;
    let h = &mut sc.header;
    let (client, server, cport, sport) = if c == 0 {
        (&key.lo_addr, &key.hi_addr, key.lo_port, key.hi_port)
    } else {
        (&key.hi_addr, &key.lo_addr, key.hi_port, key.lo_port)
    };
    // Word by word: array assignments become memmove calls.
    for i in 0..4 {
        h.saddr[i] = client[i];
        h.daddr[i] = server[i];
    }
    h.sport = cport;
    h.dport = sport;
    h.ts_ns = unsafe { bpf_ktime_get_ns() };
    h.seq = 0;
    h.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    h.len = PLAIN_SUMMARY_LEN as u16;
    h.tcp_flags = 0;
    h.family = key.family;
    h.direction = direction;
    h.kind = EVENT_PLAIN_SUMMARY;
    // SAFETY: data is MAX_CHUNK bytes, far more than a PlainSummary; one
    // word at a time, for the same reason as the addresses.
    unsafe {
        let d = sc.data.as_mut_ptr() as *mut u64;
        core::ptr::write_unaligned(d, s.bytes[c]);
        core::ptr::write_unaligned(d.add(1), s.bytes[c ^ 1]);
        core::ptr::write_unaligned(d.add(2), s.opened_ns);
    }
    if output(
        sc as *mut Scratch as *mut _,
        (EVENT_HEADER_LEN + PLAIN_SUMMARY_LEN) as u64,
        0,
    ) {
        count(Counter::PlainSummaries, 1);
    }
}

#[inline(always)]
fn slot(p: &Packet) -> u32 {
    gate_slot_mixed(p.mix, p.sport ^ p.dport)
}

#[inline(always)]
fn mix(saddr: &[u32; 4], daddr: &[u32; 4]) -> u32 {
    let mut x = [0u32; 4];
    for (i, w) in x.iter_mut().enumerate() {
        *w = saddr[i] ^ daddr[i];
    }
    gate_mix(x)
}

/// Adds `n` (u64::MAX takes one off) to a gate slot.
#[inline(always)]
fn gate_add(gate: Option<*mut u64>, n: u64) {
    if let Some(g) = gate {
        // User space decrements the same word concurrently, so this must be
        // BPF's atomic add. core's atomics offer no fetch_add on a target
        // without compare-and-swap, hence the instruction itself.
        unsafe {
            core::arch::asm!(
                "lock *(u64 *)({g} + 0) += {n}",
                g = in(reg) g,
                n = in(reg) n,
                options(nostack),
            )
        };
    }
}

/// A packet of no open flow opens one if its payload starts with a ClientHello.
#[inline(always)]
fn opens_flow(ctx: &TcContext, p: &Packet) -> bool {
    p.payload_len != 0
        && match p.hello {
            Hello::Yes => true,
            Hello::No => false,
            // TLS payload is often outside the linear area: read through the helper.
            Hello::Unknown => bytes::<6>(ctx, p.payload_off)
                .is_some_and(|b| is_client_hello([b[0], b[1], b[2], b[5]])),
        }
}

/// A handshake record (22), version 3.x, whose first message is a
/// ClientHello (1): bytes 0, 1, 2 and 5 of the payload.
#[inline(always)]
fn is_client_hello(b: [u8; 4]) -> bool {
    b[0] == 22 && b[1] == 3 && b[2] <= 4 && b[3] == 1
}

#[inline(always)]
fn flow_key(p: &Packet) -> (FlowKey, usize) {
    let src_lo = if p.sport != p.dport {
        p.sport < p.dport
    } else {
        let mut lo = true;
        let mut decided = false;
        for i in 0..4 {
            if !decided && p.saddr[i] != p.daddr[i] {
                lo = p.saddr[i] < p.daddr[i];
                decided = true;
            }
        }
        lo
    };
    let (lo, hi, lo_port, hi_port, dir) = if src_lo {
        (&p.saddr, &p.daddr, p.sport, p.dport, 0)
    } else {
        (&p.daddr, &p.saddr, p.dport, p.sport, 1)
    };
    // Built as words: a FlowKey literal has LLVM zero the 3-byte `_pad`
    // through a call to memset, a BPF-to-BPF call on every keyed packet.
    let (l, h) = (lo_port.to_ne_bytes(), hi_port.to_ne_bytes());
    let words: [u32; 10] = [
        lo[0],
        lo[1],
        lo[2],
        lo[3],
        hi[0],
        hi[1],
        hi[2],
        hi[3],
        u32::from_ne_bytes([l[0], l[1], h[0], h[1]]),
        u32::from_ne_bytes([p.family, 0, 0, 0]),
    ];
    // SAFETY: FlowKey is repr(C), 40 bytes of u32 words, u16 ports, family, padding.
    (
        unsafe { core::mem::transmute::<[u32; 10], FlowKey>(words) },
        dir,
    )
}

/// What the direct-access parse made of a packet.
enum Fast {
    /// Parsed: the same `Packet` the helper-based parse would have built.
    Packet(Packet),
    /// Not an unfragmented TCP segment, or one `observe` drops unread (no
    /// payload, no FIN, RST or SYN): the helper-based parse would lead there too.
    Skip,
    /// VLAN tags, IPv4 options, IPv6 extension headers, headers outside the
    /// linear area: left to the helper-based parse.
    Slow,
}

/// Reads the packet's first bytes in place: the common case (untagged
/// IPv4 without options, IPv6 without extension headers) at constant
/// offsets after a bounds check against data_end, so it costs no helper
/// call (each bpf_skb_load_bytes cost about as much as an empty program).
/// Header fields only at constant offsets: the verifier rejected variable
/// ones (IP options, extension header chains) once LLVM had rewritten
/// their bounds checks; those go the slow way.
#[inline(always)]
fn parse_direct(ctx: &TcContext, ethernet: bool) -> Fast {
    let data = ctx.data();
    let data_end = ctx.data_end();
    let l3 = if ethernet { ETH_HLEN } else { 0 };
    // The smallest IP header: anything shorter goes the slow way.
    if data + l3 + 20 > data_end {
        return Fast::Slow;
    }
    let at = |off: usize| -> u8 { unsafe { *((data + off) as *const u8) } };
    let proto = if ethernet {
        u16::from_be_bytes([at(12), at(13)])
    } else {
        u16::from_be(ctx.skb.protocol() as u16)
    };
    let skb_len = ctx.len() as usize;
    match proto {
        ETH_P_IP => {
            let frag = u16::from_be_bytes([at(l3 + 6), at(l3 + 7)]);
            let ihl = ((at(l3) & 0x0f) as usize) * 4;
            if at(l3 + 9) != IPPROTO_TCP || frag & 0x3fff != 0 || ihl < 20 {
                return Fast::Skip;
            }
            if ihl != 20 {
                return Fast::Slow;
            }
            let l4 = l3 + 20;
            if data + l4 + 14 > data_end {
                return Fast::Slow;
            }
            let tot = u16::from_be_bytes([at(l3 + 2), at(l3 + 3)]) as usize;
            let end = if tot == 0 { skb_len } else { l3 + tot };
            let Some(mut p) = tcp_direct(data, data_end, l4, end, skb_len) else {
                return Fast::Skip;
            };
            p.saddr[0] = u32::from_ne_bytes([at(l3 + 12), at(l3 + 13), at(l3 + 14), at(l3 + 15)]);
            p.daddr[0] = u32::from_ne_bytes([at(l3 + 16), at(l3 + 17), at(l3 + 18), at(l3 + 19)]);
            p.family = FAMILY_V4;
            p.mix = gate_mix([p.saddr[0] ^ p.daddr[0], 0, 0, 0]);
            Fast::Packet(p)
        }
        ETH_P_IPV6 => {
            let l4 = l3 + 40;
            if data + l4 + 14 > data_end {
                return Fast::Slow;
            }
            match at(l3 + 6) {
                IPPROTO_TCP => {}
                // Extension headers: Hop-by-Hop, Routing, Fragment, AH, Destination Options.
                0 | 43 | 44 | 51 | 60 => return Fast::Slow,
                _ => return Fast::Skip,
            }
            let plen = u16::from_be_bytes([at(l3 + 4), at(l3 + 5)]) as usize;
            let end = if plen == 0 { skb_len } else { l4 + plen };
            let Some(mut p) = tcp_direct(data, data_end, l4, end, skb_len) else {
                return Fast::Skip;
            };
            for i in 0..4 {
                let a = l3 + 8 + 4 * i;
                let b = l3 + 24 + 4 * i;
                p.saddr[i] = u32::from_ne_bytes([at(a), at(a + 1), at(a + 2), at(a + 3)]);
                p.daddr[i] = u32::from_ne_bytes([at(b), at(b + 1), at(b + 2), at(b + 3)]);
            }
            p.family = FAMILY_V6;
            p.mix = mix(&p.saddr, &p.daddr);
            Fast::Packet(p)
        }
        ETH_P_8021Q | ETH_P_8021AD if ethernet => Fast::Slow,
        _ => Fast::Skip,
    }
}

/// The TCP part of `parse_direct`, the header at the constant `l4` already
/// bounds-checked for 14 bytes; `end` is where the IP packet says it ends.
/// None for a segment `observe` drops unread (no payload, no FIN, RST or
/// SYN), before its addresses are read: pure ACKs are the commonest packet.
#[inline(always)]
fn tcp_direct(
    data: usize,
    data_end: usize,
    l4: usize,
    end: usize,
    skb_len: usize,
) -> Option<Packet> {
    let at = |off: usize| -> u8 { unsafe { *((data + off) as *const u8) } };
    let doff = ((at(l4 + 12) >> 4) as usize) * 4;
    let flags = tcp_flags(at(l4 + 13));
    let payload_off = l4 + doff;
    let end = if end > skb_len { skb_len } else { end };
    let payload_len = end.saturating_sub(payload_off);
    if payload_len == 0 && flags & (TCP_FIN | TCP_RST | TCP_SYN) == 0 {
        return None;
    }
    let mut p = Packet {
        saddr: [0; 4],
        daddr: [0; 4],
        family: 0,
        sport: u16::from_be_bytes([at(l4), at(l4 + 1)]),
        dport: u16::from_be_bytes([at(l4 + 2), at(l4 + 3)]),
        seq: u32::from_be_bytes([at(l4 + 4), at(l4 + 5), at(l4 + 6), at(l4 + 7)]),
        flags,
        payload_off,
        payload_len,
        mix: 0,
        hello: Hello::Unknown,
    };
    // The ClientHello test reads the payload's first bytes in place when
    // they are linear: the offset varies only by the TCP header length,
    // which the verifier knows to be at most 60.
    let start = data + payload_off;
    if start + 6 <= data_end {
        let b = |i: usize| -> u8 { unsafe { *((start + i) as *const u8) } };
        p.hello = if is_client_hello([b(0), b(1), b(2), b(5)]) {
            Hello::Yes
        } else {
            Hello::No
        };
    }
    Some(p)
}

#[inline(always)]
fn tcp_flags(f: u8) -> u8 {
    (if f & 0x02 != 0 { TCP_SYN } else { 0 })
        | (if f & 0x01 != 0 { TCP_FIN } else { 0 })
        | (if f & 0x04 != 0 { TCP_RST } else { 0 })
        | (if f & 0x10 != 0 { TCP_ACK } else { 0 })
}

#[inline(always)]
fn parse(ctx: &TcContext, ethernet: bool) -> Option<Packet> {
    match parse_direct(ctx, ethernet) {
        Fast::Packet(p) => Some(p),
        Fast::Skip => None,
        Fast::Slow => parse_slow(ctx, ethernet),
    }
}

#[inline(always)]
fn parse_slow(ctx: &TcContext, ethernet: bool) -> Option<Packet> {
    let mut off = 0usize;
    let mut proto = u16::from_be(ctx.skb.protocol() as u16);
    if ethernet {
        // The ethertype and, when tagged in-band, up to two VLAN tags.
        let h = bytes::<10>(ctx, 12)?;
        proto = u16::from_be_bytes([h[0], h[1]]);
        off = ETH_HLEN;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            proto = u16::from_be_bytes([h[4], h[5]]);
            off += 4;
            if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
                proto = u16::from_be_bytes([h[8], h[9]]);
                off += 4;
            }
        }
    }
    let skb_len = ctx.len() as usize;
    let mut p = Packet {
        saddr: [0; 4],
        daddr: [0; 4],
        family: 0,
        sport: 0,
        dport: 0,
        seq: 0,
        flags: 0,
        payload_off: 0,
        payload_len: 0,
        mix: 0,
        hello: Hello::Unknown,
    };
    let l4;
    let end;
    match proto {
        ETH_P_IP => {
            let h = bytes::<20>(ctx, off)?;
            let ihl = ((h[0] & 0x0f) as usize) * 4;
            let tot = u16::from_be_bytes([h[2], h[3]]) as usize;
            let frag = u16::from_be_bytes([h[6], h[7]]);
            if h[9] != IPPROTO_TCP || frag & 0x3fff != 0 || ihl < 20 {
                return None;
            }
            p.saddr[0] = u32::from_ne_bytes([h[12], h[13], h[14], h[15]]);
            p.daddr[0] = u32::from_ne_bytes([h[16], h[17], h[18], h[19]]);
            p.family = FAMILY_V4;
            p.mix = gate_mix([p.saddr[0] ^ p.daddr[0], 0, 0, 0]);
            // GSO/BIG TCP packets may carry tot_len 0: the skb length rules then.
            end = if tot == 0 { skb_len } else { off + tot };
            l4 = off + ihl;
        }
        ETH_P_IPV6 => {
            let h = bytes::<40>(ctx, off)?;
            let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
            let mut next = h[6];
            for i in 0..4 {
                let a = 8 + 4 * i;
                let b = 24 + 4 * i;
                p.saddr[i] = u32::from_ne_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
                p.daddr[i] = u32::from_ne_bytes([h[b], h[b + 1], h[b + 2], h[b + 3]]);
            }
            p.family = FAMILY_V6;
            p.mix = mix(&p.saddr, &p.daddr);
            // Payload length 0 with a Hop-by-Hop jumbo option: BIG TCP.
            end = if plen == 0 { skb_len } else { off + 40 + plen };
            let mut at = off + 40;
            for _ in 0..6 {
                match next {
                    // Hop-by-Hop, Routing, Destination Options
                    0 | 43 | 60 => {
                        let e = bytes::<2>(ctx, at)?;
                        next = e[0];
                        at += (e[1] as usize + 1) * 8;
                    }
                    // Fragment: only the first fragment carries the TCP header; skip all.
                    44 => return None,
                    // Authentication Header
                    51 => {
                        let e = bytes::<2>(ctx, at)?;
                        next = e[0];
                        at += (e[1] as usize + 2) * 4;
                    }
                    _ => break,
                }
            }
            if next != IPPROTO_TCP {
                return None;
            }
            l4 = at;
        }
        _ => return None,
    }
    let t = bytes::<14>(ctx, l4)?;
    p.sport = u16::from_be_bytes([t[0], t[1]]);
    p.dport = u16::from_be_bytes([t[2], t[3]]);
    p.seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let doff = ((t[12] >> 4) as usize) * 4;
    p.flags = tcp_flags(t[13]);
    p.payload_off = l4 + doff;
    let end = if end > skb_len { skb_len } else { end };
    p.payload_len = end.saturating_sub(p.payload_off);
    Some(p)
}

#[inline(always)]
fn ship(ctx: &TcContext, pkt: &Packet, len: usize, direction: u8) {
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let s = unsafe { &mut *s };
    s.header.ts_ns = unsafe { bpf_ktime_get_ns() };
    s.header.saddr = pkt.saddr;
    s.header.daddr = pkt.daddr;
    s.header.sport = pkt.sport;
    s.header.dport = pkt.dport;
    s.header.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    s.header.tcp_flags = pkt.flags;
    s.header.family = pkt.family;
    s.header.direction = direction;
    // The scratch header is shared with summaries: every field is set anew.
    s.header.kind = EVENT_SEGMENT;
    if len == 0 {
        // FIN or RST of an open flow: a header alone tells user space.
        s.header.seq = pkt.seq;
        s.header.len = 0;
        output(s as *mut Scratch as *mut _, EVENT_HEADER_LEN as u64, 0);
        return;
    }
    let mut c = ChunkCtx {
        skb: ctx.skb.skb as u64,
        off: pkt.payload_off as u32,
        len: len as u32,
        seq: pkt.seq,
        done: 0,
    };
    // bpf_loop keeps verification linear in the chunk count; an unrolled
    // loop of 4 KiB copies exceeds the verifier's instruction budget.
    unsafe {
        bpf_loop(
            MAX_CHUNKS as u32,
            ship_chunk as *mut core::ffi::c_void,
            &mut c as *mut ChunkCtx as *mut core::ffi::c_void,
            0,
        )
    };
}

#[repr(C)]
struct ChunkCtx {
    skb: u64,
    off: u32,
    len: u32,
    seq: u32,
    done: u32,
}

/// One chunk of a packet's payload into the ring buffer; 1 stops the loop.
extern "C" fn ship_chunk(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let c = unsafe { &mut *(ctx as *mut ChunkCtx) };
    if c.done >= c.len {
        return 1;
    }
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    let s = unsafe { &mut *s };
    let mut n = c.len - c.done;
    if n > MAX_CHUNK as u32 {
        n = MAX_CHUNK as u32;
    }
    // Keeps the verifier sure 0 < n <= MAX_CHUNK.
    let n = ((n.wrapping_sub(1)) & (MAX_CHUNK as u32 - 1)) + 1;
    s.header.seq = c.seq.wrapping_add(c.done);
    s.header.len = n as u16;
    let r = unsafe {
        bpf_skb_load_bytes(
            c.skb as *const _,
            c.off.wrapping_add(c.done),
            s.data.as_mut_ptr() as *mut _,
            n,
        )
    };
    if r != 0 {
        count(Counter::Truncated, 1);
        return 1;
    }
    if !output(
        s as *mut Scratch as *mut _,
        (EVENT_HEADER_LEN as u32 + n) as u64,
        n as u64,
    ) {
        return 1;
    }
    c.done += n;
    0
}

#[inline(always)]
fn output(data: *mut core::ffi::c_void, size: u64, payload: u64) -> bool {
    let r = unsafe { bpf_ringbuf_output(&EVENTS as *const RingBuf as *mut _, data, size, 0) };
    if r != 0 {
        count(Counter::RingFull, 1);
        return false;
    }
    count(Counter::Records, 1);
    count(Counter::BytesShipped, payload);
    true
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
