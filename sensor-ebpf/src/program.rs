use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::helpers::generated::{
    bpf_ktime_get_ns, bpf_loop, bpf_ringbuf_output, bpf_skb_load_bytes,
};
use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::{HashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::TcContext;
use sensor_common::{
    COUNTERS, Counter, DEFAULT_BUDGET, DEFAULT_FLOW_ENTRIES, DEFAULT_RING_BYTES, EVENT_HEADER_LEN,
    EventHeader, FAMILY_V4, FAMILY_V6, FlowKey, FlowState, MAX_CHUNK, MAX_CHUNKS, TCP_ACK, TCP_FIN,
    TCP_RST, TCP_SYN,
};

const TC_ACT_UNSPEC: i32 = -1;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;

/// Set by user space before loading: bytes shipped per direction.
#[unsafe(no_mangle)]
static BUDGET: u32 = DEFAULT_BUDGET;

#[map]
static FLOWS: HashMap<FlowKey, FlowState> = HashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);

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

// Headers are read with bpf_skb_load_bytes: their offsets vary (VLAN tags,
// IP options, IPv6 extension headers) and direct packet access at variable
// offsets does not survive LLVM's rewriting of the bounds checks.
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
        return None;
    }
    let (key, dir) = flow_key(&pkt);
    let state = match FLOWS.get_ptr_mut(&key) {
        Some(s) => s,
        None => {
            if pkt.payload_len == 0 || !starts_client_hello(ctx, pkt.payload_off) {
                return None;
            }
            let budget = unsafe { core::ptr::read_volatile(&BUDGET) };
            let now = unsafe { bpf_ktime_get_ns() };
            let fresh = FlowState {
                budget: [budget, budget],
                last_seq: [0, 0],
                last_len: [0, 0],
                opened_ns: now,
                last_ns: now,
            };
            if FLOWS.insert(&key, &fresh, BPF_NOEXIST as u64).is_err() {
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

#[inline(always)]
fn starts_client_hello(ctx: &TcContext, off: usize) -> bool {
    // TLS payload is often outside the linear area: read through the helper.
    let mut b = [0u8; 6];
    let r = unsafe {
        bpf_skb_load_bytes(
            ctx.skb.skb as *const _,
            off as u32,
            b.as_mut_ptr() as *mut _,
            6,
        )
    };
    r == 0 && b[0] == 22 && b[1] == 3 && b[2] <= 4 && b[5] == 1
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
    if src_lo {
        (
            FlowKey {
                lo_addr: p.saddr,
                hi_addr: p.daddr,
                lo_port: p.sport,
                hi_port: p.dport,
                family: p.family,
                _pad: [0; 3],
            },
            0,
        )
    } else {
        (
            FlowKey {
                lo_addr: p.daddr,
                hi_addr: p.saddr,
                lo_port: p.dport,
                hi_port: p.sport,
                family: p.family,
                _pad: [0; 3],
            },
            1,
        )
    }
}

#[inline(always)]
fn parse(ctx: &TcContext, ethernet: bool) -> Option<Packet> {
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
    let f = t[13];
    p.flags = (if f & 0x02 != 0 { TCP_SYN } else { 0 })
        | (if f & 0x01 != 0 { TCP_FIN } else { 0 })
        | (if f & 0x04 != 0 { TCP_RST } else { 0 })
        | (if f & 0x10 != 0 { TCP_ACK } else { 0 });
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
