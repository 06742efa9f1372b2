//! Record layer: records spanning segments, handshake messages spanning
//! records. tls-parser parses messages but expects them whole; this is the
//! buffering in front of it, bounded per direction.

/// TLSCiphertext may carry 2^14 + 2048 bytes.
const MAX_RECORD: usize = (1 << 14) + 2048;

pub const CONTENT_CCS: u8 = 20;
pub const CONTENT_ALERT: u8 = 21;
pub const CONTENT_HANDSHAKE: u8 = 22;
pub const CONTENT_APPDATA: u8 = 23;
pub const CONTENT_HEARTBEAT: u8 = 24;

#[derive(Debug)]
pub enum RecordEvent<'a> {
    /// One complete handshake message, header included.
    Handshake(&'a [u8]),
    /// The body of an SSLv2-format record (RFC 5246 E.2) opening the
    /// stream: the form old clients use to say hello to TLS servers.
    Sslv2Record(&'a [u8]),
    ChangeCipherSpec,
    Alert {
        level: u8,
        description: u8,
    },
    /// Protected bytes: application data or anything after ChangeCipherSpec.
    Encrypted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a TLS record")]
    NotTls,
    #[error("record longer than TLS allows")]
    RecordTooLong,
    #[error("handshake message longer than the configured bound")]
    MessageTooLong,
}

impl RecordError {
    pub const ALL: [RecordError; 3] = [
        RecordError::NotTls,
        RecordError::RecordTooLong,
        RecordError::MessageTooLong,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RecordError::NotTls => "tls_record_malformed",
            RecordError::RecordTooLong => "tls_record_too_long",
            RecordError::MessageTooLong => "tls_message_too_long",
        }
    }
}

/// One direction's record stream.
#[derive(Debug, Default)]
pub struct RecordReader {
    partial: Vec<u8>,
    messages: Vec<u8>,
    encrypted: bool,
    /// A record was read: only the first may have the SSLv2 form.
    started: bool,
}

impl RecordReader {
    /// True once this direction switched to protected records (CCS seen).
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// Feeds stream bytes; `on` returns false to stop reading this direction.
    /// Returns Ok(false) when stopped by `on`.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        max_message: usize,
        on: &mut impl FnMut(RecordEvent<'_>) -> bool,
    ) -> Result<bool, RecordError> {
        // Parse straight from the caller's bytes when nothing is left over,
        // which is the usual case of whole records per segment.
        if self.partial.is_empty() {
            let used = self.records(bytes, max_message, on)?;
            match used {
                Progress::Stopped => return Ok(false),
                Progress::Used(n) => self.partial.extend_from_slice(&bytes[n..]),
            }
            return Ok(true);
        }
        self.partial.extend_from_slice(bytes);
        let buf = std::mem::take(&mut self.partial);
        let r = self.records(&buf, max_message, on);
        match r? {
            Progress::Stopped => Ok(false),
            Progress::Used(n) => {
                self.partial = buf;
                self.partial.drain(..n);
                Ok(true)
            }
        }
    }

