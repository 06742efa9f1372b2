use std::collections::BTreeMap;

/// What a push did beyond delivering bytes; the table counts these.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Push {
    pub delivered: usize,
    /// Bytes that were already delivered (retransmission, duplicate capture, overlap).
    pub duplicate: usize,
    /// Bytes held back until the gap before them fills.
    pub buffered: usize,
    /// The out-of-order buffer overflowed: this direction is given up.
    pub gave_up: bool,
    /// A segment so far ahead it cannot belong to this stream.
    pub out_of_window: bool,
}

/// One direction of a connection: delivers payload in sequence order exactly
/// once, holding out-of-order segments up to a bound.
#[derive(Debug, Default)]
pub struct Stream {
    /// Next expected sequence number, once known (SYN or first payload).
    next_seq: Option<u32>,
    /// Out-of-order segments keyed by their distance ahead of `next_seq`
    /// at the time they were stored, rebased as delivery advances.
    pending: BTreeMap<u64, Vec<u8>>,
    /// Bytes delivered so far; `pending` keys are absolute in this space.
    delivered: u64,
    pending_bytes: usize,
    gave_up: bool,
}

/// A segment further ahead than this is not part of the handshake.
const MAX_WINDOW: i64 = 16 << 20;

impl Stream {
    pub fn syn(&mut self, seq: u32) {
        if self.next_seq.is_none() {
            self.next_seq = Some(seq.wrapping_add(1));
        }
    }

    /// A SYN seen again with a different initial sequence number (a
    /// SYN-ACK answering a retransmitted SYN, a peer that restarted its
    /// side of the handshake): the direction starts over at `seq + 1`,
    /// provided nothing of the old sequence space was delivered yet, as
    /// the consumer cannot take its first bytes twice. Held segments were
    /// placed against the old base and are dropped. Returns the bytes that
    /// freed, or None when the stream keeps its base (already delivering,
    /// given up, or the same ISN).
    pub fn resyn(&mut self, seq: u32) -> Option<usize> {
        let base = seq.wrapping_add(1);
        if self.delivered > 0 || self.gave_up || self.next_seq == Some(base) {
            return None;
        }
        self.next_seq = Some(base);
        Some(self.clear())
    }

    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Drops held segments, returning how many bytes that freed.
    pub fn clear(&mut self) -> usize {
        self.pending.clear();
        std::mem::take(&mut self.pending_bytes)
    }

    /// Accepts one segment. `max_pending` bounds this stream's out-of-order
    /// bytes; `global_room` is what the table as a whole can still hold.
    pub fn push(
        &mut self,
        seq: u32,
        payload: &[u8],
        max_pending: usize,
        global_room: usize,
        deliver: &mut impl FnMut(&[u8]) -> bool,
    ) -> Push {
        let mut r = Push::default();
        if self.gave_up || payload.is_empty() {
            return r;
        }
        let next = *self.next_seq.get_or_insert(seq);
        let ahead = seq.wrapping_sub(next) as i32 as i64;
        if ahead <= 0 {
            let skip = (-ahead) as usize;
            if skip >= payload.len() {
                r.duplicate = payload.len();
                return r;
            }
            r.duplicate = skip;
            let keep_going = self.emit(&payload[skip..], deliver, &mut r);
            if keep_going {
                self.drain(deliver, &mut r);
            }
            return r;
        }
        if ahead > MAX_WINDOW {
            r.out_of_window = true;
            return r;
        }
        let key = self.delivered + ahead as u64;
        if self.pending_bytes + payload.len() > max_pending || payload.len() > global_room {
            r.gave_up = true;
            self.gave_up = true;
            self.clear();
            return r;
        }
        // Keep the longer of two segments starting at the same place.
        match self.pending.get(&key) {
            Some(old) if old.len() >= payload.len() => r.duplicate = payload.len(),
            _ => {
                let old = self
                    .pending
                    .insert(key, payload.to_vec())
                    .map_or(0, |o| o.len());
                self.pending_bytes = self.pending_bytes + payload.len() - old;
                r.buffered = payload.len() - old;
            }
        }
        r
    }

    fn emit(
        &mut self,
        bytes: &[u8],
        deliver: &mut impl FnMut(&[u8]) -> bool,
        r: &mut Push,
    ) -> bool {
        self.delivered += bytes.len() as u64;
        self.next_seq = self.next_seq.map(|n| n.wrapping_add(bytes.len() as u32));
        r.delivered += bytes.len();
        deliver(bytes)
    }

