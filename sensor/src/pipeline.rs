//! Wires the stages for one source of segments: reassembly → TLS → x509 →
//! analysis → a record sink. The same pipeline serves capture files and
//! live capture.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::accounting::{Accounting, FlowClass, PlaintextFlow};
use crate::analysis::{AlertSeen, Analysis, Chain, Correlation, Observation, Rule, mesh};
use crate::capture::Segment;
use crate::capture::decode::{self, Skip};
use crate::export::otlp::attributes::TrafficSample;
use crate::export::{FindingRecord, HandshakeRecord, RecordSink, Summary};
use crate::inventory::correlate::{self, Facts};
use crate::inventory::{Identity, Inventory};
use crate::reassembly::{ConnHandler, ConnMeta, ConnTable, Control, ReassemblyConfig, Side};
use crate::tls::{Handshake, TlsSession, TlsStats};
use crate::x509::{CertCache, CertInfo};

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub reassembly: ReassemblyConfig,
    /// Largest handshake message followed (a Certificate message of a long chain).
    pub max_handshake_message: usize,
    /// Distinct certificates kept parsed.
    pub cert_cache_entries: usize,
    /// Plaintext connections counted at once (flow accounting).
    pub max_plaintext_flows: usize,
    /// Kubernetes state for correlation (snapshot files or live watches).
    pub inventory: Option<Inventory>,
    /// Whether a TLS connection's bytes are all seen: true for capture
    /// files; live capture stops shipping after the handshake, so only
    /// plaintext flows (counted by the kernel) feed `tls.traffic.bytes`.
    pub tls_traffic: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            reassembly: ReassemblyConfig::default(),
            max_handshake_message: 1 << 20,
            cert_cache_entries: 100_000,
            max_plaintext_flows: 1 << 16,
            inventory: None,
            tls_traffic: true,
        }
    }
}

#[derive(Default)]
struct Conn {
    tls: TlsSession,
    reported: bool,
    flow: FlowClass,
    /// Set when the handshake is reported: what the connection's bytes
    /// are attributed to when it closes.
    traffic: Option<Box<TrafficTag>>,
}

struct TrafficTag {
    mesh: Option<String>,
    source: Option<Identity>,
    destination: Option<Identity>,
}

/// The TLS and certificate stages, as the reassembly table's consumer.
struct Stages<K> {
    sink: K,
    certs: CertCache,
    analysis: Analysis,
    tls: TlsStats,
    max_message: usize,
    tls_connections: u64,
    handshakes: u64,
    /// Kubernetes state; without it `source`, `destination`, `verdict`
    /// and `cert_manager` stay null.
    inventory: Option<Inventory>,
    accounting: Accounting,
    tls_traffic: bool,
}

impl<K: RecordSink> Stages<K> {
    /// Mesh, inventory identities, verdict, and (TLS 1.3) the inferred
    /// certificate, which joins the chain and the certificate records; its
    /// DER is returned so the rules judge it like an observed one. Returns
    /// what the findings rules need of the correlation.
    fn correlate(
        &mut self,
        record: &mut HandshakeRecord,
        client: SocketAddr,
        server: SocketAddr,
        server_certs: &mut Vec<Arc<CertInfo>>,
    ) -> (Correlation, Option<Arc<[u8]>>) {
        if let Some(m) = mesh::classify(
            record.sni.as_deref(),
            &record.alpn_offered,
            record.server.port,
        ) {
            record.mesh = Some(m.kind.name().to_string());
            record.mesh_identity = m.identity;
        }
        let Some(inv) = &self.inventory else {
            let leaf = server_certs.first().map(|c| c.as_ref());
            return (self.analysis.correlator().correlate(record, leaf), None);
        };
        let ready = inv.readiness();
        if !ready.peers {
            return (Correlation::default(), None);
        }
        let mut c = correlate::correlate(
            &inv.read(),
            &Facts {
                client,
                server,
                sni: record.sni.as_deref(),
                leaf_sha256: record.server_chain.first().map(String::as_str),
            },
        );
        if !ready.certificates {
            c.without_certificates();
        }
        let mut inferred = None;
        if let Some(leaf) = c.inferred.take() {
            let (info, first) = self.certs.get(&leaf.der);
            if first {
                self.sink.certificate(&info);
            }
            record.server_chain = vec![info.sha256.clone()];
            server_certs.clear();
            server_certs.push(info);
            record.certificate_source = Some("inferred");
            inferred = Some(leaf.der);
        }
        let for_analysis = c.for_analysis();
        record.source = Some(c.source);
        record.destination = Some(c.destination);
        record.verdict = c.verdict;
        record.cert_manager = c.cert_manager;
        (for_analysis, inferred)
    }

