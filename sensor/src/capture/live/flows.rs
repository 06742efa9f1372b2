//! The kernel's flow map as user space sees it, with the gate in front of it
//! (sensor_common::GATE_SLOTS): a flow user space deletes is taken off its
//! gate slot, so packets of that slot skip the hash lookup again.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aya::maps::{HashMap as BpfHashMap, Map, MapData};
use aya::{Ebpf, Pod};
use sensor_common::{ConnKey4, ConnState, FAMILY_V4, FAMILY_V6, FlowKey, FlowState, GATE_SLOTS};

use super::batch;
use super::error::LiveError;

/// The GATE array mapped into this process: the kernel adds to its slots
/// with atomic adds, so user space must take off with atomics too, which
/// the map syscalls (read, then write the whole value) cannot do.
struct Gate {
    slots: NonNull<AtomicU64>,
    bytes: usize,
    // Keeps the map alive as long as the mapping.
    _map: MapData,
}

// SAFETY: the mapping is only touched through atomics.
unsafe impl Send for Gate {}
unsafe impl Sync for Gate {}

impl Gate {
    fn new(map: Map) -> Result<Self, LiveError> {
        let Map::Array(map) = map else {
            return Err(LiveError::Load(format!(
                "map GATE is a {map:?}, not an array"
            )));
        };
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
        let bytes = (GATE_SLOTS as usize * size_of::<u64>()).next_multiple_of(page);
        // SAFETY: a shared mapping of the whole array (BPF_F_MMAPABLE);
        // the kernel checks the length against the map's size.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(LiveError::Load(format!(
                "mapping GATE: {}",
                std::io::Error::last_os_error()
            )));
        }
        let slots = NonNull::new(ptr.cast::<AtomicU64>())
            .ok_or_else(|| LiveError::Load("mapping GATE returned null".into()))?;
        Ok(Self {
            slots,
            bytes,
            _map: map,
        })
    }

    fn slot(&self, index: u32) -> &AtomicU64 {
        let index = (index % GATE_SLOTS) as usize;
        // SAFETY: in bounds, page-aligned mapping, lives as long as self.
        unsafe { &*self.slots.as_ptr().add(index) }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // SAFETY: the mapping made in new, not used after this.
        unsafe { libc::munmap(self.slots.as_ptr().cast(), self.bytes) };
    }
}

/// The maps that hold counted connections, one per family: their sizes are
/// set together (`conn_entries` each).
pub const CONNS_MAPS: [&str; 2] = ["CONNS4", "CONNS6"];

/// FLOWS, CONNS4, CONNS6 and GATE together: every removal goes through here.
pub struct FlowTable {
    flows: BpfHashMap<MapData, FlowKey, FlowState>,
    conns4: BpfHashMap<MapData, ConnKey4, ConnState>,
    conns6: BpfHashMap<MapData, FlowKey, ConnState>,
    gate: Gate,
    batch_warned: AtomicBool,
}

impl FlowTable {
    /// Takes the object's FLOWS, CONNS4, CONNS6 and GATE maps out of the loaded Ebpf.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, LiveError> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| LiveError::Load(format!("map {name} missing from the object")))
        };
        let load = |e: aya::maps::MapError| LiveError::Load(e.to_string());
        Ok(Self {
            flows: BpfHashMap::try_from(take("FLOWS")?).map_err(load)?,
            conns4: BpfHashMap::try_from(take(CONNS_MAPS[0])?).map_err(load)?,
            conns6: BpfHashMap::try_from(take(CONNS_MAPS[1])?).map_err(load)?,
            gate: Gate::new(take("GATE")?)?,
            batch_warned: AtomicBool::new(false),
        })
    }

    /// Deletes a connection's entry, with the same gate rule as `remove`.
    pub fn remove_conn(&mut self, key: &FlowKey) -> bool {
        let removed = if key.family == FAMILY_V4 {
            self.conns4.remove(&ConnKey4::of(key))
        } else {
            self.conns6.remove(key)
        };
        if removed.is_err() {
            return false;
        }
        self.gate
            .slot(key.gate_slot())
            .fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// Every connection the kernel counts, IPv4's first, read a chunk of
    /// entries per system call (`batch`); entry by entry should the
    /// kernel refuse that before handing out any.
    pub fn for_each_conn(&self, mut f: impl FnMut(FlowKey, &ConnState)) {
        self.walk(&self.conns4, ConnKey4::flow_key, &mut f);
        self.walk(&self.conns6, |k| *k, &mut f);
    }

    fn walk<K: Pod>(
        &self,
        map: &BpfHashMap<MapData, K, ConnState>,
        key: fn(&K) -> FlowKey,
        f: &mut impl FnMut(FlowKey, &ConnState),
    ) {
        let Err(e) = batch::for_each(map, |k: &K, s| f(key(k), s)) else {
            return;
        };
        self.batch_failed("reading the connection maps", &e);
        if e.delivered == 0 {
            for (k, s) in map.iter().filter_map(Result::ok) {
                f(key(&k), &s);
            }
        }
    }

    /// Logged once per run: a kernel that refuses one batch operation
    /// refuses the others, and each caller goes entry by entry instead.
    fn batch_failed(&self, what: &str, e: &batch::Failed) {
        if !self.batch_warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{what} in batches failed after {} entries ({}); going entry by entry",
                e.delivered,
                e.source
            );
        }
    }

    /// Every connection the kernel counts, collected (tests, benchmarks).
    pub fn conns(&self) -> impl Iterator<Item = (FlowKey, ConnState)> {
        let mut all = Vec::new();
        self.for_each_conn(|k, s| all.push((k, *s)));
        all.into_iter()
    }

    /// Deletes a flow; true if it was there. Only a flow this call deleted
    /// is taken off its slot, after the delete, so the slot of a flow still
    /// in the map never reads zero.
    pub fn remove(&mut self, key: &FlowKey) -> bool {
        if self.flows.remove(key).is_err() {
            return false;
        }
        // Were the count already zero (it cannot be), wrapping would leave
        // the slot open for good: lookups, never a missed flow.
        self.gate
            .slot(key.gate_slot())
            .fetch_sub(1, Ordering::SeqCst);
        true
    }

    /// Deletes flows, a chunk per system call rather than one per finished
    /// handshake, with `remove`'s gate rule; returns how many were there.
    pub fn remove_all(&mut self, keys: &[FlowKey]) -> usize {
        let mut n = 0;
        let gate = &self.gate;
        let deleted = batch::delete(&mut self.flows, keys, |k| {
            gate.slot(k.gate_slot()).fetch_sub(1, Ordering::SeqCst);
            n += 1;
        });
        if let Err(e) = deleted {
            self.batch_failed("deleting flows", &e);
            for k in &keys[e.delivered..] {
                n += usize::from(self.remove(k));
            }
        }
        n
    }

    /// Every flow in the kernel's map (entries that fail to read are skipped).
    pub fn flows(&self) -> impl Iterator<Item = (FlowKey, FlowState)> + '_ {
        self.flows.iter().filter_map(Result::ok)
    }

    pub fn len(&self) -> usize {
        self.flows.keys().filter(Result::is_ok).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open flows the gate counts in `key`'s slot.
    pub fn gate_count(&self, key: &FlowKey) -> u64 {
        self.gate.slot(key.gate_slot()).load(Ordering::SeqCst)
    }
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
