//! Packet headers: Ethernet or L3-only, up to two VLAN tags, IPv4 or IPv6
//! (with extension headers), TCP; and whether a payload starts with a
//! ClientHello. Read in place where the linear area allows, through
//! bpf_skb_load_bytes where it does not.

use aya_ebpf::programs::TcContext;
use sensor_common::{
    FAMILY_V4, FAMILY_V6, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, gate_mix, gate_mix_pair,
};

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;

// The slow path reads headers with bpf_skb_load_bytes: their offsets vary
// (VLAN tags, IP options, IPv6 extension headers) and direct packet access
// at variable offsets does not survive LLVM's rewriting of the bounds checks.
#[inline(always)]
fn bytes<const N: usize>(ctx: &TcContext, off: usize) -> Option<[u8; N]> {
    ctx.load::<[u8; N]>(off).ok()
}

pub(super) struct Packet {
    pub(super) saddr: [u32; 4],
    pub(super) daddr: [u32; 4],
    pub(super) family: u8,
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) seq: u32,
    pub(super) flags: u8,
    pub(super) payload_off: usize,
    pub(super) payload_len: usize,
    /// `gate_mix` of the addresses, computed where the family is known.
    pub(super) mix: u32,
    /// Whether the payload starts with a ClientHello record, when the
    /// direct-access parse could tell from the linear area.
    hello: Hello,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hello {
    Yes,
    No,
    /// Not in the linear area: `opens_flow` reads them through the helper.
    Unknown,
}

/// A packet of no open flow opens one if its payload starts with a ClientHello.
#[inline(always)]
pub(super) fn opens_flow(ctx: &TcContext, p: &Packet) -> bool {
    p.payload_len != 0
        && match p.hello {
            Hello::Yes => true,
            Hello::No => false,
            // TLS payload is often outside the linear area: read through the helper.
            Hello::Unknown => bytes::<6>(ctx, p.payload_off).is_some_and(is_client_hello),
        }
}

/// A payload that starts like a TLS record (content type 20 to 23, version
/// 3.0 to 3.4): how a connection picked up mid-way is judged encrypted.
#[inline(always)]
pub(super) fn looks_tls(ctx: &TcContext, p: &Packet) -> bool {
    p.payload_len >= 3
        && bytes::<3>(ctx, p.payload_off)
            .is_some_and(|b| b[0] >= 20 && b[0] <= 23 && b[1] == 3 && b[2] <= 4)
}

/// A handshake record (22), version 3.x, whose first message is a
/// ClientHello (1); or the SSLv2-compatible form old clients send TLS
/// servers: a 2-byte header with the high bit set, message type 1, client
/// version 3.0-3.3 or SSL 2.0 (user space's `starts_sslv2_client_hello`).
#[inline(always)]
fn is_client_hello(b: [u8; 6]) -> bool {
    (b[0] == 22 && b[1] == 3 && b[2] <= 4 && b[5] == 1)
        || (b[0] & 0x80 != 0 && b[2] == 1 && ((b[3] == 3 && b[4] <= 3) || (b[3] == 0 && b[4] == 2)))
}

/// What the direct-access parse made of a packet.
enum Fast {
    /// Parsed: the same `Packet` the helper-based parse would have built.
    Packet(Packet),
    /// Not an unfragmented TCP segment, or one `observe` drops unread (no
    /// payload, no FIN, RST or SYN): the helper-based parse would lead there too.
    Skip,
    /// VLAN tags, IPv4 options, IPv6 extension headers, headers outside the
    /// linear area: left to the helper-based parse.
    Slow,
}

