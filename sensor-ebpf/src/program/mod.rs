//! The TC classifiers and the per-packet path through the concerns:
//! `parse` (headers), `flows` (the flow map and its gate), `plaintext`
//! (plaintext accounting), `ship` (payload into the ring buffer; how a
//! payload's chunks are walked is the crate root's `chunks`). Every
//! helper is `#[inline(always)]`: one program per entry point, no
//! BPF-to-BPF calls on the per-packet path.

mod flows;
mod parse;
mod plaintext;
pub(crate) mod ship;

use aya_ebpf::macros::{classifier, map};
use aya_ebpf::maps::PerCpuArray;
use aya_ebpf::programs::TcContext;
use sensor_common::{COUNTERS, Counter, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

use flows::{FLOWS, GATE, advance, flow_key, open_flow, slot};
use parse::{opens_flow, parse};
use plaintext::{PLAIN, open_plain, plain};
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
            open_plain(&pkt);
        }
        return None;
    }
    let gate = GATE.get_ptr_mut(slot(&pkt));
    // No open flow in this packet's slot: not one of ours, no lookup needed.
    let maybe_open = match gate {
        Some(g) => unsafe { core::ptr::read_volatile(g) != 0 },
        None => true,
    };
    // The key is built only past this point: most packets never need it.
    if !maybe_open && !opens_flow(ctx, &pkt) {
        return None;
    }
    let (key, dir) = flow_key(&pkt);
    let found = if maybe_open {
        FLOWS.get_ptr_mut(&key)
    } else {
        None
    };
    let (state, start) = match found {
        Some(s) => (s, false),
        None => {
            // A closed gate has asked opens_flow already.
            if maybe_open {
                let hello = match PLAIN.get_ptr_mut(&key) {
                    Some(p) => plain(ctx, &pkt, &key, dir, p, gate, direction),
                    None => opens_flow(ctx, &pkt),
                };
                if !hello {
                    return None;
                }
            }
            (open_flow(&key, gate)?, true)
        }
    };
    let len = advance(unsafe { &mut *state }, &pkt, dir)?;
    ship(ctx, &pkt, len as usize, direction, start);
    Some(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
