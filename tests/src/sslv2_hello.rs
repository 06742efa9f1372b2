//! The SSLv2-compatible ClientHello (RFC 5246 E.2) old clients sent to
//! reach TLS servers. No client Debian ships sends it any more (OpenSSL
//! dropped it in 1.1.0, GnuTLS and NSS before), while OpenSSL servers still
//! answer it; so the fixture recorder and the live tests play this client
//! themselves (the `sslv2-hello` binary, run inside a namespace): the
//! hello, then the server's clear flight read up to its ServerHelloDone,
//! then a close.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Cipher specs offered: three TLS suites, two SSL 2.0 ones (a server
/// speaking TLS skips them) and the renegotiation SCSV, as old clients sent.
const SPECS: [u32; 6] = [
    0x00_002f, 0x00_0035, 0x00_000a, 0x01_0080, 0x07_00c0, 0x00_00ff,
];

/// What the client prints once the server's flight is complete.
pub const DONE: &str = "ServerHelloDone received";

const HS_SERVER_HELLO_DONE: u8 = 14;

fn hello(version: u16) -> Result<Vec<u8>> {
    let mut challenge = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut challenge)?;
    let specs: Vec<u8> = SPECS
        .iter()
        .flat_map(|s| s.to_be_bytes()[1..].to_vec())
        .collect();
    let mut body = vec![1];
    body.extend(version.to_be_bytes());
    body.extend((specs.len() as u16).to_be_bytes());
    body.extend(0u16.to_be_bytes());
    body.extend((challenge.len() as u16).to_be_bytes());
    body.extend(specs);
    body.extend(challenge);
    let mut record = (0x8000 | body.len() as u16).to_be_bytes().to_vec();
    record.extend(body);
    Ok(record)
}

/// Connects to `addr`, says hello with client version `version` and reads
/// TLS records until the ServerHelloDone.
pub fn run(addr: &str, version: u16) -> Result<()> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&hello(version)?)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = s.read(&mut buf).context("reading the server's flight")?;
        if n == 0 {
            bail!("the server closed after {} bytes", got.len());
        }
        got.extend_from_slice(&buf[..n]);
        if flight_done(&got)? {
            println!("{DONE}");
            return Ok(());
        }
    }
}

/// Walks the TLS records read so far (handshake messages may not cross
/// records in the flights OpenSSL sends, which is all this needs).
fn flight_done(mut b: &[u8]) -> Result<bool> {
    while b.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
        let Some(fragment) = b.get(5..5 + len) else {
            return Ok(false);
        };
        match b[0] {
            21 => bail!("alert {:?}", fragment),
            22 => {
                let mut m = fragment;
                while m.len() >= 4 {
                    if m[0] == HS_SERVER_HELLO_DONE {
                        return Ok(true);
                    }
                    let n =
                        4 + (usize::from(m[1]) << 16 | usize::from(m[2]) << 8 | usize::from(m[3]));
                    m = m.get(n..).unwrap_or_default();
                }
            }
            t => bail!("record type {t} before the ServerHelloDone"),
        }
        b = &b[5 + len..];
    }
    Ok(false)
}
