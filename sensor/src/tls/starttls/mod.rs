//! TLS that starts inside another protocol (DESIGN.md "TLS inside other
//! protocols"): a connection whose first bytes are not a ClientHello but
//! the opening of a protocol that can upgrade to TLS is followed through
//! its plaintext preamble. When the server accepts the upgrade, the
//! client's next bytes go to the TLS stage; a refusal, bytes that do not
//! fit the protocol or a preamble longer than `MAX_PREAMBLE_BYTES` make it
//! plaintext.
//!
//! Each dialect frames its own messages and says what each did
//! (`Event`); this file holds the buffering, the bound and the switch.

mod dialect;
mod ldap;
mod mysql;
mod postgres;
mod text;

use crate::reassembly::Side;

pub use dialect::Protocol;
use dialect::{Event, Step};

/// Preamble bytes examined per connection, both directions together; the
/// kernel ships as many (sensor_common::PREAMBLE_BYTES) before it calls a
/// connection plaintext. An SMTP greeting, EHLO and its capabilities and
/// STARTTLS take well under 1 KiB.
pub const MAX_PREAMBLE_BYTES: usize = sensor_common::PREAMBLE_BYTES as usize;

#[derive(Debug)]
enum Dialect {
    Postgres(postgres::Postgres),
    Mysql(mysql::Mysql),
    Text(text::Text),
    Ldap(ldap::Ldap),
}

impl Dialect {
    fn step(&mut self, from_client: bool, buf: &[u8]) -> Step {
        match self {
            Dialect::Postgres(d) => d.step(from_client, buf),
            Dialect::Mysql(d) => d.step(from_client, buf),
            Dialect::Text(d) => d.step(from_client, buf),
            Dialect::Ldap(d) => d.step(from_client, buf),
        }
    }

    fn protocol(&self) -> Protocol {
        match self {
            Dialect::Postgres(_) => Protocol::Postgres,
            Dialect::Mysql(_) => Protocol::Mysql,
            Dialect::Text(d) => d.protocol(),
            Dialect::Ldap(_) => Protocol::Ldap,
        }
    }
}

/// Why a preamble ended in plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// The server said no (or the client went on without TLS).
    Refused,
    /// Bytes that do not fit the protocol the first ones announced.
    Malformed,
    /// More than `MAX_PREAMBLE_BYTES` without an upgrade.
    TooLong,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still in the preamble.
    More,
    /// TLS starts: the bytes each side sent after the preamble so far
    /// (the client's first, which should hold its ClientHello).
    Tls {
        protocol: Protocol,
        client: Side,
        client_bytes: Vec<u8>,
        server_bytes: Vec<u8>,
    },
    Plain(Plain),
}

/// One connection's preamble.
#[derive(Debug)]
pub struct Preamble {
    dialect: Dialect,
    client: Side,
    /// Unframed bytes per side.
    buf: [Vec<u8>; 2],
    examined: usize,
    accepted: bool,
}

impl Preamble {
    /// The first payload of a connection, sent by `side`, when it opens a
    /// protocol that can upgrade to TLS.
    pub fn detect(side: Side, first: &[u8]) -> Option<Preamble> {
        let (dialect, from_client) = if postgres::opens(first) {
            (Dialect::Postgres(postgres::Postgres::default()), true)
        } else if mysql::opens(first) {
            (Dialect::Mysql(mysql::Mysql::default()), false)
        } else if ldap::opens(first) {
            (Dialect::Ldap(ldap::Ldap::default()), true)
        } else if let Some((t, from_client)) = text::opens(first) {
            (Dialect::Text(t), from_client)
        } else {
            return None;
        };
        Some(Preamble {
            dialect,
            client: if from_client { side } else { side.other() },
            buf: [Vec::new(), Vec::new()],
            examined: 0,
            accepted: false,
        })
    }

    /// The protocol as far as the preamble told (SMTP and FTP greet alike
    /// until the client speaks).
    pub fn protocol(&self) -> Protocol {
        self.dialect.protocol()
    }

