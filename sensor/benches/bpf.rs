//! Per-packet cost of the kernel program, measured by the kernel itself
//! through BPF_PROG_TEST_RUN (`cargo xtask bench bpf`, as root).
//!
//! Every case runs the ingress Ethernet program (`tls_tc_eth`) on one
//! packet built with etherparse, `repeat` times in a row inside the kernel;
//! the kernel reports the mean time per run in whole nanoseconds, including
//! its own loop overhead (bottom halves off and on around each run). That
//! overhead is the whole cost of `empty` (the aux object's `tc_empty`), so
//! the ratio to `empty` is the price of our program on top of a program that
//! does nothing. Each case is measured `rounds` times, interleaved with the
//! others so load from elsewhere spreads evenly; the median is printed
//! with the spread (minimum to maximum of the rounds).
//!
//! `client-hello` cannot be repeated in place: the first run opens the flow
//! and every later run of the same packet is a retransmission of an open
//! flow, dropped by the duplicate check. What it measures is a ClientHello
//! that opens a new flow and ships itself to the ring buffer: single runs
//! (`repeat` = 1), the flow deleted and the ring buffer drained before each.
//! A single run carries the timer's fixed cost (reading the clock once per
//! run instead of once per million), so the same single-run measurement of
//! `tc_empty` is subtracted and the steady-state `empty` figure added back:
//! client-hello = empty + (median single ClientHello - median single empty).
//! The program wakes user space only once a quarter of the ring waits
//! (a wakeup is an irq_work self-IPI, about 7 µs in a VM), so a drained
//! ring measures the ClientHello without one, as a sensor under load sees it.
//!
//! The benchmark runs on CPU 0, where its connections were opened (SYNs
//! and pick-ups), so a counted packet takes the plain adds of the CPU that
//! owns the connection; `tracked-other-cpu` is `plaintext-tracked` on a
//! connection whose SYN ran on CPU 1: the atomic adds every other CPU pays.
//!
//! `tls-tracked` is a segment of a TLS connection past its handshake,
//! counted (on the CPU that opened it, with plain adds): like
//! `client-hello` it cannot repeat in place (the same segment again is a
//! duplicate), so it is measured the same way,
//! single runs alternating two segments, each new to the connection.
//!
//! `tls-untracked` is a TLS segment of a connection never seen open: its
//! first run picks the connection up (`partial`), so what the repeats
//! measure is that segment again at the same place on a counted
//! connection: a retransmission, counted (as `plaintext-tracked`'s are).
//!
//! `--ship bounded` measures the object for kernels without `bpf_loop`
//! (the ClientHello then goes through the tail call to `tls_ship`).
//!
//! The ClientHello is a real one: `openssl s_client` connects to a listener
//! of ours on 127.0.0.1 and the first TLS record it sends is kept.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use aya::maps::ProgramArray;
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader, TestRun, TestRunOptions};
use etherparse::PacketBuilder;
use sensor::capture::live::{
    FlowTable, SHIP_PROGRAM, Ship, aux_object, check_capabilities, kernel_key,
};
use sensor_common::{COUNTERS, Counter};

/// TC_ACT_UNSPEC as the kernel hands the program's return value back.
const TC_ACT_UNSPEC: u32 = -1i32 as u32;

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const CLIENT: [u8; 4] = [10, 77, 0, 1];
const SERVER: [u8; 4] = [10, 77, 0, 2];

struct Options {
    repeat: u32,
    rounds: usize,
    shots: usize,
    /// Which object: `bpf-loop` (the default) or `bounded` (kernels before 5.17).
    ship: Ship,
}

