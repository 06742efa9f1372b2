use std::net::{IpAddr, SocketAddr};

/// One direction of a TCP connection, as the packet travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl FlowKey {
    pub fn new(src_ip: IpAddr, src_port: u16, dst_ip: IpAddr, dst_port: u16) -> Self {
        Self {
            src: SocketAddr::new(src_ip, src_port),
            dst: SocketAddr::new(dst_ip, dst_port),
        }
    }

    pub fn reversed(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    /// Not TCP: the kernel opened its flow with this segment (live capture
    /// only; sensor_common::FLOW_START).
    pub flow_start: bool,
}

/// A TCP segment as any capture source delivers it. The payload is borrowed:
/// most segments belong to flows nobody tracks, and copying them would cost
/// more than deciding to drop them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub flow: FlowKey,
    pub seq: u32,
    pub flags: TcpFlags,
    /// Microseconds since the Unix epoch.
    pub timestamp_us: i64,
    /// When the connection began, where the source knows it better than
    /// this segment does: live, the kernel ships no SYN, so the record
    /// that opened a flow carries its connection's SYN time (µs).
    pub conn_start_us: Option<i64>,
    pub payload: &'a [u8],
}
