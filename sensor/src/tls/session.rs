//! One connection's handshake: which side is the client, what each hello
//! said, the certificates in clear, how it ended.

use tls_parser::{TlsMessage, TlsMessageHandshake};

use crate::model::{Alert, AlertDescription, CipherSuite, HandshakeFacts, ProtocolVersion};
use crate::reassembly::{Control, Side};

use super::fingerprint::FingerprintMemo;
use super::hello::{self, ClientHello, EXT_PRE_SHARED_KEY, ServerHello};
use super::record::{RecordError, RecordEvent, RecordReader};
use super::starttls::{self, Outcome, Preamble, Protocol};

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;
const HS_SERVER_KEY_EXCHANGE: u8 = 12;
const HS_CERTIFICATE_REQUEST: u8 = 13;
const HS_SERVER_HELLO_DONE: u8 = 14;
const ALERT_LEVEL_WARNING: u8 = 1;
const ALERT_CLOSE_NOTIFY: u8 = 0;

/// Errors of the TLS stage, by kind; each is counted and the connection's
/// handshake is reported with what was seen before it.
#[derive(Debug, Default, Clone)]
pub struct TlsStats {
    pub not_tls: u64,
    /// By `RecordError` (indexed as `RecordError::ALL`).
    pub record_errors: [u64; 3],
    pub hello_errors: u64,
    pub certificate_message_errors: u64,
    /// Upgrade preambles that ran past `starttls::MAX_PREAMBLE_BYTES`.
    pub preamble_too_long: u64,
    /// Upgrade preambles whose bytes did not fit their protocol.
    pub preamble_malformed: u64,
    /// Upgrades the server refused: the connection stayed plaintext.
    pub upgrades_refused: u64,
    /// Times the memo of fingerprints was full and started over.
    pub fingerprint_cache_full: u64,
}

/// What the TLS sessions of one pipeline share.
#[derive(Debug, Default)]
pub struct TlsContext {
    pub stats: TlsStats,
    pub fingerprints: FingerprintMemo,
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
    /// The side sent ChangeCipherSpec or protected records: its clear flight is over.
    pub server_protected: bool,
    pub client_protected: bool,
    pub server_chain: Vec<Vec<u8>>,
    pub client_chain: Vec<Vec<u8>>,
    pub alert: Option<u8>,
    /// Level (1 warning, 2 fatal) and sender of that first alert.
    pub alert_level: Option<u8>,
    pub alert_from_client: Option<bool>,
    /// The handshake was followed to its end (not cut by a gap or the capture's end).
    pub complete: bool,
    /// The protocol TLS started inside, when it did not start the connection.
    pub starttls: Option<Protocol>,
}

impl Handshake {
    pub fn version(&self) -> Option<u16> {
        self.server_hello.as_ref().map(ServerHello::version)
    }

    /// TLS 1.3 or one of its drafts and experiments: RECORDS.md's TLS 1.3
    /// rules apply to all of them.
    pub fn is_tls13(&self) -> bool {
        self.version()
            .is_some_and(|v| ProtocolVersion(v).is_tls13_family())
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

    /// What the model keeps of it (RECORDS.md's conventions applied:
    /// TLS 1.3 encrypts the chosen ALPN). A connection is reported once,
    /// so its strings move into the facts rather than being copied: a
    /// copy of each was a fifth of a handshake's allocations.
    pub fn take_facts(&mut self) -> HandshakeFacts {
        let version = self.version().map(ProtocolVersion);
        let tls13 = self.is_tls13();
        let (sni, alpn_offered) = match self.client_hello.as_mut() {
            Some(c) => (
                c.sni.take(),
                std::mem::take(&mut c.alpn).into_iter().map(text).collect(),
            ),
            None => (None, Vec::new()),
        };
        let sh = self.server_hello.as_mut();
        HandshakeFacts {
            version,
            cipher: sh.as_ref().map(|s| CipherSuite(s.cipher)),
            sni,
            alpn_offered,
            alpn: if tls13 {
                None
            } else {
                sh.and_then(|s| s.alpn.take()).map(text)
            },
            ja3: self.ja3.take(),
            ja3s: self.ja3s.take(),
            ja4: self.ja4.take(),
            resumed: self.resumed(),
            mutual: self.mutual(),
            alert: self.alert.map(|d| Alert {
                description: AlertDescription(d),
                level: self.alert_level,
                from_client: self.alert_from_client,
            }),
            complete: self.complete,
            starttls: self.starttls.map(Protocol::name),
        }
    }
}

/// A protocol name as text, in place when it is UTF-8 already.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The TLS stage's state for one connection.
#[derive(Debug, Default)]
pub struct TlsSession {
    client: Option<Side>,
    readers: [RecordReader; 2],
    pub handshake: Handshake,
    decided: bool,
    /// A plaintext preamble that may upgrade to TLS, until it does or not.
    preamble: Option<Box<Preamble>>,
    had_preamble: bool,
}

impl TlsSession {
    pub fn client_side(&self) -> Option<Side> {
        self.client
    }

