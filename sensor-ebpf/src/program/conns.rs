//! Connection accounting: every TCP connection in CONNS4 or CONNS6
//! (sensor_common::ConnState) from its SYN, or from its first payload when
//! it was open before the sensor, to its end. Bytes and packets are counted
//! with plain adds on the CPU that made the entry and atomic adds on any
//! other (two CPUs may carry one connection at once), never
//! shipped except an upgrade preamble's (`preamble`); an ended connection
//! is summarised into the ring buffer.

use core::mem::MaybeUninit;

use aya_ebpf::bindings::{BPF_F_NO_PREALLOC, BPF_NOEXIST};
use aya_ebpf::helpers::generated::{bpf_get_smp_processor_id, bpf_ktime_get_ns};
use aya_ebpf::macros::map;
use aya_ebpf::maps::HashMap;
use aya_ebpf::programs::TcContext;
use sensor_common::{
    CONN_ENDED, CONN_PARTIAL, CONN_PENDING, CONN_PLAIN, CONN_PREAMBLE, CONN_SUMMARY_LEN, CONN_TLS,
    CONN_TLS_COUNTING, ConnKey4, ConnState, Counter, DEFAULT_CONN_ENTRIES, END_FIN, END_NONE,
    END_RST, EVENT_CONN_SUMMARY, EVENT_HEADER_LEN, FAMILY_V4, FlowKey, TCP_FIN, TCP_RST,
};

use super::count;
use super::flows::{EEXIST, GATE, atomic_add, flow_key, gate_add, slot, words_into};
use super::parse::{Packet, looks_tls, opens_flow};
use super::preamble::{Step, opens_preamble, preamble};
use super::ship::{SCRATCH, Scratch, output};

/// Every counted connection, by family. Plain hashes, not LRUs: when one
/// is full, new connections are counted as untracked rather than evicting
/// others. Behind the same gate as FLOWS: a packet of a slot with neither
/// costs no lookup. IPv4's key is 12 bytes (sensor_common::ConnKey4): the
/// lookup hashes and compares the key of every counted packet. IPv6's
/// entries are allocated as they come, so a cluster without IPv6 pays no
/// memory for them.
#[map]
pub(super) static CONNS4: HashMap<ConnKey4, ConnState> =
    HashMap::with_max_entries(DEFAULT_CONN_ENTRIES, 0);

#[map]
pub(super) static CONNS6: HashMap<FlowKey, ConnState> =
    HashMap::with_max_entries(DEFAULT_CONN_ENTRIES, BPF_F_NO_PREALLOC);

/// The counted connection of `key`, if any.
#[inline(always)]
pub(super) fn conn(key: &FlowKey) -> Option<*mut ConnState> {
    if key.family == FAMILY_V4 {
        CONNS4.get_ptr_mut(&ConnKey4::of(key))
    } else {
        CONNS6.get_ptr_mut(key)
    }
}

/// What the packet path does after a connection counted a packet.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Nothing more: counted (or a duplicate, or ended).
    Done,
    /// A ClientHello, its first payload or one after an upgrade preamble:
    /// open the handshake flow. `start`: this packet is the first that
    /// user space gets of the connection (FLOW_START); not so after a
    /// preamble, whose packets it already has.
    OpenHandshake { start: bool },
    /// A packet of an upgrade preamble: ship it (no FLOWS entry), with
    /// FLOW_START when `start`.
    Preamble { start: bool },
    /// Its handshake may still be in FLOWS: look it up and ship.
    Handshake,
}

/// A fresh entry: `client` 0 (`lo`) or 1 (`hi`), `phase`, `flags`.
#[inline(always)]
fn insert(key: &FlowKey, gate: Option<*mut u64>, client: u8, phase: u8, flags: u8) -> i32 {
    let now = unsafe { bpf_ktime_get_ns() };
    let [o0, o1, o2, o3] = cpu().to_le_bytes();
    // bytes[2], packets[2], shared_bytes[2], shared_packets[2], last_seq[2],
    // last_len[2] and last_at[2], opened_ns, last_ns, then owner, client,
    // phase, fin[2] in one word, flags, end and padding in the last
    // (little-endian BPF).
    let mut fresh = MaybeUninit::<ConnState>::uninit();
    let who = u64::from_le_bytes([o0, o1, o2, o3, client, phase, 0, 0]);
    let last = u64::from_le_bytes([flags, END_NONE, 0, 0, 0, 0, 0, 0]);
    let fresh = words_into(
        &mut fresh,
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, now, now, who, last],
    );
    // Raised before the insert: a packet on another CPU that finds the
    // connection in the map must not find its slot at zero.
    gate_add(gate, 1);
    let inserted = if key.family == FAMILY_V4 {
        CONNS4.insert(&ConnKey4::of(key), fresh, BPF_NOEXIST as u64)
    } else {
        CONNS6.insert(key, fresh, BPF_NOEXIST as u64)
    };
    match inserted {
        Ok(()) => 0,
        Err(e) => {
            gate_add(gate, u64::MAX);
            e
        }
    }
}

