//! The kernel program's parse paths and flow gate, run in the kernel through
//! BPF_PROG_TEST_RUN (root). The direct-access parse (untagged IPv4 without
//! options, IPv6 without extension headers) and the helper-based one (VLAN,
//! IPv4 options, IPv6 extension headers) must open, follow and ignore flows
//! alike; a flow user space closes must take its gate slot back to zero,
//! and a failed insert must not leave the slot raised. Every connection is
//! counted in CONNS (from its SYN, or its first payload: `partial`),
//! never shipped past its handshake (or its upgrade preamble, within
//! PREAMBLE_BYTES), and summarised when it ends.

use std::net::{IpAddr, SocketAddr};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader, TestRun, TestRunOptions};
use etherparse::{
    IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv6Extensions, Ipv6Header, Ipv6RawExtHeader,
    PacketBuilder, VlanId,
};
use sensor::capture::live::{CONNS_MAPS, Clock, Event, FlowTable, decode, kernel_key, object};
use sensor::model::{ConnTraffic, FlowEnd};
use sensor_common::{
    CONN_PARTIAL, CONN_PENDING, CONN_PLAIN, CONN_PREAMBLE, CONN_TLS, CONN_TLS_COUNTING, COUNTERS,
    ConnState, Counter, PREAMBLE_BYTES,
};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 2];

#[derive(Clone, Copy, Debug)]
enum Path {
    V4,
    V4Options,
    V4Vlan,
    V6,
    V6DestOptions,
}

const PATHS: [Path; 5] = [
    Path::V4,
    Path::V4Options,
    Path::V4Vlan,
    Path::V6,
    Path::V6DestOptions,
];

fn addrs(path: Path) -> (IpAddr, IpAddr) {
    match path {
        Path::V4 | Path::V4Options | Path::V4Vlan => ([10, 9, 0, 1].into(), [10, 9, 0, 2].into()),
        Path::V6 | Path::V6DestOptions => {
            ("fd00:9::1".parse().unwrap(), "fd00:9::2".parse().unwrap())
        }
    }
}

fn v4(ip: IpAddr) -> [u8; 4] {
    match ip {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => unreachable!("an IPv4 path"),
    }
}