impl Options {
    fn from_args() -> Result<Self> {
        let mut o = Options {
            repeat: 1_000_000,
            rounds: 7,
            shots: 20_000,
            ship: Ship::BpfLoop,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = |name: &str| -> Result<u64> {
                let v = args
                    .next()
                    .with_context(|| format!("{name} needs a value"))?;
                v.parse()
                    .with_context(|| format!("{name}: not a number: {v}"))
            };
            match a.as_str() {
                "--repeat" => o.repeat = value("--repeat")?.try_into()?,
                "--rounds" => o.rounds = value("--rounds")?.try_into()?,
                "--shots" => o.shots = value("--shots")?.try_into()?,
                "--ship" => {
                    o.ship = match args.next().as_deref() {
                        Some("bpf-loop") => Ship::BpfLoop,
                        Some("bounded") => Ship::Bounded,
                        other => bail!("--ship: {other:?} is not bpf-loop or bounded"),
                    }
                }
                // cargo bench passes --bench to every bench binary.
                "--bench" => {}
                other => bail!(
                    "unknown argument {other} (known: --repeat N --rounds N --shots N --ship bpf-loop|bounded)"
                ),
            }
        }
        ensure!(
            o.repeat > 0 && o.rounds > 0 && o.shots > 0,
            "--repeat, --rounds and --shots must be positive"
        );
        Ok(o)
    }
}

fn tcp_packet(sport: u16, seq: u32, payload: &[u8]) -> Result<Vec<u8>> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv4(CLIENT, SERVER, 64)
        .tcp(sport, 443, seq, 64240)
        .ack(1);
    let b = if payload.is_empty() { b } else { b.psh() };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload)?;
    Ok(out)
}

/// A client's SYN (no ACK): opens a CONNS entry.
fn syn_packet(sport: u16) -> Result<Vec<u8>> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv4(CLIENT, SERVER, 64)
        .tcp(sport, 443, 0, 64240)
        .syn();
    let mut out = Vec::with_capacity(b.size(0));
    b.write(&mut out, &[])?;
    Ok(out)
}

fn udp_packet(payload: &[u8]) -> Result<Vec<u8>> {
    let b = PacketBuilder::ethernet2(CLIENT_MAC, SERVER_MAC)
        .ipv4(CLIENT, SERVER, 64)
        .udp(40000, 53);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload)?;
    Ok(out)
}

/// Kills the openssl client however the capture ends.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first TLS record `openssl s_client` sends: its ClientHello.
fn real_client_hello() -> Result<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let child = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "bench.example"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting openssl s_client (cargo xtask setup installs openssl)")?;
    let _reap = Reap(child);
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn: TcpStream = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                ensure!(
                    Instant::now() < deadline,
                    "openssl s_client did not connect"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut header = [0u8; 5];
    conn.read_exact(&mut header)
        .context("reading the ClientHello record header")?;
    ensure!(
        header[0] == 22 && header[1] == 3,
        "openssl sent no handshake record: {header:02x?}"
    );
    let len = u16::from_be_bytes([header[3], header[4]]) as usize;
    let mut record = header.to_vec();
    record.resize(5 + len, 0);
    conn.read_exact(&mut record[5..])
        .context("reading the ClientHello")?;
    ensure!(
        record[5] == 1,
        "the first handshake message is not a ClientHello"
    );
    Ok(record)
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    let prog: &mut SchedClassifier = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))?
        .try_into()?;
    prog.load().with_context(|| format!("loading {name}"))?;
    Ok(prog)
}

/// Moves this thread to `cpu`: BPF_PROG_TEST_RUN runs the program on the
/// caller's CPU, and which CPU opened a connection decides how its packets
/// are counted (ConnState::owner).
fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays in bounds
    // for any cpu below CPU_SETSIZE.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    ensure!(
        ok,
        "cannot move to CPU {cpu} (the benchmark needs two): {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// One test run: the kernel's mean nanoseconds per run.
fn run_ns(prog: &SchedClassifier, packet: &[u8], repeat: u32) -> Result<u32> {
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(packet),
            repeat,
            ..TestRunOptions::new()
        })
        .context("BPF_PROG_TEST_RUN")?;
    ensure!(
        r.return_value == TC_ACT_UNSPEC,
        "the program returned {} instead of TC_ACT_UNSPEC",
        r.return_value as i32
    );
    Ok(u32::try_from(r.duration.as_nanos()).unwrap_or(u32::MAX))
}

