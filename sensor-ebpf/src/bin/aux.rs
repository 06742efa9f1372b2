//! Auxiliary TC programs for tests and benchmarks, kept out of the
//! sensor's own object: `tc_empty` (the benchmark's baseline) and
//! `tc_peer_counter` (a stand-in for a CNI's program attached after ours,
//! counting every packet it is given).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::macros::{classifier, map};
    use aya_ebpf::maps::PerCpuArray;
    use aya_ebpf::programs::TcContext;

    const TC_ACT_UNSPEC: i32 = -1;

    #[map]
    static PEER_PACKETS: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

    #[classifier]
    pub fn tc_empty(_ctx: TcContext) -> i32 {
        TC_ACT_UNSPEC
    }

    #[classifier]
    pub fn tc_peer_counter(_ctx: TcContext) -> i32 {
        if let Some(p) = PEER_PACKETS.get_ptr_mut(0) {
            unsafe { *p += 1 };
        }
        TC_ACT_UNSPEC
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}

#[cfg(not(target_arch = "bpf"))]
fn main() {}