    pub fn feed(&mut self, side: Side, bytes: &[u8]) -> Outcome {
        self.examined += bytes.len();
        if self.examined > MAX_PREAMBLE_BYTES {
            return Outcome::Plain(Plain::TooLong);
        }
        let i = side as usize;
        self.buf[i].extend_from_slice(bytes);
        if !self.accepted {
            let from_client = side == self.client;
            let mut at = 0;
            loop {
                match self.dialect.step(from_client, &self.buf[i][at..]) {
                    Step::NeedMore => break,
                    Step::Bad => return Outcome::Plain(Plain::Malformed),
                    Step::Took(n, event) => {
                        // A dialect that takes nothing would loop for ever.
                        if n == 0 {
                            return Outcome::Plain(Plain::Malformed);
                        }
                        at += n;
                        match event {
                            Event::None => {}
                            Event::Refused => return Outcome::Plain(Plain::Refused),
                            Event::Accepted => {
                                self.accepted = true;
                                break;
                            }
                        }
                    }
                }
            }
            self.buf[i].drain(..at);
        }
        let c = self.client as usize;
        if self.accepted && !self.buf[c].is_empty() {
            return Outcome::Tls {
                protocol: self.protocol(),
                client: self.client,
                client_bytes: std::mem::take(&mut self.buf[c]),
                server_bytes: std::mem::take(&mut self.buf[c ^ 1]),
            };
        }
        Outcome::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays a dialogue: (from the client?, bytes); returns the outcome of
    /// the last step and the preamble.
    pub(super) fn play(dialogue: &[(bool, &[u8])]) -> Outcome {
        let first_from_client = dialogue[0].0;
        let first_side = Side::A;
        let client = if first_from_client {
            first_side
        } else {
            first_side.other()
        };
        let Some(mut p) = Preamble::detect(first_side, dialogue[0].1) else {
            return Outcome::Plain(Plain::Malformed);
        };
        let mut last = Outcome::More;
        for (from_client, bytes) in dialogue {
            let side = if *from_client { client } else { client.other() };
            last = p.feed(side, bytes);
            if last != Outcome::More {
                break;
            }
        }
        last
    }

    pub(super) fn upgraded(o: &Outcome) -> Option<(Protocol, &[u8])> {
        match o {
            Outcome::Tls {
                protocol,
                client_bytes,
                ..
            } => Some((*protocol, client_bytes)),
            _ => None,
        }
    }

    pub(super) const HELLO: &[u8] = &[22, 3, 1, 0, 4, 1, 0, 0, 0];

    #[test]
    fn unknown_openings_are_not_preambles() {
        for first in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"SSH-2.0-OpenSSH_9.2\r\n",
            b"",
            &[0, 0, 0, 8],
            &[0xff; 40],
        ] {
            assert!(Preamble::detect(Side::A, first).is_none(), "{first:?}");
        }
    }

    #[test]
    fn the_bound_makes_it_plaintext() {
        let mut p = Preamble::detect(Side::B, b"220 mail ESMTP\r\n").unwrap();
        assert_eq!(p.feed(Side::B, b"220 mail ESMTP\r\n"), Outcome::More);
        let noop = b"NOOP\r\n".repeat(MAX_PREAMBLE_BYTES / 6 + 1);
        assert_eq!(p.feed(Side::A, &noop), Outcome::Plain(Plain::TooLong));
    }

    #[test]
    fn garbage_never_panics() {
        // Every opening followed by every prefix of a noisy byte string.
        let noise: Vec<u8> = (0..600u32).map(|i| (i * 7919 % 251) as u8).collect();
        let openings: [&[u8]; 7] = [
            &[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f],
            &[0x30, 0x1d, 0x02, 0x01, 0x01, 0x77, 0x18],
            b"220 x\r\n",
            b"* OK x\r\n",
            b"+OK x\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n",
            &[0x20, 0, 0, 0, 10, b'8', 0],
        ];
        for o in openings {
            for cut in 0..noise.len() {
                if let Some(mut p) = Preamble::detect(Side::A, o) {
                    p.feed(Side::A, o);
                    p.feed(Side::B, &noise[..cut]);
                    p.feed(Side::A, &noise[cut..]);
                }
            }
        }
    }
}
