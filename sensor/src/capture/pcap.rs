//! pcap and pcapng files (pcap-parser): mapped into memory, or streamed
//! through a bounded buffer when they cannot be.

use std::fs::File;
use std::path::Path;

use memmap2::{Advice, Mmap, UncheckedAdvice};
use pcap_parser::nom::{self, IResult};
use pcap_parser::pcap::{
    LegacyPcapBlock, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified,
    parse_pcap_header,
};
use pcap_parser::pcapng::{Block, parse_block_be, parse_block_le, parse_sectionheaderblock};
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

/// What a file's blocks said so far; shared by the mapped and the streamed reader.
#[derive(Default)]
struct Blocks {
    out: ReadOutcome,
    legacy: Option<(i32, bool)>,
    interfaces: Vec<Interface>,
}

impl Blocks {
    /// A legacy pcap record, taken by reference: moved into a
    /// `PcapBlockOwned` it is read back whole right after the parser wrote
    /// it field by field, a store-forwarding stall on every frame.
    #[inline(always)]
    fn legacy<'a>(&mut self, b: &LegacyPcapBlock<'a>, on_frame: &mut impl FnMut(Frame<'a>)) {
        let (linktype, nanos) = self.legacy.unwrap_or((1, false));
        let frac = if nanos {
            b.ts_usec as i64 / 1000
        } else {
            b.ts_usec as i64
        };
        self.out.frames += 1;
        self.out.bytes += b.data.len() as u64;
        on_frame(Frame {
            linktype,
            timestamp_us: b.ts_sec as i64 * 1_000_000 + frac,
            data: b.data,
        });
    }

    fn block<'a>(&mut self, block: PcapBlockOwned<'a>, on_frame: &mut impl FnMut(Frame<'a>)) {
        let out = &mut self.out;
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                self.legacy = Some((h.network.0, h.is_nanosecond_precision()));
            }
            PcapBlockOwned::Legacy(b) => self.legacy(&b, on_frame),
            PcapBlockOwned::NG(Block::SectionHeader(_)) => self.interfaces.clear(),
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                self.interfaces.push(Interface {
                    linktype: idb.linktype.0,
                    resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                    offset: idb.ts_offset(),
                });
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let Some(ifc) = self.interfaces.get(epb.if_id as usize) else {
                    out.damaged
                        .get_or_insert_with(|| "packet of an undeclared interface".into());
                    return;
                };
                let ts = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                let secs = (ts / ifc.resolution) as i64 + ifc.offset;
                let frac = (ts % ifc.resolution) as u128 * 1_000_000 / ifc.resolution as u128;
                let caplen = (epb.caplen as usize).min(epb.data.len());
                out.frames += 1;
                out.bytes += caplen as u64;
                on_frame(Frame {
                    linktype: ifc.linktype,
                    timestamp_us: secs.saturating_mul(1_000_000).saturating_add(frac as i64),
                    data: &epb.data[..caplen],
                });
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                if let Some(ifc) = self.interfaces.first() {
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
    }
}

