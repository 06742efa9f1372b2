//! Live capture: the kernel programs of sensor-ebpf on the running kernel.
//!
//! - `features`: what the kernel offers, probed once when the programs load.
//! - `programs`: loads the object, owns its maps, and hands out its reader.
//! - `attach`: how the programs reach traffic (TCX or clsact, chosen from
//!   the features unless the operator forces one).
//! - `interfaces`: which interfaces to watch, and when links come and go.
//! - `follow`: the thread that keeps the programs attached to them.
//! - `flows`: the kernel's flow maps and their gate, as user space edits them.
//! - `batch`: a hash map read a chunk of entries per system call.
//! - `reader`: raw records from the ring buffer, and the one drain loop.
//! - `events`: a record parsed by its header's kind into a `Segment` or
//!   an ended connection's counts; a CONNS entry's counts.
//! - `caps`: the capabilities loading and attaching need.

mod attach;
mod batch;
mod caps;
mod error;
mod events;
mod features;
mod flows;
mod follow;
mod interfaces;
mod programs;
mod reader;
mod stats;

pub use attach::{Attach, AttachMode, Attacher};
pub use caps::check_capabilities;
pub use error::LiveError;
pub use events::{Clock, Event, conn_traffic, decode, decode_event, mono_ns};
pub use features::KernelFeatures;
pub use flows::{CONNS_MAPS, FlowTable, kernel_key};
pub use follow::Follower;
pub use interfaces::InterfaceFilter;
pub use programs::{
    LiveConfig, Programs, SHIP_PROGRAM, Ship, ShipMode, aux_object, noloop_object, object,
};
pub use reader::{Drained, EventReader, RingReader, drain};
pub use stats::KernelStats;