/// A case's figure: the median and the spread around it.
#[derive(Clone, Copy)]
struct Figure {
    median: u32,
    low: u32,
    high: u32,
}

impl Figure {
    /// Repeated runs (a handful of rounds): median, minimum and maximum.
    fn rounds(mut v: Vec<u32>) -> Self {
        v.sort_unstable();
        Figure {
            median: v[v.len() / 2],
            low: v[0],
            high: v[v.len() - 1],
        }
    }

    /// Single runs (thousands, with the timer's jitter): median and the
    /// 10th to 90th percentiles.
    fn shots(mut v: Vec<u32>) -> Self {
        v.sort_unstable();
        Figure {
            median: v[v.len() / 2],
            low: v[v.len() / 10],
            high: v[v.len() * 9 / 10],
        }
    }

    /// A single-run figure put on the repeated runs' footing: minus the
    /// empty program's single run, plus its repeated run.
    fn rebased(self, empty_single: u32, base: u32) -> Self {
        let f = |x: u32| base + x.saturating_sub(empty_single);
        Figure {
            median: f(self.median),
            low: f(self.low),
            high: f(self.high),
        }
    }
}

/// The sensor's object with handles on the maps the benchmark checks.
struct Sensor {
    ebpf: Ebpf,
    flows: FlowTable,
    ring: RingBuf<MapData>,
    counts: PerCpuArray<MapData, [u64; COUNTERS]>,
    _ship_slot: Option<ProgramArray<MapData>>,
}

impl Sensor {
    fn load(ship: Ship) -> Result<Self> {
        let mut ebpf = EbpfLoader::new().load(ship.object())?;
        classifier(&mut ebpf, "tls_tc_eth")?;
        let ship_slot = match ship {
            Ship::BpfLoop => None,
            Ship::Bounded => {
                classifier(&mut ebpf, SHIP_PROGRAM)?;
                let mut slot =
                    ProgramArray::try_from(ebpf.take_map("SHIP").context("map SHIP missing")?)?;
                let prog: &SchedClassifier = ebpf
                    .program(SHIP_PROGRAM)
                    .context("tls_ship missing")?
                    .try_into()?;
                slot.set(0, prog.fd()?, 0)?;
                Some(slot)
            }
        };
        let flows = FlowTable::take(&mut ebpf)?;
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .with_context(|| format!("map {name} missing from the object"))
        };
        let ring = RingBuf::try_from(take("EVENTS")?)?;
        let counts = PerCpuArray::try_from(take("COUNTS")?)?;
        Ok(Self {
            ebpf,
            flows,
            ring,
            counts,
            _ship_slot: ship_slot,
        })
    }

    fn prog(&self) -> Result<&SchedClassifier> {
        Ok(self
            .ebpf
            .program("tls_tc_eth")
            .context("tls_tc_eth missing")?
            .try_into()?)
    }

    fn counter(&self, c: Counter) -> Result<u64> {
        let per_cpu = self.counts.get(&0, 0)?;
        Ok(per_cpu.iter().map(|cpu| cpu[c as usize]).sum())
    }

    fn drain(&mut self) -> usize {
        let mut n = 0;
        while self.ring.next().is_some() {
            n += 1;
        }
        n
    }
}

struct Case {
    name: &'static str,
    packet: Vec<u8>,
    /// Whether the case runs `tc_empty` rather than the sensor's program.
    empty: bool,
}

