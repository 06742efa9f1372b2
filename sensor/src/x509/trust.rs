//! Trust anchors: the system's roots (Mozilla's bundled list or the host
//! store), PEM files and folders given on the command line, and bundles
//! added at run time (the cluster's CA bundles, fed by the inventory).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::dn::rfc4514;

/// Where the system roots come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SystemRoots {
    /// Mozilla's root program as compiled into the binary (webpki-roots):
    /// the same answer on every node and in every container image.
    #[default]
    Bundled,
    /// The host's store (/etc/ssl/certs, SSL_CERT_FILE, SSL_CERT_DIR).
    Host,
    /// No system roots: only explicit anchors and cluster bundles.
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: no certificate found")]
    NoCertificates { origin: String },
    #[error("{origin}: certificate {index}: {detail}")]
    BadCertificate {
        origin: String,
        index: usize,
        detail: String,
    },
    #[error("{origin}: {detail}")]
    BadPem { origin: String, detail: String },
    #[error("host trust store: {0}")]
    Host(String),
}

/// One anchor with what the analysis says about it.
#[derive(Debug, Clone)]
pub struct AnchorInfo {
    /// RFC 4514 subject, for messages.
    pub subject: String,
    /// Where it came from: "bundled", "host", a file name, a bundle name.
    pub origin: String,
}

/// The configured anchors. Adding anchors bumps `generation`, so results
/// cached against an older set are recomputed.
#[derive(Default)]
pub struct TrustStore {
    anchors: Vec<TrustAnchor<'static>>,
    info: Vec<AnchorInfo>,
    /// Subject (the Name's DER content, as webpki keeps it) -> anchor indices.
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    generation: u64,
}

/// The content octets of a DER TLV (what webpki stores for names and keys).
pub(crate) fn der_content(tlv: &[u8]) -> &[u8] {
    use x509_parser::der_parser::asn1_rs::{FromDer as _, Header};
    match Header::from_der(tlv) {
        Ok((rest, _)) => rest,
        Err(_) => tlv,
    }
}

/// Wraps content octets back into a SEQUENCE.
pub(crate) fn der_sequence(content: &[u8]) -> Vec<u8> {
    let mut out = vec![0x30];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let be = (n as u64).to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn subject_string(subject_content: &[u8]) -> String {
    let der = der_sequence(subject_content);
    match X509Name::from_der(&der) {
        Ok((_, name)) => rfc4514(&name),
        Err(_) => "(unparsable name)".into(),
    }
}

impl TrustStore {
    /// A store holding the chosen system roots.
    pub fn new(system: SystemRoots) -> Result<Self, TrustError> {
        let mut s = Self::default();
        match system {
            SystemRoots::Bundled => {
                for ta in webpki_roots::TLS_SERVER_ROOTS {
                    s.push(ta.clone(), "bundled");
                }
            }
            SystemRoots::Host => {
                let found = rustls_native_certs::load_native_certs();
                if found.certs.is_empty() {
                    let why = found
                        .errors
                        .first()
                        .map_or("no certificates found".to_string(), |e| e.to_string());
                    return Err(TrustError::Host(why));
                }
                for e in &found.errors {
                    tracing::warn!("host trust store: {e}");
                }
                for der in &found.certs {
                    // The host store may hold odd entries; one bad entry is not fatal.
                    match webpki::anchor_from_trusted_cert(der) {
                        Ok(ta) => {
                            s.push(ta.to_owned(), "host");
                        }
                        Err(e) => tracing::warn!("host trust store: skipped a certificate: {e:?}"),
                    }
                }
            }
            SystemRoots::None => {}
        }
        Ok(s)
    }

    fn push(&mut self, ta: TrustAnchor<'static>, origin: &str) -> bool {
        let subject = ta.subject.as_ref().to_vec();
        if let Some(ids) = self.by_subject.get(&subject)
            && ids.iter().any(|i| {
                self.anchors[*i].subject_public_key_info.as_ref()
                    == ta.subject_public_key_info.as_ref()
            })
        {
            return false;
        }
        self.info.push(AnchorInfo {
            subject: subject_string(&subject),
            origin: origin.to_string(),
        });
        self.by_subject
            .entry(subject)
            .or_default()
            .push(self.anchors.len());
        self.anchors.push(ta);
        self.generation += 1;
        true
    }

    /// Adds every certificate of a PEM bundle (or one DER certificate);
    /// returns how many anchors were new. The whole bundle is refused when
    /// any certificate in it does not parse, so a typo never half-applies.
    pub fn add_bundle(&mut self, data: &[u8], origin: &str) -> Result<usize, TrustError> {
        let ders: Vec<CertificateDer<'static>> = if looks_like_pem(data) {
            CertificateDer::pem_slice_iter(data)
                .collect::<Result<_, _>>()
                .map_err(|e| TrustError::BadPem {
                    origin: origin.to_string(),
                    detail: e.to_string(),
                })?
        } else {
            vec![CertificateDer::from(data.to_vec())]
        };
        if ders.is_empty() {
            return Err(TrustError::NoCertificates {
                origin: origin.to_string(),
            });
        }
        let mut anchors = Vec::with_capacity(ders.len());
        for (index, der) in ders.iter().enumerate() {
            let ta =
                webpki::anchor_from_trusted_cert(der).map_err(|e| TrustError::BadCertificate {
                    origin: origin.to_string(),
                    index: index + 1,
                    detail: format!("{e:?}"),
                })?;
            anchors.push(ta.to_owned());
        }
        Ok(anchors
            .into_iter()
            .filter(|ta| self.push(ta.clone(), origin))
            .count())
    }

    /// `--trust-anchors PATH`: a PEM (or DER) file, or a folder whose files
    /// are read in name order (files holding no certificate are skipped,
    /// as /etc/ssl/certs mixes certificates with other files).
    pub fn add_path(&mut self, path: &Path) -> Result<usize, TrustError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| TrustError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        let meta = std::fs::metadata(path).map_err(|source| TrustError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return self.add_bundle(&read(path)?, &path.display().to_string());
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| TrustError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let (mut added, mut certs) = (0, 0);
        for f in &files {
            let data = read(f)?;
            if !looks_like_pem(&data) || !contains_certificate(&data) {
                continue;
            }
            certs += 1;
            added += self.add_bundle(&data, &f.display().to_string())?;
        }
        if certs == 0 {
            return Err(TrustError::NoCertificates {
                origin: path.display().to_string(),
            });
        }
        Ok(added)
    }

    pub fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    pub fn info(&self, i: usize) -> &AnchorInfo {
        &self.info[i]
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Anchors whose subject is this Name (full DER, as x509-parser gives it).
    pub fn by_subject(&self, name_der: &[u8]) -> &[usize] {
        self.by_subject
            .get(der_content(name_der))
            .map_or(&[], |v| v.as_slice())
    }

    /// The anchor's SubjectPublicKeyInfo as a DER SEQUENCE.
    pub fn spki_der(&self, i: usize) -> Vec<u8> {
        der_sequence(self.anchors[i].subject_public_key_info.as_ref())
    }
}

fn contains(data: &[u8], pat: &[u8]) -> bool {
    data.windows(pat.len()).any(|w| w == pat)
}

fn looks_like_pem(data: &[u8]) -> bool {
    contains(data, b"-----BEGIN ")
}

fn contains_certificate(data: &[u8]) -> bool {
    contains(data, b"-----BEGIN CERTIFICATE-----")
}
