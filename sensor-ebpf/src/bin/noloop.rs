//! The sensor's programs for kernels without `bpf_loop` (5.10 to 5.16):
//! the same per-packet path as `sensor-ebpf` (the same `program/` files),
//! with the payload's chunks shipped by `tls_ship`, a tail-called program
//! with a bounded loop (`chunks/bounded.rs`), and counted packets stamped
//! with the precise clock (`clock/precise.rs`). User space loads this object
//! when the kernel feature probe finds no `bpf_loop`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
#[path = "../program/mod.rs"]
mod program;

#[cfg(target_arch = "bpf")]
#[path = "../chunks/bounded.rs"]
mod chunks;

#[cfg(target_arch = "bpf")]
#[path = "../clock/precise.rs"]
mod clock;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