    /// An ended connection that never started TLS: `tls.plaintext` when
    /// the inventory (or the analysis' correlator) knows both peers as
    /// workloads.
    fn plaintext(&mut self, flow: &PlaintextFlow) {
        let known = self.inventory.as_ref().filter(|i| i.readiness().peers);
        let c = known.map(|inv| correlate::peers(&inv.read(), flow.client, flow.server));
        self.sink.traffic(&TrafficSample {
            bytes: flow.bytes(),
            encrypted: false,
            mesh: None,
            source: c.as_ref().map(|c| c.source.clone()),
            destination: c.as_ref().map(|c| c.destination.clone()),
        });
        if !self.analysis.policy().enabled(Rule::TlsPlaintext) {
            return;
        }
        let mut peers = None;
        let correlation = match &self.inventory {
            Some(_) => {
                // Listed peers only: before the first lists, "external" would be a guess.
                let Some(c) = c else {
                    return;
                };
                let for_analysis = c.for_analysis();
                peers = Some((c.source, c.destination));
                for_analysis
            }
            None => {
                self.analysis
                    .correlator()
                    .correlate_flow(flow.client, flow.server, flow.first_us)
            }
        };
        let eval = self.analysis.plaintext(
            &Observation {
                time_us: flow.first_us,
                client: flow.client,
                server: flow.server,
                sni: None,
                mesh: None,
                version: None,
                cipher: None,
                alert: None,
                server_chain: Chain::EMPTY,
                client_chain: Chain::EMPTY,
                correlation: &correlation,
            },
            flow.bytes_to_server,
            flow.bytes_to_client,
        );
        if !eval.first.contains(&true) {
            return;
        }
        // A finding line takes a handshake record: an empty one carries the
        // endpoints, the time and who the peers are (it is not printed).
        let mut record = HandshakeRecord::new(
            &Handshake::default(),
            flow.client,
            flow.server,
            flow.first_us,
            Vec::new(),
            Vec::new(),
        );
        if let Some((source, destination)) = peers {
            record.source = Some(source);
            record.destination = Some(destination);
        }
        for (f, first) in eval.findings.iter().zip(&eval.first) {
            if *first {
                self.sink.finding(&FindingRecord::new(f, &record));
            }
        }
    }

    fn report(&mut self, conn: &mut Conn, meta: &ConnMeta) {
        if conn.reported {
            return;
        }
        let Some(client) = conn.tls.client_side() else {
            return;
        };
        conn.reported = true;
        self.handshakes += 1;
        let hs = &conn.tls.handshake;
        let mut chain_fps = |ders: &[Vec<u8>], keep: &mut Vec<Arc<CertInfo>>| -> Vec<String> {
            ders.iter()
                .map(|der| {
                    let (info, first) = self.certs.get(der);
                    if first {
                        self.sink.certificate(&info);
                    }
                    let fp = info.sha256.clone();
                    keep.push(info);
                    fp
                })
                .collect()
        };
        let mut server_certs = Vec::new();
        let server_chain = chain_fps(&hs.server_chain, &mut server_certs);
        let mut client_certs = Vec::new();
        let client_chain = chain_fps(&hs.client_chain, &mut client_certs);
        let mut record = HandshakeRecord::new(
            hs,
            meta.addr(client),
            meta.addr(client.other()),
            meta.first_seen_us,
            server_chain,
            client_chain,
        );
        let (correlation, inferred) = self.correlate(
            &mut record,
            meta.addr(client),
            meta.addr(client.other()),
            &mut server_certs,
        );
        let inferred_chain: Vec<Vec<u8>> = inferred.iter().map(|d| d.to_vec()).collect();
        let server_ders = if inferred.is_some() {
            &inferred_chain
        } else {
            &hs.server_chain
        };
        let (sni, mesh) = (record.sni.clone(), record.mesh.clone());
        let eval = self.analysis.evaluate(&Observation {
            time_us: meta.first_seen_us,
            client: meta.addr(client),
            server: meta.addr(client.other()),
            sni: sni.as_deref(),
            mesh: mesh.as_deref(),
            version: hs.version(),
            cipher: hs.server_hello.as_ref().map(|s| s.cipher),
            alert: hs.alert.map(|description| AlertSeen {
                description,
                level: hs.alert_level,
                from_client: hs.alert_from_client,
            }),
            server_chain: Chain {
                ders: server_ders,
                certs: &server_certs,
            },
            client_chain: Chain {
                ders: &hs.client_chain,
                certs: &client_certs,
            },
            correlation: &correlation,
        });
        record.findings = eval.findings.iter().map(Into::into).collect();
        self.sink.handshake(&record, &server_certs);
        if self.tls_traffic {
            conn.traffic = Some(Box::new(TrafficTag {
                mesh: record.mesh.clone(),
                source: record.source.clone(),
                destination: record.destination.clone(),
            }));
        }
        for (f, first) in eval.findings.iter().zip(&eval.first) {
            if *first {
                self.sink.finding(&FindingRecord::new(f, &record));
            }
        }
    }
}

