//! Shipping to user space: a handshake packet's payload into the ring
//! buffer as records of at most MAX_CHUNK bytes behind an EventHeader,
//! read with bpf_skb_load_bytes (the payload is often non-linear).

use aya_ebpf::bindings::{
    BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE,
};
use aya_ebpf::helpers::generated::{bpf_ktime_get_ns, bpf_ringbuf_output, bpf_skb_load_bytes};
use aya_ebpf::macros::map;
use aya_ebpf::maps::{PerCpuArray, RingBuf};
use aya_ebpf::programs::TcContext;
use sensor_common::{
    Counter, DEFAULT_RING_BYTES, EVENT_HEADER_LEN, EVENT_SEGMENT, EventHeader, FLOW_START,
    MAX_CHUNK,
};

use super::count;
use super::parse::Packet;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

#[repr(C)]
pub(super) struct Scratch {
    pub(super) header: EventHeader,
    pub(super) data: [u8; MAX_CHUNK],
}

/// Records are built here: a 4 KiB buffer does not fit the BPF stack.
#[map]
pub(super) static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub(super) fn ship(
    ctx: &TcContext,
    pkt: &Packet,
    len: usize,
    direction: u8,
    start: bool,
    opened_ns: u64,
) {
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
    s.header.tcp_flags = pkt.flags | if start { FLOW_START } else { 0 };
    s.header.family = pkt.family;
    s.header.direction = direction;
    // The scratch header is shared with summaries: every field is set anew.
    s.header.kind = EVENT_SEGMENT;
    s.header.opened_ns = if start { opened_ns } else { 0 };
    if len == 0 {
        // FIN or RST of an open flow: a header alone tells user space.
        s.header.seq = pkt.seq;
        s.header.len = 0;
        output(s as *mut Scratch as *mut _, EVENT_HEADER_LEN as u64, 0);
        return;
    }
    let c = ChunkCtx {
        skb: ctx.skb.skb as u64,
        off: pkt.payload_off as u32,
        len: len as u32,
        seq: pkt.seq,
        done: 0,
    };
    // How the chunks are walked is the object's choice (crate::chunks):
    // bpf_loop (Linux 5.17) or a bounded loop in a tail-called program.
    crate::chunks::ship_payload(ctx, c);
}

/// Where a packet's payload stands: `done` of `len` bytes from `off` shipped.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ChunkCtx {
    /// The `__sk_buff` (the bpf_loop variant carries it through its callback).
    pub(crate) skb: u64,
    pub(crate) off: u32,
    pub(crate) len: u32,
    pub(crate) seq: u32,
    pub(crate) done: u32,
}

/// One chunk of a packet's payload from `skb` into the ring buffer; false
/// when nothing is left or a step failed (both end the walk).
#[inline(always)]
pub(crate) fn ship_chunk(skb: *mut core::ffi::c_void, c: &mut ChunkCtx) -> bool {
    if c.done >= c.len {
        return false;
    }
    let Some(s) = SCRATCH.get_ptr_mut(0) else {
        return false;
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
            skb as *const _,
            c.off.wrapping_add(c.done),
            s.data.as_mut_ptr() as *mut _,
            n,
        )
    };
    if r != 0 {
        count(Counter::Truncated, 1);
        return false;
    }
    if !output(
        s as *mut Scratch as *mut _,
        (EVENT_HEADER_LEN as u32 + n) as u64,
        n as u64,
    ) {
        return false;
    }
    c.done += n;
    true
}

/// Records wake the reader only once a quarter of the ring waits. A
/// wakeup per record (the default whenever the reader has caught up, so
/// nearly always) cost about 7 µs, an irq_work self-interrupt and on a
/// virtual machine an exit, against 0.3 µs for the rest of a ClientHello;
/// user space drains on its own clock besides (run.rs RING_FLUSH).
#[inline(always)]
fn wakeup() -> u64 {
    let avail = EVENTS.query(BPF_RB_AVAIL_DATA as u64);
    let size = EVENTS.query(BPF_RB_RING_SIZE as u64);
    if avail >= size / 4 {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

#[inline(always)]
pub(crate) fn output(data: *mut core::ffi::c_void, size: u64, payload: u64) -> bool {
    let flags = wakeup();
    let r = unsafe { bpf_ringbuf_output(&EVENTS as *const RingBuf as *mut _, data, size, flags) };
    if r != 0 {
        count(Counter::RingFull, 1);
        return false;
    }
    count(Counter::Records, 1);
    count(Counter::BytesShipped, payload);
    true
}
