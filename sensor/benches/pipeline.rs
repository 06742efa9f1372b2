//! Benches of the hot stages: ClientHello parsing, a TLS 1.2 handshake with
//! a 3-certificate chain (benches/data/tls12-3certs.pcap, recorded by
//! benches/data/record.sh), and TCP reassembly.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sensor::capture::decode::decode;
use sensor::capture::pcap::read_file;
use sensor::capture::{FlowKey, Segment, TcpFlags};
use sensor::export::json::JsonLines;
use sensor::pipeline::{Pipeline, PipelineConfig};
use sensor::reassembly::{ConnHandler, ConnMeta, ConnTable, Control, ReassemblyConfig, Side};
use sensor::tls::fingerprint::{ja3, ja4};
use sensor::tls::hello::parse_client_hello;
use sensor::tls::{TlsContext, TlsSession};
use sensor::x509::{CertCache, ChainVerifier, Role, SystemRoots, TrustStore};

fn u16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

fn with_len16(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// A ClientHello laid out as Chrome 131 sends it: GREASE, X25519MLKEM768 key
/// share (1.2 KB), ECH, ALPS, compressed certificates; about 1.8 KB.
fn chrome_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    body.push(32);
    body.extend((0..32u8).map(|i| i.wrapping_mul(11)));
    let ciphers = u16s(&[
        0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ]);
    body.extend(with_len16(&ciphers));
    body.extend([1, 0]);
    let mut e = Vec::new();
    ext(&mut e, 0x1a1a, &[]);
    let name = b"www.example.com";
    let mut sni = vec![0];
    sni.extend(with_len16(name));
    ext(&mut e, 0x0000, &with_len16(&sni));
    ext(&mut e, 0x0017, &[]);
    ext(&mut e, 0xff01, &[0]);
    ext(
        &mut e,
        0x000a,
        &with_len16(&u16s(&[0x2a2a, 0x11ec, 0x001d, 0x0017, 0x0018])),
    );
    ext(&mut e, 0x000b, &[1, 0]);
    ext(&mut e, 0x0023, &[]);
    ext(&mut e, 0x0010, &with_len16(b"\x02h2\x08http/1.1"));
    ext(&mut e, 0x0005, &[1, 0, 0, 0, 0]);
    ext(
        &mut e,
        0x000d,
        &with_len16(&u16s(&[
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ])),
    );
    ext(&mut e, 0x0012, &[]);
    let mut shares = Vec::new();
    shares.extend(u16s(&[0x2a2a, 1]));
    shares.push(0);
    shares.extend(u16s(&[0x11ec, 1216]));
    shares.extend((0..1216u32).map(|i| (i * 7) as u8));
    shares.extend(u16s(&[0x001d, 32]));
    shares.extend((0..32u8).map(|i| i ^ 0x5a));
    ext(&mut e, 0x0033, &with_len16(&shares));
    ext(&mut e, 0x002d, &[1, 1]);
    let mut versions = vec![6];
    versions.extend(u16s(&[0x3a3a, 0x0304, 0x0303]));
    ext(&mut e, 0x002b, &versions);
    ext(&mut e, 0x001b, &[2, 0, 2]);
    ext(&mut e, 0x44cd, &[0, 3, 2, b'h', b'2']);
    let ech: Vec<u8> = (0..218u32).map(|i| (i * 13) as u8).collect();
    ext(&mut e, 0xfe0d, &ech);
    ext(&mut e, 0x4a4a, &[0]);
    body.extend(with_len16(&e));
    let mut msg = vec![1];
    msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    msg.extend(body);
    msg
}

fn client_hello(c: &mut Criterion) {
    let msg = chrome_client_hello();
    let parsed = parse_client_hello(&msg).expect("the bench's ClientHello parses");
    assert_eq!(parsed.sni.as_deref(), Some("www.example.com"));
    assert_eq!(parsed.extensions.len(), 18);
    let mut g = c.benchmark_group("client_hello");
    g.throughput(Throughput::Bytes(msg.len() as u64));
    g.bench_function("parse_chrome", |b| {
        b.iter(|| parse_client_hello(black_box(&msg)).unwrap())
    });
    g.bench_function("parse_chrome_ja3_ja4", |b| {
        b.iter(|| {
            let ch = parse_client_hello(black_box(&msg)).unwrap();
            (ja3(&ch), ja4(&ch))
        })
    });
    g.finish();
}

struct Frame {
    linktype: i32,
    ts: i64,
    data: Vec<u8>,
}

fn recorded_handshake() -> Vec<Frame> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/tls12-3certs.pcap");
    let mut frames = Vec::new();
    read_file(
        &path,
        |f| {
            frames.push(Frame {
                linktype: f.linktype,
                ts: f.timestamp_us,
                data: f.data.to_vec(),
            })
        },
        |_| {},
    )
    .expect("benches/data/tls12-3certs.pcap (benches/data/record.sh makes it)");
    frames
}