impl<K: RecordSink> ConnHandler<Conn> for Stages<K> {
    fn on_data(&mut self, conn: &mut Conn, meta: &ConnMeta, side: Side, bytes: &[u8]) -> Control {
        let was_tls = conn.tls.is_tls();
        let control = conn
            .tls
            .on_data(side, bytes, self.max_message, &mut self.tls);
        if !was_tls && conn.tls.is_tls() {
            self.tls_connections += 1;
        }
        if conn.flow == FlowClass::Undecided && !bytes.is_empty() {
            conn.flow = self.accounting.classify(bytes, conn.tls.is_tls());
        }
        if control == Control::Done {
            self.report(conn, meta);
        }
        control
    }

    fn on_gap(&mut self, conn: &mut Conn, meta: &ConnMeta, _side: Side) -> Control {
        let control = conn.tls.on_gap();
        if control == Control::Done {
            self.report(conn, meta);
        }
        control
    }

    fn on_close(&mut self, mut conn: Conn, meta: ConnMeta) {
        self.report(&mut conn, &meta);
        if let Some(tag) = conn.traffic.take() {
            self.sink.traffic(&TrafficSample {
                bytes: meta.payload_bytes.iter().sum(),
                encrypted: true,
                mesh: tag.mesh,
                source: tag.source,
                destination: tag.destination,
            });
        }
        if self.accounting.close(conn.flow) {
            self.plaintext(&PlaintextFlow::from_meta(&meta));
        }
    }
}

/// One pipeline instance; feed it frames or segments, then `finish`.
pub struct Pipeline<K: RecordSink> {
    table: ConnTable<Conn>,
    stages: Stages<K>,
    summary: Summary,
    skips: BTreeMap<&'static str, u64>,
    /// Cluster CA bundles already given to the trust store (by content hash).
    trust_seen: HashSet<u64>,
}

fn pem_key(pem: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(pem)
}

impl<K: RecordSink> Pipeline<K> {
    /// A pipeline with the default analysis (default policy, Mozilla's
    /// roots, validity judged at packet time).
    pub fn new(cfg: PipelineConfig, sink: K) -> Self {
        Self::with_analysis(cfg, Analysis::default(), sink)
    }

    pub fn with_analysis(cfg: PipelineConfig, analysis: Analysis, sink: K) -> Self {
        let mut p = Self {
            table: ConnTable::new(cfg.reassembly),
            stages: Stages {
                sink,
                certs: CertCache::new(cfg.cert_cache_entries),
                analysis,
                tls: TlsStats::default(),
                max_message: cfg.max_handshake_message,
                tls_connections: 0,
                handshakes: 0,
                accounting: Accounting::new(cfg.max_plaintext_flows),
                tls_traffic: cfg.tls_traffic,
                inventory: cfg.inventory,
            },
            summary: Summary {
                kind: "summary",
                ..Default::default()
            },
            skips: BTreeMap::new(),
            trust_seen: HashSet::new(),
        };
        p.refresh_trust();
        p
    }

