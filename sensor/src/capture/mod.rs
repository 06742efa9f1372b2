//! Where segments come from: capture files here, the kernel programs later.
//! Everything downstream sees only [`Segment`], never the source.

pub mod decode;
pub mod live;
pub mod pcap;
pub mod segment;

pub use segment::{FlowKey, Segment, TcpFlags};
