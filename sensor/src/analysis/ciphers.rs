//! Cipher suite families, from tls-parser's description of each suite.

use serde::Deserialize;
use tls_parser::{TlsCipherAu, TlsCipherEnc, TlsCipherSuite};

/// What a policy can allow or forbid. A suite belongs to its bulk cipher's
/// family, plus `export` and `anon` when they apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CipherFamily {
    Null,
    Export,
    Anon,
    Rc4,
    Rc2,
    Des,
    #[serde(rename = "3des")]
    TripleDes,
    Idea,
    Seed,
    Aria,
    Camellia,
    Aes,
    Chacha20,
    Sm4,
    Aegis,
}

impl CipherFamily {
    pub fn name(self) -> &'static str {
        match self {
            CipherFamily::Null => "NULL",
            CipherFamily::Export => "EXPORT",
            CipherFamily::Anon => "anon",
            CipherFamily::Rc4 => "RC4",
            CipherFamily::Rc2 => "RC2",
            CipherFamily::Des => "DES",
            CipherFamily::TripleDes => "3DES",
            CipherFamily::Idea => "IDEA",
            CipherFamily::Seed => "SEED",
            CipherFamily::Aria => "ARIA",
            CipherFamily::Camellia => "Camellia",
            CipherFamily::Aes => "AES",
            CipherFamily::Chacha20 => "ChaCha20",
            CipherFamily::Sm4 => "SM4",
            CipherFamily::Aegis => "AEGIS",
        }
    }
}

/// Forbidden unless a policy lists its own allowed families: NULL, EXPORT,
/// RC4, 3DES and anonymous key exchange, plus the single-DES and RC2 suites
/// that are weaker still.
pub const WEAK_BY_DEFAULT: &[CipherFamily] = &[
    CipherFamily::Null,
    CipherFamily::Export,
    CipherFamily::Anon,
    CipherFamily::Rc4,
    CipherFamily::Rc2,
    CipherFamily::Des,
    CipherFamily::TripleDes,
];

/// The families of a suite by id; None for ids tls-parser does not know
/// (GREASE, private, future suites): nothing is claimed about those.
pub fn families(id: u16) -> Option<(&'static str, Vec<CipherFamily>)> {
    let s = TlsCipherSuite::from_id(id)?;
    let mut out = vec![match s.enc {
        TlsCipherEnc::Null => CipherFamily::Null,
        TlsCipherEnc::Des => CipherFamily::Des,
        TlsCipherEnc::TripleDes => CipherFamily::TripleDes,
        TlsCipherEnc::Rc2 => CipherFamily::Rc2,
        TlsCipherEnc::Rc4 => CipherFamily::Rc4,
        TlsCipherEnc::Aria => CipherFamily::Aria,
        TlsCipherEnc::Idea => CipherFamily::Idea,
        TlsCipherEnc::Seed => CipherFamily::Seed,
        TlsCipherEnc::Aes => CipherFamily::Aes,
        TlsCipherEnc::Camellia => CipherFamily::Camellia,
        TlsCipherEnc::Chacha20_Poly1305 => CipherFamily::Chacha20,
        TlsCipherEnc::Sm4 => CipherFamily::Sm4,
        TlsCipherEnc::Aegis => CipherFamily::Aegis,
    }];
    if s.name.contains("_EXPORT") {
        out.push(CipherFamily::Export);
    }
    // TLS 1.3 suites carry no authentication in their name; NULL_WITH_NULL
    // is already NULL.
    if s.au == TlsCipherAu::Null && s.enc != TlsCipherEnc::Null {
        out.push(CipherFamily::Anon);
    }
    Some((s.name, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_of_known_suites() {
        let f = |id| families(id).unwrap().1;
        assert_eq!(f(0x0005), vec![CipherFamily::Rc4]); // TLS_RSA_WITH_RC4_128_SHA
        assert_eq!(f(0x000a), vec![CipherFamily::TripleDes]); // TLS_RSA_WITH_3DES_EDE_CBC_SHA
        assert_eq!(f(0x0003), vec![CipherFamily::Rc4, CipherFamily::Export]); // RSA_EXPORT_WITH_RC4_40_MD5
        assert_eq!(f(0x0034), vec![CipherFamily::Aes, CipherFamily::Anon]); // DH_anon_WITH_AES_128_CBC_SHA
        assert_eq!(f(0x0002), vec![CipherFamily::Null]); // TLS_RSA_WITH_NULL_SHA
        assert_eq!(f(0x1301), vec![CipherFamily::Aes]); // TLS_AES_128_GCM_SHA256
        assert_eq!(f(0xcca8), vec![CipherFamily::Chacha20]);
        assert!(families(0x0a0a).is_none());
    }
}
