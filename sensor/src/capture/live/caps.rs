use super::error::LiveError;

const CAP_NET_ADMIN: u32 = 12;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const CAP_SYS_ADMIN: u32 = 21;

/// Effective capabilities of this process, from /proc/self/status.
fn effective() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .ok_or_else(|| std::io::Error::other("no CapEff line in /proc/self/status"))?;
    u64::from_str_radix(line.trim(), 16).map_err(std::io::Error::other)
}

/// Names every capability that loading and attaching needs and this
/// process lacks. CAP_SYS_ADMIN stands in for BPF and PERFMON on old kernels.
pub fn check_capabilities() -> Result<(), LiveError> {
    let eff = effective()?;
    let has = |c: u32| eff & (1u64 << c) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LiveError::Capabilities(missing.join(", ")))
    }
}
