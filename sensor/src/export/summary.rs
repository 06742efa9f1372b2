//! A run's statistics, typed as each stage keeps them, and their two
//! renderings: the summary line (`kind: "summary"`) and the `sensor.*`
//! self-telemetry.

use std::collections::BTreeMap;

use sensor_common::Counter;
use serde::Serialize;

use crate::analysis::AnalysisStats;
use crate::analysis::dedup::DedupStats;
use crate::analysis::flow_join::JoinStats;
use crate::analysis::trust_refresh::TrustRefreshStats;
use crate::capture::CaptureStats;
use crate::capture::decode::Skip;
use crate::capture::live::KernelStats;
use crate::capture::own::OwnStats;
use crate::inventory::{InventoryStats, Phase};
use crate::model::ProbeResult;
use crate::probe::ProbeStats;
use crate::reassembly::ReassemblyStats;
use crate::reassembly::accounting::AccountingStats;
use crate::reassembly::reports::ReportStats;
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
    /// Flow reports: made, and left for the connection's end by the bound.
    pub reports: ReportStats,
    /// Handshakes kept for flow reports: dropped by the bound, pruned.
    pub join: JoinStats,
    pub verify: VerifyStats,
    pub analysis: AnalysisStats,
    pub dedup: DedupStats,
    pub trust: TrustRefreshStats,
    pub inventory: Option<InventoryStats>,
    /// The sensor's own connections, left out of the records.
    pub own: OwnStats,
    /// With probing on: outcomes by result, cache and bounds.
    pub probe: Option<ProbeStats>,
    /// Live capture only: the kernel program's counters and user space's
    /// own counts of the capture.
    pub kernel: Option<KernelStats>,
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
            ("fingerprint_cache_full", t.fingerprint_cache_full),
            ("starttls_preamble_malformed", t.preamble_malformed),
            ("starttls_preamble_too_long", t.preamble_too_long),
            (
                "tls_certificate_message_unparsable",
                t.certificate_message_errors,
            ),
            ("x509_unparsable", self.certificates.parse_errors),
            ("certificate_cache_full", self.certificates.not_cached),
            ("plaintext_flow_table_full", self.accounting.table_full),
            ("flow_report_table_full", self.reports.deferred),
            ("flow_handshake_table_full", self.join.dropped),
            ("chain_verify_cache_full", self.verify.cache_full),
            ("intermediate_pool_full", self.verify.pool_full),
            ("finding_dedup_table_full", self.dedup.table_full),
            ("findings_memo_full", self.analysis.memo_full),
            ("own_sockets_forgotten", self.own.dropped),
            ("own_sockets_unreadable", self.own.lookup_errors),
        ]);
        if let Some(p) = &self.probe {
            all.extend([
                ("probe_cache_full", p.cache_evicted),
                ("probe_waiting_full", p.held_dropped),
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
    /// The sensor's own connections (API server, collector, probes): not
    /// reported as traffic.
    pub own_connections: u64,
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
    /// With probing on: outcomes by result, cache hits and evictions,
    /// connections that could not wait for their probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeSummary>,
}

/// The summary's `kernel` object: each counter under its
/// `sensor_common::Counter::name`, then user space's counts.
pub fn kernel_by_name(k: &KernelStats) -> BTreeMap<&'static str, u64> {
    let mut out: BTreeMap<_, _> = Counter::ALL.iter().map(|&c| (c.name(), k.get(c))).collect();
    out.extend([
        ("flows_expired", k.flows_expired),
        ("conns_expired", k.conns_expired),
        ("conns_pending_expired", k.conns_pending_expired),
        ("malformed_records", k.malformed_records),
    ]);
    out
}

/// The kernel's counters as `name=value` pairs, the names of the summary
/// (for the periodic statistics line of `sensor run`).
pub fn kernel_line(k: &KernelStats) -> String {
    kernel_by_name(k)
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeSummary {
    /// Outcomes by `ProbeResult` name; results never seen are left out.
    pub results: BTreeMap<&'static str, u64>,
    pub cache_hits: u64,
    pub cache_evicted: u64,
    pub held_dropped: u64,
}

fn probes_by_result(p: &ProbeStats) -> BTreeMap<&'static str, u64> {
    ProbeResult::ALL
        .iter()
        .map(|&r| (r.name(), p.get(r)))
        .filter(|&(_, n)| n > 0)
        .collect()
}

impl From<&ProbeStats> for ProbeSummary {
    fn from(p: &ProbeStats) -> Self {
        ProbeSummary {
            results: probes_by_result(p),
            cache_hits: p.cache_hits,
            cache_evicted: p.cache_evicted,
            held_dropped: p.held_dropped,
        }
    }
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
            own_connections: s.own.connections,
            findings: AnalysisStats::by_rule(&s.analysis.reported),
            findings_suppressed: AnalysisStats::by_rule(&s.analysis.suppressed),
            errors: s.errors(),
            kernel: s.kernel.as_ref().map(kernel_by_name).unwrap_or_default(),
            inventory: s.inventory.clone(),
            probe: s.probe.as_ref().map(ProbeSummary::from),
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
    /// Failed lists and watches retried, by resource (410 Gone excluded).
    pub inventory_retries: BTreeMap<&'static str, u64>,
    /// Lists started (first, after a 410, after a failure), by resource.
    pub inventory_relists: BTreeMap<&'static str, u64>,
    /// The sensor's own connections, left out of the records.
    pub own_connections: u64,
    /// Probe outcomes by result name (`sensor.probes`).
    pub probes: BTreeMap<&'static str, u64>,
}

impl From<&RunStats> for SensorSnapshot {
    /// A capture file's frames count as packets; live capture's kernel
    /// counters give packets,
    /// events lost (ring buffer full) and flows evicted (flow map full),
    /// to which the connection table's overflow is added.
    fn from(s: &RunStats) -> Self {
        let k = |c: Counter| s.kernel.as_ref().map(|k| k.get(c));
        SensorSnapshot {
            packets: k(Counter::Packets).unwrap_or(s.capture.frames),
            events_lost: k(Counter::RingFull).unwrap_or(0),
            flows_evicted: k(Counter::MapFull).unwrap_or(0) + s.reassembly.table_full,
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
            inventory_retries: s
                .inventory
                .iter()
                .flat_map(|i| &i.sync)
                .map(|(kind, k)| (kind.gvk().3, k.errors))
                .collect(),
            inventory_relists: s
                .inventory
                .iter()
                .flat_map(|i| &i.sync)
                .map(|(kind, k)| (kind.gvk().3, k.relists))
                .collect(),
            own_connections: s.own.connections,
            probes: s.probe.as_ref().map(probes_by_result).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sensor_common::COUNTERS;

    #[test]
    fn snapshot_from_file_and_live_stats() {
        let mut s = RunStats::default();
        s.capture.frames = 74;
        s.reassembly.table_full = 2;
        s.tls.hello_errors = 1;
        let f = SensorSnapshot::from(&s);
        assert_eq!((f.packets, f.events_lost, f.flows_evicted), (74, 0, 2));
        assert_eq!(f.parse_errors.get("tls_hello_unparsable"), Some(&1));
        assert_eq!(f.parse_errors.get("connection_table_full"), Some(&2));
        assert!(Summary::from(&s).kernel.is_empty());
        let mut k = KernelStats {
            malformed_records: 7,
            ..Default::default()
        };
        for (c, v) in [
            (Counter::Packets, 1000),
            (Counter::RingFull, 5),
            (Counter::MapFull, 3),
        ] {
            k.counters[c as usize] = v;
        }
        s.kernel = Some(k);
        let l = SensorSnapshot::from(&s);
        assert_eq!((l.packets, l.events_lost, l.flows_evicted), (1000, 5, 5));
        let named = Summary::from(&s).kernel;
        assert_eq!(named.get("ring_buffer_full"), Some(&5));
        assert_eq!(named.get("malformed_records"), Some(&7));
        assert_eq!(named.len(), COUNTERS + 4);
    }
}
