//! Wires the stages for one source of segments: reassembly → TLS → x509 →
//! mesh → correlation → probe → inference → analysis → a record sink. The
//! same pipeline serves capture files and live capture.

use std::sync::Arc;

use crate::analysis::flow_join::FlowJoin;
use crate::analysis::trust_refresh::TrustRefresh;
use crate::analysis::{Analysis, mesh};
use crate::capture::own::OwnSockets;
use crate::capture::{CaptureStats, Segment};
use crate::export::{RecordSink, RunStats};
use crate::inventory::{Inventory, inference};
use crate::model::{
    CertificateSource, ConnTraffic, Connection, Correlator, Flow, FlowReport, FlowTls, NoInventory,
};
use crate::probe::{ProbeConfig, ProbeStage};
use crate::reassembly::accounting::{Accounting, FlowClass, traffic_of};
use crate::reassembly::reports::FlowReports;
use crate::reassembly::{ConnHandler, ConnMeta, ConnTable, Control, ReassemblyConfig, Side};
use crate::tls::{TlsContext, TlsSession};
use crate::x509::CertCache;

#[derive(Clone)]
pub struct PipelineConfig {
    pub reassembly: ReassemblyConfig,
    /// Largest handshake message followed (a Certificate message of a long chain).
    pub max_handshake_message: usize,
    /// Distinct certificates kept parsed.
    pub cert_cache_entries: usize,
    /// Plaintext connections counted at once (flow accounting).
    pub max_plaintext_flows: usize,
    /// Who the peers are and what issued their certificates: the
    /// Kubernetes inventory, or `NoInventory`.
    pub correlator: Arc<dyn Correlator>,
    /// The inventory behind `correlator`, for its statistics in the summary.
    pub inventory: Option<Inventory>,
    /// Whether the reassembly table sees every byte of every connection:
    /// true for capture files, whose flow reports come from it; live, the
    /// kernel counts connections (`Pipeline::traffic`) and the table only
    /// sees handshakes.
    pub tls_traffic: bool,
    /// Open connections whose reports are remembered (deltas), and judged
    /// handshakes kept for their flow reports, at once.
    pub max_flow_reports: usize,
    /// With `tls_traffic`: open connections are reported every this many
    /// microseconds of capture time, as live capture reports them every
    /// `--flow-report-interval` of wall time.
    pub flow_report_interval_us: i64,
    /// Leave out the connections of this very process (live capture:
    /// the sensor's own API, OTLP and probe connections cross the wire it
    /// watches); counted as `own_connections`.
    pub skip_own: bool,
    /// Probing for the certificates handshakes hide (`scope: Off`: none).
    pub probe: ProbeConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            reassembly: ReassemblyConfig::default(),
            max_handshake_message: 1 << 20,
            cert_cache_entries: 100_000,
            max_plaintext_flows: 1 << 16,
            correlator: Arc::new(NoInventory),
            inventory: None,
            tls_traffic: true,
            max_flow_reports: 1 << 16,
            flow_report_interval_us: 30_000_000,
            skip_own: false,
            probe: ProbeConfig::default(),
        }
    }
}

impl PipelineConfig {
    /// Correlates with the inventory, when there is one.
    pub fn with_inventory(mut self, inventory: Option<Inventory>) -> Self {
        if let Some(inv) = &inventory {
            self.correlator = Arc::new(inv.clone());
        }
        self.inventory = inventory;
        self
    }
}

#[derive(Default)]
struct Conn {
    tls: TlsSession,
    reported: bool,
    flow: FlowClass,
}

/// The stages after reassembly, as the reassembly table's consumer.
struct Stages<K> {
    sink: K,
    certs: CertCache,
    analysis: Analysis,
    correlator: Arc<dyn Correlator>,
    tls: TlsContext,
    max_message: usize,
    tls_connections: u64,
    handshakes: u64,
    accounting: Accounting,
    tls_traffic: bool,
    own: Option<OwnSockets>,
    probe: ProbeStage,
    reports: FlowReports,
    join: FlowJoin,
}

