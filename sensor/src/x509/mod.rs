//! Certificates: parsing (x509-parser) into the record RECORDS.md
//! describes, and a bounded cache so each DER is parsed once.

mod cache;
mod certificate;
mod dn;

pub use cache::{CertCache, CertCacheStats};
pub use certificate::{CertInfo, KeyInfo, Sans, describe};
pub use dn::rfc4514;