    pub fn is_tls(&self) -> bool {
        self.client.is_some()
    }

    /// In an upgrade preamble, not yet TLS nor plaintext.
    pub fn in_preamble(&self) -> bool {
        self.preamble.is_some()
    }

    /// The connection opened with an upgrade preamble (whatever came of it).
    pub fn had_preamble(&self) -> bool {
        self.had_preamble
    }

    /// Feeds reassembled bytes of one side.
    pub fn on_data(
        &mut self,
        side: Side,
        bytes: &[u8],
        max_message: usize,
        cx: &mut TlsContext,
    ) -> Control {
        if !self.decided {
            // The first payload of a connection decides: a handshake record
            // holding a ClientHello, the opening of a protocol that may
            // upgrade to TLS, or not TLS at all.
            self.decided = true;
            if starts_client_hello(bytes) {
                self.client = Some(side);
            } else if let Some(p) = Preamble::detect(side, bytes) {
                self.preamble = Some(Box::new(p));
                self.had_preamble = true;
            } else {
                cx.stats.not_tls += 1;
                return Control::Ignore;
            }
        }
        if let Some(p) = &mut self.preamble {
            return match p.feed(side, bytes) {
                Outcome::More => Control::Continue,
                Outcome::Plain(why) => {
                    self.preamble = None;
                    match why {
                        starttls::Plain::Refused => cx.stats.upgrades_refused += 1,
                        starttls::Plain::Malformed => {
                            count_once(&mut cx.stats.preamble_malformed, "malformed")
                        }
                        starttls::Plain::TooLong => {
                            count_once(&mut cx.stats.preamble_too_long, "longer than the bound")
                        }
                    }
                    Control::Ignore
                }
                Outcome::Tls {
                    protocol,
                    client,
                    client_bytes,
                    server_bytes,
                } => {
                    self.preamble = None;
                    if !starts_client_hello(&client_bytes) {
                        cx.stats.not_tls += 1;
                        return Control::Ignore;
                    }
                    self.client = Some(client);
                    self.handshake.starttls = Some(protocol);
                    let c = self.tls_data(client, &client_bytes, max_message, cx);
                    if c != Control::Continue || server_bytes.is_empty() {
                        return c;
                    }
                    self.tls_data(client.other(), &server_bytes, max_message, cx)
                }
            };
        }
        self.tls_data(side, bytes, max_message, cx)
    }

