//! One connection's handshake: which side is the client, what each hello
//! said, the certificates in clear, how it ended.

use tls_parser::{TlsMessage, TlsMessageHandshake};

use crate::reassembly::{Control, Side};

use super::fingerprint;
use super::hello::{self, ClientHello, EXT_PRE_SHARED_KEY, ServerHello};
use super::record::{RecordError, RecordEvent, RecordReader};

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;
const HS_SERVER_KEY_EXCHANGE: u8 = 12;
const HS_CERTIFICATE_REQUEST: u8 = 13;
const HS_SERVER_HELLO_DONE: u8 = 14;

/// Errors of the TLS stage, by kind; each is counted and the connection's
/// handshake is reported with what was seen before it.
#[derive(Debug, Default, Clone)]
pub struct TlsStats {
    pub not_tls: u64,
    pub record_errors: std::collections::BTreeMap<&'static str, u64>,
    pub hello_errors: u64,
    pub certificate_message_errors: u64,
}

/// Everything one connection's handshake showed in clear.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    pub client_hello: Option<ClientHello>,
    pub server_hello: Option<ServerHello>,
    pub ja3: Option<String>,
    pub ja4: Option<String>,
    pub ja3s: Option<String>,
    pub retry_requested: bool,
    /// TLS <= 1.2 messages in the server's clear flight.
    pub server_certificate_seen: bool,
    pub server_key_exchange_seen: bool,
    pub server_hello_done_seen: bool,
    pub certificate_request_seen: bool,
    pub server_ccs: bool,
    pub client_ccs: bool,
    pub server_chain: Vec<Vec<u8>>,
    pub client_chain: Vec<Vec<u8>>,
    pub alert: Option<u8>,
    /// Level (1 warning, 2 fatal) and sender of that first alert.
    pub alert_level: Option<u8>,
    pub alert_from_client: Option<bool>,
    /// The handshake was followed to its end (not cut by a gap or the capture's end).
    pub complete: bool,
}

impl Handshake {
    pub fn version(&self) -> Option<u16> {
        self.server_hello.as_ref().map(ServerHello::version)
    }

    pub fn is_tls13(&self) -> bool {
        self.version() == Some(0x0304)
    }

    /// RECORDS.md: TLS 1.3 resumption is a pre_shared_key in the ServerHello;
    /// TLS <= 1.2, an abbreviated handshake.
    pub fn resumed(&self) -> Option<bool> {
        let sh = self.server_hello.as_ref()?;
        if self.is_tls13() {
            return Some(sh.extensions.contains(&EXT_PRE_SHARED_KEY));
        }
        Some(
            self.server_ccs
                && !self.server_certificate_seen
                && !self.server_key_exchange_seen
                && !self.server_hello_done_seen,
        )
    }

    pub fn mutual(&self) -> Option<bool> {
        if self.server_hello.is_none() || self.is_tls13() {
            return None;
        }
        Some(self.certificate_request_seen)
    }
}

/// The TLS stage's state for one connection.
#[derive(Debug, Default)]
pub struct TlsSession {
    client: Option<Side>,
    readers: [RecordReader; 2],
    pub handshake: Handshake,
    decided: bool,
}

impl TlsSession {
    pub fn client_side(&self) -> Option<Side> {
        self.client
    }

    pub fn is_tls(&self) -> bool {
        self.client.is_some()
    }

    /// Feeds reassembled bytes of one side.
    pub fn on_data(
        &mut self,
        side: Side,
        bytes: &[u8],
        max_message: usize,
        stats: &mut TlsStats,
    ) -> Control {
        if !self.decided {
            // The first payload of a connection decides: a handshake record
            // holding a ClientHello, or not TLS at all.
            self.decided = true;
            if !starts_client_hello(bytes) {
                stats.not_tls += 1;
                return Control::Ignore;
            }
            self.client = Some(side);
        }
        let Some(client) = self.client else {
            return Control::Ignore;
        };
        let from_client = side == client;
        let mut control = Control::Continue;
        let hs = &mut self.handshake;
        let reader = &mut self.readers[side as usize];
        let result = reader.feed(bytes, max_message, &mut |ev| {
            control = on_event(hs, from_client, ev, stats);
            control == Control::Continue
        });
        if let Err(e) = result {
            *stats.record_errors.entry(e.name()).or_default() += 1;
            // What was seen so far still makes a record; stop following.
            return if matches!(e, RecordError::NotTls) && hs.client_hello.is_none() {
                Control::Ignore
            } else {
                Control::Done
            };
        }
        control
    }

