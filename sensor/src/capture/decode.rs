//! Link layer → IP → TCP, through etherparse's lax slicers so that truncated
//! captures still yield the bytes they hold.

use std::net::IpAddr;

use etherparse::{
    EtherType, IpNumber, LaxIpv4Slice, LaxIpv6Slice, LaxNetSlice, LaxSlicedPacket, TcpSlice,
    TransportSlice,
};

use super::{FlowKey, Segment, TcpFlags};

/// Link types of pcap and pcapng (tcpdump.org/linktypes.html).
pub mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
    /// OpenBSD-style raw IP, as some tools write it.
    pub const RAW_OLD: i32 = 12;
}

/// Why a packet yielded no TCP segment. Each is counted, none is fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    UnsupportedLinkType,
    Malformed,
    NotIp,
    NotTcp,
    Fragment,
}

impl Skip {
    pub const COUNT: usize = 5;

    pub fn name(self) -> &'static str {
        match self {
            Skip::UnsupportedLinkType => "unsupported_link_type",
            Skip::Malformed => "malformed_packet",
            Skip::NotIp => "not_ip",
            Skip::NotTcp => "not_tcp",
            Skip::Fragment => "ip_fragment",
        }
    }
}

/// Decodes one captured frame of the given link type.
pub fn decode(linktype: i32, frame: &[u8], timestamp_us: i64) -> Result<Segment<'_>, Skip> {
    match decode_common(linktype, frame, timestamp_us) {
        Some(seg) => Ok(seg),
        None => decode_general(linktype, frame, timestamp_us),
    }
}

/// The IP packet behind a link header, for the link types whose header has
/// a fixed size and no VLAN tags; None for everything else.
fn ip_of(linktype: i32, frame: &[u8]) -> Option<&[u8]> {
    let ip_ethertype = |t: &[u8]| matches!(t, [0x08, 0x00] | [0x86, 0xdd]);
    match linktype {
        linktype::ETHERNET => ip_ethertype(frame.get(12..14)?).then(|| &frame[14..]),
        linktype::RAW | linktype::RAW_OLD | linktype::IPV4 | linktype::IPV6 => Some(frame),
        linktype::NULL | linktype::LOOP => frame.get(4..),
        linktype::LINUX_SLL => ip_ethertype(frame.get(14..16)?).then(|| &frame[16..]),
        linktype::LINUX_SLL2 => ip_ethertype(frame.get(0..2)?).then(|| frame.get(20..))?,
        _ => None,
    }
}

/// The common case — no VLAN tag, IP without fragmentation, a whole TCP
/// header — decoded with etherparse's IP and TCP slicers alone. Building a
/// whole `LaxSlicedPacket` moves a struct of several hundred bytes around
/// for every frame, which was a tenth of `sensor analyze`'s time. Anything
/// else (including every error) is left to [`decode_general`], so both give
/// the same answer for every frame this one accepts.
#[inline(always)]
fn decode_common(linktype: i32, frame: &[u8], timestamp_us: i64) -> Option<Segment<'_>> {
    let ip = ip_of(linktype, frame)?;
    // The version's own slicer rather than `LaxIpSlice`: its enum, sized
    // for IPv6's extension headers, is moved through the stack in pieces
    // and read back whole, a store-forwarding stall on every frame.
    let (src, dst, payload) = match ip.first()? >> 4 {
        4 => {
            let (v4, None) = LaxIpv4Slice::from_slice(ip).ok()? else {
                return None;
            };
            let h = v4.header();
            let src = h.source_addr().into();
            (src, h.destination_addr().into(), v4.payload().clone())
        }
        6 => {
            let (v6, None) = LaxIpv6Slice::from_slice(ip).ok()? else {
                return None;
            };
            let h = v6.header();
            let src = h.source_addr().into();
            (src, h.destination_addr().into(), v6.payload().clone())
        }
        _ => return None,
    };
    if payload.fragmented || payload.ip_number != IpNumber::TCP {
        return None;
    }
    let tcp = TcpSlice::from_slice(payload.payload).ok()?;
    Some(segment(src, dst, tcp, timestamp_us))
}

/// Every link type, VLAN tags, truncation and damage, via `LaxSlicedPacket`.
/// Public so that the fuzz target can hold [`decode`] to it.
pub fn decode_general(linktype: i32, frame: &[u8], timestamp_us: i64) -> Result<Segment<'_>, Skip> {
    let sliced = match linktype {
        linktype::ETHERNET => LaxSlicedPacket::from_ethernet(frame).map_err(|_| Skip::Malformed)?,
        linktype::RAW | linktype::RAW_OLD | linktype::IPV4 | linktype::IPV6 => {
            LaxSlicedPacket::from_ip(frame).map_err(|_| Skip::Malformed)?
        }
        // The 4-byte address family is in host order (NULL) or network order
        // (LOOP); the IP version nibble says the same thing portably.
        linktype::NULL | linktype::LOOP => {
            let ip = frame.get(4..).ok_or(Skip::Malformed)?;
            LaxSlicedPacket::from_ip(ip).map_err(|_| Skip::Malformed)?
        }
        linktype::LINUX_SLL => {
            let proto = frame.get(14..16).ok_or(Skip::Malformed)?;
            let rest = frame.get(16..).ok_or(Skip::Malformed)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([proto[0], proto[1]])),
                rest,
            )
        }
        linktype::LINUX_SLL2 => {
            let proto = frame.get(0..2).ok_or(Skip::Malformed)?;
            let rest = frame.get(20..).ok_or(Skip::Malformed)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([proto[0], proto[1]])),
                rest,
            )
        }
        _ => return Err(Skip::UnsupportedLinkType),
    };
    let (src, dst, fragmented) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(v4)) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
            v4.payload().fragmented,
        ),
        Some(LaxNetSlice::Ipv6(v6)) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
            v6.payload().fragmented,
        ),
        _ => return Err(Skip::NotIp),
    };
    if fragmented {
        return Err(Skip::Fragment);
    }
    match sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => Ok(segment(src, dst, tcp, timestamp_us)),
        Some(_) => Err(Skip::NotTcp),
        None => {
            if sliced.stop_err.is_some() {
                Err(Skip::Malformed)
            } else {
                Err(Skip::NotTcp)
            }
        }
    }
}

