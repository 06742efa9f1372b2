//! Findings: the rules of DESIGN.md applied to each connection and flow,
//! under a policy (rules on/off, severities, thresholds, exceptions), with
//! chain verification against the trust anchors (the cluster's bundles
//! joining them, [`trust_refresh`]) and deduplicated finding lines; mesh
//! classification ([`mesh`]).

mod cert_memo;
mod cert_rules;
pub mod ciphers;
pub mod dedup;
pub mod flow_join;
pub mod mesh;
mod observation;
pub mod policy;
mod text;
mod tls_rules;
pub mod trust_refresh;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use crate::model::{Rule, Severity};
pub use policy::{Policy, PolicyError};

use crate::model::{Connection, Finding, Flow};
use crate::x509::{ChainVerdict, ChainVerifier, Role, TrustStore};
use cert_memo::CertMemo;
use dedup::Dedup;
use observation::{Found, Observation};

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

#[derive(Debug, Default, Clone)]
pub struct AnalysisStats {
    /// Findings reported, by rule (indexed by `Rule::index`).
    pub reported: [u64; Rule::COUNT],
    /// Findings an exception suppressed, by rule.
    pub suppressed: [u64; Rule::COUNT],
    /// Chains whose certificate findings were taken from the memo
    /// (`cert_memo`) rather than judged again.
    pub memo_hits: u64,
    /// Times that memo started over because it was full.
    pub memo_full: u64,
}

impl AnalysisStats {
    /// `(rule id, count)` of the rules with a non-zero count, in id order.
    pub fn by_rule(counts: &[u64; Rule::COUNT]) -> BTreeMap<&'static str, u64> {
        Rule::ALL
            .iter()
            .filter(|r| counts[r.index()] > 0)
            .map(|r| (r.id(), counts[r.index()]))
            .collect()
    }
}

/// The analysis stage.
pub struct Analysis {
    policy: Policy,
    verifier: ChainVerifier,
    config: AnalysisConfig,
    dedup: Dedup,
    memo: CertMemo,
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
            memo: CertMemo::new(),
            config,
            stats: AnalysisStats::default(),
        }
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

    /// Judges one TLS connection: its findings go into `conn.findings`.
    /// Returns the server chain's verification verdict.
    pub fn evaluate(&mut self, conn: &mut Connection) -> Option<Arc<ChainVerdict>> {
        let obs = Observation::of_connection(conn);
        let now = self.now(obs.time_us);
        let mut found = Vec::new();
        let mut server_verdict = None;
        for (role, chain) in [
            (Role::Server, obs.server_chain),
            (Role::Client, obs.client_chain),
        ] {
            if chain.is_empty() {
                continue;
            }
            let verdict = self.verifier.verify(role, chain);
            let cx = cert_rules::CertCtx {
                policy: &self.policy,
                now,
                role,
                chain,
                verdict: &verdict,
                obs: &obs,
            };
            let memo = self
                .memo
                .findings(&cx, &mut found, &mut self.stats.memo_full);
            self.stats.memo_hits += u64::from(memo);
            if role == Role::Server {
                server_verdict = Some(verdict);
            }
        }
        tls_rules::evaluate(&self.policy, &obs, &mut found);
        let findings = self.finish(&obs, now, found);
        conn.findings = findings;
        server_verdict
    }

    /// `tls.plaintext` for a TCP flow between workloads that carried
    /// payload without a TLS handshake: its findings go into `flow.findings`.
    pub fn plaintext(&mut self, flow: &mut Flow) {
        let obs = Observation::of_flow(flow);
        let now = self.now(obs.time_us);
        let found: Vec<Found> = tls_rules::plaintext_flow(
            &self.policy,
            &obs,
            flow.bytes_to_server,
            flow.bytes_to_client,
        )
        .into_iter()
        .collect();
        let findings = self.finish(&obs, now, found);
        flow.findings = findings;
    }

    /// Applies exceptions, counts, and marks the first of each key.
    fn finish(&mut self, obs: &Observation<'_>, now: i64, found: Vec<Found>) -> Vec<Finding> {
        let dest = obs.destination.as_ref();
        let workload_full = dest.and_then(|d| match (&d.kind, &d.name) {
            (Some(k), Some(n)) => Some(format!("{k}/{n}")),
            _ => None,
        });
        let mut out = Vec::with_capacity(found.len());
        for Found {
            mut finding,
            dedup_key,
        } in found
        {
            let subject = policy::Subject {
                rule: finding.rule,
                certificate: finding.certificate.as_deref(),
                chain: obs.server_chain,
                sni: obs.sni,
                namespace: dest.and_then(|d| d.namespace.as_deref()),
                workload: dest
                    .and_then(|d| d.name.as_deref())
                    .map(|n| (workload_full.as_deref().unwrap_or(n), n)),
            };
            if let Some(e) = self.policy.exception(&subject, now) {
                tracing::debug!(rule = finding.rule.id(), reason = %e.reason, "finding suppressed by an exception");
                self.stats.suppressed[finding.rule.index()] += 1;
                continue;
            }
            self.stats.reported[finding.rule.index()] += 1;
            finding.first = self.dedup.first(finding.rule, &dedup_key, now);
            out.push(finding);
        }
        out
    }
}
