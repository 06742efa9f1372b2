//! A run's statistics, typed as each stage keeps them, and their two
//! renderings: the summary line (`kind: "summary"`) and the `sensor.*`
//! self-telemetry.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::analysis::AnalysisStats;
use crate::analysis::dedup::DedupStats;
use crate::analysis::trust_refresh::TrustRefreshStats;
use crate::capture::CaptureStats;
use crate::capture::decode::Skip;
use crate::inventory::{InventoryStats, Phase};
use crate::probe::ProbeStats;
use crate::reassembly::ReassemblyStats;
use crate::reassembly::accounting::AccountingStats;
use crate::tls::TlsStats;
use crate::tls::record::RecordError;
use crate::x509::CertCacheStats;
use crate::x509::verify::VerifyStats;

/// Every stage's statistics for one run (or so far).
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    pub capture: CaptureStats,
    pub reassembly: ReassemblyStats,
    pub tls: TlsStats,
    /// Connections whose first payload was a ClientHello.
    pub tls_connections: u64,
    /// Handshake records reported.
    pub handshakes: u64,
    pub certificates: CertCacheStats,
    pub accounting: AccountingStats,
    pub verify: VerifyStats,
    pub analysis: AnalysisStats,
    pub dedup: DedupStats,
    pub trust: TrustRefreshStats,
    pub inventory: Option<InventoryStats>,
    /// With probing on: outcomes by result, cache and bounds.
    pub probe: Option<ProbeStats>,
    /// Live capture only: the kernel program's counters and user space's
    /// own counts of the capture, by name.
    pub kernel: BTreeMap<&'static str, u64>,
}

impl RunStats {
    /// Bad input and dropped work by kind, as the summary and
    /// `sensor.parse_errors` name them; kinds never seen are left out.
    pub fn errors(&self) -> BTreeMap<&'static str, u64> {
        let c = &self.capture;
        let r = &self.reassembly;
        let t = &self.tls;
        let mut all = vec![
            (
                Skip::UnsupportedLinkType,
                c.skipped[Skip::UnsupportedLinkType as usize],
            ),
            (Skip::Malformed, c.skipped[Skip::Malformed as usize]),
            (Skip::Fragment, c.skipped[Skip::Fragment as usize]),
        ]
        .into_iter()
        .map(|(s, n)| (s.name(), n))
        .collect::<Vec<_>>();
        all.extend([
            ("capture_file_damaged", c.files_damaged),
            ("capture_file_unreadable", c.files_unreadable),
            ("trust_bundle_bad", self.trust.bad_bundles),
            ("reassembly_gap", r.gaps),
            ("reassembly_out_of_window", r.out_of_window),
            ("connection_table_full", r.table_full),
            ("stream_budget_exhausted", r.stream_budget_exhausted),
            ("tls_hello_unparsable", t.hello_errors),
            (
                "tls_certificate_message_unparsable",
                t.certificate_message_errors,
            ),
            ("x509_unparsable", self.certificates.parse_errors),
            ("certificate_cache_full", self.certificates.not_cached),
            ("plaintext_flow_table_full", self.accounting.table_full),
            ("chain_verify_cache_full", self.verify.cache_full),
            ("intermediate_pool_full", self.verify.pool_full),
            ("finding_dedup_table_full", self.dedup.table_full),
        ]);
        if let Some(p) = &self.probe {
            all.extend([
                ("probe_cache_full", p.cache_evicted),
                ("probe_waiting_full", p.held_dropped),
                ("probe_own_table_full", p.own_dropped),
            ]);
        }
        for e in RecordError::ALL {
            all.push((e.name(), t.record_errors[e as usize]));
        }
        all.into_iter().filter(|(_, n)| *n > 0).collect()
    }
}

/// The summary line: totals of one run, and every error by kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub kind: &'static str,
    pub files: u64,
    pub frames: u64,
    pub bytes: u64,
    pub tcp_segments: u64,
    pub connections: u64,
    pub tls_connections: u64,
    pub handshakes: u64,
    pub certificates: u64,
    /// TCP connections that carried payload and never started TLS.
    pub plaintext_flows: u64,
    /// Findings in handshake records, by rule.
    pub findings: BTreeMap<&'static str, u64>,
    /// Findings suppressed by policy exceptions, by rule.
    pub findings_suppressed: BTreeMap<&'static str, u64>,
    pub errors: BTreeMap<&'static str, u64>,
    /// Live capture only: the kernel program's counters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub kernel: BTreeMap<&'static str, u64>,
    /// With an inventory: objects, drops, rejections and sync state per kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventoryStats>,
    /// With probing on: outcomes by result, cache hits, own connections skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeStats>,
}

impl From<&RunStats> for Summary {
    fn from(s: &RunStats) -> Self {
        Summary {
            kind: "summary",
            files: s.capture.files,
            frames: s.capture.frames,
            bytes: s.capture.bytes,
            tcp_segments: s.reassembly.segments,
            connections: s.reassembly.connections,
            tls_connections: s.tls_connections,
            handshakes: s.handshakes,
            certificates: s.certificates.parsed,
            plaintext_flows: s.accounting.plaintext_flows,
            findings: AnalysisStats::by_rule(&s.analysis.reported),
            findings_suppressed: AnalysisStats::by_rule(&s.analysis.suppressed),
            errors: s.errors(),
            kernel: s.kernel.clone(),
            inventory: s.inventory.clone(),
            probe: s.probe.clone(),
        }
    }
}

/// The sensor's own totals since start, exported as `sensor.*`
/// (cumulative counters, so totals, not deltas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensorSnapshot {
    /// Packets seen by the capture (kernel counter, or frames of a file).
    pub packets: u64,
    /// Events the kernel could not hand to user space (ring buffer full).
    pub events_lost: u64,
    /// Flows dropped from the kernel flow map or the connection table before their end.
    pub flows_evicted: u64,
    /// Bad input by kind (the summary's error names).
    pub parse_errors: BTreeMap<&'static str, u64>,
    /// Inventory watches by resource (`pods`, `certificaterequests`, ...): synced or not.
    pub inventory_synced: BTreeMap<&'static str, bool>,
    /// Probe outcomes by result name (`sensor.probes`).
    pub probes: BTreeMap<&'static str, u64>,
}

impl From<&RunStats> for SensorSnapshot {
    /// A capture file's frames count as packets; live capture's kernel
    /// counters (named as `sensor_common::Counter::name`) give packets,
    /// events lost (ring buffer full) and flows evicted (flow map full),
    /// to which the connection table's overflow is added.
    fn from(s: &RunStats) -> Self {
        let k = |name: &str| s.kernel.get(name).copied();
        SensorSnapshot {
            packets: k("packets").unwrap_or(s.capture.frames),
            events_lost: k("ring_buffer_full").unwrap_or(0),
            flows_evicted: k("flow_map_full").unwrap_or(0) + s.reassembly.table_full,
            parse_errors: s.errors(),
            inventory_synced: s
                .inventory
                .iter()
                .flat_map(|i| &i.sync)
                .map(|(kind, k)| {
                    let live = matches!(k.phase, Phase::Synced | Phase::Snapshot);
                    (kind.gvk().3, live)
                })
                .collect(),
            probes: s
                .probe
                .as_ref()
                .map(|p| p.results.clone())
                .unwrap_or_default(),
        }
    }
}
