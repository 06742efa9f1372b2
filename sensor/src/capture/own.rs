//! The sensor's own connections (to the Kubernetes API, the OTLP
//! collector, its probes): seen on the wire like anyone's, never reported
//! as traffic, counted apart. A connection is the sensor's when it was
//! announced before its first byte left ([`Announced`]: probes and the
//! Kubernetes client, whose connections may close before the capture's
//! records of them are read) or when its client endpoint is the local
//! address of one of this process's TCP sockets.
//!
//! Cost: only a client address of this host (getifaddrs, re-read every
//! `ADDRS_EVERY`) that is not known yet is looked up, so pod traffic never
//! is; a lookup asks this process's descriptors (a few dozen) which are
//! sockets, and asks only the sockets it has not placed yet for their
//! local endpoint. The TCP tables (`/proc/net/tcp`) are never read: on a
//! busy node they hold thousands of lines, and a socket listed there
//! before its connect() had no line yet and was never looked at again.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::live::Clock;

/// How often the host's addresses are re-read.
const ADDRS_EVERY: Duration = Duration::from_secs(10);
/// How long an endpoint stays known after its socket closed: a
/// connection's end can be reported after its socket is gone.
const REMEMBER: Duration = Duration::from_secs(120);
/// Packet times are the kernel's monotonic clock mapped to wall time once
/// at start-up (`live::Clock`), and so are listing times: a listing must
/// follow a connection's first packet by this much to be known to have
/// seen its socket, for the two mappings were taken microseconds apart.
/// Every connection already read from the kernel when a listing starts is
/// answered by it, so a burst costs one listing per batch, not one each.
const LISTING_SLACK_US: i64 = 100;
/// Bound on remembered endpoints (the sensor holds a few dozen sockets).
pub const MAX_KNOWN: usize = 4096;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OwnStats {
    /// Connections of the sensor itself, not reported.
    pub connections: u64,
    /// Sockets asked for their local endpoint (new ones, and TCP ones not
    /// bound yet).
    pub endpoint_reads: u64,
    /// Listings of this process's sockets.
    pub listings: u64,
    /// Lookups that failed (no /proc): those connections are reported.
    pub lookup_errors: u64,
    /// Endpoints forgotten early because `MAX_KNOWN` was reached.
    pub dropped: u64,
}

/// Connections announced by the code that makes them: local port and
/// server, kept `REMEMBER` after the announcement or the last time it was
/// asked about. Shared between the threads that connect (which announce)
/// and the pipeline (which asks).
#[derive(Clone, Debug)]
pub struct Announced {
    inner: Arc<Mutex<AnnouncedInner>>,
    capacity: usize,
}

#[derive(Default, Debug)]
struct AnnouncedInner {
    live: HashMap<(u16, SocketAddr), Instant>,
    /// Announcements and renewals, oldest first; an entry whose time is
    /// no longer its key's in `live` was renewed since.
    order: std::collections::VecDeque<((u16, SocketAddr), Instant)>,
    /// Entries forgotten before `REMEMBER` because the set was full.
    dropped: u64,
}

impl AnnouncedInner {
    /// Forgets what is older than `REMEMBER`, and the oldest entries
    /// while the set has no room for `room` more of `capacity`.
    fn forget(&mut self, now: Instant, capacity: usize, room: usize) {
        while let Some((k, t)) = self.order.front().copied() {
            let current = self.live.get(&k) == Some(&t);
            let full = self.live.len() + room > capacity;
            let young = now.duration_since(t) < REMEMBER;
            if current && young && !full {
                break;
            }
            self.order.pop_front();
            if current {
                self.live.remove(&k);
                if young {
                    self.dropped += 1;
                }
            }
        }
    }
}

