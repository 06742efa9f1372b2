//! The payload's chunks walked without `bpf_loop`, for kernels before 5.17
//! (from 5.10): the per-packet path leaves the packet's position in
//! `PENDING` and tail-calls `tls_ship`, a program of its own whose bounded
//! loop (Linux 5.3) the verifier walks once, from a single entry, instead
//! of once per path through the parser. Same chunks, same records, same
//! counters as the bpf_loop object.

use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::{PerCpuArray, ProgramArray};
use aya_ebpf::programs::TcContext;
use sensor_common::{Counter, MAX_CHUNKS};

use crate::program::ship::{ChunkCtx, ship_chunk};
use crate::program::{TC_ACT_UNSPEC, count};

/// Slot 0: `tls_ship`, set by user space after loading.
#[map]
static SHIP: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The packet being shipped, from the classifier to `tls_ship` (per CPU:
/// a tail call runs on the CPU that made it, before anything else does).
#[map]
static PENDING: PerCpuArray<ChunkCtx> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn ship_payload(ctx: &TcContext, c: ChunkCtx) {
    let Some(p) = PENDING.get_ptr_mut(0) else {
        return;
    };
    // Field by field: a struct store may become a memcpy call.
    unsafe {
        (*p).off = c.off;
        (*p).len = c.len;
        (*p).seq = c.seq;
        (*p).done = 0;
        SHIP.tail_call(ctx, 0);
    }
    // Only reached when the tail call failed (slot empty): nothing shipped.
    count(Counter::Truncated, 1);
}

#[classifier]
pub fn tls_ship(ctx: TcContext) -> i32 {
    if let Some(p) = PENDING.get_ptr_mut(0) {
        let c = unsafe { &mut *p };
        let skb = ctx.skb.skb as *mut core::ffi::c_void;
        for _ in 0..MAX_CHUNKS {
            if !ship_chunk(skb, c) {
                break;
            }
        }
    }
    TC_ACT_UNSPEC
}
