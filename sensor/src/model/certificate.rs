//! One certificate as the x509 stage parsed it, shared (`Arc`) by every
//! chain and record that names it.

use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sans {
    pub dns: Vec<String>,
    pub ip: Vec<String>,
    pub uri: Vec<String>,
    pub email: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub bits: Option<u32>,
    pub curve: Option<String>,
}

/// What one certificate says, parsed once per distinct DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub der: Arc<[u8]>,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    /// RFC 4514, as openssl prints it.
    pub subject: String,
    pub issuer: String,
    /// The first common name of each name, unescaped (telemetry labels).
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    pub serial: String,
    pub not_before: i64,
    pub not_after: i64,
    pub san: Sans,
    pub key: KeyInfo,
    pub signature_algorithm: String,
    /// Dotted OID of the signature algorithm (names vary between registries).
    pub signature_oid: String,
    pub is_ca: bool,
    pub self_signed: bool,
    /// The DER did not parse; only the fingerprint is known.
    pub parse_error: Option<String>,
}

/// Validity of a certificate at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Valid,
    Expired,
    NotYetValid,
    Unparsable,
}

impl CertStatus {
    pub fn name(self) -> &'static str {
        match self {
            CertStatus::Valid => "valid",
            CertStatus::Expired => "expired",
            CertStatus::NotYetValid => "not_yet_valid",
            CertStatus::Unparsable => "unparsable",
        }
    }
}

impl Certificate {
    /// Validity at `at_s` (unix seconds).
    pub fn status(&self, at_s: i64) -> CertStatus {
        if self.parse_error.is_some() {
            CertStatus::Unparsable
        } else if at_s > self.not_after {
            CertStatus::Expired
        } else if at_s < self.not_before {
            CertStatus::NotYetValid
        } else {
            CertStatus::Valid
        }
    }
}
