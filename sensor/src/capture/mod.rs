//! Where segments come from: capture files here, the kernel programs later.
//! Everything downstream sees only [`Segment`], never the source.

pub mod decode;
pub mod live;
pub mod pcap;
pub mod segment;

pub use segment::{FlowKey, Segment, TcpFlags};

use decode::Skip;

/// What the capture side counted: frames in, and every frame or file it
/// could not use, by reason.
#[derive(Debug, Default, Clone)]
pub struct CaptureStats {
    pub files: u64,
    pub frames: u64,
    pub bytes: u64,
    /// Frames that yielded no segment, by `Skip` (its discriminant).
    /// Non-IP and non-TCP frames are counted here but are normal traffic.
    pub skipped: [u64; Skip::COUNT],
    pub files_damaged: u64,
    pub files_unreadable: u64,
}

impl CaptureStats {
    pub fn skip(&mut self, skip: Skip) {
        self.skipped[skip as usize] += 1;
    }
}
