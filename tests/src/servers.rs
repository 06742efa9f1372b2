//! Configuration of the Debian servers that both the live tests and the
//! fixtures recorder (xtask) run, so the two drive the same server.

use std::path::Path;

/// vsftpd in the foreground on `addr`:21, anonymous, AUTH TLS with `cert`
/// (leaf first, then its chain) and `key`. Its default ssl_ciphers is
/// DES-CBC3-SHA alone, and it asks for a client certificate unless told
/// not to; both are overridden.
pub fn vsftpd_conf(addr: &str, cert: &Path, key: &Path) -> String {
    format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address={addr}\nbackground=NO\n\
         anonymous_enable=YES\nlocal_enable=NO\nssl_enable=YES\n\
         allow_anon_ssl=YES\nforce_anon_logins_ssl=NO\nforce_anon_data_ssl=NO\n\
         rsa_cert_file={}\nrsa_private_key_file={}\n\
         ssl_ciphers=HIGH\nssl_request_cert=NO\nsecure_chroot_dir={VSFTPD_EMPTY}\n",
        cert.display(),
        key.display()
    )
}

/// The directory vsftpd chroots into, which its package makes.
pub const VSFTPD_EMPTY: &str = "/var/run/vsftpd/empty";

/// dovecot (`dovecot -F -c`) on `addr`, IMAP on 143 and POP3 on 110 with
/// STARTTLS/STLS from `cert` (leaf first, then its chain) and `key`, TLS
/// 1.2 at least; its implicit-TLS listeners off. Every path it writes is
/// under `dir`; any user logs in without a password.
pub fn dovecot_conf(addr: &str, dir: &Path, cert: &Path, key: &Path) -> String {
    let d = dir.display();
    format!(
        "protocols = imap pop3\n\
         listen = {addr}\n\
         base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         log_path = {d}/dovecot.log\n\
         ssl = yes\n\
         ssl_cert = <{cert}\n\
         ssl_key = <{key}\n\
         ssl_min_protocol = TLSv1.2\n\
         mail_location = mbox:{d}/mail\n\
         passdb {{\n  driver = static\n  args = nopassword=y\n}}\n\
         userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/home\n}}\n\
         service imap-login {{\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
         service pop3-login {{\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n",
        cert = cert.display(),
        key = key.display(),
    )
}

/// slapd (`slapd -d 0 -h ldap://addr/ -f`) with no database (clients read
/// the root DSE), StartTLS with `cert` and `key`, which must be PKCS#8
/// ([`pkcs8`]); pid and args files under `dir`. Debian's slapd uses
/// GnuTLS: its priority string keeps TLS 1.3 out so the chain is in clear.
pub fn slapd_conf(dir: &Path, cert: &Path, key: &Path) -> String {
    let d = dir.display();
    format!(
        "include /etc/ldap/schema/core.schema\n\
         pidfile {d}/slapd.pid\n\
         argsfile {d}/slapd.args\n\
         TLSCertificateFile {cert}\n\
         TLSCertificateKeyFile {key}\n\
         TLSCipherSuite NORMAL:-VERS-TLS1.3\n",
        cert = cert.display(),
        key = key.display(),
    )
}

/// tinyproxy (`tinyproxy -d -c`) on `addr`:3128 for clients in `allow` (a
/// CIDR), CONNECT to port 443 only.
pub fn tinyproxy_conf(addr: &str, allow: &str) -> String {
    format!(
        "Port 3128\nListen {addr}\nAllow {allow}\nConnectPort 443\n\
         Timeout 20\nLogLevel Info\nMaxClients 4\n"
    )
}

/// `key` rewritten as PKCS#8 to `out`: MariaDB and slapd do not take an
/// EC key with an EC PARAMETERS block before it.
pub fn pkcs8(key: &Path, out: &Path) -> anyhow::Result<()> {
    crate::proc::checked(
        std::process::Command::new("openssl")
            .arg("pkey")
            .arg("-in")
            .arg(key)
            .arg("-out")
            .arg(out),
    )?;
    Ok(())
}

/// A MariaDB server's directory `dir`: `server.crt` (a copy of `cert`),
/// `server.key` (`key` as PKCS#8) and a fresh `data` directory, all owned
/// by the mysql user (mariadbd refuses to run as root).
pub fn mariadb_prepare(dir: &Path, cert: &Path, key: &Path) -> anyhow::Result<()> {
    use std::process::{Command, Stdio};
    std::fs::create_dir_all(dir)?;
    std::fs::copy(cert, dir.join("server.crt"))?;
    pkcs8(key, &dir.join("server.key"))?;
    crate::proc::checked(Command::new("chown").arg("-R").arg("mysql:mysql").arg(dir))?;
    crate::proc::checked(
        Command::new("mariadb-install-db")
            .args(["--user=mysql", "--skip-test-db"])
            .arg(format!("--datadir={}", dir.join("data").display()))
            .stdout(Stdio::null()),
    )?;
    Ok(())
}

/// mariadbd's arguments for `addr`:3306 with the directory
/// [`mariadb_prepare`] made. Without grant tables no host is turned away
/// before the greeting (the client has no account). It stops on SIGTERM
/// (or SIGKILL); SIGINT it ignores.
pub fn mariadbd_args(addr: &str, dir: &Path) -> Vec<String> {
    let p = |name: &str| dir.join(name).display().to_string();
    vec![
        "--no-defaults".into(),
        "--user=mysql".into(),
        "--port=3306".into(),
        "--skip-grant-tables".into(),
        format!("--bind-address={addr}"),
        format!("--datadir={}", p("data")),
        format!("--socket={}", p("sock")),
        format!("--pid-file={}", p("pid")),
        format!("--ssl-cert={}", p("server.crt")),
        format!("--ssl-key={}", p("server.key")),
    ]
}

/// slapd's arguments, in the foreground (a child stopped by pid), for
/// `ldap://addr/` and the configuration file `conf`.
pub fn slapd_args(addr: &str, conf: &Path) -> Vec<String> {
    vec![
        "-d".into(),
        "0".into(),
        "-h".into(),
        format!("ldap://{addr}/"),
        "-f".into(),
        conf.display().to_string(),
    ]
}
