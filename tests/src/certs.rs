use std::path::PathBuf;
use std::process::Command;

use crate::proc::run;

/// A small PKI made with openssl: a root, an intermediate, and leaves.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Self {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        pki.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-out",
            "root.pem",
            "-days",
            "7300",
            "-subj",
            "/CN=Test Root CA",
            "-addext",
            "basicConstraints=critical,CA:true",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        pki.write(
            "ca.ext",
            "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n",
        );
        pki.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "int.key",
            "-out",
            "int.csr",
            "-subj",
            "/CN=Test Intermediate CA",
        ]);
        pki.openssl(&[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-out",
            "int.pem",
            "-days",
            "7300",
            "-extfile",
            "ca.ext",
        ]);
        pki
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write");
    }

    fn openssl(&self, args: &[&str]) {
        run(Command::new("openssl")
            .current_dir(self.dir.path())
            .args(args));
    }

    /// A leaf `name.pem`/`name.key` for `dns` (plus `extra_sans` filler
    /// names to make it large), signed by the intermediate, or by the root
    /// when `by_root` (client certificates).
    pub fn leaf(&self, name: &str, dns: &str, extra_sans: usize, by_root: bool) {
        let mut sans = format!("DNS:{dns}");
        for i in 0..extra_sans {
            sans.push_str(&format!(",DNS:filler-{i}.example.test"));
        }
        self.write(
            &format!("{name}.ext"),
            &format!("subjectAltName={sans}\nbasicConstraints=CA:false\nextendedKeyUsage=serverAuth,clientAuth\n"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={dns}"),
        ]);
        let (ca, key) = if by_root {
            ("root.pem", "root.key")
        } else {
            ("int.pem", "int.key")
        };
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            ca,
            "-CAkey",
            key,
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3650",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }

    /// A leaf `name.pem`/`name.key` with CN `cn` and these DNS/IP SANs
    /// (`DNS:x`, `IP:y`), signed by the intermediate; `name.csr` is kept.
    pub fn leaf_sans(&self, name: &str, cn: &str, sans: &[&str]) {
        self.write(
            &format!("{name}.ext"),
            &format!(
                "subjectAltName={}\nbasicConstraints=CA:false\nextendedKeyUsage=serverAuth,clientAuth\n",
                sans.join(",")
            ),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "int.pem",
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3650",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }

    /// A self-signed leaf `name.pem`/`name.key` for `cn` (no CA involved).
    pub fn self_signed(&self, name: &str, cn: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "3650",
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            &format!("subjectAltName=DNS:{cn}"),
        ]);
    }

    /// A file of the PKI as text.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read PKI file")
    }

    /// SHA-256 of a PEM certificate's DER, lowercase hex.
    pub fn fingerprint(&self, name: &str) -> String {
        let out = run(Command::new("openssl").current_dir(self.dir.path()).args([
            "x509",
            "-in",
            name,
            "-noout",
            "-fingerprint",
            "-sha256",
        ]));
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .rsplit('=')
            .next()
            .unwrap_or_default()
            .replace(':', "")
            .to_lowercase()
    }
}