fn v6(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => unreachable!("an IPv6 path"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flags {
    /// A client's SYN: no ACK.
    Syn,
    SynAck,
    Ack,
    Fin,
    Rst,
}

/// A TCP segment `src` → `dst` on `path`, built with etherparse.
fn segment(path: Path, src: SocketAddr, dst: SocketAddr, seq: u32, payload: &[u8]) -> Vec<u8> {
    segment_with(path, src, dst, seq, Flags::Ack, payload)
}

fn segment_with(
    path: Path,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    flags: Flags,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
    let (s, d) = (src.ip(), dst.ip());
    let ip = match path {
        Path::V4 => eth.ipv4(v4(s), v4(d), 64),
        Path::V4Vlan => eth
            .single_vlan(VlanId::try_new(7).unwrap())
            .ipv4(v4(s), v4(d), 64),
        Path::V4Options => {
            let mut h = Ipv4Header::new(0, 64, IpNumber::TCP, v4(s), v4(d)).unwrap();
            // Four NOPs: IHL 6, which the direct-access parse leaves to the helpers.
            h.options = [1u8, 1, 1, 1][..].try_into().unwrap();
            eth.ip(IpHeaders::Ipv4(h, Ipv4Extensions::default()))
        }
        Path::V6 => eth.ipv6(v6(s), v6(d), 64),
        Path::V6DestOptions => {
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: 0,
                next_header: IpNumber::IPV6_DESTINATION_OPTIONS,
                hop_limit: 64,
                source: v6(s),
                destination: v6(d),
            };
            let exts = Ipv6Extensions {
                // One PadN option filling the header's 6 bytes.
                destination_options: Some(
                    Ipv6RawExtHeader::new_raw(IpNumber::TCP, &[1, 4, 0, 0, 0, 0]).unwrap(),
                ),
                ..Default::default()
            };
            eth.ip(IpHeaders::Ipv6(h, exts))
        }
    };
    let b = ip.tcp(src.port(), dst.port(), seq, 64240);
    let b = match flags {
        Flags::Syn => b.syn(),
        Flags::SynAck => b.syn().ack(1),
        Flags::Ack => b.ack(1),
        Flags::Fin => b.fin().ack(1),
        Flags::Rst => b.rst().ack(1),
    };
    let b = if payload.is_empty() { b } else { b.psh() };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// The first bytes of a ClientHello record as the program tests them
/// (handshake record, version 3.1, length, message type 1), then filler.
fn client_hello() -> Vec<u8> {
    let mut r = vec![22, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3];
    r.resize(205, 0x5a);
    r
}

fn server_reply() -> Vec<u8> {
    let mut r = vec![22, 3, 3, 0, 90, 2, 0, 0, 86, 3, 3];
    r.resize(95, 0x33);
    r
}

fn app_data() -> Vec<u8> {
    let mut r = vec![23, 3, 3, 1, 0];
    r.resize(261, 0x77);
    r
}

struct Kernel {
    ebpf: Ebpf,
    flows: FlowTable,
    ring: RingBuf<MapData>,
    counts: PerCpuArray<MapData, [u64; COUNTERS]>,
}

impl Kernel {
    fn load(flow_entries: Option<u32>) -> Self {
        Self::load_with(flow_entries, None)
    }

    fn load_with(flow_entries: Option<u32>, conn_entries: Option<u32>) -> Self {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "loading kernel programs needs root (cargo xtask test runs as root)"
        );
        let mut loader = EbpfLoader::new();
        if let Some(n) = flow_entries {
            loader.map_max_entries("FLOWS", n);
        }
        if let Some(n) = conn_entries {
            for name in CONNS_MAPS {
                loader.map_max_entries(name, n);
            }
        }
        let mut ebpf = loader.load(object()).expect("loading the sensor's object");
        let prog: &mut SchedClassifier =
            ebpf.program_mut("tls_tc_eth").unwrap().try_into().unwrap();
        prog.load().expect("the verifier accepts tls_tc_eth");
        let flows = FlowTable::take(&mut ebpf).expect("FLOWS, CONNS4, CONNS6 and GATE");
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").unwrap()).unwrap();
        let counts = PerCpuArray::try_from(ebpf.take_map("COUNTS").unwrap()).unwrap();
        Self {
            ebpf,
            flows,
            ring,
            counts,
        }
    }

    fn counter(&self, c: Counter) -> u64 {
        let per_cpu = self.counts.get(&0, 0).unwrap();
        per_cpu.iter().map(|cpu| cpu[c as usize]).sum()
    }

    fn run(&self, packet: &[u8]) {
        let prog: &SchedClassifier = self.ebpf.program("tls_tc_eth").unwrap().try_into().unwrap();
        let r = prog
            .test_run(TestRunOptions {
                data_in: Some(packet),
                ..TestRunOptions::new()
            })
            .expect("BPF_PROG_TEST_RUN");
        assert_eq!(r.return_value as i32, -1, "TC_ACT_UNSPEC, always");
    }

    /// Segment records as (source, destination, seq, payload), and
    /// connection summaries, shipped since the last call.
    #[allow(clippy::type_complexity)]
    fn drain(
        &mut self,
    ) -> (
        Vec<(SocketAddr, SocketAddr, u32, Vec<u8>)>,
        Vec<ConnTraffic>,
    ) {
        let (mut segs, mut ends) = (Vec::new(), Vec::new());
        while let Some(item) = self.ring.next() {
            match decode(&item, Clock::new()).expect("a well-formed record") {
                Event::Segment(s) => segs.push((s.flow.src, s.flow.dst, s.seq, s.payload.to_vec())),
                Event::ConnEnd(t) => ends.push(t),
            }
        }
        (segs, ends)
    }

    /// Segment records shipped since the last call; there must be no summary.
    fn shipped(&mut self) -> Vec<(SocketAddr, SocketAddr, u32, Vec<u8>)> {
        let (segs, ends) = self.drain();
        assert!(ends.is_empty(), "unexpected connection summaries {ends:?}");
        segs
    }

    /// The CONNS entry of `key`.
    fn conn(&self, key: &sensor_common::FlowKey) -> Option<ConnState> {
        self.flows.conns().find(|(f, _)| f == key).map(|x| x.1)
    }
}

#[test]
fn every_parse_path_opens_follows_and_closes_flows_alike() {
    let mut k = Kernel::load(None);
    for (i, path) in PATHS.into_iter().enumerate() {
        let (c, s) = addrs(path);
        let client = SocketAddr::new(c, 41000 + i as u16);
        let server = SocketAddr::new(s, 443);
        let key = kernel_key(client, server);

        // Application data of a connection never seen open: not shipped,
        // counted from here on (partial), judged TLS by its record header.
        k.run(&segment(path, client, server, 7000, &app_data()));
        assert!(k.shipped().is_empty(), "{path:?}: untracked data shipped");
        let st = k.conn(&key).expect("picked up");
        assert_eq!(st.phase, CONN_TLS_COUNTING, "{path:?}");
        assert_eq!(st.flags & CONN_PARTIAL, CONN_PARTIAL, "{path:?}");
        // The client has the higher port: `hi`, index 1.
        // Summed over the CPU that opened it and any other: which CPU a
        // test run lands on is the scheduler's choice.
        let counts = |f: fn(&ConnState, usize) -> u64| [f(&st, 0), f(&st, 1)];
        assert_eq!(
            (
                st.client,
                counts(ConnState::bytes_of),
                counts(ConnState::packets_of)
            ),
            (1, [0, 261], [0, 1])
        );
        assert_eq!(k.flows.gate_count(&key), 1, "{path:?}");
        assert!(k.flows.remove_conn(&key));
        assert_eq!(k.flows.gate_count(&key), 0, "{path:?}");

        // A pure ACK: ignored.
        k.run(&segment(path, client, server, 7000, b""));
        assert!(k.shipped().is_empty(), "{path:?}: a pure ACK shipped");

        // The ClientHello opens the flow and ships itself.
        let hello = client_hello();
        k.run(&segment(path, client, server, 1000, &hello));
        assert_eq!(
            k.shipped(),
            vec![(client, server, 1000, hello.clone())],
            "{path:?}: the ClientHello"
        );
        assert!(
            k.flows.flows().any(|(f, _)| f == key),
            "{path:?}: no flow under kernel_key"
        );
        // The handshake in FLOWS, the connection (partial) in CONNS.
        assert_eq!(k.flows.gate_count(&key), 2, "{path:?}: gate slot");
        assert_eq!(k.conn(&key).map(|s| s.phase), Some(CONN_TLS));

        // The server's answer belongs to the open flow: shipped.
        let reply = server_reply();
        k.run(&segment(path, server, client, 5000, &reply));
        assert_eq!(
            k.shipped(),
            vec![(server, client, 5000, reply.clone())],
            "{path:?}: the reply of an open flow"
        );

        // Closed by user space: the slot drops back, later data is only
        // counted, and the connection stops looking its handshake up.
        assert!(k.flows.remove(&key), "{path:?}: remove");
        assert_eq!(k.flows.gate_count(&key), 1, "{path:?}: gate after close");
        assert!(!k.flows.remove(&key), "{path:?}: removed twice");
        k.run(&segment(path, server, client, 5095, &app_data()));
        assert!(k.shipped().is_empty(), "{path:?}: data after close shipped");
        let st = k.conn(&key).expect("still counted");
        assert_eq!(st.phase, CONN_TLS_COUNTING, "{path:?}");
        assert_eq!(st.bytes_of(1), hello.len() as u64, "{path:?}");
        assert_eq!(st.bytes_of(0), (reply.len() + 261) as u64, "{path:?}");
        assert_eq!([st.packets_of(0), st.packets_of(1)], [2, 1], "{path:?}");
        assert!(k.flows.remove_conn(&key));
        assert_eq!(k.flows.gate_count(&key), 0, "{path:?}");
    }
    assert!(k.flows.is_empty());
}

#[test]
fn a_failed_insert_leaves_the_gate_closed() {
    let mut k = Kernel::load(Some(1));
    let (c, s) = addrs(Path::V4);
    let server = SocketAddr::new(s, 443);
    let first = SocketAddr::new(c, 42000);
    // A second client whose flow falls in another gate slot.
    let second = (42001..43000)
        .map(|p| SocketAddr::new(c, p))
        .find(|a| kernel_key(*a, server).gate_slot() != kernel_key(first, server).gate_slot())
        .unwrap();

    k.run(&segment(Path::V4, first, server, 1, &client_hello()));
    assert_eq!(k.shipped().len(), 1);
    // The map holds one flow: the second ClientHello cannot open one.
    k.run(&segment(Path::V4, second, server, 1, &client_hello()));
    assert!(
        k.shipped().is_empty(),
        "a flow beyond the map's size shipped"
    );
    // Each connection is counted in CONNS; only the first has a flow.
    assert_eq!(k.flows.gate_count(&kernel_key(second, server)), 1);
    assert_eq!(k.flows.gate_count(&kernel_key(first, server)), 2);
    assert_eq!(k.flows.len(), 1);
}

/// A connection ends before user space closed its handshake flow, and the
/// client reuses the 4-tuple at once: the new ClientHello replaces the
/// earlier flow (counted) instead of failing on it, ships with its full
/// budget, and the gate slot still counts each entry once.
#[test]
fn a_reused_4_tuple_replaces_the_flow_user_space_has_not_closed() {
    for path in [Path::V4, Path::V6] {
        let mut k = Kernel::load(None);
        let (c, s) = addrs(path);
        let client = SocketAddr::new(c, 43000);
        let server = SocketAddr::new(s, 443);
        let key = kernel_key(client, server);
        let hello = client_hello();
        for (round, isn) in [(1u64, 100u32), (2, 90_000)] {
            k.run(&segment_with(path, client, server, isn, Flags::Syn, b""));
            k.run(&segment(path, client, server, isn + 1, &hello));
            let shipped = k.shipped();
            assert_eq!(
                shipped,
                vec![(client, server, isn + 1, hello.clone())],
                "{path:?}: ClientHello of connection {round}"
            );
            assert_eq!(k.counter(Counter::FlowsReplaced), round - 1, "{path:?}");
            assert_eq!(k.counter(Counter::MapFull), 0, "{path:?}");
            // One handshake flow and one connection.
            assert_eq!(k.flows.gate_count(&key), 2, "{path:?}");
            let (_, st) = k.flows.flows().find(|(f, _)| *f == key).unwrap();
            assert_eq!(st.budget[1], st.budget[0] - hello.len() as u32, "{path:?}");
            // Both FINs: the connection ends; its flow stays for user space.
            let end = isn + 1 + hello.len() as u32;
            k.run(&segment_with(path, client, server, end, Flags::Fin, b""));
            k.run(&segment_with(path, server, client, 7000, Flags::Fin, b""));
            let (_, ends) = k.drain();
            assert_eq!(ends.len(), 1, "{path:?}");
            assert_eq!(k.flows.gate_count(&key), 1, "{path:?}");
        }
        assert!(k.flows.remove(&key));
        assert_eq!(k.flows.gate_count(&key), 0, "{path:?}");
    }
}

#[test]
fn plaintext_connections_are_counted_never_shipped_and_summarised() {
    let mut k = Kernel::load(None);
    let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let answer = vec![b'x'; 300];
    for (i, path) in PATHS.into_iter().enumerate() {
        let (c, s) = addrs(path);
        let client = SocketAddr::new(c, 43000 + i as u16);
        // The server's port is the higher one: only the SYN tells the client.
        let server = SocketAddr::new(s, 50080);
        let key = kernel_key(client, server);
        let state = |k: &Kernel| k.conn(&key);

        k.run(&segment_with(path, client, server, 999, Flags::Syn, b""));
        // Seen twice (loopback, veth pairs): one entry, nothing counted as full.
        k.run(&segment_with(path, client, server, 999, Flags::Syn, b""));
        k.run(&segment_with(
            path,
            server,
            client,
            4999,
            Flags::SynAck,
            b"",
        ));
        assert_eq!(state(&k).map(|s| s.phase), Some(CONN_PENDING), "{path:?}");
        assert_eq!(k.flows.gate_count(&key), 1, "{path:?}: gate slot");

        k.run(&segment(path, client, server, 1000, request));
        k.run(&segment(path, client, server, 1000, request));
        k.run(&segment(path, server, client, 5000, &answer));
        assert!(k.shipped().is_empty(), "{path:?}: plaintext shipped");
        let st = state(&k).expect("counting");
        assert_eq!(st.phase, CONN_PLAIN, "{path:?}");
        assert_eq!(st.flags & CONN_PARTIAL, 0, "{path:?}: its SYN was seen");

        k.run(&segment_with(
            path,
            client,
            server,
            1000 + request.len() as u32,
            Flags::Fin,
            b"",
        ));
        assert!(k.shipped().is_empty(), "{path:?}: one FIN ends nothing");
        k.run(&segment_with(path, server, client, 5300, Flags::Fin, b""));
        let (segs, ends) = k.drain();
        assert!(segs.is_empty());
        assert_eq!(ends.len(), 1, "{path:?}: one summary");
        let f = &ends[0];
        assert_eq!((f.client, f.server), (client, server), "{path:?}");
        // The request seen twice at the same place (one interface and
        // direction, as BPF_PROG_TEST_RUN gives them) is a retransmission:
        // counted twice, as tshark counts it.
        assert_eq!(
            (f.total.bytes_to_server, f.total.bytes_to_client),
            (2 * request.len() as u64, answer.len() as u64),
            "{path:?}: the retransmission is counted"
        );
        assert_eq!(
            (f.total.packets_to_server, f.total.packets_to_client),
            (2, 1),
            "{path:?}"
        );
        assert_eq!(f.end, Some(FlowEnd::Fin), "{path:?}");
        assert!(!f.encrypted && !f.partial, "{path:?}");
        assert!(f.start_us <= f.time_us);
        assert!(state(&k).is_none(), "{path:?}: entry left after both FINs");
        assert_eq!(k.flows.gate_count(&key), 0, "{path:?}: gate after the end");

        // A SYN then a ClientHello: the TLS path takes the connection over.
        let tls_client = SocketAddr::new(c, 44000 + i as u16);
        let tls_key = kernel_key(tls_client, server);
        k.run(&segment_with(path, tls_client, server, 9, Flags::Syn, b""));
        let hello = client_hello();
        k.run(&segment(path, tls_client, server, 10, &hello));
        assert_eq!(
            k.shipped(),
            vec![(tls_client, server, 10, hello)],
            "{path:?}"
        );
        assert_eq!(k.conn(&tls_key).map(|s| s.phase), Some(CONN_TLS));
        assert_eq!(k.flows.gate_count(&tls_key), 2, "{path:?}: FLOWS and CONNS");
        assert!(k.flows.remove(&tls_key));
        assert!(k.flows.remove_conn(&tls_key));
        assert_eq!(k.flows.gate_count(&tls_key), 0);

        // Refused (RST) before any payload: forgotten, no summary.
        let refused = SocketAddr::new(c, 45000 + i as u16);
        let refused_key = kernel_key(refused, server);
        k.run(&segment_with(path, refused, server, 77, Flags::Syn, b""));
        k.run(&segment_with(path, server, refused, 0, Flags::Rst, b""));
        assert!(k.drain().1.is_empty(), "{path:?}: summary without payload");
        assert_eq!(k.flows.gate_count(&refused_key), 0, "{path:?}");
    }
    assert_eq!(k.counter(Counter::ConnsOpened), 3 * PATHS.len() as u64);
    assert_eq!(k.counter(Counter::PlainFlows), PATHS.len() as u64);
    assert_eq!(k.counter(Counter::TlsFlows), PATHS.len() as u64);
    assert_eq!(k.counter(Counter::ConnSummaries), PATHS.len() as u64);
    assert_eq!(k.counter(Counter::Untracked), 0);
    assert_eq!(k.flows.conns().count(), 0);
}

/// Segment records since the last call as (seq, payload length,
/// FLOW_START), and summaries.
fn drain_starts(k: &mut Kernel) -> (Vec<(u32, usize, bool)>, Vec<ConnTraffic>) {
    let (mut segs, mut ends) = (Vec::new(), Vec::new());
    while let Some(item) = k.ring.next() {
        match decode(&item, Clock::new()).expect("a well-formed record") {
            Event::Segment(s) => segs.push((s.seq, s.payload.len(), s.flags.flow_start)),
            Event::ConnEnd(t) => ends.push(t),
        }
    }
    (segs, ends)
}

#[test]
fn an_upgrade_preamble_is_shipped_until_tls_starts_or_its_bound() {
    let mut k = Kernel::load(None);
    let ssl_request = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    for (i, path) in PATHS.into_iter().enumerate() {
        let (c, s) = addrs(path);

        // PostgreSQL: SSLRequest, 'S', ClientHello. The first shipped
        // record starts the connection for user space; the ClientHello,
        // which opens the handshake flow, must not start it again.
        let client = SocketAddr::new(c, 46000 + i as u16);
        let server = SocketAddr::new(s, 5432);
        let key = kernel_key(client, server);
        k.run(&segment_with(path, client, server, 99, Flags::Syn, b""));
        k.run(&segment(path, client, server, 100, &ssl_request));
        assert_eq!(
            k.conn(&key).map(|s| s.phase),
            Some(CONN_PREAMBLE),
            "{path:?}"
        );
        k.run(&segment(path, server, client, 700, b"S"));
        let hello = client_hello();
        k.run(&segment(path, client, server, 108, &hello));
        let (segs, ends) = drain_starts(&mut k);
        assert!(ends.is_empty(), "{path:?}");
        assert_eq!(
            segs,
            vec![(100, 8, true), (700, 1, false), (108, hello.len(), false)],
            "{path:?}: preamble then handshake"
        );
        let st = k.conn(&key).expect("counted");
        assert_eq!(st.phase, CONN_TLS, "{path:?}");
        assert_eq!(k.flows.gate_count(&key), 2, "{path:?}: FLOWS and CONNS");
        assert!(k.flows.remove(&key));
        assert!(k.flows.remove_conn(&key));

        // SMTP that never starts TLS: the server greets first; the
        // preamble is shipped until the next segment would pass
        // PREAMBLE_BYTES, then counted as plaintext only, and summarised
        // as plaintext with every byte.
        let client = SocketAddr::new(c, 47000 + i as u16);
        let server = SocketAddr::new(s, 25);
        let key = kernel_key(client, server);
        k.run(&segment_with(path, client, server, 9, Flags::Syn, b""));
        let greeting = b"220 mail.example ESMTP\r\n";
        k.run(&segment(path, server, client, 500, greeting));
        let noops = b"NOOP\r\n".repeat(200);
        let mut seq = 10u32;
        let mut sent = greeting.len() as u64;
        let mut shipped = 1;
        while sent + noops.len() as u64 <= PREAMBLE_BYTES {
            k.run(&segment(path, client, server, seq, &noops));
            seq += noops.len() as u32;
            sent += noops.len() as u64;
            shipped += 1;
        }
        // This one passes the bound: counted, not shipped, nor any after it.
        for _ in 0..2 {
            k.run(&segment(path, client, server, seq, &noops));
            seq += noops.len() as u32;
            sent += noops.len() as u64;
        }
        let (segs, ends) = drain_starts(&mut k);
        assert!(ends.is_empty(), "{path:?}");
        assert_eq!(segs.len(), shipped, "{path:?}: shipped within the bound");
        assert_eq!(segs[0], (500, greeting.len(), true), "{path:?}");
        assert_eq!(k.conn(&key).map(|s| s.phase), Some(CONN_PLAIN), "{path:?}");
        k.run(&segment_with(path, client, server, seq, Flags::Fin, b""));
        k.run(&segment_with(path, server, client, 600, Flags::Fin, b""));
        let (segs, ends) = drain_starts(&mut k);
        assert!(segs.is_empty(), "{path:?}: a plaintext end shipped");
        assert_eq!(ends.len(), 1, "{path:?}");
        let t = &ends[0];
        assert!(!t.encrypted, "{path:?}");
        assert_eq!(
            t.total.bytes_to_server + t.total.bytes_to_client,
            sent,
            "{path:?}: every byte counted"
        );

        // Refused (PostgreSQL 'N') and closed within the bound: the FIN
        // and RST reach user space, the summary says plaintext.
        let client = SocketAddr::new(c, 48000 + i as u16);
        let server = SocketAddr::new(s, 5432);
        k.run(&segment_with(path, client, server, 99, Flags::Syn, b""));
        k.run(&segment(path, client, server, 100, &ssl_request));
        k.run(&segment(path, server, client, 700, b"N"));
        k.run(&segment_with(path, client, server, 108, Flags::Rst, b""));
        let (segs, ends) = drain_starts(&mut k);
        assert_eq!(
            segs,
            vec![(100, 8, true), (700, 1, false), (108, 0, false)],
            "{path:?}"
        );
        assert_eq!(ends.len(), 1, "{path:?}");
        assert!(
            !ends[0].encrypted,
            "{path:?}: a refused upgrade is plaintext"
        );
        assert_eq!(ends[0].end, Some(FlowEnd::Rst));
    }
    let n = PATHS.len() as u64;
    assert_eq!(k.counter(Counter::PreambleFlows), 3 * n);
    assert_eq!(k.counter(Counter::PreamblePastBound), n);
    assert_eq!(k.counter(Counter::TlsFlows), n);
    assert_eq!(k.counter(Counter::PlainFlows), n);
    assert_eq!(k.flows.conns().count(), 0);
}

#[test]
fn a_full_conn_map_is_counted_and_user_space_expiry_frees_it() {
    // Each family's map (CONNS4, CONNS6) has the bound.
    for path in [Path::V4, Path::V6] {
        let mut k = Kernel::load_with(None, Some(2));
        let (c, s) = addrs(path);
        let server = SocketAddr::new(s, 80);
        let clients: Vec<SocketAddr> = (46000..46004).map(|p| SocketAddr::new(c, p)).collect();
        for a in &clients {
            k.run(&segment_with(path, *a, server, 1, Flags::Syn, b""));
        }
        assert_eq!(k.counter(Counter::ConnsOpened), 2);
        assert_eq!(k.counter(Counter::Untracked), 2);
        for a in &clients[2..] {
            let key = kernel_key(*a, server);
            // Unless it shares a slot with one of the two that got in.
            let shared = clients[..2]
                .iter()
                .any(|b| kernel_key(*b, server).gate_slot() == key.gate_slot());
            if !shared {
                assert_eq!(
                    k.flows.gate_count(&key),
                    0,
                    "a refused insert raised the gate"
                );
            }
        }
        // A payload on a connection the map had no room for: not followed
        // (unless its slot is shared, when the pick-up finds the map full).
        k.run(&segment(path, clients[3], server, 2, b"GET /"));
        k.run(&segment(path, clients[0], server, 2, b"GET /"));
        assert_eq!(k.counter(Counter::PlainFlows), 1);
        assert_eq!(k.counter(Counter::PartialMapFull), 1);
        assert_eq!(k.counter(Counter::PartialOpened), 0);
        assert!(k.shipped().is_empty());
        // A ClientHello of a connection the map had no room for: its
        // handshake is still followed.
        k.run(&segment(path, clients[2], server, 2, &client_hello()));
        assert_eq!(
            k.shipped().len(),
            1,
            "the handshake of an untracked connection"
        );
        assert!(k.flows.remove(&kernel_key(clients[2], server)));
        // User space removes them, with their gate slots.
        for (key, _) in k.flows.conns().collect::<Vec<_>>() {
            assert!(k.flows.remove_conn(&key));
            assert_eq!(k.flows.gate_count(&key), 0);
        }
        k.run(&segment_with(path, clients[3], server, 1, Flags::Syn, b""));
        assert_eq!(k.counter(Counter::ConnsOpened), 3);
    }
}

/// Runs `packet` `repeat` times through the program on CPU `cpu`.
fn run_on_cpu(prog: &SchedClassifier, packet: &[u8], repeat: u32, cpu: usize) {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0,
            "pinning to CPU {cpu}"
        );
    }
    prog.test_run(TestRunOptions {
        data_in: Some(packet),
        repeat,
        ..TestRunOptions::new()
    })
    .expect("BPF_PROG_TEST_RUN");
}

