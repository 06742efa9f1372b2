use std::net::SocketAddr;

use std::str::FromStr;

use aya::maps::{MapData, PerCpuArray, ProgramArray, RingBuf};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use sensor_common::{
    CONN_ENDED, CONN_PENDING, COUNTERS, ConnState, DEFAULT_BUDGET, DEFAULT_CONN_ENTRIES,
    DEFAULT_FLOW_ENTRIES, DEFAULT_RING_BYTES, FlowKey,
};

use super::attach::{Attach, AttachMode, Attacher, PROGRAMS};
use super::error::LiveError;
use super::features::KernelFeatures;
use super::flows::{CONNS_MAPS, FlowTable, kernel_key};
use super::reader::RingReader;
use super::stats::KernelStats;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));
static NOLOOP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf-noloop"));
static AUX_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf-aux"));

/// The sensor's kernel object, for tools that load it themselves (benchmarks).
pub fn object() -> &'static [u8] {
    OBJECT
}

/// The object for kernels without `bpf_loop` (see `Ship::Bounded`).
pub fn noloop_object() -> &'static [u8] {
    NOLOOP_OBJECT
}

/// The program of the bounded object that ships a payload's chunks,
/// tail-called from the classifiers through the `SHIP` program array.
pub const SHIP_PROGRAM: &str = "tls_ship";

/// Which object the operator asks for; `Auto` lets the features decide.
/// Hidden from `--help`: it exists so tests can take the older kernels'
/// path on a kernel that has `bpf_loop`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ShipMode {
    #[default]
    Auto,
    BpfLoop,
    Bounded,
}

impl FromStr for ShipMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "bpf-loop" => Ok(Self::BpfLoop),
            "bounded" => Ok(Self::Bounded),
            _ => Err(format!("{s:?} is not one of auto, bpf-loop, bounded")),
        }
    }
}

/// How the kernel walks a packet's payload chunk by chunk, that is which
/// object is loaded. Both ship the same records within the same budget
/// and count the same counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ship {
    /// `bpf_loop` (Linux 5.17): `sensor-ebpf`.
    BpfLoop,
    /// A bounded loop (Linux 5.3) in `tls_ship`, a program the classifiers
    /// tail-call: `sensor-ebpf-noloop`, for 5.10 to 5.16.
    Bounded,
}

impl Ship {
    /// The object for `mode` on a kernel with `features`. Asking for
    /// bpf_loop on a kernel without it is an error, not a silent fallback.
    pub fn choose(mode: ShipMode, features: &KernelFeatures) -> Result<Self, LiveError> {
        match mode {
            ShipMode::Auto if features.bpf_loop => Ok(Self::BpfLoop),
            ShipMode::Auto | ShipMode::Bounded => Ok(Self::Bounded),
            ShipMode::BpfLoop if features.bpf_loop => Ok(Self::BpfLoop),
            ShipMode::BpfLoop => Err(LiveError::Load(
                "ship mode bpf-loop asked for, but this kernel has no bpf_loop helper (Linux 5.17+)"
                    .into(),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::BpfLoop => "bpf-loop",
            Self::Bounded => "bounded",
        }
    }

    pub fn object(self) -> &'static [u8] {
        match self {
            Self::BpfLoop => OBJECT,
            Self::Bounded => NOLOOP_OBJECT,
        }
    }
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
    /// Connections counted at once (CONNS).
    pub conn_entries: u32,
    /// TCX, clsact, or whichever the kernel offers.
    pub attach: AttachMode,
    /// bpf_loop, the bounded loop, or whichever the kernel allows.
    pub ship: ShipMode,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            budget: DEFAULT_BUDGET,
            flow_entries: DEFAULT_FLOW_ENTRIES,
            ring_bytes: DEFAULT_RING_BYTES,
            conn_entries: DEFAULT_CONN_ENTRIES,
            attach: AttachMode::Auto,
            ship: ShipMode::Auto,
        }
    }
}

/// The loaded object's maps; its programs go to an [`Attacher`].
pub struct Programs {
    features: KernelFeatures,
    ship: Ship,
    how: Attach,
    /// The bounded object's program array (slot 0: `tls_ship`).
    _ship_slot: Option<ProgramArray<MapData>>,
    flows: FlowTable,
    counts: PerCpuArray<MapData, [u64; COUNTERS]>,
}

