use foldhash::{HashMap, HashMapExt};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};

use slab::Slab;

use super::stream::Stream;
use crate::capture::Segment;
use crate::model::FlowEnd;

/// Which end of a connection: `A` sent the first packet seen, `B` the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A = 0,
    B = 1,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// What the consumer wants after seeing bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    /// Not a protocol we follow: forget the bytes, keep only the key so that
    /// later packets cost one lookup.
    Ignore,
    /// Everything wanted was seen; same as `Ignore` for the table.
    Done,
}

#[derive(Debug, Clone)]
pub struct ConnMeta {
    pub a: SocketAddr,
    pub b: SocketAddr,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
    /// TCP payload bytes seen per side, retransmissions included: flow
    /// accounting reads them once the connection is no longer followed.
    pub payload_bytes: [u64; 2],
    /// Segments carrying payload per side, retransmissions included.
    pub payload_packets: [u64; 2],
    /// Why it left the table; `None` while it is in it.
    pub end: Option<FlowEnd>,
    /// The side that sent a SYN without ACK: the client, when the capture
    /// saw the connection open.
    pub syn_from: Option<Side>,
}

impl ConnMeta {
    pub fn addr(&self, side: Side) -> SocketAddr {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }
}

/// The consumer of reassembled bytes, usually the TLS stage.
pub trait ConnHandler<S> {
    fn on_data(&mut self, state: &mut S, meta: &ConnMeta, side: Side, bytes: &[u8]) -> Control;
    /// Bytes of `side` are lost for good (gap, buffer bound).
    fn on_gap(&mut self, state: &mut S, meta: &ConnMeta, side: Side) -> Control;
    /// The connection left the table (closed, idle, evicted or end of input).
    fn on_close(&mut self, state: S, meta: ConnMeta);
}

#[derive(Debug, Clone)]
pub struct ReassemblyConfig {
    /// Connections tracked at once; new ones beyond it are not followed.
    pub max_connections: usize,
    /// Out-of-order bytes held per direction.
    pub max_pending_per_stream: usize,
    /// Out-of-order bytes held across all connections.
    pub max_pending_total: usize,
    /// Bytes delivered per direction before giving up on a handshake.
    pub max_stream_bytes: u64,
    /// A connection with no packet for this long is closed.
    pub idle_timeout_us: i64,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        Self {
            max_connections: 1 << 20,
            max_pending_per_stream: 1 << 20,
            max_pending_total: 256 << 20,
            max_stream_bytes: 4 << 20,
            idle_timeout_us: 300_000_000,
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct ReassemblyStats {
    pub segments: u64,
    pub connections: u64,
    pub duplicate_bytes: u64,
    pub gaps: u64,
    pub out_of_window: u64,
    /// Directions started over by a SYN with a new initial sequence number.
    pub resyn: u64,
    /// Connections replaced by a new one on the same 4-tuple that the
    /// kernel flagged (FLOW_START); a SYN seen on a reused 4-tuple is not
    /// counted here.
    pub reused: u64,
    pub table_full: u64,
    pub stream_budget_exhausted: u64,
    pub idle_closed: u64,
    /// Finished connections forgotten because the capture source counts
    /// their traffic from then on (live).
    pub handed_off: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Following,
    Finished,
}

struct Conn<S> {
    meta: ConnMeta,
    streams: [Stream; 2],
    syn_seq: [Option<u32>; 2],
    fin: [bool; 2],
    state: State,
    app: S,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(SocketAddr, SocketAddr);

/// One `write` of the addresses and ports (14 bytes for IPv4): the derived
/// hash feeds SipHash a dozen small pieces per key (enum tags, length
/// prefixes), which made hashing a fifth of the instructions `sensor
/// analyze` spent per packet. The hasher is foldhash, seeded per process:
/// the keys come from the network. Flow labels and scope ids are left out, which keeps the hash consistent
/// with equality.
impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut buf = [0u8; 38];
        let mut n = 0;
        for addr in [self.0, self.1] {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    buf[n] = 4;
                    buf[n + 1..n + 5].copy_from_slice(&ip.octets());
                    n += 5;
                }
                IpAddr::V6(ip) => {
                    buf[n] = 6;
                    buf[n + 1..n + 17].copy_from_slice(&ip.octets());
                    n += 17;
                }
            }
            buf[n..n + 2].copy_from_slice(&addr.port().to_be_bytes());
            n += 2;
        }
        state.write(&buf[..n]);
    }
}

