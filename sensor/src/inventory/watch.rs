//! Live source of the inventory: one kube-rs watcher per kind, each event
//! handed to the same `Inventory::ingest`/`remove` path the snapshot files
//! use. The watcher lists (paged), then watches from the list's
//! resourceVersion with bookmarks; a 410 Gone relists at once, a dropped
//! stream re-watches. Errors never stop a watch: they are counted per kind,
//! logged once per outage (`outage`), and retried after a jittered,
//! doubling delay that starts over when the API answers (`retry`), while
//! the index keeps the last state.

use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Config};
use tokio::task::JoinHandle;

use super::objects::Kind;
use super::outage::{Outage, Say};
use super::retry::{Failure, Retry};
use super::sync::Phase;
use super::{Inventory, api_client};
use crate::capture::own::Announced;

#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Kubeconfig file; without it, the default kubeconfig or in-cluster config.
    pub kubeconfig: Option<PathBuf>,
    /// Context of the kubeconfig to use.
    pub context: Option<String>,
    /// First and longest delay before retrying after an error (jittered
    /// down to half); a 410 Gone never waits. The longest delay bounds how
    /// long the sensor takes to notice the API is back.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// While the API fails, how often the log says it still does.
    pub still_failing_every: Duration,
    /// Objects per list page.
    pub page_size: u32,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(10),
            still_failing_every: Duration::from_secs(300),
            page_size: 500,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("--kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("--context {context}: {source}")]
    Context {
        context: String,
        source: kube::config::KubeconfigError,
    },
    #[error("Kubernetes configuration (no --kubeconfig; tried in-cluster and ~/.kube/config): {0}")]
    Infer(kube::config::InferConfigError),
    #[error("Kubernetes client: {0}")]
    Client(kube::Error),
    #[error("the Kubernetes API did not list {pending} within {timeout:?}")]
    Timeout { timeout: Duration, pending: String },
}

/// A client from `--kubeconfig`/`--context`, else the usual inference
/// (KUBECONFIG, ~/.kube/config, in-cluster service account).
pub async fn client(cfg: &WatchConfig) -> Result<Client, WatchError> {
    let opts = KubeConfigOptions {
        context: cfg.context.clone(),
        ..Default::default()
    };
    let config = match (&cfg.kubeconfig, &cfg.context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| WatchError::Kubeconfig {
                path: path.clone(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|source| WatchError::Kubeconfig {
                    path: path.clone(),
                    source,
                })?
        }
        (None, Some(context)) => {
            Config::from_kubeconfig(&opts)
                .await
                .map_err(|source| WatchError::Context {
                    context: context.clone(),
                    source,
                })?
        }
        (None, None) => Config::infer().await.map_err(WatchError::Infer)?,
    };
    api_client::client(config, &Announced::process()).map_err(WatchError::Client)
}

/// The kinds followed: Secrets only when asked for.
pub fn kinds(read_secrets: bool) -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|k| read_secrets || *k != Kind::Secret)
        .collect()
}

fn api_resource(kind: Kind) -> ApiResource {
    let (group, version, name, plural) = kind.gvk();
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: name.into(),
        plural: plural.into(),
    }
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// The phase an error puts a kind in; `None` for the routine 410 relist
/// (a watch whose version was compacted, or a list page whose continue
/// token expired).
fn classify(e: &watcher::Error) -> Option<Phase> {
    let code = match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => api_code(e),
        watcher::Error::WatchError(s) => Some(s.code),
        watcher::Error::NoResourceVersion => None,
    };
    match code {
        Some(410) => None,
        Some(404) => Some(Phase::Missing),
        Some(401) | Some(403) => Some(Phase::Forbidden),
        _ => Some(Phase::Failing),
    }
}

/// How a bounded follow ended (`until_synced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Synced,
    Unavailable,
}

