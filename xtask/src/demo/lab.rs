//! Everything the demo creates — network namespaces, processes, a temporary
//! folder — kept in one registry that is emptied on every way out: the
//! normal end, an error (the `Lab` guard's Drop), and Ctrl-C or SIGTERM (a
//! signal handler, since the main thread may be blocked in a wait).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tests::netns::{self, Netns};

/// Names of everything the demo makes start with this, then the owner's pid.
const PREFIX: &str = "tlsdemo";

struct Proc {
    name: String,
    child: Child,
}

#[derive(Default)]
struct Registry {
    procs: Vec<Proc>,
    namespaces: Vec<Netns>,
    dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    procs: Vec::new(),
    namespaces: Vec::new(),
    dirs: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic while holding the lock must not stop the cleanup.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn send(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a pid we spawned and have not reaped yet, so it
    // cannot have been reused by another process.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

/// SIGTERM, a moment to exit, then SIGKILL; always reaps.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    send(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Registry {
    /// Processes first (they may hold the namespaces), newest first.
    fn clean(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        while let Some(mut p) = self.procs.pop() {
            stop(&mut p.child);
        }
        while let Some(ns) = self.namespaces.pop() {
            if let Err(e) = ns.delete() {
                problems.push(format!("{e:#}"));
            }
        }
        while let Some(d) = self.dirs.pop() {
            if let Err(e) = std::fs::remove_dir_all(&d) {
                problems.push(format!("removing {}: {e}", d.display()));
            }
        }
        problems
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C or SIGTERM arrived; the handler then cleans up and exits.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn install_signal_handler() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("\ninterrupted: removing the demo's namespaces and processes");
            for p in registry().clean() {
                eprintln!("cleanup: {p}");
            }
            std::process::exit(130);
        })
        .context("installing the Ctrl-C handler");
    });
    result
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The owner's pid in a name the demo made, `tlsdemo-<pid>[-...]`.
fn owner(name: &str) -> Option<u32> {
    name.strip_prefix(&format!("{PREFIX}-"))?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Namespaces and folders left by a demo that was killed outright (SIGKILL
/// leaves no chance to clean): their owner's pid is gone.
fn remove_leftovers() -> usize {
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                let pid = owner(&n)?;
                (!pid_alive(pid)).then_some(n)
            })
            .collect()
    };
    let mut removed = 0;
    for ns in names(Path::new("/run/netns")) {
        if netns::delete(&ns).is_ok() {
            removed += 1;
        }
    }
    let tmp = std::env::temp_dir();
    for d in names(&tmp) {
        let _ = std::fs::remove_dir_all(tmp.join(d));
    }
    removed
}

/// The guard: dropping it removes everything registered.
pub struct Lab {
    tag: String,
    dir: PathBuf,
}

impl Lab {
    pub fn new() -> Result<Self> {
        install_signal_handler()?;
        let removed = remove_leftovers();
        if removed > 0 {
            eprintln!("removed {removed} network namespaces left by an interrupted demo");
        }
        let tag = format!("{PREFIX}-{}", std::process::id());
        let dir = std::env::temp_dir().join(&tag);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        // Private keys live here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        registry().dirs.push(dir.clone());
        Ok(Lab { tag, dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a network namespace named `<tag>-<short>` with loopback up.
    pub fn netns(&self, short: &str) -> Result<String> {
        let ns = Netns::create(format!("{}-{short}", self.tag))?;
        let name = ns.name.clone();
        registry().namespaces.push(ns);
        Ok(name)
    }

    fn command(&self, ns: &str, argv: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(argv)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            // Its own process group: Ctrl-C reaches only us, and we stop
            // the children in order.
            .process_group(0);
        cmd
    }

    fn register(&self, name: &str, child: Child) {
        registry().procs.push(Proc {
            name: name.to_string(),
            child,
        });
    }

    /// A long-running process in `ns` (`ip netns exec` execs it, so the pid
    /// is the program's); its output goes to `<dir>/<name>.log`.
    pub fn spawn_logged(&self, name: &str, ns: &str, argv: &[&str]) -> Result<()> {
        let log = File::create(self.log_path(name))?;
        let child = self
            .command(ns, argv, &[])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", argv.join(" ")))?;
        self.register(name, child);
        Ok(())
    }

    /// A process in `ns` whose output the caller reads.
    pub fn spawn_piped(
        &self,
        name: &str,
        ns: &str,
        argv: &[&str],
        env: &[(&str, &str)],
    ) -> Result<(ChildStdout, ChildStderr)> {
        let mut child = self
            .command(ns, argv, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", argv.join(" ")))?;
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        self.register(name, child);
        Ok((out, err))
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// The log of a process started with `spawn_logged`.
    pub fn log(&self, name: &str) -> String {
        let mut s = String::new();
        if let Ok(mut f) = File::open(self.log_path(name)) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The exit status of a registered process if it has ended.
    pub fn exited(&self, name: &str) -> Option<ExitStatus> {
        let mut r = registry();
        let p = r.procs.iter_mut().find(|p| p.name == name)?;
        p.child.try_wait().ok().flatten()
    }

    pub fn signal(&self, name: &str, signal: libc::c_int) {
        let mut r = registry();
        if let Some(p) = r.procs.iter_mut().find(|p| p.name == name)
            && matches!(p.child.try_wait(), Ok(None))
        {
            send(p.child.id(), signal);
        }
    }

    /// Waits for a registered process to end and forgets it; past the
    /// timeout it is stopped and the result is an error.
    pub fn wait(&self, name: &str, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            // The lock is released between polls so the signal handler can
            // take it.
            {
                let mut r = registry();
                let Some(i) = r.procs.iter().position(|p| p.name == name) else {
                    bail!("{name} is not running");
                };
                if let Some(status) = r.procs[i].child.try_wait()? {
                    r.procs.remove(i);
                    return Ok(status);
                }
                if Instant::now() >= deadline {
                    let mut p = r.procs.remove(i);
                    stop(&mut p.child);
                    bail!("{name} did not finish within {} s", timeout.as_secs());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Removes everything now, reporting what could not be removed.
    pub fn cleanup(&self) -> Result<()> {
        let problems = registry().clean();
        if !problems.is_empty() {
            bail!("cleanup left things behind:\n  {}", problems.join("\n  "));
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in registry().clean() {
            eprintln!("cleanup: {p}");
        }
    }
}