impl<K: RecordSink> Stages<K> {
    /// A connection's counts (a periodic sample or its end): its flow
    /// report with the delta since the previous one, joined to its
    /// handshake and peers; an ended plaintext one is judged for
    /// `tls.plaintext`.
    fn traffic(&mut self, t: ConnTraffic) {
        let end = t.end.is_some();
        if let Some(own) = &mut self.own {
            // Counted once, at its end.
            let mine = if end {
                own.claim(t.client, t.server, t.start_us)
            } else {
                own.check(t.client, t.server, t.start_us)
            };
            if mine {
                if end {
                    self.join.get(t.client, t.server, true);
                }
                return;
            }
        }
        let Some(interval) = self.reports.delta(&t) else {
            return;
        };
        let joined = if t.encrypted {
            self.join.get(t.client, t.server, end)
        } else {
            None
        };
        let (tls, source, destination) = match joined {
            Some(j) => (Some(j.tls), j.source, j.destination),
            None => {
                let peers = self.correlator.peers(t.client, t.server);
                // TLS whose handshake is not known (picked up mid-way, or
                // still in progress): encrypted, facts unknown.
                let tls = t.encrypted.then(|| Arc::new(FlowTls::default()));
                (tls, peers.source, peers.destination)
            }
        };
        if end && !t.encrypted {
            let mut flow = Flow::new(
                t.client,
                t.server,
                t.start_us,
                t.time_us,
                t.total.bytes_to_server,
                t.total.bytes_to_client,
            );
            flow.source = source.clone();
            flow.destination = destination.clone();
            self.analysis.plaintext(&mut flow);
            self.sink.flow(&flow);
        }
        self.sink.flow_report(&FlowReport {
            traffic: t,
            interval,
            tls,
            source,
            destination,
        });
    }

    fn report(&mut self, conn: &mut Conn, meta: &ConnMeta) {
        if conn.reported {
            return;
        }
        let Some(client) = conn.tls.client_side() else {
            return;
        };
        conn.reported = true;
        if let Some(own) = &mut self.own
            && own.claim(
                meta.addr(client),
                meta.addr(client.other()),
                meta.first_seen_us,
            )
        {
            return;
        }
        self.handshakes += 1;
        let hs = &mut conn.tls.handshake;
        let mut c = Connection::new(
            meta.addr(client),
            meta.addr(client.other()),
            meta.first_seen_us,
        );
        c.handshake = hs.take_facts();
        let mut new = Vec::new();
        c.server_chain = self.certs.chain(&hs.server_chain, &mut new);
        c.client_chain = self.certs.chain(&hs.client_chain, &mut new);
        c.new_certificates = new;
        if !c.server_chain.is_empty() || !c.client_chain.is_empty() {
            c.certificate_source = Some(CertificateSource::Observed);
        }
        mesh::apply(&mut c);
        c.correlation = self.correlator.correlate(&c);
        if let Some(c) = self
            .probe
            .admit(c, self.correlator.as_ref(), &mut self.certs)
        {
            self.judge(c);
        }
    }

    /// Inference where nothing served is known, analysis, the sink.
    fn judge(&mut self, mut c: Connection) {
        if c.certificate_source == Some(CertificateSource::Probed) {
            mesh::apply(&mut c);
            c.correlation = self.correlator.correlate(&c);
        }
        inference::apply(&mut c, &mut self.certs);
        self.analysis.evaluate(&mut c);
        self.join.insert(&c);
        self.sink.connection(&c);
    }

    /// Reports the connections whose probes ended; with `wait`, waits
    /// for every probe still on its way first.
    fn release_probes(&mut self, wait: bool) {
        for c in self.probe.release(wait, &mut self.certs) {
            self.judge(c);
        }
    }
}

