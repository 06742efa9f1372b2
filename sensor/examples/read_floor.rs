//! The floor under `sensor analyze`'s cost, for `cargo xtask bench
//! analyze`: a capture read with the sensor's own reader (mapped, populated
//! ahead, prefetched, released behind) and nothing else, or, with
//! `--decode`, also every frame decoded to its TCP segment. What the
//! sensor costs above these is its own work per flow and handshake; below
//! them no analysis of the file can go, for it must look at every frame.
//!
//! Usage: read_floor [--decode] CAPTURE. Prints frames, segments and a
//! checksum of the bytes looked at (so that no look is optimised away).

use std::path::PathBuf;

use sensor::capture::CaptureStats;
use sensor::capture::pcap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut decode = false;
    let mut file = None;
    for arg in std::env::args_os().skip(1) {
        if arg == "--decode" {
            decode = true;
        } else {
            file = Some(PathBuf::from(arg));
        }
    }
    let file = file.ok_or("usage: read_floor [--decode] CAPTURE")?;
    let mut stats = CaptureStats::default();
    let (mut segments, mut sum) = (0u64, 0u64);
    let outcome = pcap::read_file(
        &file,
        |f| {
            if decode {
                if let Some(seg) = stats.frame(f.linktype, f.timestamp_us, f.data) {
                    segments += 1;
                    sum = sum.wrapping_add(seg.seq as u64 + seg.payload.len() as u64);
                }
            } else {
                // The link, IP and TCP headers' line, as decoding would read it.
                let at = |i: usize| f.data.get(i).copied().unwrap_or(0) as u64;
                sum = sum.wrapping_add(at(12) + at(23) + at(47));
            }
        },
        |_| {},
    )?;
    println!(
        "frames {} segments {segments} checksum {sum}{}",
        outcome.frames,
        outcome
            .damaged
            .map(|d| format!(" damaged: {d}"))
            .unwrap_or_default()
    );
    Ok(())
}
