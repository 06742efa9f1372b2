//! Where segments come from: capture files (`pcap`, framed by `decode`)
//! and the kernel programs (`live`). Everything downstream sees only
//! [`Segment`], never the source.

pub mod decode;
pub mod live;
pub mod own;
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

    /// One captured frame of a link type (pcap numbering), counted, as the
    /// segment it carries; None for frames that carry none.
    pub fn frame<'a>(
        &mut self,
        linktype: i32,
        timestamp_us: i64,
        data: &'a [u8],
    ) -> Option<Segment<'a>> {
        self.frames += 1;
        self.bytes += data.len() as u64;
        match decode::decode(linktype, data, timestamp_us) {
            Ok(seg) => Some(seg),
            // Non-IP and non-TCP frames are normal traffic, not errors.
            Err(Skip::NotIp | Skip::NotTcp) => None,
            Err(skip) => {
                self.skip(skip);
                None
            }
        }
    }

    /// Adds the counts of another reader (a file read on another thread).
    pub fn add(&mut self, o: &CaptureStats) {
        self.files += o.files;
        self.frames += o.frames;
        self.bytes += o.bytes;
        for (a, b) in self.skipped.iter_mut().zip(o.skipped) {
            *a += b;
        }
        self.files_damaged += o.files_damaged;
        self.files_unreadable += o.files_unreadable;
    }
}
