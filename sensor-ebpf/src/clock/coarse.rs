//! The time a counted packet stamps on its connection (`last_ns`): the
//! coarse monotonic clock (Linux 5.11, so every kernel with `bpf_loop`),
//! the same clock as `bpf_ktime_get_ns` read at the last tick. Reading
//! the precise clock was a third of a counted packet's cost (20 of 64 ns
//! above an empty program); idle timeouts and report times need no finer
//! grain than a tick.

use aya_ebpf::helpers::generated::bpf_ktime_get_coarse_ns;

#[inline(always)]
pub(crate) fn last_seen_ns() -> u64 {
    unsafe { bpf_ktime_get_coarse_ns() }
}
