//! TLS protocol numbers as typed values, with the names RECORDS.md and the
//! IANA registries give them. Unknown numbers have no name; `export`
//! decides how to print them.

use tls_parser::TlsCipherSuiteID;

/// A protocol version as sent on the wire (`0x0303` is TLS 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion(pub u16);

impl ProtocolVersion {
    pub const SSL3: Self = Self(0x0300);
    pub const TLS10: Self = Self(0x0301);
    pub const TLS11: Self = Self(0x0302);
    pub const TLS12: Self = Self(0x0303);
    pub const TLS13: Self = Self(0x0304);

    /// RECORDS.md's name: `"SSL 3.0"` … `"TLS 1.3"`.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0300 => "SSL 3.0",
            0x0301 => "TLS 1.0",
            0x0302 => "TLS 1.1",
            0x0303 => "TLS 1.2",
            0x0304 => "TLS 1.3",
            _ => return None,
        })
    }

    /// TLS 1.3 and the versions that stood for it before RFC 8446: IETF
    /// drafts (0x7F00 | draft number; drafts 14 to 28 were deployed),
    /// Google's experiments (0x7E01, 0x7E02) and Facebook's (0xFB00 |
    /// draft, e.g. 0xFB1A for draft 26). All have TLS 1.3's message flow:
    /// everything after the ServerHello is encrypted, and the
    /// compatibility ChangeCipherSpec is no abbreviated TLS 1.2 handshake.
    pub fn is_tls13_family(self) -> bool {
        let v = self.0;
        v == 0x0304 || v >> 8 == 0x7f || (0x7e01..=0x7e02).contains(&v) || v >> 8 == 0xfb
    }

    /// The number after "TLS " (`"1.2"`), as OpenTelemetry's
    /// `tls.protocol.version` writes it.
    pub fn number(self) -> Option<&'static str> {
        self.name().and_then(|n| n.strip_prefix("TLS "))
    }
}

/// A cipher suite id (`0x1301` is TLS_AES_128_GCM_SHA256).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CipherSuite(pub u16);

impl CipherSuite {
    /// The IANA name, when tls-parser's registry knows the id.
    pub fn name(self) -> Option<&'static str> {
        TlsCipherSuiteID(self.0).get_ciphersuite().map(|c| c.name)
    }
}

/// An alert description (`40` is handshake_failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AlertDescription(pub u8);

impl AlertDescription {
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "close_notify",
            10 => "unexpected_message",
            20 => "bad_record_mac",
            21 => "decryption_failed",
            22 => "record_overflow",
            30 => "decompression_failure",
            40 => "handshake_failure",
            41 => "no_certificate",
            42 => "bad_certificate",
            43 => "unsupported_certificate",
            44 => "certificate_revoked",
            45 => "certificate_expired",
            46 => "certificate_unknown",
            47 => "illegal_parameter",
            48 => "unknown_ca",
            49 => "access_denied",
            50 => "decode_error",
            51 => "decrypt_error",
            60 => "export_restriction",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            86 => "inappropriate_fallback",
            90 => "user_canceled",
            100 => "no_renegotiation",
            109 => "missing_extension",
            110 => "unsupported_extension",
            111 => "certificate_unobtainable",
            112 => "unrecognized_name",
            113 => "bad_certificate_status_response",
            114 => "bad_certificate_hash_value",
            115 => "unknown_psk_identity",
            116 => "certificate_required",
            120 => "no_application_protocol",
            121 => "ech_required",
            _ => return None,
        })
    }
}

/// The first alert seen in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alert {
    pub description: AlertDescription,
    /// 1 warning, 2 fatal.
    pub level: Option<u8>,
    pub from_client: Option<bool>,
}

/// GREASE values (RFC 8701): 0x?A?A with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// RECORDS.md's spelling: the name, or `0x` and four upper-case hex digits.
impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "0x{:04X}", self.0),
        }
    }
}

/// The IANA name, or `0x1301`-style hex.
impl std::fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "0x{:04X}", self.0),
        }
    }
}

/// The description's name, or `unknown_N`.
impl std::fmt::Display for AlertDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown_{}", self.0),
        }
    }
}