fn tls12_handshake(c: &mut Criterion) {
    let frames = recorded_handshake();
    let bytes: u64 = frames.iter().map(|f| f.data.len() as u64).sum();
    // The payloads in capture order, by side, for the TLS stage alone.
    let mut client: Option<FlowKey> = None;
    let mut chunks: Vec<(Side, Vec<u8>)> = Vec::new();
    for f in &frames {
        let seg = decode(f.linktype, &f.data, f.ts).expect("a TCP frame");
        let first = *client.get_or_insert(seg.flow);
        if !seg.payload.is_empty() {
            let side = if seg.flow == first { Side::A } else { Side::B };
            chunks.push((side, seg.payload.to_vec()));
        }
    }
    let run = |frames: &[Frame]| {
        let mut p = Pipeline::new(PipelineConfig::default(), JsonLines::new(std::io::sink()));
        for f in frames {
            p.frame(f.linktype, f.ts, &f.data);
        }
        p.finish().1
    };
    let summary = run(&frames);
    assert_eq!((summary.handshakes, summary.certificates.parsed), (1, 3));

    let mut g = c.benchmark_group("tls12_handshake_3certs");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("tls_session", |b| {
        b.iter(|| {
            let mut s = TlsSession::default();
            // A fresh context: the fingerprints are computed, not remembered.
            let mut cx = TlsContext::default();
            for (side, data) in &chunks {
                if s.on_data(*side, data, 1 << 20, &mut cx) != Control::Continue {
                    break;
                }
            }
            assert_eq!(s.handshake.server_chain.len(), 3);
            s
        })
    });
    g.bench_function("pipeline_new_certificates", |b| {
        b.iter(|| run(black_box(&frames)))
    });
    // One long-lived pipeline sees the handshake again and again from new
    // client ports: the certificates come from the cache.
    let mut p = Pipeline::new(PipelineConfig::default(), JsonLines::new(std::io::sink()));
    let mut port: u16 = 1024;
    let server = client.expect("frames").dst;
    g.bench_function("pipeline_cached_certificates", |b| {
        b.iter(|| {
            port = port.checked_add(1).unwrap_or(1024);
            for f in &frames {
                let mut seg = decode(f.linktype, &f.data, f.ts).unwrap();
                if seg.flow.src == server {
                    seg.flow.dst.set_port(port);
                } else {
                    seg.flow.src.set_port(port);
                }
                p.segment(&seg);
            }
        })
    });

    // A server seen again presents the same chain: the verdict must cost a
    // hash of three fingerprints, not a walk with signature checks.
    let mut session = TlsSession::default();
    let mut cx = TlsContext::default();
    for (side, data) in &chunks {
        if session.on_data(*side, data, 1 << 20, &mut cx) != Control::Continue {
            break;
        }
    }
    let mut certs = CertCache::new(16);
    let chain: Vec<_> = session
        .handshake
        .server_chain
        .iter()
        .map(|der| certs.get(der).0)
        .collect();
    let store = TrustStore::new(SystemRoots::Bundled).expect("bundled roots");
    let mut verifier = ChainVerifier::new(store, 16, 16);
    verifier.verify(Role::Server, &chain);
    g.bench_function("verify_cache_hit", |b| {
        b.iter(|| verifier.verify(Role::Server, black_box(&chain)))
    });
    assert_eq!(verifier.stats.verified, 1, "every later call was a hit");
    g.finish();
}

#[derive(Default)]
struct Count(u64);

struct Consumer;

impl ConnHandler<Count> for Consumer {
    fn on_data(&mut self, s: &mut Count, _: &ConnMeta, _: Side, bytes: &[u8]) -> Control {
        s.0 += bytes.len() as u64;
        Control::Continue
    }
    fn on_gap(&mut self, _: &mut Count, _: &ConnMeta, _: Side) -> Control {
        Control::Done
    }
    fn on_close(&mut self, s: Count, _: ConnMeta) {
        black_box(s.0);
    }
}

const STREAM: usize = 64 << 10;
const MSS: usize = 1448;

