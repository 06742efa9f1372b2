//! TC classifier that ships the TCP payload of TLS handshakes to user space.
//!
//! A payload that starts with a ClientHello record opens a flow; packets of
//! open flows are copied into the ring buffer until user space closes the
//! flow or the flow's byte budget runs out. Everything else costs a parse
//! and, for TCP segments with payload, one read of the flow gate (a hash
//! lookup only when the gate says a flow may be open). Every connection
//! is counted (bytes and packets each way, program/conns.rs) from its SYN
//! to its end, never shipped. The program never changes a packet's fate: it always returns
//! TC_ACT_UNSPEC so programs attached after it (a CNI's) still run.
//!
//! `program/`: the classifiers and the per-packet path (`mod.rs`), by
//! concern: `parse`, `flows`, `conns`, `ship`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// The gate's atomic add is written as the BPF instruction (program/flows.rs).
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod program;

/// How a payload's chunks are walked: `bpf_loop` here, a tail-called
/// bounded loop in `sensor-ebpf-noloop` (src/bin/noloop.rs).
#[cfg(target_arch = "bpf")]
#[path = "chunks/bpf_loop.rs"]
mod chunks;

/// The clock counted packets are stamped with: coarse here, precise in
/// `sensor-ebpf-noloop` (5.10 has no coarse helper).
#[cfg(target_arch = "bpf")]
#[path = "clock/coarse.rs"]
mod clock;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
