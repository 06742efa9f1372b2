//! Distinguished names the way `openssl x509 -nameopt RFC2253` prints
//! them: most specific RDN first, short attribute names, RFC 2253 escaping,
//! non-ASCII as \XX UTF-8 octets, attributes openssl does not name (and
//! values that are no strings) as #DER-hex. No crate
//! reproduces openssl's exact rendering, which users compare against.

use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::x509::X509Name;

use super::oid_names::openssl_short_name;

/// The attribute name openssl prints: its short name for every object it
/// knows (a subjectAltName placed in a DN prints as `subjectAltName=`),
/// numeric OIDs only for the rest.
fn short_name(oid: &str) -> Option<&'static str> {
    openssl_short_name(oid)
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

    /// Made by `openssl req -subj "/CN=x/subjectAltName=foo/searchGuide=bar"`;
    /// `openssl x509 -noout -subject -nameopt RFC2253` prints
    /// `searchGuide=bar,subjectAltName=foo,CN=x`: attributes outside the
    /// usual DN set get openssl's short names, not `OID=#hex`.
    const OPENSSL_NAMED: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBpDCCAUugAwIBAgIUNcszx/j7St32rKiC6lbd7bIrp04wCgYIKoZIzj0EAwIw\n\
KDEKMAgGA1UEAwwBeDEMMAoGA1UdEQwDZm9vMQwwCgYDVQQODANiYXIwHhcNMjYx\n\
MjA2MDYxNzQ4WhcNMjYxMjA3MDYxNzQ4WjAoMQowCAYDVQQDDAF4MQwwCgYDVR0R\n\
DANmb28xDDAKBgNVBA4MA2JhcjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABNBB\n\
lz0bOC6SEd8OsgaInttoQ/bomkDAlPtF7hmGTxPKzDQczdHbxJJQGZAu4+P3r9ug\n\
waOR+NNcmLbSCiEcK1ujUzBRMB0GA1UdDgQWBBT6uVnYoX+wyZa25qlUSCcYYr0V\n\
bzAfBgNVHSMEGDAWgBT6uVnYoX+wyZa25qlUSCcYYr0VbzAPBgNVHRMBAf8EBTAD\n\
AQH/MAoGCCqGSM49BAMCA0cAMEQCIA9BBIa8GgrIyICSJShzBtrChSxebbpRwlOV\n\
nl3JyInCAiB+iFNl/onTY2SpOzRL0BvY6MxtH+5E2Dr5QheeSDdwxg==\n\
-----END CERTIFICATE-----";

    #[test]
    fn every_attribute_openssl_names_is_named() {
        let (_, pem) = x509_parser::pem::parse_x509_pem(OPENSSL_NAMED.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        assert_eq!(
            rfc4514(cert.subject()),
            "searchGuide=bar,subjectAltName=foo,CN=x"
        );
        assert_eq!(short_name("2.5.29.17"), Some("subjectAltName"));
        assert_eq!(short_name("1.2.3.4"), None);
    }

    /// An attribute openssl does not know is dumped whatever its type.
    #[test]
    fn unknown_attributes_are_hex() {
        let der = der_named(&[
            (rcgen::DnType::CustomDnType(vec![1, 2, 3, 4]), "baz"),
            (rcgen::DnType::CommonName, "x"),
        ]);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(rfc4514(cert.subject()), "CN=x,1.2.3.4=#0C0362617A");
    }
}
