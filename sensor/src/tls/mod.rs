//! TLS: record and handshake-message reassembly, the handshake state
//! machine, and the JA3/JA3S/JA4 fingerprints; fills a connection's
//! `HandshakeFacts`.

pub mod fingerprint;
pub mod hello;
pub mod record;
pub mod session;
pub mod starttls;

pub use session::{Handshake, TlsContext, TlsSession, TlsStats};
