//! The prober: worker threads, the cache, the rate; see the module docs
//! of `probe`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::client::{self, Target};
use super::scope::{HostView, ProbeScope};
use crate::capture::own::Announced;
use crate::model::{ProbeOutcome, ProbeResult, Serving};

/// How long a failed probe's outcome is reused at most: a server that was
/// down may be up a minute later.
const FAILURE_TTL: Duration = Duration::from_secs(60);

/// How often the host's addresses and routes are read again.
const HOST_REFRESH: Duration = Duration::from_secs(10);

/// Which interfaces the capture watches (no-inventory `local` scope).
pub type Watched = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct ProbeConfig {
    pub scope: ProbeScope,
    pub ttl: Duration,
    /// Probes started per second at most (also the burst).
    pub rate: f64,
    /// Probes at once at most.
    pub concurrency: usize,
    pub timeout: Duration,
    /// This node's name, for `local` with an inventory.
    pub node: Option<String>,
    /// (server, SNI) outcomes cached at most.
    pub cache_entries: usize,
    /// Connections waiting for a probe at most.
    pub max_held: usize,
    pub watched: Watched,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            scope: ProbeScope::Off,
            ttl: Duration::from_secs(3600),
            rate: 5.0,
            concurrency: 4,
            timeout: Duration::from_secs(3),
            node: None,
            cache_entries: 65_536,
            max_held: 10_000,
            watched: Arc::new(|_: &str| true),
        }
    }
}

impl std::fmt::Debug for ProbeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeConfig")
            .field("scope", &self.scope)
            .field("ttl", &self.ttl)
            .field("rate", &self.rate)
            .field("concurrency", &self.concurrency)
            .field("timeout", &self.timeout)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// The probe stage's counters (`sensor.probes`, the summary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeStats {
    /// Outcomes by `ProbeResult` (its discriminant): probes made, and
    /// probes not made (`rate_limited`, `out_of_scope`).
    pub results: [u64; ProbeResult::ALL.len()],
    /// Handshakes answered from the cache.
    pub cache_hits: u64,
    /// Cache entries dropped before their time because the cache was full.
    pub cache_evicted: u64,
    /// Connections reported without waiting because `max_held` were waiting.
    pub held_dropped: u64,
}

impl ProbeStats {
    pub fn count(&mut self, r: ProbeResult) {
        self.results[r as usize] += 1;
    }

    pub fn get(&self, r: ProbeResult) -> u64 {
        self.results[r as usize]
    }
}

/// The cache key: the server and the SNI it was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub server: SocketAddr,
    pub sni: Option<String>,
}

/// A chain as DER certificates, shared by the cache and the connections.
pub type Chain = Arc<[Vec<u8>]>;

struct Entry {
    outcome: ProbeOutcome,
    chain: Chain,
    at: Instant,
    stamp: u64,
}

struct Job {
    key: ProbeKey,
    target: Target,
    stamp: u64,
}

/// A probe that ended.
pub struct Done {
    pub key: ProbeKey,
    pub outcome: ProbeOutcome,
    pub chain: Chain,
    stamp: u64,
}

