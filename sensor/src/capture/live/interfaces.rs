use std::os::fd::{AsRawFd, RawFd};

use globset::{Glob, GlobSet, GlobSetBuilder};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::error::LiveError;

/// Which interfaces to watch: explicit names, or every interface of the
/// host namespace but loopback, narrowed by include/exclude globs.
#[derive(Debug, Clone)]
pub struct InterfaceFilter {
    explicit: Vec<String>,
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

fn globs(patterns: &[String]) -> Result<Option<GlobSet>, LiveError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| LiveError::Pattern {
            pattern: p.clone(),
            reason: e.to_string(),
        })?);
    }
    b.build().map(Some).map_err(|e| LiveError::Pattern {
        pattern: patterns.join(","),
        reason: e.to_string(),
    })
}

impl InterfaceFilter {
    pub fn new(
        explicit: Vec<String>,
        include: &[String],
        exclude: &[String],
    ) -> Result<Self, LiveError> {
        Ok(Self {
            explicit,
            include: globs(include)?,
            exclude: globs(exclude)?,
        })
    }

    pub fn wants(&self, name: &str) -> bool {
        if !self.explicit.is_empty() {
            return self.explicit.iter().any(|e| e == name);
        }
        if name == "lo" {
            return false;
        }
        if self.include.as_ref().is_some_and(|g| !g.is_match(name)) {
            return false;
        }
        !self.exclude.as_ref().is_some_and(|g| g.is_match(name))
    }
}

/// Interfaces of this network namespace with whether they carry an
/// Ethernet header (loopback does; tun and WireGuard do not), oldest
/// first: by interface index, which the kernel hands out in order.
pub fn list_interfaces() -> std::io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/class/net")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let read =
            |file: &str| std::fs::read_to_string(entry.path().join(file)).unwrap_or_default();
        // ARPHRD_ETHER = 1, ARPHRD_LOOPBACK = 772: both have a 14-byte header in TC.
        let ethernet = matches!(read("type").trim(), "1" | "772");
        let index: u32 = read("ifindex").trim().parse().unwrap_or(u32::MAX);
        out.push((index, name, ethernet));
    }
    out.sort();
    Ok(out.into_iter().map(|(_, n, e)| (n, e)).collect())
}

const RTMGRP_LINK: u32 = 1;

/// Wakes up when links appear, vanish or change (rtnetlink RTMGRP_LINK).
/// Messages are not decoded: any of them triggers a rescan of
/// /sys/class/net, which is the one source of truth.
pub struct LinkWatcher {
    socket: Socket,
}

impl LinkWatcher {
    pub fn new() -> std::io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        socket.set_non_blocking(true)?;
        // Room for a burst (a node creating pods' veths by the dozen): an
        // overflow is survived (see `drain`), but each costs a rescan.
        // The kernel caps it at net.core.rmem_max; a smaller buffer is fine.
        let _ = socket.set_rx_buf_sz(1 << 20);
        Ok(Self { socket })
    }

    /// Reads every pending notification; true when there was any, or when
    /// the kernel dropped some (ENOBUFS: the socket's buffer overflowed).
    /// Either way the caller rescans: a dropped notification is a change
    /// nobody would hear of again. Stopping at ENOBUFS instead, as this
    /// once did, left the rest of the queue unread and the readiness
    /// cleared, so a burst of 50 veth pairs got about a third of its
    /// interfaces attached and no more.
    pub fn drain(&self) -> bool {
        let mut any = false;
        let mut buf = vec![0u8; 16384];
        loop {
            match self.socket.recv(&mut &mut buf[..], 0) {
                Ok(0) => break,
                Ok(_) => any = true,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // WouldBlock: nothing more for now.
                Err(_) => break,
            }
        }
        any
    }
}

impl AsRawFd for LinkWatcher {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
