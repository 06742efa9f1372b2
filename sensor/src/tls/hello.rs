//! ClientHello and ServerHello, parsed by tls-parser and reduced to what
//! the records and fingerprints need.

use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extension_alpn_content,
    parse_tls_extension_ec_point_formats_content, parse_tls_extension_elliptic_curves_content,
    parse_tls_extension_sni_content, parse_tls_message_handshake,
};

use crate::model::tls::is_grease;

pub const EXT_SNI: u16 = 0;
pub const EXT_SUPPORTED_GROUPS: u16 = 10;
pub const EXT_EC_POINT_FORMATS: u16 = 11;
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
pub const EXT_ALPN: u16 = 16;
pub const EXT_PRE_SHARED_KEY: u16 = 41;
pub const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// SHA-256 of "HelloRetryRequest" (RFC 8446 4.1.3): a ServerHello with this
/// random is a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub version: u16,
    pub ciphers: Vec<u16>,
    /// Extension types in wire order, GREASE included.
    pub extensions: Vec<u16>,
    pub sni: Option<String>,
    pub alpn: Vec<Vec<u8>>,
    pub supported_versions: Vec<u16>,
    pub groups: Vec<u16>,
    pub point_formats: Vec<u8>,
    pub signature_algorithms: Vec<u16>,
    pub session_id_len: usize,
    /// An SSLv2-compatible hello's 3-byte cipher specs, all of them, in
    /// order; `ciphers` holds the ones a TLS server can choose (first byte
    /// 0). `None` for a TLS ClientHello.
    pub sslv2_specs: Option<Vec<u32>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    pub selected_version: Option<u16>,
    pub cipher: u16,
    pub extensions: Vec<u16>,
    pub alpn: Option<Vec<u8>>,
    pub retry_request: bool,
    pub session_id: Vec<u8>,
}

impl ServerHello {
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unparsable {0}")]
pub struct HelloError(pub &'static str);

/// Walks an extensions block as (type, data) pairs. tls-parser's list
/// parser stops silently at the first extension whose content it rejects,
/// which would corrupt fingerprints; the framing is simple enough to walk
/// here and leave the content parsing to tls-parser.
fn extensions(block: &[u8]) -> Result<Vec<(u16, &[u8])>, HelloError> {
    let walk = || {
        let mut rest = block;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let Some(&[t0, t1, n0, n1]) = rest.first_chunk::<4>() else {
                rest = &[];
                return Some(Err(HelloError("extension header")));
            };
            let n = u16::from_be_bytes([n0, n1]) as usize;
            let Some(data) = rest.get(4..4 + n) else {
                rest = &[];
                return Some(Err(HelloError("extension length")));
            };
            rest = &rest[4 + n..];
            Some(Ok((u16::from_be_bytes([t0, t1]), data)))
        })
    };
    // The framing is checked and counted first, so that the list is
    // allocated once at its size: growing it was a third of a hello's
    // allocations.
    let count = walk().try_fold(0, |n, e| e.map(|_| n + 1))?;
    let mut out = Vec::with_capacity(count);
    for e in walk() {
        out.push(e?);
    }
    Ok(out)
}