/// Two CPUs counting segments of one connection and direction at once
/// lose no count: the CPU that opened the connection adds to its own
/// counts, the other atomically to the shared ones. (Each run repeats one
/// segment at one place: a retransmission, counted every time.)
#[test]
fn two_cpus_counting_one_connection_lose_no_count() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus >= 2, "this test needs two CPUs, the host has {cpus}");
    let mut k = Kernel::load(None);
    let (c, s) = addrs(Path::V4);
    let client = SocketAddr::new(c, 47000);
    let server = SocketAddr::new(s, 8080);
    let key = kernel_key(client, server);
    let prog: &SchedClassifier = k.ebpf.program("tls_tc_eth").unwrap().try_into().unwrap();
    // Opened on CPU 0: CPU 0 owns it.
    let syn = segment_with(Path::V4, client, server, 1, Flags::Syn, b"");
    run_on_cpu(prog, &syn, 1, 0);
    let first = segment(Path::V4, client, server, 2, b"GET / HTTP/1.1\r\n");
    run_on_cpu(prog, &first, 1, 0);
    let payload = vec![b'x'; 100];
    let a = segment(Path::V4, client, server, 1000, &payload);
    let b = segment(Path::V4, client, server, 5000, &payload);
    let repeat = 2_000_000u32;
    std::thread::scope(|scope| {
        scope.spawn(|| run_on_cpu(prog, &a, repeat, 0));
        scope.spawn(|| run_on_cpu(prog, &b, repeat, 1));
    });
    let st = k.conn(&key).expect("counted");
    // The client has the higher port: `hi`, index 1.
    let want_packets = 1 + 2 * u64::from(repeat);
    assert_eq!(st.owner, 0);
    assert_eq!(st.packets[1], 1 + u64::from(repeat), "CPU 0's own count");
    assert_eq!(
        st.shared_packets[1],
        u64::from(repeat),
        "CPU 1's shared count"
    );
    assert_eq!(st.packets_of(1), want_packets, "segments lost");
    assert_eq!(
        st.bytes_of(1),
        16 + 2 * u64::from(repeat) * 100,
        "bytes lost"
    );
    assert!(k.shipped().is_empty());
}

