//! The demo's certificates, made by the test kit's CA in the demo's
//! temporary folder: a root CA, an intermediate, and one leaf per scenario,
//! all on P-256 keys.

use std::path::{Path, PathBuf};

use anyhow::Result;
use tests::certs::{Ca, Key, ROOT_CA_EXTENSIONS, SELF_SIGNED_EXTENSIONS, Spec};

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