/// Follows one kind; with `until_synced`, returns after the first full
/// list (or when the resource is not served or not allowed).
async fn follow(
    client: Client,
    kind: Kind,
    inv: Inventory,
    cfg: WatchConfig,
    outage: Arc<Mutex<Outage>>,
    until_synced: bool,
) -> Ended {
    let api: Api<DynamicObject> = Api::all_with(client, &api_resource(kind));
    let mut wc = watcher::Config::default().page_size(cfg.page_size);
    if kind == Kind::Secret {
        // Only TLS Secrets are ever asked for.
        wc = wc.fields("type=kubernetes.io/tls");
    }
    let mut retry = Retry::new(cfg.backoff_min, cfg.backoff_max);
    let mut stream = pin!(watcher::watcher(api, wc));
    // While failing, errors come at least every backoff_max; a longer quiet
    // spell means the watch is established again (bookmarks are not
    // surfaced by the watcher, so a quiet resource shows nothing else).
    let quiet = cfg.backoff_max * 2 + Duration::from_secs(1);
    let mut failing_since: Option<tokio::time::Instant> = None;
    let answered = |retry: &mut Retry| {
        retry.answered();
        let said = outage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .answered(kind, Instant::now());
        if let Some(Say::Back { after, retries }) = said {
            tracing::info!(
                after_s = after.as_secs(),
                retries,
                "Kubernetes API answering again; relisting where needed"
            );
        }
    };
    loop {
        let recheck = async {
            match failing_since {
                Some(t) => tokio::time::sleep_until(t + quiet).await,
                None => std::future::pending().await,
            }
        };
        let ev = tokio::select! {
            ev = stream.next() => ev,
            _ = recheck => {
                recovered(&inv, kind);
                answered(&mut retry);
                failing_since = None;
                continue;
            }
        };
        let Some(ev) = ev else {
            // The watcher stream never ends on its own.
            return Ended::Unavailable;
        };
        match ev {
            // Made by the watcher itself before it lists: no answer yet.
            Ok(Event::Init) => inv.begin_relist(kind),
            Ok(Event::InitApply(o)) => {
                answered(&mut retry);
                inv.ingest(kind, o);
            }
            Ok(Event::InitDone) => {
                answered(&mut retry);
                failing_since = None;
                inv.end_relist(kind);
                if until_synced {
                    return Ended::Synced;
                }
            }
            Ok(Event::Apply(o)) => {
                if failing_since.take().is_some() {
                    recovered(&inv, kind);
                }
                answered(&mut retry);
                inv.ingest(kind, o);
            }
            Ok(Event::Delete(o)) => {
                if failing_since.take().is_some() {
                    recovered(&inv, kind);
                }
                answered(&mut retry);
                inv.remove(kind, &o);
            }
            Err(e) => {
                let Some(phase) = classify(&e) else {
                    tracing::debug!(kind = kind.name(), "resourceVersion expired, relisting");
                    tokio::time::sleep(retry.after(Failure::Gone)).await;
                    continue;
                };
                let was = inv.sync().failed(kind, phase, e.to_string());
                match phase {
                    Phase::Missing if was != phase => tracing::info!(
                        kind = kind.name(),
                        "not served by the API (CRD not installed?); retrying later"
                    ),
                    Phase::Forbidden if was != phase => tracing::warn!(
                        kind = kind.name(),
                        "list/watch refused (RBAC?); retrying later: {e}"
                    ),
                    Phase::Missing | Phase::Forbidden => {
                        tracing::debug!(kind = kind.name(), "watch error: {e}")
                    }
                    _ => {
                        let said = outage
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .failed(kind, Instant::now());
                        match said {
                            Some(Say::Down) => tracing::warn!(
                                kind = kind.name(),
                                "Kubernetes API failing, keeping the last state and retrying: {e}"
                            ),
                            Some(Say::StillDown { for_, retries }) => tracing::warn!(
                                for_s = for_.as_secs(),
                                retries,
                                "Kubernetes API still failing, keeping the last state: {e}"
                            ),
                            _ => tracing::debug!(kind = kind.name(), "watch error: {e}"),
                        }
                    }
                }
                if until_synced && matches!(phase, Phase::Missing | Phase::Forbidden) {
                    return Ended::Unavailable;
                }
                failing_since = (phase == Phase::Failing).then(tokio::time::Instant::now);
                tokio::time::sleep(retry.after(Failure::Error)).await;
            }
        }
    }
}

fn recovered(inv: &Inventory, kind: Kind) {
    let mut sync = inv.sync();
    if sync
        .get(kind)
        .is_some_and(|s| s.synced_once && s.phase == Phase::Failing)
    {
        // Said once for every kind, by the outage.
        sync.synced(kind);
    }
}

/// The running watches; dropping it stops them.
pub struct Watches {
    tasks: Vec<JoinHandle<Ended>>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts one watch per kind on the current tokio runtime.
pub fn start(client: Client, inv: &Inventory, cfg: &WatchConfig) -> Watches {
    let outage = Arc::new(Mutex::new(Outage::new(cfg.still_failing_every)));
    let tasks = kinds(inv.read_secrets())
        .into_iter()
        .map(|k| {
            tokio::spawn(follow(
                client.clone(),
                k,
                inv.clone(),
                cfg.clone(),
                outage.clone(),
                false,
            ))
        })
        .collect();
    Watches { tasks }
}

/// `sensor run`: connect and start the watches.
pub async fn connect(inv: &Inventory, cfg: &WatchConfig) -> Result<Watches, WatchError> {
    let c = client(cfg).await?;
    Ok(start(c, inv, cfg))
}

/// `sensor analyze --kubeconfig`: lists every kind once, through the same
/// watcher, then stops. Kinds not served or not allowed are skipped (with
/// a log line); an API that cannot list the rest within `timeout` is an error.
pub async fn list_once(
    inv: &Inventory,
    cfg: &WatchConfig,
    timeout: Duration,
) -> Result<(), WatchError> {
    let c = client(cfg).await?;
    let kinds = kinds(inv.read_secrets());
    let outage = Arc::new(Mutex::new(Outage::new(cfg.still_failing_every)));
    let all = futures::future::join_all(kinds.iter().map(|k| {
        follow(
            c.clone(),
            *k,
            inv.clone(),
            cfg.clone(),
            outage.clone(),
            true,
        )
    }));
    if tokio::time::timeout(timeout, all).await.is_ok() {
        return Ok(());
    }
    let sync = inv.sync();
    let pending: Vec<String> = kinds
        .iter()
        .filter(|k| {
            sync.get(**k).is_none_or(|s| {
                !s.synced_once && !matches!(s.phase, Phase::Missing | Phase::Forbidden)
            })
        })
        .map(|k| match sync.get(*k).and_then(|s| s.last_error.clone()) {
            Some(e) => format!("{} ({e})", k.name()),
            None => k.name().to_string(),
        })
        .collect();
    Err(WatchError::Timeout {
        timeout,
        pending: pending.join(", "),
    })
}
