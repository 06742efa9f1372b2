//! The parts of cert-manager's and trust-manager's resources the index
//! reads, as serde structs. Hand-written rather than generated from the
//! CRDs: a few fields each, every one optional, so an object written by an
//! older or newer cert-manager still reads.

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::Deserialize;

use crate::model::IssuerRef;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrIssuerRef {
    #[serde(default)]
    pub name: String,
    pub kind: Option<String>,
    pub group: Option<String>,
}

impl From<CrIssuerRef> for IssuerRef {
    fn from(r: CrIssuerRef) -> Self {
        IssuerRef {
            // cert-manager's default when issuerRef.kind is unset.
            kind: r
                .kind
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "Issuer".into()),
            name: r.name,
            group: r
                .group
                .filter(|g| g != "cert-manager.io")
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    #[serde(default)]
    pub dns_names: Vec<String>,
    #[serde(default)]
    pub ip_addresses: Vec<String>,
    pub common_name: Option<String>,
    pub secret_name: Option<String>,
    #[serde(default)]
    pub issuer_ref: CrIssuerRef,
}

#[derive(Debug, Deserialize)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    pub reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    pub revision: Option<u64>,
    pub not_before: Option<Time>,
    pub not_after: Option<Time>,
    pub renewal_time: Option<Time>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    #[serde(default)]
    pub issuer_ref: CrIssuerRef,
}

#[derive(Debug, Default, Deserialize)]
pub struct CertificateRequestStatus {
    /// PEM chain, base64 in JSON as every `[]byte` field.
    pub certificate: Option<ByteString>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ConditionsStatus {
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// `data` of a TLS Secret: the private key has no field here, so serde
/// skips it and it is never stored.
#[derive(Debug, Default, Deserialize)]
pub struct TlsSecretData {
    #[serde(rename = "tls.crt")]
    pub tls_crt: Option<ByteString>,
    #[serde(rename = "ca.crt")]
    pub ca_crt: Option<ByteString>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BundleSpec {
    #[serde(default)]
    pub sources: Vec<BundleSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleSource {
    pub in_line: Option<String>,
}
