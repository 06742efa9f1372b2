//! Liveness and readiness over HTTP for Kubernetes probes: `/healthz`
//! (the run loop is turning) and `/readyz` (the programs are attached and,
//! when the inventory is on, it has synced).
//!
//! The state is a handful of atomics in [`Health`]: the run loop and the
//! inventory set them, the server only reads them. The server runs on the
//! run loop's own runtime, so a wedged runtime also fails the probe (by
//! timeout), which is what a liveness probe is for.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// `--health-listen` default: off, so a sensor run by hand opens no port
/// and two of them in one network namespace do not collide. The DaemonSet
/// passes 0.0.0.0:9878 (not 9808: the CSI liveness-probe sidecar takes
/// that one on the host network of many nodes).
pub const DEFAULT_LISTEN: &str = "none";

/// The loop beats at least once a second (its sweep timer); this much
/// silence means it is stuck.
pub const STALL: Duration = Duration::from_secs(15);
/// Probe connections served at once; more are closed at accept and counted.
pub const MAX_CONNECTIONS: usize = 16;
/// A client that has not sent its request head by then is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// What the probes report. Cheap to share: clone the `Arc`.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// Milliseconds since `start` of the loop's last beat.
    beat_ms: AtomicU64,
    attached: AtomicU64,
    inventory_required: AtomicBool,
    inventory_synced: AtomicBool,
    rejected: AtomicU64,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            beat_ms: AtomicU64::new(0),
            attached: AtomicU64::new(0),
            inventory_required: AtomicBool::new(false),
            inventory_synced: AtomicBool::new(false),
            rejected: AtomicU64::new(0),
        }
    }
}

/// Why `/readyz` says no.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    NoInterface,
    InventoryNotSynced,
}

impl NotReady {
    fn text(self) -> &'static str {
        match self {
            NotReady::NoInterface => "no interface attached",
            NotReady::InventoryNotSynced => "inventory not synced",
        }
    }
}

