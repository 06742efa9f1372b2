//! What the running kernel offers the live capture, asked once at start:
//! the choices between code paths (TCX or clsact, `bpf_loop` or a bounded
//! loop) are made from this, never from a kernel version.

use aya::maps::MapType;
use aya::programs::ProgramType;
use aya::programs::SchedClassifier;
use aya::programs::tc::TcAttachType;
use aya::sys::{BpfHelper, is_helper_supported, is_map_supported};
use aya::util::KernelVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelFeatures {
    /// TCX links on network devices (Linux 6.6): classifiers attach as
    /// links, ahead of any qdisc.
    pub tcx: bool,
    /// Ring buffer maps (Linux 5.8), which carry every event.
    pub ringbuf: bool,
    /// The `bpf_loop` helper in TC programs (Linux 5.17), which ships a
    /// packet's payload chunk by chunk; without it a tail-called program's
    /// bounded loop does (`Ship::Bounded`).
    pub bpf_loop: bool,
}

impl KernelFeatures {
    /// Asks the kernel; needs the capabilities the capture needs anyway.
    /// A probe that fails for another reason than "not supported" counts
    /// as not supported: the capture then says what it lacks.
    pub fn probe() -> Self {
        Self {
            tcx: tcx(),
            ringbuf: is_map_supported(MapType::RingBuf).unwrap_or(false),
            bpf_loop: is_helper_supported(ProgramType::SchedClassifier, BpfHelper::BPF_FUNC_loop)
                .unwrap_or(false),
        }
    }

    /// What the kernel programs need and this kernel lacks, by name: the
    /// capture cannot run without these (its floor is Linux 5.10).
    pub fn missing(&self) -> Vec<&'static str> {
        let mut m = Vec::new();
        if !self.ringbuf {
            m.push("ring buffer maps (Linux 5.8; the sensor needs 5.10+)");
        }
        m
    }

    /// What this kernel lacks that the capture does without, each with
    /// what it does instead.
    pub fn fallbacks(&self) -> Vec<(&'static str, &'static str)> {
        let mut f = Vec::new();
        if !self.tcx {
            f.push((
                "TCX links (Linux 6.6)",
                "the classifiers attach under a clsact qdisc",
            ));
        }
        if !self.bpf_loop {
            f.push((
                "the bpf_loop helper (Linux 5.17)",
                "payloads are shipped by the bounded-loop object",
            ));
        }
        f
    }
}

/// aya offers no TCX probe: a query of loopback's TCX ingress programs
/// answers on any kernel that has TCX (an empty list) and fails with
/// EINVAL on one that does not know the attach type. Loopback exists in
/// every network namespace. Any other failure (no CAP_NET_ADMIN) falls
/// back to the kernel version, aya's own rule.
fn tcx() -> bool {
    match SchedClassifier::query_tcx("lo", TcAttachType::Ingress) {
        Ok(_) => true,
        Err(e) if einval(&e) => false,
        Err(_) => at_least_6_6(),
    }
}

fn at_least_6_6() -> bool {
    KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0))
}

fn einval(e: &aya::programs::ProgramError) -> bool {
    matches!(e, aya::programs::ProgramError::SyscallError(s)
        if s.io_error.raw_os_error() == Some(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// The host runs a kernel newer than 6.6: every feature is there. A
    /// build that does not run as root cannot ask and skips.
    #[test]
    fn this_kernel_has_everything_the_capture_uses() {
        if !root() {
            eprintln!("skipped: the feature probe needs root");
            return;
        }
        if !at_least_6_6() {
            eprintln!("skipped: kernel older than 6.6");
            return;
        }
        let f = KernelFeatures::probe();
        assert_eq!(
            f,
            KernelFeatures {
                tcx: true,
                ringbuf: true,
                bpf_loop: true,
            }
        );
        assert!(f.missing().is_empty());
        assert!(f.fallbacks().is_empty());
    }

    #[test]
    fn missing_names_what_the_programs_need() {
        let f = KernelFeatures {
            tcx: false,
            ringbuf: false,
            bpf_loop: false,
        };
        assert_eq!(f.missing().len(), 1);
        assert_eq!(f.fallbacks().len(), 2);
        // 5.10 to 5.16: everything needed, two fallbacks.
        let f = KernelFeatures {
            tcx: false,
            ringbuf: true,
            bpf_loop: false,
        };
        assert!(f.missing().is_empty());
        assert_eq!(f.fallbacks().len(), 2);
    }
}
