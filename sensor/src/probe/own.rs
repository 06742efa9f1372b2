//! The sensor's own probe connections, so the capture never reports them:
//! each probe socket's local port and server, noted before its SYN leaves
//! and kept a while after it closed (the capture may lag behind).
//! Kept small and local to `probe/`; a general "own connections"
//! mechanism can absorb it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a probe's connection stays recognised after it was noted.
const REMEMBER: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Inner {
    live: HashMap<(u16, SocketAddr), Instant>,
    order: VecDeque<((u16, SocketAddr), Instant)>,
    /// Entries forgotten early because the set was full.
    dropped: u64,
}

/// Shared between the probe workers (which add) and the pipeline (which asks).
#[derive(Clone)]
pub struct OwnConnections {
    inner: Arc<Mutex<Inner>>,
    capacity: usize,
}

impl OwnConnections {
    pub fn new(capacity: usize) -> Self {
        OwnConnections {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, local_port: u16, server: SocketAddr) {
        let now = Instant::now();
        let mut g = self.lock();
        while let Some((k, t)) = g.order.front().copied() {
            let full = g.order.len() >= self.capacity;
            if !full && now.duration_since(t) < REMEMBER {
                break;
            }
            g.order.pop_front();
            if g.live.get(&k) == Some(&t) {
                g.live.remove(&k);
                if full && now.duration_since(t) < REMEMBER {
                    g.dropped += 1;
                }
            }
        }
        g.live.insert((local_port, server), now);
        g.order.push_back(((local_port, server), now));
    }

    /// Whether the connection between `a` and `b` is one of our probes.
    pub fn contains(&self, a: SocketAddr, b: SocketAddr) -> bool {
        let g = self.lock();
        if g.live.is_empty() {
            return false;
        }
        g.live.contains_key(&(a.port(), b)) || g.live.contains_key(&(b.port(), a))
    }

    /// Entries forgotten before their time because the set was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_both_directions_and_counts_what_a_full_set_drops() {
        let own = OwnConnections::new(2);
        let s: SocketAddr = "10.0.0.1:443".parse().unwrap();
        own.insert(40000, s);
        let c: SocketAddr = "10.0.0.9:40000".parse().unwrap();
        assert!(own.contains(c, s));
        assert!(own.contains(s, c));
        assert!(!own.contains("10.0.0.9:40001".parse().unwrap(), s));
        own.insert(40001, s);
        own.insert(40002, s);
        assert_eq!(own.dropped(), 1);
        assert!(!own.contains(c, s));
        assert!(own.contains("10.0.0.9:40002".parse().unwrap(), s));
    }
}
