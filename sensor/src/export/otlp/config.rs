//! OTLP export settings: command-line flags over the standard
//! `OTEL_EXPORTER_OTLP_*` variables, checked at start-up so a bad value is an
//! error naming its flag or variable rather than a silent fallback.
//!
//! Precedence, highest first: flag, per-signal variable
//! (`OTEL_EXPORTER_OTLP_METRICS_*`, `OTEL_EXPORTER_OTLP_LOGS_*`), generic
//! variable (`OTEL_EXPORTER_OTLP_*`), default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

/// Wire protocol to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    fn parse(v: &str, key: &str) -> Result<Self, ConfigError> {
        match v.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "http/json" => Err(ConfigError::invalid(
                key,
                v,
                "http/json is not supported; use grpc or http/protobuf",
            )),
            _ => Err(ConfigError::invalid(
                key,
                v,
                "expected grpc or http/protobuf",
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// A configuration value that cannot be used; `key` is the flag or variable.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        Self {
            key: key.to_string(),
            message: message.into(),
        }
    }

    fn invalid(key: &str, value: &str, why: &str) -> Self {
        Self::new(key, format!("invalid value {value:?}: {why}"))
    }
}

/// OTLP flags, shared by `sensor analyze` and `sensor run` (flatten them).
#[derive(Args, Debug, Clone)]
pub struct OtlpArgs {
    /// OTLP collector endpoint, e.g. http://127.0.0.1:4317 (gRPC) or
    /// http://127.0.0.1:4318 (HTTP: /v1/metrics and /v1/logs are appended).
    /// Default: OTEL_EXPORTER_OTLP_ENDPOINT and the per-signal variables.
    #[arg(long, value_name = "ENDPOINT")]
    pub otlp: Option<String>,
    /// grpc or http/protobuf. Default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.
    #[arg(long, value_name = "PROTOCOL")]
    pub otlp_protocol: Option<String>,
    /// Extra request header KEY=VALUE (repeatable), added to OTEL_EXPORTER_OTLP_HEADERS.
    #[arg(long, value_name = "KEY=VALUE")]
    pub otlp_header: Vec<String>,
    /// PEM file of the CA that signed the collector's certificate (replaces
    /// the system roots). Default: OTEL_EXPORTER_OTLP_CERTIFICATE.
    #[arg(long, value_name = "PEM")]
    pub otlp_ca: Option<PathBuf>,
    /// PEM client certificate for mutual TLS. Default: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE.
    #[arg(long, value_name = "PEM")]
    pub otlp_client_cert: Option<PathBuf>,
    /// PEM private key of --otlp-client-cert. Default: OTEL_EXPORTER_OTLP_CLIENT_KEY.
    #[arg(long, value_name = "PEM")]
    pub otlp_client_key: Option<PathBuf>,
    /// Seconds between metric exports. Default: OTEL_METRIC_EXPORT_INTERVAL (ms), else 60.
    #[arg(long, value_name = "SECONDS")]
    pub otlp_interval: Option<f64>,
    /// Also send one tls.handshake log record per connection.
    #[arg(long)]
    pub otlp_handshake_logs: bool,
    /// A certificate stays on tls.certificate.not_after and tls.certificates
    /// this long after it was last seen.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400.0)]
    pub otlp_certificate_window: f64,
    /// A certificate's tls.certificate log record is repeated at most once per
    /// this window (tls.finding records follow --findings-window).
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400.0)]
    pub otlp_log_dedup_window: f64,
    /// Log records waiting for export; beyond it records are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = 8192)]
    pub otlp_log_queue: usize,
    /// Distinct values kept per metric attribute; others become "_overflow".
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub otlp_max_attribute_values: usize,
    /// Series kept per metric; others go to one "_overflow" series.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub otlp_max_series: usize,
    /// k8s.cluster.name resource attribute.
    #[arg(long, value_name = "NAME", env = "K8S_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
}

impl Default for OtlpArgs {
    /// The same defaults as the command line.
    fn default() -> Self {
        Self {
            otlp: None,
            otlp_protocol: None,
            otlp_header: Vec::new(),
            otlp_ca: None,
            otlp_client_cert: None,
            otlp_client_key: None,
            otlp_interval: None,
            otlp_handshake_logs: false,
            otlp_certificate_window: 86_400.0,
            otlp_log_dedup_window: 86_400.0,
            otlp_log_queue: 8192,
            otlp_max_attribute_values: 200,
            otlp_max_series: 1000,
            cluster_name: None,
        }
    }
}

