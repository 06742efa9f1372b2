//! Test certificates: rcgen for ordinary ones (any dates, names, CA flags),
//! the openssl command for the weak ones rcgen cannot make (1024-bit RSA,
//! P-192, SHA-1 and MD5 signatures).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use sensor::analysis::{Analysis, AnalysisConfig, Clock, Policy};
use sensor::model::{
    Alert, Certificate, CipherSuite, Connection, Correlation, Finding, ProtocolVersion,
};
use sensor::x509::{ChainVerdict, SystemRoots, TrustStore, describe};
use time::OffsetDateTime;

pub const DAY: i64 = 86_400;
/// 2024-06-01T00:00:00Z: after the 398-day rule started (2020-09-01).
pub const T0: i64 = 1_717_200_000;

pub fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// A CA made with rcgen, able to sign more certificates.
pub struct Ca {
    pub der: Vec<u8>,
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str, nb: i64, na: i64) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = name(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(nb);
    p.not_after = at(na);
    p
}

impl Ca {
    /// A self-signed root valid from `nb` to `na`.
    pub fn root(cn: &str, nb: i64, na: i64) -> Ca {
        let key = KeyPair::generate().unwrap();
        let p = ca_params(cn, nb, na);
        let cert = p.self_signed(&key).unwrap();
        Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// An intermediate CA signed by `self`.
    pub fn intermediate(&self, cn: &str, nb: i64, na: i64) -> Ca {
        let key = KeyPair::generate().unwrap();
        let p = ca_params(cn, nb, na);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A leaf for `sans` (DNS names or IP literals), valid `nb`..`na`.
    pub fn leaf(&self, cn: &str, sans: &[&str], nb: i64, na: i64) -> Vec<u8> {
        self.leaf_with(cn, sans, nb, na, false)
    }

    pub fn leaf_with(&self, cn: &str, sans: &[&str], nb: i64, na: i64, is_ca: bool) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name = name(cn);
        p.not_before = at(nb);
        p.not_after = at(na);
        if is_ca {
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        p.signed_by(&key, &self.issuer).unwrap().der().to_vec()
    }
}

/// A self-signed leaf (not a CA) for `sans`.
pub fn self_signed_leaf(cn: &str, sans: &[&str], nb: i64, na: i64) -> (Vec<u8>, String) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = name(cn);
    p.not_before = at(nb);
    p.not_after = at(na);
    let c = p.self_signed(&key).unwrap();
    (c.der().to_vec(), c.pem())
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed by cargo xtask setup");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn der_of(dir: &Path, pem: &str) -> Vec<u8> {
    openssl(
        dir,
        &["x509", "-in", pem, "-outform", "DER", "-out", "out.der"],
    );
    std::fs::read(dir.join("out.der")).unwrap()
}

/// `-newkey` arguments for a key spec: "rsa:1024", "ec:P-256", "ec:prime192v1".
fn newkey(spec: &str) -> Vec<String> {
    match spec.strip_prefix("ec:") {
        Some(curve) => vec![
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            format!("ec_paramgen_curve:{curve}"),
        ],
        None => vec!["-newkey".into(), spec.into()],
    }
}

/// With openssl: a root CA (key `ca_key`, self-signed with `ca_digest`)
/// and a leaf for `leaf.test` (key `leaf_key`) it signs with
/// `leaf_digest`. Both valid from now for 90 days. Returns (root, leaf) DER.
pub fn openssl_chain(
    ca_key: &str,
    ca_digest: &str,
    leaf_key: &str,
    leaf_digest: &str,
) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut args: Vec<String> = vec!["req".into(), "-x509".into()];
    args.extend(newkey(ca_key));
    args.extend(
        [
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=OpenSSL Test CA",
            "-days",
            "90",
            &format!("-{ca_digest}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]
        .map(String::from),
    );
    openssl(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut args: Vec<String> = vec!["req".into()];
    args.extend(newkey(leaf_key));
    args.extend(
        [
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=leaf.test",
        ]
        .map(String::from),
    );
    openssl(d, &args.iter().map(String::as_str).collect::<Vec<_>>());
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:leaf.test\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "90",
            &format!("-{leaf_digest}"),
            "-extfile",
            "ext.cnf",
        ],
    );
    (der_of(d, "ca.pem"), der_of(d, "leaf.pem"))
}

/// An analysis with no system roots (tests choose every anchor), judged at `now`.
pub fn analysis(now: i64, policy: Policy, anchors: &[&str]) -> Analysis {
    let mut store = TrustStore::new(SystemRoots::None).unwrap();
    for (i, pem) in anchors.iter().enumerate() {
        store
            .add_bundle(pem.as_bytes(), &format!("test anchor {i}"))
            .unwrap();
    }
    let cfg = AnalysisConfig {
        clock: Clock::Fixed(now),
        ..AnalysisConfig::default()
    };
    Analysis::new(cfg, policy, store)
}

/// What a test connection showed.
pub struct Conn {
    pub sni: Option<String>,
    pub version: Option<u16>,
    pub cipher: Option<u16>,
    pub alert: Option<Alert>,
    pub server: Vec<Vec<u8>>,
    pub client: Vec<Vec<u8>>,
    pub correlation: Correlation,
}

impl Default for Conn {
    fn default() -> Self {
        Conn {
            sni: None,
            version: Some(0x0303),
            cipher: Some(0xc02f),
            alert: None,
            server: Vec::new(),
            client: Vec::new(),
            correlation: Correlation::default(),
        }
    }
}

impl Conn {
    pub fn server(chain: &[&[u8]]) -> Conn {
        Conn {
            server: chain.iter().map(|d| d.to_vec()).collect(),
            ..Conn::default()
        }
    }