/// Reads the packet's first bytes in place: the common case (untagged
/// IPv4 without options, IPv6 without extension headers) at constant
/// offsets after a bounds check against data_end, so it costs no helper
/// call (each bpf_skb_load_bytes cost about as much as an empty program).
/// Header fields only at constant offsets: the verifier rejected variable
/// ones (IP options, extension header chains) once LLVM had rewritten
/// their bounds checks; those go the slow way.
#[inline(always)]
fn parse_direct(ctx: &TcContext, ethernet: bool) -> Fast {
    let data = ctx.data();
    let data_end = ctx.data_end();
    let l3 = if ethernet { ETH_HLEN } else { 0 };
    // The smallest IP header: anything shorter goes the slow way.
    if data + l3 + 20 > data_end {
        return Fast::Slow;
    }
    let at = |off: usize| -> u8 { unsafe { *((data + off) as *const u8) } };
    let proto = if ethernet {
        u16::from_be_bytes([at(12), at(13)])
    } else {
        u16::from_be(ctx.skb.protocol() as u16)
    };
    let skb_len = ctx.len() as usize;
    match proto {
        ETH_P_IP => {
            let frag = u16::from_be_bytes([at(l3 + 6), at(l3 + 7)]);
            let ihl = ((at(l3) & 0x0f) as usize) * 4;
            if at(l3 + 9) != IPPROTO_TCP || frag & 0x3fff != 0 || ihl < 20 {
                return Fast::Skip;
            }
            if ihl != 20 {
                return Fast::Slow;
            }
            let l4 = l3 + 20;
            if data + l4 + 14 > data_end {
                return Fast::Slow;
            }
            let tot = u16::from_be_bytes([at(l3 + 2), at(l3 + 3)]) as usize;
            let end = if tot == 0 { skb_len } else { l3 + tot };
            let Some(mut p) = tcp_direct(data, data_end, l4, end, skb_len) else {
                return Fast::Skip;
            };
            p.saddr[0] = u32::from_ne_bytes([at(l3 + 12), at(l3 + 13), at(l3 + 14), at(l3 + 15)]);
            p.daddr[0] = u32::from_ne_bytes([at(l3 + 16), at(l3 + 17), at(l3 + 18), at(l3 + 19)]);
            p.family = FAMILY_V4;
            p.mix = gate_mix([p.saddr[0] ^ p.daddr[0], 0, 0, 0]);
            Fast::Packet(p)
        }
        ETH_P_IPV6 => {
            let l4 = l3 + 40;
            if data + l4 + 14 > data_end {
                return Fast::Slow;
            }
            match at(l3 + 6) {
                IPPROTO_TCP => {}
                // Extension headers: Hop-by-Hop, Routing, Fragment, AH, Destination Options.
                0 | 43 | 44 | 51 | 60 => return Fast::Slow,
                _ => return Fast::Skip,
            }
            let plen = u16::from_be_bytes([at(l3 + 4), at(l3 + 5)]) as usize;
            let end = if plen == 0 { skb_len } else { l4 + plen };
            let Some(mut p) = tcp_direct(data, data_end, l4, end, skb_len) else {
                return Fast::Skip;
            };
            for i in 0..4 {
                let a = l3 + 8 + 4 * i;
                let b = l3 + 24 + 4 * i;
                p.saddr[i] = u32::from_ne_bytes([at(a), at(a + 1), at(a + 2), at(a + 3)]);
                p.daddr[i] = u32::from_ne_bytes([at(b), at(b + 1), at(b + 2), at(b + 3)]);
            }
            p.family = FAMILY_V6;
            p.mix = gate_mix_pair(&p.saddr, &p.daddr);
            Fast::Packet(p)
        }
        ETH_P_8021Q | ETH_P_8021AD if ethernet => Fast::Slow,
        _ => Fast::Skip,
    }
}

/// The TCP part of `parse_direct`, the header at the constant `l4` already
/// bounds-checked for 14 bytes; `end` is where the IP packet says it ends.
/// None for a segment `observe` drops unread (no payload, no FIN, RST or
/// SYN), before its addresses are read: pure ACKs are the commonest packet.
#[inline(always)]
fn tcp_direct(
    data: usize,
    data_end: usize,
    l4: usize,
    end: usize,
    skb_len: usize,
) -> Option<Packet> {
    let at = |off: usize| -> u8 { unsafe { *((data + off) as *const u8) } };
    let doff = ((at(l4 + 12) >> 4) as usize) * 4;
    let flags = tcp_flags(at(l4 + 13));
    let payload_off = l4 + doff;
    let end = if end > skb_len { skb_len } else { end };
    let payload_len = end.saturating_sub(payload_off);
    if payload_len == 0 && flags & (TCP_FIN | TCP_RST | TCP_SYN) == 0 {
        return None;
    }
    let mut p = Packet {
        saddr: [0; 4],
        daddr: [0; 4],
        family: 0,
        sport: u16::from_be_bytes([at(l4), at(l4 + 1)]),
        dport: u16::from_be_bytes([at(l4 + 2), at(l4 + 3)]),
        seq: u32::from_be_bytes([at(l4 + 4), at(l4 + 5), at(l4 + 6), at(l4 + 7)]),
        flags,
        payload_off,
        payload_len,
        mix: 0,
        hello: Hello::Unknown,
    };
    // The ClientHello test reads the payload's first bytes in place when
    // they are linear: the offset varies only by the TCP header length,
    // which the verifier knows to be at most 60.
    let start = data + payload_off;
    if start + 6 <= data_end {
        let b = |i: usize| -> u8 { unsafe { *((start + i) as *const u8) } };
        p.hello = if is_client_hello([b(0), b(1), b(2), b(3), b(4), b(5)]) {
            Hello::Yes
        } else {
            Hello::No
        };
    }
    Some(p)
}

