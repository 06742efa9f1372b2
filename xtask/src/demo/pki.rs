//! The demo's certificates, made with the openssl command line in the demo's
//! temporary folder: a root CA, an intermediate, and one leaf per scenario.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// `openssl ca` needs a database, a serial file and a policy; the sections
/// below hold the extensions of each kind of certificate it issues.
const CA_CONFIG: &str = "\
[ ca ]
default_ca = demo
[ demo ]
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = anything
unique_subject = no
email_in_dn = no
[ anything ]
commonName = supplied
organizationName = optional
[ intermediate ]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $ENV::DEMO_SAN
[ client ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Who signs a certificate and for how long it is valid.
pub enum Validity {
    Days(u32),
    /// `openssl ca` dates, `YYYYMMDDHHMMSSZ`.
    Between(&'static str, &'static str),
}

pub struct Pki {
    dir: PathBuf,
    pub root: Pair,
    pub intermediate: Pair,
}

fn openssl(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .context("starting openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn new_key_and_csr(dir: &Path, name: &str, subject: &str) -> Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ],
        &[],
    )
}

impl Pki {
    /// A root CA and an intermediate under it, in `dir`.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("issued"))?;
        std::fs::write(dir.join("index.txt"), "")?;
        std::fs::write(dir.join("serial"), "1000\n")?;
        std::fs::write(dir.join("ca.cnf"), CA_CONFIG)?;
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "root.key",
                "-out",
                "root.pem",
                "-subj",
                "/O=tls-sensor demo/CN=Demo Root CA",
                "-days",
                "3650",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &[],
        )?;
        let root = Pair {
            cert: dir.join("root.pem"),
            key: dir.join("root.key"),
        };
        let mut pki = Pki {
            dir: dir.to_path_buf(),
            intermediate: root.clone(),
            root,
        };
        pki.intermediate = pki.issue(
            "intermediate",
            "/O=tls-sensor demo/CN=Demo Intermediate CA",
            "intermediate",
            "",
            Signer::Root,
            Validity::Days(1825),
        )?;
        Ok(pki)
    }

    /// A certificate signed by the root or the intermediate; `san` is an
    /// openssl subjectAltName value (`DNS:a.example`), used by the
    /// `server` extension section.
    pub fn issue(
        &self,
        name: &str,
        subject: &str,
        extensions: &str,
        san: &str,
        signer: Signer,
        validity: Validity,
    ) -> Result<Pair> {
        new_key_and_csr(&self.dir, name, subject)?;
        let by = match signer {
            Signer::Root => &self.root,
            Signer::Intermediate => &self.intermediate,
        };
        let (cert, key) = (by.cert.to_string_lossy(), by.key.to_string_lossy());
        let csr = format!("{name}.csr");
        let out = format!("{name}.pem");
        let days;
        let mut args = vec![
            "ca",
            "-batch",
            "-notext",
            // Keep the subject's order as given (the policy would reorder it).
            "-preserveDN",
            "-config",
            "ca.cnf",
            "-cert",
            &cert,
            "-keyfile",
            &key,
            "-in",
            &csr,
            "-out",
            &out,
            "-extensions",
            extensions,
        ];
        match validity {
            Validity::Days(d) => {
                days = d.to_string();
                args.extend(["-days", &days]);
            }
            // `openssl req` of OpenSSL 3.0 cannot backdate; `openssl ca` can.
            Validity::Between(start, end) => args.extend(["-startdate", start, "-enddate", end]),
        }
        openssl(&self.dir, &args, &[("DEMO_SAN", san)])?;
        Ok(Pair {
            cert: self.dir.join(out),
            key: self.dir.join(format!("{name}.key")),
        })
    }

    /// A self-signed server certificate (its own issuer, no CA behind it).
    pub fn self_signed(&self, name: &str, subject: &str, san: &str) -> Result<Pair> {
        openssl(
            &self.dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-subj",
                subject,
                "-days",
                "365",
                "-addext",
                &format!("subjectAltName={san}"),
            ],
            &[],
        )?;
        Ok(Pair {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        })
    }

    /// Leaf followed by the intermediate, the file a server sends as its chain.
    pub fn chain_file(&self, leaf: &Pair, name: &str) -> Result<PathBuf> {
        let mut pem = std::fs::read(&leaf.cert)?;
        pem.extend(std::fs::read(&self.intermediate.cert)?);
        let path = self.dir.join(format!("{name}-chain.pem"));
        std::fs::write(&path, pem)?;
        Ok(path)
    }
}

pub enum Signer {
    Root,
    Intermediate,
}
