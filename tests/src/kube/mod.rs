//! Kubernetes for the correlation tests: a fake API server, objects as
//! the API and cert-manager write them, and the recorded scenario.

pub mod api;
pub mod objects;
pub mod scenario;