impl Key {
    fn of(src: SocketAddr, dst: SocketAddr) -> Self {
        if src <= dst {
            Key(src, dst)
        } else {
            Key(dst, src)
        }
    }
}

/// All connections being followed, each with its consumer state `S`.
/// They live in a slab that the map indexes, so that the connection of the
/// previous segment can be remembered by index: consecutive segments
/// mostly belong to one connection (a bulk transfer, a handshake's
/// flights), and each lookup that the memo spares is a SipHash of the key.
pub struct ConnTable<S> {
    index: HashMap<Key, usize>,
    conns: Slab<Conn<S>>,
    /// The connection the previous segment belonged to.
    last: Option<(Key, usize)>,
    cfg: ReassemblyConfig,
    pending_total: usize,
    last_sweep_us: i64,
    /// Connections no longer followed, for a capture source that must be
    /// told (the kernel's flow map); None when nobody asks.
    finished: Option<Vec<(SocketAddr, SocketAddr)>>,
    /// Finished connections already handed to that source, forgotten at
    /// the next `take_finished` (see there).
    retiring: Vec<Key>,
    pub stats: ReassemblyStats,
}

impl<S: Default> ConnTable<S> {
    pub fn new(cfg: ReassemblyConfig) -> Self {
        Self {
            index: HashMap::new(),
            conns: Slab::new(),
            last: None,
            cfg,
            pending_total: 0,
            last_sweep_us: i64::MIN,
            finished: None,
            retiring: Vec::new(),
            stats: ReassemblyStats::default(),
        }
    }

    /// Keeps a list of connections that stopped being followed; the caller
    /// must drain it with `take_finished`.
    pub fn report_finished(&mut self) {
        self.finished.get_or_insert_with(Vec::new);
    }

    /// The connections that stopped being followed since the last call,
    /// for the source to stop shipping them. Those of the call before are
    /// closed now: the source counts their traffic itself, and a node's
    /// 100,000 open TLS connections would otherwise each keep a table
    /// entry until idle. One call later, not at once, because segments it
    /// shipped before it was told are still on their way.
    pub fn take_finished<H: ConnHandler<S>>(&mut self, h: &mut H) -> Vec<(SocketAddr, SocketAddr)> {
        for key in std::mem::take(&mut self.retiring) {
            if self
                .find(key)
                .is_some_and(|i| self.conns[i].state == State::Finished)
            {
                self.stats.handed_off += 1;
                self.close_as(key, h, FlowEnd::Idle, false);
            }
        }
        let mut finished = self
            .finished
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        // A 4-tuple that a connection still followed holds now is a newer
        // connection's (its kernel flow replaced the finished one's): the
        // kernel must not be told to forget it.
        let mut retiring = Vec::with_capacity(finished.len());
        finished.retain(|&(a, b)| {
            let key = Key::of(a, b);
            let held = self.index.get(&key);
            let newer = held.is_some_and(|&i| self.conns[i].state == State::Following);
            if !newer {
                retiring.push(key);
            }
            !newer
        });
        self.retiring = retiring;
        finished
    }

    /// Every connection in the table, with its state (flow reports).
    pub fn each(&self, mut f: impl FnMut(&S, &ConnMeta)) {
        for (_, c) in &self.conns {
            f(&c.app, &c.meta);
        }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending_total
    }

    /// The slab index of `key`'s connection.
    fn find(&mut self, key: Key) -> Option<usize> {
        if let Some((k, i)) = self.last
            && k == key
        {
            return Some(i);
        }
        let i = *self.index.get(&key)?;
        self.last = Some((key, i));
        Some(i)
    }

