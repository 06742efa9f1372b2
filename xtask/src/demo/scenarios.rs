//! The seven workloads: what each server presents, which real client talks
//! to it, and what the sensor is expected to report about it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::lab::Lab;
use super::net::Pod;
use super::pki::{Pair, Pki, Profile, Signer, Validity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Good,
    Expired,
    SelfSigned,
    WrongSan,
    Tls13,
    Mutual,
    /// cert-manager renewed its certificate (revision 2) but the server
    /// still serves revision 1: it was never reloaded.
    Renewed,
}

pub const ALL: [Kind; 7] = [
    Kind::Good,
    Kind::Expired,
    Kind::SelfSigned,
    Kind::WrongSan,
    Kind::Tls13,
    Kind::Mutual,
    Kind::Renewed,
];

/// Where the expired certificate's validity lies, `openssl ca` style.
const EXPIRED_FROM: &str = "20200101000000Z";
const EXPIRED_UNTIL: &str = "20210101000000Z";

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Good => "good-chain",
            Kind::Expired => "expired",
            Kind::SelfSigned => "self-signed",
            Kind::WrongSan => "wrong-san",
            Kind::Tls13 => "tls13-only",
            Kind::Mutual => "mutual-tls",
            Kind::Renewed => "renewed-not-reloaded",
        }
    }

    /// Namespace suffix and veth name part (veth names are at most 15 bytes).
    pub fn short(self) -> &'static str {
        match self {
            Kind::Good => "good",
            Kind::Expired => "expired",
            Kind::SelfSigned => "selfsigned",
            Kind::WrongSan => "wrongsan",
            Kind::Tls13 => "tls13",
            Kind::Mutual => "mutual",
            Kind::Renewed => "renewed",
        }
    }

    pub fn host(self) -> u8 {
        11 + ALL.iter().position(|k| *k == self).expect("listed") as u8
    }

    /// The name the client asks for.
    pub fn sni(self) -> &'static str {
        match self {
            Kind::Good => "good.demo.test",
            Kind::Expired => "expired.demo.test",
            Kind::SelfSigned => "self-signed.demo.test",
            Kind::WrongSan => "wrong-san.demo.test",
            Kind::Tls13 => "tls13.demo.test",
            Kind::Mutual => "mutual.demo.test",
            Kind::Renewed => "renewed.demo.test",
        }
    }

    pub fn server_program(self) -> &'static str {
        match self {
            Kind::Good => "nginx",
            _ => "openssl s_server",
        }
    }

    pub fn client_program(self) -> &'static str {
        match self {
            Kind::SelfSigned | Kind::Mutual => "openssl s_client",
            _ => "curl",
        }
    }

    /// Whether a verifying client completes the handshake (revision 1 of
    /// the renewed certificate is still valid, only outdated).
    pub fn client_accepts(self) -> bool {
        matches!(
            self,
            Kind::Good | Kind::Tls13 | Kind::Mutual | Kind::Renewed
        )
    }

    /// The server speaks TLS 1.3 only: the certificate is encrypted on the
    /// wire and the sensor has to probe for it.
    pub fn tls13(self) -> bool {
        matches!(self, Kind::Tls13 | Kind::Renewed)
    }

    /// cert-manager issued what it serves: the revisions of its
    /// Certificate in the inventory (the last is current), and the issuer.
    /// The others are certificates nobody manages.
    pub fn managed(self) -> Option<(u64, Signer)> {
        match self {
            Kind::Good => Some((1, Signer::Intermediate)),
            Kind::Tls13 | Kind::Mutual => Some((1, Signer::Root)),
            Kind::Renewed => Some((2, Signer::Root)),
            _ => None,
        }
    }

    /// The verdict the sensor must give the served certificate.
    pub fn verdict(self) -> &'static str {
        match self {
            Kind::Renewed => "stale",
            _ if self.managed().is_some() => "managed",
            _ => "unmanaged",
        }
    }

    /// Whether the refusing client says so with an alert in clear. curl
    /// checks the host name only after the handshake, so a wrong SAN ends
    /// with an encrypted close_notify instead.
    pub fn client_alerts(self) -> bool {
        matches!(self, Kind::Expired | Kind::SelfSigned)
    }

    /// Certificates the server sends: nginx sends the chain file (leaf and
    /// intermediate); s_server sends the leaf, and OpenSSL completes the
    /// chain from `-CAfile` when it has one (the mutual-TLS server does,
    /// to check client certificates).
    pub fn chain_len(self) -> usize {
        match self {
            Kind::Good | Kind::Mutual => 2,
            _ if self.tls13() => 0,
            _ => 1,
        }
    }
}

