//! Time windows of the exporter: the clock they run on, the certificates
//! seen lately (what the certificate gauges report) and the deduplication
//! of log records.

use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;

/// "Now" in the time of the records: the newest record time seen, advanced
/// by the wall time elapsed since. Live capture has record time = wall time;
/// a capture file replays its own time, so its certificates are "recent"
/// relative to the capture rather than already gone.
#[derive(Debug, Clone)]
pub struct StreamClock {
    base_us: Option<i64>,
    at: Instant,
}

impl Default for StreamClock {
    fn default() -> Self {
        Self {
            base_us: None,
            at: Instant::now(),
        }
    }
}

impl StreamClock {
    pub fn observe(&mut self, t_us: i64, now: Instant) {
        if self.base_us.is_none() || t_us > self.now_us(now) {
            self.base_us = Some(t_us);
            self.at = now;
        }
    }

    pub fn now_us(&self, now: Instant) -> i64 {
        match self.base_us {
            Some(b) => b.saturating_add(now.saturating_duration_since(self.at).as_micros() as i64),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as i64)
                .unwrap_or(0),
        }
    }
}

/// One series of the certificate gauges.
#[derive(Debug, Clone)]
pub struct CertSighting {
    pub attrs: Vec<KeyValue>,
    /// Unix seconds; `None` for a certificate that did not parse.
    pub not_after: Option<i64>,
    pub sha256: String,
    pub verdict: String,
    pub status: &'static str,
    pub last_seen_us: i64,
}

/// Certificates seen within the window, one entry per gauge series; the
/// entry (and so the series) goes when the certificate is not seen again.
#[derive(Debug)]
pub struct CertWindow {
    entries: HashMap<String, CertSighting>,
    window_us: i64,
    max: usize,
}

