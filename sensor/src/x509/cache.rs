use std::collections::HashMap;
use std::sync::Arc;

use super::certificate::{describe, sha256_hex};
use crate::model::Certificate;

#[derive(Debug, Default, Clone)]
pub struct CertCacheStats {
    pub parsed: u64,
    pub hits: u64,
    pub parse_errors: u64,
    /// Certificates parsed but not kept because the cache was full.
    pub not_cached: u64,
}

/// Parsed certificates by SHA-256. When full, new certificates are still
/// parsed and returned, just not kept.
pub struct CertCache {
    map: HashMap<String, Arc<Certificate>>,
    capacity: usize,
    pub stats: CertCacheStats,
}

impl CertCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            capacity,
            stats: CertCacheStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Returns the certificate and whether this is its first sighting.
    pub fn get(&mut self, der: &[u8]) -> (Arc<Certificate>, bool) {
        let fp = sha256_hex(der);
        if let Some(c) = self.map.get(&fp) {
            self.stats.hits += 1;
            return (c.clone(), false);
        }
        let info = Arc::new(describe(der));
        self.stats.parsed += 1;
        if info.parse_error.is_some() {
            self.stats.parse_errors += 1;
        }
        if self.map.len() < self.capacity {
            self.map.insert(fp, info.clone());
        } else {
            self.stats.not_cached += 1;
        }
        (info, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_kept_and_counted() {
        let mut c = CertCache::new(2);
        for i in 0..5u8 {
            let (_, first) = c.get(&[i]);
            assert!(first);
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats.not_cached, 3);
        assert!(!c.get(&[0]).1);
        // Not cached, so seen as new again: callers dedupe their output separately.
        assert!(c.get(&[4]).1);
    }
}
