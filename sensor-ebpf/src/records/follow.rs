//! Whether the kernel follows each side's TLS record headers, to ship
//! nothing of a side from its first application-data record on
//! (program/flows.rs, `walk_records`): yes in the bpf_loop object.

pub(crate) const FOLLOW: bool = true;
