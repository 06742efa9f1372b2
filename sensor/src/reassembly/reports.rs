//! Periodic flow reports: what each connection carried since its previous
//! report. Remembers, per open connection, the totals last reported, so a
//! sample of its totals becomes the delta since then and nothing is
//! counted twice; the connection's end forgets it.
//!
//! Bounded: when `capacity` connections are remembered, a new one is not
//! reported until it ends (counted in `deferred`); its end then carries
//! its whole total, still never counted twice.

use foldhash::{HashMap, HashMapExt};
use std::net::SocketAddr;

use crate::model::{ConnTraffic, Counts};

#[derive(Debug, Default, Clone)]
pub struct ReportStats {
    /// Flow reports made (periodic and ends).
    pub reports: u64,
    /// Periodic reports left out: the table of remembered connections
    /// was full (the connection's end reports its whole total).
    pub deferred: u64,
}

pub struct FlowReports {
    last: HashMap<(SocketAddr, SocketAddr), Counts>,
    capacity: usize,
    pub stats: ReportStats,
}

impl FlowReports {
    pub fn new(capacity: usize) -> Self {
        Self {
            last: HashMap::new(),
            capacity,
            stats: ReportStats::default(),
        }
    }

    /// The delta a report of `t` carries: since the previous report, or
    /// the whole total on the first. None when there is nothing to report:
    /// an open connection that carried nothing new, or one the bound
    /// defers. An ended connection is always reported, and forgotten.
    pub fn delta(&mut self, t: &ConnTraffic) -> Option<Counts> {
        let key = (t.client, t.server);
        if t.end.is_some() {
            let before = self.last.remove(&key).unwrap_or_default();
            self.stats.reports += 1;
            return Some(t.total.since(&before));
        }
        let delta = match self.last.get_mut(&key) {
            Some(before) => {
                let d = t.total.since(before);
                *before = t.total;
                d
            }
            None => {
                if self.last.len() >= self.capacity {
                    self.stats.deferred += 1;
                    return None;
                }
                self.last.insert(key, t.total);
                t.total
            }
        };
        if delta.is_zero() {
            return None;
        }
        self.stats.reports += 1;
        Some(delta)
    }

    /// Connections reported and not yet ended.
    pub fn open(&self) -> usize {
        self.last.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FlowEnd;

    fn traffic(bytes: u64, end: Option<FlowEnd>, port: u16) -> ConnTraffic {
        ConnTraffic {
            client: SocketAddr::from(([10, 0, 0, 2], port)),
            server: "10.0.0.1:443".parse().unwrap(),
            start_us: 0,
            time_us: 1,
            total: Counts {
                bytes_to_server: bytes,
                packets_to_server: bytes / 10,
                ..Counts::default()
            },
            encrypted: true,
            partial: false,
            end,
        }
    }

    #[test]
    fn deltas_sum_to_the_total_and_the_end_is_not_counted_twice() {
        let mut r = FlowReports::new(8);
        let mut sum = 0;
        for (total, end) in [
            (100, None),
            (100, None),
            (250, None),
            (400, Some(FlowEnd::Fin)),
        ] {
            if let Some(d) = r.delta(&traffic(total, end, 40000)) {
                sum += d.bytes_to_server;
            }
        }
        assert_eq!(sum, 400);
        assert_eq!(r.open(), 0);
        assert_eq!(r.stats.reports, 3, "the unchanged interval is left out");
    }

    #[test]
    fn a_full_table_defers_to_the_end_with_the_whole_total() {
        let mut r = FlowReports::new(1);
        assert!(r.delta(&traffic(10, None, 40000)).is_some());
        assert!(r.delta(&traffic(10, None, 40001)).is_none());
        assert_eq!(r.stats.deferred, 1);
        let end = r.delta(&traffic(30, Some(FlowEnd::Rst), 40001)).unwrap();
        assert_eq!(end.bytes_to_server, 30);
    }
}