/// The answer to a request.
pub enum Answer {
    /// Known now: from the cache, or why no probe is made.
    Now(ProbeOutcome, Chain),
    /// A probe is on its way; its `Done` will carry the key.
    Pending(ProbeKey),
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn empty() -> Chain {
    Arc::from(Vec::new())
}

/// An answer without a probe.
pub fn not_probed(result: ProbeResult) -> ProbeOutcome {
    ProbeOutcome {
        result,
        time_us: None,
        cached: false,
    }
}

pub struct Prober {
    cfg: ProbeConfig,
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    cache: HashMap<ProbeKey, Entry>,
    /// Insertion order, for evicting the oldest entry of a full cache.
    order: VecDeque<(ProbeKey, Instant)>,
    in_flight: HashSet<ProbeKey>,
    tokens: f64,
    refilled: Instant,
    host: HostView,
    host_read: Option<Instant>,
    pub stats: ProbeStats,
}

impl Prober {
    /// Starts the workers, which announce each connection in `own`
    /// before making it. `cfg.scope` must not be `Off`.
    pub fn new(cfg: ProbeConfig, own: Announced) -> Self {
        let concurrency = cfg.concurrency.max(1);
        // Room for one burst beyond the probes running: anything more
        // would wait longer than the rate allows anyway.
        let queue = (cfg.rate.ceil() as usize).clamp(1, 1024);
        let (jobs, rx) = mpsc::sync_channel::<Job>(queue);
        let (tx, done) = mpsc::channel();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..concurrency {
            let rx = rx.clone();
            let tx = tx.clone();
            let own = own.clone();
            let timeout = cfg.timeout;
            std::thread::Builder::new()
                .name(format!("probe-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(j) => j,
                            Err(_) => return,
                        };
                        let fetched = client::fetch(&job.target, timeout, &own);
                        let (result, chain) = match fetched {
                            Ok(c) => (ProbeResult::Ok, Arc::from(c)),
                            Err(r) => (r, empty()),
                        };
                        let d = Done {
                            key: job.key,
                            outcome: ProbeOutcome {
                                result,
                                time_us: Some(now_us()),
                                cached: false,
                            },
                            chain,
                            stamp: job.stamp,
                        };
                        if tx.send(d).is_err() {
                            return;
                        }
                    }
                })
                .expect("spawning a probe worker");
        }
        Prober {
            tokens: cfg.rate,
            refilled: Instant::now(),
            cfg,
            jobs,
            done,
            cache: HashMap::new(),
            order: VecDeque::new(),
            in_flight: HashSet::new(),
            host: HostView::default(),
            host_read: None,
            stats: ProbeStats::default(),
        }
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.cfg
    }

    /// Whether `server` is in scope. `serving` is the inventory's view;
    /// `inventory` says whether there is an inventory at all.
    pub fn in_scope(
        &mut self,
        server: SocketAddr,
        serving: Option<&Serving>,
        inventory: bool,
    ) -> bool {
        let by_host = |p: &mut Self| {
            if p.host_read.is_none_or(|t| t.elapsed() >= HOST_REFRESH) {
                p.host = HostView::read();
                p.host_read = Some(Instant::now());
            }
            p.host.is_local(server.ip(), p.cfg.watched.as_ref())
        };
        match (self.cfg.scope, inventory) {
            (ProbeScope::Off, _) => false,
            (ProbeScope::All, _) => true,
            (_, false) => by_host(self),
            (ProbeScope::Cluster, true) => serving.is_some_and(|s| s.in_cluster),
            (ProbeScope::Local, true) => serving
                .is_some_and(|s| s.node.is_some() && s.node.as_deref() == self.cfg.node.as_deref()),
        }
    }

    fn take_token(&mut self) -> bool {
        let now = Instant::now();
        let dt = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + dt * self.cfg.rate).min(self.cfg.rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn fresh(&self, e: &Entry, stamp: u64) -> bool {
        let ttl = if e.outcome.result == ProbeResult::Ok {
            self.cfg.ttl
        } else {
            self.cfg.ttl.min(FAILURE_TTL)
        };
        e.stamp == stamp && e.at.elapsed() < ttl
    }

    /// Asks for the chain `target` serves. `stamp` is the inventory's
    /// stamp of the server (0 without one).
    pub fn request(&mut self, target: Target, stamp: u64) -> Answer {
        let key = ProbeKey {
            server: target.server,
            sni: target.sni.clone(),
        };
        if let Some(e) = self.cache.get(&key)
            && self.fresh(e, stamp)
        {
            self.stats.cache_hits += 1;
            let outcome = ProbeOutcome {
                cached: true,
                ..e.outcome
            };
            return Answer::Now(outcome, e.chain.clone());
        }
        if self.in_flight.contains(&key) {
            return Answer::Pending(key);
        }
        if !self.take_token() {
            self.stats.count(ProbeResult::RateLimited);
            return Answer::Now(not_probed(ProbeResult::RateLimited), empty());
        }
        let job = Job {
            key: key.clone(),
            target,
            stamp,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {
                self.in_flight.insert(key.clone());
                Answer::Pending(key)
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.count(ProbeResult::RateLimited);
                Answer::Now(not_probed(ProbeResult::RateLimited), empty())
            }
        }
    }

    fn store(&mut self, d: &Done) {
        self.in_flight.remove(&d.key);
        self.stats.count(d.outcome.result);
        let at = Instant::now();
        if !self.cache.contains_key(&d.key) {
            while self.cache.len() >= self.cfg.cache_entries.max(1) {
                let Some((k, t)) = self.order.pop_front() else {
                    break;
                };
                if self.cache.get(&k).is_some_and(|e| e.at == t) {
                    let e = self.cache.remove(&k).expect("present");
                    if self.fresh(&e, e.stamp) {
                        self.stats.cache_evicted += 1;
                    }
                }
            }
        }
        self.order.push_back((d.key.clone(), at));
        self.cache.insert(
            d.key.clone(),
            Entry {
                outcome: d.outcome,
                chain: d.chain.clone(),
                at,
                stamp: d.stamp,
            },
        );
        // Superseded order entries are skipped when popped; keep the
        // queue from growing past the cache by much.
        if self.order.len() > 2 * self.cfg.cache_entries.max(1) {
            let cache = &self.cache;
            self.order
                .retain(|(k, t)| cache.get(k).is_some_and(|e| e.at == *t));
        }
    }

    /// Probes that ended since the last call, without waiting.
    pub fn poll(&mut self) -> Vec<Done> {
        let mut out = Vec::new();
        while let Ok(d) = self.done.try_recv() {
            self.store(&d);
            out.push(d);
        }
        out
    }

    /// Waits for every probe on its way (each ends by its timeout).
    pub fn wait_all(&mut self) -> Vec<Done> {
        let mut out = self.poll();
        let limit = Instant::now() + self.cfg.timeout * 2 + Duration::from_secs(1);
        while !self.in_flight.is_empty() {
            let left = limit.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left) {
                Ok(d) => {
                    self.store(&d);
                    out.push(d);
                }
                Err(_) => break,
            }
        }
        out
    }

    /// Probes on their way.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn stats(&self) -> &ProbeStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prober(rate: f64, cache_entries: usize) -> Prober {
        Prober::new(
            ProbeConfig {
                scope: ProbeScope::All,
                rate,
                cache_entries,
                timeout: Duration::from_millis(500),
                ..ProbeConfig::default()
            },
            Announced::default(),
        )
    }

    fn target(port: u16) -> Target {
        Target {
            // Nothing listens on these loopback ports: refused at once.
            server: SocketAddr::from(([127, 0, 0, 1], port)),
            sni: Some("x.test".into()),
            alpn: Vec::new(),
        }
    }

    #[test]
    fn rate_limit_answers_at_once_and_the_cache_answers_again() {
        let mut p = prober(2.0, 16);
        let mut pending = 0;
        let mut limited = 0;
        for port in 1..=10 {
            match p.request(target(port), 0) {
                Answer::Pending(_) => pending += 1,
                Answer::Now(o, _) => {
                    assert_eq!(o.result, ProbeResult::RateLimited);
                    limited += 1;
                }
            }
        }
        assert_eq!((pending, limited), (2, 8));
        let done = p.wait_all();
        assert_eq!(done.len(), 2);
        assert!(
            done.iter()
                .all(|d| d.outcome.result == ProbeResult::Refused)
        );
        assert_eq!(p.stats.get(ProbeResult::Refused), 2);
        assert_eq!(p.stats.get(ProbeResult::RateLimited), 8);
        match p.request(target(1), 0) {
            Answer::Now(o, _) => assert!(o.cached && o.result == ProbeResult::Refused),
            Answer::Pending(_) => panic!("cached outcome expected"),
        }
        // A new stamp (a renewal in the inventory) is a miss.
        std::thread::sleep(Duration::from_millis(600));
        assert!(matches!(p.request(target(1), 7), Answer::Pending(_)));
    }

    #[test]
    fn a_full_cache_evicts_the_oldest_and_counts_it() {
        let mut p = prober(1000.0, 2);
        for port in 1..=3 {
            assert!(matches!(p.request(target(port), 0), Answer::Pending(_)));
            p.wait_all();
        }
        assert_eq!(p.stats.cache_evicted, 1);
        assert!(matches!(p.request(target(1), 0), Answer::Pending(_)));
        assert!(matches!(p.request(target(3), 0), Answer::Now(..)));
    }
}