impl<K: RecordSink> Stages<K> {
    /// Flow accounting's verdict on a connection, from its first bytes
    /// (none when an upgrade preamble came first). Live, the kernel counts
    /// plaintext connections (its flow reports reach `Pipeline::traffic`),
    /// among them those whose upgrade preamble it shipped and that never
    /// upgraded: the table must not count them again.
    fn classify(&mut self, conn: &mut Conn, first: &[u8]) {
        conn.flow = if !self.tls_traffic && !conn.tls.is_tls() {
            FlowClass::Untracked
        } else {
            self.accounting.classify(first, conn.tls.is_tls())
        };
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
        // An upgrade preamble is classified once it said TLS or not; then
        // the bytes at hand are past the connection's first ones.
        if conn.flow == FlowClass::Undecided && !bytes.is_empty() && !conn.tls.in_preamble() {
            let first = if conn.tls.had_preamble() {
                &[][..]
            } else {
                bytes
            };
            self.classify(conn, first);
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
        if conn.flow == FlowClass::Undecided && conn.tls.in_preamble() {
            self.classify(conn, &[]);
        }
        control
    }

    fn on_close(&mut self, mut conn: Conn, meta: ConnMeta) {
        self.report(&mut conn, &meta);
        // A preamble cut short by the connection's end never upgraded.
        if conn.flow == FlowClass::Undecided && conn.tls.in_preamble() {
            self.classify(&mut conn, &[]);
        }
        let plaintext = self.accounting.close(conn.flow);
        if !self.tls_traffic {
            // Live: the kernel counts this connection; the table saw
            // only its handshake or its upgrade preamble.
            return;
        }
        if conn.flow == FlowClass::Tls || conn.tls.is_tls() {
            self.traffic(traffic_of(&meta, true));
        } else if plaintext {
            self.traffic(traffic_of(&meta, false));
        }
    }
}

/// One pipeline instance; feed it frames or segments, then `finish`.
pub struct Pipeline<K: RecordSink> {
    table: ConnTable<Conn>,
    stages: Stages<K>,
    capture: CaptureStats,
    trust: TrustRefresh,
    inventory: Option<Inventory>,
    /// Capture files: the capture time of the next periodic flow report
    /// (set by the first segment); `None` live, where the kernel counts.
    next_report_us: Option<i64>,
    report_every_us: Option<i64>,
}

impl<K: RecordSink> Pipeline<K> {
    /// A pipeline with the default analysis (default policy, Mozilla's
    /// roots, validity judged at packet time).
    pub fn new(cfg: PipelineConfig, sink: K) -> Self {
        Self::with_analysis(cfg, Analysis::default(), sink)
    }

    pub fn with_analysis(cfg: PipelineConfig, analysis: Analysis, sink: K) -> Self {
        let own = cfg.skip_own.then(OwnSockets::new);
        let announced = own.as_ref().map(OwnSockets::announced).unwrap_or_default();
        let mut p = Self {
            table: ConnTable::new(cfg.reassembly),
            stages: Stages {
                sink,
                certs: CertCache::new(cfg.cert_cache_entries),
                analysis,
                correlator: cfg.correlator,
                tls: TlsContext::default(),
                max_message: cfg.max_handshake_message,
                tls_connections: 0,
                handshakes: 0,
                accounting: Accounting::new(cfg.max_plaintext_flows),
                tls_traffic: cfg.tls_traffic,
                own,
                probe: ProbeStage::new(cfg.probe, announced, cfg.inventory.is_some()),
                reports: FlowReports::new(cfg.max_flow_reports),
                join: FlowJoin::new(cfg.max_flow_reports),
            },
            capture: CaptureStats::default(),
            trust: TrustRefresh::default(),
            inventory: cfg.inventory,
            next_report_us: None,
            report_every_us: (cfg.tls_traffic && cfg.flow_report_interval_us > 0)
                .then_some(cfg.flow_report_interval_us),
        };
        p.refresh_trust();
        p
    }