/// Where and how one signal goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalConfig {
    /// Full URL: for HTTP it includes the signal's path.
    pub endpoint: String,
    pub protocol: Protocol,
    pub timeout: Duration,
}

/// Everything the exporter needs, validated.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// `None` when OTEL_METRICS_EXPORTER=none.
    pub metrics: Option<SignalConfig>,
    /// `None` when OTEL_LOGS_EXPORTER=none.
    pub logs: Option<SignalConfig>,
    /// Headers from flags; the exporter adds OTEL_EXPORTER_OTLP_*HEADERS itself.
    pub headers: Vec<(String, String)>,
    pub ca_pem: Option<Vec<u8>>,
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
    pub metric_interval: Duration,
    pub handshake_logs: bool,
    pub certificate_window: Duration,
    pub log_dedup_window: Duration,
    pub log_queue: usize,
    /// Records per export request.
    pub log_batch: usize,
    /// How long a queued log record may wait before its batch is sent.
    pub log_delay: Duration,
    pub max_attribute_values: usize,
    pub max_series: usize,
    pub resource: ResourceConfig,
}

/// Inputs of the resource attributes.
#[derive(Debug, Clone, Default)]
pub struct ResourceConfig {
    /// OTEL_RESOURCE_ATTRIBUTES, decoded.
    pub attributes: Vec<(String, String)>,
    /// OTEL_SERVICE_NAME.
    pub service_name: Option<String>,
    pub cluster_name: Option<String>,
    /// From the downward API: K8S_NODE_NAME or NODE_NAME.
    pub node_name: Option<String>,
    pub host_name: Option<String>,
}

/// Reads variables; a closure so tests need not touch the process environment.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

/// A non-empty variable; empty counts as unset, as the OTel spec says.
fn var(env: &dyn Env, key: &str) -> Option<(String, String)> {
    env.get(key)
        .filter(|v| !v.trim().is_empty())
        .map(|v| (key.to_string(), v))
}

fn seconds(key: &str, v: f64) -> Result<Duration, ConfigError> {
    if v.is_finite() && v > 0.0 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(ConfigError::invalid(
            key,
            &v.to_string(),
            "expected a positive number of seconds",
        ))
    }
}

fn millis(key: &str, v: &str) -> Result<Duration, ConfigError> {
    match v.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(ConfigError::invalid(
            key,
            v,
            "expected a positive integer of milliseconds",
        )),
    }
}

fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| ConfigError::invalid(key, url, "expected an http:// or https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(ConfigError::invalid(key, url, "the URL has no host"));
    }
    if let Err(e) = reqwest::Url::parse(url) {
        return Err(ConfigError::invalid(key, url, &e.to_string()));
    }
    Ok(())
}

/// `key1=value1,key2=value2` with percent-encoded values (W3C baggage
/// style), as OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES use it.
pub fn parse_key_values(key: &str, input: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for entry in input.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = entry.split_once('=') else {
            return Err(ConfigError::invalid(key, entry, "expected key=value"));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(ConfigError::invalid(key, entry, "empty key"));
        }
        let v = percent_decode(v.trim())
            .ok_or_else(|| ConfigError::invalid(key, entry, "bad percent-encoding"))?;
        out.push((k.to_string(), v));
    }
    Ok(out)
}

// No crate in the tree decodes percent-escapes without pulling a URL parser
// into the value path; this is the whole of it.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn check_header(key: &str, name: &str, value: &str) -> Result<(), ConfigError> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
    if !name_ok {
        return Err(ConfigError::invalid(key, name, "not a valid header name"));
    }
    if value.bytes().any(|c| c < 0x20 && c != b'\t' || c == 0x7f) {
        return Err(ConfigError::invalid(
            key,
            value,
            "header value has control characters",
        ));
    }
    Ok(())
}

fn read_pem(key: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::new(key, format!("cannot read {}: {e}", path.display())))
}

/// Certificates of a PEM file; an error when it holds none.
pub fn pem_certificates(
    key: &str,
    pem: &[u8],
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::new(key, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ConfigError::new(key, "no CERTIFICATE in the PEM file"));
    }
    Ok(certs)
}

pub fn pem_private_key(
    key: &str,
    pem: &[u8],
) -> Result<rustls_pki_types::PrivateKeyDer<'static>, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| ConfigError::new(key, format!("no usable private key in the PEM file: {e}")))
}

