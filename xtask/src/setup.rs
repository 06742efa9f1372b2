//! Installs the build and test prerequisites; each step checks first, so a
//! second run does nothing.

pub mod deploy_tools;

use std::process::Command;

use anyhow::Result;

use crate::run;

pub(crate) mod receivers;

/// Debian packages the tests drive: real TLS peers, capture and reference tools.
const APT_PACKAGES: &[(&str, &str)] = &[
    ("openssl", "openssl"),
    ("curl", "curl"),
    ("tcpdump", "tcpdump"),
    ("tshark", "tshark"),
    ("bpftool", "bpftool"),
    ("ip", "iproute2"),
    ("nginx", "nginx-light"),
    ("ping", "iputils-ping"),
    ("ethtool", "ethtool"),
    ("setpriv", "util-linux"),
    ("python3", "python3"),
    // TLS inside other protocols: the real server and client
    // (tests/src/postgres.rs runs the server from /usr/lib/postgresql).
    ("pg_ctlcluster", "postgresql"),
    ("psql", "postgresql-client"),
    ("aiosmtpd", "python3-aiosmtpd"),
    ("tinyproxy", "tinyproxy"),
    ("vsftpd", "vsftpd"),
    ("mariadbd", "mariadb-server"),
    ("dovecot", "dovecot-imapd"),
    // dovecot-core is there with either; POP3 is its own package.
    ("/usr/lib/dovecot/pop3", "dovecot-pop3d"),
    ("slapd", "slapd"),
    ("ldapsearch", "ldap-utils"),
];

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args([
            "-c",
            &format!("command -v {cmd} >/dev/null 2>&1 || test -x /usr/sbin/{cmd}"),
        ])
        .status()
        .is_ok_and(|s| s.success())
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(cmd, _)| !have(cmd))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask setup: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing))
}

fn rust_src() -> Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", "nightly"])
        .output()?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

fn bpf_linker() -> Result<()> {
    let ok = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("0.10.4"));
    if ok {
        return Ok(());
    }
    run(Command::new("cargo").args(["install", "bpf-linker@0.10.4", "--locked", "--force"]))
}

pub fn setup() -> Result<()> {
    apt()?;
    rust_src()?;
    bpf_linker()?;
    receivers::setup()?;
    deploy_tools::install()?;
    Ok(())
}