/// A server running in its pod.
pub struct Server {
    pub kind: Kind,
    pub pod: Pod,
    leaf: Pair,
}

/// The demo's certificates besides the CA: one served leaf per scenario,
/// the renewal nobody loaded, and the mutual-TLS client's.
pub struct Certificates {
    pub pki: Pki,
    leaves: Vec<(Kind, Pair)>,
    /// Revision 2 of the renewed scenario's certificate: current in the
    /// inventory, never served.
    pub renewal: Pair,
    client: Pair,
}

fn cn(name: &str) -> String {
    format!("/CN={name}")
}

/// `openssl ca` date (`YYYYMMDDHHMMSSZ`) `days` from now.
fn ca_date(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn certificates(dir: &Path) -> Result<Certificates> {
    let pki = Pki::new(dir)?;
    let mut leaves = Vec::new();
    for kind in ALL {
        let sni = kind.sni();
        let san = format!("DNS:{sni}");
        let subject = cn(sni);
        let name = kind.short();
        let pair = match kind {
            Kind::Good => pki.issue(
                name,
                &subject,
                Profile::Server(&san),
                Signer::Intermediate,
                Validity::Days(90),
            )?,
            Kind::Expired => pki.issue(
                name,
                &subject,
                Profile::Server(&san),
                Signer::Root,
                Validity::Between(EXPIRED_FROM, EXPIRED_UNTIL),
            )?,
            Kind::SelfSigned => pki.self_signed(name, &subject, &san)?,
            // Issued for another name than the one clients ask for.
            Kind::WrongSan => pki.issue(
                name,
                &cn("other.demo.test"),
                Profile::Server("DNS:other.demo.test"),
                Signer::Root,
                Validity::Days(90),
            )?,
            Kind::Tls13 | Kind::Mutual => pki.issue(
                name,
                &subject,
                Profile::Server(&san),
                Signer::Root,
                Validity::Days(90),
            )?,
            // Revision 1, issued a month ago; revision 2 follows below.
            Kind::Renewed => pki.issue(
                "renewed-1",
                &subject,
                Profile::Server(&san),
                Signer::Root,
                Validity::Between(&ca_date(-30), &ca_date(60)),
            )?,
        };
        leaves.push((kind, pair));
    }
    let sni = Kind::Renewed.sni();
    let renewal = pki.issue(
        "renewed-2",
        &cn(sni),
        Profile::Server(&format!("DNS:{sni}")),
        Signer::Root,
        Validity::Days(90),
    )?;
    let client = pki.issue(
        "client",
        &cn("demo-client"),
        Profile::Client,
        Signer::Root,
        Validity::Days(90),
    )?;
    Ok(Certificates {
        pki,
        leaves,
        renewal,
        client,
    })
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// nginx as Debian ships it, confined to a folder of its own: no daemon,
/// no worker processes (so the pid we hold is the whole server).
fn nginx_conf(dir: &Path, chain: &Path, key: &Path, sni: &str) -> String {
    let d = path(dir);
    format!(
        "daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 443 ssl;
        server_name {sni};
        ssl_certificate {chain};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 \"hello from {sni}\\n\"; }}
    }}
}}
",
        chain = path(chain),
        key = path(key),
    )
}

