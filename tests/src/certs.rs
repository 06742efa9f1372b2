//! The test PKI, made with `openssl ca` so that each certificate's key,
//! serial, validity, digest and extensions are the caller's choice: the
//! tests' throw-away CAs (`Pki`), `cargo xtask demo` and the committed
//! fixture certificates of `cargo xtask record-fixtures` all come from
//! [`Ca::issue`].

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::proc::checked;

pub enum Key {
    Rsa(u32),
    /// A named curve, `P-256`.
    Ec(&'static str),
}

pub enum Validity<'a> {
    /// From now on.
    Days(u32),
    /// `openssl ca` dates, `YYYYMMDDHHMMSSZ`: backdated and expired
    /// certificates, and dates that do not move with the clock.
    Between(&'a str, &'a str),
}

/// One certificate to issue.
pub struct Spec<'a> {
    /// File stem of its `.pem`, `.key` and `.csr`, and how later
    /// certificates name it as their issuer.
    pub name: &'a str,
    /// `openssl req -subj` form, most significant RDN first; kept in order.
    pub subject: &'a str,
    pub key: Key,
    /// `None`: self-signed.
    pub issuer: Option<&'a str>,
    /// Hex of the serial number's content octets; `None`: a random one.
    pub serial: Option<&'a str>,
    pub validity: Validity<'a>,
    pub digest: &'a str,
    /// Lines of its extension section (openssl x509v3_config).
    pub extensions: &'a str,
}

impl<'a> Spec<'a> {
    /// Self-signed, RSA 2048, SHA-256, a random serial, valid a year from now.
    pub fn new(name: &'a str, subject: &'a str, extensions: &'a str) -> Self {
        Spec {
            name,
            subject,
            key: Key::Rsa(2048),
            issuer: None,
            serial: None,
            validity: Validity::Days(365),
            digest: "sha256",
            extensions,
        }
    }

    pub fn signed_by(self, issuer: &'a str) -> Self {
        Spec {
            issuer: Some(issuer),
            ..self
        }
    }

    pub fn key(self, key: Key) -> Self {
        Spec { key, ..self }
    }

    pub fn valid(self, validity: Validity<'a>) -> Self {
        Spec { validity, ..self }
    }
}

/// What `openssl req -x509` puts in a self-signed certificate with the
/// default configuration (its `v3_ca` section).
pub const SELF_SIGNED_EXTENSIONS: &str = "subjectKeyIdentifier = hash\n\
    authorityKeyIdentifier = keyid:always\n\
    basicConstraints = critical, CA:TRUE\n";

/// A root CA made the way `openssl req -x509` makes one.
pub const ROOT_CA_EXTENSIONS: &str = "subjectKeyIdentifier = hash\n\
    authorityKeyIdentifier = keyid:always\n\
    basicConstraints = critical, CA:TRUE\n\
    keyUsage = critical, keyCertSign, cRLSign\n";

/// A certificate authority in a folder: its database, the CSRs and the
/// extension files in `db`, certificates in `certs`, keys in `keys`.
pub struct Ca {
    db: PathBuf,
    certs: PathBuf,
    keys: PathBuf,
}