/// `OTEL_METRICS_EXPORTER` / `OTEL_LOGS_EXPORTER`: otlp (default) or none.
fn signal_enabled(env: &dyn Env, key: &str) -> Result<bool, ConfigError> {
    match var(env, key) {
        None => Ok(true),
        Some((_, v)) => match v.trim() {
            "otlp" => Ok(true),
            "none" => Ok(false),
            _ => Err(ConfigError::invalid(key, &v, "expected otlp or none")),
        },
    }
}

struct SignalVars {
    exporter: &'static str,
    endpoint: &'static str,
    protocol: &'static str,
    timeout: &'static str,
    path: &'static str,
}

const METRICS: SignalVars = SignalVars {
    exporter: "OTEL_METRICS_EXPORTER",
    endpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    timeout: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    path: "v1/metrics",
};

const LOGS: SignalVars = SignalVars {
    exporter: "OTEL_LOGS_EXPORTER",
    endpoint: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    timeout: "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    path: "v1/logs",
};

fn signal(
    args: &OtlpArgs,
    env: &dyn Env,
    s: &SignalVars,
) -> Result<Option<SignalConfig>, ConfigError> {
    if !signal_enabled(env, s.exporter)? {
        return Ok(None);
    }
    let protocol = match (&args.otlp_protocol, var(env, s.protocol)) {
        (Some(p), _) => Protocol::parse(p, "--otlp-protocol")?,
        (None, Some((k, v))) => Protocol::parse(&v, &k)?,
        (None, None) => match var(env, "OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some((k, v)) => Protocol::parse(&v, &k)?,
            None => Protocol::HttpProtobuf,
        },
    };
    // A per-signal endpoint is the full URL; a generic one is a base that
    // HTTP extends with the signal's path (gRPC routes by service instead).
    let (key, endpoint, full) = match (&args.otlp, var(env, s.endpoint)) {
        (Some(e), _) => ("--otlp".to_string(), e.clone(), false),
        (None, Some((k, v))) => (k, v, true),
        (None, None) => match var(env, "OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some((k, v)) => (k, v, false),
            None => return Ok(None),
        },
    };
    let endpoint = endpoint.trim().to_string();
    check_url(&key, &endpoint)?;
    let endpoint = if full || protocol == Protocol::Grpc {
        endpoint
    } else {
        format!("{}/{}", endpoint.trim_end_matches('/'), s.path)
    };
    let timeout = match var(env, s.timeout).or_else(|| var(env, "OTEL_EXPORTER_OTLP_TIMEOUT")) {
        Some((k, v)) => millis(&k, &v)?,
        None => Duration::from_secs(10),
    };
    Ok(Some(SignalConfig {
        endpoint,
        protocol,
        timeout,
    }))
}

fn path_setting(
    flag: &Option<PathBuf>,
    flag_name: &str,
    env: &dyn Env,
    vars: &[&str],
) -> Result<Option<Vec<u8>>, ConfigError> {
    if let Some(p) = flag {
        return read_pem(flag_name, p).map(Some);
    }
    for v in vars {
        if let Some((k, path)) = var(env, v) {
            return read_pem(&k, Path::new(&path)).map(Some);
        }
    }
    Ok(None)
}

