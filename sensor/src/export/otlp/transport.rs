//! The OTLP exporters for one configuration: gRPC through tonic, HTTP/protobuf
//! through reqwest's blocking client; TLS through rustls (ring), with the
//! configured CA instead of the system roots when one is given.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use opentelemetry_otlp::{
    LogExporter, MetricExporter, RetryPolicy, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use super::config::{
    ConfigError, OtlpConfig, Protocol, SignalConfig, pem_certificates, pem_private_key,
};
use super::queue::{ExportStats, FailureLog};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("building the OTLP {signal} exporter for {endpoint}: {message}")]
    Build {
        signal: &'static str,
        endpoint: String,
        message: String,
    },
}

/// Retries stay short: a batch that cannot go within its timeout is counted
/// as lost rather than holding the queue behind it.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::recommended().with_max_retries(2)
}

fn rustls_config(cfg: &OtlpConfig) -> Result<rustls::ClientConfig, ConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.ca_pem {
        Some(pem) => {
            for c in pem_certificates("OTEL_EXPORTER_OTLP_CERTIFICATE", pem)? {
                roots.add(c).map_err(|e| {
                    ConfigError::new(
                        "OTEL_EXPORTER_OTLP_CERTIFICATE",
                        format!("unusable CA: {e}"),
                    )
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new("--otlp", format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    Ok(match &cfg.client_identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                pem_certificates("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert)?,
                pem_private_key("OTEL_EXPORTER_OTLP_CLIENT_KEY", key)?,
            )
            .map_err(|e| {
                ConfigError::new(
                    "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
                    format!("client certificate and key do not go together: {e}"),
                )
            })?,
        None => builder.with_no_client_auth(),
    })
}

/// The blocking client spawns its own runtime thread; it is built on a
/// plain thread so a caller inside a tokio runtime does not trip over it.
fn http_client(
    cfg: &OtlpConfig,
    signal: &'static str,
    s: &SignalConfig,
) -> Result<reqwest::blocking::Client, TransportError> {
    let tls = rustls_config(cfg)?;
    let timeout = s.timeout;
    let built = std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .tls_backend_preconfigured(tls)
            .build()
    })
    .join();
    match built {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(build_err(signal, s, e)),
        Err(_) => Err(build_err(signal, s, "the HTTP client thread panicked")),
    }
}

fn tonic_tls(cfg: &OtlpConfig) -> ClientTlsConfig {
    let mut tls = ClientTlsConfig::new();
    tls = match &cfg.ca_pem {
        Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
        None => tls.with_native_roots(),
    };
    if let Some((cert, key)) = &cfg.client_identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    tls
}

fn metadata(headers: &[(String, String)]) -> Result<MetadataMap, ConfigError> {
    let mut m = MetadataMap::new();
    for (k, v) in headers {
        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|e| ConfigError::new("--otlp-header", format!("{k}: {e}")))?;
        let val = MetadataValue::try_from(v.as_str())
            .map_err(|e| ConfigError::new("--otlp-header", format!("{k}: {e}")))?;
        m.append(key, val);
    }
    Ok(m)
}

fn is_https(s: &SignalConfig) -> bool {
    s.endpoint.starts_with("https://")
}

fn warn_unused_tls(cfg: &OtlpConfig, s: &SignalConfig) {
    if !is_https(s) && (cfg.ca_pem.is_some() || cfg.client_identity.is_some()) {
        tracing::warn!(
            endpoint = %s.endpoint,
            "OTLP TLS settings given for a plain http:// endpoint; they are not used"
        );
    }
}

fn build_err(signal: &'static str, s: &SignalConfig, e: impl std::fmt::Display) -> TransportError {
    TransportError::Build {
        signal,
        endpoint: s.endpoint.clone(),
        message: e.to_string(),
    }
}

fn grpc_options<B: WithExportConfig + WithTonicConfig>(
    b: B,
    cfg: &OtlpConfig,
    s: &SignalConfig,
) -> Result<B, TransportError> {
    let b = b
        .with_endpoint(s.endpoint.clone())
        .with_timeout(s.timeout)
        .with_retry_policy(retry_policy())
        .with_metadata(metadata(&cfg.headers)?);
    Ok(if is_https(s) {
        b.with_tls_config(tonic_tls(cfg))
    } else {
        b
    })
}

fn http_options<B: WithExportConfig + WithHttpConfig>(
    b: B,
    cfg: &OtlpConfig,
    signal: &'static str,
    s: &SignalConfig,
) -> Result<B, TransportError> {
    Ok(b.with_endpoint(s.endpoint.clone())
        .with_timeout(s.timeout)
        .with_retry_policy(retry_policy())
        .with_headers(cfg.headers.iter().cloned().collect::<HashMap<_, _>>())
        .with_http_client(http_client(cfg, signal, s)?))
}

/// The metric and log exporters differ only in their builder type, which
/// the exporter crate offers through no common trait.
macro_rules! exporter {
    ($exporter:ty, $signal:literal, $cfg:expr, $s:expr) => {{
        let (cfg, s) = ($cfg, $s);
        warn_unused_tls(cfg, s);
        let built = match s.protocol {
            Protocol::Grpc => grpc_options(<$exporter>::builder().with_tonic(), cfg, s)?.build(),
            Protocol::HttpProtobuf => {
                http_options(<$exporter>::builder().with_http(), cfg, $signal, s)?.build()
            }
        };
        built.map_err(|e| build_err($signal, s, e))
    }};
}

/// Must run inside a tokio runtime context (tonic's lazy channel spawns there).
pub fn metric_exporter(
    cfg: &OtlpConfig,
    s: &SignalConfig,
) -> Result<MetricExporter, TransportError> {
    exporter!(MetricExporter, "metrics", cfg, s)
}

/// Must run inside a tokio runtime context (tonic's lazy channel spawns there).
pub fn log_exporter(cfg: &OtlpConfig, s: &SignalConfig) -> Result<LogExporter, TransportError> {
    exporter!(LogExporter, "logs", cfg, s)
}

/// Counts metric exports and their failures for `sensor.export.*`.
#[derive(Debug)]
pub struct CountingMetricExporter<E> {
    pub inner: E,
    pub stats: Arc<ExportStats>,
    pub failures: FailureLog,
}

impl<E: PushMetricExporter> PushMetricExporter for CountingMetricExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let r = self.inner.export(metrics).await;
        match &r {
            Ok(()) => {
                self.stats.metric_exports.fetch_add(1, Ordering::Relaxed);
                self.failures.succeeded("metrics");
            }
            Err(e) => {
                self.stats
                    .metric_export_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.failures.failed("metrics", e);
            }
        }
        r
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
