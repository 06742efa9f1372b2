//! One trait answers who a connection's peers are: the Kubernetes inventory
//! implements it, and [`NoInventory`] answers "unknown" to everything.

use std::net::SocketAddr;

use super::connection::Connection;
use super::correlation::Correlation;

/// Answers who a connection's peers are and what issued its certificate.
pub trait Correlator: Send + Sync {
    /// A TLS connection: endpoints, SNI and the server's chain as seen.
    fn correlate(&self, conn: &Connection) -> Correlation;

    /// A connection without a handshake: who the peers are, nothing about
    /// certificates.
    fn peers(&self, client: SocketAddr, server: SocketAddr) -> Correlation;

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
