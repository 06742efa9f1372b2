//! Keeps the programs attached to the wanted interfaces as links come and
//! go, on a thread of its own. A TCX attach waits for an RCU grace period
//! under the kernel's RTNL lock (10–30 ms a program): on the run loop, a
//! burst of new pods' veths would stop the ring buffer being read for
//! seconds, and the ring would overflow under the traffic of the pods
//! already attached.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

use super::attach::Attacher;
use super::interfaces::{InterfaceFilter, LinkWatcher, list_interfaces};

/// Told how many interfaces are attached after every change.
pub type OnAttached = Box<dyn Fn(usize) + Send>;

/// The thread that follows the links; dropping it detaches everything.
pub struct Follower {
    /// Closing our end wakes the thread: it detaches and ends.
    stop: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Attaches to every wanted interface present before it returns, then
    /// follows link changes on its thread.
    pub fn start(
        mut attacher: Attacher,
        filter: InterfaceFilter,
        on_attached: OnAttached,
    ) -> io::Result<Self> {
        // Subscribed before the first listing, so a link that appears
        // between the two is heard of.
        let links = LinkWatcher::new()?;
        let mut refused = BTreeSet::new();
        reconcile(&mut attacher, &filter, &mut refused);
        let n = attacher.attached().count();
        on_attached(n);
        if n == 0 {
            tracing::warn!("no interface matched; waiting for one to appear");
        }
        let (ours, theirs) = UnixStream::pair()?;
        let thread = std::thread::Builder::new()
            .name("attach".into())
            .spawn(move || {
                while wait(&links, &theirs) {
                    if links.drain() {
                        reconcile(&mut attacher, &filter, &mut refused);
                        on_attached(attacher.attached().count());
                    }
                }
                attacher.detach_all();
            })?;
        Ok(Self {
            stop: Some(ours),
            thread: Some(thread),
        })
    }

    /// Detaches from every interface and ends the thread.
    pub fn stop(self) {}
}

impl Drop for Follower {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Blocks until a link changes (true) or the stop end closes (false).
fn wait(links: &LinkWatcher, stop: &UnixStream) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: links.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: `fds` is an array of two initialised pollfd for this call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        // Nothing is ever written to the stop socket: readable means closed.
        return fds[1].revents == 0;
    }
}

/// Attaches to every wanted interface present, oldest first (a burst is
/// attached in the order its links were made), and detaches from vanished
/// ones. An interface that refuses is logged once and retried on the next
/// link change.
fn reconcile(attacher: &mut Attacher, filter: &InterfaceFilter, refused: &mut BTreeSet<String>) {
    let present = match list_interfaces() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("listing interfaces: {e}");
            return;
        }
    };
    let names: BTreeSet<&str> = present.iter().map(|(n, _)| n.as_str()).collect();
    let gone: Vec<String> = attacher
        .attached()
        .filter(|a| !names.contains(a))
        .map(String::from)
        .collect();
    for g in gone {
        tracing::info!(interface = %g, "interface gone, detached");
        attacher.detach(&g);
    }
    refused.retain(|r| names.contains(r.as_str()));
    for (name, ethernet) in &present {
        if !filter.wants(name) || attacher.is_attached(name) {
            continue;
        }
        match attacher.attach(name, *ethernet) {
            Ok(()) => tracing::info!(interface = %name, ethernet, "attached"),
            Err(e) => {
                if refused.insert(name.clone()) {
                    tracing::warn!("{e}");
                }
            }
        }
    }
}