/// Both decoders end here, so they cannot disagree on what a segment holds.
/// Inlined: a segment built in a frame of its own and copied out is read
/// back whole after its flags were written byte by byte, which stalls.
#[inline(always)]
fn segment<'a>(src: IpAddr, dst: IpAddr, tcp: TcpSlice<'a>, timestamp_us: i64) -> Segment<'a> {
    Segment {
        flow: FlowKey::new(src, tcp.source_port(), dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        flags: TcpFlags {
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            flow_start: false,
        },
        timestamp_us,
        conn_start_us: None,
        payload: tcp.payload(),
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    fn eth_v4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .tcp(40000, 443, 1234, 1000)
            .syn();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    fn eth_v6(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([1; 6], [2; 6])
            .ipv6([0x20; 16], [0x21; 16], 64)
            .tcp(40000, 443, 99, 1000)
            .ack(7)
            .fin();
        let mut out = Vec::new();
        b.write(&mut out, payload).unwrap();
        out
    }

    /// Whatever the common path accepts, the general one decodes the same.
    fn same(linktype: i32, frame: &[u8]) -> Result<Segment<'_>, Skip> {
        let general = decode_general(linktype, frame, 5);
        if let Some(common) = decode_common(linktype, frame, 5) {
            assert_eq!(Ok(common), general);
        }
        assert_eq!(decode(linktype, frame, 5), general);
        general
    }

    #[test]
    fn common_path_agrees_with_the_general_one() {
        let v4 = eth_v4(b"hello");
        let seg = same(linktype::ETHERNET, &v4).unwrap();
        assert!(decode_common(linktype::ETHERNET, &v4, 5).is_some());
        assert_eq!(seg.payload, b"hello");
        assert_eq!(seg.seq, 1234);
        assert!(seg.flags.syn && !seg.flags.ack);
        let v6 = eth_v6(b"world!");
        let seg = same(linktype::ETHERNET, &v6).unwrap();
        assert_eq!(seg.payload, b"world!");
        assert!(seg.flags.fin && seg.flags.ack);
        // Raw IP, loopback and Linux cooked headers in front of the same packet.
        same(linktype::RAW, &v4[14..]).unwrap();
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&v4[14..]);
        same(linktype::NULL, &null).unwrap();
        let mut sll = vec![0; 14];
        sll.extend_from_slice(&[0x86, 0xdd]);
        sll.extend_from_slice(&v6[14..]);
        same(linktype::LINUX_SLL, &sll).unwrap();
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&v4[14..]);
        same(linktype::LINUX_SLL2, &sll2).unwrap();
        // Ethernet padding after a short packet is not payload.
        let mut padded = eth_v4(b"");
        padded.resize(60, 0);
        assert_eq!(same(linktype::ETHERNET, &padded).unwrap().payload, b"");
    }

    #[test]
    fn everything_unusual_goes_the_general_way() {
        let v4 = eth_v4(b"hello");
        // Truncated by the snap length: the general path keeps what is there.
        let cut = &v4[..v4.len() - 2];
        assert_eq!(same(linktype::ETHERNET, cut).unwrap().payload, b"hel");
        // A TCP header cut short.
        assert_eq!(same(linktype::ETHERNET, &v4[..40]), Err(Skip::Malformed));
        // A VLAN tag.
        let mut vlan = v4[..12].to_vec();
        vlan.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        vlan.extend_from_slice(&v4[12..]);
        assert!(decode_common(linktype::ETHERNET, &vlan, 5).is_none());
        assert_eq!(same(linktype::ETHERNET, &vlan).unwrap().payload, b"hello");
        // A fragment (more-fragments flag set).
        let mut frag = v4.clone();
        frag[14 + 6] |= 0x20;
        assert_eq!(same(linktype::ETHERNET, &frag), Err(Skip::Fragment));
        // Not IP, not TCP, unknown link type.
        let mut arp = v4.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(same(linktype::ETHERNET, &arp), Err(Skip::NotIp));
        let mut udp = v4.clone();
        udp[14 + 9] = 17;
        assert!(same(linktype::ETHERNET, &udp).is_err());
        assert_eq!(same(147, &v4), Err(Skip::UnsupportedLinkType));
        for n in 0..v4.len() {
            let _ = same(linktype::ETHERNET, &v4[..n]);
        }
        // Every header byte of either family damaged: whatever the common
        // path still accepts, the general one decodes the same.
        for frame in [eth_v4(b"hello"), eth_v6(b"world!")] {
            for at in 12..frame.len() {
                for value in [0x00, 0x01, 0x0f, 0x45, 0x60, 0x80, 0xff] {
                    let mut bad = frame.clone();
                    bad[at] = value;
                    let _ = same(linktype::ETHERNET, &bad);
                }
            }
        }
    }
}