impl Programs {
    /// Probes the kernel's features (once: the result is kept), loads the
    /// object and its programs, and chooses how they will attach. The
    /// attacher holds the programs; the reader is their ring buffer.
    pub fn load(cfg: &LiveConfig) -> Result<(Self, Attacher, RingReader), LiveError> {
        let features = KernelFeatures::probe();
        tracing::info!(
            tcx = features.tcx,
            ringbuf = features.ringbuf,
            bpf_loop = features.bpf_loop,
            "kernel features"
        );
        for (lacks, instead) in features.fallbacks() {
            tracing::info!("this kernel lacks {lacks}: {instead}");
        }
        let how = Attach::choose(cfg.attach, &features)?;
        tracing::info!(mode = how.name(), asked = ?cfg.attach, "attach mode");
        let ship = Ship::choose(cfg.ship, &features)?;
        tracing::info!(mode = ship.name(), asked = ?cfg.ship, "ship mode");
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
        let mut loader = EbpfLoader::new();
        loader
            .override_global("BUDGET", &cfg.budget, true)
            .map_max_entries("FLOWS", cfg.flow_entries)
            .map_max_entries("EVENTS", cfg.ring_bytes);
        for name in CONNS_MAPS {
            loader.map_max_entries(name, cfg.conn_entries);
        }
        let mut ebpf = loader.load(ship.object()).map_err(|e| load_err(&e))?;
        let programs = PROGRAMS.iter().map(|(name, _, _)| *name);
        let extra = (ship == Ship::Bounded).then_some(SHIP_PROGRAM);
        for name in programs.chain(extra) {
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
        let flows = FlowTable::take(&mut ebpf)?;
        let counts = PerCpuArray::try_from(take(&mut ebpf, "COUNTS")?).map_err(|e| load_err(&e))?;
        let ship_slot = match ship {
            Ship::BpfLoop => None,
            Ship::Bounded => {
                let mut slot =
                    ProgramArray::try_from(take(&mut ebpf, "SHIP")?).map_err(|e| load_err(&e))?;
                let prog: &SchedClassifier = ebpf
                    .program(SHIP_PROGRAM)
                    .ok_or_else(|| LiveError::Load(format!("program {SHIP_PROGRAM} missing")))?
                    .try_into()
                    .map_err(|e| load_err(&e))?;
                let fd = prog.fd().map_err(|e| load_err(&e))?;
                slot.set(0, fd, 0).map_err(|e| load_err(&e))?;
                Some(slot)
            }
        };
        Ok((
            Self {
                features,
                ship,
                how,
                _ship_slot: ship_slot,
                flows,
                counts,
            },
            Attacher::new(ebpf, how),
            RingReader::new(ring),
        ))
    }

    /// What the kernel offered when the programs were loaded.
    pub fn features(&self) -> KernelFeatures {
        self.features
    }

    /// Which object walks a payload's chunks.
    pub fn ship_mode(&self) -> Ship {
        self.ship
    }

    pub fn attach_mode(&self) -> Attach {
        self.how
    }

    /// Stops the kernel following connections (their handshakes are
    /// done); returns how many it still followed.
    pub fn close_flows(&mut self, ends: &[(SocketAddr, SocketAddr)]) -> usize {
        let keys: Vec<FlowKey> = ends.iter().map(|&(a, b)| kernel_key(a, b)).collect();
        self.flows.remove_all(&keys)
    }

    /// Removes flows that shipped nothing for `idle_ns`; returns how many.
    pub fn expire_flows(&mut self, now_mono_ns: u64, idle_ns: u64) -> u64 {
        let stale: Vec<FlowKey> = self
            .flows
            .flows()
            .filter(|(_, s)| now_mono_ns.saturating_sub(s.last_ns) > idle_ns)
            .map(|(k, _)| k)
            .collect();
        self.flows.remove_all(&stale) as u64
    }

    /// Removes CONNS entries idle for `idle_ns` (all of them when
    /// `idle_ns` is zero: shutdown). Returns the ones that carried
    /// payload, to be reported as ended, and how many never did.
    pub fn expire_conns(
        &mut self,
        now_mono_ns: u64,
        idle_ns: u64,
    ) -> (Vec<(FlowKey, ConnState)>, u64) {
        let mut stale = Vec::new();
        self.flows.for_each_conn(|k, s| {
            if idle_ns == 0 || now_mono_ns.saturating_sub(s.last_ns) > idle_ns {
                stale.push((k, *s));
            }
        });
        let mut ended = Vec::new();
        let mut pending = 0;
        for (k, s) in stale {
            // The kernel may have ended it meanwhile; then its summary says so.
            if s.flags & CONN_ENDED != 0 || !self.flows.remove_conn(&k) {
                continue;
            }
            if s.phase != CONN_PENDING {
                ended.push((k, s));
            } else {
                pending += 1;
            }
        }
        (ended, pending)
    }

    /// Every open connection that carried payload, as the kernel counts it
    /// now: the periodic reports' samples. Entries the kernel is ending are
    /// left out (their summary carries their last counts).
    pub fn for_each_open_conn(&self, mut f: impl FnMut(&FlowKey, &ConnState)) {
        // Handed out a chunk at a time, never collected: a list of 100,000
        // connections would be megabytes that the allocator keeps after
        // the report.
        self.flows.for_each_conn(|k, s| {
            if s.phase != CONN_PENDING && s.flags & CONN_ENDED == 0 {
                f(&k, s);
            }
        });
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
