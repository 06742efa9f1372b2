//! Certificates: parsing (x509-parser) into the record RECORDS.md
//! describes, a bounded cache so each DER is parsed once, trust anchors,
//! chain verification and server-name matching.

mod cache;
mod certificate;
mod dn;
pub mod names;
pub mod signature;
pub mod trust;
pub mod verify;

pub use cache::{CertCache, CertCacheStats};
pub use certificate::{CertInfo, KeyInfo, Sans, describe};
pub use dn::rfc4514;
pub use trust::{SystemRoots, TrustError, TrustStore};
pub use verify::{ChainStatus, ChainVerdict, ChainVerifier, Role};
