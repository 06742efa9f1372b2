//! The demo's certificates, made by the test kit's CA in the demo's
//! temporary folder: a root CA, an intermediate, and one leaf per scenario,
//! all on P-256 keys.

use std::path::{Path, PathBuf};

use std::process::Command;

use anyhow::{Context, Result};
use tests::certs::{Ca, Key, ROOT_CA_EXTENSIONS, SELF_SIGNED_EXTENSIONS, Spec};
use tests::proc::checked;

pub use tests::certs::Validity;

const INTERMEDIATE: &str = "basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

const CLIENT: &str = "basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// The server extensions, for the subjectAltName value `san`.
fn server(san: &str) -> String {
    format!(
        "basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = {san}
"
    )
}

const KEY: Key = Key::Ec("P-256");

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What a leaf is for.
pub enum Profile<'a> {
    /// With this subjectAltName value (`DNS:a.example`).
    Server(&'a str),
    Client,
}

impl Pair {
    /// `openssl x509` on the certificate, its output as text.
    fn x509(&self, args: &[&str]) -> Result<String> {
        let out = checked(
            Command::new("openssl")
                .args(["x509", "-noout", "-in"])
                .arg(&self.cert)
                .args(args),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// SHA-256 of the DER, lowercase hex, as the sensor reports it.
    pub fn sha256(&self) -> Result<String> {
        let text = self.x509(&["-fingerprint", "-sha256"])?;
        text.trim()
            .split_once('=')
            .map(|(_, h)| h.replace(':', "").to_lowercase())
            .context("openssl x509 -fingerprint printed no fingerprint")
    }

    /// notBefore and notAfter, RFC 3339 (as cert-manager's status has them).
    pub fn dates(&self) -> Result<(String, String)> {
        let text = self.x509(&["-dates", "-dateopt", "iso_8601"])?;
        let date = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|d| d.trim().replacen(' ', "T", 1))
                .with_context(|| format!("openssl x509 -dates printed no {key}"))
        };
        Ok((date("notBefore=")?, date("notAfter=")?))
    }

    pub fn pem(&self) -> Result<String> {
        std::fs::read_to_string(&self.cert)
            .with_context(|| format!("reading {}", self.cert.display()))
    }
}

fn pair(ca: &Ca, name: &str) -> Pair {
    Pair {
        cert: ca.cert(name),
        key: ca.key(name),
    }
}

pub struct Pki {
    dir: PathBuf,
    ca: Ca,
    pub root: Pair,
    pub intermediate: Pair,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    Root,
    Intermediate,
}

impl Pki {
    /// A root CA and an intermediate under it, in `dir`.
    pub fn new(dir: &Path) -> Result<Self> {
        let ca = Ca::in_dir(dir)?;
        ca.issue(
            &Spec::new(
                "root",
                "/O=tls-sensor demo/CN=Demo Root CA",
                ROOT_CA_EXTENSIONS,
            )
            .key(KEY)
            .valid(Validity::Days(3650)),
        )?;
        ca.issue(
            &Spec::new(
                "intermediate",
                "/O=tls-sensor demo/CN=Demo Intermediate CA",
                INTERMEDIATE,
            )
            .key(KEY)
            .signed_by("root")
            .valid(Validity::Days(1825)),
        )?;
        let (root, intermediate) = (pair(&ca, "root"), pair(&ca, "intermediate"));
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca,
            root,
            intermediate,
        })
    }

    /// A leaf signed by the root or the intermediate.
    pub fn issue(
        &self,
        name: &str,
        subject: &str,
        profile: Profile,
        signer: Signer,
        validity: Validity,
    ) -> Result<Pair> {
        let ext = match profile {
            Profile::Server(san) => server(san),
            Profile::Client => CLIENT.to_string(),
        };
        let by = match signer {
            Signer::Root => "root",
            Signer::Intermediate => "intermediate",
        };
        self.ca.issue(
            &Spec::new(name, subject, &ext)
                .key(KEY)
                .signed_by(by)
                .valid(validity),
        )?;
        Ok(pair(&self.ca, name))
    }

    /// A self-signed server certificate (its own issuer, no CA behind it).
    pub fn self_signed(&self, name: &str, subject: &str, san: &str) -> Result<Pair> {
        let ext = format!("{SELF_SIGNED_EXTENSIONS}subjectAltName = {san}\n");
        self.ca.issue(
            &Spec::new(name, subject, &ext)
                .key(KEY)
                .valid(Validity::Days(365)),
        )?;
        Ok(pair(&self.ca, name))
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
