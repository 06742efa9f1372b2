//! One probe: a TCP connection to the server, a ClientHello with the
//! observed SNI and ALPN, and the server's chain taken from the
//! certificate verifier, which then fails the handshake on purpose. The
//! client never reaches the point where it could send application data,
//! and it never sends a certificate of its own (no client authentication
//! is configured, and in TLS 1.3 the server's chain arrives before the
//! client's would be due).

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use socket2::{Domain, Socket, Type};

use crate::capture::own::Announced;
use crate::model::ProbeResult;

/// What one probe asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub server: SocketAddr,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
}

/// Records the chain and refuses it, which ends the handshake.
#[derive(Debug)]
struct Recorder {
    chain: Mutex<Option<Vec<Vec<u8>>>>,
    schemes: Vec<SignatureScheme>,
}

/// The error the recorder returns; recognised so it is not an outcome.
const TAKEN: &str = "tls-sensor probe: chain taken";

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref().to_vec())
            .collect();
        *self.chain.lock().unwrap_or_else(|e| e.into_inner()) = Some(chain);
        Err(rustls::Error::General(TAKEN.into()))
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(TAKEN.into()))
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(TAKEN.into()))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// The chain the server sent (DER, in order), or why there is none.
pub type Fetched = Result<Vec<Vec<u8>>, ProbeResult>;

fn io_result(e: &std::io::Error) -> ProbeResult {
    match e.kind() {
        ErrorKind::ConnectionRefused => ProbeResult::Refused,
        ErrorKind::TimedOut | ErrorKind::WouldBlock => ProbeResult::Timeout,
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof => ProbeResult::Reset,
        // Unreachable hosts and networks: nothing accepted the connection.
        _ => ProbeResult::Refused,
    }
}

fn tls_result(e: &rustls::Error) -> ProbeResult {
    match e {
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => ProbeResult::NotTls,
        _ => ProbeResult::Alert,
    }
}

fn config(recorder: Arc<Recorder>, provider: Arc<CryptoProvider>, alpn: &[String]) -> ClientConfig {
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("the ring provider supports every rustls version")
        .dangerous()
        .with_custom_certificate_verifier(recorder)
        .with_no_client_auth();
    // A resumed handshake would send no certificate at all.
    cfg.resumption = Resumption::disabled();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    cfg
}

/// Connects from a socket whose local port is noted in `own` before its
/// SYN leaves, so the capture can tell the probe from observed traffic.
fn connect(
    server: SocketAddr,
    timeout: Duration,
    own: &Announced,
) -> Result<TcpStream, ProbeResult> {
    let sock =
        Socket::new(Domain::for_address(server), Type::STREAM, None).map_err(|e| io_result(&e))?;
    let any: SocketAddr = if server.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    sock.bind(&any.into()).map_err(|e| io_result(&e))?;
    let port = sock
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(0, |a| a.port());
    own.announce(port, server);
    sock.connect_timeout(&server.into(), timeout)
        .map_err(|e| io_result(&e))?;
    Ok(sock.into())
}

/// Probes `target`; gives up at `timeout` after the start.
pub fn fetch(target: &Target, timeout: Duration, own: &Announced) -> Fetched {
    let deadline = Instant::now() + timeout;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let recorder = Arc::new(Recorder {
        chain: Mutex::new(None),
        schemes: provider
            .signature_verification_algorithms
            .supported_schemes(),
    });
    let name = match &target.sni {
        Some(s) => ServerName::try_from(s.clone()).map_err(|_| ProbeResult::OutOfScope)?,
        // Without SNI the ClientHello carries none, as the observed one did.
        None => ServerName::IpAddress(target.server.ip().into()),
    };
    let mut conn = ClientConnection::new(
        Arc::new(config(recorder.clone(), provider, &target.alpn)),
        name,
    )
    .map_err(|e| tls_result(&e))?;
    let mut sock = connect(target.server, timeout, own)?;
    let taken = || {
        recorder
            .chain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    };
    let result = loop {
        while conn.wants_write() {
            // A failed write shows as a reset on the next read.
            if conn.write_tls(&mut sock).is_err() {
                break;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(ProbeResult::Timeout);
        }
        let _ = sock.set_read_timeout(Some(left));
        let n = match conn.read_tls(&mut sock) {
            Ok(n) => n,
            Err(e) => break Err(io_result(&e)),
        };
        if n == 0 {
            break Err(ProbeResult::Reset);
        }
        if let Err(e) = conn.process_new_packets() {
            break match taken() {
                Some(chain) => Ok(chain),
                None => Err(tls_result(&e)),
            };
        }
        if !conn.is_handshaking() {
            // Cannot happen: the verifier fails every handshake.
            break Err(ProbeResult::Alert);
        }
    };
    // The alert rustls queued tells the server why; then the connection ends.
    let _ = sock.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = conn.write_tls(&mut sock);
    let _ = sock.flush();
    let _ = sock.shutdown(Shutdown::Both);
    result
}
