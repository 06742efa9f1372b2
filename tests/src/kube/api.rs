//! An in-process Kubernetes API server, plain HTTP on 127.0.0.1, speaking
//! the list and watch JSON the real one does: paged lists with
//! resourceVersion, watches from a resourceVersion with the event backlog,
//! bookmarks, 410 Gone after compaction, 404 for resources not served
//! (a CRD not installed). Tests drive it: apply and delete objects, send
//! bookmarks, compact, drop every connection, stop and restart it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::mpsc;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

type Body = BoxBody<Bytes, Infallible>;

/// Where each followed kind is listed cluster-wide.
pub fn path_of(api_version: &str, kind: &str) -> Option<&'static str> {
    Some(match (api_version, kind) {
        ("v1", "Pod") => "/api/v1/pods",
        ("v1", "Service") => "/api/v1/services",
        ("v1", "Node") => "/api/v1/nodes",
        ("v1", "Secret") => "/api/v1/secrets",
        ("discovery.k8s.io/v1", "EndpointSlice") => "/apis/discovery.k8s.io/v1/endpointslices",
        ("cert-manager.io/v1", "Certificate") => "/apis/cert-manager.io/v1/certificates",
        ("cert-manager.io/v1", "CertificateRequest") => {
            "/apis/cert-manager.io/v1/certificaterequests"
        }
        ("cert-manager.io/v1", "Issuer") => "/apis/cert-manager.io/v1/issuers",
        ("cert-manager.io/v1", "ClusterIssuer") => "/apis/cert-manager.io/v1/clusterissuers",
        ("trust.cert-manager.io/v1alpha1", "Bundle") => {
            "/apis/trust.cert-manager.io/v1alpha1/bundles"
        }
        _ => return None,
    })
}

const ALL: [(&str, &str); 10] = [
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "Node"),
    ("v1", "Secret"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("cert-manager.io/v1", "Certificate"),
    ("cert-manager.io/v1", "CertificateRequest"),
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "ClusterIssuer"),
    ("trust.cert-manager.io/v1alpha1", "Bundle"),
];

struct Resource {
    api_version: String,
    kind: String,
    served: bool,
    objects: BTreeMap<(String, String), Value>,
    /// (resourceVersion, type, object) since the last compaction.
    events: Vec<(u64, &'static str, Value)>,
}

struct Sub {
    path: String,
    tls_only: bool,
    bookmarks: bool,
    tx: mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>,
}

struct State {
    rv: u64,
    compacted: u64,
    resources: BTreeMap<&'static str, Resource>,
    requests: Vec<String>,
    subs: Vec<Sub>,
}

struct Inner {
    state: Mutex<State>,
    conns: Mutex<Vec<AbortHandle>>,
    acceptor: Mutex<Option<AbortHandle>>,
    addr: SocketAddr,
}

/// The fake API server; stops when dropped.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Inner>,
}

fn is_core(api_version: &str) -> bool {
    !api_version.contains('/') || api_version.starts_with("discovery.k8s.io/")
}

fn line(v: &Value) -> Result<Frame<Bytes>, Infallible> {
    let mut s = serde_json::to_vec(v).expect("json");
    s.push(b'\n');
    Ok(Frame::data(Bytes::from(s)))
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "details": {}, "code": code})
}

fn respond(code: StatusCode, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(v).expect("json"))).boxed())
        .expect("response")
}

fn key_of(v: &Value) -> (String, String) {
    let m = &v["metadata"];
    (
        m["namespace"].as_str().unwrap_or("").to_string(),
        m["name"].as_str().expect("metadata.name").to_string(),
    )
}

fn query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let v = v
                .replace("%3D", "=")
                .replace("%2F", "/")
                .replace("%2f", "/");
            (k.to_string(), v)
        })
        .collect()
}

fn is_tls_secret(v: &Value) -> bool {
    v["type"] == "kubernetes.io/tls"
}