fn u16_list(data: &[u8]) -> Vec<u16> {
    data.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

/// The signature_algorithms extension's list, read as tls-parser reads it
/// (a list cut short is none, an odd last byte is ignored) but into one
/// allocation of the right size: tls-parser's list grew a step at a time.
fn signature_schemes(data: &[u8]) -> Option<Vec<u16>> {
    let n = u16::from_be_bytes([*data.first()?, *data.get(1)?]) as usize;
    Some(u16_list(data.get(2..2 + n)?))
}

pub fn parse_client_hello(msg: &[u8]) -> Result<ClientHello, HelloError> {
    let ch = match parse_tls_message_handshake(msg) {
        Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) => ch,
        _ => return Err(HelloError("ClientHello")),
    };
    let mut out = ClientHello {
        version: ch.version.0,
        ciphers: ch.ciphers.iter().map(|c| c.0).collect(),
        session_id_len: ch.session_id.map_or(0, |s| s.len()),
        ..Default::default()
    };
    let exts = extensions(ch.ext.unwrap_or_default())?;
    out.extensions.reserve_exact(exts.len());
    for (t, data) in exts {
        out.extensions.push(t);
        match t {
            EXT_SNI => {
                if let Ok((_, TlsExtension::SNI(names))) = parse_tls_extension_sni_content(data) {
                    out.sni = names
                        .iter()
                        .find(|(kind, _)| kind.0 == 0)
                        .map(|(_, name)| String::from_utf8_lossy(name).into_owned());
                }
            }
            EXT_ALPN => {
                if let Ok((_, TlsExtension::ALPN(protos))) = parse_tls_extension_alpn_content(data)
                {
                    out.alpn = protos.iter().map(|p| p.to_vec()).collect();
                }
            }
            EXT_SUPPORTED_GROUPS => {
                if let Ok((_, TlsExtension::EllipticCurves(groups))) =
                    parse_tls_extension_elliptic_curves_content(data)
                {
                    out.groups = groups.iter().map(|g| g.0).collect();
                }
            }
            EXT_EC_POINT_FORMATS => {
                if let Ok((_, TlsExtension::EcPointFormats(f))) =
                    parse_tls_extension_ec_point_formats_content(data)
                {
                    out.point_formats = f.to_vec();
                }
            }
            EXT_SIGNATURE_ALGORITHMS => {
                if let Some(schemes) = signature_schemes(data) {
                    out.signature_algorithms = schemes;
                }
            }
            EXT_SUPPORTED_VERSIONS => {
                // ClientHello form: a one-byte length, then the versions.
                if let Some((&n, rest)) = data.split_first() {
                    out.supported_versions = u16_list(&rest[..(n as usize).min(rest.len())]);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

const SSLV2_CLIENT_HELLO: u8 = 1;

/// An SSLv2-compatible ClientHello (RFC 5246 E.2, SSL 2.0 section C.2.1):
/// the body of its 2-byte-header record. tls-parser reads only the TLS
/// form, and the layout is five fixed fields and three lists.
pub fn parse_sslv2_client_hello(body: &[u8]) -> Result<ClientHello, HelloError> {
    let err = HelloError("SSLv2 ClientHello");
    let field = |at: usize| -> Result<u16, HelloError> {
        body.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(err)
    };
    if body.first() != Some(&SSLV2_CLIENT_HELLO) {
        return Err(err);
    }
    let version = field(1)?;
    let (specs_len, sid_len, challenge_len) = (
        usize::from(field(3)?),
        usize::from(field(5)?),
        usize::from(field(7)?),
    );
    // SSL 2.0 C.2.1: 16 to 32 bytes of challenge; specs are 3 bytes each.
    if specs_len % 3 != 0 || !(16..=32).contains(&challenge_len) {
        return Err(err);
    }
    let specs = body.get(9..9 + specs_len).ok_or(err)?;
    if body.len() < 9 + specs_len + sid_len + challenge_len {
        return Err(err);
    }
    let specs: Vec<u32> = specs
        .chunks_exact(3)
        .map(|c| u32::from_be_bytes([0, c[0], c[1], c[2]]))
        .collect();
    Ok(ClientHello {
        version,
        ciphers: specs
            .iter()
            .filter_map(|s| u16::try_from(*s).ok())
            .collect(),
        session_id_len: sid_len,
        sslv2_specs: Some(specs),
        ..Default::default()
    })
}

/// ServerHello's fixed layout is read here: tls-parser drops the
/// extensions of an SSL 3.0 ServerHello (JA3S needs them) and rejects
/// versions it does not know (TLS 1.3 drafts, private versions).
pub fn parse_server_hello(msg: &[u8]) -> Result<ServerHello, HelloError> {
    let err = HelloError("ServerHello");
    let body = msg.get(4..).ok_or(err)?;
    let version = u16::from_be_bytes([*body.first().ok_or(err)?, *body.get(1).ok_or(err)?]);
    let random = body.get(2..34).ok_or(err)?;
    let sid_len = *body.get(34).ok_or(err)? as usize;
    // TLS 1.3 draft ServerHellos (0x7f..) have neither session id nor compression.
    let draft = version >> 8 == 0x7f;
    let (session_id, at) = if draft {
        (&[][..], 34)
    } else {
        (body.get(35..35 + sid_len).ok_or(err)?, 35 + sid_len)
    };
    let cipher = u16::from_be_bytes([*body.get(at).ok_or(err)?, *body.get(at + 1).ok_or(err)?]);
    let ext_at = if draft { at + 2 } else { at + 3 };
    if body.len() < ext_at {
        return Err(err);
    }
    let ext = match body.get(ext_at..ext_at + 2) {
        Some(n) => {
            let n = u16::from_be_bytes([n[0], n[1]]) as usize;
            Some(body.get(ext_at + 2..ext_at + 2 + n).ok_or(err)?)
        }
        None => None,
    };
    let mut out = ServerHello {
        legacy_version: version,
        cipher,
        retry_request: random == HRR_RANDOM.as_slice(),
        session_id: session_id.to_vec(),
        ..Default::default()
    };
    let exts = extensions(ext.unwrap_or_default())?;
    out.extensions.reserve_exact(exts.len());
    for (t, data) in exts {
        out.extensions.push(t);
        match t {
            EXT_SUPPORTED_VERSIONS if data.len() == 2 => {
                out.selected_version = Some(u16::from_be_bytes([data[0], data[1]]));
            }
            EXT_ALPN => {
                if let Ok((_, TlsExtension::ALPN(protos))) = parse_tls_extension_alpn_content(data)
                {
                    out.alpn = protos.first().map(|p| p.to_vec());
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The highest non-GREASE version a ClientHello offers.
pub fn max_offered_version(ch: &ClientHello) -> u16 {
    ch.supported_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(ch.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tls_parser::parse_tls_extension_signature_algorithms_content as theirs;

    #[test]
    fn signature_schemes_are_read_as_tls_parser_reads_them() {
        for data in [
            &[0, 4, 4, 3, 8, 4][..],
            &[0, 0],
            &[0, 3, 4, 3, 8],
            &[0, 6, 4, 3],
            &[0],
            &[],
            &[0, 2, 4, 3, 9, 9],
        ] {
            let expected = match theirs(data) {
                Ok((_, TlsExtension::SignatureAlgorithms(s))) => Some(s),
                _ => None,
            };
            assert_eq!(signature_schemes(data), expected, "{data:?}");
        }
    }
}