    /// Adds the CA bundles the correlator knows of to the trust anchors.
    pub fn refresh_trust(&mut self) {
        let st = &mut self.stages;
        self.trust
            .refresh(st.correlator.as_ref(), st.analysis.trust_mut());
    }

    /// One captured frame of a link type (pcap numbering).
    pub fn frame(&mut self, linktype: i32, timestamp_us: i64, data: &[u8]) {
        if let Some(seg) = self.capture.frame(linktype, timestamp_us, data) {
            self.segment(&seg);
        }
    }

    pub fn segment(&mut self, seg: &Segment<'_>) {
        if let Some(every) = self.report_every_us {
            let next = *self.next_report_us.get_or_insert(seg.timestamp_us + every);
            if seg.timestamp_us >= next {
                // Reported at the boundary this segment crossed, with the
                // counts of the segments before it; later boundaries
                // crossed by the same gap would report nothing new.
                self.report_open(next);
                let skipped = (seg.timestamp_us - next) / every;
                self.next_report_us = Some(next + (skipped + 1) * every);
            }
        }
        self.table.ingest(seg, &mut self.stages);
        if self.stages.probe.waiting() > 0 {
            self.stages.release_probes(false);
        }
    }

    /// A periodic flow report of every open connection that carried
    /// payload, at capture time `at_us`.
    fn report_open(&mut self, at_us: i64) {
        let mut samples = Vec::new();
        self.table.each(|conn, meta| {
            let encrypted = conn.flow == FlowClass::Tls || conn.tls.is_tls();
            if encrypted || conn.flow == FlowClass::Plaintext {
                let mut t = traffic_of(meta, encrypted);
                t.time_us = at_us;
                samples.push(t);
            }
        });
        // In the order live capture cannot promise either: by start.
        samples.sort_by_key(|t| (t.start_us, t.client, t.server));
        for t in samples {
            self.stages.traffic(t);
        }
        self.stages.join.prune();
    }

    /// Reports the connections whose probes ended meanwhile.
    pub fn poll_probes(&mut self) {
        self.stages.release_probes(false);
    }

    /// Live capture: a connection's counts as the kernel has them, a
    /// periodic sample or its end (its packets never reach the reassembly
    /// table past the handshake).
    pub fn traffic(&mut self, t: ConnTraffic) {
        if t.end.is_some() && !t.encrypted {
            self.stages.accounting.stats.plaintext_flows += 1;
        }
        self.stages.traffic(t);
    }

    /// After a round of periodic reports: forgets the handshakes whose
    /// connections were not reported since the previous round.
    pub fn reports_done(&mut self) {
        self.stages.join.prune();
    }

    /// Asks for the list of connections that stopped being followed.
    pub fn report_finished(&mut self) {
        self.table.report_finished();
    }

    pub fn take_finished(&mut self) -> Vec<(std::net::SocketAddr, std::net::SocketAddr)> {
        self.table.take_finished(&mut self.stages)
    }

    /// Connections open in the reassembly table.
    pub fn open_connections(&self) -> usize {
        self.table.len()
    }

    /// The capture side's counters (files read, damaged, unreadable).
    pub fn capture_stats(&mut self) -> &mut CaptureStats {
        &mut self.capture
    }

    pub fn sink(&mut self) -> &mut K {
        &mut self.stages.sink
    }

    /// The analysis stage (trust anchors, policy).
    pub fn analysis(&mut self) -> &mut Analysis {
        &mut self.stages.analysis
    }

    /// Reports every connection still open and the statistics.
    pub fn finish(self) -> (K, RunStats) {
        self.finish_with(|_| {})
    }

    /// Like `finish`, letting the caller add to the statistics (the kernel
    /// counters of live capture) before the sink sees them.
    pub fn finish_with(mut self, extra: impl FnOnce(&mut RunStats)) -> (K, RunStats) {
        self.table.flush(&mut self.stages);
        self.stages.release_probes(true);
        let mut stats = self.totals();
        extra(&mut stats);
        self.stages.sink.finish(&stats);
        (self.stages.sink, stats)
    }

