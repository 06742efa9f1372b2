use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::tc::{SchedClassifierLinkId, TcAttachType};
use aya::programs::{SchedClassifier, tc};
use aya::util::KernelVersion;
use aya::{Ebpf, EbpfLoader};
use sensor_common::{
    COUNTERS, Counter, DEFAULT_BUDGET, DEFAULT_FLOW_ENTRIES, DEFAULT_PLAIN_ENTRIES,
    DEFAULT_RING_BYTES, FAMILY_V4, FAMILY_V6, FlowKey, PLAIN_COUNTING, PlainState,
};

use super::LiveError;
use super::flows::FlowTable;

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
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            budget: DEFAULT_BUDGET,
            flow_entries: DEFAULT_FLOW_ENTRIES,
            ring_bytes: DEFAULT_RING_BYTES,
            plain_entries: DEFAULT_PLAIN_ENTRIES,
        }
    }
}

/// Kernel counters summed over CPUs, by name.
pub type KernelCounters = BTreeMap<&'static str, u64>;

const PROGRAMS: [(&str, bool, TcAttachType); 4] = [
    ("tls_tc_eth", true, TcAttachType::Ingress),
    ("tls_tc_eth_egress", true, TcAttachType::Egress),
    ("tls_tc_l3", false, TcAttachType::Ingress),
    ("tls_tc_l3_egress", false, TcAttachType::Egress),
];

/// The loaded object and where its programs are attached.
pub struct Programs {
    ebpf: Ebpf,
    flows: FlowTable,
    counts: PerCpuArray<MapData, [u64; COUNTERS]>,
    attached: BTreeMap<String, Vec<(&'static str, SchedClassifierLinkId)>>,
}

fn words(ip: IpAddr) -> [u32; 4] {
    match ip {
        IpAddr::V4(v4) => [u32::from_ne_bytes(v4.octets()), 0, 0, 0],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut w = [0u32; 4];
            for (i, x) in w.iter_mut().enumerate() {
                *x = u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
            }
            w
        }
    }
}

/// The kernel's key for a connection: the same canonical order the
/// program computes (lower port first; equal ports, lower address first).
pub fn kernel_key(a: SocketAddr, b: SocketAddr) -> FlowKey {
    let (wa, wb) = (words(a.ip()), words(b.ip()));
    let a_lo = if a.port() != b.port() {
        a.port() < b.port()
    } else {
        wa <= wb
    };
    let (lo, hi, wlo, whi) = if a_lo { (a, b, wa, wb) } else { (b, a, wb, wa) };
    FlowKey {
        lo_addr: wlo,
        hi_addr: whi,
        lo_port: lo.port(),
        hi_port: hi.port(),
        family: if a.is_ipv4() { FAMILY_V4 } else { FAMILY_V6 },
        _pad: [0; 3],
    }
}

impl Programs {
    pub fn load(cfg: &LiveConfig) -> Result<(Self, RingBuf<MapData>), LiveError> {
        let load_err = |e: &dyn std::fmt::Display| LiveError::Load(e.to_string());
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
                .map_err(|e| LiveError::Load(format!("{name}: {e:?}")))?;
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
                flows,
                counts,
                attached: BTreeMap::new(),
            },
            ring,
        ))
    }

    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.attached.keys().map(String::as_str)
    }

    /// Attaches on ingress and egress. TCX on 6.6+ (aya's choice), else a
    /// clsact qdisc with netlink filters.
    pub fn attach(&mut self, interface: &str, ethernet: bool) -> Result<(), LiveError> {
        if self.attached.contains_key(interface) {
            return Ok(());
        }
        let err = |reason: String| LiveError::Attach {
            interface: interface.to_string(),
            reason,
        };
        let tcx = KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0));
        if !tcx
            && let Err(e) = tc::qdisc_add_clsact(interface)
            && !matches!(e, tc::TcError::AlreadyAttached)
        {
            return Err(err(format!("adding clsact: {e}")));
        }
        let mut links = Vec::new();
        for (name, eth, attach_type) in PROGRAMS {
            if eth != ethernet {
                continue;
            }
            let prog: &mut SchedClassifier = self
                .ebpf
                .program_mut(name)
                .ok_or_else(|| err(format!("{name} missing")))?
                .try_into()
                .map_err(|e: aya::programs::ProgramError| err(e.to_string()))?;
            match prog.attach(interface, attach_type) {
                Ok(id) => links.push((name, id)),
                Err(e) => {
                    for (n, id) in links {
                        self.detach_one(n, id);
                    }
                    return Err(err(format!("{e}")));
                }
            }
        }
        self.attached.insert(interface.to_string(), links);
        Ok(())
    }

    fn detach_one(&mut self, name: &str, id: SchedClassifierLinkId) {
        if let Some(p) = self.ebpf.program_mut(name)
            && let Ok(prog) = <&mut SchedClassifier>::try_from(p)
        {
            // The interface may be gone already, and its links with it.
            let _ = prog.detach(id);
        }
    }

    pub fn detach(&mut self, interface: &str) {
        if let Some(links) = self.attached.remove(interface) {
            for (name, id) in links {
                self.detach_one(name, id);
            }
        }
    }

    pub fn detach_all(&mut self) {
        let names: Vec<String> = self.attached.keys().cloned().collect();
        for n in names {
            self.detach(&n);
        }
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

    pub fn counters(&self) -> KernelCounters {
        let mut out: KernelCounters = Counter::ALL.iter().map(|c| (c.name(), 0)).collect();
        if let Ok(per_cpu) = self.counts.get(&0, 0) {
            for cpu in per_cpu.iter() {
                for c in Counter::ALL {
                    *out.entry(c.name()).or_default() += cpu[c as usize];
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_key_is_direction_independent() {
        let a: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:443".parse().unwrap();
        assert_eq!(kernel_key(a, b), kernel_key(b, a));
        assert_eq!(kernel_key(a, b).lo_port, 443);
        let c: SocketAddr = "[fd00::2]:443".parse().unwrap();
        let d: SocketAddr = "[fd00::1]:443".parse().unwrap();
        assert_eq!(kernel_key(c, d), kernel_key(d, c));
        assert_eq!(kernel_key(c, d).family, FAMILY_V6);
    }
}
