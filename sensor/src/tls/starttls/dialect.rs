//! What the preamble stage and its dialects share: the protocols, what a
//! message did, how a dialect reads the front of a direction's bytes, and
//! line helpers. Its own file so that the dialects need not import the
//! stage that holds them.

/// How TLS started (RECORDS.md `starttls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Postgres,
    Mysql,
    Smtp,
    Imap,
    Pop3,
    Ftp,
    Ldap,
    HttpConnect,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Postgres => "postgres",
            Protocol::Mysql => "mysql",
            Protocol::Smtp => "smtp",
            Protocol::Imap => "imap",
            Protocol::Pop3 => "pop3",
            Protocol::Ftp => "ftp",
            Protocol::Ldap => "ldap",
            Protocol::HttpConnect => "http_connect",
        }
    }
}

/// What one preamble message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    None,
    /// The server agreed (or, for MySQL, the client's SSL request itself):
    /// the client's next bytes are TLS.
    Accepted,
    Refused,
}

/// A dialect's reading of the front of one direction's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// No whole message yet.
    NeedMore,
    /// One message of this many bytes.
    Took(usize, Event),
    /// Not this protocol.
    Bad,
}

/// Where the first `\n` ends a line, when one does.
pub(super) fn line_len(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|b| *b == b'\n').map(|p| p + 1)
}

/// `s` starts with `prefix`, ASCII case ignored.
pub(super) fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}