/// The CPU this program runs on (it cannot migrate while it runs).
#[inline(always)]
fn cpu() -> u32 {
    unsafe { bpf_get_smp_processor_id() }
}

/// A client's SYN: the connection is counted from here. Only SYNs pay
/// for this, once per connection; a retransmitted or twice-seen SYN finds
/// its entry there.
#[inline(always)]
pub(super) fn open_conn(pkt: &Packet) {
    let gate = GATE.get_ptr_mut(slot(pkt));
    let (key, dir) = flow_key(pkt);
    match insert(&key, gate, dir as u8, CONN_PENDING, 0) {
        0 => count(Counter::ConnsOpened, 1),
        e if e == -EEXIST => {}
        _ => count(Counter::Untracked, 1),
    }
}

/// A payload segment of no counted connection (open before the sensor
/// started, or refused at its SYN by a full map): counted from here on,
/// `partial`. Segments that end a connection are not picked up: they are
/// the twice-seen last segments of a connection that just ended.
/// Returns the entry and the segment's direction.
#[inline(always)]
pub(super) fn pick_up(
    ctx: &TcContext,
    pkt: &Packet,
    hello: bool,
    gate: Option<*mut u64>,
) -> Option<(FlowKey, usize, *mut ConnState)> {
    if pkt.payload_len == 0 || pkt.flags & (TCP_FIN | TCP_RST) != 0 {
        return None;
    }
    let (key, dir) = flow_key(pkt);
    // Without its SYN the client is a guess: the side with the higher
    // port (ephemeral ports are the higher ones), as `sensor analyze`
    // guesses; `hi` has the higher port.
    let client = 1u8;
    let phase = if hello {
        CONN_TLS
    } else if looks_tls(ctx, pkt) {
        CONN_TLS_COUNTING
    } else {
        CONN_PLAIN
    };
    match insert(&key, gate, client, phase, CONN_PARTIAL) {
        0 => count(Counter::PartialOpened, 1),
        e if e == -EEXIST => {}
        _ => {
            count(Counter::PartialMapFull, 1);
            return None;
        }
    }
    let c = conn(&key)?;
    Some((key, dir, c))
}

/// A packet of a connection in CONNS: counted once however often it is
/// seen; its first payload decides the phase; RST or the second FIN ends
/// it (summary, entry removed).
#[inline(always)]
pub(super) fn account(
    ctx: &TcContext,
    pkt: &Packet,
    key: &FlowKey,
    dir: usize,
    c: *mut ConnState,
    gate: Option<*mut u64>,
    direction: u8,
) -> Next {
    let s = unsafe { &mut *c };
    let len = pkt.payload_len as u32;
    let at = unsafe { (*ctx.skb.skb).ifindex } << 1 | direction as u32;
    let mut next = Next::Done;
    if s.phase == CONN_PENDING {
        if len == 0 {
            // Closed before a byte was sent: nothing to report.
            drop_conn(key, gate);
            return Next::Done;
        }
        if opens_flow(ctx, pkt) {
            s.phase = CONN_TLS;
            count(Counter::TlsFlows, 1);
            next = Next::OpenHandshake { start: true };
        } else if opens_preamble(ctx, pkt) {
            s.phase = CONN_PREAMBLE;
            count(Counter::PreambleFlows, 1);
            next = Next::Preamble { start: true };
        } else {
            s.phase = CONN_PLAIN;
            count(Counter::PlainFlows, 1);
        }
    } else if len > 0
        && s.last_seq[dir] == pkt.seq
        && s.last_len[dir] == len
        && s.last_at[dir] != at
    {
        // The segment just counted, seen at another place: the other end
        // of a veth pair, or loopback's other direction.
        count(Counter::Duplicates, 1);
        return Next::Done;
    } else if s.phase == CONN_TLS {
        next = Next::Handshake;
    } else if s.phase == CONN_PREAMBLE {
        next = match preamble(ctx, pkt, s) {
            Step::Ship => Next::Preamble { start: false },
            Step::Tls => Next::OpenHandshake { start: false },
            Step::Plain => Next::Done,
        };
    }
    if len > 0 {
        s.last_seq[dir] = pkt.seq;
        s.last_len[dir] = len;
        s.last_at[dir] = at;
        if s.owner == cpu() {
            s.bytes[dir] += len as u64;
            s.packets[dir] += 1;
        } else {
            atomic_add(&mut s.shared_bytes[dir], len as u64);
            atomic_add(&mut s.shared_packets[dir], 1);
        }
    }
    s.last_ns = crate::clock::last_seen_ns();
    if pkt.flags & TCP_FIN != 0 {
        s.fin[dir] = 1;
    }
    let end = if pkt.flags & TCP_RST != 0 {
        END_RST
    } else if s.fin[0] != 0 && s.fin[1] != 0 {
        END_FIN
    } else {
        END_NONE
    };
    if end != END_NONE && s.flags & CONN_ENDED == 0 {
        s.end = end;
        s.flags |= CONN_ENDED;
        summarise(ctx, key, s, direction);
        drop_conn(key, gate);
    }
    next
}