    pub fn ingest<H: ConnHandler<S>>(&mut self, seg: &Segment<'_>, h: &mut H) {
        self.stats.segments += 1;
        self.maybe_sweep(seg.timestamp_us, h);
        let key = Key::of(seg.flow.src, seg.flow.dst);
        // The kernel opened a flow for this 4-tuple with this segment, so
        // whatever the table holds under it is an earlier connection: the
        // kernel had stopped following that one (its handshake done, or
        // idle), or replaced its flow with this one, and it ships no SYN
        // that would say so below. Closed without asking the kernel to
        // forget the flow: that flow is the new connection's (and so
        // `take_finished` holds back a close of it not yet handed over).
        if seg.flags.flow_start && self.find(key).is_some() {
            self.stats.reused += 1;
            self.close_as(key, h, FlowEnd::Idle, false);
        }
        let fresh_syn = seg.flags.syn && !seg.flags.ack;
        if fresh_syn {
            // A new SYN on a known 4-tuple is a new connection (port reuse)
            // unless it is a retransmission of the SYN we already have.
            let reused = self.find(key).is_some_and(|i| {
                let c = &self.conns[i];
                let side = if c.meta.a == seg.flow.src {
                    Side::A
                } else {
                    Side::B
                };
                c.syn_seq[side as usize].is_some_and(|s| s != seg.seq) || c.state == State::Finished
            });
            if reused {
                // Its end was not seen; it stopped before this SYN.
                self.close(key, h, FlowEnd::Idle);
            }
        }
        let conn = match self.find(key) {
            Some(i) => &mut self.conns[i],
            None => {
                if !seg.flags.syn && seg.payload.is_empty() {
                    return;
                }
                if self.conns.len() >= self.cfg.max_connections {
                    self.stats.table_full += 1;
                    return;
                }
                self.stats.connections += 1;
                let entry = self.conns.vacant_entry();
                let i = entry.key();
                self.index.insert(key, i);
                self.last = Some((key, i));
                entry.insert(Conn {
                    meta: ConnMeta {
                        a: seg.flow.src,
                        b: seg.flow.dst,
                        first_seen_us: seg
                            .conn_start_us
                            .map_or(seg.timestamp_us, |t| t.min(seg.timestamp_us)),
                        last_seen_us: seg.timestamp_us,
                        payload_bytes: [0, 0],
                        payload_packets: [0, 0],
                        end: None,
                        syn_from: None,
                    },
                    streams: [Stream::default(), Stream::default()],
                    syn_seq: [None, None],
                    fin: [false, false],
                    state: State::Following,
                    app: S::default(),
                })
            }
        };
        conn.meta.last_seen_us = conn.meta.last_seen_us.max(seg.timestamp_us);
        let side = if conn.meta.a == seg.flow.src {
            Side::A
        } else {
            Side::B
        };
        let i = side as usize;
        conn.meta.payload_bytes[i] += seg.payload.len() as u64;
        conn.meta.payload_packets[i] += u64::from(!seg.payload.is_empty());
        if fresh_syn {
            conn.meta.syn_from.get_or_insert(side);
        }
        if seg.flags.rst {
            self.close(key, h, FlowEnd::Rst);
            return;
        }
        if seg.flags.fin {
            conn.fin[i] = true;
        }
        if conn.state == State::Following {
            let Conn {
                meta,
                streams,
                app,
                syn_seq,
                ..
            } = conn;
            let stream = &mut streams[i];
            let mut data_seq = seg.seq;
            if seg.flags.syn {
                // Payload in a SYN (TCP Fast Open) starts at ISN + 1.
                data_seq = seg.seq.wrapping_add(1);
                match syn_seq[i] {
                    None => {
                        syn_seq[i] = Some(seg.seq);
                        stream.syn(seg.seq);
                    }
                    // A SYN-ACK answering a retransmitted SYN may carry a new
                    // ISN (a fresh SYN with one was a new connection above):
                    // the direction starts over rather than dropping what
                    // follows as out of window.
                    Some(old) if old != seg.seq => {
                        if let Some(freed) = stream.resyn(seg.seq) {
                            syn_seq[i] = Some(seg.seq);
                            self.pending_total -= freed.min(self.pending_total);
                            self.stats.resyn += 1;
                        }
                    }
                    Some(_) => {}
                }
            }
            let mut control = Control::Continue;
            let budget = self.cfg.max_stream_bytes;
            let before = stream.pending_bytes();
            let room = self
                .cfg
                .max_pending_total
                .saturating_sub(self.pending_total);
            let r = stream.push(
                data_seq,
                seg.payload,
                self.cfg.max_pending_per_stream,
                room,
                &mut |bytes| {
                    control = h.on_data(app, meta, side, bytes);
                    control == Control::Continue
                },
            );
            self.pending_total =
                (self.pending_total + stream.pending_bytes()).saturating_sub(before);
            self.stats.duplicate_bytes += r.duplicate as u64;
            self.stats.out_of_window += r.out_of_window as u64;
            if r.gave_up {
                self.stats.gaps += 1;
                control = h.on_gap(app, meta, side);
            } else if control == Control::Continue && stream.delivered() > budget {
                self.stats.stream_budget_exhausted += 1;
                control = h.on_gap(app, meta, side);
            }
            if control != Control::Continue {
                conn.state = State::Finished;
                if let Some(f) = &mut self.finished {
                    f.push((conn.meta.a, conn.meta.b));
                }
                for s in &mut conn.streams {
                    self.pending_total -= s.clear().min(self.pending_total);
                }
            }
        }
        if conn.fin[0] && conn.fin[1] {
            self.close(key, h, FlowEnd::Fin);
        }
    }

