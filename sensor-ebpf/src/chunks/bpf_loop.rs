//! The payload's chunks walked with `bpf_loop` (Linux 5.17): verification
//! stays linear in the chunk count wherever `ship` is reached from.

use aya_ebpf::helpers::generated::bpf_loop;
use aya_ebpf::programs::TcContext;
use sensor_common::MAX_CHUNKS;

use crate::program::ship::{ChunkCtx, ship_chunk};

#[inline(always)]
pub(crate) fn ship_payload(_ctx: &TcContext, mut c: ChunkCtx) {
    // An unrolled loop of 4 KiB copies, inlined in every path that ships,
    // exceeds the verifier's instruction budget; bpf_loop verifies the
    // callback once.
    unsafe {
        bpf_loop(
            MAX_CHUNKS as u32,
            step as *mut core::ffi::c_void,
            &mut c as *mut ChunkCtx as *mut core::ffi::c_void,
            0,
        )
    };
}

/// One chunk; 1 stops the loop.
extern "C" fn step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let c = unsafe { &mut *(ctx as *mut ChunkCtx) };
    if ship_chunk(c.skb as *mut _, c) { 0 } else { 1 }
}
