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

use std::collections::HashMap;
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
    joined: Joined,
    /// Asked for since the last prune.
    used: bool,
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
    capacity: usize,
    pub stats: JoinStats,
}

impl FlowJoin {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
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
        let joined = Joined {
            tls: Arc::new(tls),
            source: c.correlation.source.clone(),
            destination: c.correlation.destination.clone(),
        };
        self.entries.insert(key, Entry { joined, used: true });
    }

    /// The handshake of the connection `client` → `server`, if known;
    /// `end` forgets it.
    pub fn get(&mut self, client: SocketAddr, server: SocketAddr, end: bool) -> Option<Joined> {
        let key = (client, server);
        if end {
            return self.entries.remove(&key).map(|e| e.joined);
        }
        let e = self.entries.get_mut(&key)?;
        e.used = true;
        Some(e.joined.clone())
    }

    /// Forgets the handshakes nobody asked for since the previous prune
    /// (called once per report interval, after the reports).
    pub fn prune(&mut self) {
        let before = self.entries.len();
        self.entries.retain(|_, e| std::mem::take(&mut e.used));
        self.stats.pruned += (before - self.entries.len()) as u64;
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
}