/// Reads every frame of a capture file in order. `progress` receives the
/// number of file bytes consumed so far.
///
/// Regular files are memory-mapped: frames are then parsed where the page
/// cache holds them, and the payload of packets nobody follows is never
/// copied or even read (a read() into a buffer cost a third of `sensor
/// analyze`'s time). Anything else (a pipe, a device) is streamed through a
/// bounded buffer.
pub fn read_file(
    path: &Path,
    mut on_frame: impl FnMut(Frame<'_>),
    progress: impl FnMut(u64),
) -> Result<ReadOutcome, CaptureFileError> {
    match open(path)? {
        Opened::Mapped(m) => m.read(&mut on_frame, progress, |parsed| parsed),
        Opened::Streamed { file, name } => read_streamed(file, name, on_frame, progress),
    }
}

/// A capture file ready to read: mapped when it is a regular file that
/// maps, else read as a stream (pipes, special files).
pub enum Opened {
    Mapped(MappedCapture),
    Streamed { file: File, name: String },
}

/// A mapped capture file. Its frames borrow from the map, so they can be
/// handed to another thread for as long as the map lives.
pub struct MappedCapture {
    map: Mmap,
    name: String,
}

pub fn open(path: &Path) -> Result<Opened, CaptureFileError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|source| CaptureFileError::Open {
        path: name.clone(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| CaptureFileError::Open {
        path: name.clone(),
        source,
    })?;
    if meta.is_file() {
        if meta.len() == 0 {
            return Err(CaptureFileError::Empty { path: name });
        }
        // SAFETY: the map is read-only and private to this call. A capture
        // file is not expected to shrink while it is analysed; if another
        // process truncates it anyway, reading the vanished pages raises
        // SIGBUS, as it would for any reader of a mapped file.
        if let Ok(map) = unsafe { Mmap::map(&file) } {
            let _ = map.advise(Advice::Sequential);
            return Ok(Opened::Mapped(MappedCapture { map, name }));
        }
    }
    Ok(Opened::Streamed { file, name })
}

impl MappedCapture {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every frame in order; each borrows from the map. `consumed` says,
    /// given how far the parser got, up to which byte the frames handed
    /// out have been finished with: the pages before it are released.
    pub fn read<'a>(
        &'a self,
        on_frame: impl FnMut(Frame<'a>),
        mut progress: impl FnMut(u64),
        consumed: impl Fn(usize) -> usize,
    ) -> Result<ReadOutcome, CaptureFileError> {
        let release = |upto: usize| {
            // SAFETY: the map is of a file, shared and read-only: after
            // MADV_DONTNEED the pages read back from the file unchanged,
            // under the same assumption as the map itself. A frame still
            // held by a consumer behind `consumed` stays valid for that
            // reason too; it is only read back from the page cache.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, 0, upto)
            };
        };
        let mut populate = Populate::default();
        let progress = |at: u64| {
            populate.ahead_of(&self.map, at as usize);
            progress(at)
        };
        read_mapped(
            &self.map,
            self.name.clone(),
            on_frame,
            progress,
            Release::new(consumed, release),
        )
    }
}

/// Maps the file's pages into the page table a window ahead of the
/// parser, one system call a window, instead of one page fault for every
/// 16 pages the parser reaches. Older kernels (before 5.14) refuse the
/// advice; their pages fault in as before.
#[derive(Default)]
struct Populate {
    upto: usize,
}

impl Populate {
    const WINDOW: usize = 2 << 20;

    #[inline]
    fn ahead_of(&mut self, map: &Mmap, at: usize) {
        if at + Self::WINDOW / 2 < self.upto || self.upto >= map.len() {
            return;
        }
        let n = Self::WINDOW.min(map.len() - self.upto);
        let _ = map.advise_range(Advice::PopulateRead, self.upto, n);
        self.upto += n;
    }
}

/// Hands mapped pages back to the kernel once the frames on them are
/// finished with, in steps of `RELEASE_EVERY`, so that the resident size
/// follows how far the consumer got, whatever the file size.
struct Release<C, R> {
    consumed: C,
    release: R,
    released: usize,
}

impl<C: Fn(usize) -> usize, R: FnMut(usize)> Release<C, R> {
    fn new(consumed: C, release: R) -> Self {
        Release {
            consumed,
            release,
            released: 0,
        }
    }

    fn at(&mut self, parsed: usize) {
        if parsed < self.released + RELEASE_EVERY {
            return;
        }
        let done = (self.consumed)(parsed).min(parsed);
        if done >= self.released + RELEASE_EVERY {
            self.released = done - done % RELEASE_EVERY;
            (self.release)(self.released);
        }
    }
}

/// pcapng's Section Header Block type, the same bytes in either byte order.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

type LegacyParser = fn(&[u8]) -> IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>>;

/// Mapped pages are handed back to the kernel in steps of this many bytes:
/// one madvise per step, and the resident size at most this much above
/// what the consumer holds.
const RELEASE_EVERY: usize = 8 << 20;