impl Health {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Called by the run loop on every turn.
    pub fn beat(&self) {
        self.beat_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Interfaces the programs are attached to right now.
    pub fn set_attached(&self, interfaces: usize) {
        self.attached.store(interfaces as u64, Ordering::Relaxed);
    }

    /// Readiness waits for [`Health::set_inventory_synced`] once this is set.
    pub fn require_inventory(&self) {
        self.inventory_required.store(true, Ordering::Relaxed);
    }

    pub fn set_inventory_synced(&self, synced: bool) {
        self.inventory_synced.store(synced, Ordering::Relaxed);
    }

    /// Probe connections closed at accept because [`MAX_CONNECTIONS`] were open.
    pub fn rejected_connections(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// `None` when the loop beat within [`STALL`]; else how long it has been silent.
    pub fn stalled(&self) -> Option<Duration> {
        let silent = self
            .now_ms()
            .saturating_sub(self.beat_ms.load(Ordering::Relaxed));
        let silent = Duration::from_millis(silent);
        (silent > STALL).then_some(silent)
    }

    pub fn ready(&self) -> Result<(), NotReady> {
        if self.attached.load(Ordering::Relaxed) == 0 {
            return Err(NotReady::NoInterface);
        }
        if self.inventory_required.load(Ordering::Relaxed)
            && !self.inventory_synced.load(Ordering::Relaxed)
        {
            return Err(NotReady::InventoryNotSynced);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("--health-listen: `{0}` is neither `none` nor an address like 0.0.0.0:9878 or [::]:9878")]
pub struct ListenError(String);

/// `none` turns the endpoint off.
pub fn parse_listen(v: &str) -> Result<Option<SocketAddr>, ListenError> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    v.parse().map(Some).map_err(|_| ListenError(v.to_string()))
}

#[derive(Debug, thiserror::Error)]
#[error("--health-listen {addr}: {source}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// The bound listener; [`HealthServer::serve`] runs it until the runtime stops.
pub struct HealthServer {
    listener: TcpListener,
    health: Arc<Health>,
}

impl HealthServer {
    /// Binds at start-up so a taken port is an error naming the flag.
    pub async fn bind(addr: SocketAddr, health: Arc<Health>) -> Result<Self, BindError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })?;
        Ok(Self { listener, health })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn serve(self) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut warned = false;
        loop {
            let (stream, _) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("health endpoint: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                self.health.rejected.fetch_add(1, Ordering::Relaxed);
                if !warned {
                    warned = true;
                    tracing::warn!(
                        "health endpoint: {MAX_CONNECTIONS} connections open, closing new ones (counted)"
                    );
                }
                continue;
            };
            let health = self.health.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let health = health.clone();
                    async move { Ok::<_, Infallible>(respond(&health, &req)) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(e) = conn.await {
                    tracing::debug!("health endpoint connection: {e}");
                }
                drop(permit);
            });
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn respond(health: &Health, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n".into());
    }
    match req.uri().path() {
        "/healthz" => match health.stalled() {
            None => text(StatusCode::OK, "ok\n".into()),
            Some(d) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("run loop silent for {}s\n", d.as_secs()),
            ),
        },
        "/readyz" => match health.ready() {
            Ok(()) => text(StatusCode::OK, "ok\n".into()),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {}\n", why.text()),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "try /healthz or /readyz\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// One request; `None` when the server closed without answering.
    async fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        let status = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        Some((status, body))
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        try_get(addr, path).await.expect("an HTTP response")
    }

    async fn server(health: Arc<Health>) -> SocketAddr {
        let s = HealthServer::bind("127.0.0.1:0".parse().unwrap(), health)
            .await
            .expect("bind");
        let addr = s.local_addr().expect("addr");
        tokio::spawn(s.serve());
        addr
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn readiness_follows_attachment_and_inventory() {
        rt().block_on(async {
            let h = Health::new();
            h.beat();
            let addr = server(h.clone()).await;
            assert_eq!(get(addr, "/healthz").await.0, 200);
            let (code, body) = get(addr, "/readyz").await;
            assert_eq!(
                (code, body.as_str()),
                (503, "not ready: no interface attached\n")
            );
            h.set_attached(2);
            assert_eq!(get(addr, "/readyz").await.0, 200);
            h.require_inventory();
            let (code, body) = get(addr, "/readyz").await;
            assert_eq!(
                (code, body.as_str()),
                (503, "not ready: inventory not synced\n")
            );
            h.set_inventory_synced(true);
            assert_eq!(get(addr, "/readyz").await.0, 200);
            h.set_attached(0);
            assert_eq!(get(addr, "/readyz").await.0, 503);
            assert_eq!(get(addr, "/metrics").await.0, 404);
        });
    }

    #[test]
    fn a_silent_loop_fails_liveness() {
        let h = Health::default();
        // A beat far in the past, as if the loop stopped turning.
        let old = Health {
            start: Instant::now() - STALL - Duration::from_secs(5),
            ..Health::default()
        };
        h.beat();
        assert_eq!(h.stalled(), None);
        old.beat_ms.store(0, Ordering::Relaxed);
        let silent = old.stalled().expect("stalled");
        assert!(silent > STALL, "{silent:?}");
    }

    #[test]
    fn listen_flag_values() {
        assert_eq!(parse_listen("none").unwrap(), None);
        assert_eq!(parse_listen(DEFAULT_LISTEN).unwrap(), None);
        assert_eq!(
            parse_listen("0.0.0.0:9878").unwrap(),
            Some("0.0.0.0:9878".parse().unwrap())
        );
        assert_eq!(
            parse_listen("[::1]:1").unwrap(),
            Some("[::1]:1".parse().unwrap())
        );
        let e = parse_listen("localhost").unwrap_err().to_string();
        assert!(e.starts_with("--health-listen: `localhost`"), "{e}");
    }

    #[test]
    fn a_bad_address_names_the_flag() {
        rt().block_on(async {
            let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = taken.local_addr().expect("addr");
            let err = HealthServer::bind(addr, Health::new())
                .await
                .err()
                .expect("port in use");
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("--health-listen {addr}: ")),
                "{msg}"
            );
        });
    }

    #[test]
    fn connections_past_the_bound_are_closed_and_counted() {
        rt().block_on(async {
            let h = Health::new();
            h.beat();
            let addr = server(h.clone()).await;
            // Idle connections that never send a request hold every slot.
            let mut idle = Vec::new();
            for _ in 0..MAX_CONNECTIONS {
                idle.push(TcpStream::connect(addr).await.expect("connect"));
            }
            // The next one finds no slot: closed at accept, no response.
            let extra = tokio::time::timeout(Duration::from_secs(10), try_get(addr, "/healthz"))
                .await
                .expect("closed, not left hanging");
            assert_eq!(extra, None);
            assert_eq!(h.rejected_connections(), 1);
            drop(idle);
            // Slots come back once the idle clients go.
            let mut code = 0;
            for _ in 0..100 {
                if let Some((c, _)) = try_get(addr, "/healthz").await {
                    code = c;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(code, 200);
        });
    }
}
