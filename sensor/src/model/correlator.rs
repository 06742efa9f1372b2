//! One trait answers who a connection's peers are: the Kubernetes inventory
//! implements it, and [`NoInventory`] answers "unknown" to everything.

use std::net::SocketAddr;

use super::connection::Connection;
use super::correlation::Correlation;

/// What the inventory says of a server, for probing it: where it runs, and
/// a stamp that changes when what it should serve changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Serving {
    /// The node of the server pod (or host-network node).
    pub node: Option<String>,
    /// A pod, service or node of the cluster.
    pub in_cluster: bool,
    /// Changes when the pod is replaced or a Certificate it mounts for the
    /// SNI gets a new revision: a cached probe of it is then out of date.
    pub stamp: u64,
}

/// Answers who a connection's peers are and what issued its certificate.
pub trait Correlator: Send + Sync {
    /// A TLS connection: endpoints, SNI and the server's chain as seen.
    fn correlate(&self, conn: &Connection) -> Correlation;

    /// A connection without a handshake: who the peers are, nothing about
    /// certificates.
    fn peers(&self, client: SocketAddr, server: SocketAddr) -> Correlation;

    /// The server as probing sees it; `None` without an inventory (or
    /// before its first lists).
    fn serving(&self, _server: SocketAddr, _sni: Option<&str>) -> Option<Serving> {
        None
    }

    /// PEM CA bundles the cluster publishes (trust-manager Bundles, `ca.crt`
    /// of TLS Secrets), to add to the trust anchors.
    fn trust_bundles(&self) -> Vec<String> {
        Vec::new()
    }
}

pub struct NoInventory;

impl Correlator for NoInventory {
    fn correlate(&self, _: &Connection) -> Correlation {
        Correlation::default()
    }

    fn peers(&self, _: SocketAddr, _: SocketAddr) -> Correlation {
        Correlation::default()
    }
}
