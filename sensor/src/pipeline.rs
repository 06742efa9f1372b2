//! Wires the stages for one source of segments: reassembly → TLS → x509 →
//! mesh → correlation → probe → inference → analysis → a record sink. The
//! same pipeline serves capture files and live capture.

use std::sync::Arc;

use crate::analysis::trust_refresh::TrustRefresh;
use crate::analysis::{Analysis, mesh};
use crate::capture::decode::{self, Skip};
use crate::capture::{CaptureStats, Segment};
use crate::export::{RecordSink, RunStats};
use crate::inventory::{Inventory, inference};
use crate::model::{
    Certificate, CertificateSource, Connection, Correlator, Flow, Mesh, NoInventory, Peer,
    ProbeOutcome, ProbeResult, ProtocolVersion,
};
use crate::probe::{self, Answer, Chain, ProbeConfig, ProbeKey, ProbeScope, Prober, Target};
use crate::reassembly::accounting::{Accounting, FlowClass, flow_of};
use crate::reassembly::{ConnHandler, ConnMeta, ConnTable, Control, ReassemblyConfig, Side};
use crate::tls::{TlsSession, TlsStats};
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
    /// Whether a TLS connection's bytes are all seen: true for capture
    /// files; live capture stops shipping after the handshake, so only
    /// plaintext flows (counted by the kernel) feed `tls.traffic.bytes`.
    pub tls_traffic: bool,
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
    /// One of the sensor's own probes (decided on its first bytes).
    own: Option<bool>,
    tls: TlsSession,
    reported: bool,
    flow: FlowClass,
    /// Set when the handshake is reported: what the connection's bytes
    /// are attributed to when it closes.
    traffic: Option<Box<TrafficTag>>,
}

struct TrafficTag {
    version: Option<ProtocolVersion>,
    mesh: Option<Mesh>,
    source: Option<Peer>,
    destination: Option<Peer>,
}

/// The stages after reassembly, as the reassembly table's consumer.
struct Stages<K> {
    sink: K,
    certs: CertCache,
    analysis: Analysis,
    correlator: Arc<dyn Correlator>,
    tls: TlsStats,
    max_message: usize,
    tls_connections: u64,
    handshakes: u64,
    accounting: Accounting,
    tls_traffic: bool,
    probe: Option<ProbeStage>,
    /// Whether there is an inventory (the `local` scope's meaning).
    inventory: bool,
}

/// The prober and the connections waiting for its probes.
struct ProbeStage {
    prober: Prober,
    held: std::collections::HashMap<ProbeKey, Vec<Connection>>,
    held_count: usize,
}

/// A handshake that hid the server's certificate: TLS 1.3, or a resumed
/// TLS <= 1.2 handshake (which sends none).
fn hides_certificate(c: &Connection) -> bool {
    c.server_chain.is_empty()
        && c.handshake.version.is_some()
        && (c.handshake.is_tls13() || c.handshake.resumed == Some(true))
}

impl<K: RecordSink> Stages<K> {
    /// The parsed certificates of a chain; first sightings are noted on
    /// the connection so their records precede it.
    fn chain(
        &mut self,
        ders: &[Vec<u8>],
        new: &mut Vec<Arc<Certificate>>,
    ) -> Vec<Arc<Certificate>> {
        ders.iter()
            .map(|der| {
                let (cert, first) = self.certs.get(der);
                if first {
                    new.push(cert.clone());
                }
                cert
            })
            .collect()
    }

    /// An ended connection that never started TLS: who its peers are,
    /// and `tls.plaintext` when both are workloads.
    fn plaintext(&mut self, mut flow: Flow) {
        let peers = self.correlator.peers(flow.client, flow.server);
        flow.source = peers.source;
        flow.destination = peers.destination;
        self.analysis.plaintext(&mut flow);
        self.sink.flow(&flow);
    }