    fn close<H: ConnHandler<S>>(&mut self, key: Key, h: &mut H, end: FlowEnd) {
        self.close_as(key, h, end, true);
    }

    /// `tell`: the capture source is to stop following it too.
    fn close_as<H: ConnHandler<S>>(&mut self, key: Key, h: &mut H, end: FlowEnd, tell: bool) {
        if let Some(i) = self.index.remove(&key) {
            if self.last.is_some_and(|(_, l)| l == i) {
                self.last = None;
            }
            let mut c = self.conns.remove(i);
            c.meta.end = Some(end);
            if tell
                && c.state == State::Following
                && let Some(f) = &mut self.finished
            {
                f.push((c.meta.a, c.meta.b));
            }
            for s in &mut c.streams {
                self.pending_total -= s.clear().min(self.pending_total);
            }
            h.on_close(c.app, c.meta);
        }
    }

    fn maybe_sweep<H: ConnHandler<S>>(&mut self, now_us: i64, h: &mut H) {
        // Sweeping walks the whole table, so do it at most every tenth of the timeout.
        if now_us.saturating_sub(self.last_sweep_us) < self.cfg.idle_timeout_us / 10 {
            return;
        }
        self.last_sweep_us = now_us;
        let deadline = now_us.saturating_sub(self.cfg.idle_timeout_us);
        let idle: Vec<Key> = self
            .index
            .iter()
            .filter(|(_, i)| self.conns[**i].meta.last_seen_us < deadline)
            .map(|(k, _)| *k)
            .collect();
        self.stats.idle_closed += idle.len() as u64;
        for k in idle {
            self.close(k, h, FlowEnd::Idle);
        }
    }