fn main() -> Result<()> {
    let opts = Options::from_args()?;
    check_capabilities().context("the BPF benchmark loads kernel programs")?;
    pin_to(0)?;

    let hello = real_client_hello()?;
    let client_hello_port = 40005;
    let cases = [
        Case {
            name: "empty",
            packet: tcp_packet(40000, 1, b"")?,
            empty: true,
        },
        Case {
            name: "udp",
            packet: udp_packet(&[0u8; 40])?,
            empty: false,
        },
        Case {
            name: "tcp-ack",
            packet: tcp_packet(40002, 1000, b"")?,
            empty: false,
        },
        Case {
            name: "tcp-payload",
            packet: tcp_packet(
                40003,
                1000,
                b"GET / HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n",
            )?,
            empty: false,
        },
        Case {
            // A segment of a plaintext connection the kernel counts (opened
            // by the SYN below): repeated in place it is the same segment
            // again at the same place, a retransmission, counted each time.
            name: "plaintext-tracked",
            packet: tcp_packet(
                40006,
                1,
                b"GET / HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n",
            )?,
            empty: false,
        },
        Case {
            // The same on a connection another CPU opened: counted with
            // atomic adds (ConnState's shared counts) instead of plain ones.
            name: "tracked-other-cpu",
            packet: tcp_packet(
                40008,
                1,
                b"GET / HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n",
            )?,
            empty: false,
        },
        Case {
            name: "tls-untracked",
            packet: {
                // A full-sized application_data segment of a connection the
                // sensor never saw open (picked up by its first run).
                let mut record = vec![23, 3, 3, 0x05, 0x7b];
                record.extend((0..1403u32).map(|i| (i * 131 % 251) as u8));
                tcp_packet(40004, 1000, &record)?
            },
            empty: false,
        },
    ];
    let hello_packet = tcp_packet(client_hello_port, 1, &hello)?;
    let hello_key = kernel_key(
        SocketAddr::from((CLIENT, client_hello_port)),
        SocketAddr::from((SERVER, 443)),
    );

    let mut aux = EbpfLoader::new().load(aux_object())?;
    classifier(&mut aux, "tc_empty")?;
    let empty: &SchedClassifier = aux.program("tc_empty").context("tc_empty")?.try_into()?;
    let mut sensor = Sensor::load(opts.ship)?;

    // One run of each packet first: the benchmark only means something if
    // each case takes the path it is named for.
    run_ns(sensor.prog()?, &syn_packet(40006)?, 1)?;
    pin_to(1)?;
    run_ns(sensor.prog()?, &syn_packet(40008)?, 1)?;
    pin_to(0)?;
    for c in cases.iter().filter(|c| !c.empty) {
        run_ns(sensor.prog()?, &c.packet, 1)?;
    }
    ensure!(
        sensor.counter(Counter::ConnsOpened)? == 2 && sensor.counter(Counter::PlainFlows)? == 2,
        "the SYNs and the HTTP requests did not make two counted plaintext flows"
    );
    let other_key = kernel_key(
        SocketAddr::from((CLIENT, 40008)),
        SocketAddr::from((SERVER, 443)),
    );
    ensure!(
        sensor
            .flows
            .conns()
            .any(|(k, s)| k == other_key && s.owner == 1 && s.shared_packets == [0, 1]),
        "tracked-other-cpu was not counted as another CPU's connection"
    );
    ensure!(
        sensor.counter(Counter::FlowsOpened)? == 0 && sensor.drain() == 0,
        "a packet that is not a ClientHello opened a flow or shipped a record"
    );
    run_ns(sensor.prog()?, &hello_packet, 1)?;
    ensure!(
        sensor.counter(Counter::FlowsOpened)? == 1 && sensor.drain() == 1,
        "the ClientHello did not open a flow and ship one record"
    );
    ensure!(
        sensor.flows.remove(&hello_key),
        "the ClientHello's flow is not in FLOWS under kernel_key"
    );
    // It also picked its connection up (partial): gone too, so that every
    // run below is a ClientHello of a connection not yet counted.
    ensure!(
        sensor.flows.remove_conn(&hello_key),
        "the ClientHello's connection is not in CONNS"
    );

    let mut samples: Vec<Vec<u32>> = vec![Vec::new(); cases.len()];
    for _ in 0..opts.rounds {
        for (c, s) in cases.iter().zip(samples.iter_mut()) {
            let prog = if c.empty { empty } else { sensor.prog()? };
            s.push(run_ns(prog, &c.packet, opts.repeat)?);
        }
    }
    ensure!(
        sensor.counter(Counter::FlowsOpened)? == 1,
        "a steady-state case opened a flow"
    );

    let mut hello_shots = Vec::with_capacity(opts.shots);
    let mut empty_shots = Vec::with_capacity(opts.shots);
    for _ in 0..opts.shots {
        empty_shots.push(run_ns(empty, &hello_packet, 1)?);
        hello_shots.push(run_ns(sensor.prog()?, &hello_packet, 1)?);
        // Removing the flow proves the run opened it.
        ensure!(
            sensor.flows.remove(&hello_key) && sensor.flows.remove_conn(&hello_key),
            "a ClientHello run did not open its flow and pick its connection up"
        );
        ensure!(sensor.drain() == 1, "a ClientHello run shipped no record");
    }
    let tracked_shots = tls_tracked(&mut sensor, &hello, opts.shots)?;

    let hello_len = hello.len();
    let figures: Vec<Figure> = samples.into_iter().map(Figure::rounds).collect();
    let base = figures[0].median.max(1);
    let (hello, empty_single) = (Figure::shots(hello_shots), Figure::shots(empty_shots));
    let hello_fig = hello.rebased(empty_single.median, base);
    let tracked_fig = Figure::shots(tracked_shots).rebased(empty_single.median, base);
    eprintln!(
        "bench bpf: kernel {}, object {}, repeat {} x {} rounds (median, min-max); \
         client-hello and tls-tracked: {} single runs (median, 10th-90th percentile), \
         {} ns - {} ns empty single run + {} ns empty; ClientHello {} bytes",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        opts.ship.name(),
        opts.repeat,
        opts.rounds,
        opts.shots,
        hello.median,
        empty_single.median,
        base,
        hello_len,
    );
    let lines = cases
        .iter()
        .map(|c| c.name)
        .zip(figures)
        .chain([("client-hello", hello_fig), ("tls-tracked", tracked_fig)]);
    for (name, f) in lines {
        println!(
            "{name}: {} ns/packet (spread {}-{}; {} ns above empty, {:.2}x empty)",
            f.median,
            f.low,
            f.high,
            i64::from(f.median) - i64::from(base),
            f64::from(f.median) / f64::from(base)
        );
    }
    Ok(())
}