impl Ca {
    pub fn new(db: &Path, certs: &Path, keys: &Path) -> Result<Self> {
        for d in [&db.join("new"), certs, keys] {
            fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        fs::write(db.join("index.txt"), "")?;
        fs::write(
            db.join("ca.cnf"),
            format!(
                "[ca]\ndefault_ca = kit\n\
                 [kit]\n\
                 database = {db}/index.txt\n\
                 new_certs_dir = {db}/new\n\
                 serial = {db}/serial\n\
                 default_md = sha256\n\
                 policy = any\n\
                 unique_subject = no\n\
                 email_in_dn = no\n\
                 copy_extensions = none\n\
                 [any]\n\
                 countryName = optional\n\
                 organizationName = optional\n\
                 organizationalUnitName = optional\n\
                 commonName = supplied\n\
                 searchGuide = optional\n\
                 subjectAltName = optional\n",
                db = db.display(),
            ),
        )?;
        Ok(Ca {
            db: db.to_path_buf(),
            certs: certs.to_path_buf(),
            keys: keys.to_path_buf(),
        })
    }

    /// Everything in one folder.
    pub fn in_dir(dir: &Path) -> Result<Self> {
        Self::new(dir, dir, dir)
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.certs.join(format!("{name}.pem"))
    }

    pub fn key(&self, name: &str) -> PathBuf {
        self.keys.join(format!("{name}.key"))
    }

    pub fn csr(&self, name: &str) -> PathBuf {
        self.db.join(format!("{name}.csr"))
    }

    /// Makes the key, the CSR and the certificate of `s`; its issuer must
    /// have been issued before.
    pub fn issue(&self, s: &Spec) -> Result<()> {
        self.issue_inner(s)
            .with_context(|| format!("certificate {}", s.name))
    }

    fn issue_inner(&self, s: &Spec) -> Result<()> {
        let key = self.key(s.name);
        let mut genkey = Command::new("openssl");
        genkey.arg("genpkey").arg("-out").arg(&key);
        match s.key {
            Key::Rsa(bits) => genkey.args([
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &format!("rsa_keygen_bits:{bits}"),
            ]),
            Key::Ec(curve) => genkey.args([
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
                "-pkeyopt",
                "ec_param_enc:named_curve",
            ]),
        };
        checked(&mut genkey)?;
        let csr = self.csr(s.name);
        checked(
            Command::new("openssl")
                .args(["req", "-new", "-subj", s.subject, "-key"])
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        )?;
        let ext = self.db.join(format!("{}.ext", s.name));
        fs::write(&ext, format!("[ext]\n{}\n", s.extensions))?;
        let mut sign = Command::new("openssl");
        sign.args(["ca", "-batch", "-notext", "-preserveDN", "-config"])
            .arg(self.db.join("ca.cnf"))
            .args(["-md", s.digest]);
        match s.serial {
            Some(serial) => fs::write(self.db.join("serial"), format!("{serial}\n"))?,
            None => {
                sign.arg("-rand_serial");
            }
        }
        match s.validity {
            Validity::Days(days) => sign.args(["-days", &days.to_string()]),
            Validity::Between(from, until) => sign.args(["-startdate", from, "-enddate", until]),
        };
        sign.arg("-extfile")
            .arg(&ext)
            .args(["-extensions", "ext", "-in"])
            .arg(&csr)
            .arg("-out")
            .arg(self.cert(s.name));
        match s.issuer {
            None => sign.arg("-selfsign").arg("-keyfile").arg(&key),
            Some(issuer) => sign
                .arg("-cert")
                .arg(self.cert(issuer))
                .arg("-keyfile")
                .arg(self.key(issuer)),
        };
        checked(&mut sign).map(drop)
    }
}

/// The tests' PKI in a temporary folder: `root` and the intermediate `int`
/// under it, RSA, then the leaves a test asks for.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

const LEAF_EXTENSIONS: &str = "basicConstraints = CA:false\n\
    extendedKeyUsage = serverAuth, clientAuth\n";

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::in_dir(dir.path()).expect("CA folder");
        let pki = Pki { dir, ca };
        pki.issue(
            Spec::new("root", "/CN=Test Root CA", ROOT_CA_EXTENSIONS).valid(Validity::Days(7300)),
        );
        pki.issue(
            Spec::new(
                "int",
                "/CN=Test Intermediate CA",
                "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n",
            )
            .signed_by("root")
            .valid(Validity::Days(7300)),
        );
        pki
    }

    fn issue(&self, s: Spec) {
        self.ca.issue(&s).unwrap_or_else(|e| panic!("{e:#}"));
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// A leaf `name.pem`/`name.key` for `dns` (plus `extra_sans` filler
    /// names to make it large), signed by the intermediate, or by the root
    /// when `by_root` (client certificates).
    pub fn leaf(&self, name: &str, dns: &str, extra_sans: usize, by_root: bool) {
        let mut sans = vec![format!("DNS:{dns}")];
        sans.extend((0..extra_sans).map(|i| format!("DNS:filler-{i}.example.test")));
        let issuer = if by_root { "root" } else { "int" };
        self.leaf_by(name, dns, &sans.join(","), issuer);
    }

    /// A leaf `name.pem`/`name.key` with CN `cn` and these DNS/IP SANs
    /// (`DNS:x`, `IP:y`), signed by the intermediate; `name.csr` is kept.
    pub fn leaf_sans(&self, name: &str, cn: &str, sans: &[&str]) {
        self.leaf_by(name, cn, &sans.join(","), "int");
    }

    fn leaf_by(&self, name: &str, cn: &str, sans: &str, issuer: &str) {
        let subject = format!("/CN={cn}");
        let ext = format!("subjectAltName = {sans}\n{LEAF_EXTENSIONS}");
        self.issue(
            Spec::new(name, &subject, &ext)
                .signed_by(issuer)
                .valid(Validity::Days(3650)),
        );
    }

    /// A self-signed leaf `name.pem`/`name.key` for `cn` (no CA involved).
    pub fn self_signed(&self, name: &str, cn: &str) {
        let subject = format!("/CN={cn}");
        let ext = format!("{SELF_SIGNED_EXTENSIONS}subjectAltName = DNS:{cn}\n");
        self.issue(Spec::new(name, &subject, &ext).valid(Validity::Days(3650)));
    }

    /// A file of the PKI as text.
    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path(name)).expect("read PKI file")
    }

    /// SHA-256 of a PEM certificate's DER, lowercase hex.
    pub fn fingerprint(&self, name: &str) -> String {
        let out = crate::proc::run(Command::new("openssl").current_dir(self.dir.path()).args([
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
