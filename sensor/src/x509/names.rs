//! Does a certificate cover a server name? RFC 6125 as the CA/Browser
//! Forum applies it: DNS names and IP addresses from subjectAltName only
//! (no fallback to the subject CN), a wildcard only as the whole left-most
//! label and matching exactly one label, comparison without case.
//!
//! Written here rather than taken from webpki because webpki refuses to
//! parse X.509 v1 and other legacy certificates, which are exactly the ones
//! worth reporting; it works on the SANs x509-parser already extracted.

use std::net::IpAddr;

use super::Sans;

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

fn dns_matches(pattern: &str, name: &str) -> bool {
    let pattern = normalize(pattern);
    if pattern == name {
        return !pattern.contains('*');
    }
    let Some(rest) = pattern.strip_prefix("*.") else {
        return false;
    };
    // `*.com` would cover a whole top-level domain: two labels at least.
    if rest.contains('*') || !rest.contains('.') || rest.split('.').any(str::is_empty) {
        return false;
    }
    match name.split_once('.') {
        Some((first, tail)) => !first.is_empty() && tail == rest,
        None => false,
    }
}

/// Whether the DNS name `pattern` (a SAN, or a name a certificate is
/// requested for) covers the host name `host`.
pub fn name_covers(pattern: &str, host: &str) -> bool {
    dns_matches(pattern, &normalize(host))
}

/// Whether the SANs cover `server_name` (an SNI host name, or an IP address
/// literal when a client sends one).
pub fn covers(san: &Sans, server_name: &str) -> bool {
    let name = normalize(server_name);
    if let Ok(ip) = name.parse::<IpAddr>() {
        return san
            .ip
            .iter()
            .any(|s| s.parse::<IpAddr>().is_ok_and(|s| s == ip));
    }
    san.dns.iter().any(|p| dns_matches(p, &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans(dns: &[&str], ip: &[&str]) -> Sans {
        Sans {
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ip: ip.iter().map(|s| s.to_string()).collect(),
            ..Sans::default()
        }
    }

    #[test]
    fn exact_and_case_and_trailing_dot() {
        let s = sans(&["Www.Example.com"], &[]);
        assert!(covers(&s, "www.example.COM"));
        assert!(covers(&s, "www.example.com."));
        assert!(!covers(&s, "example.com"));
    }

    #[test]
    fn wildcard_left_most_label_only() {
        let s = sans(&["*.badssl.com"], &[]);
        assert!(covers(&s, "self-signed.badssl.com"));
        assert!(!covers(&s, "wrong.host.badssl.com"));
        assert!(!covers(&s, "badssl.com"));
        assert!(!covers(&s, ".badssl.com"));
        for bad in ["w*.badssl.com", "www.*.com", "*.com", "*", "**.badssl.com"] {
            assert!(!covers(&sans(&[bad], &[]), "www.badssl.com"), "{bad}");
        }
    }

    #[test]
    fn ip_sans_only_for_ip_names() {
        let s = sans(&["10.0.0.1"], &["10.0.0.2", "::1"]);
        assert!(covers(&s, "10.0.0.2"));
        assert!(covers(&s, "0:0::1"));
        // An IP written as a dNSName does not count.
        assert!(!covers(&s, "10.0.0.1"));
    }

    #[test]
    fn no_sans_no_match() {
        assert!(!covers(&Sans::default(), "example.com"));
    }
}
