//! TLS 1.3 hides the server's certificate: where the correlator found the
//! cert-manager Secret the server pod mounts for the SNI, that certificate
//! stands in for the chain, marked `inferred`, and is judged like one seen.

use crate::model::{CertificateSource, Connection};
use crate::x509::CertCache;

/// Puts the correlation's inferred leaf (if any) in the connection's
/// server chain.
pub fn apply(conn: &mut Connection, certs: &mut CertCache) {
    let Some(leaf) = conn.correlation.inferred.take() else {
        return;
    };
    let (cert, first) = certs.get(&leaf.der);
    if first {
        conn.new_certificates.push(cert.clone());
    }
    conn.server_chain = vec![cert];
    conn.certificate_source = Some(CertificateSource::Inferred);
}
