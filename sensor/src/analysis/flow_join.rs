//! Joins a connection's flow reports to its handshake: what the handshake
//! said (version, cipher, SNI, ALPN, mesh, verdict, served leaf) and who
//! the peers are, kept from when the handshake was judged until the
//! connection's last report.
//!
//! Bounded: past `capacity` handshakes are not kept (`dropped`; their
//! flows report `tls` with unknown facts). A handshake whose connection is
//! never reported (not counted by the kernel, or the sensor's own) would
//! stay forever, so `prune` forgets those not asked for since the
//! previous prune.
//!
//! Kept compact, as a node holds 100,000 open connections: the facts and
//! peers are shared between the connections that have equal ones (a pod's
//! pooled connections to one service all do), so an entry is its key and
//! three pointers.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::hash::Hash;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::model::{Connection, FlowTls, Peer};

/// A judged handshake as its flow reports need it.
#[derive(Debug, Clone)]
pub struct Joined {
    pub tls: Arc<FlowTls>,
    pub source: Option<Peer>,
    pub destination: Option<Peer>,
}

struct Entry {
    tls: Arc<FlowTls>,
    source: Option<Arc<Peer>>,
    destination: Option<Arc<Peer>>,
    /// Asked for since the last prune.
    used: bool,
}

impl Entry {
    fn joined(&self) -> Joined {
        Joined {
            tls: self.tls.clone(),
            source: self.source.as_deref().cloned(),
            destination: self.destination.as_deref().cloned(),
        }
    }
}

/// One shared copy of each distinct value in use.
struct Shared<T>(HashSet<Arc<T>>);

impl<T: Hash + Eq> Shared<T> {
    fn get(&mut self, value: T) -> Arc<T> {
        if let Some(a) = self.0.get(&value) {
            return a.clone();
        }
        let a = Arc::new(value);
        self.0.insert(a.clone());
        a
    }

    /// Drops the values no entry (nor report in flight) holds any more.
    fn prune(&mut self) {
        self.0.retain(|a| Arc::strong_count(a) > 1);
    }
}

#[derive(Debug, Default, Clone)]
pub struct JoinStats {
    /// Handshakes not kept: the bound was reached.
    pub dropped: u64,
    /// Handshakes forgotten unasked (their connection was never reported).
    pub pruned: u64,
}

pub struct FlowJoin {
    entries: HashMap<(SocketAddr, SocketAddr), Entry>,
    facts: Shared<FlowTls>,
    peers: Shared<Peer>,
    capacity: usize,
    pub stats: JoinStats,
}

impl FlowJoin {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            facts: Shared(HashSet::new()),
            peers: Shared(HashSet::new()),
            capacity,
            stats: JoinStats::default(),
        }
    }

    /// Keeps what a judged connection's flow reports will carry.
    pub fn insert(&mut self, c: &Connection) {
        let key = (c.client, c.server);
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.stats.dropped += 1;
            return;
        }
        let hs = &c.handshake;
        let tls = FlowTls {
            version: hs.version,
            cipher: hs.cipher,
            sni: hs.sni.clone(),
            alpn_offered: hs.alpn_offered.clone(),
            alpn: hs.alpn.clone(),
            mesh: c.mesh.clone(),
            mutual: hs.mutual,
            verdict: c.correlation.verdict,
            server_leaf: c.server_chain.first().map(|l| l.sha256.clone()),
        };
        let entry = Entry {
            tls: self.facts.get(tls),
            source: c.correlation.source.clone().map(|p| self.peers.get(p)),
            destination: c.correlation.destination.clone().map(|p| self.peers.get(p)),
            used: true,
        };
        self.entries.insert(key, entry);
    }

    /// The handshake of the connection `client` → `server`, if known;
    /// `end` forgets it.
    pub fn get(&mut self, client: SocketAddr, server: SocketAddr, end: bool) -> Option<Joined> {
        let key = (client, server);
        if end {
            return self.entries.remove(&key).map(|e| e.joined());
        }
        let e = self.entries.get_mut(&key)?;
        e.used = true;
        Some(e.joined())
    }

    /// Forgets the handshakes nobody asked for since the previous prune
    /// (called once per report interval, after the reports), and the
    /// shared values no handshake holds any more.
    pub fn prune(&mut self) {
        let before = self.entries.len();
        self.entries.retain(|_, e| std::mem::take(&mut e.used));
        self.stats.pruned += (before - self.entries.len()) as u64;
        self.facts.prune();
        self.peers.prune();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(port: u16) -> Connection {
        Connection::new(
            SocketAddr::from(([10, 0, 0, 2], port)),
            "10.0.0.1:443".parse().unwrap(),
            0,
        )
    }

    #[test]
    fn bounded_forgotten_at_the_end_and_pruned_when_unasked() {
        let mut j = FlowJoin::new(2);
        for p in [1, 2, 3] {
            j.insert(&conn(p));
        }
        assert_eq!((j.len(), j.stats.dropped), (2, 1));
        let (c1, c2) = (conn(1), conn(2));
        assert!(j.get(c1.client, c1.server, true).is_some());
        assert!(j.get(c1.client, c1.server, false).is_none());
        // Inserted counts as asked once; then unasked for a whole interval.
        j.prune();
        assert_eq!(j.len(), 1);
        j.prune();
        assert!(j.get(c2.client, c2.server, false).is_none());
        assert_eq!(j.stats.pruned, 1);
    }

    #[test]
    fn equal_facts_are_kept_once_and_let_go_with_the_last_connection() {
        let mut j = FlowJoin::new(10);
        for p in [1, 2, 3] {
            j.insert(&conn(p));
        }
        assert_eq!(j.facts.0.len(), 1);
        let (a, b) = (conn(1), conn(2));
        assert!(Arc::ptr_eq(
            &j.get(a.client, a.server, false).unwrap().tls,
            &j.get(b.client, b.server, false).unwrap().tls
        ));
        for p in [1, 2, 3] {
            let c = conn(p);
            j.get(c.client, c.server, true);
        }
        j.prune();
        assert!(j.facts.0.is_empty());
    }
}
