//! The line-based upgrades: SMTP `STARTTLS` and FTP `AUTH TLS` (both greet
//! with `220`, the client's commands tell them apart), IMAP `STARTTLS`,
//! POP3 `STLS`, and HTTP `CONNECT` (a tunnel whose TLS is the client's).
//!
//! SMTP, FTP and POP3 answer commands in order (pipelining included), so
//! the reply to the upgrade is the one whose number is the command's; IMAP
//! answers by tag; HTTP with a status line and headers.

use super::dialect::{Event, Protocol, Step, line_len, starts_with_ignore_case};

/// Longest line accepted (RFC 5321 allows 512 for a reply line, 1000 with
/// extensions; a proxy's headers fit too).
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A `220` greeting: SMTP or FTP, until the client says which.
    Greeting220,
    Smtp,
    Ftp,
    Imap,
    Pop3,
    Connect,
}

#[derive(Debug)]
pub(super) struct Text {
    kind: Kind,
    /// Client commands so far.
    commands: u32,
    /// Complete server replies so far, the greeting not counted.
    replies: u32,
    greeted: bool,
    /// The number of the command that asked for TLS.
    upgrade: Option<u32>,
    /// The tag of IMAP's STARTTLS command.
    tag: Option<Vec<u8>>,
    /// The code of an SMTP/FTP multi-line reply in progress.
    multiline: Option<[u8; 3]>,
    /// HTTP: inside a request's or a response's headers, per direction;
    /// the response's status.
    headers: [bool; 2],
    status: Option<u16>,
}

/// The first payload of a line-based protocol; true when the client sent it.
pub(super) fn opens(first: &[u8]) -> Option<(Text, bool)> {
    let (kind, from_client) = if reply_code(first).is_some_and(|c| &c == b"220") {
        (Kind::Greeting220, false)
    } else if first.starts_with(b"* OK") || first.starts_with(b"* PREAUTH") {
        (Kind::Imap, false)
    } else if first.starts_with(b"+OK") {
        (Kind::Pop3, false)
    } else if first.starts_with(b"CONNECT ") {
        (Kind::Connect, true)
    } else {
        return None;
    };
    let t = Text {
        kind,
        commands: 0,
        replies: 0,
        // Client-first: nothing to wait for.
        greeted: from_client,
        upgrade: None,
        tag: None,
        multiline: None,
        headers: [false, false],
        status: None,
    };
    Some((t, from_client))
}

