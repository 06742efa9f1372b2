//! Findings: the rules of DESIGN.md applied to each handshake, under a
//! policy (rules on/off, severities, thresholds, exceptions), with chain
//! verification against the trust anchors and deduplicated finding lines.

mod cert_rules;
pub mod ciphers;
pub mod correlation;
pub mod dedup;
pub mod mesh;
pub mod policy;
pub mod rules;
mod text;
mod tls_rules;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::Value;

pub use correlation::{CertManager, Correlation, Correlator, NoInventory, Verdict, Workload};
pub use policy::{Policy, PolicyError};
pub use rules::{Rule, Severity};

use crate::x509::{CertInfo, ChainVerdict, ChainVerifier, Role, TrustStore};
use dedup::Dedup;

/// The moment validity is judged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The connection's first packet (capture files: a 2019 capture is
    /// judged as of 2019).
    #[default]
    PacketTime,
    /// A fixed moment, unix seconds (`--now`).
    Fixed(i64),
    /// The wall clock (the live daemon).
    Wall,
}

#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    pub clock: Clock,
    /// Finding lines: one per rule and certificate (or flow) per window.
    pub window_secs: i64,
    /// Keys remembered for that deduplication.
    pub dedup_capacity: usize,
    /// Chain verification results kept, by chain.
    pub verify_cache: usize,
    /// CA certificates remembered from verified chains, to recognise an
    /// incomplete chain elsewhere.
    pub intermediate_pool: usize,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            clock: Clock::PacketTime,
            window_secs: 3600,
            dedup_capacity: 100_000,
            verify_cache: 50_000,
            intermediate_pool: 5_000,
        }
    }
}

/// One chain as the pipeline has it: DER and parsed, in the order sent.
#[derive(Clone, Copy)]
pub struct Chain<'a> {
    pub ders: &'a [Vec<u8>],
    pub certs: &'a [Arc<CertInfo>],
}

impl Chain<'_> {
    pub const EMPTY: Chain<'static> = Chain {
        ders: &[],
        certs: &[],
    };
}

/// The first alert seen in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertSeen {
    pub description: u8,
    pub level: Option<u8>,
    pub from_client: Option<bool>,
}

/// What the rules look at for one connection.
pub struct Observation<'a> {
    /// The connection's first packet, microseconds since the epoch.
    pub time_us: i64,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub sni: Option<&'a str>,
    pub mesh: Option<&'a str>,
    pub version: Option<u16>,
    pub cipher: Option<u16>,
    pub alert: Option<AlertSeen>,
    pub server_chain: Chain<'a>,
    pub client_chain: Chain<'a>,
    pub correlation: &'a Correlation,
}

/// One finding, before it is written.
#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub message: String,
    /// SHA-256 of the certificate it is about (certificate rules).
    pub certificate: Option<String>,
    pub subject: Option<String>,
    /// Rule-specific facts: dates, key sizes, the verified path...
    pub evidence: Value,
    dedup_key: String,
}

/// The findings of one connection.
#[derive(Debug, Default)]
pub struct Evaluation {
    pub findings: Vec<Finding>,
    /// Parallel to `findings`: the first of its rule and certificate (or
    /// flow) in the current window, so it gets its own finding line.
    pub first: Vec<bool>,
    pub server_verdict: Option<Arc<ChainVerdict>>,
}

#[derive(Debug, Default, Clone)]
pub struct AnalysisStats {
    /// Findings reported in handshake records, by rule id.
    pub reported: BTreeMap<&'static str, u64>,
    /// Findings an exception suppressed, by rule id.
    pub suppressed: BTreeMap<&'static str, u64>,
}

/// The analysis stage.
pub struct Analysis {
    policy: Policy,
    verifier: ChainVerifier,
    config: AnalysisConfig,
    dedup: Dedup,
    correlator: Box<dyn Correlator>,
    pub stats: AnalysisStats,
}

impl Default for Analysis {
    /// The default policy over Mozilla's roots, judged at packet time.
    fn default() -> Self {
        let store = TrustStore::new(crate::x509::SystemRoots::Bundled)
            .expect("the bundled roots always load");
        Self::new(AnalysisConfig::default(), Policy::default(), store)
    }
}

impl Analysis {
    pub fn new(config: AnalysisConfig, policy: Policy, store: TrustStore) -> Self {
        Self {
            policy,
            verifier: ChainVerifier::new(store, config.verify_cache, config.intermediate_pool),
            dedup: Dedup::new(config.window_secs, config.dedup_capacity),
            config,
            correlator: Box::new(NoInventory),
            stats: AnalysisStats::default(),
        }
    }

