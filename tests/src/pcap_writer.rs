//! Builds capture files in memory for the tests that need traffic no real
//! peer would send (garbage payloads). Written by hand rather than with
//! pcap-parser's serializer: the classic pcap format is a 24-byte header and
//! a 16-byte header per packet, and etherparse has no TCP frame builder
//! that takes arbitrary sequence numbers and flags in one call.

use std::net::Ipv4Addr;

/// A classic pcap file (microsecond timestamps, Ethernet link type).
pub struct PcapWriter {
    bytes: Vec<u8>,
    pub packets: u64,
}

impl Default for PcapWriter {
    fn default() -> Self {
        let mut bytes = Vec::new();
        bytes.extend(0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend(2u16.to_le_bytes());
        bytes.extend(4u16.to_le_bytes());
        bytes.extend(0i32.to_le_bytes()); // thiszone
        bytes.extend(0u32.to_le_bytes()); // sigfigs
        bytes.extend(65535u32.to_le_bytes()); // snaplen
        bytes.extend(1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        PcapWriter { bytes, packets: 0 }
    }
}

impl PcapWriter {
    pub fn packet(&mut self, ts_us: u64, frame: &[u8]) {
        self.bytes
            .extend(((ts_us / 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend(((ts_us % 1_000_000) as u32).to_le_bytes());
        self.bytes.extend((frame.len() as u32).to_le_bytes());
        self.bytes.extend((frame.len() as u32).to_le_bytes());
        self.bytes.extend(frame);
        self.packets += 1;
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

pub const TCP_SYN: u8 = 0x02;
pub const TCP_ACK: u8 = 0x10;
pub const TCP_PSH: u8 = 0x08;

pub struct TcpPacket<'a> {
    pub src: (Ipv4Addr, u16),
    pub dst: (Ipv4Addr, u16),
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub payload: &'a [u8],
}

/// Ethernet + IPv4 (valid header checksum) + TCP (checksum left zero, as
/// with checksum offload).
pub fn ipv4_tcp_frame(p: &TcpPacket<'_>) -> Vec<u8> {
    let mut f = Vec::with_capacity(54 + p.payload.len());
    f.extend([0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00]);
    let total = (20 + 20 + p.payload.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend(total.to_be_bytes());
    ip.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
    ip.extend(p.src.0.octets());
    ip.extend(p.dst.0.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    f.extend(p.src.1.to_be_bytes());
    f.extend(p.dst.1.to_be_bytes());
    f.extend(p.seq.to_be_bytes());
    f.extend(p.ack.to_be_bytes());
    f.extend([0x50, p.flags]);
    f.extend(65535u16.to_be_bytes());
    f.extend([0, 0, 0, 0]);
    f.extend(p.payload);
    f
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing input can
/// be made again; no crate is needed for test noise.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = ipv4_tcp_frame(&TcpPacket {
            src: (Ipv4Addr::new(10, 0, 0, 1), 1),
            dst: (Ipv4Addr::new(10, 0, 0, 2), 2),
            seq: 1,
            ack: 0,
            flags: TCP_SYN,
            payload: b"abc",
        });
        // A header with its checksum filled in sums to zero.
        assert_eq!(checksum(&f[14..34]), 0);
        assert_eq!(f.len(), 14 + 20 + 20 + 3);
    }
}