impl Announced {
    pub fn new(capacity: usize) -> Self {
        Announced {
            inner: Arc::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AnnouncedInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection from `local_port` to `server`, before it is made.
    pub fn announce(&self, local_port: u16, server: SocketAddr) {
        self.announce_at(local_port, server, Instant::now());
    }

    fn announce_at(&self, local_port: u16, server: SocketAddr, now: Instant) {
        let mut g = self.lock();
        g.forget(now, self.capacity, 1);
        let key = (local_port, canonical(server));
        g.live.insert(key, now);
        g.order.push_back((key, now));
    }

    /// The set of this process: every connection the sensor makes is
    /// announced here (probes, the Kubernetes client).
    pub fn process() -> Announced {
        static PROCESS: std::sync::LazyLock<Announced> =
            std::sync::LazyLock::new(Announced::default);
        PROCESS.clone()
    }

    /// Whether the connection between `a` and `b` (either way) was
    /// announced. Asking renews it: a connection that lives for days (a
    /// watch) is asked at every flow report, and stays known.
    pub fn contains(&self, a: SocketAddr, b: SocketAddr) -> bool {
        self.contains_at(a, b, Instant::now())
    }

    fn contains_at(&self, a: SocketAddr, b: SocketAddr, now: Instant) -> bool {
        let mut g = self.lock();
        if g.live.is_empty() {
            return false;
        }
        let (a, b) = (canonical(a), canonical(b));
        let found = [(a.port(), b), (b.port(), a)]
            .into_iter()
            .find_map(|k| g.live.get(&k).map(|t| (k, *t)));
        let Some((key, at)) = found else {
            return false;
        };
        // Renewed at most twice per REMEMBER, so that `order` holds at
        // most a few entries per connection.
        if now.duration_since(at) >= REMEMBER / 2 {
            g.forget(now, self.capacity, 0);
            if !g.live.contains_key(&key) {
                // Not asked for longer than REMEMBER: forgotten.
                return false;
            }
            g.live.insert(key, now);
            g.order.push_back((key, now));
        }
        true
    }

    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

impl Default for Announced {
    fn default() -> Self {
        Announced::new(MAX_KNOWN)
    }
}

/// What a socket of this process is, for the capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A TCP socket with this local endpoint.
    Tcp(SocketAddr),
    /// A TCP socket without a port yet (created, not yet bound or
    /// connected): asked again at every lookup until it has one.
    Unbound,
    /// Not TCP over IP (Unix, netlink, UDP): never a connection's end.
    Other,
}

#[derive(Debug, Default)]
pub struct OwnSockets {
    local_ips: HashSet<IpAddr>,
    addrs_read: Option<Instant>,
    /// This process's sockets at the last lookup, by inode.
    sockets: HashMap<u64, Place>,
    /// Client endpoints of this process's sockets, and when a listing
    /// last found each.
    known: HashMap<SocketAddr, Instant>,
    announced: Announced,
    /// When the last listing of this process's sockets began (µs since
    /// the epoch, by `clock`).
    listed_us: Option<i64>,
    clock: Clock,
    /// `fd_table_size`, re-read with the addresses and whenever a
    /// listing finds a descriptor at or beyond it.
    fd_table: i32,
    /// poll()'s array, kept between listings.
    poll: Vec<libc::pollfd>,
    logged: bool,
    stats: OwnStats,
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

impl OwnSockets {
    /// Knows the connections announced in the process's set.
    pub fn new() -> Self {
        Self {
            announced: Announced::process(),
            ..Self::default()
        }
    }

    /// The set the sensor's short-lived connections are announced in.
    pub fn announced(&self) -> Announced {
        self.announced.clone()
    }

    pub fn stats(&self) -> OwnStats {
        OwnStats {
            dropped: self.stats.dropped + self.announced.dropped(),
            ..self.stats.clone()
        }
    }

    /// Whether the connection from `client` to `server`, first seen at
    /// `since_us` (µs since the epoch), is the sensor's own; counts it.
    pub fn claim(&mut self, client: SocketAddr, server: SocketAddr, since_us: i64) -> bool {
        let own = self.check(client, server, since_us);
        if own {
            self.stats.connections += 1;
        }
        own
    }

    /// Like `claim`, without counting: a connection asked about at every
    /// periodic report is counted once, at its end.
    pub fn check(&mut self, client: SocketAddr, server: SocketAddr, since_us: i64) -> bool {
        self.announced.contains(client, server)
            || self.is_own(canonical(client), since_us, Instant::now())
    }

    fn is_own(&mut self, client: SocketAddr, since_us: i64, now: Instant) -> bool {
        if self.known.contains_key(&client) {
            return true;
        }
        // A socket of ours sent the connection's first packet, so it was in
        // every listing made after that: one listing answers a whole burst
        // of connections from this host (a storm from the node itself)
        // instead of one listing each.
        if self
            .listed_us
            .is_some_and(|l| l > since_us.saturating_add(LISTING_SLACK_US))
        {
            return false;
        }
        if self
            .addrs_read
            .is_none_or(|t| now.duration_since(t) >= ADDRS_EVERY)
        {
            self.addrs_read = Some(now);
            match local_ips() {
                Ok(ips) => self.local_ips = ips,
                Err(e) => self.failed(e),
            }
            self.read_fd_table();
        }
        if !self.local_ips.contains(&client.ip()) {
            return false;
        }
        self.lookup(now);
        self.known.contains_key(&client)
    }

    fn read_fd_table(&mut self) {
        match fd_table_size() {
            Ok(n) => self.fd_table = n,
            Err(e) => self.failed(e),
        }
    }

    fn failed(&mut self, e: std::io::Error) {
        self.stats.lookup_errors += 1;
        if !self.logged {
            self.logged = true;
            tracing::warn!(
                "cannot list the sensor's own sockets (its connections may be reported as traffic): {e}"
            );
        }
    }

    fn lookup(&mut self, now: Instant) {
        let listed_us = self.clock.now_us();
        let (mut fds, highest) = socket_fds(self.fd_table + FD_MARGIN, &mut self.poll);
        if highest >= self.fd_table {
            // The table grew since it was last read: list all of it (unless
            // it cannot be read, which is counted).
            let known = self.fd_table;
            self.read_fd_table();
            if self.fd_table > known {
                (fds, _) = socket_fds(self.fd_table + FD_MARGIN, &mut self.poll);
            }
        }
        self.stats.listings += 1;
        self.listed_us = Some(listed_us);
        let mut sockets = HashMap::with_capacity(fds.len());
        for (fd, inode) in fds {
            let place = match self.sockets.get(&inode) {
                Some(p) if *p != Place::Unbound => *p,
                _ => {
                    self.stats.endpoint_reads += 1;
                    place(fd)
                }
            };
            if let Place::Tcp(local) = place {
                self.known.insert(local, now);
            }
            sockets.insert(inode, place);
        }
        self.sockets = sockets;
        self.known
            .retain(|_, seen| now.duration_since(*seen) < REMEMBER);
        if self.known.len() > MAX_KNOWN {
            let mut by_age: Vec<_> = self.known.iter().map(|(a, seen)| (*seen, *a)).collect();
            by_age.sort();
            let excess = self.known.len() - MAX_KNOWN;
            for (_, a) in by_age.into_iter().take(excess) {
                self.known.remove(&a);
            }
            self.stats.dropped += excess as u64;
        }
    }
}

/// Addresses of this network namespace's interfaces.
fn local_ips() -> std::io::Result<HashSet<IpAddr>> {
    let mut ips = HashSet::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr of the family it names.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: AF_INET: a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                ips.insert(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if family == libc::AF_INET6 {
                // SAFETY: AF_INET6: a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                ips.insert(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)).to_canonical());
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: the list getifaddrs allocated, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(ips)
}

/// A descriptor takes the lowest free number, so the table grows only once
/// all of it is open, and the first number past it is the next to be
/// taken: a listing looks this far past the table's end to notice that it
/// grew.
const FD_MARGIN: i32 = 8;

/// The size of this process's descriptor table (`FDSize`): every open
/// descriptor is below it.
fn fd_table_size() -> std::io::Result<i32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("FDSize:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| std::io::Error::other("no FDSize in /proc/self/status"))
}

/// This process's sockets (descriptor and inode) and the highest open
/// descriptor, of the numbers below `below`. One poll() over all of them tells the open
/// ones apart (a closed number reports POLLNVAL, and nothing waits with a
/// zero timeout), and only those are asked fstat. Listing /proc/self/fd
/// built a procfs entry per descriptor (about 60 µs); fstat of every
/// number cost a syscall each, hundreds of them for a few dozen open
/// descriptors when one sits near the table's end (an inherited jobserver
/// pipe at 251 made a sixth of the sensor's CPU in a connection storm).
fn socket_fds(below: i32, fds: &mut Vec<libc::pollfd>) -> (Vec<(i32, u64)>, i32) {
    fds.clear();
    fds.extend((0..below.max(0)).map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    }));
    // SAFETY: `fds` is an array of `fds.len()` pollfd that poll may write.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) } >= 0;
    let mut sockets = Vec::new();
    let mut highest = -1;
    for p in fds.iter() {
        // If poll itself failed, every number is asked.
        if polled && p.revents & libc::POLLNVAL != 0 {
            continue;
        }
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstat writes a whole `stat` into `st` when it returns 0;
        // a number not open fails and is skipped.
        if unsafe { libc::fstat(p.fd, st.as_mut_ptr()) } != 0 {
            continue;
        }
        highest = p.fd;
        // SAFETY: fstat succeeded, so `st` is initialised.
        let st = unsafe { st.assume_init() };
        if st.st_mode & libc::S_IFMT == libc::S_IFSOCK {
            sockets.push((p.fd, st.st_ino));
        }
    }
    (sockets, highest)
}

/// Asks the socket behind descriptor `fd` what it is. The descriptor was
/// open a moment ago; if another thread closed it and a new socket took
/// its number since, that socket is this process's too.
fn place(fd: i32) -> Place {
    // SAFETY: only borrowed for the two getsockopt/getsockname calls
    // below, which fail harmlessly on a number closed meanwhile.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let sock = socket2::SockRef::from(&fd);
    if !matches!(sock.r#type(), Ok(socket2::Type::STREAM)) {
        return Place::Other;
    }
    match sock.local_addr().ok().and_then(|a| a.as_socket()) {
        Some(a) if a.port() != 0 => Place::Tcp(canonical(a)),
        Some(_) => Place::Unbound,
        None => Place::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A connection this process makes is its own from its first
    /// sighting; one another process makes is not; a pod's address is
    /// never looked up.
    #[test]
    fn one_listing_answers_every_connection_first_seen_before_it() {
        let mut own = OwnSockets::new();
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let long_ago = Clock::new().now_us() - 60_000_000;
        assert!(!own.claim("127.0.0.1:40001".parse().unwrap(), server, long_ago));
        assert_eq!(own.stats.listings, 1);
        assert!(!own.claim("127.0.0.1:40002".parse().unwrap(), server, long_ago));
        assert_eq!(
            own.stats.listings, 1,
            "a socket of ours would have been listed"
        );
        // First seen after the listing: its socket may be newer than it.
        let later = Clock::new().now_us() + 60_000_000;
        assert!(!own.claim("127.0.0.1:40003".parse().unwrap(), server, later));
        assert_eq!(own.stats.listings, 2);
    }

    #[test]
    fn this_process_sockets_are_own_and_others_are_not() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (_accepted, _) = l.accept().unwrap();
        let server = l.local_addr().unwrap();
        let mut own = OwnSockets::new();
        assert!(own.claim(c.local_addr().unwrap(), server, i64::MAX));
        // Remembered: no second listing.
        assert!(own.claim(c.local_addr().unwrap(), server, i64::MAX));
        assert_eq!(own.stats.listings, 1);
        assert_eq!(own.stats.connections, 2);
        let mut child = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}; sleep 1"))
            .spawn()
            .expect("bash");
        let (_s, other) = l.accept().unwrap();
        assert!(
            !own.claim(other, server, i64::MAX),
            "{other} is another process's"
        );
        child.wait().unwrap();
        let listings = own.stats.listings;
        assert!(!own.claim("10.244.9.9:40000".parse().unwrap(), server, i64::MAX));
        assert_eq!(own.stats.listings, listings);
        assert_eq!(own.stats.connections, 2);
        assert_eq!(own.stats.lookup_errors, 0);
    }

    /// A socket listed before its connect() (no port yet) is asked again
    /// at the next listing, and its connection is then known as its own.
    #[test]
    fn a_socket_listed_before_it_connects_is_own_once_it_does() {
        use socket2::{Domain, Socket, Type};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = l.local_addr().unwrap();
        let mut own = OwnSockets::new();
        let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let stranger: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(!own.claim(stranger, server, i64::MAX));
        // Connected through the listen backlog: not accepted, so this
        // process has no new socket that would make the listing look again.
        sock.connect(&server.into()).unwrap();
        let client = sock.local_addr().unwrap().as_socket().unwrap();
        assert!(own.claim(client, server, i64::MAX), "{client}");
        assert_eq!(own.stats.lookup_errors, 0);
        drop(l);
    }

    /// A descriptor near the table's end is listed, and so is one past
    /// the end the listing last knew (the table grew in between).
    #[test]
    fn sockets_at_and_past_the_end_of_the_descriptor_table_are_own() {
        use std::os::fd::AsRawFd;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let server = l.local_addr().unwrap();
        let mut own = OwnSockets::new();
        assert!(!own.claim("127.0.0.1:1".parse().unwrap(), server, i64::MAX));
        let table = own.fd_table;
        assert!(table > 0, "the table's size was read");
        for min in [table - 1, table] {
            let c = TcpStream::connect(server).unwrap();
            let _accepted = l.accept().unwrap();
            let client = c.local_addr().unwrap();
            // SAFETY: duplicates an open descriptor to the lowest free
            // number from `min` on; closed below.
            let high = unsafe { libc::fcntl(c.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
            assert!(high >= min);
            drop(c);
            assert!(own.claim(client, server, i64::MAX), "descriptor {high}");
            // SAFETY: `high` is ours and nothing else uses it.
            unsafe { libc::close(high) };
        }
        assert!(own.fd_table > table, "the grown table was read again");
        assert_eq!(own.stats.lookup_errors, 0);
    }

    /// An announced connection asked about (at each flow report) stays
    /// known however long it lives; one not asked for REMEMBER is gone.
    #[test]
    fn asking_renews_an_announced_connection() {
        let own = Announced::new(8);
        let s: SocketAddr = "10.96.0.1:443".parse().unwrap();
        let c: SocketAddr = "10.0.0.9:40000".parse().unwrap();
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        own.announce_at(40000, s, t0);
        for secs in [61, 170, 280, 390] {
            assert!(own.contains_at(c, s, at(secs)), "at {secs} s");
        }
        assert_eq!(own.lock().order.len(), 2, "{:?}", own.lock().order);
        assert!(!own.contains_at(c, s, at(390 + 121)));
        assert_eq!(own.dropped(), 0);
    }

    #[test]
    fn announced_both_directions_and_a_full_set_counts_what_it_drops() {
        let own = Announced::new(2);
        let s: SocketAddr = "10.0.0.1:443".parse().unwrap();
        own.announce(40000, s);
        let c: SocketAddr = "10.0.0.9:40000".parse().unwrap();
        assert!(own.contains(c, s));
        assert!(own.contains(s, c));
        assert!(own.contains("[::ffff:10.0.0.9]:40000".parse().unwrap(), s));
        assert!(!own.contains("10.0.0.9:40001".parse().unwrap(), s));
        own.announce(40001, s);
        own.announce(40002, s);
        assert_eq!(own.dropped(), 1);
        assert!(!own.contains(c, s));
        assert!(own.contains("10.0.0.9:40002".parse().unwrap(), s));
        let mut sockets = OwnSockets {
            announced: own,
            ..OwnSockets::default()
        };
        // Announced connections need no lookup, even from a pod address.
        assert!(sockets.claim("10.0.0.9:40002".parse().unwrap(), s, i64::MAX));
        assert_eq!(sockets.stats().connections, 1);
        assert_eq!(sockets.stats().dropped, 1);
        assert_eq!(sockets.stats().listings, 0);
    }
}