/// Single runs of segments of a TLS connection whose handshake flow user
/// space let go: each segment new to the connection (two alternate, so
/// neither is the last one seen), each counted. Returns the run times.
fn tls_tracked(sensor: &mut Sensor, hello: &[u8], shots: usize) -> Result<Vec<u32>> {
    let port = 40007;
    let key = kernel_key(
        SocketAddr::from((CLIENT, port)),
        SocketAddr::from((SERVER, 443)),
    );
    run_ns(sensor.prog()?, &syn_packet(port)?, 1)?;
    run_ns(sensor.prog()?, &tcp_packet(port, 1, hello)?, 1)?;
    ensure!(
        sensor.flows.remove(&key) && sensor.drain() == 1,
        "the tracked connection's ClientHello did not open and ship a flow"
    );
    let mut record = vec![23, 3, 3, 0x05, 0x7b];
    record.extend((0..1403u32).map(|i| (i * 131 % 251) as u8));
    let seq = 1 + hello.len() as u32;
    let step = record.len() as u32;
    let segments = [
        tcp_packet(port, seq, &record)?,
        tcp_packet(port, seq + step, &record)?,
    ];
    // The first segment finds FLOWS without the handshake: counted only from here.
    run_ns(sensor.prog()?, &segments[1], 1)?;
    let mut shots_ns = Vec::with_capacity(shots);
    for i in 0..shots {
        shots_ns.push(run_ns(sensor.prog()?, &segments[i % 2], 1)?);
    }
    let counted = sensor
        .flows
        .conns()
        .find(|(k, _)| *k == key)
        .map(|(_, s)| s.packets_of(0) + s.packets_of(1));
    ensure!(
        counted == Some(shots as u64 + 2),
        "tls-tracked segments were not each counted once: {counted:?}"
    );
    ensure!(sensor.drain() == 0, "a tls-tracked segment was shipped");
    Ok(shots_ns)
}
