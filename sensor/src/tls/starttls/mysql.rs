//! MySQL and MariaDB: the server greets first (protocol 10 handshake);
//! a client that wants TLS answers with the short SSL request packet, its
//! capability flags carrying CLIENT_SSL, and starts TLS right after it
//! without waiting for a reply. A full login without CLIENT_SSL is
//! plaintext.

use super::dialect::{Event, Step};

const PROTOCOL_V10: u8 = 10;
const CLIENT_SSL: u32 = 0x0800;
const ERR_PACKET: u8 = 0xff;
/// A greeting or login packet is far smaller; a longer header is not MySQL.
const MAX_PACKET: usize = 4096;

/// The server's greeting: a packet of sequence 0 whose payload starts with
/// protocol version 10.
pub(super) fn opens(first: &[u8]) -> bool {
    match packet(first) {
        Some((len, seq)) => seq == 0 && len >= 20 && first.get(4) == Some(&PROTOCOL_V10),
        None => false,
    }
}

/// Payload length and sequence number of the packet header at `buf`'s start.
fn packet(buf: &[u8]) -> Option<(usize, u8)> {
    let h = buf.get(..4)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
    (len <= MAX_PACKET).then_some((len, h[3]))
}

#[derive(Debug, Default)]
pub(super) struct Mysql {
    greeted: bool,
}

impl Mysql {
    pub(super) fn step(&mut self, from_client: bool, buf: &[u8]) -> Step {
        if buf.len() < 4 {
            return Step::NeedMore;
        }
        let Some((len, seq)) = packet(buf) else {
            return Step::Bad;
        };
        if buf.len() < 4 + len {
            return Step::NeedMore;
        }
        let payload = &buf[4..4 + len];
        let took = 4 + len;
        match (from_client, self.greeted) {
            (false, false) if payload.first() == Some(&PROTOCOL_V10) => {
                self.greeted = true;
                Step::Took(took, Event::None)
            }
            // Refused at the door ("host is not allowed"): no TLS.
            (false, _) if payload.first() == Some(&ERR_PACKET) => Step::Took(took, Event::Refused),
            (true, true) if seq == 1 && payload.len() >= 4 => {
                let caps = u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]);
                let event = if caps & CLIENT_SSL != 0 {
                    Event::Accepted
                } else {
                    Event::Refused
                };
                Step::Took(took, event)
            }
            _ => Step::Bad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{HELLO, play, upgraded};
    use super::super::{Outcome, Plain, Protocol};
    use super::*;

    fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(seq);
        p.extend_from_slice(payload);
        p
    }

    fn greeting() -> Vec<u8> {
        let mut g = vec![PROTOCOL_V10];
        g.extend_from_slice(b"11.8.3-MariaDB\0");
        g.extend([1, 0, 0, 0]);
        g.extend([b'x'; 8]);
        g.push(0);
        g.extend([0xfe, 0xff]);
        g.extend([0; 20]);
        pkt(0, &g)
    }

    fn login(caps: u32) -> Vec<u8> {
        let mut l = caps.to_le_bytes().to_vec();
        l.extend([0; 28]);
        pkt(1, &l)
    }

    #[test]
    fn ssl_request_then_hello_is_tls() {
        let (g, l) = (greeting(), login(0x000f_aa85 | CLIENT_SSL));
        let o = play(&[(false, &g), (true, &l), (true, HELLO)]);
        assert_eq!(upgraded(&o), Some((Protocol::Mysql, HELLO)));
        // The request and the hello in one segment.
        let both = [l.clone(), HELLO.to_vec()].concat();
        let o = play(&[(false, &g), (true, &both)]);
        assert_eq!(upgraded(&o), Some((Protocol::Mysql, HELLO)));
    }

    #[test]
    fn a_login_without_client_ssl_is_plaintext() {
        let o = play(&[(false, &greeting()), (true, &login(0x000f_a285))]);
        assert_eq!(o, Outcome::Plain(Plain::Refused));
    }

    #[test]
    fn an_error_greeting_is_plaintext() {
        let mut e = vec![ERR_PACKET, 0x6a, 0x04];
        e.extend_from_slice(b"Host is not allowed to connect");
        assert!(!opens(&pkt(0, &e)));
    }
}
