//! PostgreSQL: the client's SSLRequest (length 8, code 80877103) is
//! answered by one byte, 'S' (TLS follows) or 'N' (go on in clear). A
//! GSSENCRequest (80877104) refused with 'N' may be followed by an
//! SSLRequest. PostgreSQL 17's direct SSL sends a ClientHello straight
//! away and needs no preamble.

use super::dialect::{Event, Step};

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];

/// The first client message asks for TLS or GSS encryption.
pub(super) fn opens(first: &[u8]) -> bool {
    first.starts_with(&SSL_REQUEST) || first.starts_with(&GSSENC_REQUEST)
}

#[derive(Debug, Default)]
pub(super) struct Postgres {
    /// The request the server is to answer: SSL (true) or GSS (false).
    asked_ssl: Option<bool>,
}

impl Postgres {
    pub(super) fn step(&mut self, from_client: bool, buf: &[u8]) -> Step {
        if from_client {
            if buf.len() < 8 {
                return Step::NeedMore;
            }
            if self.asked_ssl.is_some() {
                // The client spoke before the answer: not this protocol.
                return Step::Bad;
            }
            return match buf[..8].try_into() {
                Ok(SSL_REQUEST) => {
                    self.asked_ssl = Some(true);
                    Step::Took(8, Event::None)
                }
                Ok(GSSENC_REQUEST) => {
                    self.asked_ssl = Some(false);
                    Step::Took(8, Event::None)
                }
                // A StartupMessage after a refused GSS request: plaintext.
                _ => Step::Took(buf.len(), Event::Refused),
            };
        }
        let Some(&answer) = buf.first() else {
            return Step::NeedMore;
        };
        match (self.asked_ssl.take(), answer) {
            (Some(true), b'S') => Step::Took(1, Event::Accepted),
            (Some(true), b'N') => Step::Took(1, Event::Refused),
            // Refused GSS: the client may ask for TLS next.
            (Some(false), b'N') => Step::Took(1, Event::None),
            // GSS encryption ('G') is not TLS.
            (Some(false), b'G') => Step::Took(1, Event::Refused),
            _ => Step::Bad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{HELLO, play, upgraded};
    use super::super::{Outcome, Plain, Protocol};
    use super::*;

    #[test]
    fn ssl_request_then_s_is_tls() {
        let o = play(&[(true, &SSL_REQUEST), (false, b"S"), (true, HELLO)]);
        assert_eq!(upgraded(&o), Some((Protocol::Postgres, HELLO)));
    }

    #[test]
    fn n_stays_plaintext() {
        let o = play(&[(true, &SSL_REQUEST), (false, b"N")]);
        assert_eq!(o, Outcome::Plain(Plain::Refused));
    }

    #[test]
    fn refused_gss_then_ssl() {
        let o = play(&[
            (true, &GSSENC_REQUEST),
            (false, b"N"),
            (true, &SSL_REQUEST),
            (false, b"S"),
            (true, HELLO),
        ]);
        assert_eq!(upgraded(&o), Some((Protocol::Postgres, HELLO)));
        let startup = [0, 0, 0, 9, 0, 3, 0, 0, 0];
        let o = play(&[(true, &GSSENC_REQUEST), (false, b"N"), (true, &startup)]);
        assert_eq!(o, Outcome::Plain(Plain::Refused));
    }

    #[test]
    fn an_error_answer_is_not_this_protocol() {
        let o = play(&[(true, &SSL_REQUEST), (false, b"E\0\0\0\x10")]);
        assert_eq!(o, Outcome::Plain(Plain::Malformed));
    }
}