impl FakeApi {
    /// On 127.0.0.1 of this process's network namespace.
    pub async fn start() -> FakeApi {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.expect("bind"))
    }

    /// On 127.0.0.1 inside network namespace `netns` (a sensor running
    /// there reaches it); the socket is made by a thread that enters it.
    pub async fn start_in_netns(netns: &str) -> FakeApi {
        let path = format!("/var/run/netns/{netns}");
        let std_listener = std::thread::scope(|s| {
            s.spawn(|| {
                use std::os::fd::AsRawFd;
                let f = std::fs::File::open(&path).expect("open netns");
                // SAFETY: moves only this short-lived thread into the namespace.
                let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind in netns");
                l.set_nonblocking(true).expect("nonblocking");
                l
            })
            .join()
            .expect("netns thread")
        });
        Self::start_on(TcpListener::from_std(std_listener).expect("tokio listener"))
    }

    fn start_on(listener: TcpListener) -> FakeApi {
        let addr = listener.local_addr().expect("addr");
        let resources = ALL
            .iter()
            .map(|(a, k)| {
                (
                    path_of(a, k).expect("path"),
                    Resource {
                        api_version: a.to_string(),
                        kind: k.to_string(),
                        served: true,
                        objects: BTreeMap::new(),
                        events: Vec::new(),
                    },
                )
            })
            .collect();
        let api = FakeApi {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    rv: 1000,
                    compacted: 0,
                    resources,
                    requests: Vec::new(),
                    subs: Vec::new(),
                }),
                conns: Mutex::new(Vec::new()),
                acceptor: Mutex::new(None),
                addr,
            }),
        };
        api.serve(listener);
        api
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    fn serve(&self, listener: TcpListener) {
        let inner = self.inner.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let inner2 = inner.clone();
                let conn = tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let inner = inner2.clone();
                        async move { Ok::<_, Infallible>(handle(&inner, req)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
                inner.conns.lock().unwrap().push(conn.abort_handle());
            }
        });
        *self.inner.acceptor.lock().unwrap() = Some(task.abort_handle());
    }

    /// A kubeconfig pointing at this server (context `fake`), plus a
    /// context `elsewhere` pointing at a port nobody listens on.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let p = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://{addr}
- name: nowhere
  cluster:
    server: http://127.0.0.1:9
users:
- name: tester
  user:
    token: not-checked
contexts:
- name: fake
  context: {{cluster: fake, user: tester}}
- name: elsewhere
  context: {{cluster: nowhere, user: tester}}
