//! The rules: stable ids, default severities, what each one means.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    CertExpired,
    CertNotYetValid,
    CertExpiringSoon,
    CertSelfSigned,
    CertUntrusted,
    CertIncompleteChain,
    CertNameMismatch,
    CertWeakKey,
    CertWeakSignature,
    CertLongValidity,
    CertCaAsLeaf,
    CertUnmanaged,
    CertStale,
    CertIssuerNotAllowed,
    TlsLegacyVersion,
    TlsWeakCipher,
    TlsHandshakeFailure,
    TlsPlaintext,
}

impl Rule {
    pub const COUNT: usize = 18;

    pub const ALL: [Rule; Self::COUNT] = [
        Rule::CertExpired,
        Rule::CertNotYetValid,
        Rule::CertExpiringSoon,
        Rule::CertSelfSigned,
        Rule::CertUntrusted,
        Rule::CertIncompleteChain,
        Rule::CertNameMismatch,
        Rule::CertWeakKey,
        Rule::CertWeakSignature,
        Rule::CertLongValidity,
        Rule::CertCaAsLeaf,
        Rule::CertUnmanaged,
        Rule::CertStale,
        Rule::CertIssuerNotAllowed,
        Rule::TlsLegacyVersion,
        Rule::TlsWeakCipher,
        Rule::TlsHandshakeFailure,
        Rule::TlsPlaintext,
    ];

    /// The stable id used in records, metrics and the policy file.
    pub fn id(self) -> &'static str {
        match self {
            Rule::CertExpired => "cert.expired",
            Rule::CertNotYetValid => "cert.not_yet_valid",
            Rule::CertExpiringSoon => "cert.expiring_soon",
            Rule::CertSelfSigned => "cert.self_signed",
            Rule::CertUntrusted => "cert.untrusted",
            Rule::CertIncompleteChain => "cert.incomplete_chain",
            Rule::CertNameMismatch => "cert.name_mismatch",
            Rule::CertWeakKey => "cert.weak_key",
            Rule::CertWeakSignature => "cert.weak_signature",
            Rule::CertLongValidity => "cert.long_validity",
            Rule::CertCaAsLeaf => "cert.ca_as_leaf",
            Rule::CertUnmanaged => "cert.unmanaged",
            Rule::CertStale => "cert.stale",
            Rule::CertIssuerNotAllowed => "cert.issuer_not_allowed",
            Rule::TlsLegacyVersion => "tls.legacy_version",
            Rule::TlsWeakCipher => "tls.weak_cipher",
            Rule::TlsHandshakeFailure => "tls.handshake_failure",
            Rule::TlsPlaintext => "tls.plaintext",
        }
    }

    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }

    pub fn default_severity(self) -> Severity {
        use Severity::*;
        match self {
            Rule::CertExpired => Critical,
            Rule::CertNotYetValid => High,
            Rule::CertExpiringSoon => Medium,
            Rule::CertSelfSigned => High,
            Rule::CertUntrusted => High,
            Rule::CertIncompleteChain => Medium,
            Rule::CertNameMismatch => High,
            Rule::CertWeakKey => High,
            Rule::CertWeakSignature => High,
            Rule::CertLongValidity => Low,
            Rule::CertCaAsLeaf => Medium,
            Rule::CertUnmanaged => Low,
            Rule::CertStale => High,
            Rule::CertIssuerNotAllowed => High,
            Rule::TlsLegacyVersion => High,
            Rule::TlsWeakCipher => High,
            Rule::TlsHandshakeFailure => Medium,
            Rule::TlsPlaintext => Medium,
        }
    }

    /// Findings of this rule are about one certificate (deduplicated per
    /// certificate) rather than about a flow.
    pub fn is_certificate_rule(self) -> bool {
        self.id().starts_with("cert.")
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_unique() {
        let mut ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        for r in Rule::ALL {
            assert_eq!(Rule::from_id(r.id()), Some(r));
            assert_eq!(Rule::ALL[r.index()], r);
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), Rule::ALL.len());
        assert_eq!(Rule::from_id("cert.nope"), None);
    }
}
