//! Whether the kernel follows each side's TLS record headers
//! (program/flows.rs, `walk_records`): not in the object for kernels
//! without `bpf_loop`. The walk's loop, inlined in every path that ships,
//! took 5.10's verifier past its million instructions; here a handshake
//! flow ships until user space closes it or its budget runs out.

pub(crate) const FOLLOW: bool = false;