current-context: fake
",
            addr = self.addr()
        );
        std::fs::write(&p, text).expect("write kubeconfig");
        p
    }

    /// Adds or replaces an object (it must carry apiVersion and kind).
    pub fn apply(&self, mut obj: Value) {
        let api_version = obj["apiVersion"].as_str().expect("apiVersion").to_string();
        let kind = obj["kind"].as_str().expect("kind").to_string();
        let path = path_of(&api_version, &kind).expect("a followed kind");
        let mut st = self.inner.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let key = key_of(&obj);
        let meta = obj["metadata"].as_object_mut().expect("metadata");
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.entry("uid")
            .or_insert_with(|| json!(format!("00000000-0000-4000-8000-{:012}", rv)));
        let res = st.resources.get_mut(path).expect("resource");
        let kind_of_event = if res.objects.insert(key, obj.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        res.events.push((rv, kind_of_event, obj.clone()));
        notify(&mut st, path, kind_of_event, &obj);
    }

    pub fn delete(&self, api_version: &str, kind: &str, namespace: &str, name: &str) {
        let path = path_of(api_version, kind).expect("a followed kind");
        let mut st = self.inner.state.lock().unwrap();
        st.rv += 1;
        let rv = st.rv;
        let res = st.resources.get_mut(path).expect("resource");
        let Some(mut obj) = res
            .objects
            .remove(&(namespace.to_string(), name.to_string()))
        else {
            panic!("delete: no {kind} {namespace}/{name}");
        };
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        res.events.push((rv, "DELETED", obj.clone()));
        notify(&mut st, path, "DELETED", &obj);
    }

    /// Serves a resource or answers 404 for it, as when its CRD comes and goes.
    pub fn set_served(&self, api_version: &str, kind: &str, served: bool) {
        let path = path_of(api_version, kind).expect("a followed kind");
        let mut st = self.inner.state.lock().unwrap();
        st.resources.get_mut(path).expect("resource").served = served;
    }

    /// Forgets the event history: watches from older versions get 410 Gone.
    pub fn compact(&self) {
        let mut st = self.inner.state.lock().unwrap();
        st.compacted = st.rv;
        for r in st.resources.values_mut() {
            r.events.clear();
        }
    }

    /// Moves the resourceVersion on without any change to followed objects
    /// (other resources change in a real cluster).
    pub fn advance(&self, by: u64) {
        self.inner.state.lock().unwrap().rv += by;
    }

    pub fn resource_version(&self) -> u64 {
        self.inner.state.lock().unwrap().rv
    }

    /// A BOOKMARK with the current resourceVersion to every watch that
    /// allows them, then the end of those watches, as when a watch reaches
    /// its timeout: the client re-watches from the newest version it took in.
    pub fn bookmark(&self) {
        let mut st = self.inner.state.lock().unwrap();
        let rv = st.rv.to_string();
        let State {
            resources, subs, ..
        } = &mut *st;
        subs.retain(|s| {
            if !s.bookmarks {
                return true;
            }
            let r = &resources[s.path.as_str()];
            let ev = json!({"type": "BOOKMARK", "object": {"apiVersion": r.api_version,
                "kind": r.kind, "metadata": {"resourceVersion": rv}}});
            let _ = s.tx.unbounded_send(line(&ev));
            // Dropping the sender ends the response.
            false
        });
    }

    /// Ends every watch response cleanly, as the API server does when a
    /// watch reaches its timeout: clients re-watch from their last version.
    pub fn end_watches(&self) {
        self.inner.state.lock().unwrap().subs.clear();
    }

    /// Cuts every open connection mid-stream.
    pub fn drop_connections(&self) {
        self.inner.state.lock().unwrap().subs.clear();
        for c in self.inner.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// The API server goes away: no listener, no connections.
    pub fn stop(&self) {
        if let Some(a) = self.inner.acceptor.lock().unwrap().take() {
            a.abort();
        }
        self.drop_connections();
    }

    /// Back on the same address.
    pub async fn restart(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr()).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebinding {}: {e}", self.addr()),
            }
        };
        self.serve(listener);
    }

    /// Every request seen, as `path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().requests.clone()
    }

    /// Open watch streams per resource path.
    pub fn watchers(&self, path: &str) -> usize {
        let mut st = self.inner.state.lock().unwrap();
        st.subs.retain(|s| !s.tx.is_closed());
        st.subs.iter().filter(|s| s.path == path).count()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(a) = self.acceptor.lock().unwrap().take() {
            a.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

fn notify(st: &mut State, path: &str, kind: &'static str, obj: &Value) {
    let ev = json!({"type": kind, "object": obj});
    st.subs.retain(|s| {
        if s.path != path || (s.tls_only && !is_tls_secret(obj)) {
            return true;
        }
        s.tx.unbounded_send(line(&ev)).is_ok()
    });
}

fn handle(inner: &Inner, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let q = query(req.uri().query().unwrap_or(""));
    let mut st = inner.state.lock().unwrap();
    st.requests
        .push(format!("{path}?{}", req.uri().query().unwrap_or("")));
    let rv_now = st.rv;
    let compacted = st.compacted;
    let Some(res) = st.resources.get(path.as_str()) else {
        return respond(
            StatusCode::NOT_FOUND,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    };
    if !res.served {
        return respond(
            StatusCode::NOT_FOUND,
            &status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
        );
    }
    let tls_only = q.get("fieldSelector").map(String::as_str) == Some("type=kubernetes.io/tls");
    let wanted = |v: &Value| !tls_only || is_tls_secret(v);
    if matches!(q.get("watch").map(String::as_str), Some("true") | Some("1")) {
        let from: u64 = q
            .get("resourceVersion")
            .and_then(|r| r.parse().ok())
            .unwrap_or(rv_now);
        let (tx, rx) = mpsc::unbounded();
        if from < compacted {
            let _ = tx.unbounded_send(line(&json!({"type": "ERROR",
                "object": status(410, "Expired", &format!("too old resource version: {from} ({compacted})"))})));
            drop(tx);
        } else {
            for (rv, t, obj) in &res.events {
                if *rv > from && wanted(obj) {
                    let _ = tx.unbounded_send(line(&json!({"type": t, "object": obj})));
                }
            }
            let bookmarks = q.get("allowWatchBookmarks").map(String::as_str) == Some("true");
            st.subs.push(Sub {
                path: path.clone(),
                tls_only,
                bookmarks,
                tx,
            });
        }
        let body = BodyExt::boxed(StreamBody::new(rx));
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(body)
            .expect("response");
    }
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let offset: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let all: Vec<&Value> = res.objects.values().filter(|v| wanted(v)).collect();
    let items: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|v| {
            let mut v = (*v).clone();
            // Built-in types come without apiVersion/kind in lists; custom
            // resources (unstructured) keep them.
            if is_core(&res.api_version)
                && let Some(m) = v.as_object_mut()
            {
                m.remove("apiVersion");
                m.remove("kind");
            }
            v
        })
        .collect();
    let mut meta = json!({"resourceVersion": rv_now.to_string()});
    if offset + items.len() < all.len() {
        meta["continue"] = json!((offset + items.len()).to_string());
    }
    respond(
        StatusCode::OK,
        &json!({"apiVersion": res.api_version, "kind": format!("{}List", res.kind),
            "metadata": meta, "items": items}),
    )
}
