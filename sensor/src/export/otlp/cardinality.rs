//! Bounds on metric attribute values and series, so a burst of new
//! namespaces, ports or certificates cannot grow the exporter's memory or the
//! backend's series count without limit. What does not fit is reported under
//! [`OVERFLOW`] and counted (`sensor.cardinality.overflows`).
//!
//! The bounds hold for the process lifetime, like the cumulative counters
//! whose series they guard (the SDK keeps every series of a cumulative sum).

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use opentelemetry::{KeyValue, Value};

/// The value that replaces one that did not fit.
pub const OVERFLOW: &str = "_overflow";

/// A metric attribute value before limiting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl AttrValue {
    pub fn str(s: impl Into<String>) -> Self {
        AttrValue::Str(s.into())
    }

    fn value(&self) -> Value {
        match self {
            AttrValue::Str(s) => Value::from(s.clone()),
            AttrValue::Int(i) => Value::I64(*i),
            AttrValue::Bool(b) => Value::Bool(*b),
        }
    }
}

pub type Attrs = Vec<(&'static str, AttrValue)>;

/// Limits of one metric: distinct values per attribute and distinct series.
#[derive(Debug)]
pub struct Limiter {
    max_values: usize,
    max_series: usize,
    /// Attributes bounded only by the series limit (a certificate's
    /// fingerprint on the certificate gauge is the series itself).
    exempt: &'static [&'static str],
    values: HashMap<&'static str, HashSet<AttrValue>>,
    series: HashSet<u64>,
}

impl Limiter {
    pub fn new(max_values: usize, max_series: usize, exempt: &'static [&'static str]) -> Self {
        Self {
            max_values,
            max_series,
            exempt,
            values: HashMap::new(),
            series: HashSet::new(),
        }
    }

    /// The attributes to record, and the names of those that overflowed
    /// (`"series"` when the whole series did).
    pub fn apply(&mut self, attrs: Attrs) -> (Vec<KeyValue>, Vec<&'static str>) {
        let mut overflowed = Vec::new();
        let mut out: Attrs = Vec::with_capacity(attrs.len());
        for (k, v) in attrs {
            if matches!(v, AttrValue::Bool(_)) || self.exempt.contains(&k) {
                out.push((k, v));
                continue;
            }
            let seen = self.values.entry(k).or_default();
            if seen.contains(&v) {
                out.push((k, v));
            } else if seen.len() < self.max_values {
                seen.insert(v.clone());
                out.push((k, v));
            } else {
                overflowed.push(k);
                out.push((k, AttrValue::str(OVERFLOW)));
            }
        }
        let mut h = DefaultHasher::new();
        out.hash(&mut h);
        let id = h.finish();
        if !self.series.contains(&id) {
            if self.series.len() < self.max_series {
                self.series.insert(id);
            } else {
                overflowed.push("series");
                for (_, v) in out.iter_mut() {
                    *v = AttrValue::str(OVERFLOW);
                }
            }
        }
        let kvs = out
            .into_iter()
            .map(|(k, v)| KeyValue::new(k, v.value()))
            .collect();
        (kvs, overflowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(kvs: &[KeyValue], k: &str) -> String {
        kvs.iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn values_beyond_the_limit_overflow_and_are_reported() {
        let mut l = Limiter::new(2, 100, &[]);
        let a = |ns: &str| vec![("ns", AttrValue::str(ns)), ("tls", AttrValue::Bool(true))];
        assert!(l.apply(a("a")).1.is_empty());
        assert!(l.apply(a("b")).1.is_empty());
        let (kvs, over) = l.apply(a("c"));
        assert_eq!(over, vec!["ns"]);
        assert_eq!(val(&kvs, "ns"), OVERFLOW);
        assert_eq!(val(&kvs, "tls"), "true");
        // Known values keep passing.
        let (kvs, over) = l.apply(a("a"));
        assert!(over.is_empty());
        assert_eq!(val(&kvs, "ns"), "a");
    }

    #[test]
    fn series_beyond_the_limit_collapse_into_one() {
        let mut l = Limiter::new(100, 2, &["fp"]);
        let a = |fp: &str| vec![("fp", AttrValue::str(fp)), ("port", AttrValue::Int(443))];
        assert!(l.apply(a("1")).1.is_empty());
        assert!(l.apply(a("2")).1.is_empty());
        let (kvs, over) = l.apply(a("3"));
        assert_eq!(over, vec!["series"]);
        assert_eq!(val(&kvs, "fp"), OVERFLOW);
        assert_eq!(val(&kvs, "port"), OVERFLOW);
        assert!(l.apply(a("2")).1.is_empty());
    }
}
