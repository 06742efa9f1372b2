//! What tshark counts in a capture: per direction of each TCP connection,
//! the sum of `tcp.len` and the number of segments carrying payload — the
//! reference the sensor's flow counts are held to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::proc::run;

/// (bytes, payload segments) sent from one endpoint to the other.
pub type Direction = (u64, u64);

/// Keyed by (source, destination).
pub fn payload_by_direction(pcap: &Path) -> BTreeMap<(SocketAddr, SocketAddr), Direction> {
    let out = run(Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-Y", "tcp.len > 0", "-T", "fields", "-E", "separator=,"])
        .args(["-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport"])
        .args(["-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport"])
        .args(["-e", "tcp.len"]));
    let mut by = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            continue;
        }
        let ip = |v4: &str, v6: &str| if v4.is_empty() { v6 } else { v4 }.parse();
        let (Ok(sip), Ok(dip)) = (ip(f[0], f[1]), ip(f[3], f[4])) else {
            continue;
        };
        let (Ok(sp), Ok(dp), Ok(len)) = (f[2].parse(), f[5].parse(), f[6].parse::<u64>()) else {
            continue;
        };
        let e: &mut Direction = by
            .entry((SocketAddr::new(sip, sp), SocketAddr::new(dip, dp)))
            .or_default();
        e.0 += len;
        e.1 += 1;
    }
    by
}
