//! Stage 5: the certificate a server really serves when the handshake hid
//! it (TLS 1.3 encrypts the Certificate message; a resumed TLS <= 1.2
//! handshake sends none).
//!
//! Design. The pipeline is synchronous and must never wait on the network,
//! so a [`Prober`] owns a few worker threads (`concurrency` of them, which
//! is the bound on probes at once) fed through a bounded queue; results
//! come back on a channel the pipeline drains as it goes. A handshake that
//! needs a probe asks the prober:
//!
//! - a fresh cache entry for (server ip, port, SNI) answers at once
//!   (`cached: true`); an entry is fresh for `ttl` (failures for at most a
//!   minute) and only while the inventory's stamp of the server (pod,
//!   revisions of the Certificates it mounts) is unchanged, so a renewal or
//!   a pod restart refreshes it early;
//! - a probe already on its way: the connection waits for it;
//! - else a probe is started if the rate (token bucket, `rate` per second,
//!   a burst of as many) and the queue allow, and the connection waits;
//!   otherwise it is reported now with `rate_limited`.
//!
//! A waiting connection is held in the pipeline (at most `max_held`, the
//! excess is reported at once, counted) and reported, once, when its
//! probe ends: its record then carries the probed chain, which goes through
//! chain verification, correlation and findings like an observed one.
//! Destinations come only from observed handshakes. The probe connections
//! themselves are announced in `capture::own::Announced` before their SYN
//! leaves, so the capture never reports them.

pub mod client;
mod prober;
pub mod scope;
pub mod stage;

pub use client::Target;
pub use prober::{
    Answer, Chain, Done, ProbeConfig, ProbeKey, ProbeStats, Prober, Watched, not_probed,
};
pub use scope::{HostView, ProbeScope};
pub use stage::ProbeStage;
