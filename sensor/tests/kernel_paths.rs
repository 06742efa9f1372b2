//! The kernel program's parse paths and flow gate, run in the kernel through
//! BPF_PROG_TEST_RUN (root). The direct-access parse (untagged IPv4 without
//! options, IPv6 without extension headers) and the helper-based one (VLAN,
//! IPv4 options, IPv6 extension headers) must open, follow and ignore flows
//! alike; a flow user space closes must take its gate slot back to zero,
//! and a failed insert must not leave the slot raised.

use std::net::{IpAddr, SocketAddr};

use aya::maps::{MapData, RingBuf};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader, TestRun, TestRunOptions};
use etherparse::{
    IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv6Extensions, Ipv6Header, Ipv6RawExtHeader,
    PacketBuilder, VlanId,
};
use sensor::capture::live::{Clock, FlowTable, decode_event, kernel_key, object};

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

/// A TCP segment `src` → `dst` on `path`, built with etherparse.
fn segment(path: Path, src: SocketAddr, dst: SocketAddr, seq: u32, payload: &[u8]) -> Vec<u8> {
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
    let b = ip.tcp(src.port(), dst.port(), seq, 64240).ack(1);
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
}

impl Kernel {
    fn load(flow_entries: Option<u32>) -> Self {
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "loading kernel programs needs root (cargo xtask test runs as root)"
        );
        let mut loader = EbpfLoader::new();
        if let Some(n) = flow_entries {
            loader.map_max_entries("FLOWS", n);
        }
        let mut ebpf = loader.load(object()).expect("loading the sensor's object");
        let prog: &mut SchedClassifier =
            ebpf.program_mut("tls_tc_eth").unwrap().try_into().unwrap();
        prog.load().expect("the verifier accepts tls_tc_eth");
        let flows = FlowTable::new(
            ebpf.take_map("FLOWS").unwrap(),
            ebpf.take_map("GATE").unwrap(),
        )
        .expect("FLOWS and GATE");
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").unwrap()).unwrap();
        Self { ebpf, flows, ring }
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

    /// (source, destination, seq, payload) of every record shipped since the last call.
    fn shipped(&mut self) -> Vec<(SocketAddr, SocketAddr, u32, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            let s = decode_event(&item, Clock::new()).expect("a well-formed record");
            out.push((s.flow.src, s.flow.dst, s.seq, s.payload.to_vec()));
        }
        out
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

        // Application data of a connection never seen open: ignored.
        k.run(&segment(path, client, server, 7000, &app_data()));
        assert!(k.shipped().is_empty(), "{path:?}: untracked data shipped");
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
        assert_eq!(k.flows.gate_count(&key), 1, "{path:?}: gate slot");

        // The server's answer belongs to the open flow: shipped.
        let reply = server_reply();
        k.run(&segment(path, server, client, 5000, &reply));
        assert_eq!(
            k.shipped(),
            vec![(server, client, 5000, reply.clone())],
            "{path:?}: the reply of an open flow"
        );

        // Closed by user space: the slot drops back, later data is ignored.
        assert!(k.flows.remove(&key), "{path:?}: remove");
        assert_eq!(k.flows.gate_count(&key), 0, "{path:?}: gate after close");
        assert!(!k.flows.remove(&key), "{path:?}: removed twice");
        k.run(&segment(path, server, client, 5095, &app_data()));
        assert!(k.shipped().is_empty(), "{path:?}: data after close shipped");
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
    assert_eq!(k.flows.gate_count(&kernel_key(second, server)), 0);
    assert_eq!(k.flows.gate_count(&kernel_key(first, server)), 1);
    assert_eq!(k.flows.len(), 1);
}
