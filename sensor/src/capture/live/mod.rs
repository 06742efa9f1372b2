//! Live capture: the kernel programs of sensor-ebpf, attached to network
//! interfaces, feeding segments through a ring buffer.

mod caps;
mod events;
mod flows;
mod interfaces;
mod programs;

pub use caps::check_capabilities;
pub use events::{Clock, Event, decode, decode_event, plain_flow};
pub use flows::FlowTable;
pub use interfaces::{InterfaceFilter, LinkWatcher, list_interfaces};
pub use programs::{KernelCounters, LiveConfig, Programs, aux_object, kernel_key, object};

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("missing capabilities: {0} (run as root, or grant them to the binary)")]
    Capabilities(String),
    #[error("loading the eBPF programs: {0}")]
    Load(String),
    #[error("attaching to {interface}: {reason}")]
    Attach { interface: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("invalid interface pattern {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
}
