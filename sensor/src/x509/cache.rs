use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;

use super::certificate::describe;
use crate::model::Certificate;

#[derive(Debug, Default, Clone)]
pub struct CertCacheStats {
    pub parsed: u64,
    pub hits: u64,
    pub parse_errors: u64,
    /// Certificates parsed but not kept because the cache was full (or
    /// their lookup key's bucket was: see `BUCKET`).
    pub not_cached: u64,
}

/// Where a DER is looked up: its length and last bytes. A certificate ends
/// with its signature, so the tail tells certificates apart without reading
/// (or hashing) the whole DER; equality is then checked on the bytes.
#[derive(Hash, PartialEq, Eq)]
struct Tail {
    len: usize,
    last: [u8; 32],
}

impl Tail {
    fn of(der: &[u8]) -> Self {
        let mut last = [0u8; 32];
        let n = der.len().min(32);
        last[..n].copy_from_slice(&der[der.len() - n..]);
        Tail {
            len: der.len(),
            last,
        }
    }
}

/// Certificates kept per tail at most: forged DERs that share a tail cannot
/// make a lookup slower than this.
const BUCKET: usize = 4;

/// Parsed certificates by DER. A certificate seen again costs a short hash
/// and a comparison, no SHA-256. When full, new certificates are still
/// parsed and returned, just not kept.
pub struct CertCache {
    map: HashMap<Tail, Vec<Arc<Certificate>>>,
    len: usize,
    capacity: usize,
    pub stats: CertCacheStats,
}

impl CertCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            len: 0,
            capacity,
            stats: CertCacheStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the certificate and whether this is its first sighting.
    pub fn get(&mut self, der: &[u8]) -> (Arc<Certificate>, bool) {
        let tail = Tail::of(der);
        if let Some(c) = self
            .map
            .get(&tail)
            .and_then(|b| b.iter().find(|c| *c.der == *der))
        {
            self.stats.hits += 1;
            return (c.clone(), false);
        }
        let info = Arc::new(describe(der));
        self.stats.parsed += 1;
        if info.parse_error.is_some() {
            self.stats.parse_errors += 1;
        }
        let full = self.len >= self.capacity;
        let bucket = self.map.entry(tail).or_default();
        if full || bucket.len() >= BUCKET {
            self.stats.not_cached += 1;
        } else {
            bucket.push(info.clone());
            self.len += 1;
        }
        (info, true)
    }

    /// The parsed certificates of a chain; first sightings are added to
    /// `new`, in order, so their records can precede the connection's.
    pub fn chain(
        &mut self,
        ders: &[Vec<u8>],
        new: &mut Vec<Arc<Certificate>>,
    ) -> Vec<Arc<Certificate>> {
        ders.iter()
            .map(|der| {
                let (cert, first) = self.get(der);
                if first {
                    new.push(cert.clone());
                }
                cert
            })
            .collect()
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

    #[test]
    fn ders_sharing_a_tail_are_told_apart_and_bounded() {
        let mut c = CertCache::new(100);
        let der = |head: u8| {
            let mut d = vec![head; 8];
            d.extend([7u8; 40]);
            d
        };
        for h in 0..6u8 {
            let (cert, first) = c.get(&der(h));
            assert!(first);
            assert_eq!(*cert.der, *der(h));
        }
        assert_eq!(c.len(), BUCKET);
        assert_eq!(c.stats.not_cached, 2);
        let (cert, first) = c.get(&der(1));
        assert!(!first);
        assert_eq!(*cert.der, *der(1));
    }
}