/// The three digits of an SMTP/FTP reply line followed by ' ', '-' or its end.
fn reply_code(line: &[u8]) -> Option<[u8; 3]> {
    let code: [u8; 3] = line.get(..3)?.try_into().ok()?;
    let digits = code.iter().all(u8::is_ascii_digit);
    let sep = matches!(line.get(3), None | Some(b' ' | b'-' | b'\r' | b'\n'));
    (digits && sep).then_some(code)
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

impl Text {
    pub(super) fn protocol(&self) -> Protocol {
        match self.kind {
            Kind::Greeting220 | Kind::Smtp => Protocol::Smtp,
            Kind::Ftp => Protocol::Ftp,
            Kind::Imap => Protocol::Imap,
            Kind::Pop3 => Protocol::Pop3,
            Kind::Connect => Protocol::HttpConnect,
        }
    }

    pub(super) fn step(&mut self, from_client: bool, buf: &[u8]) -> Step {
        let Some(n) = line_len(buf) else {
            return if buf.len() > MAX_LINE {
                Step::Bad
            } else {
                Step::NeedMore
            };
        };
        let line = trim_eol(&buf[..n]);
        let event = if from_client {
            self.command(line)
        } else {
            self.reply(line)
        };
        match event {
            Some(e) => Step::Took(n, e),
            None => Step::Bad,
        }
    }

    fn command(&mut self, line: &[u8]) -> Option<Event> {
        if self.kind == Kind::Connect {
            return self.request_line(line);
        }
        // A client that speaks before the greeting is not this protocol.
        if !self.greeted {
            return None;
        }
        self.commands += 1;
        let is = |c: &[u8]| starts_with_ignore_case(line, c);
        match self.kind {
            Kind::Greeting220 | Kind::Smtp | Kind::Ftp => {
                if is(b"STARTTLS") {
                    self.kind = Kind::Smtp;
                    self.upgrade = Some(self.commands);
                } else if is(b"AUTH TLS") || is(b"AUTH SSL") {
                    self.kind = Kind::Ftp;
                    self.upgrade = Some(self.commands);
                } else if is(b"EHLO") || is(b"HELO") || is(b"LHLO") {
                    self.kind = Kind::Smtp;
                } else if is(b"USER") || is(b"FEAT") || is(b"SYST") {
                    self.kind = Kind::Ftp;
                }
            }
            Kind::Pop3 => {
                if is(b"STLS") {
                    self.upgrade = Some(self.commands);
                }
            }
            Kind::Imap => {
                let mut words = line.splitn(3, |b| *b == b' ');
                let tag = words.next()?;
                if words
                    .next()
                    .is_some_and(|c| c.eq_ignore_ascii_case(b"STARTTLS"))
                {
                    self.tag = Some(tag.to_vec());
                }
            }
            Kind::Connect => unreachable!("handled above"),
        }
        Some(Event::None)
    }

    fn reply(&mut self, line: &[u8]) -> Option<Event> {
        let done = match self.kind {
            Kind::Greeting220 | Kind::Smtp | Kind::Ftp => self.numeric_reply(line)?,
            Kind::Pop3 => {
                if line.starts_with(b"+OK") || line.starts_with(b"-ERR") {
                    Some(line.starts_with(b"+OK"))
                } else {
                    // A line of a multi-line answer (CAPA).
                    None
                }
            }
            Kind::Imap => {
                if !self.greeted {
                    self.greeted = true;
                    return Some(Event::None);
                }
                let tagged = self
                    .tag
                    .as_ref()
                    .and_then(|t| line.strip_prefix(t.as_slice())?.strip_prefix(b" "));
                return Some(match tagged {
                    Some(rest) if starts_with_ignore_case(rest, b"OK") => Event::Accepted,
                    Some(_) => Event::Refused,
                    None => Event::None,
                });
            }
            Kind::Connect => return self.status_line(line),
        };
        // `done`: a complete reply, and whether it was positive.
        let Some(positive) = done else {
            return Some(Event::None);
        };
        if !self.greeted {
            self.greeted = true;
            return Some(Event::None);
        }
        self.replies += 1;
        if self.upgrade == Some(self.replies) {
            return Some(if positive {
                Event::Accepted
            } else {
                Event::Refused
            });
        }
        Some(Event::None)
    }

    /// An SMTP/FTP reply line: None when it is not one, Some(None) inside
    /// a multi-line reply, Some(Some(positive)) at its end.
    fn numeric_reply(&mut self, line: &[u8]) -> Option<Option<bool>> {
        let code = reply_code(line);
        if let Some(open) = self.multiline {
            // FTP lets a multi-line reply hold any text until the line
            // that starts with its code and a space.
            if code == Some(open) && line.get(3) != Some(&b'-') {
                self.multiline = None;
                return Some(Some(self.positive(open)));
            }
            return Some(None);
        }
        let code = code?;
        if line.get(3) == Some(&b'-') {
            self.multiline = Some(code);
            return Some(None);
        }
        Some(Some(self.positive(code)))
    }

    /// Whether a final reply agrees to the upgrade: SMTP 220 (RFC 3207),
    /// FTP 234 (RFC 4217; 334 from servers that take `AUTH SSL`).
    fn positive(&self, code: [u8; 3]) -> bool {
        match self.kind {
            Kind::Ftp => &code == b"234" || &code == b"334",
            _ => &code == b"220",
        }
    }

    /// The client's request and headers; only CONNECT opens a tunnel.
    fn request_line(&mut self, line: &[u8]) -> Option<Event> {
        let i = 0;
        if self.headers[i] {
            self.headers[i] = !line.is_empty();
            return Some(Event::None);
        }
        if line.is_empty() {
            return Some(Event::None);
        }
        if !line.starts_with(b"CONNECT ") {
            // Plain HTTP proxying on the same connection.
            return Some(Event::Refused);
        }
        self.headers[i] = true;
        self.commands += 1;
        Some(Event::None)
    }

    /// The proxy's status line and headers: 2xx opens the tunnel once the
    /// headers end; 407 asks for credentials and the client may try again.
    fn status_line(&mut self, line: &[u8]) -> Option<Event> {
        let i = 1;
        if self.headers[i] {
            if !line.is_empty() {
                return Some(Event::None);
            }
            self.headers[i] = false;
            return Some(match self.status.take() {
                Some(200..=299) => Event::Accepted,
                Some(407) => Event::None,
                _ => Event::Refused,
            });
        }
        if !line.starts_with(b"HTTP/1.") {
            return None;
        }
        let code = line.get(9..12)?;
        let code = std::str::from_utf8(code).ok()?.parse().ok()?;
        self.status = Some(code);
        self.headers[i] = true;
        Some(Event::None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{HELLO, play, upgraded};
    use super::super::{Outcome, Plain, Protocol};

    #[test]
    fn smtp_starttls_as_openssl_s_client_does_it() {
        let o = play(&[
            (false, b"220 mail.example ESMTP Python SMTP 1.4.6\r\n"),
            (true, b"EHLO mail.example\r\n"),
            (
                false,
                b"250-mail.example\r\n250-SIZE 33554432\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 HELP\r\n",
            ),
            (true, b"STARTTLS\r\n"),
            (false, b"220 Ready to start TLS\r\n"),
            (true, HELLO),
        ]);
        assert_eq!(upgraded(&o), Some((Protocol::Smtp, HELLO)));
    }

    #[test]
    fn smtp_pipelined_and_refused() {
        // EHLO and STARTTLS in one segment; the reply to STARTTLS is the second.
        let o = play(&[
            (false, b"220-mail\r\n220 more greeting\r\n"),
            (true, b"EHLO x\r\nSTARTTLS\r\n"),
            (false, b"250 mail\r\n"),
            (false, b"454 4.7.0 TLS not available\r\n"),
        ]);
        assert_eq!(o, Outcome::Plain(Plain::Refused));
    }

    #[test]
    fn ftp_auth_tls_with_a_multiline_greeting() {
        let o = play(&[
            (false, b"220-Welcome\r\n some text\r\n220 ready\r\n"),
            (true, b"AUTH TLS\r\n"),
            (false, b"234 AUTH TLS successful\r\n"),
            (true, HELLO),
        ]);
        assert_eq!(upgraded(&o), Some((Protocol::Ftp, HELLO)));
        let o = play(&[
            (false, b"220 ready\r\n"),
            (true, b"AUTH TLS\r\n"),
            (false, b"500 not understood\r\n"),
        ]);
        assert_eq!(o, Outcome::Plain(Plain::Refused));
    }

    #[test]
    fn imap_starttls_by_tag() {
        let o = play(&[
            (false, b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
            (true, b". CAPABILITY\r\n"),
            (false, b"* CAPABILITY IMAP4rev1 STARTTLS\r\n. OK done\r\n"),
            (true, b". STARTTLS\r\n"),
            (false, b". OK Begin TLS negotiation now\r\n"),
            (true, HELLO),
        ]);
        assert_eq!(upgraded(&o), Some((Protocol::Imap, HELLO)));
        let o = play(&[
            (false, b"* OK ready\r\n"),
            (true, b"a1 STARTTLS\r\n"),
            (false, b"a1 BAD no\r\n"),
        ]);
        assert_eq!(o, Outcome::Plain(Plain::Refused));
    }

    #[test]
    fn pop3_stls_after_capa() {
        let o = play(&[
            (false, b"+OK POP3 ready\r\n"),
            (true, b"CAPA\r\n"),
            (false, b"+OK\r\nSTLS\r\nUSER\r\n.\r\n"),
            (true, b"STLS\r\n"),
            (false, b"+OK Begin TLS\r\n"),
            (true, HELLO),
        ]);
        assert_eq!(upgraded(&o), Some((Protocol::Pop3, HELLO)));
        let o = play(&[
            (false, b"+OK POP3 ready\r\n"),
            (true, b"STLS\r\n"),
            (false, b"-ERR no\r\n"),
        ]);
        assert_eq!(o, Outcome::Plain(Plain::Refused));
    }

    #[test]
    fn http_connect_tunnel() {
        let o = play(&[
            (
                true,
                b"CONNECT db.example:443 HTTP/1.1\r\nHost: db.example:443\r\n\r\n",
            ),
            (false, b"HTTP/1.1 200 Connection established\r\n\r\n"),
            (true, HELLO),
        ]);
        assert_eq!(upgraded(&o), Some((Protocol::HttpConnect, HELLO)));
        // 407, then credentials, then the tunnel.
        let o = play(&[
            (true, b"CONNECT a:443 HTTP/1.1\r\n\r\n"),
            (
                false,
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            ),
            (
                true,
                b"CONNECT a:443 HTTP/1.1\r\nProxy-Authorization: Basic eDp5\r\n\r\n",
            ),
            (false, b"HTTP/1.1 200 OK\r\n\r\n"),
            (true, HELLO),
        ]);
        assert_eq!(upgraded(&o), Some((Protocol::HttpConnect, HELLO)));
        let o = play(&[
            (true, b"CONNECT a:443 HTTP/1.1\r\n\r\n"),
            (false, b"HTTP/1.1 403 Forbidden\r\n\r\n"),
        ]);
        assert_eq!(o, Outcome::Plain(Plain::Refused));
    }
}
