//! Reading the kernel's records: an `EventReader` hands them over raw, in
//! order; `drain` is the one loop that parses them by kind and passes them
//! on, whatever the reader.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use aya::maps::{MapData, RingBuf};

use super::events::{Clock, Event, decode};

/// A source of raw kernel records (`EventHeader` and what follows).
pub trait EventReader {
    /// Hands every record available now to `f`, without waiting; returns
    /// how many there were.
    fn read(&mut self, f: &mut dyn FnMut(&[u8])) -> u64;
}

/// The programs' ring buffer (EVENTS). Its fd turns readable when records
/// wait: poll it (tokio's AsyncFd) and drain.
pub struct RingReader {
    ring: RingBuf<MapData>,
}

impl RingReader {
    pub fn new(ring: RingBuf<MapData>) -> Self {
        Self { ring }
    }
}

impl EventReader for RingReader {
    fn read(&mut self, f: &mut dyn FnMut(&[u8])) -> u64 {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            f(&item);
            n += 1;
        }
        n
    }
}

impl AsFd for RingReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

impl AsRawFd for RingReader {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

/// What one drain saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub records: u64,
    /// Records that did not parse (short, or of an unknown kind); skipped.
    pub malformed: u64,
}

/// Every record waiting in `reader`, parsed by kind, to `on`.
pub fn drain<R: EventReader + ?Sized>(
    reader: &mut R,
    clock: Clock,
    mut on: impl FnMut(Event<'_>),
) -> Drained {
    let mut malformed = 0;
    let records = reader.read(&mut |record| match decode(record, clock) {
        Some(e) => on(e),
        None => malformed += 1,
    });
    Drained { records, malformed }
}

#[cfg(test)]
mod tests {
    use sensor_common::{EVENT_HEADER_LEN, EVENT_SEGMENT, EventHeader, FAMILY_V4};

    use super::*;

    /// Records from memory, as a reader of another source would hand them.
    struct Canned(Vec<Vec<u8>>);

    impl EventReader for Canned {
        fn read(&mut self, f: &mut dyn FnMut(&[u8])) -> u64 {
            let n = self.0.len() as u64;
            for r in self.0.drain(..) {
                f(&r);
            }
            n
        }
    }

    fn segment(kind: u8) -> Vec<u8> {
        let h = EventHeader {
            family: FAMILY_V4,
            kind,
            ..EventHeader::default()
        };
        // SAFETY: EventHeader is repr(C) plain data.
        unsafe {
            std::slice::from_raw_parts(&h as *const EventHeader as *const u8, EVENT_HEADER_LEN)
        }
        .to_vec()
    }

    #[test]
    fn drain_passes_on_what_parses_and_counts_the_rest() {
        let mut r = Canned(vec![segment(EVENT_SEGMENT), segment(0), vec![1, 2, 3]]);
        let mut segments = 0;
        let d = drain(&mut r, Clock::new(), |e| {
            if let Event::Segment(_) = e {
                segments += 1;
            }
        });
        assert_eq!(
            d,
            Drained {
                records: 3,
                malformed: 2
            }
        );
        assert_eq!(segments, 1);
        assert_eq!(drain(&mut r, Clock::new(), |_| {}), Drained::default());
    }
}
