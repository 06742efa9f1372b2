//! Upgrade preambles (DESIGN.md "TLS inside other protocols"): a
//! connection whose first payload opens a protocol that may start TLS
//! later (PostgreSQL SSLRequest or GSSENCRequest, a MySQL greeting,
//! SMTP/FTP `220`, IMAP `* OK`, POP3 `+OK`, an LDAP message, HTTP
//! `CONNECT`) is not called plaintext at once: CONNS holds it in
//! `CONN_PREAMBLE`, counted like every connection, and its packets are
//! shipped, up to PREAMBLE_BYTES, so user space can follow the upgrade. A
//! ClientHello within that makes it a handshake flow like any other; past
//! the bound it is plaintext. Only connections in `CONN_PENDING` pay for
//! the recognition, once, and only preamble connections for the rest.

use aya_ebpf::programs::TcContext;
use sensor_common::{CONN_PLAIN, CONN_TLS, ConnState, Counter, PREAMBLE_BYTES};

use super::count;
use super::parse::{Packet, opens_flow};

/// The first payload's first 8 bytes open an upgradable protocol. Read
/// through the helper: once per connection, and the linear area may not
/// hold them.
#[inline(always)]
pub(super) fn opens_preamble(ctx: &TcContext, pkt: &Packet) -> bool {
    if pkt.payload_len < 8 {
        return false;
    }
    let Ok(b) = ctx.load::<[u8; 8]>(pkt.payload_off) else {
        return false;
    };
    is_preamble(b)
}

/// A cheap test on 8 bytes; user space (sensor/src/tls/starttls/) judges
/// the preamble properly. A false positive costs one connection's
/// shipping of at most PREAMBLE_BYTES.
#[inline(always)]
fn is_preamble(b: [u8; 8]) -> bool {
    // PostgreSQL SSLRequest (80877103) or GSSENCRequest (80877104), length 8.
    let postgres = b[0] == 0
        && b[1] == 0
        && b[2] == 0
        && b[3] == 8
        && b[4] == 0x04
        && b[5] == 0xd2
        && b[6] == 0x16
        && (b[7] == 0x2f || b[7] == 0x30);
    // MySQL/MariaDB greeting: a packet under 64 KiB, sequence 0, protocol 10.
    let mysql = b[2] == 0 && b[3] == 0 && b[4] == 10;
    // SMTP and FTP greet with 220, IMAP with "* OK" or "* PREAUTH", POP3 "+OK".
    let text = (b[0] == b'2' && b[1] == b'2' && b[2] == b'0' && (b[3] == b' ' || b[3] == b'-'))
        || (b[0] == b'*' && b[1] == b' ' && (b[2] == b'O' || b[2] == b'P'))
        || (b[0] == b'+' && b[1] == b'O' && b[2] == b'K');
    let connect = b == *b"CONNECT ";
    // LDAP: a SEQUENCE (short or 4-byte long form length, as OpenLDAP
    // writes it) opening with an INTEGER message id.
    let ldap = b[0] == 0x30
        && ((b[1] < 0x80 && b[2] == 0x02 && b[3] >= 1 && b[3] <= 4)
            || (b[1] == 0x84 && b[6] == 0x02 && b[7] >= 1 && b[7] <= 4));
    postgres || mysql || text || connect || ldap
}

/// What a packet of a `CONN_PREAMBLE` connection (duplicates already left
/// out, not yet counted) does next.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Ship it: the preamble is within its bound.
    Ship,
    /// A ClientHello: the connection is now `CONN_TLS`, open its
    /// handshake flow.
    Tls,
    /// Past the bound without TLS: now `CONN_PLAIN`, counted only.
    Plain,
}

#[inline(always)]
pub(super) fn preamble(ctx: &TcContext, pkt: &Packet, s: &mut ConnState) -> Step {
    let len = pkt.payload_len as u64;
    if opens_flow(ctx, pkt) {
        s.phase = CONN_TLS;
        count(Counter::TlsFlows, 1);
        return Step::Tls;
    }
    // Counted before this packet's own bytes are added: the bound covers
    // what was shipped, this packet included.
    if s.bytes_of(0) + s.bytes_of(1) + len > PREAMBLE_BYTES {
        s.phase = CONN_PLAIN;
        count(Counter::PlainFlows, 1);
        count(Counter::PreamblePastBound, 1);
        return Step::Plain;
    }
    Step::Ship
}