    /// The rest of one side is lost: the handshake is as complete as it got.
    pub fn on_gap(&mut self) -> Control {
        if self.is_tls() {
            Control::Done
        } else {
            Control::Ignore
        }
    }
}

fn starts_client_hello(b: &[u8]) -> bool {
    b.first() == Some(&22) && b.get(1) == Some(&3) && b.get(5).is_none_or(|t| *t == HS_CLIENT_HELLO)
}

fn on_event(
    hs: &mut Handshake,
    from_client: bool,
    ev: RecordEvent<'_>,
    stats: &mut TlsStats,
) -> Control {
    match ev {
        RecordEvent::Handshake(msg) => on_message(hs, from_client, msg, stats),
        RecordEvent::ChangeCipherSpec => {
            if from_client {
                hs.client_ccs = true;
            } else {
                hs.server_ccs = true;
            }
            if hs.client_ccs && hs.server_ccs {
                hs.complete = true;
                Control::Done
            } else {
                Control::Continue
            }
        }
        RecordEvent::Alert { level, description } => {
            if hs.alert.is_none() {
                hs.alert = Some(description);
                hs.alert_level = Some(level);
                hs.alert_from_client = Some(from_client);
            }
            hs.complete = true;
            Control::Done
        }
        RecordEvent::Encrypted => {
            // Application data before both ChangeCipherSpecs: the handshake
            // is over for this side (e.g. a TLS 1.3 server's flight).
            if hs.server_hello.is_some() {
                hs.complete = true;
                Control::Done
            } else {
                Control::Continue
            }
        }
    }
}

fn on_message(hs: &mut Handshake, from_client: bool, msg: &[u8], stats: &mut TlsStats) -> Control {
    match (from_client, msg[0]) {
        // After a HelloRetryRequest the client says hello again; the
        // fingerprints describe the first one.
        (true, HS_CLIENT_HELLO) if hs.client_hello.is_none() => {
            match hello::parse_client_hello(msg) {
                Ok(ch) => {
                    hs.ja3 = Some(fingerprint::ja3(&ch));
                    hs.ja4 = Some(fingerprint::ja4(&ch));
                    hs.client_hello = Some(ch);
                }
                Err(_) => {
                    stats.hello_errors += 1;
                    return Control::Done;
                }
            }
        }
        (false, HS_SERVER_HELLO) => match hello::parse_server_hello(msg) {
            Ok(sh) => {
                let retry = sh.retry_request;
                hs.ja3s = Some(fingerprint::ja3s(&sh));
                hs.server_hello = Some(sh);
                if retry {
                    hs.retry_requested = true;
                } else if hs.is_tls13() {
                    // Everything after a TLS 1.3 ServerHello is encrypted.
                    hs.complete = true;
                    return Control::Done;
                }
            }
            Err(_) => {
                stats.hello_errors += 1;
                return Control::Done;
            }
        },
        (_, HS_CERTIFICATE) => {
            match parse_certificate_chain(msg) {
                Some(chain) if from_client => hs.client_chain = chain,
                Some(chain) => hs.server_chain = chain,
                None => stats.certificate_message_errors += 1,
            }
            if !from_client {
                hs.server_certificate_seen = true;
            }
        }
        (false, HS_SERVER_KEY_EXCHANGE) => hs.server_key_exchange_seen = true,
        (false, HS_CERTIFICATE_REQUEST) => hs.certificate_request_seen = true,
        (false, HS_SERVER_HELLO_DONE) => hs.server_hello_done_seen = true,
        _ => {}
    }
    Control::Continue
}

fn parse_certificate_chain(msg: &[u8]) -> Option<Vec<Vec<u8>>> {
    match tls_parser::parse_tls_message_handshake(msg) {
        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::Certificate(c)))) => {
            Some(c.cert_chain.iter().map(|c| c.data.to_vec()).collect())
        }
        _ => None,
    }
}
