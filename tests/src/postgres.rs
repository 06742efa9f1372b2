//! A real PostgreSQL server (Debian's `postgresql` package) in a network
//! namespace: its own data directory in a temporary folder, run as the
//! `postgres` user (the server refuses root), trust authentication from
//! anywhere, TLS with a given certificate chain or none.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::netns::Netns;
use crate::proc::checked;

/// The newest server under /usr/lib/postgresql/VERSION/bin.
pub fn bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: is the postgresql package installed?")?
        .filter_map(|e| {
            let e = e.ok()?;
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .context("no PostgreSQL server binary")
}

/// Runs a command as the `postgres` user.
fn as_postgres(program: &Path) -> Vec<String> {
    vec![
        "setpriv".into(),
        "--reuid=postgres".into(),
        "--regid=postgres".into(),
        "--init-groups".into(),
        program.display().to_string(),
    ]
}

/// TLS for the server: the certificate chain (leaf first) and key, PEM.
pub struct Tls<'a> {
    pub chain_pem: &'a [u8],
    pub key_pem: &'a [u8],
    /// `ssl_max_protocol_version`, e.g. "TLSv1.2" so the chain is in clear.
    pub max_version: &'a str,
}

/// A running server, stopped (fast shutdown) when dropped.
pub struct Postgres {
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// Makes a cluster and starts it in `ns` on `addr:port`.
    pub fn start(ns: &Netns, addr: &str, port: u16, tls: Option<Tls>) -> Result<Postgres> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("pg").tempdir()?;
        checked(
            Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()),
        )?;
        let data = dir.path().join("data");
        let initdb = as_postgres(&bin.join("initdb"));
        checked(
            Command::new(&initdb[0])
                .args(&initdb[1..])
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
                .stdout(Stdio::null()),
        )?;
        let hba = data.join("pg_hba.conf");
        let mut conf = std::fs::read_to_string(&hba)?;
        conf.push_str("host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n");
        std::fs::write(&hba, conf)?;
        let mut args: Vec<String> = vec![
            "-D".into(),
            data.display().to_string(),
            "-c".into(),
            format!("listen_addresses={addr}"),
            "-c".into(),
            format!("port={port}"),
            "-c".into(),
            format!("unix_socket_directories={}", dir.path().display()),
        ];
        match tls {
            Some(t) => {
                let (crt, key) = (data.join("server.crt"), data.join("server.key"));
                std::fs::write(&crt, t.chain_pem)?;
                std::fs::write(&key, t.key_pem)?;
                checked(Command::new("chmod").arg("600").arg(&key))?;
                checked(
                    Command::new("chown")
                        .arg("postgres:postgres")
                        .arg(&crt)
                        .arg(&key),
                )?;
                args.extend([
                    "-c".into(),
                    "ssl=on".into(),
                    "-c".into(),
                    format!("ssl_max_protocol_version={}", t.max_version),
                ]);
            }
            None => args.extend(["-c".into(), "ssl=off".into()]),
        }
        let run = as_postgres(&bin.join("postgres"));
        let child = ns
            .cmd(&run[0])
            .args(&run[1..])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting postgres")?;
        let pg = Postgres {
            child: Some(child),
            _dir: dir,
        };
        ns.listening(port)?;
        Ok(pg)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SIGINT is PostgreSQL's fast shutdown: backends end with it.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// `psql` in `ns` against `addr:port` with `sslmode` (require, disable,
/// prefer...): runs one query, fails unless it succeeds.
pub fn psql(ns: &Netns, addr: &str, port: u16, sslmode: &str) -> Result<String> {
    let out = ns
        .cmd("timeout")
        .args(["20", "psql", "-X", "-At", "-c", "select 1"])
        .arg(format!(
            "host={addr} port={port} user=postgres dbname=postgres sslmode={sslmode}"
        ))
        .stdin(Stdio::null())
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