#[inline(always)]
fn tcp_flags(f: u8) -> u8 {
    (if f & 0x02 != 0 { TCP_SYN } else { 0 })
        | (if f & 0x01 != 0 { TCP_FIN } else { 0 })
        | (if f & 0x04 != 0 { TCP_RST } else { 0 })
        | (if f & 0x10 != 0 { TCP_ACK } else { 0 })
}

#[inline(always)]
pub(super) fn parse(ctx: &TcContext, ethernet: bool) -> Option<Packet> {
    match parse_direct(ctx, ethernet) {
        Fast::Packet(p) => Some(p),
        Fast::Skip => None,
        Fast::Slow => parse_slow(ctx, ethernet),
    }
}

#[inline(always)]
fn parse_slow(ctx: &TcContext, ethernet: bool) -> Option<Packet> {
    let mut off = 0usize;
    let mut proto = u16::from_be(ctx.skb.protocol() as u16);
    if ethernet {
        // The ethertype and, when tagged in-band, up to two VLAN tags.
        let h = bytes::<10>(ctx, 12)?;
        proto = u16::from_be_bytes([h[0], h[1]]);
        off = ETH_HLEN;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            proto = u16::from_be_bytes([h[4], h[5]]);
            off += 4;
            if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
                proto = u16::from_be_bytes([h[8], h[9]]);
                off += 4;
            }
        }
    }
    let skb_len = ctx.len() as usize;
    let mut p = Packet {
        saddr: [0; 4],
        daddr: [0; 4],
        family: 0,
        sport: 0,
        dport: 0,
        seq: 0,
        flags: 0,
        payload_off: 0,
        payload_len: 0,
        mix: 0,
        hello: Hello::Unknown,
    };
    let l4;
    let end;
    match proto {
        ETH_P_IP => {
            let h = bytes::<20>(ctx, off)?;
            let ihl = ((h[0] & 0x0f) as usize) * 4;
            let tot = u16::from_be_bytes([h[2], h[3]]) as usize;
            let frag = u16::from_be_bytes([h[6], h[7]]);
            if h[9] != IPPROTO_TCP || frag & 0x3fff != 0 || ihl < 20 {
                return None;
            }
            p.saddr[0] = u32::from_ne_bytes([h[12], h[13], h[14], h[15]]);
            p.daddr[0] = u32::from_ne_bytes([h[16], h[17], h[18], h[19]]);
            p.family = FAMILY_V4;
            p.mix = gate_mix([p.saddr[0] ^ p.daddr[0], 0, 0, 0]);
            // GSO/BIG TCP packets may carry tot_len 0: the skb length rules then.
            end = if tot == 0 { skb_len } else { off + tot };
            l4 = off + ihl;
        }
        ETH_P_IPV6 => {
            let h = bytes::<40>(ctx, off)?;
            let plen = u16::from_be_bytes([h[4], h[5]]) as usize;
            let mut next = h[6];
            for i in 0..4 {
                let a = 8 + 4 * i;
                let b = 24 + 4 * i;
                p.saddr[i] = u32::from_ne_bytes([h[a], h[a + 1], h[a + 2], h[a + 3]]);
                p.daddr[i] = u32::from_ne_bytes([h[b], h[b + 1], h[b + 2], h[b + 3]]);
            }
            p.family = FAMILY_V6;
            p.mix = gate_mix_pair(&p.saddr, &p.daddr);
            // Payload length 0 with a Hop-by-Hop jumbo option: BIG TCP.
            end = if plen == 0 { skb_len } else { off + 40 + plen };
            let mut at = off + 40;
            for _ in 0..6 {
                match next {
                    // Hop-by-Hop, Routing, Destination Options
                    0 | 43 | 60 => {
                        let e = bytes::<2>(ctx, at)?;
                        next = e[0];
                        at += (e[1] as usize + 1) * 8;
                    }
                    // Fragment: only the first fragment carries the TCP header; skip all.
                    44 => return None,
                    // Authentication Header
                    51 => {
                        let e = bytes::<2>(ctx, at)?;
                        next = e[0];
                        at += (e[1] as usize + 2) * 4;
                    }
                    _ => break,
                }
            }
            if next != IPPROTO_TCP {
                return None;
            }
            l4 = at;
        }
        _ => return None,
    }
    let t = bytes::<14>(ctx, l4)?;
    p.sport = u16::from_be_bytes([t[0], t[1]]);
    p.dport = u16::from_be_bytes([t[2], t[3]]);
    p.seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
    let doff = ((t[12] >> 4) as usize) * 4;
    p.flags = tcp_flags(t[13]);
    p.payload_off = l4 + doff;
    let end = if end > skb_len { skb_len } else { end };
    p.payload_len = end.saturating_sub(p.payload_off);
    Some(p)
}