/// The handshake flow of a `CONN_TLS` connection is gone from FLOWS (user
/// space saw the handshake end): its packets skip that lookup from now on.
#[inline(always)]
pub(super) fn handshake_done(c: *mut ConnState) {
    unsafe { (*c).phase = CONN_TLS_COUNTING };
}

/// Removes a CONNS entry; only the remover (kernel or user space) takes it
/// off its gate slot.
#[inline(always)]
fn drop_conn(key: &FlowKey, gate: Option<*mut u64>) {
    let removed = if key.family == FAMILY_V4 {
        CONNS4.remove(&ConnKey4::of(key))
    } else {
        CONNS6.remove(key)
    };
    if removed.is_ok() {
        gate_add(gate, u64::MAX);
    }
}

/// One `EVENT_CONN_SUMMARY` record for a connection that ended.
#[inline(always)]
fn summarise(ctx: &TcContext, key: &FlowKey, s: &ConnState, direction: u8) {
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let sc = unsafe { &mut *sc };
    let c = (s.client & 1) as usize;
    let h = &mut sc.header;
    let (client, server, cport, sport) = if c == 0 {
        (&key.lo_addr, &key.hi_addr, key.lo_port, key.hi_port)
    } else {
        (&key.hi_addr, &key.lo_addr, key.hi_port, key.lo_port)
    };
    // Word by word: array assignments become memmove calls.
    for i in 0..4 {
        h.saddr[i] = client[i];
        h.daddr[i] = server[i];
    }
    h.sport = cport;
    h.dport = sport;
    h.ts_ns = unsafe { bpf_ktime_get_ns() };
    h.seq = 0;
    h.ifindex = unsafe { (*ctx.skb.skb).ifindex };
    h.len = CONN_SUMMARY_LEN as u16;
    h.tcp_flags = 0;
    h.family = key.family;
    h.direction = direction;
    h.kind = EVENT_CONN_SUMMARY;
    h.opened_ns = s.opened_ns;
    let tail = u64::from_le_bytes([s.phase, s.flags, s.end, 0, 0, 0, 0, 0]);
    // SAFETY: data is MAX_CHUNK bytes, far more than a ConnSummary; one
    // word at a time, for the same reason as the addresses.
    unsafe {
        let d = sc.data.as_mut_ptr() as *mut u64;
        core::ptr::write_unaligned(d, s.bytes_of(c));
        core::ptr::write_unaligned(d.add(1), s.bytes_of(c ^ 1));
        core::ptr::write_unaligned(d.add(2), s.packets_of(c));
        core::ptr::write_unaligned(d.add(3), s.packets_of(c ^ 1));
        core::ptr::write_unaligned(d.add(4), s.opened_ns);
        core::ptr::write_unaligned(d.add(5), tail);
    }
    if output(
        sc as *mut Scratch as *mut _,
        (EVENT_HEADER_LEN + CONN_SUMMARY_LEN) as u64,
        0,
    ) {
        count(Counter::ConnSummaries, 1);
    }
}