fn read_mapped<'a>(
    data: &'a [u8],
    name: String,
    mut on_frame: impl FnMut(Frame<'a>),
    mut progress: impl FnMut(u64),
    mut release: Release<impl Fn(usize) -> usize, impl FnMut(usize)>,
) -> Result<ReadOutcome, CaptureFileError> {
    let mut progress = |at: usize| {
        release.at(at);
        progress(at as u64);
    };
    let mut blocks = Blocks::default();
    let mut rest = data;
    let damage = |e: nom::Err<PcapError<&[u8]>>, at: usize| match e {
        nom::Err::Incomplete(_) => "the file ends inside a block".to_string(),
        e => format!("unparsable block at byte {at}: {e:?}"),
    };
    if data.starts_with(&PCAPNG_MAGIC) {
        if let Err(e) = parse_sectionheaderblock(data) {
            return Err(CaptureFileError::BadHeader {
                path: name,
                reason: format!("{e:?}"),
            });
        }
        let mut big_endian = false;
        let mut ahead = Prefetch::default();
        while !rest.is_empty() {
            ahead.before(data, data.len() - rest.len());
            let parse = if big_endian {
                parse_block_be
            } else {
                parse_block_le
            };
            match parse(rest) {
                Ok((next, block)) => {
                    Prefetch::next_blocks(rest, next);
                    if let Block::SectionHeader(shb) = &block {
                        big_endian = shb.big_endian();
                    }
                    blocks.block(PcapBlockOwned::NG(block), &mut on_frame);
                    rest = next;
                    progress(data.len() - rest.len());
                }
                Err(e) => {
                    blocks.out.damaged = Some(damage(e, data.len() - rest.len()));
                    break;
                }
            }
        }
        return Ok(blocks.out);
    }
    let header = match parse_pcap_header(data) {
        Ok((next, h)) => {
            rest = next;
            h
        }
        Err(nom::Err::Incomplete(_)) if data.len() >= 4 && known_legacy_magic(data) => {
            return Err(CaptureFileError::BadHeader {
                path: name,
                reason: "the file ends inside the header".into(),
            });
        }
        Err(_) => return Err(CaptureFileError::NotACapture { path: name }),
    };
    let parse: LegacyParser = if header.is_modified_format() {
        parse_pcap_frame_modified
    } else if header.is_bigendian() {
        parse_pcap_frame_be
    } else {
        parse_pcap_frame
    };
    blocks.block(PcapBlockOwned::LegacyHeader(header), &mut on_frame);
    let mut ahead = Prefetch::default();
    while !rest.is_empty() {
        ahead.before(data, data.len() - rest.len());
        match parse(rest) {
            Ok((next, frame)) => {
                Prefetch::next_blocks(rest, next);
                blocks.legacy(&frame, &mut on_frame);
                rest = next;
                progress(data.len() - rest.len());
            }
            Err(e) => {
                blocks.out.damaged = Some(damage(e, data.len() - rest.len()));
                break;
            }
        }
    }
    Ok(blocks.out)
}

/// Asks the CPU for the mapped bytes a little before the parser reaches
/// them. Frames are read once, in order, from memory that is not in any
/// cache yet; without this the first look at each frame's header waits for
/// memory (a quarter of `sensor analyze`'s time), as the hardware prefetcher
/// does not cross pages. One line in eight is asked for: that starts the
/// page walk and the hardware's stream within each page, and the payload
/// of packets nobody reads is not pulled through the cache on purpose
/// (every line cost 4 % more CPU and a little wall time).
#[derive(Default)]
struct Prefetch {
    upto: usize,
}

impl Prefetch {
    const DISTANCE: usize = 8 << 10;
    const STRIDE: usize = 512;

    #[inline]
    fn before(&mut self, data: &[u8], at: usize) {
        let want = (at + Self::DISTANCE).min(data.len());
        while self.upto < want {
            prefetch(data[self.upto..].as_ptr());
            self.upto += Self::STRIDE;
        }
    }

    /// The next block's header and the link and IP headers after it,
    /// asked for as soon as the block before (`rest` up to `next`) is
    /// framed: the frame's own decoding then overlaps the wait, which the
    /// stride above does not reliably hide (a frame header lands anywhere
    /// in a line). The block after that is guessed to be as long as the
    /// one just framed, as runs of a bulk transfer's full-sized segments
    /// are: a wrong guess costs two lines fetched for nothing, a right one
    /// the next wait (4 % less CPU on the bench capture).
    #[inline]
    fn next_blocks(rest: &[u8], next: &[u8]) {
        let headers = |b: &[u8]| {
            prefetch(b.as_ptr());
            prefetch(b.as_ptr().wrapping_add(64));
        };
        headers(next);
        if let Some(guess) = next.get(rest.len() - next.len()..) {
            headers(guess);
        }
    }
}

#[inline]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults and reads nothing the program sees;
    // SSE, which the intrinsic requires, is part of every x86_64 CPU.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

fn known_legacy_magic(data: &[u8]) -> bool {
    let m = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    [0xa1b2c3d4u32, 0xa1b23c4d, 0xa1b2cd34]
        .iter()
        .any(|k| m == *k || m == k.swap_bytes())
}

