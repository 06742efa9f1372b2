//! The probe stage as the pipeline sees it: a handshake that hid the
//! server's certificate goes in; it comes out, once, with the probe's
//! outcome and the probed chain — at once when the cache or a refusal
//! answers, later when a probe has to be made. Connections waiting for
//! their probe are held here, bounded by `max_held`.

use std::collections::HashMap;

use super::client::Target;
use super::prober::{Answer, Chain, ProbeConfig, ProbeKey, ProbeStats, Prober, not_probed};
use super::scope::ProbeScope;
use crate::capture::own::Announced;
use crate::model::{CertificateSource, Connection, Correlator, ProbeOutcome, ProbeResult};
use crate::x509::CertCache;

/// A handshake that hid the server's certificate: TLS 1.3, or a resumed
/// TLS <= 1.2 handshake (which sends none).
pub fn hides_certificate(c: &Connection) -> bool {
    c.server_chain.is_empty()
        && c.handshake.version.is_some()
        && (c.handshake.is_tls13() || c.handshake.resumed == Some(true))
}

pub struct ProbeStage {
    prober: Option<Prober>,
    held: HashMap<ProbeKey, Vec<Connection>>,
    held_count: usize,
    max_held: usize,
    /// Whether there is an inventory (the `local` scope's meaning).
    inventory: bool,
    stats: ProbeStats,
}

impl ProbeStage {
    /// `Off` starts no workers: every hidden certificate is `off`.
    pub fn new(cfg: ProbeConfig, own: Announced, inventory: bool) -> Self {
        let max_held = cfg.max_held;
        let prober = (cfg.scope != ProbeScope::Off).then(|| Prober::new(cfg, own));
        ProbeStage {
            prober,
            held: HashMap::new(),
            held_count: 0,
            max_held,
            inventory,
            stats: ProbeStats::default(),
        }
    }

    /// A reported handshake. Returns it when it can go on now (it needs
    /// no probe, or the answer is known); holds it otherwise.
    pub fn admit(
        &mut self,
        mut c: Connection,
        correlator: &dyn Correlator,
        certs: &mut CertCache,
    ) -> Option<Connection> {
        if !hides_certificate(&c) {
            return Some(c);
        }
        let Some(prober) = &mut self.prober else {
            c.probe = Some(not_probed(ProbeResult::Off));
            return Some(c);
        };
        let sni = c.handshake.sni.as_deref();
        let serving = correlator.serving(c.server, sni);
        if !prober.in_scope(c.server, serving.as_ref(), self.inventory) {
            prober.stats.count(ProbeResult::OutOfScope);
            c.probe = Some(not_probed(ProbeResult::OutOfScope));
            return Some(c);
        }
        let target = Target {
            server: c.server,
            sni: c.handshake.sni.clone(),
            alpn: c.handshake.alpn_offered.clone(),
        };
        match prober.request(target, serving.map_or(0, |s| s.stamp)) {
            Answer::Now(outcome, chain) => {
                apply(&mut c, outcome, &chain, certs);
                Some(c)
            }
            Answer::Pending(_) if self.held_count >= self.max_held => {
                self.stats.held_dropped += 1;
                c.probe = Some(not_probed(ProbeResult::RateLimited));
                Some(c)
            }
            Answer::Pending(key) => {
                self.held_count += 1;
                self.held.entry(key).or_default().push(c);
                None
            }
        }
    }

    /// Connections whose probes ended; with `wait`, waits for every probe
    /// still on its way first (the end of a run).
    pub fn release(&mut self, wait: bool, certs: &mut CertCache) -> Vec<Connection> {
        let Some(prober) = &mut self.prober else {
            return Vec::new();
        };
        if self.held_count == 0 && prober.in_flight() == 0 {
            return Vec::new();
        }
        let done = if wait {
            prober.wait_all()
        } else {
            prober.poll()
        };
        let mut out = Vec::new();
        for d in done {
            for mut c in self.held.remove(&d.key).unwrap_or_default() {
                self.held_count -= 1;
                apply(&mut c, d.outcome, &d.chain, certs);
                out.push(c);
            }
        }
        if wait {
            // Probes lost track of (a worker gone): report without.
            for mut c in self.held.drain().flat_map(|(_, conns)| conns) {
                c.probe = Some(not_probed(ProbeResult::Timeout));
                out.push(c);
            }
            self.held_count = 0;
        }
        out
    }

    /// Connections waiting for a probe.
    pub fn waiting(&self) -> usize {
        self.held_count
    }

    pub fn stats(&self) -> Option<ProbeStats> {
        let p = self.prober.as_ref()?;
        Some(ProbeStats {
            held_dropped: self.stats.held_dropped,
            ..p.stats().clone()
        })
    }
}

/// Puts a probe's outcome on the connection; a probed chain stands for
/// the server's.
fn apply(c: &mut Connection, outcome: ProbeOutcome, chain: &Chain, certs: &mut CertCache) {
    c.probe = Some(outcome);
    if outcome.result != ProbeResult::Ok || chain.is_empty() {
        return;
    }
    let mut new = std::mem::take(&mut c.new_certificates);
    c.server_chain = certs.chain(chain, &mut new);
    c.new_certificates = new;
    c.certificate_source = Some(CertificateSource::Probed);
}
