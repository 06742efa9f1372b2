//! JA3, JA3S (Salesforce) and JA4 (FoxIO, BSD-3-Clause). JA4S, JA4X and the
//! rest of JA4+ are under a licence that forbids shipping them: not here.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::hello::{ClientHello, EXT_ALPN, EXT_SNI, ServerHello, max_offered_version};
use super::names::is_grease;

fn join<T: ToString>(items: impl Iterator<Item = T>, sep: &str) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(sep)
}

pub fn ja3_string(ch: &ClientHello) -> String {
    let ok = |v: &&u16| !is_grease(**v);
    format!(
        "{},{},{},{},{}",
        ch.version,
        join(ch.ciphers.iter().filter(ok), "-"),
        join(ch.extensions.iter().filter(ok), "-"),
        join(ch.groups.iter().filter(ok), "-"),
        join(ch.point_formats.iter(), "-"),
    )
}

pub fn ja3(ch: &ClientHello) -> String {
    hex::encode(Md5::digest(ja3_string(ch).as_bytes()))
}

pub fn ja3s_string(sh: &ServerHello) -> String {
    format!(
        "{},{},{}",
        sh.legacy_version,
        sh.cipher,
        join(sh.extensions.iter().filter(|v| !is_grease(**v)), "-")
    )
}

pub fn ja3s(sh: &ServerHello) -> String {
    hex::encode(Md5::digest(ja3s_string(sh).as_bytes()))
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

fn ja4_alpn(ch: &ClientHello) -> String {
    let Some(first) = ch.alpn.first().filter(|a| !a.is_empty()) else {
        return "00".into();
    };
    let (a, b) = (first[0], first[first.len() - 1]);
    if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() {
        format!("{}{}", a as char, b as char)
    } else {
        let h = hex::encode(first);
        format!("{}{}", &h[..1], &h[h.len() - 1..])
    }
}

fn truncated_sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))[..12].to_string()
}

/// JA4 `a_b_c` for a ClientHello over TCP.
pub fn ja4(ch: &ClientHello) -> String {
    let ciphers: Vec<u16> = ch
        .ciphers
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|e| !is_grease(*e))
        .collect();
    let a = format!(
        "t{}{}{:02}{:02}{}",
        ja4_version(max_offered_version(ch)),
        if ch.extensions.contains(&EXT_SNI) {
            'd'
        } else {
            'i'
        },
        ciphers.len().min(99),
        exts.len().min(99),
        ja4_alpn(ch)
    );
    let mut sorted_ciphers: Vec<String> = ciphers.iter().map(|c| format!("{c:04x}")).collect();
    sorted_ciphers.sort();
    let b = if sorted_ciphers.is_empty() {
        "000000000000".to_string()
    } else {
        truncated_sha256(&sorted_ciphers.join(","))
    };
    let mut sorted_exts: Vec<String> = exts
        .iter()
        .filter(|e| **e != EXT_SNI && **e != EXT_ALPN)
        .map(|e| format!("{e:04x}"))
        .collect();
    sorted_exts.sort();
    let c = if sorted_exts.is_empty() {
        "000000000000".to_string()
    } else {
        let mut s = sorted_exts.join(",");
        let sigs: Vec<String> = ch
            .signature_algorithms
            .iter()
            .filter(|s| !is_grease(**s))
            .map(|s| format!("{s:04x}"))
            .collect();
        if !sigs.is_empty() {
            s.push('_');
            s.push_str(&sigs.join(","));
        }
        truncated_sha256(&s)
    };
    format!("{a}_{b}_{c}")
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
}