pub fn read_streamed(
    file: File,
    name: String,
    mut on_frame: impl FnMut(Frame<'_>),
    mut progress: impl FnMut(u64),
) -> Result<ReadOutcome, CaptureFileError> {
    let mut reader = match create_reader(INITIAL_BUFFER, file) {
        Ok(r) => r,
        Err(PcapError::HeaderNotRecognized) => {
            return Err(CaptureFileError::NotACapture { path: name });
        }
        Err(PcapError::Eof) => return Err(CaptureFileError::Empty { path: name }),
        Err(e) => {
            return Err(CaptureFileError::BadHeader {
                path: name,
                reason: format!("{e:?}"),
            });
        }
    };
    let mut blocks = Blocks::default();
    let mut consumed: u64 = 0;
    let mut capacity = INITIAL_BUFFER;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                blocks.block(block, &mut on_frame);
                reader.consume(offset);
                consumed += offset as u64;
                progress(consumed);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    blocks.out.damaged = Some("the file ends inside a block".into());
                    break;
                }
                if reader.refill().is_err() {
                    blocks.out.damaged = Some("read error".into());
                    break;
                }
            }
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_BUFFER || !reader.grow(capacity * 2) {
                    blocks.out.damaged = Some(format!("a block larger than {MAX_BUFFER} bytes"));
                    break;
                }
                capacity *= 2;
            }
            Err(PcapError::UnexpectedEof) => {
                blocks.out.damaged = Some("the file ends inside a block".into());
                break;
            }
            Err(e) => {
                blocks.out.damaged = Some(format!("unparsable block at byte {consumed}: {e:?}"));
                break;
            }
        }
    }
    Ok(blocks.out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str, bytes: &[u8]) -> Self {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!(
                "sensor-pcap-test-{}-{n}-{name}",
                std::process::id()
            ));
            std::fs::write(&p, bytes).unwrap();
            Scratch(p)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// A legacy pcap of the given frames; big-endian and nanosecond variants.
    fn legacy(frames: &[&[u8]], big_endian: bool, nanos: bool) -> Vec<u8> {
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend(u32b(if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 }));
        out.extend(u16b(2));
        out.extend(u16b(4));
        out.extend(u32b(0));
        out.extend(u32b(0));
        out.extend(u32b(65535));
        out.extend(u32b(1));
        for (i, f) in frames.iter().enumerate() {
            out.extend(u32b(1_700_000_000 + i as u32));
            out.extend(u32b(if nanos { 5_000 } else { 5 }));
            out.extend(u32b(f.len() as u32));
            out.extend(u32b(f.len() as u32));
            out.extend_from_slice(f);
        }
        out
    }

    fn pcapng(frames: &[&[u8]]) -> Vec<u8> {
        let block = |t: u32, body: &[u8]| {
            let len = 12 + body.len().div_ceil(4) * 4;
            let mut b = t.to_le_bytes().to_vec();
            b.extend((len as u32).to_le_bytes());
            b.extend_from_slice(body);
            b.resize(len - 4, 0);
            b.extend((len as u32).to_le_bytes());
            b
        };
        let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
        shb.extend(1u16.to_le_bytes());
        shb.extend(0u16.to_le_bytes());
        shb.extend(u64::MAX.to_le_bytes());
        let mut out = block(0x0a0d0d0a, &shb);
        let mut idb = 1u16.to_le_bytes().to_vec();
        idb.extend(0u16.to_le_bytes());
        idb.extend(0u32.to_le_bytes());
        out.extend(block(1, &idb));
        for (i, f) in frames.iter().enumerate() {
            let ts = (1_700_000_000u64 + i as u64) * 1_000_000 + 5;
            let mut epb = 0u32.to_le_bytes().to_vec();
            epb.extend(((ts >> 32) as u32).to_le_bytes());
            epb.extend((ts as u32).to_le_bytes());
            epb.extend((f.len() as u32).to_le_bytes());
            epb.extend((f.len() as u32).to_le_bytes());
            epb.extend_from_slice(f);
            out.extend(block(6, &epb));
        }
        out
    }

    type Got = (Vec<(i32, i64, Vec<u8>)>, ReadOutcome);

    fn mapped(bytes: &[u8]) -> Result<Got, CaptureFileError> {
        let f = Scratch::new("mapped", bytes);
        let mut got = Vec::new();
        let out = read_file(
            &f.0,
            |fr| got.push((fr.linktype, fr.timestamp_us, fr.data.to_vec())),
            |_| {},
        )?;
        Ok((got, out))
    }

    fn streamed(bytes: &[u8]) -> Result<Got, CaptureFileError> {
        let f = Scratch::new("streamed", bytes);
        let mut got = Vec::new();
        let out = read_streamed(
            File::open(&f.0).unwrap(),
            "streamed".into(),
            |fr| got.push((fr.linktype, fr.timestamp_us, fr.data.to_vec())),
            |_| {},
        )?;
        Ok((got, out))
    }

    /// Both readers give the same frames and the same verdict on damage.
    fn both(bytes: &[u8]) -> Got {
        let a = mapped(bytes).unwrap();
        let b = streamed(bytes).unwrap();
        assert_eq!(a.0, b.0);
        assert_eq!((a.1.frames, a.1.bytes), (b.1.frames, b.1.bytes));
        assert_eq!(a.1.damaged.is_some(), b.1.damaged.is_some());
        a
    }

    #[test]
    fn every_format_reads_the_same_mapped_or_streamed() {
        let frames: [&[u8]; 3] = [b"first frame", b"", &[7u8; 1500]];
        for bytes in [
            legacy(&frames, false, false),
            legacy(&frames, true, false),
            legacy(&frames, false, true),
            legacy(&frames, true, true),
            pcapng(&frames),
        ] {
            let (got, out) = both(&bytes);
            assert_eq!(got.len(), 3);
            assert_eq!(got[0], (1, 1_700_000_000_000_005, b"first frame".to_vec()));
            assert_eq!(got[2].2.len(), 1500);
            assert!(out.damaged.is_none());
        }
    }

    #[test]
    fn a_cut_file_keeps_what_came_before_the_cut() {
        let frames: [&[u8]; 2] = [b"one", b"two two two"];
        for bytes in [legacy(&frames, false, false), pcapng(&frames)] {
            for cut in [bytes.len() - 3, bytes.len() - 14] {
                let (got, out) = both(&bytes[..cut]);
                assert_eq!(got.len(), 1);
                assert!(out.damaged.is_some());
            }
        }
    }

    #[test]
    fn pages_are_released_as_far_as_the_consumer_got() {
        let frame = [9u8; 1400];
        let frames: Vec<&[u8]> = vec![&frame; (RELEASE_EVERY * 7 / 2) / 1416];
        let bytes = legacy(&frames, false, false);
        let run = |consumed: &dyn Fn(usize) -> usize| {
            let mut released = Vec::new();
            let mut seen = 0;
            let out = read_mapped(
                &bytes,
                "x".into(),
                |_| seen += 1,
                |_| {},
                Release::new(consumed, |upto| released.push(upto)),
            )
            .unwrap();
            assert_eq!(out.frames as usize, frames.len());
            assert_eq!(seen, frames.len());
            released
        };
        // Read and consumed on one thread: each step as soon as it is passed.
        let steps = vec![RELEASE_EVERY, 2 * RELEASE_EVERY, 3 * RELEASE_EVERY];
        assert_eq!(run(&|parsed| parsed), steps);
        // A consumer a step behind holds its pages until it is done with them.
        let behind = |parsed: usize| parsed.saturating_sub(RELEASE_EVERY);
        assert_eq!(run(&behind), vec![RELEASE_EVERY, 2 * RELEASE_EVERY]);
        // A consumer that never reports keeps everything; one claiming to be
        // ahead of the parser releases no more than was parsed.
        assert_eq!(run(&|_| 0), Vec::<usize>::new());
        assert_eq!(run(&|_| usize::MAX), steps);
    }

    #[test]
    fn empty_and_foreign_files_are_clear_errors() {
        assert!(matches!(mapped(b""), Err(CaptureFileError::Empty { .. })));
        assert!(matches!(
            mapped(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(CaptureFileError::NotACapture { .. })
        ));
        assert!(matches!(
            streamed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(CaptureFileError::NotACapture { .. })
        ));
        let header = legacy(&[], false, false);
        assert!(matches!(
            mapped(&header[..10]),
            Err(CaptureFileError::BadHeader { .. })
        ));
        assert!(matches!(
            mapped(&pcapng(&[])[..10]),
            Err(CaptureFileError::BadHeader { .. })
        ));
        // A header alone is a capture without frames.
        let (got, out) = both(&header);
        assert!(got.is_empty() && out.damaged.is_none());
    }
}
