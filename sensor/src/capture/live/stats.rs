//! What live capture counted: the kernel programs' per-CPU counters summed,
//! indexed as `sensor_common::Counter`, and user space's own counts of the
//! events and flows it expired or could not read.

use sensor_common::{COUNTERS, Counter};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KernelStats {
    /// Indexed by `Counter as usize`.
    pub counters: [u64; COUNTERS],
    /// Kernel flows idle past their timeout, removed by user space.
    pub flows_expired: u64,
    /// Connections that went idle and were reported ended by user space.
    pub conns_expired: u64,
    /// CONNS entries that never carried payload and went idle.
    pub conns_pending_expired: u64,
    /// Ring-buffer events user space could not decode.
    pub malformed_records: u64,
}

impl KernelStats {
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize]
    }

    /// Adds one CPU's counters.
    pub fn add_cpu(&mut self, cpu: &[u64; COUNTERS]) {
        for (a, b) in self.counters.iter_mut().zip(cpu) {
            *a += b;
        }
    }
}
