//! Which servers this sensor probes. With an inventory, `local` means the
//! server runs on this node; without one, an address behind this host's
//! interfaces: one of its own, or one its routing table reaches directly
//! (no gateway) through an interface the capture watches, as pods behind
//! their veths are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `--probe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeScope {
    Off,
    Local,
    Cluster,
    All,
}

/// A route of the host's main table: destination prefix, directly
/// connected or not, and its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dest: IpAddr,
    pub prefix: u8,
    pub direct: bool,
    pub interface: String,
}

fn prefix_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// `/proc/net/route` (IPv4: little-endian hex) and `/proc/net/ipv6_route`.
pub fn parse_routes(v4: &str, v6: &str) -> Vec<Route> {
    let mut out = Vec::new();
    for line in v4.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dest), Some(gw), Some(mask)) = (hex(f[1]), hex(f[2]), hex(f[7])) else {
            continue;
        };
        out.push(Route {
            dest: IpAddr::V4(Ipv4Addr::from(u32::from_be(dest))),
            prefix: u32::from_be(mask).count_ones() as u8,
            direct: gw == 0,
            interface: f[0].to_string(),
        });
    }
    for line in v6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Ok(dest), Ok(len), Ok(gw)) = (
            u128::from_str_radix(f[0], 16),
            u8::from_str_radix(f[1], 16),
            u128::from_str_radix(f[4], 16),
        ) else {
            continue;
        };
        out.push(Route {
            dest: IpAddr::V6(Ipv6Addr::from(dest)),
            prefix: len,
            direct: gw == 0,
            interface: f[9].to_string(),
        });
    }
    out
}

/// The most specific route to `ip`.
pub fn route_to(routes: &[Route], ip: IpAddr) -> Option<&Route> {
    routes
        .iter()
        .filter(|r| prefix_contains(r.dest, r.prefix, ip))
        .max_by_key(|r| r.prefix)
}

/// The host's addresses and routes, read once per refresh.
#[derive(Debug, Default, Clone)]
pub struct HostView {
    pub addresses: Vec<IpAddr>,
    pub routes: Vec<Route>,
    /// Bridge → its ports (`/sys/class/net/BR/brif`): pods on a bridge
    /// CNI are routed through the bridge, their veths are its ports.
    pub bridge_ports: std::collections::HashMap<String, Vec<String>>,
}

impl HostView {
    pub fn read() -> Self {
        let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
        let routes = parse_routes(&v4, &v6);
        let mut bridge_ports = std::collections::HashMap::new();
        for r in &routes {
            let dir = format!("/sys/class/net/{}/brif", r.interface);
            if let Ok(entries) = std::fs::read_dir(dir) {
                let ports = entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect();
                bridge_ports.insert(r.interface.clone(), ports);
            }
        }
        HostView {
            addresses: local_addresses(),
            routes,
            bridge_ports,
        }
    }

    /// `ip` is this host's, or directly behind an interface `watched` accepts.
    pub fn is_local(&self, ip: IpAddr, watched: &dyn Fn(&str) -> bool) -> bool {
        if ip.is_loopback() || self.addresses.contains(&ip) {
            return true;
        }
        route_to(&self.routes, ip).is_some_and(|r| {
            let through_watched = watched(&r.interface)
                || self
                    .bridge_ports
                    .get(&r.interface)
                    .is_some_and(|ports| ports.iter().any(|p| watched(p)));
            r.direct && r.interface != "lo" && r.prefix > 0 && through_watched
        })
    }
}

fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p walks the list getifaddrs returned.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: the family says which sockaddr it is.
            unsafe {
                match i32::from((*ifa.ifa_addr).sa_family) {
                    libc::AF_INET => {
                        let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))));
                    }
                    libc::AF_INET6 => {
                        let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
cali1\t0501A8C0\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n";

    #[test]
    fn pods_behind_watched_veths_are_local_the_default_route_is_not() {
        let view = HostView {
            addresses: vec!["10.0.0.7".parse().unwrap()],
            routes: parse_routes(V4, ""),
            bridge_ports: [("eth0".to_string(), vec!["veth1".to_string()])].into(),
        };
        let all = |_: &str| true;
        assert!(view.is_local("192.168.1.5".parse().unwrap(), &all));
        assert!(view.is_local("10.0.0.7".parse().unwrap(), &all));
        assert!(view.is_local("10.0.0.9".parse().unwrap(), &all));
        assert!(!view.is_local("8.8.8.8".parse().unwrap(), &all));
        assert!(!view.is_local("192.168.1.5".parse().unwrap(), &|i| i != "cali1"));
        // Through a bridge whose port is watched.
        assert!(view.is_local("10.0.0.9".parse().unwrap(), &|i| i == "veth1"));
        assert!(!view.is_local("10.0.0.9".parse().unwrap(), &|i| i == "veth2"));
    }

    #[test]
    fn ipv6_routes_parse() {
        let v6 = "fd770000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     vs0\n";
        let r = parse_routes("", v6);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].prefix, 64);
        assert!(r[0].direct);
        assert_eq!(
            route_to(&r, "fd77::2".parse().unwrap()).unwrap().interface,
            "vs0"
        );
    }
}