    fn report(&mut self, conn: &mut Conn, meta: &ConnMeta) {
        if conn.reported || conn.own == Some(true) {
            return;
        }
        let Some(client) = conn.tls.client_side() else {
            return;
        };
        conn.reported = true;
        self.handshakes += 1;
        let hs = &conn.tls.handshake;
        let mut c = Connection::new(
            meta.addr(client),
            meta.addr(client.other()),
            meta.first_seen_us,
        );
        c.handshake = hs.facts();
        let mut new = Vec::new();
        c.server_chain = self.chain(&hs.server_chain, &mut new);
        c.client_chain = self.chain(&hs.client_chain, &mut new);
        c.new_certificates = new;
        if !c.server_chain.is_empty() || !c.client_chain.is_empty() {
            c.certificate_source = Some(CertificateSource::Observed);
        }
        mesh::apply(&mut c);
        c.correlation = self.correlator.correlate(&c);
        if self.tls_traffic {
            conn.traffic = Some(Box::new(TrafficTag {
                version: c.handshake.version,
                mesh: c.mesh.clone(),
                source: c.correlation.source.clone(),
                destination: c.correlation.destination.clone(),
            }));
        }
        if hides_certificate(&c) {
            match self.ask_probe(&c) {
                Answer::Now(outcome, chain) => self.apply_probe(&mut c, outcome, &chain),
                Answer::Pending(key) => {
                    self.hold(key, c);
                    return;
                }
            }
        }
        self.judge(c);
    }

    /// Inference where nothing served is known, analysis, the sink.
    fn judge(&mut self, mut c: Connection) {
        inference::apply(&mut c, &mut self.certs);
        self.analysis.evaluate(&mut c);
        self.sink.connection(&c);
    }

    fn ask_probe(&mut self, c: &Connection) -> Answer {
        let Some(stage) = &mut self.probe else {
            return Answer::Now(probe::not_probed(ProbeResult::Off), Chain::from(Vec::new()));
        };
        let sni = c.handshake.sni.as_deref();
        let serving = self.correlator.serving(c.server, sni);
        if !stage
            .prober
            .in_scope(c.server, serving.as_ref(), self.inventory)
        {
            stage.prober.stats.count(ProbeResult::OutOfScope);
            return Answer::Now(
                probe::not_probed(ProbeResult::OutOfScope),
                Chain::from(Vec::new()),
            );
        }
        let target = Target {
            server: c.server,
            sni: c.handshake.sni.clone(),
            alpn: c.handshake.alpn_offered.clone(),
        };
        stage.prober.request(target, serving.map_or(0, |s| s.stamp))
    }

    fn hold(&mut self, key: ProbeKey, c: Connection) {
        let Some(stage) = &mut self.probe else {
            return self.judge(c);
        };
        if stage.held_count >= stage.prober.config().max_held {
            stage.prober.stats.held_dropped += 1;
            let mut c = c;
            self.apply_probe(
                &mut c,
                probe::not_probed(ProbeResult::RateLimited),
                &Chain::from(Vec::new()),
            );
            return self.judge(c);
        }
        stage.held_count += 1;
        stage.held.entry(key).or_default().push(c);
    }

    /// Puts a probe's outcome on the connection; a probed chain stands
    /// for the server's and is correlated again.
    fn apply_probe(&mut self, c: &mut Connection, outcome: ProbeOutcome, chain: &[Vec<u8>]) {
        c.probe = Some(outcome);
        if outcome.result != ProbeResult::Ok || chain.is_empty() {
            return;
        }
        let mut new = std::mem::take(&mut c.new_certificates);
        c.server_chain = self.chain(chain, &mut new);
        c.new_certificates = new;
        c.certificate_source = Some(CertificateSource::Probed);
        if let Some(m) = &mut c.mesh
            && let Some(id) = c.server_chain[0]
                .san
                .uri
                .iter()
                .find(|u| u.starts_with("spiffe://"))
        {
            m.identity = Some(id.clone());
        }
        c.correlation = self.correlator.correlate(c);
    }

    /// Reports the connections whose probes ended; with `wait`, waits
    /// for every probe still on its way first.
    fn release_probes(&mut self, wait: bool) {
        let Some(stage) = &mut self.probe else {
            return;
        };
        if stage.held_count == 0 && stage.prober.in_flight() == 0 {
            return;
        }
        let done = if wait {
            stage.prober.wait_all()
        } else {
            stage.prober.poll()
        };
        let mut ready = Vec::new();
        for d in done {
            if let Some(conns) = stage.held.remove(&d.key) {
                stage.held_count -= conns.len();
                ready.push((conns, d.outcome, d.chain));
            }
        }
        if wait {
            // Probes lost track of (a worker gone): report without.
            for (_, conns) in stage.held.drain() {
                let o = probe::not_probed(ProbeResult::Timeout);
                ready.push((conns, o, Chain::from(Vec::new())));
            }
            stage.held_count = 0;
        }
        for (conns, outcome, chain) in ready {
            for mut c in conns {
                self.apply_probe(&mut c, outcome, &chain);
                self.judge(c);
            }
        }
    }