    fn records(
        &mut self,
        mut buf: &[u8],
        max_message: usize,
        on: &mut impl FnMut(RecordEvent<'_>) -> bool,
    ) -> Result<Progress, RecordError> {
        let mut used = 0;
        while buf.len() >= 5 {
            if !self.started && buf[0] & 0x80 != 0 {
                // A 2-byte header: the high bit, then 15 bits of length.
                let len = (usize::from(buf[0] & 0x7f) << 8) | usize::from(buf[1]);
                if buf.len() < 2 + len {
                    break;
                }
                self.started = true;
                if !on(RecordEvent::Sslv2Record(&buf[2..2 + len])) {
                    return Ok(Progress::Stopped);
                }
                buf = &buf[2 + len..];
                used += 2 + len;
                continue;
            }
            self.started = true;
            let ctype = buf[0];
            if !(CONTENT_CCS..=CONTENT_HEARTBEAT).contains(&ctype) || buf[1] != 3 {
                return Err(RecordError::NotTls);
            }
            let len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
            if len > MAX_RECORD {
                return Err(RecordError::RecordTooLong);
            }
            if buf.len() < 5 + len {
                break;
            }
            let fragment = &buf[5..5 + len];
            if !self.record(ctype, fragment, max_message, on)? {
                return Ok(Progress::Stopped);
            }
            buf = &buf[5 + len..];
            used += 5 + len;
        }
        Ok(Progress::Used(used))
    }

    fn record(
        &mut self,
        ctype: u8,
        fragment: &[u8],
        max_message: usize,
        on: &mut impl FnMut(RecordEvent<'_>) -> bool,
    ) -> Result<bool, RecordError> {
        if self.encrypted {
            return Ok(on(RecordEvent::Encrypted));
        }
        match ctype {
            CONTENT_HANDSHAKE => self.handshake(fragment, max_message, on),
            CONTENT_CCS => {
                self.encrypted = true;
                self.messages.clear();
                Ok(on(RecordEvent::ChangeCipherSpec))
            }
            CONTENT_ALERT if fragment.len() == 2 => Ok(on(RecordEvent::Alert {
                level: fragment[0],
                description: fragment[1],
            })),
            CONTENT_ALERT | CONTENT_APPDATA => Ok(on(RecordEvent::Encrypted)),
            _ => Ok(true),
        }
    }

    fn handshake(
        &mut self,
        fragment: &[u8],
        max_message: usize,
        on: &mut impl FnMut(RecordEvent<'_>) -> bool,
    ) -> Result<bool, RecordError> {
        // Messages wholly inside this fragment need no copy.
        let mut rest = fragment;
        if self.messages.is_empty() {
            while let Some(n) = message_len(rest, max_message)? {
                if rest.len() < n {
                    break;
                }
                if !on(RecordEvent::Handshake(&rest[..n])) {
                    return Ok(false);
                }
                rest = &rest[n..];
            }
            self.messages.extend_from_slice(rest);
            return Ok(true);
        }
        self.messages.extend_from_slice(rest);
        let buf = std::mem::take(&mut self.messages);
        let mut at = 0;
        while let Some(n) = message_len(&buf[at..], max_message)? {
            if buf.len() - at < n {
                break;
            }
            if !on(RecordEvent::Handshake(&buf[at..at + n])) {
                return Ok(false);
            }
            at += n;
        }
        self.messages = buf;
        self.messages.drain(..at);
        Ok(true)
    }
}

enum Progress {
    Used(usize),
    Stopped,
}

/// Length of the handshake message at the start of `buf`, header included,
/// once its header is complete.
fn message_len(buf: &[u8], max_message: usize) -> Result<Option<usize>, RecordError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let n = 4 + (u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize);
    if n > max_message {
        return Err(RecordError::MessageTooLong);
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ctype: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ctype, 3, 3];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn message(htype: u8, len: usize) -> Vec<u8> {
        let mut m = vec![htype];
        m.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
        m.extend((0..len).map(|i| i as u8));
        m
    }

    fn collect(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut r = RecordReader::default();
        let mut got = Vec::new();
        for c in chunks {
            r.feed(c, 1 << 24, &mut |e| {
                if let RecordEvent::Handshake(m) = e {
                    got.push(m.to_vec());
                }
                true
            })
            .unwrap();
        }
        got
    }

    #[test]
    fn message_spanning_many_records_and_segments() {
        // A 339 KB Certificate message over 22 records, delivered in 1000-byte pieces.
        let msg = message(11, 339_000);
        let mut stream = Vec::new();
        for part in msg.chunks(16000) {
            stream.extend(record(22, part));
        }
        assert_eq!(msg.chunks(16000).count(), 22);
        let pieces: Vec<&[u8]> = stream.chunks(1000).collect();
        let got = collect(&pieces);
        assert_eq!(got, vec![msg]);
    }

    #[test]
    fn several_messages_in_one_record() {
        let a = message(2, 70);
        let b = message(11, 10);
        let c = message(14, 0);
        let body = [a.clone(), b.clone(), c.clone()].concat();
        let got = collect(&[&record(22, &body)]);
        assert_eq!(got, vec![a, b, c]);
    }

    #[test]
    fn record_header_split_across_segments() {
        let m = message(1, 300);
        let r = record(22, &m);
        let got = collect(&[&r[..2], &r[2..4], &r[4..7], &r[7..]]);
        assert_eq!(got, vec![m]);
    }

    #[test]
    fn ccs_makes_following_handshake_records_opaque() {
        let mut stream = record(20, &[1]);
        stream.extend(record(22, &message(20, 12)));
        let got = collect(&[&stream]);
        assert!(got.is_empty());
    }

    #[test]
    fn garbage_and_oversize_are_errors() {
        let mut r = RecordReader::default();
        assert_eq!(
            r.feed(b"GET / HTTP/1.1\r\n", 1 << 20, &mut |_| true),
            Err(RecordError::NotTls)
        );
        let mut r = RecordReader::default();
        assert_eq!(
            r.feed(&[22, 3, 3, 0xff, 0xff], 1 << 20, &mut |_| true),
            Err(RecordError::RecordTooLong)
        );
        let mut r = RecordReader::default();
        let big = record(22, &[11, 0x10, 0, 0]);
        assert_eq!(
            r.feed(&big, 1 << 20, &mut |_| true),
            Err(RecordError::MessageTooLong)
        );
    }

    #[test]
    fn alert_in_clear() {
        let mut r = RecordReader::default();
        let mut seen = None;
        r.feed(&record(21, &[2, 40]), 1 << 20, &mut |e| {
            if let RecordEvent::Alert { level, description } = e {
                seen = Some((level, description));
            }
            true
        })
        .unwrap();
        assert_eq!(seen, Some((2, 40)));
    }
}