    pub fn sni(mut self, s: &str) -> Conn {
        self.sni = Some(s.into());
        self
    }
}

pub fn infos(ders: &[Vec<u8>]) -> Vec<Arc<Certificate>> {
    ders.iter().map(|d| Arc::new(describe(d))).collect()
}

/// The findings of one connection, and the server chain's verdict.
pub struct Evaluation {
    pub findings: Vec<Finding>,
    pub server_verdict: Option<Arc<ChainVerdict>>,
}

impl Evaluation {
    /// Whether each finding gets a finding line of its own.
    pub fn first(&self) -> Vec<bool> {
        self.findings.iter().map(|f| f.first).collect()
    }
}

/// The connection a test describes, as the pipeline would hand it over.
pub fn connection(c: &Conn) -> Connection {
    let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let server: SocketAddr = "10.0.0.2:443".parse().unwrap();
    let mut conn = Connection::new(client, server, 0);
    conn.handshake.sni = c.sni.clone();
    conn.handshake.version = c.version.map(ProtocolVersion);
    conn.handshake.cipher = c.cipher.map(CipherSuite);
    conn.handshake.alert = c.alert;
    conn.server_chain = infos(&c.server);
    conn.client_chain = infos(&c.client);
    conn.correlation = c.correlation.clone();
    conn
}

pub fn run(a: &mut Analysis, c: &Conn) -> Evaluation {
    let mut conn = connection(c);
    let server_verdict = a.evaluate(&mut conn);
    Evaluation {
        findings: conn.findings,
        server_verdict,
    }
}

/// Rule ids of the findings, in order.
pub fn rules(e: &Evaluation) -> Vec<&'static str> {
    e.findings.iter().map(|f| f.rule.id()).collect()
}

pub fn messages(e: &Evaluation, rule: &str) -> Vec<String> {
    e.findings
        .iter()
        .filter(|f| f.rule.id() == rule)
        .map(|f| f.message.to_string())
        .collect()
}

impl Ca {
    /// A leaf and its key written as PEM files for a real TLS server.
    pub fn leaf_files(
        &self,
        dir: &Path,
        stem: &str,
        sans: &[&str],
        nb: i64,
        na: i64,
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name = name(sans[0]);
        p.not_before = at(nb);
        p.not_after = at(na);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}