    fn drain(&mut self, deliver: &mut impl FnMut(&[u8]) -> bool, r: &mut Push) {
        while let Some(entry) = self.pending.first_entry() {
            let key = *entry.key();
            if key > self.delivered {
                break;
            }
            let seg = entry.remove();
            self.pending_bytes -= seg.len();
            let skip = (self.delivered - key) as usize;
            if skip >= seg.len() {
                r.duplicate += seg.len();
                continue;
            }
            r.duplicate += skip;
            if !self.emit(&seg[skip..], deliver, r) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(segs: &[(u32, &[u8])]) -> (Vec<u8>, Push) {
        let mut s = Stream::default();
        s.syn(99);
        let mut out = Vec::new();
        let mut total = Push::default();
        for (seq, p) in segs {
            let r = s.push(*seq, p, 1 << 20, usize::MAX, &mut |b| {
                out.extend_from_slice(b);
                true
            });
            total.delivered += r.delivered;
            total.duplicate += r.duplicate;
            total.gave_up |= r.gave_up;
        }
        (out, total)
    }

    #[test]
    fn in_order() {
        let (out, _) = run(&[(100, b"hello "), (106, b"world")]);
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn reversed() {
        let (out, _) = run(&[(111, b"!"), (106, b"world"), (100, b"hello ")]);
        assert_eq!(out, b"hello world!");
    }

    #[test]
    fn duplicated_every_segment() {
        let (out, r) = run(&[(100, b"abc"), (100, b"abc"), (103, b"def"), (103, b"def")]);
        assert_eq!(out, b"abcdef");
        assert_eq!(r.duplicate, 6);
    }

    #[test]
    fn overlapping_segments() {
        let (out, r) = run(&[(100, b"abcd"), (102, b"cdefg"), (101, b"bcdefghi")]);
        assert_eq!(out, b"abcdefghi");
        assert_eq!(r.duplicate, 2 + 6);
    }

    #[test]
    fn overlap_out_of_order() {
        let (out, _) = run(&[(104, b"efgh"), (102, b"cdef"), (100, b"ab")]);
        assert_eq!(out, b"abcdefgh");
    }

    #[test]
    fn missing_segment_holds_back_and_gives_up_at_bound() {
        let mut s = Stream::default();
        s.syn(0);
        let mut out = Vec::new();
        let mut deliver = |b: &[u8]| {
            out.extend_from_slice(b);
            true
        };
        assert_eq!(s.push(1, b"aa", 8, usize::MAX, &mut deliver).delivered, 2);
        // bytes 3..5 missing
        let r = s.push(5, b"cccc", 8, usize::MAX, &mut deliver);
        assert_eq!(r.buffered, 4);
        assert_eq!(s.pending_bytes(), 4);
        let r = s.push(9, b"ddddd", 8, usize::MAX, &mut deliver);
        assert!(r.gave_up);
        assert!(s.gave_up());
        assert_eq!(s.pending_bytes(), 0);
        assert_eq!(s.push(3, b"bb", 8, usize::MAX, &mut deliver).delivered, 0);
        assert_eq!(out, b"aa");
    }

    #[test]
    fn global_room_is_respected() {
        let mut s = Stream::default();
        s.syn(0);
        let r = s.push(10, b"xxxx", 1 << 20, 3, &mut |_| true);
        assert!(r.gave_up);
    }

    #[test]
    fn sequence_wraps() {
        let mut s = Stream::default();
        s.syn(u32::MAX - 2);
        let mut out = Vec::new();
        let mut deliver = |b: &[u8]| {
            out.extend_from_slice(b);
            true
        };
        s.push(1, b"def", 1 << 20, usize::MAX, &mut deliver);
        s.push(u32::MAX - 1, b"abc", 1 << 20, usize::MAX, &mut deliver);
        assert_eq!(out, b"abcdef");
    }

    #[test]
    fn no_syn_starts_at_first_payload_and_far_segments_are_rejected() {
        let mut s = Stream::default();
        let r = s.push(5000, b"x", 1 << 20, usize::MAX, &mut |_| true);
        assert_eq!(r.delivered, 1);
        let r = s.push(5001 + (64 << 20), b"y", 1 << 20, usize::MAX, &mut |_| true);
        assert!(r.out_of_window);
    }

    #[test]
    fn payload_in_the_syn_starts_at_isn_plus_one() {
        // The table pushes a SYN's payload at ISN + 1 (TCP Fast Open); a
        // retransmission of the same bytes after the handshake is a duplicate.
        let mut s = Stream::default();
        s.syn(1000);
        let mut out = Vec::new();
        let mut deliver = |b: &[u8]| {
            out.extend_from_slice(b);
            true
        };
        assert_eq!(
            s.push(1001, b"hello", 64, usize::MAX, &mut deliver)
                .delivered,
            5
        );
        let r = s.push(1001, b"hello world", 64, usize::MAX, &mut deliver);
        assert_eq!((r.delivered, r.duplicate), (6, 5));
        assert_eq!(out, b"hello world");
    }

    #[test]
    fn a_new_isn_rebases_until_bytes_are_delivered() {
        let mut s = Stream::default();
        s.syn(5000);
        // A segment ahead of the old base is held, then dropped on rebase.
        assert_eq!(
            s.push(5101, b"zz", 64, usize::MAX, &mut |_| true).buffered,
            2
        );
        assert_eq!(s.resyn(5000), None);
        assert_eq!(s.resyn(0x9000_0000), Some(2));
        assert_eq!(s.pending_bytes(), 0);
        let mut out = Vec::new();
        let mut deliver = |b: &[u8]| {
            out.extend_from_slice(b);
            true
        };
        let r = s.push(0x9000_0001, b"server hello", 64, usize::MAX, &mut deliver);
        assert_eq!(r.delivered, 12);
        assert!(!r.out_of_window);
        // Once bytes went out, another ISN cannot restart the stream.
        assert_eq!(s.resyn(7), None);
        assert_eq!(s.push(8, b"x", 64, usize::MAX, &mut deliver).delivered, 0);
        assert_eq!(out, b"server hello");
    }

    #[test]
    fn stops_delivering_when_consumer_says_so() {
        let mut s = Stream::default();
        s.syn(0);
        s.push(4, b"cc", 100, usize::MAX, &mut |_| true);
        s.push(3, b"b", 100, usize::MAX, &mut |_| true);
        let mut calls = 0;
        s.push(1, b"aa", 100, usize::MAX, &mut |_| {
            calls += 1;
            false
        });
        assert_eq!(calls, 1);
    }
}