    /// Every stage's statistics as of now, without ending the run.
    pub fn totals(&self) -> RunStats {
        let st = &self.stages;
        RunStats {
            capture: self.capture.clone(),
            reassembly: self.table.stats.clone(),
            tls: st.tls.stats.clone(),
            tls_connections: st.tls_connections,
            handshakes: st.handshakes,
            certificates: st.certs.stats.clone(),
            accounting: st.accounting.stats.clone(),
            reports: st.reports.stats.clone(),
            join: st.join.stats.clone(),
            verify: st.analysis.verifier().stats.clone(),
            analysis: st.analysis.stats.clone(),
            dedup: st.analysis.dedup_stats().clone(),
            trust: self.trust.stats.clone(),
            inventory: self.inventory.as_ref().map(Inventory::stats),
            own: st.own.as_ref().map(OwnSockets::stats).unwrap_or_default(),
            probe: st.probe.stats(),
            kernel: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::capture::{FlowKey, TcpFlags};
    use crate::export::Summary;
    use crate::model::{Correlation, Finding, FlowEnd, Peer, PeerKind};

    /// An inventory that knows every address as a pod.
    struct AllWorkloads;

    impl AllWorkloads {
        fn pods() -> Correlation {
            let p = Peer {
                kind: PeerKind::Pod,
                namespace: Some("default".into()),
                name: Some("p".into()),
                ..Peer::external()
            };
            Correlation {
                source: Some(p.clone()),
                destination: Some(p),
                ..Default::default()
            }
        }
    }

    impl Correlator for AllWorkloads {
        fn correlate(&self, _: &Connection) -> Correlation {
            Self::pods()
        }

        fn peers(&self, _: std::net::SocketAddr, _: std::net::SocketAddr) -> Correlation {
            Self::pods()
        }
    }

    /// The finding lines of plaintext flows, with their flow; the
    /// `starttls` of each handshake.
    #[derive(Default)]
    struct Findings(Vec<(Finding, Flow)>, Vec<Option<&'static str>>);

    impl RecordSink for Findings {
        fn connection(&mut self, c: &Connection) {
            self.1.push(c.handshake.starttls);
        }
        fn flow(&mut self, f: &Flow) {
            for x in f.findings.iter().filter(|x| x.first) {
                self.0.push((x.clone(), f.clone()));
            }
        }
    }

    fn pipeline(workloads: bool, max_plaintext_flows: usize) -> Pipeline<Findings> {
        let mut cfg = PipelineConfig {
            max_plaintext_flows,
            ..Default::default()
        };
        if workloads {
            cfg.correlator = Arc::new(AllWorkloads);
        }
        Pipeline::with_analysis(cfg, Analysis::default(), Findings::default())
    }

    fn finish(p: Pipeline<Findings>) -> (Findings, Summary) {
        let (sink, stats) = p.finish();
        (sink, Summary::from(&stats))
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
            conn_start_us: None,
            payload,
        }
    }

    const SYN: TcpFlags = TcpFlags {
        syn: true,
        ack: false,
        fin: false,
        rst: false,
        flow_start: false,
    };
    const SYN_ACK: TcpFlags = TcpFlags {
        syn: true,
        ack: true,
        fin: false,
        rst: false,
        flow_start: false,
    };
    const ACK: TcpFlags = TcpFlags {
        syn: false,
        ack: true,
        fin: false,
        rst: false,
        flow_start: false,
    };
    const RST: TcpFlags = TcpFlags {
        syn: false,
        ack: true,
        fin: false,
        rst: true,
        flow_start: false,
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
        let (sink, summary) = finish(p);
        assert_eq!(summary.plaintext_flows, 3);
        assert_eq!(summary.findings.get("tls.plaintext"), Some(&3));
        let lines: Vec<_> = sink
            .0
            .iter()
            .map(|(_, f)| (f.client.port(), f.server.port()))
            .collect();
        assert_eq!(lines, [(40000, 8080), (40002, 9000)]);
        let (first, flow) = &sink.0[0];
        assert_eq!(first.rule.id(), "tls.plaintext");
        assert_eq!(first.evidence["bytes_to_server"], 18);
        assert_eq!(first.evidence["bytes_to_client"], 19);
        assert_eq!(flow.first_us, t);
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
        let (sink, summary) = finish(p);
        assert!(sink.0.is_empty());
        assert_eq!(summary.plaintext_flows, 0);
        // Plaintext, but no inventory says who the peers are.
        let mut p = pipeline(false, 16);
        exchange(&mut p, "10.0.0.2:40000", "10.0.0.1:80", b"GET /", t);
        let (sink, summary) = finish(p);
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
        let (sink, _) = finish(p);
        assert_eq!(sink.0.len(), 1);
        // No SYN seen: the lower port is the server.
        assert_eq!(sink.0[0].1.server.port(), 80);
        assert_eq!(sink.0[0].0.evidence["bytes_to_server"], 25);
    }

    /// Every flow report.
    #[derive(Default)]
    struct Reports(Vec<FlowReport>);

    impl RecordSink for Reports {
        fn connection(&mut self, _: &Connection) {}
        fn flow_report(&mut self, r: &FlowReport) {
            self.0.push(r.clone());
        }
    }

    /// A capture reports an open connection at each interval of capture
    /// time it carried something in, and once at its end; the intervals
    /// sum to the total, which is every payload byte and segment.
    #[test]
    fn a_capture_reports_open_connections_per_interval_of_capture_time() {
        let cfg = PipelineConfig {
            flow_report_interval_us: 1_000_000,
            ..Default::default()
        };
        let mut p = Pipeline::with_analysis(cfg, Analysis::default(), Reports::default());
        let (c, s) = ("10.0.0.2:40000", "10.0.0.1:8080");
        let t = 1_700_000_000_000_000;
        p.segment(&seg(c, s, 100, SYN, t, b""));
        p.segment(&seg(s, c, 500, SYN_ACK, t + 1, b""));
        let mut seq = 101;
        // A request every 0.4 s for 3.2 s, an answer to each.
        for i in 0..8 {
            let at = t + 10 + i * 400_000;
            p.segment(&seg(c, s, seq, ACK, at, b"PING\r\n"));
            p.segment(&seg(s, c, 501 + 6 * i as u32, ACK, at + 1, b"PONG\r\n"));
            seq += 6;
        }
        p.segment(&seg(c, s, seq, RST, t + 3_500_000, b""));
        let (sink, _) = p.finish();
        let r = &sink.0;
        assert_eq!(r.len(), 4, "three boundaries crossed, then the end: {r:#?}");
        let (last, open) = r.split_last().unwrap();
        assert!(open.iter().all(|x| x.traffic.end.is_none()));
        assert_eq!(last.traffic.end, Some(FlowEnd::Rst));
        assert_eq!(open[0].traffic.time_us, t + 1_000_000);
        assert_eq!(last.traffic.total.bytes_to_server, 48);
        assert_eq!(last.traffic.total.packets_to_client, 8);
        let sum: u64 = r.iter().map(|x| x.interval.bytes()).sum();
        assert_eq!(sum, last.traffic.total.bytes());
        assert!(r.iter().all(|x| x.tls.is_none() && !x.traffic.partial));
    }

    /// With room to remember one open connection's reports, a second one
    /// open at a boundary is not reported until its end, which carries
    /// its whole total; the summary counts what was deferred.
    #[test]
    fn the_bound_on_remembered_reports_is_counted() {
        let cfg = PipelineConfig {
            flow_report_interval_us: 1_000_000,
            max_flow_reports: 1,
            ..Default::default()
        };
        let mut p = Pipeline::with_analysis(cfg, Analysis::default(), Reports::default());
        let t = 1_700_000_000_000_000;
        let s = "10.0.0.1:8080";
        for c in ["10.0.0.2:40000", "10.0.0.3:40000"] {
            p.segment(&seg(c, s, 1, ACK, t, b"GET /"));
        }
        p.segment(&seg("10.0.0.2:40000", s, 6, ACK, t + 1_500_000, b"more"));
        let (sink, stats) = p.finish();
        assert_eq!(
            Summary::from(&stats).errors.get("flow_report_table_full"),
            Some(&1)
        );
        let late: Vec<_> = sink
            .0
            .iter()
            .filter(|r| r.traffic.client.ip().to_string() == "10.0.0.3")
            .collect();
        assert_eq!(late.len(), 1, "{late:#?}");
        assert_eq!(late[0].interval.bytes_to_server, 5);
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
        let (_, summary) = finish(p);
        assert_eq!(summary.plaintext_flows, 3);
        assert_eq!(summary.errors.get("plaintext_flow_table_full"), Some(&1));
        assert_eq!(summary.findings.get("tls.plaintext"), Some(&3));
    }

    /// A PostgreSQL client's SSLRequest, the server's one-byte answer,
    /// then (when it said 'S') a ClientHello.
    fn postgres(p: &mut Pipeline<Findings>, client: &str, answer: &[u8], t: i64) {
        let (c, s) = (client, "10.0.0.1:5432");
        let ssl_request = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        p.segment(&seg(c, s, 100, SYN, t, b""));
        p.segment(&seg(s, c, 500, SYN_ACK, t + 1, b""));
        p.segment(&seg(c, s, 101, ACK, t + 2, &ssl_request));
        p.segment(&seg(s, c, 501, ACK, t + 3, answer));
        // ClientHello with one suite and null compression, or a StartupMessage.
        let next: &[u8] = if answer == b"S" {
            &[
                22, 3, 1, 0, 45, 1, 0, 0, 41, 3, 3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 2, 0, 0x2f, 1, 0,
            ]
        } else {
            &[0, 0, 0, 9, 0, 3, 0, 0, 0]
        };
        p.segment(&seg(c, s, 109, ACK, t + 4, next));
        p.segment(&seg(c, s, 109 + next.len() as u32, RST, t + 5, b""));
    }

    #[test]
    fn an_accepted_upgrade_is_tls_and_a_refused_one_plaintext() {
        let t = 1_700_000_000_000_000;
        let mut p = pipeline(true, 16);
        postgres(&mut p, "10.0.0.2:40000", b"S", t);
        let (sink, summary) = finish(p);
        assert_eq!(sink.1, [Some("postgres")]);
        assert_eq!(summary.plaintext_flows, 0);
        assert!(sink.0.is_empty());

        let mut p = pipeline(true, 16);
        postgres(&mut p, "10.0.0.2:40000", b"N", t);
        let (sink, summary) = finish(p);
        assert!(sink.1.is_empty());
        assert_eq!(summary.plaintext_flows, 1);
        assert_eq!(sink.0.len(), 1);
        assert_eq!(sink.0[0].0.rule.id(), "tls.plaintext");
        assert_eq!(sink.0[0].0.evidence["bytes_to_server"], 17);
    }

    #[test]
    fn a_preamble_cut_short_is_plaintext_and_live_leaves_it_to_the_kernel() {
        let t = 1_700_000_000_000_000;
        let (c, s) = ("10.0.0.2:40000", "10.0.0.1:25");
        for kernel in [false, true] {
            let mut p = pipeline(true, 16);
            p.stages.tls_traffic = !kernel;
            p.segment(&seg(s, c, 1, ACK, t, b"220 mail ESMTP\r\n"));
            p.segment(&seg(c, s, 1, ACK, t + 1, b"EHLO x\r\n"));
            let (sink, summary) = finish(p);
            assert_eq!(summary.plaintext_flows, if kernel { 0 } else { 1 });
            assert_eq!(sink.0.len(), if kernel { 0 } else { 1 });
        }
    }
}
