//! Distinguished names the way `openssl x509 -nameopt RFC2253` prints
//! them: most specific RDN first, short attribute names, RFC 2253 escaping,
//! non-ASCII as \XX UTF-8 octets, unknown attributes as #DER-hex. No crate
//! reproduces openssl's exact rendering, which users compare against.

use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::x509::X509Name;

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.16" => "postalAddress",
        "2.5.4.17" => "postalCode",
        "2.5.4.18" => "postOfficeBox",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.45" => "x500UniqueIdentifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.2.840.113549.1.9.2" => "unstructuredName",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return None,
    })
}

/// Decodes the string types openssl prints as text; None for the rest.
fn decode(value: &Any<'_>) -> Option<String> {
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => Some(String::from_utf8_lossy(data).into_owned()),
        // T61String is read as Latin-1, as openssl does.
        Tag::T61String => Some(data.iter().map(|&b| b as char).collect()),
        Tag::BmpString => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        Tag::UniversalString => Some(
            data.chunks_exact(4)
                .map(|c| {
                    char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .unwrap_or('\u{fffd}')
                })
                .collect(),
        ),
        _ => None,
    }
}

fn escape(value: &str, out: &mut String) {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == bytes.len();
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(b as char);
            }
            b'#' if first => out.push_str("\\#"),
            b' ' if first || last => out.push_str("\\ "),
            0..=0x1f | 0x7f..=0xff => out.push_str(&format!("\\{b:02X}")),
            _ => out.push(b as char),
        }
    }
}

fn dump_der(value: &Any<'_>, out: &mut String) {
    let data = value.data;
    let h = &value.header;
    let tag = h.tag().0;
    out.push('#');
    if tag < 31 {
        let byte = ((h.class() as u8) << 6) | ((h.is_constructed() as u8) << 5) | tag as u8;
        out.push_str(&format!("{byte:02X}"));
    }
    let n = data.len();
    if n < 0x80 {
        out.push_str(&format!("{n:02X}"));
    } else {
        let be = (n as u64).to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        out.push_str(&format!("{:02X}", 0x80 | (8 - skip)));
        out.push_str(&hex::encode_upper(&be[skip..]));
    }
    out.push_str(&hex::encode_upper(data));
}

/// RFC 4514 rendering, most specific RDN first.
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type().to_id_string();
            match short_name(&oid) {
                Some(short) => {
                    out.push_str(short);
                    out.push('=');
                    match decode(atv.attr_value()) {
                        Some(s) => escape(&s, &mut out),
                        None => dump_der(atv.attr_value(), &mut out),
                    }
                }
                None => {
                    out.push_str(&oid);
                    out.push('=');
                    dump_der(atv.attr_value(), &mut out);
                }
            }
        }
    }
    out
}

/// The most specific common name, unescaped (what a telemetry label shows).
pub fn first_cn(name: &X509Name<'_>) -> Option<String> {
    let rdns: Vec<_> = name.iter_rdn().collect();
    rdns.iter()
        .rev()
        .flat_map(|rdn| rdn.iter())
        .find_map(|atv| {
            (atv.attr_type().to_id_string() == "2.5.4.3").then(|| {
                decode(atv.attr_value()).unwrap_or_else(|| {
                    let mut raw = String::new();
                    dump_der(atv.attr_value(), &mut raw);
                    raw
                })
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_follows_rfc2253() {
        let mut s = String::new();
        escape(" a,b+c\"d\\e<f>g;h#i ", &mut s);
        assert_eq!(s, "\\ a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h#i\\ ");
        let mut s = String::new();
        escape("#x\u{e9}\n", &mut s);
        assert_eq!(s, "\\#x\\C3\\A9\\0A");
    }

    fn der_named(attrs: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        for (t, v) in attrs {
            dn.push(t.clone(), *v);
        }
        p.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn first_cn_is_the_most_specific_unescaped() {
        let der = der_named(&[
            (rcgen::DnType::OrganizationName, "OTLP Test"),
            (rcgen::DnType::CommonName, "a,b caf\u{e9}"),
        ]);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(rfc4514(cert.subject()), "CN=a\\,b caf\\C3\\A9,O=OTLP Test");
        assert_eq!(first_cn(cert.subject()).as_deref(), Some("a,b caf\u{e9}"));
        let der = der_named(&[(rcgen::DnType::OrganizationName, "nobody")]);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(first_cn(cert.subject()), None);
    }
}
