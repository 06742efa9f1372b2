//! Bytes of one TCP connection → handshake record, through the whole
//! user-space path: reassembly (ConnTable via Pipeline), TLS records and
//! hellos, certificates, records serialised as JSON lines. A second pass feeds
//! the same chunks straight to TlsSession, without reassembly in between.
//!
//! Input: a header byte, then chunks `[ctl][len: u16 BE][len bytes]` (the last
//! chunk takes what is left). `fuzz/seed.sh` writes captured connections in
//! this form. Header bit 0: open with SYN / SYN-ACK. ctl bits:
//! 0 side (0 = the side that spoke first), 1 hold back until after the next
//! chunk (reordering), 2 jump the clock past the idle timeout, 3 FIN, 4 RST,
//! 5 drop (a gap), 6 send twice, 7 send as two halves, second half first.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use sensor::capture::{FlowKey, Segment, TcpFlags};
use sensor::export::HandshakeRecord;
use sensor::export::json::JsonLines;
use sensor::pipeline::{Pipeline, PipelineConfig};
use sensor::reassembly::{ReassemblyConfig, Side};
use sensor::tls::{TlsContext, TlsSession};

/// Small bounds, so that the fuzzer reaches them.
fn config() -> PipelineConfig {
    PipelineConfig {
        reassembly: ReassemblyConfig {
            max_connections: 4,
            max_pending_per_stream: 16 << 10,
            max_pending_total: 24 << 10,
            max_stream_bytes: 256 << 10,
            idle_timeout_us: 1_000_000,
        },
        max_handshake_message: 64 << 10,
        cert_cache_entries: 8,
        max_plaintext_flows: 2,
        ..PipelineConfig::default()
    }
}

struct Chunk<'a> {
    ctl: u8,
    bytes: &'a [u8],
}

fn chunks(mut data: &[u8]) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    while let Some((&ctl, rest)) = data.split_first() {
        let (len, rest) = match rest {
            [hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]) as usize, rest),
            _ => (rest.len(), &[][..]),
        };
        let len = len.min(rest.len());
        out.push(Chunk {
            ctl,
            bytes: &rest[..len],
        });
        data = &rest[len..];
    }
    out
}

fn through_pipeline(syn: bool, chunks: &[Chunk<'_>]) {
    let client = FlowKey::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        40000,
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        443,
    );
    let flows = [client, client.reversed()];
    let mut seq: [u32; 2] = [1000, 0xffff_f000];
    let mut now: i64 = 1_700_000_000_000_000;
    let mut p = Pipeline::new(config(), JsonLines::new(std::io::sink()));
    let seg = |side: usize, seq: u32, flags: TcpFlags, ts: i64, payload| Segment {
        flow: flows[side],
        seq,
        flags,
        timestamp_us: ts,
        conn_start_us: None,
        payload,
    };
    if syn {
        let flags = TcpFlags {
            syn: true,
            ..Default::default()
        };
        p.segment(&seg(0, seq[0].wrapping_sub(1), flags, now, &[]));
        let flags = TcpFlags {
            syn: true,
            ack: true,
            ..Default::default()
        };
        p.segment(&seg(1, seq[1].wrapping_sub(1), flags, now, &[]));
    }
    let mut held: Option<Segment<'_>> = None;
    for c in chunks {
        let side = (c.ctl & 1) as usize;
        let at = seq[side];
        seq[side] = at.wrapping_add(c.bytes.len() as u32);
        now += if c.ctl & 4 != 0 { 2_000_000 } else { 100 };
        if c.ctl & 0x20 != 0 {
            continue;
        }
        let flags = TcpFlags {
            ack: true,
            fin: c.ctl & 8 != 0,
            rst: c.ctl & 0x10 != 0,
            syn: false,
            flow_start: false,
        };
        let mut out: Vec<Segment<'_>> = Vec::with_capacity(3);
        if c.ctl & 0x80 != 0 && c.bytes.len() > 1 {
            let mid = c.bytes.len() / 2;
            out.push(seg(
                side,
                at.wrapping_add(mid as u32),
                flags,
                now,
                &c.bytes[mid..],
            ));
            out.push(seg(side, at, flags, now, &c.bytes[..mid]));
        } else {
            out.push(seg(side, at, flags, now, c.bytes));
        }
        if c.ctl & 0x40 != 0 {
            out.push(out[0]);
        }
        for s in out {
            if c.ctl & 2 != 0 && held.is_none() {
                held = Some(s);
                continue;
            }
            p.segment(&s);
            if let Some(h) = held.take() {
                p.segment(&h);
            }
        }
    }
    if let Some(h) = held.take() {
        p.segment(&h);
    }
    let (sink, summary) = p.finish();
    assert!(sink.error.is_none());
    assert!(summary.handshakes <= summary.tls_connections);
}

fn through_session(chunks: &[Chunk<'_>]) {
    let mut tls = TlsSession::default();
    let mut cx = TlsContext::default();
    let mut done = [false; 2];
    for c in chunks {
        let side = if c.ctl & 1 == 0 { Side::A } else { Side::B };
        if done[side as usize] {
            continue;
        }
        let control = tls.on_data(side, c.bytes, 64 << 10, &mut cx);
        if control != sensor::reassembly::Control::Continue {
            done = [true; 2];
        }
    }
    if let Some(client) = tls.client_side() {
        let addr = |port| std::net::SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let chain = |ders: &[Vec<u8>]| -> Vec<std::sync::Arc<sensor::model::Certificate>> {
            ders.iter()
                .map(|d| std::sync::Arc::new(sensor::x509::describe(d)))
                .collect()
        };
        let hs = &mut tls.handshake;
        let mut conn =
            sensor::model::Connection::new(addr(if client == Side::A { 1 } else { 2 }), addr(443), 0);
        conn.handshake = hs.take_facts();
        conn.server_chain = chain(&hs.server_chain);
        conn.client_chain = chain(&hs.client_chain);
        let record = HandshakeRecord::from(&conn);
        let by_serde = serde_json::to_vec(&record).expect("a handshake record serialises");
        let mut by_hand = Vec::new();
        sensor::export::json_write::WriteJson::write_json(&record, &mut by_hand);
        assert_eq!(by_hand, by_serde, "the two JSON writers disagree");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&header, rest)) = data.split_first() else {
        return;
    };
    let chunks = chunks(rest);
    through_pipeline(header & 1 != 0, &chunks);
    through_session(&chunks);
});