    /// Adds the cluster's published CA bundles (trust-manager Bundles,
    /// `ca.crt` of TLS Secrets) to the trust anchors. Anchors are only
    /// added: one that leaves the cluster stays trusted until restart,
    /// which errs towards fewer `cert.untrusted` findings, not more.
    pub fn refresh_trust(&mut self) {
        let Some(inv) = &self.stages.inventory else {
            return;
        };
        for pem in inv.trust_pems() {
            if !self.trust_seen.insert(pem_key(&pem)) {
                continue;
            }
            if let Err(e) = self
                .stages
                .analysis
                .trust_mut()
                .add_bundle(pem.as_bytes(), "cluster bundle")
            {
                if !self.skips.contains_key("trust_bundle_bad") {
                    tracing::warn!(error = %e, "a cluster CA bundle is not usable; skipped (logged once)");
                }
                *self.skips.entry("trust_bundle_bad").or_default() += 1;
            }
        }
    }

    /// One captured frame of a link type (pcap numbering).
    pub fn frame(&mut self, linktype: i32, timestamp_us: i64, data: &[u8]) {
        self.summary.frames += 1;
        self.summary.bytes += data.len() as u64;
        match decode::decode(linktype, data, timestamp_us) {
            Ok(seg) => self.segment(&seg),
            Err(skip) => self.skip(skip),
        }
    }

    fn skip(&mut self, skip: Skip) {
        // Non-IP and non-TCP frames are normal traffic, not errors.
        if matches!(skip, Skip::NotIp | Skip::NotTcp) {
            return;
        }
        *self.skips.entry(skip.name()).or_default() += 1;
    }

    pub fn segment(&mut self, seg: &Segment<'_>) {
        self.table.ingest(seg, &mut self.stages);
    }

    /// A plaintext connection the kernel followed and saw end (live
    /// capture: its packets never reach the reassembly table).
    pub fn plaintext_flow(&mut self, flow: &PlaintextFlow) {
        self.stages.accounting.stats.plaintext_flows += 1;
        self.stages.plaintext(flow);
    }

    /// Asks for the list of connections that stopped being followed.
    pub fn report_finished(&mut self) {
        self.table.report_finished();
    }