impl CertWindow {
    pub fn new(window_us: i64, max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            window_us,
            max,
        }
    }

    fn prune(&mut self, now_us: i64) {
        let cutoff = now_us.saturating_sub(self.window_us);
        self.entries.retain(|_, e| e.last_seen_us >= cutoff);
    }

    /// False when the window is full of live series and this is a new one:
    /// the caller counts it as an overflow.
    pub fn see(&mut self, s: CertSighting, now_us: i64) -> bool {
        let key = series_key(&s.attrs);
        if let Some(e) = self.entries.get_mut(&key) {
            e.last_seen_us = e.last_seen_us.max(s.last_seen_us);
            e.status = s.status;
            return true;
        }
        if self.entries.len() >= self.max {
            self.prune(now_us);
            if self.entries.len() >= self.max {
                return false;
            }
        }
        self.entries.insert(key, s);
        true
    }

    /// The live series, oldest gone first.
    pub fn live(&mut self, now_us: i64) -> impl Iterator<Item = &CertSighting> {
        self.prune(now_us);
        self.entries.values()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn series_key(attrs: &[KeyValue]) -> String {
    let mut k = String::new();
    for kv in attrs {
        k.push_str(kv.key.as_str());
        k.push('\u{1f}');
        k.push_str(&kv.value.to_string());
        k.push('\u{1e}');
    }
    k
}

/// "Was this key reported within the window?", for a bounded number of keys;
/// when full the oldest key is forgotten (and may be reported again early).
#[derive(Debug)]
pub struct DedupWindow {
    last: HashMap<String, i64>,
    order: VecDeque<(String, i64)>,
    window_us: i64,
    max: usize,
    pub evictions: u64,
}

impl DedupWindow {
    pub fn new(window_us: i64, max: usize) -> Self {
        Self {
            last: HashMap::new(),
            order: VecDeque::new(),
            window_us,
            max: max.max(1),
            evictions: 0,
        }
    }

    /// Pops the oldest entry; true when it was still current (a real eviction).
    fn pop_front(&mut self) -> Option<bool> {
        let (k, t) = self.order.pop_front()?;
        if self.last.get(&k) == Some(&t) {
            self.last.remove(&k);
            return Some(true);
        }
        Some(false)
    }

    /// True when `key` was not reported within the window; records it as reported now.
    pub fn first_in_window(&mut self, key: &str, now_us: i64) -> bool {
        let cutoff = now_us.saturating_sub(self.window_us);
        while self.order.front().is_some_and(|(_, t)| *t < cutoff) {
            self.pop_front();
        }
        if let Some(t) = self.last.get(key)
            && *t >= cutoff
        {
            return false;
        }
        self.last.insert(key.to_string(), now_us);
        self.order.push_back((key.to_string(), now_us));
        while self.last.len() > self.max {
            if self.pop_front() == Some(true) {
                self.evictions += 1;
            }
        }
        // Stale queue entries of re-reported keys are bounded by the map size.
        if self.order.len() > 2 * self.max {
            let last = &self.last;
            self.order.retain(|(k, t)| last.get(k) == Some(t));
        }
        true
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: i64 = 1_000_000;

    fn sighting(fp: &str, seen: i64) -> CertSighting {
        CertSighting {
            attrs: vec![KeyValue::new("tls.server.hash.sha256", fp.to_string())],
            not_after: Some(2_000_000_000),
            sha256: fp.to_string(),
            verdict: "unknown".into(),
            status: "valid",
            last_seen_us: seen,
        }
    }

    #[test]
    fn clock_follows_records_then_wall_time() {
        let t0 = Instant::now();
        let mut c = StreamClock::default();
        c.observe(100 * S, t0);
        assert_eq!(c.now_us(t0), 100 * S);
        assert_eq!(c.now_us(t0 + Duration::from_secs(5)), 105 * S);
        // An older record does not move the clock back.
        c.observe(50 * S, t0 + Duration::from_secs(5));
        assert_eq!(c.now_us(t0 + Duration::from_secs(5)), 105 * S);
        c.observe(200 * S, t0 + Duration::from_secs(6));
        assert_eq!(c.now_us(t0 + Duration::from_secs(6)), 200 * S);
    }

    #[test]
    fn certificates_leave_the_window() {
        let mut w = CertWindow::new(60 * S, 10);
        assert!(w.see(sighting("a", 0), 0));
        assert!(w.see(sighting("b", 30 * S), 30 * S));
        assert_eq!(w.live(59 * S).count(), 2);
        let left: Vec<_> = w.live(61 * S).map(|s| s.sha256.clone()).collect();
        assert_eq!(left, vec!["b"]);
        // Seen again: stays.
        assert!(w.see(sighting("b", 80 * S), 80 * S));
        assert_eq!(w.live(120 * S).count(), 1);
        assert_eq!(w.live(141 * S).count(), 0);
    }

    #[test]
    fn a_full_window_refuses_new_series_until_one_expires() {
        let mut w = CertWindow::new(60 * S, 2);
        assert!(w.see(sighting("a", 0), 0));
        assert!(w.see(sighting("b", 10 * S), 10 * S));
        assert!(!w.see(sighting("c", 20 * S), 20 * S));
        assert!(
            w.see(sighting("a", 20 * S), 20 * S),
            "known series still update"
        );
        assert!(w.see(sighting("c", 71 * S), 71 * S), "b expired at 70 s");
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn dedup_reports_once_per_window_and_stays_bounded() {
        let mut d = DedupWindow::new(60 * S, 3);
        assert!(d.first_in_window("x", 0));
        assert!(!d.first_in_window("x", 59 * S));
        assert!(d.first_in_window("x", 61 * S));
        for (i, k) in ["a", "b", "c", "e"].iter().enumerate() {
            assert!(d.first_in_window(k, 62 * S + i as i64));
        }
        assert_eq!(d.len(), 3);
        assert_eq!(d.evictions, 2, "x and a were forgotten early");
        assert!(d.first_in_window("x", 63 * S));
        for i in 0..1000 {
            d.first_in_window(&format!("k{i}"), 64 * S + i);
        }
        assert!(d.order.len() <= 6 && d.len() == 3);
    }
}