    /// Closes every connection, oldest first (end of input, shutdown).
    pub fn flush<H: ConnHandler<S>>(&mut self, h: &mut H) {
        let mut all: Vec<(i64, Key)> = self
            .index
            .iter()
            .map(|(k, i)| (self.conns[*i].meta.first_seen_us, *k))
            .collect();
        all.sort_by_key(|(t, _)| *t);
        for (_, k) in all {
            self.close(k, h, FlowEnd::Shutdown);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;

    use super::*;

    use crate::capture::{FlowKey, TcpFlags};

    /// Collects the bytes delivered per side.
    #[derive(Default)]
    struct Collect {
        bytes: [Vec<u8>; 2],
        closed: usize,
        /// Everything wanted is seen at the first bytes.
        done: bool,
    }

    impl ConnHandler<()> for Collect {
        fn on_data(&mut self, _: &mut (), _: &ConnMeta, side: Side, b: &[u8]) -> Control {
            self.bytes[side as usize].extend_from_slice(b);
            if self.done {
                Control::Done
            } else {
                Control::Continue
            }
        }
        fn on_gap(&mut self, _: &mut (), _: &ConnMeta, _: Side) -> Control {
            Control::Continue
        }
        fn on_close(&mut self, _: (), _: ConnMeta) {
            self.closed += 1;
        }
    }

    const CLIENT: &str = "192.0.2.1:40000";
    const SERVER: &str = "192.0.2.2:443";

    fn flags(syn: bool, ack: bool) -> TcpFlags {
        TcpFlags {
            syn,
            ack,
            ..Default::default()
        }
    }

    fn feed(t: &mut ConnTable<()>, h: &mut Collect, segs: &[(bool, u32, TcpFlags, &[u8])]) {
        let (c, s): (SocketAddr, SocketAddr) = (CLIENT.parse().unwrap(), SERVER.parse().unwrap());
        for (n, (from_client, seq, flags, payload)) in segs.iter().enumerate() {
            let (src, dst) = if *from_client { (c, s) } else { (s, c) };
            t.ingest(
                &Segment {
                    flow: FlowKey { src, dst },
                    seq: *seq,
                    flags: *flags,
                    timestamp_us: n as i64,
                    conn_start_us: None,
                    payload,
                },
                h,
            );
        }
    }

    /// A table as the live capture uses it (finished connections handed
    /// to the kernel), and the flags of a segment that opened a kernel flow.
    fn live(done: bool) -> (ConnTable<()>, Collect, TcpFlags) {
        let mut t = ConnTable::new(ReassemblyConfig::default());
        t.report_finished();
        let h = Collect {
            done,
            ..Default::default()
        };
        let start = TcpFlags {
            ack: true,
            flow_start: true,
            ..Default::default()
        };
        (t, h, start)
    }

    #[test]
    fn payload_of_a_syn_is_delivered_once() {
        // TCP Fast Open: the ClientHello rides in the SYN; the server acks
        // only the SYN (no cookie yet) and the client sends it again.
        let (mut t, mut h) = (
            ConnTable::new(ReassemblyConfig::default()),
            Collect::default(),
        );
        feed(
            &mut t,
            &mut h,
            &[
                (true, 100, flags(true, false), b"hello"),
                (false, 7000, flags(true, true), b""),
                (true, 101, flags(false, true), b"hello"),
                (false, 7001, flags(false, true), b"welcome"),
                (true, 106, flags(false, true), b" again"),
            ],
        );
        assert_eq!(h.bytes[0], b"hello again");
        assert_eq!(h.bytes[1], b"welcome");
        assert_eq!(t.stats.duplicate_bytes, 5);
        assert_eq!(t.stats.connections, 1);
    }

    #[test]
    fn a_syn_ack_with_a_new_isn_rebases_the_server_side() {
        // The first SYN-ACK is lost on the way to the client, which
        // retransmits its SYN (same ISN, data included); the server's
        // answer carries a new ISN, and its hello follows that one.
        let (mut t, mut h) = (
            ConnTable::new(ReassemblyConfig::default()),
            Collect::default(),
        );
        feed(
            &mut t,
            &mut h,
            &[
                (true, 100, flags(true, false), b"hello"),
                (false, 7000, flags(true, true), b""),
                (false, 7001 + 3, flags(false, true), b"old"),
                (true, 100, flags(true, false), b"hello"),
                (false, 0x8000_0000, flags(true, true), b""),
                (false, 0x8000_0001, flags(false, true), b"server hello"),
                // The first SYN-ACK again, late: it cannot restart a
                // direction that already delivered bytes.
                (false, 7000, flags(true, true), b""),
                (false, 0x8000_000d, flags(false, true), b"!"),
            ],
        );
        assert_eq!(h.bytes[0], b"hello");
        assert_eq!(h.bytes[1], b"server hello!");
        assert_eq!(t.stats.resyn, 1);
        assert_eq!(t.stats.out_of_window, 0);
        assert_eq!(t.pending_bytes(), 0);
        assert_eq!(t.stats.connections, 1);
    }

    #[test]
    fn a_fresh_syn_with_a_new_isn_is_a_new_connection() {
        let (mut t, mut h) = (
            ConnTable::new(ReassemblyConfig::default()),
            Collect::default(),
        );
        feed(
            &mut t,
            &mut h,
            &[
                (true, 100, flags(true, false), b"first"),
                (true, 5000, flags(true, false), b"second"),
                (false, 9000, flags(true, true), b""),
                (false, 9001, flags(false, true), b"reply"),
            ],
        );
        assert_eq!(h.closed, 1);
        assert_eq!(h.bytes[0], b"firstsecond");
        assert_eq!(h.bytes[1], b"reply");
        assert_eq!(t.stats.connections, 2);
        assert_eq!(t.stats.out_of_window, 0);
    }

    #[test]
    fn a_segment_that_opened_a_kernel_flow_starts_a_new_connection() {
        // Live capture: no SYNs; the kernel flags the first segment of each
        // flow it opens. The 4-tuple comes back (source port reuse) with a
        // new sequence space while the table still holds the first one.
        let (mut t, mut h, start) = live(false);
        feed(
            &mut t,
            &mut h,
            &[
                (true, 100, start, b"first"),
                (false, 9000, flags(false, true), b"reply"),
                (true, 70_000, start, b"second"),
            ],
        );
        assert_eq!(h.closed, 1);
        assert_eq!(h.bytes[0], b"firstsecond");
        assert_eq!(t.stats.connections, 2);
        assert_eq!(t.stats.reused, 1);
        assert_eq!(t.stats.out_of_window, 0);
        // The kernel's flow is the new connection's: not to be forgotten.
        assert!(t.take_finished(&mut h).is_empty());
    }

    /// A connection finished, and before its close was handed to the
    /// kernel a new one on the same 4-tuple opened a flow (the kernel
    /// replaced the earlier flow): the close must not reach the new flow.
    #[test]
    fn a_flow_start_takes_back_the_close_of_its_4_tuple() {
        let (mut t, mut h, start) = live(true);
        feed(&mut t, &mut h, &[(true, 100, start, b"first")]);
        h.done = false;
        feed(&mut t, &mut h, &[(true, 70_000, start, b"second")]);
        assert_eq!(t.stats.reused, 1);
        assert!(t.take_finished(&mut h).is_empty());
        // The new connection, once finished, is handed over as usual.
        h.done = true;
        feed(
            &mut t,
            &mut h,
            &[(true, 70_006, flags(false, true), b"more")],
        );
        assert_eq!(t.take_finished(&mut h).len(), 1);
    }

    #[test]
    fn live_a_finished_connection_is_forgotten_one_take_later() {
        let (mut t, mut h, start) = live(true);
        feed(&mut t, &mut h, &[(true, 100, start, b"hello")]);
        assert_eq!(t.take_finished(&mut h).len(), 1);
        // Shipped before the kernel was told: it lands on the finished
        // entry, not on a new connection.
        feed(&mut t, &mut h, &[(true, 105, flags(false, true), b"late")]);
        assert_eq!((t.len(), h.closed, t.stats.connections), (1, 0, 1));
        assert!(t.take_finished(&mut h).is_empty());
        assert_eq!((t.len(), h.closed, t.stats.handed_off), (0, 1, 1));
        assert_eq!(h.bytes[0], b"hello");
    }

    #[test]
    fn key_is_the_same_both_ways_and_tells_families_apart() {
        let a: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:443".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:40000".parse().unwrap();
        let s = RandomState::new();
        assert!(Key::of(a, b) == Key::of(b, a));
        assert_eq!(s.hash_one(Key::of(a, b)), s.hash_one(Key::of(b, a)));
        assert!(Key::of(a, b) != Key::of(mapped, b));
        assert_ne!(s.hash_one(Key::of(a, b)), s.hash_one(Key::of(mapped, b)));
        let other_port: SocketAddr = "192.0.2.2:444".parse().unwrap();
        assert_ne!(
            s.hash_one(Key::of(a, b)),
            s.hash_one(Key::of(a, other_port))
        );
    }
}
