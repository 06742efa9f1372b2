//! JA3, JA3S (Salesforce) and JA4 (FoxIO, BSD-3-Clause). JA4S, JA4X and the
//! rest of JA4+ are under a licence that forbids shipping them: not here.

use std::fmt::Write as _;

use foldhash::{HashMap, HashMapExt as _};
use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::hello::{ClientHello, EXT_ALPN, EXT_SNI, ServerHello, max_offered_version};
use crate::model::tls::is_grease;

// Fingerprints are computed for every handshake, so the strings are built
// in one buffer each, without a String per number.

fn push_decimal_list<T: itoa::Integer>(out: &mut String, items: impl Iterator<Item = T>) {
    let mut buf = itoa::Buffer::new();
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push('-');
        }
        out.push_str(buf.format(item));
    }
}

fn push_hex4(out: &mut String, v: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((v >> shift) & 0xf) as usize] as char);
    }
}

/// `a,b,c` of 4-digit lowercase hex.
fn push_hex4_list(out: &mut String, items: &[u16]) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_hex4(out, *v);
    }
}

pub fn ja3_string(ch: &ClientHello) -> String {
    let ok = |v: &u16| !is_grease(*v);
    let mut s = String::with_capacity(256);
    push_decimal_list(&mut s, std::iter::once(ch.version));
    s.push(',');
    // An SSLv2-compatible hello: every spec, as Zeek's JA3 (the reference
    // that reads these hellos) counts them; GREASE exists only in the TLS
    // ones.
    match &ch.sslv2_specs {
        Some(specs) => push_decimal_list(
            &mut s,
            specs
                .iter()
                .copied()
                .filter(|v| u16::try_from(*v).map_or(true, |v| !is_grease(v))),
        ),
        None => push_decimal_list(&mut s, ch.ciphers.iter().copied().filter(ok)),
    }
    s.push(',');
    push_decimal_list(&mut s, ch.extensions.iter().copied().filter(ok));
    s.push(',');
    push_decimal_list(&mut s, ch.groups.iter().copied().filter(ok));
    s.push(',');
    push_decimal_list(&mut s, ch.point_formats.iter().copied());
    s
}

/// Lowercase hex of a digest, without going through `char`s one by one.
fn push_hex(out: &mut String, bytes: &[u8]) {
    let mut buf = [0u8; 64];
    let buf = &mut buf[..bytes.len() * 2];
    if hex::encode_to_slice(bytes, buf).is_ok() {
        out.push_str(std::str::from_utf8(buf).unwrap_or_default());
    }
}

fn md5_hex(s: &str) -> String {
    let mut out = String::with_capacity(32);
    push_hex(&mut out, &Md5::digest(s.as_bytes()));
    out
}

pub fn ja3(ch: &ClientHello) -> String {
    md5_hex(&ja3_string(ch))
}

pub fn ja3s_string(sh: &ServerHello) -> String {
    let mut s = String::with_capacity(64);
    push_decimal_list(&mut s, std::iter::once(sh.legacy_version));
    s.push(',');
    push_decimal_list(&mut s, std::iter::once(sh.cipher));
    s.push(',');
    push_decimal_list(
        &mut s,
        sh.extensions.iter().copied().filter(|v| !is_grease(*v)),
    );
    s
}

pub fn ja3s(sh: &ServerHello) -> String {
    md5_hex(&ja3s_string(sh))
}

