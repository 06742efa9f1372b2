//! Network namespaces, the veths between them and tcpdump on those veths,
//! for the tests, `cargo xtask demo` and `cargo xtask record-fixtures`.
//! What is created here goes on drop, also when a test or a recording fails.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::proc::{checked, run};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// `ip -n NS ARGS...`
pub fn ip(ns: &str, args: &[&str]) -> Result<()> {
    checked(Command::new("ip").args(["-n", ns]).args(args)).map(drop)
}

/// A short command's standard output, run in `ns`.
pub fn output(ns: &str, argv: &[&str]) -> Result<String> {
    let out = checked(Command::new("ip").args(["netns", "exec", ns]).args(argv))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Kills what is left in a namespace (only what its owner started runs
/// there), then deletes it, which also removes its end of every veth.
pub fn delete(ns: &str) -> Result<()> {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<libc::pid_t>() {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    checked(Command::new("ip").args(["netns", "delete", ns])).map(drop)
}

/// A network namespace with loopback up, deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        checked(Command::new("ip").args(["netns", "add", &name]))?;
        // From here on, drop deletes it.
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A namespace whose name carries `tag`, the pid and a counter, so that
    /// tests running at once never collide.
    pub fn new(tag: &str) -> Self {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        Self::create(format!("ts{tag}{}x{n}", std::process::id() % 100_000))
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// A command run inside the namespace; `ip netns exec` execs the
    /// program, so the child's pid is the program's.
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    pub fn ip(&self, args: &[&str]) -> Result<()> {
        ip(&self.name, args)
    }

    pub fn sh(&self, script: &str) -> Output {
        run(self.cmd("sh").args(["-c", script]))
    }

    /// Moves the calling thread (and the threads it starts afterwards)
    /// into this namespace; setns affects that thread only.
    pub fn enter(&self) {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(format!("/run/netns/{}", self.name)).expect("netns file");
        // SAFETY: setns on a namespace file we hold open; this thread only.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
    }

    /// Runs `f` on a thread of its own inside this namespace.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter();
                f()
            })
            .join()
            .expect("netns thread")
        })
    }

    /// [`Netns::sh`]'s standard output as text.
    pub fn sh_out(&self, script: &str) -> String {
        String::from_utf8_lossy(&self.sh(script).stdout).into_owned()
    }

    /// Waits up to 10 s until something listens on TCP `port` here.
    pub fn listening(&self, port: u16) -> Result<()> {
        let deadline = Instant::now() + crate::patience(Duration::from_secs(10));
        loop {
            let out = self
                .cmd("ss")
                .args(["-Hltn", &format!("sport = :{port}")])
                .output()
                .context("running ss")?;
            if !out.stdout.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("nothing listens on port {port} in {} after 10 s", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_listen(&self, port: u16) {
        self.listening(port).unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// Deletes it now, saying what went wrong.
    pub fn delete(self) -> Result<()> {
        let name = std::mem::take(&mut std::mem::ManuallyDrop::new(self).name);
        delete(&name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = delete(&self.name);
    }
}

/// One end of a [`Pair`].
pub struct End<'a> {
    pub ns: Netns,
    pub iface: &'a str,
    pub v4: &'a str,
    pub v6: &'a str,
}

/// Two namespaces joined by a veth.
pub struct Pair {
    pub client: Netns,
    pub server: Netns,
    pub client_if: String,
    pub server_if: String,
}

pub const CLIENT4: &str = "10.77.0.1";
pub const SERVER4: &str = "10.77.0.2";
pub const CLIENT6: &str = "fd77::1";
pub const SERVER6: &str = "fd77::2";

impl Pair {
    /// The veth with a /24 and a /64 on each end; `one_segment`: GSO off,
    /// so a capture shows the packets a real wire would carry instead of
    /// 64 KB super-packets.
    pub fn join(client: End, server: End, one_segment: bool) -> Result<Self> {
        let gso: &[&str] = if one_segment {
            &["gso_max_segs", "1"]
        } else {
            &[]
        };
        checked(
            Command::new("ip")
                .args(["link", "add", client.iface, "netns", &client.ns.name])
                .args(gso)
                .args(["type", "veth", "peer", "name", server.iface])
                .args(["netns", &server.ns.name])
                .args(gso),
        )?;
        for end in [&client, &server] {
            end.ns
                .ip(&["addr", "add", &format!("{}/24", end.v4), "dev", end.iface])?;
            // nodad: the address is usable at once instead of after duplicate detection.
            let v6 = format!("{}/64", end.v6);
            end.ns
                .ip(&["addr", "add", &v6, "dev", end.iface, "nodad"])?;
            end.ns.ip(&["link", "set", end.iface, "up"])?;
        }
        Ok(Pair {
            client_if: client.iface.to_string(),
            server_if: server.iface.to_string(),
            client: client.ns,
            server: server.ns,
        })
    }

    /// The tests' pair: the sensor watches the client's end, as it watches
    /// a pod's veth on a node.
    pub fn new(tag: &str) -> Self {
        let end = |iface, v4, v6| End {
            ns: Netns::new(tag),
            iface,
            v4,
            v6,
        };
        Self::join(
            end("vc0", CLIENT4, CLIENT6),
            end("vs0", SERVER4, SERVER6),
            false,
        )
        .unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn set_mtu(&self, mtu: u32) -> Result<()> {
        let mtu = mtu.to_string();
        self.client
            .ip(&["link", "set", &self.client_if, "mtu", &mtu])?;
        self.server
            .ip(&["link", "set", &self.server_if, "mtu", &mtu])
    }

    pub fn mtu(&self, mtu: u32) {
        self.set_mtu(mtu).unwrap_or_else(|e| panic!("{e:#}"));
    }
}

/// tcpdump writing every TCP packet on an interface of a namespace to a
/// file as it comes (the last connection is not lost); killed on drop.
pub struct Tcpdump {
    child: Option<Child>,
    log: tempfile::NamedTempFile,
}

impl Tcpdump {
    /// Returns once tcpdump captures.
    pub fn start(ns: &Netns, iface: &str, file: &Path) -> Result<Self> {
        Self::start_with(ns, iface, file, &["-s", "0"])
    }

    /// Headers only (the first 128 bytes of each packet) into a 64 MiB
    /// buffer: what a bulk transfer needs for its counts (tshark's
    /// `tcp.len` comes from the IP header), without tcpdump falling behind
    /// and the kernel dropping packets it should capture.
    pub fn start_headers(ns: &Netns, iface: &str, file: &Path) -> Result<Self> {
        Self::start_with(ns, iface, file, &["-s", "128", "-B", "65536"])
    }

    fn start_with(ns: &Netns, iface: &str, file: &Path, extra: &[&str]) -> Result<Self> {
        let log = tempfile::NamedTempFile::new()?;
        let child = ns
            .cmd("tcpdump")
            // -Z root: keep writing to a file owned by the caller; immediate
            // mode: TPACKET_V3 would otherwise hold packets in a block that a
            // stop can discard.
            .args(["-Z", "root", "--immediate-mode", "-U"])
            .args(extra)
            .args(["-i", iface])
            .arg("-w")
            .arg(file)
            .arg("tcp")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen()?)
            .spawn()
            .context("starting tcpdump")?;
        let mut t = Tcpdump {
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + crate::patience(Duration::from_secs(10));
        while !t.log_text().contains("listening on") {
            if let Some(status) = t.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("tcpdump exited ({status}): {}", t.log_text());
            }
            if Instant::now() > deadline {
                bail!("tcpdump did not start within 10 s: {}", t.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(t)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// SIGINT, on which tcpdump flushes and closes its file; SIGKILL and an
    /// error when it has not exited cleanly within 10 s.
    pub fn stop(mut self) -> Result<()> {
        let mut child = self.child.take().expect("running until stopped");
        // SAFETY: signalling our own child, not reaped yet.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        let deadline = Instant::now() + crate::patience(Duration::from_secs(10));
        loop {
            if let Some(status) = child.try_wait()? {
                if !status.success() {
                    bail!("tcpdump exited with {status}: {}", self.log_text());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("tcpdump did not stop within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
