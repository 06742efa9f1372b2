//! The policy file (YAML): which rules run and how severe they are,
//! thresholds, exceptions, minimum TLS version, allowed cipher families and
//! allowed issuers per namespace. Unknown keys are errors, and every error
//! names the file, the line and the key.
//!
//! ```yaml
//! rules:
//!   cert.long_validity: { enabled: false }
//!   cert.expiring_soon: { severity: high }
//! thresholds:
//!   expiring_soon_days: 21
//! tls:
//!   min_version: TLS 1.2
//!   allowed_cipher_families: [aes, chacha20]
//! issuers:
//!   - namespace: payments
//!     allowed: ["CN=Payments CA,O=Example", "ClusterIssuer/internal-ca"]
//! exceptions:
//!   - rules: [cert.self_signed]
//!     namespace: dev-*
//!     reason: dev clusters use self-signed certificates
//!     expires: 2026-12-31
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use super::ciphers::CipherFamily;
use crate::model::{Rule, Severity};

/// Deserializes a string through `TryFrom<String>` inside the scalar's
/// own `deserialize_str`, so an error carries the scalar's line and column
/// (serde's `try_from` attribute reports the enclosing mapping's).
struct ViaStr<T>(std::marker::PhantomData<T>);

impl<T: TryFrom<String, Error = String>> serde::de::Visitor<'_> for ViaStr<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        T::try_from(v.to_string()).map_err(E::custom)
    }
}

macro_rules! deserialize_via_str {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(ViaStr::<$t>(std::marker::PhantomData))
            }
        }
    )*};
}

deserialize_via_str!(RuleKey, Pattern, Fingerprint, Expiry, TlsVersion);

#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct PolicyError {
    pub origin: String,
    pub message: String,
}

/// A rule id, checked when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RuleKey(Rule);

impl TryFrom<String> for RuleKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Rule::from_id(&s).map(RuleKey).ok_or_else(|| {
            let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
            format!("unknown rule `{s}`, expected one of {}", ids.join(", "))
        })
    }
}

/// A shell-style pattern (`*`, `?`, `[...]`), matched without case.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty pattern".into());
        }
        let glob = GlobBuilder::new(&s)
            .case_insensitive(true)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| format!("bad pattern `{s}`: {}", e.kind()))?;
        Ok(Pattern {
            matcher: glob.compile_matcher(),
            text: s,
        })
    }
}

impl Pattern {
    pub fn matches(&self, s: &str) -> bool {
        self.matcher.is_match(s)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A SHA-256 fingerprint: 64 hex digits, colons allowed, any case.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint(String);

impl TryFrom<String> for Fingerprint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let hex: String = s.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "`{s}` is not a SHA-256 fingerprint (64 hex digits)"
            ));
        }
        Ok(Fingerprint(hex.to_ascii_lowercase()))
    }
}

/// An expiry: a date (the exception holds through that day, UTC) or an
/// RFC 3339 time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expiry(i64);

impl TryFrom<String> for Expiry {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Ok(t) = OffsetDateTime::parse(&s, &Rfc3339) {
            return Ok(Expiry(t.unix_timestamp()));
        }
        time::Date::parse(&s, format_description!("[year]-[month]-[day]"))
            .map(|d| Expiry(d.midnight().assume_utc().unix_timestamp() + 86_399))
            .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD) or an RFC 3339 time"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TlsVersion(u16);

impl TryFrom<String> for TlsVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let norm: String = s
            .chars()
            .filter(|c| !c.is_whitespace() && *c != 'v')
            .collect::<String>()
            .to_ascii_uppercase();
        Ok(TlsVersion(match norm.as_str() {
            "SSL3.0" | "SSL3" => 0x0300,
            "TLS1.0" | "TLS1" | "1.0" => 0x0301,
            "TLS1.1" | "1.1" => 0x0302,
            "TLS1.2" | "1.2" => 0x0303,
            "TLS1.3" | "1.3" => 0x0304,
            _ => {
                return Err(format!(
                    "`{s}` is not a TLS version (SSL 3.0, TLS 1.0, TLS 1.1, TLS 1.2, TLS 1.3)"
                ));
            }
        }))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    enabled: Option<bool>,
    severity: Option<Severity>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// cert.expiring_soon for certificates not managed by cert-manager:
    /// this many days before expiry, or a third of the lifetime if shorter.
    pub expiring_soon_days: u32,
    /// cert.long_validity: leaf lifetime limit (CA/Browser Forum: 398).
    pub long_validity_days: u32,
    pub rsa_min_bits: u32,
    pub ec_min_bits: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            expiring_soon_days: 30,
            long_validity_days: 398,
            rsa_min_bits: 2048,
            ec_min_bits: 256,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    min_version: Option<TlsVersion>,
    allowed_cipher_families: Option<Vec<CipherFamily>>,
}

/// Which issuers may sign the leaf of servers in matching namespaces:
/// RFC 4514 issuer patterns, or `Issuer/name` / `ClusterIssuer/name` of
/// cert-manager.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerRule {
    pub namespace: Pattern,
    pub allowed: Vec<Pattern>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExceptionFile {
    #[serde(default)]
    rules: Vec<RuleKey>,
    namespace: Option<Pattern>,
    workload: Option<Pattern>,
    sni: Option<Pattern>,
    fingerprint: Option<Fingerprint>,
    reason: String,
    expires: Option<Expiry>,
}

/// A finding that matches is not reported (it is counted as suppressed).
/// All given conditions must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ExceptionFile")]
pub struct Exception {
    /// Empty: every rule.
    pub rules: Vec<Rule>,
    /// The server's namespace / workload (`name` or `Kind/name`).
    pub namespace: Option<Pattern>,
    pub workload: Option<Pattern>,
    pub sni: Option<Pattern>,
    /// SHA-256 of the finding's certificate or of any certificate of the
    /// server's chain.
    pub fingerprint: Option<String>,
    pub reason: String,
    /// Unix seconds after which the exception no longer applies.
    pub expires: Option<i64>,
}

