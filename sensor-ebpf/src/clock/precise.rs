//! The time a counted packet stamps on its connection (`last_ns`) on
//! kernels without `bpf_loop`: 5.10 has no coarse clock helper, so the
//! precise one (see `coarse.rs`).

use aya_ebpf::helpers::generated::bpf_ktime_get_ns;

#[inline(always)]
pub(crate) fn last_seen_ns() -> u64 {
    unsafe { bpf_ktime_get_ns() }
}
