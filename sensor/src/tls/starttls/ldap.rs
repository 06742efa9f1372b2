//! LDAP StartTLS (RFC 4511 section 4.14): an ExtendedRequest naming
//! 1.3.6.1.4.1.1466.20037, answered by an ExtendedResponse of the same
//! message id whose resultCode is success (0). Messages are BER: a
//! SEQUENCE of the message id and the protocol operation.

use super::dialect::{Event, Step};

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const ENUMERATED: u8 = 0x0a;
/// [APPLICATION 23] and [APPLICATION 24], constructed.
const EXTENDED_REQUEST: u8 = 0x77;
const EXTENDED_RESPONSE: u8 = 0x78;
/// requestName [0], primitive.
const REQUEST_NAME: u8 = 0x80;
const START_TLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
/// Preamble messages are small; a longer length is not one of them.
const MAX_MESSAGE: usize = 4096;

/// The first client message: a SEQUENCE holding a message id and an
/// application-class operation (only its header need be here).
pub(super) fn opens(first: &[u8]) -> bool {
    let Some(Ok((SEQUENCE, h, _))) = tlv(first) else {
        return false;
    };
    let body = &first[h..];
    let Some(Ok((INTEGER, ih, il))) = tlv(body) else {
        return false;
    };
    (1..=4).contains(&il) && body.get(ih + il).is_some_and(|t| (0x60..=0x7f).contains(t))
}

/// Tag, header length and content length of the BER element at `buf`'s
/// start: None until its header is whole, Err when it is not one.
fn tlv(buf: &[u8]) -> Option<Result<(u8, usize, usize), ()>> {
    let tag = *buf.first()?;
    let first = *buf.get(1)?;
    if first < 0x80 {
        return Some(Ok((tag, 2, first as usize)));
    }
    let n = (first & 0x7f) as usize;
    // OpenLDAP writes constructed lengths in the 4-byte long form.
    if n == 0 || n > 4 {
        return Some(Err(()));
    }
    let bytes = buf.get(2..2 + n)?;
    let len = bytes.iter().fold(0usize, |a, b| a << 8 | *b as usize);
    Some(Ok((tag, 2 + n, len)))
}

/// The element at `buf`'s start whole: (tag, content, total length).
fn element(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let (tag, h, len) = tlv(buf)?.ok()?;
    let content = buf.get(h..h + len)?;
    Some((tag, content, h + len))
}

#[derive(Debug, Default)]
pub(super) struct Ldap {
    /// The message id of the StartTLS request.
    asked: Option<Vec<u8>>,
}

impl Ldap {
    pub(super) fn step(&mut self, from_client: bool, buf: &[u8]) -> Step {
        let (tag, h, len) = match tlv(buf) {
            None => return Step::NeedMore,
            Some(Err(())) => return Step::Bad,
            Some(Ok(t)) => t,
        };
        if tag != SEQUENCE || len > MAX_MESSAGE {
            return Step::Bad;
        }
        if buf.len() < h + len {
            return Step::NeedMore;
        }
        let took = h + len;
        let Some((INTEGER, id, n)) = element(&buf[h..took]) else {
            return Step::Bad;
        };
        let Some((op, content, _)) = element(&buf[h + n..took]) else {
            return Step::Bad;
        };
        let event = match (from_client, op) {
            (true, EXTENDED_REQUEST) => {
                if let Some((REQUEST_NAME, name, _)) = element(content)
                    && name == START_TLS_OID
                {
                    self.asked = Some(id.to_vec());
                }
                Event::None
            }
            (false, EXTENDED_RESPONSE) if self.asked.as_deref() == Some(id) => {
                match element(content) {
                    Some((ENUMERATED, [0], _)) => Event::Accepted,
                    Some((ENUMERATED, _, _)) => Event::Refused,
                    _ => return Step::Bad,
                }
            }
            _ => Event::None,
        };
        Step::Took(took, event)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{HELLO, play, upgraded};
    use super::super::{Outcome, Plain, Protocol};

    /// What `ldapsearch -ZZ` sends first (message id 1).
    const START_TLS: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";

    fn response(code: u8) -> Vec<u8> {
        let mut r = vec![0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, code];
        r.extend([0x04, 0x00, 0x04, 0x00]);
        r
    }

    #[test]
    fn start_tls_success_is_tls() {
        let o = play(&[(true, START_TLS), (false, &response(0)), (true, HELLO)]);
        assert_eq!(upgraded(&o), Some((Protocol::Ldap, HELLO)));
    }

    #[test]
    fn an_error_result_is_plaintext() {
        // protocolError (2), as a server without TLS configured answers.
        let o = play(&[(true, START_TLS), (false, &response(2))]);
        assert_eq!(o, Outcome::Plain(Plain::Refused));
    }

    #[test]
    fn openldap_four_byte_lengths() {
        let mut req = vec![
            0x30, 0x84, 0, 0, 0, 0x21, 0x02, 0x01, 0x01, 0x77, 0x84, 0, 0, 0, 0x18,
        ];
        req.extend_from_slice(b"\x80\x161.3.6.1.4.1.1466.20037");
        let resp = [
            0x30, 0x84, 0, 0, 0, 0x10, 0x02, 0x01, 0x01, 0x78, 0x84, 0, 0, 0, 0x07, 0x0a, 0x01, 0,
            4, 0, 4, 0,
        ];
        let o = play(&[(true, &req), (false, &resp), (true, HELLO)]);
        assert_eq!(upgraded(&o), Some((Protocol::Ldap, HELLO)));
    }

    #[test]
    fn long_form_lengths_and_other_operations() {
        // A simple bind first (long-form length), its response, then StartTLS.
        let mut bind = vec![0x30, 0x81, 0x0c, 0x02, 0x01, 0x02, 0x60, 0x07];
        bind.extend([0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00]);
        let bound = [
            0x30, 0x0c, 0x02, 0x01, 0x02, 0x61, 0x07, 0x0a, 0x01, 0, 4, 0, 4, 0,
        ];
        let o = play(&[
            (true, &bind),
            (false, &bound),
            (true, START_TLS),
            (false, &response(0)),
            (true, HELLO),
        ]);
        assert_eq!(upgraded(&o), Some((Protocol::Ldap, HELLO)));
    }
}