impl TryFrom<ExceptionFile> for Exception {
    type Error = String;
    fn try_from(f: ExceptionFile) -> Result<Self, String> {
        if f.reason.trim().is_empty() {
            return Err("an exception needs a non-empty `reason`".into());
        }
        if f.namespace.is_none()
            && f.workload.is_none()
            && f.sni.is_none()
            && f.fingerprint.is_none()
        {
            return Err("an exception needs at least one of `namespace`, `workload`, `sni`, `fingerprint` (to turn a rule off everywhere, use `rules: {RULE: {enabled: false}}`)".into());
        }
        Ok(Exception {
            rules: f.rules.into_iter().map(|r| r.0).collect(),
            namespace: f.namespace,
            workload: f.workload,
            sni: f.sni,
            fingerprint: f.fingerprint.map(|f| f.0),
            reason: f.reason,
            expires: f.expires.map(|e| e.0),
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    rules: BTreeMap<RuleKey, RuleFile>,
    #[serde(default)]
    thresholds: Thresholds,
    #[serde(default)]
    tls: TlsFile,
    #[serde(default)]
    issuers: Vec<IssuerRule>,
    #[serde(default)]
    exceptions: Vec<Exception>,
}

/// What an exception is matched against.
pub struct Subject<'a> {
    pub rule: Rule,
    pub certificate: Option<&'a str>,
    pub chain: &'a [std::sync::Arc<crate::model::Certificate>],
    pub sni: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// `Kind/name` and `name` of the server's workload.
    pub workload: Option<(&'a str, &'a str)>,
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    enabled: [bool; Rule::ALL.len()],
    severity: [Severity; Rule::ALL.len()],
    pub thresholds: Thresholds,
    pub min_version: u16,
    /// None: everything but `ciphers::WEAK_BY_DEFAULT` is allowed.
    pub allowed_cipher_families: Option<Vec<CipherFamily>>,
    pub issuers: Vec<IssuerRule>,
    pub exceptions: Vec<Exception>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            enabled: [true; Rule::ALL.len()],
            severity: Rule::ALL.map(Rule::default_severity),
            thresholds: Thresholds::default(),
            min_version: 0x0303,
            allowed_cipher_families: None,
            issuers: Vec::new(),
            exceptions: Vec::new(),
        }
    }
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &origin)
    }

    /// Parses policy text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        // An empty file (or one of comments only) is the default policy.
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Ok(Policy::default());
        }
        let de = serde_norway::Deserializer::from_str(text);
        let file: PolicyFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let mut message = inner.to_string();
            // serde_norway appends " at line L column C" and may prefix
            // its own path; the location goes first, the path once.
            if let Some(i) = message.find(" at line ") {
                message.truncate(i);
            }
            if let Some((head, rest)) = message.split_once(": ")
                && !head.is_empty()
                && head
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c))
            {
                message = rest.to_string();
            }
            let at = inner
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            let key = if path == "." || path.is_empty() {
                String::new()
            } else {
                format!("{path}: ")
            };
            PolicyError {
                origin: origin.to_string(),
                message: format!("{at}{key}{message}"),
            }
        })?;
        let mut p = Policy::default();
        for (rule, s) in file.rules {
            if let Some(e) = s.enabled {
                p.enabled[rule.0.index()] = e;
            }
            if let Some(sev) = s.severity {
                p.severity[rule.0.index()] = sev;
            }
        }
        p.thresholds = file.thresholds;
        if let Some(v) = file.tls.min_version {
            p.min_version = v.0;
        }
        p.allowed_cipher_families = file.tls.allowed_cipher_families;
        p.issuers = file.issuers;
        p.exceptions = file.exceptions;
        Ok(p)
    }

    pub fn enabled(&self, rule: Rule) -> bool {
        self.enabled[rule.index()]
    }

    pub fn severity(&self, rule: Rule) -> Severity {
        self.severity[rule.index()]
    }

    /// Rules turned off or with a severity other than the default.
    pub fn overrides(&self) -> usize {
        Rule::ALL
            .iter()
            .filter(|r| !self.enabled(**r) || self.severity(**r) != r.default_severity())
            .count()
    }

    /// The first exception that applies at `now` (unix seconds).
    pub fn exception(&self, s: &Subject<'_>, now: i64) -> Option<&Exception> {
        self.exceptions.iter().find(|e| {
            e.expires.is_none_or(|t| now <= t)
                && (e.rules.is_empty() || e.rules.contains(&s.rule))
                && e.namespace
                    .as_ref()
                    .is_none_or(|p| s.namespace.is_some_and(|n| p.matches(n)))
                && e.workload.as_ref().is_none_or(|p| {
                    s.workload
                        .is_some_and(|(full, name)| p.matches(full) || p.matches(name))
                })
                && e.sni
                    .as_ref()
                    .is_none_or(|p| s.sni.is_some_and(|n| p.matches(n)))
                && e.fingerprint.as_ref().is_none_or(|f| {
                    s.certificate == Some(f.as_str()) || s.chain.iter().any(|c| c.sha256 == *f)
                })
        })
    }

    /// Issuer rules for a namespace: the pattern `*` also applies when the
    /// namespace is unknown (no inventory).
    pub fn allowed_issuers(&self, namespace: Option<&str>) -> Option<&IssuerRule> {
        self.issuers.iter().find(|r| match namespace {
            Some(n) => r.namespace.matches(n),
            None => r.namespace.as_str() == "*",
        })
    }
}