    fn tls_data(
        &mut self,
        side: Side,
        bytes: &[u8],
        max_message: usize,
        cx: &mut TlsContext,
    ) -> Control {
        let Some(client) = self.client else {
            return Control::Ignore;
        };
        let from_client = side == client;
        let mut control = Control::Continue;
        let hs = &mut self.handshake;
        let reader = &mut self.readers[side as usize];
        let result = reader.feed(bytes, max_message, &mut |ev| {
            control = on_event(hs, from_client, ev, cx);
            control == Control::Continue
        });
        if let Err(e) = result {
            cx.stats.record_errors[e as usize] += 1;
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

/// Counts bad preamble input, logging its first occurrence only: a
/// sensor on a busy node must not log per connection.
fn count_once(counter: &mut u64, what: &str) {
    if *counter == 0 {
        tracing::info!(
            "an upgrade preamble was {what}: the connection is taken for plaintext (counted from now on)"
        );
    }
    *counter += 1;
}

fn starts_client_hello(b: &[u8]) -> bool {
    b.first() == Some(&22) && b.get(1) == Some(&3) && b.get(5).is_none_or(|t| *t == HS_CLIENT_HELLO)
        || starts_sslv2_client_hello(b)
}

/// The SSLv2-compatible form: a 2-byte record header with the high bit
/// set, message type 1, then a client version of SSL 2.0 (0x0002) or 3.x.
fn starts_sslv2_client_hello(b: &[u8]) -> bool {
    b.len() >= 3
        && b[0] & 0x80 != 0
        && b[2] == HS_CLIENT_HELLO
        && match (b.get(3), b.get(4)) {
            (Some(3), minor) => minor.is_none_or(|m| *m <= 3),
            (Some(0), minor) => minor.is_none_or(|m| *m == 2),
            (None, _) => true,
            _ => false,
        }
}

fn on_event(
    hs: &mut Handshake,
    from_client: bool,
    ev: RecordEvent<'_>,
    cx: &mut TlsContext,
) -> Control {
    match ev {
        RecordEvent::Handshake(msg) => on_message(hs, from_client, msg, cx),
        // Only a client opens with one; the server's reply is TLS records
        // (a server that answers in SSL 2.0 is not followed).
        RecordEvent::Sslv2Record(body) if from_client && hs.client_hello.is_none() => {
            match hello::parse_sslv2_client_hello(body) {
                Ok(ch) => {
                    hello_seen(hs, ch, cx);
                    Control::Continue
                }
                Err(_) => {
                    cx.stats.hello_errors += 1;
                    Control::Done
                }
            }
        }
        RecordEvent::Sslv2Record(_) => Control::Done,
        RecordEvent::ChangeCipherSpec => {
            if from_client {
                hs.client_ccs = true;
            } else {
                hs.server_ccs = true;
            }
            protected(hs, from_client)
        }
        RecordEvent::Alert { level, description } => {
            if hs.alert.is_none() {
                hs.alert = Some(description);
                hs.alert_level = Some(level);
                hs.alert_from_client = Some(from_client);
            }
            // A warning (e.g. unrecognized_name from an SNI callback, RFC 6066
            // section 3) lets the handshake go on; only a fatal alert or the
            // peer closing the connection ends it.
            if level == ALERT_LEVEL_WARNING && description != ALERT_CLOSE_NOTIFY {
                return Control::Continue;
            }
            hs.complete = true;
            Control::Done
        }
        RecordEvent::Encrypted => {
            if hs.server_hello.is_some() {
                protected(hs, from_client)
            } else {
                Control::Continue
            }
        }
    }
}

/// One side's clear flight is over. The handshake is only over once both
/// are: after the client's ChangeCipherSpec and encrypted Finished, a TLS
/// 1.2 server still answers in clear, with its ChangeCipherSpec or with the
/// alert that refuses the handshake (e.g. a missing client certificate).
fn protected(hs: &mut Handshake, from_client: bool) -> Control {
    if from_client {
        hs.client_protected = true;
    } else {
        hs.server_protected = true;
    }
    if hs.client_protected && hs.server_protected {
        hs.complete = true;
        Control::Done
    } else {
        Control::Continue
    }
}

fn on_message(hs: &mut Handshake, from_client: bool, msg: &[u8], cx: &mut TlsContext) -> Control {
    match (from_client, msg[0]) {
        // After a HelloRetryRequest the client says hello again; the
        // fingerprints describe the first one.
        (true, HS_CLIENT_HELLO) if hs.client_hello.is_none() => {
            match hello::parse_client_hello(msg) {
                Ok(ch) => hello_seen(hs, ch, cx),
                Err(_) => {
                    cx.stats.hello_errors += 1;
                    return Control::Done;
                }
            }
        }
        (false, HS_SERVER_HELLO) => match hello::parse_server_hello(msg) {
            Ok(sh) => {
                let retry = sh.retry_request;
                hs.ja3s = Some(
                    cx.fingerprints
                        .ja3s(&sh, &mut cx.stats.fingerprint_cache_full),
                );
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
                cx.stats.hello_errors += 1;
                return Control::Done;
            }
        },
        (_, HS_CERTIFICATE) => {
            match parse_certificate_chain(msg) {
                Some(chain) if from_client => hs.client_chain = chain,
                Some(chain) => hs.server_chain = chain,
                None => cx.stats.certificate_message_errors += 1,
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

fn hello_seen(hs: &mut Handshake, ch: ClientHello, cx: &mut TlsContext) {
    let (ja3, ja4) = cx
        .fingerprints
        .client(&ch, &mut cx.stats.fingerprint_cache_full);
    hs.ja3 = Some(ja3);
    hs.ja4 = Some(ja4);
    hs.client_hello = Some(ch);
}

fn parse_certificate_chain(msg: &[u8]) -> Option<Vec<Vec<u8>>> {
    match tls_parser::parse_tls_message_handshake(msg) {
        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::Certificate(c)))) => {
            Some(c.cert_chain.iter().map(|c| c.data.to_vec()).collect())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::fingerprint;
    use crate::tls::record::{CONTENT_ALERT, CONTENT_CCS, CONTENT_HANDSHAKE};

    fn record(ctype: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ctype, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn message(htype: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![htype];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(body);
        m
    }

    /// version, random, empty session id, then what follows it.
    fn hello_body(rest: &[u8]) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend([7u8; 32]);
        b.push(0);
        b.extend_from_slice(rest);
        b
    }

    fn handshake_records(msgs: &[Vec<u8>]) -> Vec<u8> {
        record(CONTENT_HANDSHAKE, &msgs.concat())
    }

    /// The exchange of tests/data/tls12-alert-no-client-cert.pcap: the server
    /// asks for a certificate, the client sends none and finishes, and the
    /// server refuses in clear after the client's encrypted Finished.
    #[test]
    fn server_alert_after_the_clients_finished_is_seen() {
        let (client, server) = (Side::A, Side::B);
        let mut s = TlsSession::default();
        let mut cx = TlsContext::default();
        let mut feed =
            |s: &mut TlsSession, side, bytes: &[u8]| s.on_data(side, bytes, 1 << 20, &mut cx);
        // cipher_suites = [TLS_RSA_WITH_AES_128_CBC_SHA], compression = [null].
        let ch = message(1, &hello_body(&[0, 2, 0, 0x2f, 1, 0]));
        assert_eq!(
            feed(&mut s, client, &handshake_records(&[ch])),
            Control::Continue
        );
        let sh = message(2, &hello_body(&[0, 0x2f, 0]));
        let flight = handshake_records(&[
            sh,
            message(11, &[0, 0, 0]),
            message(13, &[1, 1, 0, 0]),
            message(14, &[]),
        ]);
        assert_eq!(feed(&mut s, server, &flight), Control::Continue);
        let mut answer = handshake_records(&[message(11, &[0, 0, 0]), message(16, &[0; 4])]);
        answer.extend(record(CONTENT_CCS, &[1]));
        answer.extend(record(CONTENT_HANDSHAKE, &[0x55; 40]));
        assert_eq!(feed(&mut s, client, &answer), Control::Continue);
        assert_eq!(
            feed(&mut s, server, &record(CONTENT_ALERT, &[2, 40])),
            Control::Done
        );
        let hs = &s.handshake;
        assert_eq!(hs.alert, Some(40));
        assert_eq!(hs.mutual(), Some(true));
        assert_eq!(hs.resumed(), Some(false));
        assert!(hs.complete);
    }

    #[test]
    fn full_tls12_handshake_ends_with_the_servers_change_cipher_spec() {
        let (client, server) = (Side::A, Side::B);
        let mut s = TlsSession::default();
        let mut cx = TlsContext::default();
        let ch = message(1, &hello_body(&[0, 2, 0, 0x2f, 1, 0]));
        s.on_data(client, &handshake_records(&[ch]), 1 << 20, &mut cx);
        let flight = handshake_records(&[
            message(2, &hello_body(&[0, 0x2f, 0])),
            message(11, &[0, 0, 0]),
            message(14, &[]),
        ]);
        s.on_data(server, &flight, 1 << 20, &mut cx);
        let mut answer = handshake_records(&[message(16, &[0; 4])]);
        answer.extend(record(CONTENT_CCS, &[1]));
        answer.extend(record(CONTENT_HANDSHAKE, &[0x55; 40]));
        assert_eq!(
            s.on_data(client, &answer, 1 << 20, &mut cx),
            Control::Continue
        );
        assert!(!s.handshake.complete);
        let mut done = record(CONTENT_CCS, &[1]);
        done.extend(record(CONTENT_HANDSHAKE, &[0x66; 40]));
        assert_eq!(s.on_data(server, &done, 1 << 20, &mut cx), Control::Done);
        assert!(s.handshake.complete);
        assert_eq!(s.handshake.alert, None);
        assert_eq!(s.handshake.resumed(), Some(false));
    }

    /// An SSLv2-compatible ClientHello for TLS 1.0 with three TLS suites,
    /// two SSL 2.0 specs and the renegotiation SCSV, as a 2-byte-header
    /// record (the hello the tests/data sslv2-hello capture carries).
    fn sslv2_hello(version: [u8; 2]) -> Vec<u8> {
        let specs = [
            0x00, 0x00, 0x2f, 0x00, 0x00, 0x35, 0x00, 0x00, 0x0a, 0x01, 0x00, 0x80, 0x07, 0x00,
            0xc0, 0x00, 0x00, 0xff,
        ];
        let mut body = vec![1, version[0], version[1], 0, specs.len() as u8, 0, 0, 0, 16];
        body.extend_from_slice(&specs);
        body.extend([0x42; 16]);
        let mut r = vec![0x80, body.len() as u8];
        r.extend(body);
        r
    }

    #[test]
    fn an_sslv2_compatible_hello_is_followed_into_the_servers_tls_reply() {
        let (client, server) = (Side::A, Side::B);
        let mut s = TlsSession::default();
        let mut cx = TlsContext::default();
        let hello = sslv2_hello([3, 1]);
        // Split inside the record: the reader waits for the rest.
        assert_eq!(
            s.on_data(client, &hello[..7], 1 << 20, &mut cx),
            Control::Continue
        );
        assert_eq!(
            s.on_data(client, &hello[7..], 1 << 20, &mut cx),
            Control::Continue
        );
        assert_eq!(s.client_side(), Some(client));
        let ch = s.handshake.client_hello.as_ref().expect("hello parsed");
        assert_eq!(ch.version, 0x0301);
        assert_eq!(ch.ciphers, [0x2f, 0x35, 0x0a, 0xff]);
        assert_eq!(
            fingerprint::ja3_string(ch),
            "769,47-53-10-65664-458944-255,,,"
        );
        assert!(
            s.handshake
                .ja4
                .as_deref()
                .unwrap()
                .starts_with("t10i040000_")
        );
        let flight = handshake_records(&[
            message(2, &hello_body(&[0, 0x2f, 0])),
            message(11, &[0, 0, 0]),
            message(14, &[]),
        ]);
        assert_eq!(
            s.on_data(server, &flight, 1 << 20, &mut cx),
            Control::Continue
        );
        assert_eq!(s.handshake.version(), Some(0x0303));
        assert!(s.handshake.server_hello_done_seen);
        assert_eq!(cx.stats.hello_errors + cx.stats.not_tls, 0);
    }

    #[test]
    fn an_sslv2_hello_for_ssl2_itself_fingerprints_as_s2() {
        let mut s = TlsSession::default();
        let mut cx = TlsContext::default();
        s.on_data(Side::A, &sslv2_hello([0, 2]), 1 << 20, &mut cx);
        assert!(s.handshake.ja4.as_deref().unwrap().starts_with("ts2i04"));
    }

    #[test]
    fn a_broken_sslv2_hello_is_counted_and_ends_the_handshake() {
        let mut s = TlsSession::default();
        let mut cx = TlsContext::default();
        let mut hello = sslv2_hello([3, 1]);
        // A challenge of 8 bytes: SSL 2.0 allows 16 to 32.
        hello[10] = 8;
        assert_eq!(s.on_data(Side::A, &hello, 1 << 20, &mut cx), Control::Done);
        assert_eq!(cx.stats.hello_errors, 1);
        assert!(s.handshake.client_hello.is_none());
    }

    #[test]
    fn a_high_bit_first_byte_that_is_no_hello_is_not_tls() {
        let mut s = TlsSession::default();
        let mut cx = TlsContext::default();
        // A v2 ServerHello (type 4) from the side that spoke first.
        let mut r = sslv2_hello([3, 1]);
        r[2] = 4;
        assert_eq!(s.on_data(Side::A, &r, 1 << 20, &mut cx), Control::Ignore);
        assert_eq!(cx.stats.not_tls, 1);
    }

    /// A client hello, then `server` records; returns the session.
    fn play(server: &[Vec<u8>]) -> TlsSession {
        let (client, side) = (Side::A, Side::B);
        let mut s = TlsSession::default();
        let mut cx = TlsContext::default();
        let ch = message(1, &hello_body(&[0, 2, 0x13, 0x01, 1, 0]));
        s.on_data(client, &handshake_records(&[ch]), 1 << 20, &mut cx);
        for r in server {
            if s.on_data(side, r, 1 << 20, &mut cx) != Control::Continue {
                break;
            }
        }
        s
    }

    /// The warning unrecognized_name an SNI callback sends before the
    /// ServerHello (openssl s_server -servername) does not end the handshake.
    #[test]
    fn a_warning_alert_does_not_end_the_handshake() {
        let s = play(&[
            record(CONTENT_ALERT, &[1, 112]),
            handshake_records(&[
                message(2, &hello_body(&[0, 0x2f, 0])),
                message(11, &[0, 0, 0]),
                message(14, &[]),
            ]),
        ]);
        let hs = &s.handshake;
        assert_eq!(hs.alert, Some(112));
        assert_eq!(hs.alert_level, Some(1));
        assert_eq!(hs.version(), Some(0x0303));
        assert!(hs.server_certificate_seen && hs.server_hello_done_seen);
        assert!(hs.ja3s.is_some());
        assert!(!hs.complete, "the handshake goes on after the warning");
    }

    #[test]
    fn fatal_alerts_and_close_notify_end_the_handshake() {
        for alert in [[2u8, 112], [1, 0], [2, 40]] {
            let s = play(&[
                record(CONTENT_ALERT, &alert),
                handshake_records(&[message(2, &hello_body(&[0, 0x2f, 0]))]),
            ]);
            assert_eq!(s.handshake.alert, Some(alert[1]));
            assert!(s.handshake.complete);
            assert_eq!(s.handshake.server_hello, None, "{alert:?}");
        }
    }

    /// A ServerHello of TLS 1.3 draft 18 (0x7F12): version, random, cipher,
    /// extensions; no session id, no compression method.
    fn draft18_server_hello() -> Vec<u8> {
        let mut b = vec![0x7f, 0x12];
        b.extend([7u8; 32]);
        b.extend([0x13, 0x01]);
        // key_share (51) with an empty body is enough to frame.
        b.extend([0, 4, 0, 51, 0, 0]);
        message(2, &b)
    }

    /// A ServerHello of draft 23 as Facebook's Fizz sent it: the TLS 1.2
    /// layout, the version in supported_versions.
    fn supported_versions_server_hello(v: u16) -> Vec<u8> {
        let [hi, lo] = v.to_be_bytes();
        message(2, &hello_body(&[0x13, 0x01, 0, 0, 6, 0, 43, 0, 2, hi, lo]))
    }

    #[test]
    fn tls13_drafts_follow_the_tls13_rules() {
        let ccs = record(CONTENT_CCS, &[1]);
        let encrypted = record(crate::tls::record::CONTENT_APPDATA, &[0x55; 40]);
        for (sh, version) in [
            (draft18_server_hello(), 0x7f12),
            (supported_versions_server_hello(0x7f17), 0x7f17),
            (supported_versions_server_hello(0xfb1a), 0xfb1a),
            (supported_versions_server_hello(0x7e02), 0x7e02),
        ] {
            let s = play(&[handshake_records(&[sh]), ccs.clone(), encrypted.clone()]);
            let mut s = s;
            let hs = &mut s.handshake;
            assert_eq!(hs.version(), Some(version));
            assert!(hs.is_tls13(), "{version:#x}");
            // The compatibility ChangeCipherSpec is no abbreviated handshake.
            assert_eq!(hs.resumed(), Some(false), "{version:#x}");
            assert_eq!(hs.mutual(), None, "{version:#x}");
            assert!(hs.complete, "everything after the ServerHello is encrypted");
            let f = hs.take_facts();
            assert_eq!(f.alpn, None);
            assert!(f.is_tls13());
        }
    }

    #[test]
    fn a_draft_resumption_is_a_pre_shared_key() {
        let mut b = vec![0x7f, 0x12];
        b.extend([7u8; 32]);
        b.extend([0x13, 0x01]);
        b.extend([0, 6, 0, 41, 0, 2, 0, 0]);
        let s = play(&[handshake_records(&[message(2, &b)])]);
        assert_eq!(s.handshake.resumed(), Some(true));
        assert_eq!(s.handshake.server_hello.as_ref().unwrap().cipher, 0x1301);
    }
}
