//! The TC classifiers and the per-packet path through the concerns:
//! `parse` (headers), `flows` (the handshake flow map and its gate),
//! `conns` (every connection's counts), `preamble` (upgrade preambles kept
//! shipping), `ship` (payload into the ring buffer; how a
//! payload's chunks are walked is the crate root's `chunks`). Every
//! helper is `#[inline(always)]`: one program per entry point, no
//! BPF-to-BPF calls on the per-packet path.

mod conns;
mod flows;
mod parse;
mod preamble;
pub(crate) mod ship;

use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::PerCpuArray;
use aya_ebpf::programs::TcContext;
use sensor_common::{COUNTERS, Counter, FlowKey, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

use conns::{Next, account, conn, handshake_done, open_conn, pick_up};
use flows::{FLOWS, GATE, advance, flow_key, open_flow, slot};
use parse::{Packet, opens_flow, parse};
use ship::ship;

pub(crate) const TC_ACT_UNSPEC: i32 = -1;

#[map]
static COUNTS: PerCpuArray<[u64; COUNTERS]> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn count(c: Counter, n: u64) {
    if let Some(p) = COUNTS.get_ptr_mut(0) {
        // Per-CPU: no other writer.
        unsafe { (*p)[c as usize] += n };
    }
}

#[classifier]
pub fn tls_tc_eth(ctx: TcContext) -> i32 {
    let _ = observe(&ctx, true, 0);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn tls_tc_eth_egress(ctx: TcContext) -> i32 {
    let _ = observe(&ctx, true, 1);
    TC_ACT_UNSPEC
}

/// For devices without a link-layer header (tun, WireGuard, some CNIs).
#[classifier]
pub fn tls_tc_l3(ctx: TcContext) -> i32 {
    let _ = observe(&ctx, false, 0);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn tls_tc_l3_egress(ctx: TcContext) -> i32 {
    let _ = observe(&ctx, false, 1);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn observe(ctx: &TcContext, ethernet: bool, direction: u8) -> Option<()> {
    count(Counter::Packets, 1);
    let pkt = parse(ctx, ethernet)?;
    if pkt.payload_len == 0 && pkt.flags & (TCP_FIN | TCP_RST) == 0 {
        if pkt.flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
            open_conn(&pkt);
        }
        return None;
    }
    let gate = GATE.get_ptr_mut(slot(&pkt));
    // No connection nor handshake in this packet's slot: no lookup needed.
    let maybe_open = match gate {
        Some(g) => unsafe { core::ptr::read_volatile(g) != 0 },
        None => true,
    };
    if !maybe_open {
        return adopt(ctx, &pkt, gate, direction);
    }
    // The key is built only past this point: most packets never need it.
    let (key, dir) = flow_key(&pkt);
    let next = match conn(&key) {
        Some(c) => match account(ctx, &pkt, &key, dir, c, gate, direction) {
            Next::Done => return None,
            Next::OpenHandshake { start } => {
                let opened = unsafe { (*c).opened_ns };
                return open_and_ship(ctx, &pkt, &key, dir, gate, direction, start, opened);
            }
            Next::Preamble { start } => {
                let opened = unsafe { (*c).opened_ns };
                ship(ctx, &pkt, pkt.payload_len, direction, start, opened);
                return Some(());
            }
            Next::Handshake => Some(c),
        },
        // A handshake whose connection is not counted (the map was full
        // at its SYN), or a slot shared with other flows.
        None => None,
    };
    match FLOWS.get_ptr_mut(&key) {
        Some(state) => {
            let len = advance(unsafe { &mut *state }, &pkt, dir)?;
            ship(ctx, &pkt, len as usize, direction, false, 0);
            Some(())
        }
        None => match next {
            Some(c) => {
                handshake_done(c);
                None
            }
            None => adopt(ctx, &pkt, gate, direction),
        },
    }
}

/// A payload packet of no counted connection: counted from here on
/// (`partial`); a ClientHello also opens its handshake flow.
#[inline(always)]
fn adopt(ctx: &TcContext, pkt: &Packet, gate: Option<*mut u64>, direction: u8) -> Option<()> {
    let hello = opens_flow(ctx, pkt);
    let picked = pick_up(ctx, pkt, hello, gate);
    let mut opened = 0;
    if let Some((key, dir, c)) = picked {
        opened = unsafe { (*c).opened_ns };
        account(ctx, pkt, &key, dir, c, gate, direction);
    }
    if !hello {
        return None;
    }
    let (key, dir) = flow_key(pkt);
    open_and_ship(ctx, pkt, &key, dir, gate, direction, true, opened)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn open_and_ship(
    ctx: &TcContext,
    pkt: &Packet,
    key: &FlowKey,
    dir: usize,
    gate: Option<*mut u64>,
    direction: u8,
    start: bool,
    opened_ns: u64,
) -> Option<()> {
    let state = open_flow(key, gate)?;
    let len = advance(unsafe { &mut *state }, pkt, dir)?;
    // The record of the packet that opened the flow says so: user space
    // sees no SYN and may still hold an earlier connection on this 4-tuple
    // (unless an upgrade preamble of this very connection came first).
    ship(ctx, pkt, len as usize, direction, start, opened_ns);
    Some(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
