//! One finding line per rule and certificate (or flow) per time window.

use foldhash::{HashMap, HashMapExt};

use crate::model::Rule;

#[derive(Debug, Default, Clone)]
pub struct DedupStats {
    pub emitted: u64,
    pub repeated: u64,
    /// Emitted without deduplication because the table was full of keys
    /// from the current window.
    pub table_full: u64,
}

/// Remembers which (rule, key) was reported in which window. Bounded: when
/// full, keys of past windows are dropped; if the current window alone
/// fills it, findings are emitted again rather than remembered.
pub struct Dedup {
    seen: HashMap<(Rule, String), i64>,
    window_secs: i64,
    capacity: usize,
    pub stats: DedupStats,
}

impl Dedup {
    pub fn new(window_secs: i64, capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            window_secs: window_secs.max(1),
            capacity,
            stats: DedupStats::default(),
        }
    }

    /// Whether this finding is the first of its key in the window of `now`.
    pub fn first(&mut self, rule: Rule, key: &str, now: i64) -> bool {
        let window = now.div_euclid(self.window_secs);
        let k = (rule, key.to_string());
        if self.seen.get(&k) == Some(&window) {
            self.stats.repeated += 1;
            return false;
        }
        self.stats.emitted += 1;
        if !self.seen.contains_key(&k) && self.seen.len() >= self.capacity {
            self.seen.retain(|_, w| *w == window);
            if self.seen.len() >= self.capacity {
                self.stats.table_full += 1;
                return true;
            }
        }
        self.seen.insert(k, window);
        true
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_window() {
        let mut d = Dedup::new(3600, 10);
        assert!(d.first(Rule::CertExpired, "a", 10));
        assert!(!d.first(Rule::CertExpired, "a", 3599));
        assert!(d.first(Rule::CertWeakKey, "a", 20));
        assert!(d.first(Rule::CertExpired, "b", 20));
        assert!(d.first(Rule::CertExpired, "a", 3600));
        assert_eq!(d.stats.repeated, 1);
        assert_eq!(d.stats.emitted, 4);
    }

    #[test]
    fn bound_is_kept_and_counted() {
        let mut d = Dedup::new(60, 3);
        for k in ["a", "b", "c"] {
            assert!(d.first(Rule::CertExpired, k, 0));
        }
        // Full of the current window: emitted, not remembered, counted.
        assert!(d.first(Rule::CertExpired, "d", 1));
        assert!(d.first(Rule::CertExpired, "d", 2));
        assert_eq!(d.stats.table_full, 2);
        assert_eq!(d.len(), 3);
        // A new window frees the old keys.
        assert!(d.first(Rule::CertExpired, "d", 61));
        assert_eq!(d.len(), 1);
        assert!(!d.first(Rule::CertExpired, "d", 62));
    }
}