/// The connection maps are read a chunk of entries per system call: every
/// counted connection exactly once, across many chunks and both maps.
#[test]
fn batched_reads_see_every_connection_once() {
    let k = Kernel::load(None);
    let mut expected = std::collections::HashSet::new();
    for path in [Path::V4, Path::V6] {
        let (c, s) = addrs(path);
        let server = SocketAddr::new(s, 443);
        for port in 20000..23000 {
            let client = SocketAddr::new(c, port);
            k.run(&segment_with(path, client, server, 1, Flags::Syn, b""));
            expected.insert(kernel_key(client, server));
        }
    }
    assert_eq!(k.counter(Counter::ConnsOpened), 6000);
    let mut seen = Vec::new();
    k.flows.for_each_conn(|key, st| {
        assert_eq!(st.phase, CONN_PENDING);
        seen.push(key);
    });
    assert_eq!(seen.len(), 6000);
    let unique: std::collections::HashSet<_> = seen.into_iter().collect();
    assert_eq!(unique, expected);
}

/// Finished handshakes are deleted a chunk per system call: every flow
/// that was there is deleted and taken off its gate slot once; keys not
/// in the map (a flow closed already, one listed twice) are skipped
/// wherever they fall, first and last included.
#[test]
fn batched_deletes_remove_every_flow_once_and_skip_absent_keys() {
    let mut k = Kernel::load(None);
    let mut present = Vec::new();
    let mut keys = Vec::new();
    let absent = |path, port| {
        let (c, s) = addrs(path);
        kernel_key(SocketAddr::new(c, port), SocketAddr::new(s, 443))
    };
    keys.push(absent(Path::V4, 9));
    for path in [Path::V4, Path::V6] {
        let (c, s) = addrs(path);
        let server = SocketAddr::new(s, 443);
        for port in 30000..31500 {
            let client = SocketAddr::new(c, port);
            k.run(&segment(path, client, server, 1, &client_hello()));
            let key = kernel_key(client, server);
            present.push(key);
            keys.push(key);
            if port % 100 == 0 {
                keys.push(absent(path, port - 20000));
                keys.push(key);
            }
        }
        let _ = k.drain();
    }
    keys.push(absent(Path::V6, 9));
    assert_eq!(k.flows.flows().count(), 3000);
    for key in &present {
        assert_eq!(k.flows.gate_count(key), 2, "connection and handshake");
    }
    assert_eq!(k.flows.remove_all(&keys), 3000);
    assert!(k.flows.is_empty());
    for key in &present {
        assert_eq!(k.flows.gate_count(key), 1, "only the connection left");
    }
    assert_eq!(k.flows.remove_all(&keys), 0);
}