    /// The inventory's hook: who the peers are, which cert-manager object
    /// issued the leaf.
    pub fn set_correlator(&mut self, c: Box<dyn Correlator>) {
        self.correlator = c;
    }

    pub fn correlator(&mut self) -> &mut dyn Correlator {
        self.correlator.as_mut()
    }

    /// For cluster CA bundles learnt at run time: `trust_mut().add_bundle(pem, "ns/name")`.
    pub fn trust_mut(&mut self) -> &mut TrustStore {
        self.verifier.store_mut()
    }

    pub fn trust(&self) -> &TrustStore {
        self.verifier.store()
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn verifier(&self) -> &ChainVerifier {
        &self.verifier
    }

    pub fn dedup_stats(&self) -> &dedup::DedupStats {
        &self.dedup.stats
    }

    /// The moment an observation is judged at, unix seconds.
    pub fn now(&self, time_us: i64) -> i64 {
        match self.config.clock {
            Clock::PacketTime => time_us.div_euclid(1_000_000),
            Clock::Fixed(t) => t,
            Clock::Wall => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        }
    }

    pub fn evaluate(&mut self, obs: &Observation<'_>) -> Evaluation {
        let now = self.now(obs.time_us);
        let mut found = Vec::new();
        let mut server_verdict = None;
        for (role, chain) in [
            (Role::Server, &obs.server_chain),
            (Role::Client, &obs.client_chain),
        ] {
            if chain.ders.is_empty() || chain.ders.len() != chain.certs.len() {
                continue;
            }
            let fps: Vec<String> = chain.certs.iter().map(|c| c.sha256.clone()).collect();
            let verdict = self.verifier.verify(role, chain.ders, &fps);
            let cx = cert_rules::CertCtx {
                policy: &self.policy,
                now,
                role,
                chain,
                verdict: &verdict,
                obs,
            };
            cert_rules::evaluate(&cx, &mut found);
            if role == Role::Server {
                server_verdict = Some(verdict);
            }
        }
        tls_rules::evaluate(&self.policy, obs, &mut found);
        let mut eval = Evaluation {
            server_verdict,
            ..Default::default()
        };
        self.finish(obs, now, found, &mut eval);
        eval
    }

    /// `tls.plaintext` for a TCP flow between workloads that carried
    /// payload without a TLS handshake; flow accounting calls it.
    pub fn plaintext(
        &mut self,
        obs: &Observation<'_>,
        bytes_to_server: u64,
        bytes_to_client: u64,
    ) -> Evaluation {
        let now = self.now(obs.time_us);
        let found: Vec<Finding> =
            tls_rules::plaintext_flow(&self.policy, obs, bytes_to_server, bytes_to_client)
                .into_iter()
                .collect();
        let mut eval = Evaluation::default();
        self.finish(obs, now, found, &mut eval);
        eval
    }

    /// Applies exceptions, counts, and marks the first of each key.
    fn finish(
        &mut self,
        obs: &Observation<'_>,
        now: i64,
        found: Vec<Finding>,
        eval: &mut Evaluation,
    ) {
        let chain: Vec<String> = obs
            .server_chain
            .certs
            .iter()
            .map(|c| c.sha256.clone())
            .collect();
        let dest = obs.correlation.destination.as_ref();
        let workload_full = dest.and_then(|d| match (&d.kind, &d.name) {
            (Some(k), Some(n)) => Some(format!("{k}/{n}")),
            _ => None,
        });
        for f in found {
            let subject = policy::Subject {
                rule: f.rule,
                certificate: f.certificate.as_deref(),
                chain: &chain,
                sni: obs.sni,
                namespace: dest.and_then(|d| d.namespace.as_deref()),
                workload: dest
                    .and_then(|d| d.name.as_deref())
                    .map(|n| (workload_full.as_deref().unwrap_or(n), n)),
            };
            if let Some(e) = self.policy.exception(&subject, now) {
                tracing::debug!(rule = f.rule.id(), reason = %e.reason, "finding suppressed by an exception");
                *self.stats.suppressed.entry(f.rule.id()).or_default() += 1;
                continue;
            }
            *self.stats.reported.entry(f.rule.id()).or_default() += 1;
            eval.first.push(self.dedup.first(f.rule, &f.dedup_key, now));
            eval.findings.push(f);
        }
    }
}
