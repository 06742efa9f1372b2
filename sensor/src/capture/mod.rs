//! Where segments come from: capture files (`pcap`, framed by `decode`)
//! and the kernel programs (`live`). Everything downstream sees only
//! [`Segment`], never the source.

pub mod decode;
pub mod live;
pub mod pcap;
pub mod segment;

pub use segment::{FlowKey, Segment, TcpFlags};