impl OtlpConfig {
    /// `Ok(None)` when no endpoint is configured anywhere: the caller keeps
    /// its stdout output.
    pub fn from_args(args: &OtlpArgs, env: &dyn Env) -> Result<Option<Self>, ConfigError> {
        let metrics = signal(args, env, &METRICS)?;
        let logs = signal(args, env, &LOGS)?;
        if metrics.is_none() && logs.is_none() {
            // Flags that only make sense with an endpoint are a mistake without one.
            if args.otlp_protocol.is_some() || !args.otlp_header.is_empty() {
                return Err(ConfigError::new(
                    "--otlp",
                    "OTLP options given but no endpoint (set --otlp or OTEL_EXPORTER_OTLP_ENDPOINT)",
                ));
            }
            return Ok(None);
        }
        // Validate the variables the exporter library reads itself, so their
        // mistakes are start-up errors too.
        for v in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
        ] {
            if let Some((k, val)) = var(env, v) {
                for (name, value) in parse_key_values(&k, &val)? {
                    check_header(&k, &name, &value)?;
                }
            }
        }
        let mut headers = Vec::new();
        for h in &args.otlp_header {
            let kv = parse_key_values("--otlp-header", h)?;
            if kv.len() != 1 {
                return Err(ConfigError::invalid(
                    "--otlp-header",
                    h,
                    "expected one KEY=VALUE",
                ));
            }
            check_header("--otlp-header", &kv[0].0, &kv[0].1)?;
            headers.extend(kv);
        }
        let ca_pem = path_setting(
            &args.otlp_ca,
            "--otlp-ca",
            env,
            &[
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
                "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
            ],
        )?;
        if let Some(pem) = &ca_pem {
            let key = if args.otlp_ca.is_some() {
                "--otlp-ca"
            } else {
                "OTEL_EXPORTER_OTLP_CERTIFICATE"
            };
            pem_certificates(key, pem)?;
        }
        let cert = path_setting(
            &args.otlp_client_cert,
            "--otlp-client-cert",
            env,
            &["OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"],
        )?;
        let key = path_setting(
            &args.otlp_client_key,
            "--otlp-client-key",
            env,
            &["OTEL_EXPORTER_OTLP_CLIENT_KEY"],
        )?;
        let client_identity = match (cert, key) {
            (Some(c), Some(k)) => {
                pem_certificates("--otlp-client-cert", &c)?;
                pem_private_key("--otlp-client-key", &k)?;
                Some((c, k))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "--otlp-client-key",
                    "a client certificate needs its key (OTEL_EXPORTER_OTLP_CLIENT_KEY)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "--otlp-client-cert",
                    "a client key needs its certificate (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE)",
                ));
            }
        };
        let metric_interval = match (args.otlp_interval, var(env, "OTEL_METRIC_EXPORT_INTERVAL")) {
            (Some(s), _) => seconds("--otlp-interval", s)?,
            (None, Some((k, v))) => millis(&k, &v)?,
            (None, None) => Duration::from_secs(60),
        };
        let log_delay = match var(env, "OTEL_BLRP_SCHEDULE_DELAY") {
            Some((k, v)) => millis(&k, &v)?,
            None => Duration::from_secs(1),
        };
        let log_batch = match var(env, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE") {
            Some((k, v)) => match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(ConfigError::invalid(&k, &v, "expected a positive integer")),
            },
            None => 512,
        };
        for (flag, n) in [
            ("--otlp-log-queue", args.otlp_log_queue),
            (
                "--otlp-max-attribute-values",
                args.otlp_max_attribute_values,
            ),
            ("--otlp-max-series", args.otlp_max_series),
        ] {
            if n == 0 {
                return Err(ConfigError::invalid(flag, "0", "must be at least 1"));
            }
        }
        let resource = ResourceConfig {
            attributes: match var(env, "OTEL_RESOURCE_ATTRIBUTES") {
                Some((k, v)) => parse_key_values(&k, &v)?,
                None => Vec::new(),
            },
            service_name: var(env, "OTEL_SERVICE_NAME").map(|(_, v)| v),
            cluster_name: args.cluster_name.clone().filter(|s| !s.trim().is_empty()),
            node_name: var(env, "K8S_NODE_NAME")
                .or_else(|| var(env, "NODE_NAME"))
                .map(|(_, v)| v),
            host_name: gethostname::gethostname().into_string().ok(),
        };
        Ok(Some(OtlpConfig {
            metrics,
            logs,
            headers,
            ca_pem,
            client_identity,
            metric_interval,
            handshake_logs: args.otlp_handshake_logs,
            certificate_window: seconds("--otlp-certificate-window", args.otlp_certificate_window)?,
            log_dedup_window: seconds("--otlp-log-dedup-window", args.otlp_log_dedup_window)?,
            log_queue: args.otlp_log_queue,
            log_batch,
            log_delay,
            max_attribute_values: args.otlp_max_attribute_values,
            max_series: args.otlp_max_series,
            resource,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn args() -> OtlpArgs {
        OtlpArgs {
            otlp_certificate_window: 60.0,
            otlp_log_dedup_window: 60.0,
            otlp_log_queue: 10,
            otlp_max_attribute_values: 10,
            otlp_max_series: 10,
            ..Default::default()
        }
    }

    fn err(a: &OtlpArgs, e: &[(&str, &str)]) -> ConfigError {
        OtlpConfig::from_args(a, &env(e)).expect_err("must be rejected")
    }

    #[test]
    fn nothing_configured_means_stdout() {
        assert!(OtlpConfig::from_args(&args(), &env(&[])).unwrap().is_none());
    }

    #[test]
    fn generic_http_endpoint_gets_signal_paths() {
        let c = OtlpConfig::from_args(
            &args(),
            &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]),
        )
        .unwrap()
        .unwrap();
        let m = c.metrics.unwrap();
        assert_eq!(m.endpoint, "http://127.0.0.1:4318/v1/metrics");
        assert_eq!(m.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.logs.unwrap().endpoint, "http://127.0.0.1:4318/v1/logs");
    }

    #[test]
    fn per_signal_endpoint_is_used_as_is_and_flag_wins() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://b:8428/x"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
        ]);
        let c = OtlpConfig::from_args(&args(), &e).unwrap().unwrap();
        let m = c.metrics.unwrap();
        assert_eq!(
            (m.endpoint.as_str(), m.protocol),
            ("http://b:8428/x", Protocol::Grpc)
        );
        let l = c.logs.unwrap();
        assert_eq!(
            (l.endpoint.as_str(), l.protocol),
            ("http://a:4318/v1/logs", Protocol::HttpProtobuf)
        );
        let mut a = args();
        a.otlp = Some("http://c:4317".into());
        a.otlp_protocol = Some("grpc".into());
        let c = OtlpConfig::from_args(&a, &e).unwrap().unwrap();
        assert_eq!(c.metrics.unwrap().endpoint, "http://c:4317");
        assert_eq!(c.logs.unwrap().protocol, Protocol::Grpc);
    }

    #[test]
    fn signal_can_be_disabled() {
        let c = OtlpConfig::from_args(
            &args(),
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
                ("OTEL_LOGS_EXPORTER", "none"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert!(c.metrics.is_some() && c.logs.is_none());
    }

    #[test]
    fn errors_name_their_key() {
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318")];
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "a:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                &[
                    base[0],
                    ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
                ],
                "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            ),
            (
                &[base[0], ("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                &[base[0], ("OTEL_EXPORTER_OTLP_HEADERS", "a=b,broken")],
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            (
                &[base[0], ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "bad name=1")],
                "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
            ),
            (
                &[base[0], ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ),
            (
                &[
                    base[0],
                    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent.pem"),
                ],
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ),
            (
                &[base[0], ("OTEL_RESOURCE_ATTRIBUTES", "a=1,b")],
                "OTEL_RESOURCE_ATTRIBUTES",
            ),
            (
                &[base[0], ("OTEL_METRIC_EXPORT_INTERVAL", "0")],
                "OTEL_METRIC_EXPORT_INTERVAL",
            ),
            (
                &[base[0], ("OTEL_LOGS_EXPORTER", "console")],
                "OTEL_LOGS_EXPORTER",
            ),
            (
                &[
                    base[0],
                    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/hostname"),
                ],
                "--otlp-client-key",
            ),
        ];
        for (e, key) in cases {
            let got = err(&args(), e);
            assert_eq!(got.key, *key, "{e:?} gave {got}");
            assert!(got.to_string().starts_with(&format!("{key}: ")));
        }
        let mut a = args();
        a.otlp = Some("http://a:4318".into());
        a.otlp_protocol = Some("grpcx".into());
        assert_eq!(err(&a, &[]).key, "--otlp-protocol");
        let mut a = args();
        a.otlp_protocol = Some("grpc".into());
        assert_eq!(err(&a, &[]).key, "--otlp");
        let mut a = args();
        a.otlp = Some("http://a:4318".into());
        a.otlp_header = vec!["novalue".into()];
        assert_eq!(err(&a, &[]).key, "--otlp-header");
    }

    #[test]
    fn a_file_without_certificates_is_rejected() {
        let dir = std::env::temp_dir().join(format!("otlp-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("empty.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let mut a = args();
        a.otlp = Some("https://a:4318".into());
        a.otlp_ca = Some(p);
        let e = err(&a, &[]);
        assert_eq!(e.key, "--otlp-ca");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn key_values_are_percent_decoded() {
        assert_eq!(
            parse_key_values("X", "a=b%2Cc, d = e%3Df ,").unwrap(),
            vec![
                ("a".to_string(), "b,c".to_string()),
                ("d".to_string(), "e=f".to_string())
            ]
        );
        assert!(parse_key_values("X", "a=%zz").is_err());
    }
}