    pub fn take_finished(&mut self) -> Vec<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.table.take_finished()
    }

    /// Current totals without ending the run (periodic statistics).
    pub fn snapshot(&self) -> (u64, u64, u64, usize) {
        (
            self.table.stats.segments,
            self.stages.tls_connections,
            self.stages.handshakes,
            self.table.len(),
        )
    }

    pub fn note_file(&mut self) {
        self.summary.files += 1;
    }

    pub fn count_error(&mut self, kind: &'static str) {
        *self.skips.entry(kind).or_default() += 1;
    }

    pub fn sink(&mut self) -> &mut K {
        &mut self.stages.sink
    }

    /// The analysis stage (trust anchors, policy).
    pub fn analysis(&mut self) -> &mut Analysis {
        &mut self.stages.analysis
    }

    /// Reports every connection still open and the summary.
    pub fn finish(self) -> (K, Summary) {
        self.finish_with(|_| {})
    }

    /// Like `finish`, letting the caller add to the summary before the sink sees it.
    pub fn finish_with(mut self, extra: impl FnOnce(&mut Summary)) -> (K, Summary) {
        self.table.flush(&mut self.stages);
        let mut summary = self.totals();
        extra(&mut summary);
        self.stages.sink.finish(&summary);
        (self.stages.sink, summary)
    }

    /// The summary as of now, without ending the run (periodic telemetry).
    pub fn totals(&self) -> Summary {
        let r = &self.table.stats;
        let mut summary = self.summary.clone();
        let s = &mut summary;
        let st = &self.stages;
        s.tcp_segments = r.segments;
        s.connections = r.connections;
        s.tls_connections = st.tls_connections;
        s.handshakes = st.handshakes;
        s.plaintext_flows = st.accounting.stats.plaintext_flows;
        s.certificates = st.certs.stats.parsed;
        let by_rule = |m: &BTreeMap<&'static str, u64>| -> BTreeMap<String, u64> {
            m.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        s.findings = by_rule(&st.analysis.stats.reported);
        s.findings_suppressed = by_rule(&st.analysis.stats.suppressed);
        let mut errors: BTreeMap<String, u64> = self
            .skips
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let mut add = |k: &str, v: u64| {
            if v > 0 {
                *errors.entry(k.to_string()).or_default() += v;
            }
        };
        add("reassembly_gap", r.gaps);
        add("reassembly_out_of_window", r.out_of_window);
        add("connection_table_full", r.table_full);
        add("stream_budget_exhausted", r.stream_budget_exhausted);
        add("tls_hello_unparsable", st.tls.hello_errors);
        add(
            "tls_certificate_message_unparsable",
            st.tls.certificate_message_errors,
        );
        for (k, v) in &st.tls.record_errors {
            add(k, *v);
        }
        add("x509_unparsable", st.certs.stats.parse_errors);
        add("certificate_cache_full", st.certs.stats.not_cached);
        add("plaintext_flow_table_full", st.accounting.stats.table_full);
        let v = &st.analysis.verifier().stats;
        add("chain_verify_cache_full", v.cache_full);
        add("intermediate_pool_full", v.pool_full);
        add(
            "finding_dedup_table_full",
            st.analysis.dedup_stats().table_full,
        );
        s.errors = errors;
        s.inventory = st.inventory.as_ref().map(Inventory::stats);
        summary
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::analysis::{Correlation, Correlator, Workload};
    use crate::capture::{FlowKey, TcpFlags};
    use crate::export::FindingRecord;

    /// An inventory that knows every address as a workload.
    struct AllWorkloads;

    impl Correlator for AllWorkloads {
        fn correlate(&mut self, _: &HandshakeRecord, _: Option<&CertInfo>) -> Correlation {
            let w = Workload {
                namespace: Some("default".into()),
                kind: Some("Pod".into()),
                name: Some("p".into()),
            };
            Correlation {
                source: Some(w.clone()),
                destination: Some(w),
                ..Default::default()
            }
        }
    }

    #[derive(Default)]
    struct Findings(Vec<FindingRecord>);

    impl RecordSink for Findings {
        fn handshake(&mut self, _: &HandshakeRecord, _: &[Arc<CertInfo>]) {}
        fn certificate(&mut self, _: &CertInfo) {}
        fn finding(&mut self, f: &FindingRecord) {
            self.0.push(f.clone());
        }
    }

    fn pipeline(workloads: bool, max_plaintext_flows: usize) -> Pipeline<Findings> {
        let mut analysis = Analysis::default();
        if workloads {
            analysis.set_correlator(Box::new(AllWorkloads));
        }
        let cfg = PipelineConfig {
            max_plaintext_flows,
            ..Default::default()
        };
        Pipeline::with_analysis(cfg, analysis, Findings::default())
    }

    fn seg<'a>(
        src: &str,
        dst: &str,
        seq: u32,
        flags: TcpFlags,
        t: i64,
        payload: &'a [u8],
    ) -> Segment<'a> {
        let (src, dst): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        Segment {
            flow: FlowKey { src, dst },
            seq,
            flags,
            timestamp_us: t,
            payload,
        }
    }

    const SYN: TcpFlags = TcpFlags {
        syn: true,
        ack: false,
        fin: false,
        rst: false,
    };
    const SYN_ACK: TcpFlags = TcpFlags {
        syn: true,
        ack: true,
        fin: false,
        rst: false,
    };
    const ACK: TcpFlags = TcpFlags {
        syn: false,
        ack: true,
        fin: false,
        rst: false,
    };
    const RST: TcpFlags = TcpFlags {
        syn: false,
        ack: true,
        fin: false,
        rst: true,
    };

    /// One connection: SYN from the client (port 8080 on the server, so
    /// the port heuristic alone would not tell), request, answer, RST.
    fn exchange(p: &mut Pipeline<Findings>, client: &str, server: &str, req: &[u8], t: i64) {
        p.segment(&seg(client, server, 100, SYN, t, b""));
        p.segment(&seg(server, client, 500, SYN_ACK, t + 1, b""));
        p.segment(&seg(client, server, 101, ACK, t + 2, req));
        p.segment(&seg(
            server,
            client,
            501,
            ACK,
            t + 3,
            b"HTTP/1.1 200 OK\r\n\r\n",
        ));
        p.segment(&seg(
            client,
            server,
            101 + req.len() as u32,
            RST,
            t + 4,
            b"",
        ));
    }

    #[test]
    fn plaintext_between_workloads_is_one_finding_per_server() {
        let mut p = pipeline(true, 16);
        let t = 1_700_000_000_000_000;
        exchange(
            &mut p,
            "10.0.0.2:40000",
            "10.0.0.1:8080",
            b"GET / HTTP/1.1\r\n\r\n",
            t,
        );
        exchange(
            &mut p,
            "10.0.0.3:40001",
            "10.0.0.1:8080",
            b"GET /a HTTP/1.1\r\n\r\n",
            t + 10,
        );
        exchange(
            &mut p,
            "10.0.0.2:40002",
            "10.0.0.9:9000",
            b"PING\r\n",
            t + 20,
        );
        let (sink, summary) = p.finish();
        assert_eq!(summary.plaintext_flows, 3);
        assert_eq!(summary.findings.get("tls.plaintext"), Some(&3));
        let lines: Vec<_> = sink
            .0
            .iter()
            .map(|f| (f.client.port, f.server.port))
            .collect();
        assert_eq!(lines, [(40000, 8080), (40002, 9000)]);
        let first = &sink.0[0];
        assert_eq!(first.rule, "tls.plaintext");
        assert_eq!(first.evidence["bytes_to_server"], 18);
        assert_eq!(first.evidence["bytes_to_client"], 19);
        assert_eq!(first.time_us, t);
    }

    #[test]
    fn tls_and_unknown_peers_are_not_plaintext_findings() {
        let t = 1_700_000_000_000_000;
        // Application data first (capture started mid-connection): TLS.
        let mut p = pipeline(true, 16);
        exchange(
            &mut p,
            "10.0.0.2:40000",
            "10.0.0.1:443",
            &[23, 3, 3, 0, 2, 1, 2],
            t,
        );
        let (sink, summary) = p.finish();
        assert!(sink.0.is_empty());
        assert_eq!(summary.plaintext_flows, 0);
        // Plaintext, but no inventory says who the peers are.
        let mut p = pipeline(false, 16);
        exchange(&mut p, "10.0.0.2:40000", "10.0.0.1:80", b"GET /", t);
        let (sink, summary) = p.finish();
        assert!(sink.0.is_empty());
        assert_eq!(summary.plaintext_flows, 1);
        assert!(summary.findings.is_empty());
    }

    #[test]
    fn an_open_plaintext_flow_is_reported_at_the_end_of_input() {
        let mut p = pipeline(true, 16);
        let (c, s) = ("10.0.0.2:40000", "10.0.0.1:80");
        p.segment(&seg(c, s, 1, ACK, 5, b"GET / HTTP/1.1\r\n"));
        p.segment(&seg(c, s, 17, ACK, 6, b"Host: x\r\n"));
        let (sink, _) = p.finish();
        assert_eq!(sink.0.len(), 1);
        // No SYN seen: the lower port is the server.
        assert_eq!(sink.0[0].server.port, 80);
        assert_eq!(sink.0[0].evidence["bytes_to_server"], 25);
    }

    #[test]
    fn the_bound_on_plaintext_flows_is_counted() {
        let mut p = pipeline(true, 2);
        let t = 1_700_000_000_000_000;
        // Three connections open at once: the third is not counted.
        let clients = ["10.0.0.2:40000", "10.0.0.3:40000", "10.0.0.4:40000"];
        for (i, c) in clients.iter().enumerate() {
            p.segment(&seg(c, "10.0.0.1:80", 1, ACK, t + i as i64, b"GET /"));
        }
        // Once one ended, there is room again.
        p.segment(&seg(clients[0], "10.0.0.1:80", 6, RST, t + 5, b""));
        p.segment(&seg(
            "10.0.0.5:40000",
            "10.0.0.1:80",
            1,
            ACK,
            t + 6,
            b"GET /",
        ));
        let (_, summary) = p.finish();
        assert_eq!(summary.plaintext_flows, 3);
        assert_eq!(summary.errors.get("plaintext_flow_table_full"), Some(&1));
        assert_eq!(summary.findings.get("tls.plaintext"), Some(&3));
    }
}
