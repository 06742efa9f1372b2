//! pcap and pcapng files (pcap-parser), streamed through a bounded buffer.

use std::fs::File;
use std::path::Path;

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};

/// Frames larger than this (GSO captures reach 256 KiB) are a broken file.
const MAX_BUFFER: usize = 4 << 20;
const INITIAL_BUFFER: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CaptureFileError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file")]
    NotACapture { path: String },
    #[error("{path}: the file is empty")]
    Empty { path: String },
    #[error("{path}: cannot read the capture header: {reason}")]
    BadHeader { path: String, reason: String },
}

/// One captured frame, borrowed from the reader's buffer.
pub struct Frame<'a> {
    pub linktype: i32,
    pub timestamp_us: i64,
    pub data: &'a [u8],
}

/// How reading ended. A damaged tail is not an error: what came before it
/// is still good, so it is reported and counted instead.
#[derive(Debug, Default, Clone)]
pub struct ReadOutcome {
    pub frames: u64,
    pub bytes: u64,
    /// The file ended inside a block, or a block did not parse.
    pub damaged: Option<String>,
}

struct Interface {
    linktype: i32,
    resolution: u64,
    offset: i64,
}

/// Reads every frame of a capture file in order. `progress` receives the
/// number of file bytes consumed so far.
pub fn read_file(
    path: &Path,
    mut on_frame: impl FnMut(Frame<'_>),
    mut progress: impl FnMut(u64),
) -> Result<ReadOutcome, CaptureFileError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| CaptureFileError::Open {
        path: name.clone(),
        source,
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(CaptureFileError::Empty { path: name });
    }
    let mut reader = match create_reader(INITIAL_BUFFER, file) {
        Ok(r) => r,
        Err(PcapError::HeaderNotRecognized) => {
            return Err(CaptureFileError::NotACapture { path: name });
        }
        Err(e) => {
            return Err(CaptureFileError::BadHeader {
                path: name,
                reason: format!("{e:?}"),
            });
        }
    };
    let mut out = ReadOutcome::default();
    let mut legacy: Option<(i32, bool)> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut consumed: u64 = 0;
    let mut capacity = INITIAL_BUFFER;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((h.network.0, h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (linktype, nanos) = legacy.unwrap_or((1, false));
                        let frac = if nanos {
                            b.ts_usec as i64 / 1000
                        } else {
                            b.ts_usec as i64
                        };
                        out.frames += 1;
                        out.bytes += b.data.len() as u64;
                        on_frame(Frame {
                            linktype,
                            timestamp_us: b.ts_sec as i64 * 1_000_000 + frac,
                            data: b.data,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            linktype: idb.linktype.0,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset: idb.ts_offset(),
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let Some(ifc) = interfaces.get(epb.if_id as usize) else {
                            out.damaged
                                .get_or_insert_with(|| "packet of an undeclared interface".into());
                            reader.consume(offset);
                            consumed += offset as u64;
                            continue;
                        };
                        let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let secs = (ts / ifc.resolution) as i64 + ifc.offset;
                        let frac =
                            (ts % ifc.resolution) as u128 * 1_000_000 / ifc.resolution as u128;
                        let caplen = (epb.caplen as usize).min(epb.data.len());
                        out.frames += 1;
                        out.bytes += caplen as u64;
                        on_frame(Frame {
                            linktype: ifc.linktype,
                            timestamp_us: secs
                                .saturating_mul(1_000_000)
                                .saturating_add(frac as i64),
                            data: &epb.data[..caplen],
                        });
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        if let Some(ifc) = interfaces.first() {
                            out.frames += 1;
                            out.bytes += spb.data.len() as u64;
                            on_frame(Frame {
                                linktype: ifc.linktype,
                                timestamp_us: 0,
                                data: spb.data,
                            });
                        }
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
                consumed += offset as u64;
                progress(consumed);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    out.damaged = Some("the file ends inside a block".into());
                    break;
                }
                if reader.refill().is_err() {
                    out.damaged = Some("read error".into());
                    break;
                }
            }
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_BUFFER || !reader.grow(capacity * 2) {
                    out.damaged = Some(format!("a block larger than {MAX_BUFFER} bytes"));
                    break;
                }
                capacity *= 2;
            }
            Err(PcapError::UnexpectedEof) => {
                out.damaged = Some("the file ends inside a block".into());
                break;
            }
            Err(e) => {
                out.damaged = Some(format!("unparsable block at byte {consumed}: {e:?}"));
                break;
            }
        }
    }
    Ok(out)
}
