use std::net::SocketAddr;

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use sensor_common::{
    COUNTERS, DEFAULT_BUDGET, DEFAULT_FLOW_ENTRIES, DEFAULT_PLAIN_ENTRIES, DEFAULT_RING_BYTES,
    FlowKey, PLAIN_COUNTING, PlainState,
};

use super::attach::{Attach, AttachMode, Attachments, PROGRAMS};
use super::error::LiveError;
use super::features::KernelFeatures;
use super::flows::{FlowTable, kernel_key};
use super::reader::RingReader;
use super::stats::KernelStats;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));
static AUX_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf-aux"));

/// The sensor's kernel object, for tools that load it themselves (benchmarks).
pub fn object() -> &'static [u8] {
    OBJECT
}

/// Test and benchmark programs: `tc_empty` and `tc_peer_counter`.
pub fn aux_object() -> &'static [u8] {
    AUX_OBJECT
}

#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Payload bytes shipped per direction of a handshake.
    pub budget: u32,
    /// Handshakes followed at once in the kernel.
    pub flow_entries: u32,
    /// Ring buffer bytes (rounded up to a power of two pages by the kernel rules).
    pub ring_bytes: u32,
    /// Connections followed for plaintext accounting at once.
    pub plain_entries: u32,
    /// TCX, clsact, or whichever the kernel offers.
    pub attach: AttachMode,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            budget: DEFAULT_BUDGET,
            flow_entries: DEFAULT_FLOW_ENTRIES,
            ring_bytes: DEFAULT_RING_BYTES,
            plain_entries: DEFAULT_PLAIN_ENTRIES,
            attach: AttachMode::Auto,
        }
    }
}

/// The loaded object, its maps, and where its programs are attached.
pub struct Programs {
    ebpf: Ebpf,
    features: KernelFeatures,
    attachments: Attachments,
    flows: FlowTable,
    counts: PerCpuArray<MapData, [u64; COUNTERS]>,
}

impl Programs {
    /// Probes the kernel's features (once: the result is kept), loads the
    /// object and its programs, and chooses how they will attach. The
    /// reader is the programs' ring buffer.
    pub fn load(cfg: &LiveConfig) -> Result<(Self, RingReader), LiveError> {
        let features = KernelFeatures::probe();
        tracing::info!(
            tcx = features.tcx,
            ringbuf = features.ringbuf,
            bpf_loop = features.bpf_loop,
            "kernel features"
        );
        let how = Attach::choose(cfg.attach, &features)?;
        tracing::info!(mode = how.name(), asked = ?cfg.attach, "attach mode");
        // A load that fails on a kernel lacking what the programs use says
        // so: the verifier's own words rarely name the missing feature.
        let missing = features.missing();
        let load_err = |e: &dyn std::fmt::Display| {
            if missing.is_empty() {
                LiveError::Load(e.to_string())
            } else {
                LiveError::Load(format!("{e} (this kernel lacks {})", missing.join(", ")))
            }
        };
        let mut ebpf = EbpfLoader::new()
            .override_global("BUDGET", &cfg.budget, true)
            .map_max_entries("FLOWS", cfg.flow_entries)
            .map_max_entries("PLAIN", cfg.plain_entries)
            .map_max_entries("EVENTS", cfg.ring_bytes)
            .load(OBJECT)
            .map_err(|e| load_err(&e))?;
        for (name, _, _) in PROGRAMS {
            let prog: &mut SchedClassifier = ebpf
                .program_mut(name)
                .ok_or_else(|| LiveError::Load(format!("program {name} missing from the object")))?
                .try_into()
                .map_err(|e| load_err(&e))?;
            prog.load()
                .map_err(|e| load_err(&format!("{name}: {e:?}")))?;
        }
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| LiveError::Load(format!("map {name} missing from the object")))
        };
        let ring = RingBuf::try_from(take(&mut ebpf, "EVENTS")?).map_err(|e| load_err(&e))?;
        let flows = FlowTable::new(
            take(&mut ebpf, "FLOWS")?,
            take(&mut ebpf, "PLAIN")?,
            take(&mut ebpf, "GATE")?,
        )?;
        let counts = PerCpuArray::try_from(take(&mut ebpf, "COUNTS")?).map_err(|e| load_err(&e))?;
        Ok((
            Self {
                ebpf,
                features,
                attachments: Attachments::new(how),
                flows,
                counts,
            },
            RingReader::new(ring),
        ))
    }

    /// What the kernel offered when the programs were loaded.
    pub fn features(&self) -> KernelFeatures {
        self.features
    }

    pub fn attach_mode(&self) -> Attach {
        self.attachments.how()
    }

    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.attachments.interfaces()
    }

    /// Attaches on ingress and egress of `interface` (see `Attach`).
    pub fn attach(&mut self, interface: &str, ethernet: bool) -> Result<(), LiveError> {
        self.attachments.attach(&mut self.ebpf, interface, ethernet)
    }

    pub fn detach(&mut self, interface: &str) {
        self.attachments.detach(&mut self.ebpf, interface);
    }

    pub fn detach_all(&mut self) {
        self.attachments.detach_all(&mut self.ebpf);
    }

    /// Stops the kernel following a connection (its handshake is done).
    pub fn close_flow(&mut self, a: SocketAddr, b: SocketAddr) -> bool {
        self.flows.remove(&kernel_key(a, b))
    }

    /// Removes flows that shipped nothing for `idle_ns`; returns how many.
    pub fn expire_flows(&mut self, now_mono_ns: u64, idle_ns: u64) -> u64 {
        let stale: Vec<FlowKey> = self
            .flows
            .flows()
            .filter(|(_, s)| now_mono_ns.saturating_sub(s.last_ns) > idle_ns)
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for k in stale {
            if self.flows.remove(&k) {
                n += 1;
            }
        }
        n
    }

    /// Removes PLAIN entries idle for `idle_ns` (all of them when
    /// `idle_ns` is zero: shutdown). Returns the plaintext ones, to be
    /// reported as ended, and how many were still waiting for payload.
    pub fn expire_plain(
        &mut self,
        now_mono_ns: u64,
        idle_ns: u64,
    ) -> (Vec<(FlowKey, PlainState)>, u64) {
        let stale: Vec<(FlowKey, PlainState)> = self
            .flows
            .plain_flows()
            .filter(|(_, s)| idle_ns == 0 || now_mono_ns.saturating_sub(s.last_ns) > idle_ns)
            .collect();
        let mut ended = Vec::new();
        let mut pending = 0;
        for (k, s) in stale {
            // The kernel may have ended it meanwhile; then its summary says so.
            if !self.flows.remove_plain(&k) {
                continue;
            }
            if s.phase == PLAIN_COUNTING {
                ended.push((k, s));
            } else {
                pending += 1;
            }
        }
        (ended, pending)
    }

    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    /// The kernel's counters summed over CPUs; user space's counts are zero.
    pub fn counters(&self) -> KernelStats {
        let mut out = KernelStats::default();
        if let Ok(per_cpu) = self.counts.get(&0, 0) {
            for cpu in per_cpu.iter() {
                out.add_cpu(cpu);
            }
        }
        out
    }
}

impl Drop for Programs {
    fn drop(&mut self) {
        self.detach_all();
    }
}
