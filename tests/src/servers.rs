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