impl Certificates {
    /// The leaf `kind`'s server serves.
    pub fn leaf(&self, kind: Kind) -> &Pair {
        &self
            .leaves
            .iter()
            .find(|(k, _)| *k == kind)
            .expect("issued")
            .1
    }

    fn root(&self) -> String {
        path(&self.pki.root.cert)
    }
}

/// Starts every server in a pod of its own and waits until each listens.
pub fn start_servers(
    lab: &Lab,
    certs: &Certificates,
    pods: Vec<(Kind, Pod)>,
) -> Result<Vec<Server>> {
    let mut servers = Vec::new();
    for (kind, pod) in pods {
        let leaf = certs.leaf(kind).clone();
        let name = format!("server-{}", kind.name());
        match kind {
            Kind::Good => {
                let dir = lab.dir().join("nginx");
                std::fs::create_dir_all(&dir)?;
                let chain = certs.pki.chain_file(&leaf, kind.short())?;
                let conf = dir.join("nginx.conf");
                std::fs::write(&conf, nginx_conf(&dir, &chain, &leaf.key, kind.sni()))?;
                let (conf, prefix, errlog) =
                    (path(&conf), path(&dir), path(&dir.join("error.log")));
                lab.spawn_logged(
                    &name,
                    &pod.ns,
                    &["nginx", "-e", &errlog, "-p", &prefix, "-c", &conf],
                )?;
            }
            _ => {
                let (cert, key) = (path(&leaf.cert), path(&leaf.key));
                let root = certs.root();
                let mut argv = vec![
                    "openssl", "s_server", "-accept", "443", "-cert", &cert, "-key", &key,
                ];
                match kind {
                    // Serves files (-WWW) from its folder: the bulk transfer.
                    Kind::Tls13 => argv.extend(["-WWW", "-tls1_3"]),
                    Kind::Renewed => argv.extend(["-www", "-tls1_3"]),
                    // A client certificate is required and must chain to the demo root.
                    Kind::Mutual => argv.extend(["-www", "-Verify", "1", "-CAfile", &root]),
                    _ => argv.push("-www"),
                }
                if kind == Kind::Tls13 {
                    let www = lab.dir().join("tls13-www");
                    std::fs::create_dir_all(&www)?;
                    std::fs::write(www.join(BULK_FILE), vec![0x5a; BULK_BYTES as usize])?;
                    let script = format!("cd {} && exec {}", path(&www), argv.join(" "));
                    lab.spawn_logged(&name, &pod.ns, &["sh", "-c", &script])?;
                } else {
                    lab.spawn_logged(&name, &pod.ns, &argv)?;
                }
            }
        }
        servers.push(Server { kind, pod, leaf });
    }
    for s in &servers {
        wait_listening(lab, s)?;
    }
    Ok(servers)
}

