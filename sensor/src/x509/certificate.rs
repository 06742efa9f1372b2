use std::net::IpAddr;

use std::sync::Arc;

use sha2::{Digest, Sha256};
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

use super::dn::{first_cn, rfc4514};
use crate::model::{Certificate, KeyInfo, Sans};

pub fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn rsa_bits(modulus: &[u8]) -> u32 {
    let m: &[u8] = match modulus.iter().position(|b| *b != 0) {
        Some(i) => &modulus[i..],
        None => return 0,
    };
    (m.len() as u32 - 1) * 8 + (8 - m[0].leading_zeros())
}

fn curve(oid: &str) -> Option<(&'static str, u32)> {
    Some(match oid {
        "1.2.840.10045.3.1.7" => ("P-256", 256),
        "1.3.132.0.34" => ("P-384", 384),
        "1.3.132.0.35" => ("P-521", 521),
        "1.3.132.0.33" => ("P-224", 224),
        "1.2.840.10045.3.1.1" => ("P-192", 192),
        "1.3.132.0.10" => ("secp256k1", 256),
        "1.3.36.3.3.2.8.1.1.7" => ("brainpoolP256r1", 256),
        "1.3.36.3.3.2.8.1.1.11" => ("brainpoolP384r1", 384),
        "1.3.36.3.3.2.8.1.1.13" => ("brainpoolP512r1", 512),
        _ => return None,
    })
}

fn key_info(spki: &SubjectPublicKeyInfo<'_>) -> KeyInfo {
    let alg = spki.algorithm.algorithm.to_id_string();
    let (kind, bits, curve_name) = match alg.as_str() {
        "1.2.840.113549.1.1.1" => {
            let bits = match spki.parsed() {
                Ok(PublicKey::RSA(k)) => Some(rsa_bits(k.modulus)),
                _ => None,
            };
            ("rsa", bits, None)
        }
        "1.2.840.113549.1.1.10" => ("rsa-pss", None, None),
        "1.2.840.10045.2.1" => {
            let params = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match params.as_deref().and_then(curve) {
                Some((name, bits)) => ("ec", Some(bits), Some(name.to_string())),
                None => {
                    let point = spki.subject_public_key.data.len();
                    (
                        "ec",
                        (point > 1).then(|| ((point as u32 - 1) / 2) * 8),
                        params,
                    )
                }
            }
        }
        "1.3.101.112" => ("ed25519", Some(256), None),
        "1.3.101.113" => ("ed448", Some(456), None),
        "1.2.840.10040.4.1" => {
            // DSA: the size is that of p, the first parameter.
            let bits = spki.algorithm.parameters.as_ref().and_then(|p| {
                // The parameters' content is SEQUENCE { p, q, g }: p comes first.
                let (_, p) = x509_parser::der_parser::der::parse_der_integer(p.data).ok()?;
                Some(rsa_bits(p.as_slice().ok()?))
            });
            ("dsa", bits, None)
        }
        _ => {
            return KeyInfo {
                kind: alg,
                bits: None,
                curve: None,
            };
        }
    };
    KeyInfo {
        kind: kind.into(),
        bits,
        curve: curve_name,
    }
}

fn serial_hex(raw: &[u8]) -> String {
    let skip = raw
        .iter()
        .take_while(|b| **b == 0)
        .count()
        .min(raw.len().saturating_sub(1));
    hex::encode_upper(&raw[skip..])
}

fn sans(cert: &X509Certificate<'_>) -> Sans {
    let mut out = Sans::default();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => out.dns.push(d.to_string()),
                GeneralName::RFC822Name(e) => out.email.push(e.to_string()),
                GeneralName::URI(u) => out.uri.push(u.to_string()),
                GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => Some(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap_or_default())),
                        16 => Some(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap_or_default())),
                        _ => None,
                    };
                    out.ip
                        .push(ip.map_or_else(|| hex::encode(b), |ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    out
}

fn signature_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    match x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry()) {
        Ok(sn) => sn.to_string(),
        Err(_) => oid.to_id_string(),
    }
}

/// Parses one DER certificate. Never fails: a DER that does not parse
/// yields a record with its fingerprint and the reason.
pub fn describe(der: &[u8]) -> Certificate {
    let sha256 = sha256_hex(der);
    let der: Arc<[u8]> = Arc::from(der);
    let cert = match X509Certificate::from_der(&der) {
        Ok((_, c)) => c,
        Err(e) => {
            return Certificate {
                der: der.clone(),
                sha256,
                subject: String::new(),
                issuer: String::new(),
                subject_cn: None,
                issuer_cn: None,
                serial: String::new(),
                not_before: 0,
                not_after: 0,
                san: Sans::default(),
                key: KeyInfo {
                    kind: "unknown".into(),
                    bits: None,
                    curve: None,
                },
                signature_algorithm: String::new(),
                signature_oid: String::new(),
                is_ca: false,
                self_signed: false,
                parse_error: Some(e.to_string()),
            };
        }
    };
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    // x509-parser's own check refuses 1024-bit RSA keys, so a weak
    // self-signed certificate would not be recognised as self-signed.
    let self_signed = super::signature::is_self_signed(&cert);
    Certificate {
        der: der.clone(),
        sha256,
        subject: rfc4514(cert.subject()),
        issuer: rfc4514(cert.issuer()),
        subject_cn: first_cn(cert.subject()),
        issuer_cn: first_cn(cert.issuer()),
        serial: serial_hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        san: sans(&cert),
        key: key_info(cert.public_key()),
        signature_algorithm: signature_name(&cert.signature_algorithm.algorithm),
        signature_oid: cert.signature_algorithm.algorithm.to_id_string(),
        is_ca,
        self_signed,
        parse_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_bits_ignores_sign_octet() {
        let mut m = vec![0u8];
        m.extend(vec![0xff; 256]);
        assert_eq!(rsa_bits(&m), 2048);
        assert_eq!(rsa_bits(&[0x01, 0, 0]), 17);
    }

    #[test]
    fn serial_keeps_leading_zero_nibble() {
        assert_eq!(serial_hex(&[0x00, 0x99, 0xfa]), "99FA");
        assert_eq!(serial_hex(&[0x02, 0x3a, 0x76]), "023A76");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn garbage_der_is_a_record_not_a_panic() {
        let info = describe(b"\x30\x03\x02\x01");
        assert!(info.parse_error.is_some());
        assert_eq!(info.sha256.len(), 64);
    }
}
