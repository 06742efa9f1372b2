//! How the kernel programs reach traffic. Today: TC classifiers on ingress
//! and egress of network interfaces, as TCX links where the kernel has
//! them, else filters under a clsact qdisc. Another attach point (cgroup
//! sockets through cgroup_skb) is another variant of `Attach`, with its
//! own programs and targets.

use std::collections::BTreeMap;
use std::str::FromStr;

use aya::Ebpf;
use aya::programs::tc::{NlOptions, SchedClassifierLinkId, TcAttachOptions, TcAttachType};
use aya::programs::{LinkOrder, ProgramError, SchedClassifier, tc};

use super::error::LiveError;
use super::features::KernelFeatures;

/// The attach the operator asks for; `Auto` lets the features decide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AttachMode {
    #[default]
    Auto,
    Tcx,
    Clsact,
}

impl FromStr for AttachMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "tcx" => Ok(Self::Tcx),
            "clsact" => Ok(Self::Clsact),
            _ => Err(format!("{s:?} is not one of auto, tcx, clsact")),
        }
    }
}

/// How the classifiers are attached to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// TCX links (Linux 6.6+): no qdisc, and the links go with the process.
    Tcx,
    /// A clsact qdisc (added when missing, left in place) with one
    /// direct-action filter per direction, through netlink.
    Clsact,
}

