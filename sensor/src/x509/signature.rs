//! Does one certificate's signature verify with a given public key?
//!
//! webpki and x509-parser both refuse legacy algorithms and small keys by
//! design (SHA-1, 1024-bit RSA). The analysis still has to link such chains
//! to report them as *weak* rather than *broken*, so this module asks ring
//! directly, with its legacy verification algorithms where they exist.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;
use x509_parser::signature_algorithm::SignatureAlgorithm;

/// Outcome of checking one signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigCheck {
    Valid,
    /// The algorithm is known and the signature does not verify with this key.
    Invalid,
    /// The algorithm or the key cannot be checked here (MD5, DSA, P-521, tiny RSA).
    Unsupported,
}

const SHA1_RSA: &str = "1.2.840.113549.1.1.5";
const SHA1_RSA_OIW: &str = "1.3.14.3.2.29";
const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
const SHA384_RSA: &str = "1.2.840.113549.1.1.12";
const SHA512_RSA: &str = "1.2.840.113549.1.1.13";
const ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const ED25519: &str = "1.3.101.112";
const RSA_PSS: &str = "1.2.840.113549.1.1.10";
const RSA_KEY: &str = "1.2.840.113549.1.1.1";
const EC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const P384: &str = "1.3.132.0.34";

/// Hash algorithms of signature OIDs that are broken for certificate
/// signatures, by OID: MD2, MD4, MD5, SHA-1 with RSA, DSA and ECDSA.
pub fn weak_hash(signature_oid: &str) -> Option<&'static str> {
    Some(match signature_oid {
        "1.2.840.113549.1.1.2" => "MD2",
        "1.2.840.113549.1.1.3" => "MD4",
        "1.2.840.113549.1.1.4" => "MD5",
        SHA1_RSA | SHA1_RSA_OIW | "1.2.840.10045.4.1" | "1.2.840.10040.4.3" | "1.3.14.3.2.27" => {
            "SHA-1"
        }
        _ => return None,
    })
}

fn ec_curve(spki: &SubjectPublicKeyInfo<'_>) -> Option<String> {
    spki.algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string())
}

fn rsa_bits(spki: &SubjectPublicKeyInfo<'_>) -> Option<usize> {
    match spki.parsed() {
        Ok(PublicKey::RSA(k)) => Some(k.key_size()),
        _ => None,
    }
}

fn algorithm(
    cert: &X509Certificate<'_>,
    key: &SubjectPublicKeyInfo<'_>,
) -> Option<&'static dyn VerificationAlgorithm> {
    let sig = cert.signature_algorithm.algorithm.to_id_string();
    let key_alg = key.algorithm.algorithm.to_id_string();
    let rsa = key_alg == RSA_KEY || key_alg == RSA_PSS;
    if rsa && rsa_bits(key).is_none_or(|b| b < 1024) {
        // ring's legacy algorithms start at 1024 bits; below that we cannot tell.
        return None;
    }
    Some(match sig.as_str() {
        SHA1_RSA | SHA1_RSA_OIW if rsa => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
        SHA256_RSA if rsa => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        SHA384_RSA if rsa => &signature::RSA_PKCS1_2048_8192_SHA384,
        SHA512_RSA if rsa => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        RSA_PSS if rsa => match SignatureAlgorithm::try_from(&cert.signature_algorithm) {
            Ok(SignatureAlgorithm::RSASSA_PSS(p)) => {
                match p.hash_algorithm_oid().to_id_string().as_str() {
                    "2.16.840.1.101.3.4.2.1" => &signature::RSA_PSS_2048_8192_SHA256,
                    "2.16.840.1.101.3.4.2.2" => &signature::RSA_PSS_2048_8192_SHA384,
                    "2.16.840.1.101.3.4.2.3" => &signature::RSA_PSS_2048_8192_SHA512,
                    _ => return None,
                }
            }
            _ => return None,
        },
        ECDSA_SHA256 | ECDSA_SHA384 if key_alg == EC_KEY => {
            match (ec_curve(key).as_deref(), sig.as_str()) {
                (Some(P256), ECDSA_SHA256) => &signature::ECDSA_P256_SHA256_ASN1,
                (Some(P256), _) => &signature::ECDSA_P256_SHA384_ASN1,
                (Some(P384), ECDSA_SHA256) => &signature::ECDSA_P384_SHA256_ASN1,
                (Some(P384), _) => &signature::ECDSA_P384_SHA384_ASN1,
                _ => return None,
            }
        }
        ED25519 if key_alg == ED25519 => &signature::ED25519,
        _ => return None,
    })
}

/// Checks `cert`'s signature with `key`, the would-be issuer's public key.
pub fn check(cert: &X509Certificate<'_>, key: &SubjectPublicKeyInfo<'_>) -> SigCheck {
    let Some(alg) = algorithm(cert, key) else {
        return SigCheck::Unsupported;
    };
    let pk = UnparsedPublicKey::new(alg, key.subject_public_key.data.as_ref());
    match pk.verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data) {
        Ok(()) => SigCheck::Valid,
        Err(_) => SigCheck::Invalid,
    }
}

/// Whether `cert` is self-issued and its signature does not contradict
/// being self-signed: it verifies with its own key, or it cannot be checked
/// and the key identifiers (when present) agree.
pub fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    if cert.subject().as_raw() != cert.issuer().as_raw() {
        return false;
    }
    match check(cert, cert.public_key()) {
        SigCheck::Valid => true,
        SigCheck::Invalid => false,
        SigCheck::Unsupported => key_ids_agree(cert, cert),
    }
}

/// The child's authority key id matches the issuer's subject key id, or
/// either is absent (nothing contradicts the link).
pub fn key_ids_agree(child: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    let aki = child
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0),
            _ => None,
        });
    let ski = issuer
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0),
            _ => None,
        });
    match (aki, ski) {
        (Some(a), Some(s)) => a == s,
        _ => true,
    }
}
