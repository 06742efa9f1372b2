//! Link layer → IP → TCP, through etherparse's lax slicer so that truncated
//! captures still yield the bytes they hold.

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

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
        Some(TransportSlice::Tcp(tcp)) => Ok(Segment {
            flow: FlowKey::new(src, tcp.source_port(), dst, tcp.destination_port()),
            seq: tcp.sequence_number(),
            flags: TcpFlags {
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
            },
            timestamp_us,
            payload: tcp.payload(),
        }),
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
