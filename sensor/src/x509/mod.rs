//! Certificates: parsing (x509-parser) into the model's `Certificate`, a
//! bounded cache so each DER is parsed once, trust anchors, chain
//! verification and server-name matching.

mod cache;
mod certificate;
mod dn;
pub mod names;
mod oid_names;
pub mod signature;
pub mod trust;
pub mod verify;

pub use cache::{CertCache, CertCacheStats};
pub use certificate::{describe, sha256_hex};
pub use dn::{first_cn, rfc4514};
pub use trust::{SystemRoots, TrustError, TrustStore};
pub use verify::{ChainStatus, ChainVerdict, ChainVerifier, Role};
