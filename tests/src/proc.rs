use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs a command to completion; panics with its output when it fails.
pub fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command to completion; an error with its output when it fails.
pub fn checked(cmd: &mut Command) -> anyhow::Result<Output> {
    use anyhow::Context;
    let shown = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("starting {shown}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{shown} failed: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

pub fn sh(script: &str) -> Output {
    run(Command::new("sh").args(["-c", script]))
}

/// A child process killed and reaped when dropped, whatever the test did.
pub struct Reaped(pub Child);

impl Reaped {
    pub fn spawn(cmd: &mut Command) -> Self {
        let shown = format!("{cmd:?}");
        Reaped(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("starting {shown}: {e}")),
        )
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// SIGINT, then waits for the exit (up to `limit`, then SIGKILL).
    pub fn interrupt(mut self, limit: Duration) -> Output {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), libc::SIGINT) };
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().expect("true"));
        child.wait_with_output().expect("wait")
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A sensor (or anything) whose stderr is watched line by line while its
/// stdout is collected.
pub struct Watched {
    pub child: Reaped,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Watched {
    /// Stdout goes to `stdout` (a file: a pipe nobody reads would stall a
    /// chatty child), stderr is read line by line.
    pub fn spawn(cmd: &mut Command, stdout: std::fs::File) -> Self {
        let mut child = Reaped::spawn(cmd.stdout(stdout).stderr(Stdio::piped()));
        let stderr = child.0.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) {
        let limit = crate::patience(limit);
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = l.contains(needle);
                self.seen.push(l);
                if hit {
                    return;
                }
            }
        }
        panic!(
            "no stderr line with {needle:?} within {limit:?}; got:\n{}",
            self.seen.join("\n")
        );
    }

    /// Stops with SIGINT; returns all stderr lines. Stdout is in the file given to `spawn`.
    pub fn stop(mut self) -> Vec<String> {
        let out = std::mem::replace(&mut self.child, Reaped::spawn(&mut Command::new("true")));
        let output = out.interrupt(crate::patience(Duration::from_secs(20)));
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        assert!(
            output.status.success(),
            "sensor exited with {}; stderr:\n{}",
            output.status,
            self.seen.join("\n")
        );
        self.seen
    }
}
