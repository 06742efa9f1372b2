//! tls-sensor: TLS handshake and certificate visibility for Kubernetes.
//!
//! Stages, in the order data flows: [`capture`] → [`reassembly`] → [`tls`]
//! → [`x509`] → [`inventory`] → [`analysis`] → [`export`], wired by
//! [`pipeline`]; all of them speak [`model`]'s vocabulary.

pub mod analysis;
pub mod analyze;
pub mod capture;
pub mod export;
pub mod health;
pub mod inventory;
pub mod model;
pub mod pipeline;
pub mod probe;
pub mod reassembly;
pub mod run;
pub mod tls;
pub mod x509;