fn wait_listening(lab: &Lab, s: &Server) -> Result<()> {
    let name = format!("server-{}", s.kind.name());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = lab.exited(&name) {
            bail!(
                "{} ({}) exited: {status}\n{}",
                s.kind.name(),
                s.kind.server_program(),
                lab.log(&name)
            );
        }
        let listening = ::tests::netns::output(&s.pod.ns, &["ss", "-Hltn", "sport = :443"])?;
        if !listening.trim().is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{} does not listen on port 443 after 10 s", s.kind.name());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a client made of its connection.
#[derive(Debug, Clone)]
pub struct ClientResult {
    pub accepted: bool,
    /// Its own words on why it refused, when it did.
    pub reason: Option<String>,
}

/// What the TLS 1.3 scenario's client downloads in its one connection, so
/// that the table shows encrypted volume the kernel counted live.
pub const BULK_FILE: &str = "bulk.bin";
pub const BULK_BYTES: u64 = 4 << 20;

fn client_argv(kind: Kind, s: &Server, certs: &Certificates) -> Vec<String> {
    let sni = kind.sni();
    let root = certs.root();
    let s_client = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "openssl",
            "s_client",
            "-connect",
            &format!("{}:443", s.pod.ip),
            "-servername",
            sni,
            "-verify_hostname",
            sni,
            "-CAfile",
            &root,
            "-verify_return_error",
            // Certificates travel in clear up to TLS 1.2 only.
            "-tls1_2",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    };
    let curl = |tls: &[&str], file: &str| -> Vec<String> {
        let mut v: Vec<String> = [
            "curl",
            "--silent",
            "--show-error",
            "--output",
            "/dev/null",
            "--max-time",
            "5",
            "--cacert",
            &root,
            "--resolve",
            &format!("{sni}:443:{}", s.pod.ip),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        v.extend(tls.iter().map(|a| a.to_string()));
        v.push(format!("https://{sni}/{file}"));
        v
    };
    match kind {
        Kind::SelfSigned => s_client(&[]),
        Kind::Mutual => s_client(&[
            "-cert",
            &path(&certs.client.cert),
            "-key",
            &path(&certs.client.key),
        ]),
        Kind::Tls13 => curl(&["--tlsv1.3"], BULK_FILE),
        Kind::Renewed => curl(&["--tlsv1.3"], ""),
        // Certificates travel in clear up to TLS 1.2 only.
        _ => curl(&["--tlsv1.2", "--tls-max", "1.2"], ""),
    }
}

/// The client's own explanation: curl's error line, or openssl's verify error.
fn reason(log: &str) -> Option<String> {
    let line = log
        .lines()
        .find(|l| l.starts_with("curl:") || l.contains("verify error:"))
        .or_else(|| log.lines().find(|l| l.contains("error")))?;
    let line = line.trim();
    let short = line
        .strip_prefix("curl: ")
        .map(|r| r.split_once(") ").map_or(r, |(_, msg)| msg))
        .or_else(|| {
            line.split("verify error:")
                .nth(1)
                .map(|r| r.rsplit(':').next().unwrap_or(r))
        })
        .unwrap_or(line);
    let short = short.trim();
    let short = ["SSL certificate problem: ", "SSL: "]
        .iter()
        .find_map(|p| short.strip_prefix(p))
        .unwrap_or(short);
    // curl quotes the host name the table already shows.
    let short = short.split(" '").next().unwrap_or(short);
    Some(short.to_string())
}

/// Runs each scenario's client once from the client pod, one after another.
pub fn run_clients(
    lab: &Lab,
    client: &Pod,
    servers: &[Server],
    certs: &Certificates,
) -> Result<Vec<(Kind, ClientResult)>> {
    let mut results = Vec::new();
    for s in servers {
        let argv = client_argv(s.kind, s, certs);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let name = format!("client-{}", s.kind.name());
        lab.spawn_logged(&name, &client.ns, &argv)?;
        let status = lab
            .wait(&name, Duration::from_secs(15))
            .with_context(|| format!("client of {}", s.kind.name()))?;
        let log = lab.log(&name);
        results.push((
            s.kind,
            ClientResult {
                accepted: status.success(),
                reason: (!status.success()).then(|| reason(&log)).flatten(),
            },
        ));
    }
    Ok(results)
}

impl Server {
    pub fn ip(&self) -> &str {
        &self.pod.ip
    }

    /// SHA-256 of the leaf's DER, as the sensor reports it.
    pub fn leaf_sha256(&self) -> Result<String> {
        self.leaf.sha256()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_reasons_are_short() {
        assert_eq!(
            reason("curl: (60) SSL certificate problem: certificate has expired\nMore details")
                .unwrap(),
            "certificate has expired"
        );
        assert_eq!(
            reason("curl: (60) SSL: no alternative certificate subject name matches target host name 'x.test'").unwrap(),
            "no alternative certificate subject name matches target host name"
        );
        assert_eq!(
            reason("depth=0 CN = x\nverify error:num=18:self-signed certificate\n").unwrap(),
            "self-signed certificate"
        );
        assert_eq!(reason("all fine\n"), None);
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        for k in ALL {
            assert!(format!("veth-{}", k.short()).len() <= 15, "{k:?}");
        }
    }
}
