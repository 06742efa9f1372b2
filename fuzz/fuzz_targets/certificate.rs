//! DER → certificate record: x509 parsing, the RFC 4514 names, the record
//! and its JSON, and the cache in front of them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor::export::CertificateRecord;
use sensor::x509::{CertCache, describe};

fuzz_target!(|der: &[u8]| {
    let info = describe(der);
    assert_eq!(info.sha256.len(), 64);
    let record = CertificateRecord::from(&info);
    let json = serde_json::to_vec(&record).expect("a certificate record serialises");
    serde_json::from_slice::<serde_json::Value>(&json).expect("and is valid JSON");
    let mut cache = CertCache::new(1);
    let (cached, first) = cache.get(der);
    assert!(first);
    assert_eq!(*cached, info);
    assert!(!cache.get(der).1);
});
