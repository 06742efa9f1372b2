//! A finding of the analysis stage, as the sinks receive it.

use std::sync::Arc;

use serde_json::Value;

use super::rules::{Rule, Severity};

/// Its text and evidence are shared, not copied: a server's findings are
/// built once a second and handed to each of its connections
/// (analysis::cert_memo), and every sink keeps them as they are.
#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub message: Arc<str>,
    /// SHA-256 of the certificate it is about (certificate rules).
    pub certificate: Option<Arc<str>>,
    pub subject: Option<Arc<str>>,
    /// Rule-specific facts: dates, key sizes, the verified path...
    pub evidence: Arc<Value>,
    /// The first of its rule and certificate (or flow) in the current
    /// deduplication window: it gets a finding line of its own.
    pub first: bool,
}