fn ja4_version(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

fn push_ja4_alpn(out: &mut String, ch: &ClientHello) {
    let Some(first) = ch.alpn.first().filter(|a| !a.is_empty()) else {
        out.push_str("00");
        return;
    };
    let (a, b) = (first[0], first[first.len() - 1]);
    if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() {
        out.push(a as char);
        out.push(b as char);
    } else {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(HEX[(a >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
}

fn push_truncated_sha256(out: &mut String, s: &str) {
    let digest = Sha256::digest(s.as_bytes());
    push_hex(out, &digest[..6]);
}

/// JA4 `a_b_c` for a ClientHello over TCP.
pub fn ja4(ch: &ClientHello) -> String {
    let mut ciphers: Vec<u16> = ch
        .ciphers
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let exts = ch.extensions.iter().filter(|e| !is_grease(**e)).count();
    let mut out = String::with_capacity(36);
    out.push('t');
    out.push_str(ja4_version(max_offered_version(ch)));
    out.push(if ch.extensions.contains(&EXT_SNI) {
        'd'
    } else {
        'i'
    });
    let _ = write!(out, "{:02}{:02}", ciphers.len().min(99), exts.min(99));
    push_ja4_alpn(&mut out, ch);
    out.push('_');
    // Fixed-width hex sorts as the numbers do.
    ciphers.sort_unstable();
    let mut text = String::with_capacity(512);
    if ciphers.is_empty() {
        out.push_str("000000000000");
    } else {
        push_hex4_list(&mut text, &ciphers);
        push_truncated_sha256(&mut out, &text);
    }
    out.push('_');
    let mut sorted_exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|e| !is_grease(*e) && *e != EXT_SNI && *e != EXT_ALPN)
        .collect();
    sorted_exts.sort_unstable();
    if sorted_exts.is_empty() {
        out.push_str("000000000000");
    } else {
        text.clear();
        push_hex4_list(&mut text, &sorted_exts);
        let sigs: Vec<u16> = ch
            .signature_algorithms
            .iter()
            .copied()
            .filter(|s| !is_grease(*s))
            .collect();
        if !sigs.is_empty() {
            text.push('_');
            push_hex4_list(&mut text, &sigs);
        }
        push_truncated_sha256(&mut out, &text);
    }
    out
}

/// Hellos the memo remembers before it starts over.
const MEMO_ENTRIES: usize = 1024;
/// A hello whose fingerprint inputs are longer than this many numbers (a
/// real stack's are about a hundred) is fingerprinted without the memo, so
/// that the memo's size stays bounded (4 KiB a key).
const MEMO_MAX_KEY: usize = 1024;

/// JA3, JA4 and JA3S already computed, by everything they read from the
/// hello. The clients and servers of a cluster run a handful of TLS
/// stacks, and a stack's hellos differ only in what no fingerprint reads
/// (random, session id, key shares, server name): so the strings and
/// digests are computed once per stack rather than once per connection.
/// The key is every input itself, not a hash of them, so a hit is exact.
#[derive(Debug)]
pub struct FingerprintMemo {
    clients: HashMap<Box<[u32]>, (String, String)>,
    servers: HashMap<Box<[u32]>, String>,
    key: Vec<u32>,
}

impl Default for FingerprintMemo {
    fn default() -> Self {
        Self {
            clients: HashMap::new(),
            servers: HashMap::new(),
            key: Vec::with_capacity(256),
        }
    }
}

impl FingerprintMemo {
    /// JA3 and JA4 of `ch`; `full` counts the times the memo started over.
    pub fn client(&mut self, ch: &ClientHello, full: &mut u64) -> (String, String) {
        client_key(ch, &mut self.key);
        if let Some(known) = self.clients.get(self.key.as_slice()) {
            return known.clone();
        }
        let fresh = (ja3(ch), ja4(ch));
        remember(&mut self.clients, &self.key, &fresh, full);
        fresh
    }

    /// JA3S of `sh`.
    pub fn ja3s(&mut self, sh: &ServerHello, full: &mut u64) -> String {
        self.key.clear();
        self.key
            .extend([u32::from(sh.legacy_version), u32::from(sh.cipher)]);
        self.key.extend(sh.extensions.iter().map(|&e| u32::from(e)));
        if let Some(known) = self.servers.get(self.key.as_slice()) {
            return known.clone();
        }
        let fresh = ja3s(sh);
        remember(&mut self.servers, &self.key, &fresh, full);
        fresh
    }
}

fn remember<V: Clone>(map: &mut HashMap<Box<[u32]>, V>, key: &[u32], v: &V, full: &mut u64) {
    if key.len() > MEMO_MAX_KEY {
        return;
    }
    if map.len() >= MEMO_ENTRIES {
        map.clear();
        *full += 1;
    }
    map.insert(key.into(), v.clone());
}

/// Everything `ja3` and `ja4` read, each list after its length.
fn client_key(ch: &ClientHello, key: &mut Vec<u32>) {
    fn list<T: Copy + Into<u32>>(key: &mut Vec<u32>, items: &[T]) {
        key.push(items.len() as u32);
        key.extend(items.iter().map(|&v| v.into()));
    }
    key.clear();
    key.push(ch.version.into());
    list(key, &ch.ciphers);
    list(key, &ch.extensions);
    list(key, &ch.groups);
    list(key, &ch.point_formats);
    list(key, &ch.signature_algorithms);
    list(key, &ch.supported_versions);
    match &ch.sslv2_specs {
        Some(specs) => list(key, specs),
        None => key.push(u32::MAX),
    }
    // JA4 reads the first and last byte of the first protocol only.
    key.push(match ch.alpn.first() {
        None => 0,
        Some(a) => match (a.first(), a.last()) {
            (Some(&x), Some(&y)) => 1 << 16 | u32::from(x) << 8 | u32::from(y),
            _ => 1 << 17,
        },
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ClientHello of the JA4 specification's worked example
    /// (FoxIO ja4 technical details, "t13d1516h2_8daaf6152771_e5627efa2ab1").
    fn foxio_example() -> ClientHello {
        ClientHello {
            version: 0x0303,
            ciphers: vec![
                0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
                0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            extensions: vec![
                0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023,
                0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
            ],
            sni: Some("example.com".into()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            supported_versions: vec![0x0a0a, 0x0304, 0x0303],
            groups: vec![],
            point_formats: vec![],
            signature_algorithms: vec![
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
            session_id_len: 32,
            sslv2_specs: None,
        }
    }

    #[test]
    fn ja4_matches_the_specification_example() {
        assert_eq!(
            ja4(&foxio_example()),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
    }

    #[test]
    fn ja4_ignores_grease_and_handles_missing_parts() {
        let mut ch = foxio_example();
        ch.ciphers.insert(0, 0x1a1a);
        ch.extensions.insert(0, 0x2a2a);
        assert_eq!(ja4(&ch), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        let bare = ClientHello {
            version: 0x0300,
            ciphers: vec![],
            ..Default::default()
        };
        assert_eq!(ja4(&bare), "ts3i000000_000000000000_000000000000");
    }

    #[test]
    fn ja4_alpn_non_alphanumeric_uses_hex() {
        let mut ch = foxio_example();
        ch.alpn = vec![vec![0xab, b'x', 0xcd]];
        assert!(ja4(&ch).starts_with("t13d1516ad_"));
    }

    #[test]
    fn ja3_of_the_salesforce_readme_example() {
        // JA3 README: "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
        // hashes to ada70206e40642a3e4461f35503241d5.
        let ch = ClientHello {
            version: 769,
            ciphers: vec![47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
            extensions: vec![0, 10, 11],
            groups: vec![23, 24, 25],
            point_formats: vec![0],
            ..Default::default()
        };
        assert_eq!(
            ja3_string(&ch),
            "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
        );
        assert_eq!(ja3(&ch), "ada70206e40642a3e4461f35503241d5");
    }

    #[test]
    fn ja3_drops_grease_everywhere() {
        let ch = ClientHello {
            version: 771,
            ciphers: vec![0x0a0a, 4865],
            extensions: vec![0xfafa, 0, 0x1a1a],
            groups: vec![0x3a3a, 29],
            point_formats: vec![0],
            ..Default::default()
        };
        assert_eq!(ja3_string(&ch), "771,4865,0,29,0");
    }

    #[test]
    fn ja3s_string_form() {
        let sh = ServerHello {
            legacy_version: 769,
            cipher: 47,
            extensions: vec![65281, 0, 11, 35, 5, 16],
            ..Default::default()
        };
        assert_eq!(ja3s_string(&sh), "769,47,65281-0-11-35-5-16");
    }

    #[test]
    fn the_memo_gives_what_computing_gives() {
        let mut full = 0;
        let mut memo = FingerprintMemo::default();
        let mut variants = vec![foxio_example()];
        let mut ch = foxio_example();
        ch.alpn = vec![b"hx".to_vec()];
        variants.push(ch.clone());
        ch.alpn = vec![vec![]];
        variants.push(ch.clone());
        ch.alpn = vec![];
        variants.push(ch.clone());
        ch.supported_versions = vec![0x0303];
        variants.push(ch.clone());
        ch.sslv2_specs = Some(vec![0x010080]);
        variants.push(ch.clone());
        ch.point_formats = vec![0];
        variants.push(ch.clone());
        // Fields no fingerprint reads share the entry.
        ch.sni = Some("other.example".into());
        ch.session_id_len = 0;
        variants.push(ch);
        for _ in 0..2 {
            for ch in &variants {
                assert_eq!(memo.client(ch, &mut full), (ja3(ch), ja4(ch)));
            }
        }
        assert_eq!(memo.clients.len(), variants.len() - 1);
        let sh = ServerHello {
            legacy_version: 771,
            cipher: 0x1301,
            extensions: vec![43, 51],
            ..Default::default()
        };
        assert_eq!(memo.ja3s(&sh, &mut full), ja3s(&sh));
        assert_eq!(memo.ja3s(&sh, &mut full), ja3s(&sh));
        assert_eq!(full, 0);
    }

    #[test]
    fn a_full_memo_starts_over_and_counts_it() {
        let mut full = 0;
        let mut memo = FingerprintMemo::default();
        let mut ch = foxio_example();
        for i in 0..=MEMO_ENTRIES as u16 {
            ch.ciphers[0] = 0x2000 + i;
            assert_eq!(memo.client(&ch, &mut full), (ja3(&ch), ja4(&ch)));
        }
        assert_eq!(full, 1);
        assert_eq!(memo.clients.len(), 1);
        // A hello too long to remember is fingerprinted all the same.
        ch.ciphers = (0..MEMO_MAX_KEY as u16).collect();
        assert_eq!(memo.client(&ch, &mut full), (ja3(&ch), ja4(&ch)));
        assert_eq!(memo.clients.len(), 1);
    }
}
