//! `sslv2-hello ADDR VERSION`: an SSLv2-compatible ClientHello to a TLS
//! server (see `tests::sslv2_hello`); VERSION as hex, e.g. 0301.

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, version] = args.as_slice() else {
        anyhow::bail!("usage: sslv2-hello ADDR VERSION");
    };
    let version = u16::from_str_radix(version.trim_start_matches("0x"), 16)?;
    tests::sslv2_hello::run(addr, version)
}