/// One connection's segments: SYN, 64 KiB from the client in MSS pieces in
/// the given order, FIN from both sides.
fn feed(table: &mut ConnTable<Count>, port: u16, payload: &[u8], order: &[usize]) {
    let flow = FlowKey {
        src: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), port),
        dst: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 443),
    };
    let isn: u32 = 0xffff_0000;
    let seg = |seq, flags, payload| Segment {
        flow,
        seq,
        flags,
        timestamp_us: 0,
        conn_start_us: None,
        payload,
    };
    let syn = TcpFlags {
        syn: true,
        ..Default::default()
    };
    table.ingest(&seg(isn, syn, &[]), &mut Consumer);
    let ack = TcpFlags {
        ack: true,
        ..Default::default()
    };
    let pieces: Vec<&[u8]> = payload.chunks(MSS).collect();
    for &i in order {
        let seq = isn.wrapping_add(1 + (i * MSS) as u32);
        table.ingest(&seg(seq, ack, pieces[i]), &mut Consumer);
    }
    let fin = TcpFlags {
        fin: true,
        ack: true,
        ..Default::default()
    };
    let end = isn.wrapping_add(1 + payload.len() as u32);
    table.ingest(&seg(end, fin, &[]), &mut Consumer);
    let back = Segment {
        flow: flow.reversed(),
        ..seg(7, fin, &[])
    };
    table.ingest(&back, &mut Consumer);
}

fn reassembly(c: &mut Criterion) {
    let payload: Vec<u8> = (0..STREAM).map(|i| i as u8).collect();
    let n = STREAM.div_ceil(MSS);
    let in_order: Vec<usize> = (0..n).collect();
    // Each pair of segments swapped: every other segment waits in the buffer.
    let mut swapped = Vec::with_capacity(n);
    for i in (0..n).step_by(2) {
        if i + 1 < n {
            swapped.push(i + 1);
        }
        swapped.push(i);
    }
    // Everything after the first segment arrives before it, last first.
    let reversed: Vec<usize> = (0..n).rev().collect();
    let mut g = c.benchmark_group("reassembly_64k");
    g.throughput(Throughput::Bytes(STREAM as u64));
    for (name, order) in [
        ("in_order", &in_order),
        ("pairs_swapped", &swapped),
        ("reversed", &reversed),
    ] {
        let mut check = ConnTable::new(ReassemblyConfig::default());
        feed(&mut check, 1, &payload, order);
        assert!(check.is_empty() && check.stats.gaps == 0);
        // One table throughout: each connection is closed by its FINs.
        let mut table = ConnTable::<Count>::new(ReassemblyConfig::default());
        let mut port = 0u16;
        g.bench_function(name, |b| {
            b.iter(|| {
                port = port.wrapping_add(1);
                feed(&mut table, port, &payload, order);
            })
        });
    }
    g.finish();
}

/// The commonest segment of a capture: one of a connection the pipeline
/// only counts (plain HTTP here, decided at its request), a full-sized
/// segment from the server and the client's ACK, through the whole
/// pipeline of one long-lived `sensor analyze`.
fn counted_only(c: &mut Criterion) {
    let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40000);
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 80);
    let flags = |syn, ack| TcpFlags {
        syn,
        ack,
        ..Default::default()
    };
    let seg = |from_client: bool, seq: u32, flags, timestamp_us, payload| Segment {
        flow: if from_client {
            FlowKey {
                src: client,
                dst: server,
            }
        } else {
            FlowKey {
                src: server,
                dst: client,
            }
        },
        seq,
        flags,
        timestamp_us,
        conn_start_us: None,
        payload,
    };
    let request = b"GET /bulk HTTP/1.1\r\nHost: bench.example\r\n\r\n";
    let (cisn, sisn) = (1_000u32, 900_000u32);
    let mut p = Pipeline::new(PipelineConfig::default(), JsonLines::new(std::io::sink()));
    let t0 = 1_700_000_000_000_000i64;
    p.segment(&seg(true, cisn, flags(true, false), t0, &[]));
    p.segment(&seg(false, sisn, flags(true, true), t0, &[]));
    p.segment(&seg(true, cisn + 1, flags(false, true), t0, &[]));
    p.segment(&seg(true, cisn + 1, flags(false, true), t0, request));
    let cseq = cisn + 1 + request.len() as u32;
    let body = vec![b'x'; MSS];
    let (mut sseq, mut now) = (sisn + 1, t0);
    let mut g = c.benchmark_group("counted_only");
    g.throughput(Throughput::Elements(2));
    g.bench_function("plain_segment_and_ack", |b| {
        b.iter(|| {
            now += 10;
            p.segment(black_box(&seg(false, sseq, flags(false, true), now, &body)));
            sseq = sseq.wrapping_add(MSS as u32);
            p.segment(black_box(&seg(true, cseq, flags(false, true), now, &[])));
        })
    });
    g.finish();
    // The path measured is the one named: a plaintext connection counted,
    // never parsed as TLS.
    let (_, stats) = p.finish();
    assert_eq!(
        (
            stats.accounting.plaintext_flows,
            stats.tls.not_tls,
            stats.handshakes
        ),
        (1, 1, 0)
    );
}

criterion_group!(
    benches,
    client_hello,
    tls12_handshake,
    reassembly,
    counted_only
);
criterion_main!(benches);