    /// Whether the connection between `a` and `b` is one of our probes.
    fn is_own(&mut self, a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
        let Some(stage) = &mut self.probe else {
            return false;
        };
        let own = stage.prober.own().contains(a, b);
        if own {
            stage.prober.stats.own_connections += 1;
        }
        own
    }
}

impl<K: RecordSink> ConnHandler<Conn> for Stages<K> {
    fn on_data(&mut self, conn: &mut Conn, meta: &ConnMeta, side: Side, bytes: &[u8]) -> Control {
        let own = *conn
            .own
            .get_or_insert_with(|| self.is_own(meta.addr(Side::A), meta.addr(Side::B)));
        if own {
            return Control::Done;
        }
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
        if conn.own == Some(true) {
            return Control::Done;
        }
        let control = conn.tls.on_gap();
        if control == Control::Done {
            self.report(conn, meta);
        }
        control
    }

    fn on_close(&mut self, mut conn: Conn, meta: ConnMeta) {
        if conn.own == Some(true) {
            return;
        }
        self.report(&mut conn, &meta);
        if let Some(tag) = conn.traffic.take() {
            let mut flow = flow_of(&meta);
            flow.encrypted = true;
            flow.version = tag.version;
            flow.mesh = tag.mesh;
            flow.source = tag.source;
            flow.destination = tag.destination;
            self.sink.flow(&flow);
        }
        if self.accounting.close(conn.flow) {
            self.plaintext(flow_of(&meta));
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
                correlator: cfg.correlator,
                tls: TlsStats::default(),
                max_message: cfg.max_handshake_message,
                tls_connections: 0,
                handshakes: 0,
                accounting: Accounting::new(cfg.max_plaintext_flows),
                tls_traffic: cfg.tls_traffic,
                probe: (cfg.probe.scope != ProbeScope::Off).then(|| ProbeStage {
                    prober: Prober::new(cfg.probe.clone()),
                    held: Default::default(),
                    held_count: 0,
                }),
                inventory: cfg.inventory.is_some(),
            },
            capture: CaptureStats::default(),
            trust: TrustRefresh::default(),
            inventory: cfg.inventory,
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
        self.capture.frames += 1;
        self.capture.bytes += data.len() as u64;
        match decode::decode(linktype, data, timestamp_us) {
            Ok(seg) => self.segment(&seg),
            // Non-IP and non-TCP frames are normal traffic, not errors.
            Err(Skip::NotIp | Skip::NotTcp) => {}
            Err(skip) => self.capture.skip(skip),
        }
    }

    pub fn segment(&mut self, seg: &Segment<'_>) {
        self.table.ingest(seg, &mut self.stages);
        if self.stages.probe.as_ref().is_some_and(|p| p.held_count > 0) {
            self.stages.release_probes(false);
        }
    }

    /// Reports the connections whose probes ended meanwhile.
    pub fn poll_probes(&mut self) {
        self.stages.release_probes(false);
    }

    /// A plaintext connection the kernel followed and saw end (live
    /// capture: its packets never reach the reassembly table).
    pub fn plaintext_flow(&mut self, flow: Flow) {
        if self.stages.is_own(flow.client, flow.server) {
            return;
        }
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
            tls: st.tls.clone(),
            tls_connections: st.tls_connections,
            handshakes: st.handshakes,
            certificates: st.certs.stats.clone(),
            accounting: st.accounting.stats.clone(),
            verify: st.analysis.verifier().stats.clone(),
            analysis: st.analysis.stats.clone(),
            dedup: st.analysis.dedup_stats().clone(),
            trust: self.trust.stats.clone(),
            inventory: self.inventory.as_ref().map(Inventory::stats),
            probe: st.probe.as_ref().map(|p| p.prober.stats()),
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
    use crate::model::{Correlation, Finding, PeerKind};

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

    /// The finding lines of plaintext flows, with their flow.
    #[derive(Default)]
    struct Findings(Vec<(Finding, Flow)>);

    impl RecordSink for Findings {
        fn connection(&mut self, _: &Connection) {}
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
}
