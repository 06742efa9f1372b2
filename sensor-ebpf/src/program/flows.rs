//! The flow map and the gate in front of it: a connection's key, the gate
//! slot a packet reads before any lookup, and the opening of a handshake
//! flow (sensor_common::FlowState) once its ClientHello is seen.

use core::mem::MaybeUninit;

use aya_ebpf::bindings::{BPF_F_MMAPABLE, BPF_NOEXIST};
use aya_ebpf::helpers::generated::bpf_ktime_get_ns;
use aya_ebpf::macros::map;
use aya_ebpf::maps::{Array, HashMap};
use sensor_common::{
    Counter, DEFAULT_BUDGET, DEFAULT_FLOW_ENTRIES, FlowKey, FlowState, GATE_SLOTS, gate_slot_mixed,
};

use super::count;
use super::parse::Packet;

/// Set by user space before loading: bytes shipped per direction.
#[unsafe(no_mangle)]
static BUDGET: u32 = DEFAULT_BUDGET;

#[map]
pub(super) static FLOWS: HashMap<FlowKey, FlowState> =
    HashMap::with_max_entries(DEFAULT_FLOW_ENTRIES, 0);

/// Open flows per gate slot (sensor_common::FlowKey::gate_slot); user space maps it
/// to take flows it deleted off atomically.
#[map]
pub(super) static GATE: Array<u64> = Array::with_max_entries(GATE_SLOTS, BPF_F_MMAPABLE);

/// Fills a map value on the stack one volatile word at a time: LLVM turns
/// runs of zero stores in a struct literal into a call to memset (a
/// BPF-to-BPF call, and a stack copy), as it did for FlowState.
#[inline(always)]
pub(super) fn words_into<T, const N: usize>(v: &mut MaybeUninit<T>, words: [u64; N]) -> &T {
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

#[inline(always)]
pub(super) fn slot(p: &Packet) -> u32 {
    gate_slot_mixed(p.mix, p.sport ^ p.dport)
}

/// Adds `n` (u64::MAX takes one off) to a gate slot.
#[inline(always)]
pub(super) fn gate_add(gate: Option<*mut u64>, n: u64) {
    if let Some(g) = gate {
        // User space decrements the same word concurrently.
        atomic_add(g, n);
    }
}

/// BPF's atomic add (BPF_XADD, every kernel of the floor): a word other
/// CPUs or user space write at the same time. core's atomics offer no
/// fetch_add on a target without compare-and-swap, hence the instruction.
#[inline(always)]
pub(super) fn atomic_add(p: *mut u64, n: u64) {
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({p} + 0) += {n}",
            p = in(reg) p,
            n = in(reg) n,
            options(nostack),
        )
    };
}

#[inline(always)]
pub(super) fn flow_key(p: &Packet) -> (FlowKey, usize) {
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

/// The error a `BPF_NOEXIST` insert returns (negated) when the key is there.
pub(super) const EEXIST: i32 = 17;

/// Opens a handshake flow for `key`: its full budget each way. Every
/// caller opens the handshake of a connection that had none yet, so a
/// flow already there is an earlier connection's on the same 4-tuple
/// (port reuse before user space closed that flow): it is replaced, for
/// failing the insert would lose the new handshake.
#[inline(always)]
pub(super) fn open_flow(key: &FlowKey, gate: Option<*mut u64>) -> Option<*mut FlowState> {
    let budget = unsafe { core::ptr::read_volatile(&BUDGET) } as u64;
    let now = unsafe { bpf_ktime_get_ns() };
    // budget[2], last_seq[2], last_len[2], opened_ns, last_ns.
    let mut fresh = MaybeUninit::<FlowState>::uninit();
    let fresh = words_into(&mut fresh, [budget | budget << 32, 0, 0, now, now]);
    // Raised before the insert: a packet on another CPU that finds
    // the flow in the map must not find its slot at zero.
    gate_add(gate, 1);
    let mut inserted = FLOWS.insert(key, fresh, BPF_NOEXIST as u64);
    if inserted == Err(-EEXIST) {
        // Only the remover takes an entry off its slot (as user space does).
        if FLOWS.remove(key).is_ok() {
            gate_add(gate, u64::MAX);
        }
        count(Counter::FlowsReplaced, 1);
        inserted = FLOWS.insert(key, fresh, BPF_NOEXIST as u64);
    }
    if inserted.is_err() {
        gate_add(gate, u64::MAX);
        count(Counter::MapFull, 1);
        return None;
    }
    count(Counter::FlowsOpened, 1);
    FLOWS.get_ptr_mut(key)
}

/// A packet of an open flow: None when it was seen already (veth pair,
/// loopback), else the payload bytes to ship, taken off the budget.
#[inline(always)]
pub(super) fn advance(state: &mut FlowState, pkt: &Packet, dir: usize) -> Option<u32> {
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
    Some(len)
}