impl Attach {
    /// The attach for `mode` on a kernel with `features`. Asking for TCX
    /// on a kernel without it is an error, not a silent fallback.
    pub fn choose(mode: AttachMode, features: &KernelFeatures) -> Result<Self, LiveError> {
        match mode {
            AttachMode::Auto if features.tcx => Ok(Self::Tcx),
            AttachMode::Auto | AttachMode::Clsact => Ok(Self::Clsact),
            AttachMode::Tcx if features.tcx => Ok(Self::Tcx),
            AttachMode::Tcx => Err(LiveError::Load(
                "attach mode tcx asked for, but this kernel has no TCX links (Linux 6.6+)".into(),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
        }
    }

    /// Once per interface, before its first program.
    fn prepare(self, interface: &str) -> Result<(), String> {
        match self {
            Self::Tcx => Ok(()),
            Self::Clsact => match tc::qdisc_add_clsact(interface) {
                Ok(()) | Err(tc::TcError::AlreadyAttached) => Ok(()),
                // The qdisc is there already (ours from a previous run, or
                // another agent's): aya asks with NLM_F_EXCL, so the kernel
                // answers EEXIST ("Exclusivity flag on, cannot modify").
                Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {
                    Ok(())
                }
                Err(e) => Err(format!("adding clsact: {e}")),
            }
            .map(|()| {
                remove_stale_filters(interface);
            }),
        }
    }

    fn attach_one(
        self,
        prog: &mut SchedClassifier,
        interface: &str,
        direction: TcAttachType,
    ) -> Result<SchedClassifierLinkId, ProgramError> {
        let options = match self {
            Self::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
            Self::Clsact => TcAttachOptions::Netlink(NlOptions::default()),
        };
        prog.attach_with_options(interface, direction, options)
    }
}

/// Program, link layer (true: Ethernet) and direction: one pair of
/// programs per kind of device.
pub(super) const PROGRAMS: [(&str, bool, TcAttachType); 4] = [
    ("tls_tc_eth", true, TcAttachType::Ingress),
    ("tls_tc_eth_egress", true, TcAttachType::Egress),
    ("tls_tc_l3", false, TcAttachType::Ingress),
    ("tls_tc_l3_egress", false, TcAttachType::Egress),
];

/// Removes filters named after our programs from `interface`'s clsact
/// hooks: a sensor killed with SIGKILL (or OOM-killed) never detaches, and
/// unlike TCX links its filters outlive it: without this every restart
/// would stack one more copy of the programs, each packet would run every
/// copy, and each dead copy would keep its maps (the ring buffer, the flow
/// tables) in kernel memory for nobody. One sensor runs per node (a
/// DaemonSet), so a filter of that name is a previous run's. Returns how
/// many programs had filters left.
fn remove_stale_filters(interface: &str) -> usize {
    let mut removed = 0;
    for (name, _, direction) in PROGRAMS {
        // aya removes every filter of that name on that hook at once.
        match tc::qdisc_detach_program(interface, direction, name) {
            Ok(()) => removed += 1,
            // None there: the usual case.
            Err(tc::TcError::IoError(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Attaching goes on: the new filters work whatever the old
            // ones do, and the warning says why packets may come twice.
            Err(e) => tracing::warn!(
                interface,
                program = name,
                error = %e,
                "could not remove a previous run's filter"
            ),
        }
    }
    if removed > 0 {
        tracing::info!(
            interface,
            removed,
            "removed the clsact filters of a previous sensor (killed before it could detach)"
        );
    }
    removed
}

/// The loaded programs and where they are attached, by interface. It owns
/// the object's programs (its maps were taken out by `Programs`) so that
/// it can live on a thread of its own: see `follow`.
pub struct Attacher {
    ebpf: Ebpf,
    how: Attach,
    links: BTreeMap<String, Vec<(&'static str, SchedClassifierLinkId)>>,
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier, String> {
    ebpf.program_mut(name)
        .ok_or_else(|| format!("{name} missing"))?
        .try_into()
        .map_err(|e: ProgramError| e.to_string())
}

impl Attacher {
    pub(super) fn new(ebpf: Ebpf, how: Attach) -> Self {
        Self {
            ebpf,
            how,
            links: BTreeMap::new(),
        }
    }

    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.links.keys().map(String::as_str)
    }

    pub fn is_attached(&self, interface: &str) -> bool {
        self.links.contains_key(interface)
    }

    /// Attaches on ingress and egress; all or nothing.
    pub fn attach(&mut self, interface: &str, ethernet: bool) -> Result<(), LiveError> {
        if self.is_attached(interface) {
            return Ok(());
        }
        let err = |reason: String| LiveError::Attach {
            interface: interface.to_string(),
            reason,
        };
        self.how.prepare(interface).map_err(err)?;
        let mut links = Vec::new();
        for (name, eth, direction) in PROGRAMS {
            if eth != ethernet {
                continue;
            }
            let attached = classifier(&mut self.ebpf, name).and_then(|prog| {
                self.how
                    .attach_one(prog, interface, direction)
                    .map_err(|e| e.to_string())
            });
            match attached {
                Ok(id) => links.push((name, id)),
                Err(e) => {
                    for (n, id) in links {
                        detach_one(&mut self.ebpf, n, id);
                    }
                    return Err(err(e));
                }
            }
        }
        self.links.insert(interface.to_string(), links);
        Ok(())
    }

    pub fn detach(&mut self, interface: &str) {
        if let Some(links) = self.links.remove(interface) {
            for (name, id) in links {
                detach_one(&mut self.ebpf, name, id);
            }
        }
    }

    pub fn detach_all(&mut self) {
        let names: Vec<String> = self.links.keys().cloned().collect();
        for n in names {
            self.detach(&n);
        }
    }
}

impl Drop for Attacher {
    fn drop(&mut self) {
        self.detach_all();
    }
}

fn detach_one(ebpf: &mut Ebpf, name: &str, id: SchedClassifierLinkId) {
    if let Ok(prog) = classifier(ebpf, name) {
        // The interface may be gone already, and its links with it.
        let _ = prog.detach(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: KernelFeatures = KernelFeatures {
        tcx: true,
        ringbuf: true,
        bpf_loop: true,
    };
    const NO_TCX: KernelFeatures = KernelFeatures { tcx: false, ..ALL };

    #[test]
    fn auto_follows_the_kernel_and_a_forced_mode_wins() {
        let pick = |m, f| Attach::choose(m, &f).ok();
        assert_eq!(pick(AttachMode::Auto, ALL), Some(Attach::Tcx));
        assert_eq!(pick(AttachMode::Auto, NO_TCX), Some(Attach::Clsact));
        assert_eq!(pick(AttachMode::Clsact, ALL), Some(Attach::Clsact));
        assert_eq!(pick(AttachMode::Tcx, ALL), Some(Attach::Tcx));
        assert_eq!(pick(AttachMode::Tcx, NO_TCX), None);
    }

    #[test]
    fn modes_parse_from_their_names() {
        for (s, m) in [
            ("auto", AttachMode::Auto),
            ("tcx", AttachMode::Tcx),
            ("clsact", AttachMode::Clsact),
        ] {
            assert_eq!(s.parse::<AttachMode>(), Ok(m));
        }
        assert!("tc".parse::<AttachMode>().is_err());
    }
}
