//! A finding of the analysis stage, as the sinks receive it.

use serde_json::Value;

use super::rules::{Rule, Severity};

#[derive(Debug, Clone)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    pub message: String,
    /// SHA-256 of the certificate it is about (certificate rules).
    pub certificate: Option<String>,
    pub subject: Option<String>,
    /// Rule-specific facts: dates, key sizes, the verified path...
    pub evidence: Value,
    /// The first of its rule and certificate (or flow) in the current
    /// deduplication window: it gets a finding line of its own.
    pub first: bool,
}
