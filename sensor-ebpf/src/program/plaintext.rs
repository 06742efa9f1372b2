//! Plaintext accounting: connections followed from their SYN in PLAIN
//! (sensor_common::PlainState) until their first payload says TLS or not;
//! plaintext ones are counted, never shipped, and summarised when they end.

use core::mem::MaybeUninit;

use aya_ebpf::bindings::BPF_NOEXIST;
use aya_ebpf::helpers::generated::bpf_ktime_get_ns;
use aya_ebpf::macros::map;
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::TcContext;
use sensor_common::{
    Counter, DEFAULT_PLAIN_ENTRIES, EVENT_HEADER_LEN, EVENT_PLAIN_SUMMARY, FlowKey, PLAIN_COUNTING,
    PLAIN_PENDING, PLAIN_SUMMARY_LEN, PlainState, TCP_FIN, TCP_RST,
};

use super::count;
use super::flows::{GATE, flow_key, gate_add, slot, words_into};
use super::parse::{Packet, opens_flow};
use super::ship::{SCRATCH, Scratch, output};

const EEXIST: i32 = 17;

/// Connections from their SYN to their first payload, and plaintext ones
/// after it (sensor_common::PlainState). Behind the same gate as FLOWS: a
/// packet of a slot with neither costs no lookup.
#[map]
pub(super) static PLAIN: HashMap<FlowKey, PlainState> =
    HashMap::with_max_entries(DEFAULT_PLAIN_ENTRIES, 0);

/// A client's SYN: the connection is followed in PLAIN until its first
/// payload says whether it is TLS. Only SYNs pay for this, once per
/// connection; a retransmitted or twice-seen SYN finds its entry there.
#[inline(always)]
pub(super) fn open_plain(pkt: &Packet) {
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
pub(super) fn plain(
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
