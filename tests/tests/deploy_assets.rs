//! The deployment assets agree with the code: every metric and label the
//! Grafana dashboard and the Prometheus rules query is one the sensor
//! exports (sensor::export::metric_names), and the Dockerfile builds with
//! the project's own toolchain versions and build command.

use std::collections::BTreeSet;
use std::path::Path;

use promql_parser::parser::{self, Expr, LabelModifier};
use sensor::export::metric_names::{self, Metric, RESOURCE_ATTRIBUTES};
use serde_json::Value;
use tests::workspace_root as root;

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Labels every series carries besides its attributes: resource attributes
/// (the collector's resource_to_telemetry_conversion) and the `job` and
/// `instance` the remote-write exporter derives from service.name and
/// service.instance.id.
fn common_labels() -> BTreeSet<String> {
    RESOURCE_ATTRIBUTES
        .iter()
        .map(|a| metric_names::prometheus_label(a))
        .chain(["job".to_string(), "instance".to_string()])
        .collect()
}

fn labels_of(m: &Metric) -> BTreeSet<String> {
    m.prometheus_labels().chain(common_labels()).collect()
}

/// Metrics, and the labels a query's result may carry; every unknown name
/// lands in `errors`.
struct Checker<'a> {
    context: &'a str,
    metrics: BTreeSet<String>,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn selector(&mut self, vs: &parser::VectorSelector) -> BTreeSet<String> {
        let name = vs.name.clone().or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__")
                .map(|m| m.value.clone())
        });
        let Some(name) = name else {
            self.errors.push(format!(
                "{}: a selector without a metric name",
                self.context
            ));
            return BTreeSet::new();
        };
        self.metrics.insert(name.clone());
        let Some(metric) = metric_names::by_prometheus_name(&name) else {
            self.errors.push(format!(
                "{}: `{name}` is not a metric the sensor exports",
                self.context
            ));
            return BTreeSet::new();
        };
        let labels = labels_of(metric);
        let matchers = vs
            .matchers
            .matchers
            .iter()
            .chain(vs.matchers.or_matchers.iter().flatten());
        for m in matchers {
            if m.name != "__name__" && !labels.contains(&m.name) {
                self.errors.push(format!(
                    "{}: `{name}` has no label `{}`",
                    self.context, m.name
                ));
            }
        }
        labels
    }

    fn grouping(&mut self, labels: &[String], available: &BTreeSet<String>, what: &str) {
        for l in labels {
            if !available.contains(l) {
                self.errors.push(format!(
                    "{}: {what} `{l}`, which none of its metrics has",
                    self.context
                ));
            }
        }
    }

    /// The labels the result of `e` carries.
    fn expr(&mut self, e: &Expr) -> BTreeSet<String> {
        match e {
            Expr::VectorSelector(vs) => self.selector(vs),
            Expr::MatrixSelector(ms) => self.selector(&ms.vs),
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.expr(p);
                }
                let inner = self.expr(&a.expr);
                match &a.modifier {
                    Some(LabelModifier::Include(ls)) => {
                        self.grouping(&ls.labels, &inner, "groups by");
                        ls.labels.iter().cloned().collect()
                    }
                    Some(LabelModifier::Exclude(ls)) => {
                        self.grouping(&ls.labels, &inner, "groups without");
                        inner
                            .into_iter()
                            .filter(|l| !ls.labels.contains(l))
                            .collect()
                    }
                    None => BTreeSet::new(),
                }
            }
            Expr::Binary(b) => {
                let l = self.expr(&b.lhs);
                let r = self.expr(&b.rhs);
                if let Some(m) = b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    let both: BTreeSet<String> = l.union(&r).cloned().collect();
                    self.grouping(&m.labels().labels, &both, "matches on");
                }
                // A scalar side carries no labels; otherwise the left side's survive.
                if l.is_empty() { r } else { l }
            }
            Expr::Paren(p) => self.expr(&p.expr),
            Expr::Unary(u) => self.expr(&u.expr),
            Expr::Subquery(s) => self.expr(&s.expr),
            Expr::Call(c) => c
                .args
                .args
                .iter()
                .map(|a| self.expr(a))
                .fold(BTreeSet::new(), |acc, s| acc.union(&s).cloned().collect()),
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => BTreeSet::new(),
        }
    }

    /// Parses `query`, checks it, returns the labels of its result.
    fn query(&mut self, query: &str) -> BTreeSet<String> {
        match parser::parse(query) {
            Ok(e) => self.expr(&e),
            Err(err) => {
                self.errors
                    .push(format!("{}: does not parse ({err}): {query}", self.context));
                BTreeSet::new()
            }
        }
    }
}

/// `{{name}}` and `{{ $labels.name }}` references in a template.
fn template_labels(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + end].trim();
        let name = inner.strip_prefix("$labels.").unwrap_or(inner);
        if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.is_empty() {
            out.push(name.to_string());
        }
        rest = &rest[start + end + 2..];
    }
    out
}

/// Grafana's placeholders replaced so the query is plain PromQL.
fn plain(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

fn panel_targets(v: &Value, out: &mut Vec<(String, Value)>) {
    if let Some(panels) = v.get("panels").and_then(Value::as_array) {
        for p in panels {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((title.clone(), t.clone()));
            }
            panel_targets(p, out);
        }
    }
}

#[test]
fn dashboard_queries_only_what_the_sensor_exports() {
    let dash: Value = serde_json::from_str(&read(
        "deploy/observability/grafana/tls-sensor-dashboard.json",
    ))
    .expect("dashboard JSON");
    let mut targets = Vec::new();
    panel_targets(&dash, &mut targets);
    assert!(targets.len() >= 10, "only {} queries", targets.len());
    let mut metrics = BTreeSet::new();
    let mut errors = Vec::new();
    for (title, t) in &targets {
        let expr = t["expr"].as_str().expect("every target has an expr");
        let context = format!("dashboard panel {title:?}");
        let mut c = Checker {
            context: &context,
            metrics: BTreeSet::new(),
            errors: Vec::new(),
        };
        let out = c.query(&plain(expr));
        if let Some(legend) = t["legendFormat"].as_str() {
            for l in template_labels(legend) {
                if !out.contains(&l) {
                    c.errors
                        .push(format!("{context}: legend uses `{l}`, not in the result"));
                }
            }
        }
        metrics.extend(c.metrics);
        errors.extend(c.errors);
    }
    // Template variables: label_values(metric, label).
    for var in dash["templating"]["list"].as_array().into_iter().flatten() {
        let Some(q) = var["definition"].as_str() else {
            continue;
        };
        let args = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query {q:?} is not label_values(metric, label)"));
        let (metric, label) = args.split_once(',').expect("metric, label");
        let (metric, label) = (metric.trim(), label.trim());
        match metric_names::by_prometheus_name(metric) {
            None => errors.push(format!("variable {q}: `{metric}` is not exported")),
            Some(m) if !labels_of(m).contains(label) => {
                errors.push(format!("variable {q}: `{metric}` has no label `{label}`"))
            }
            Some(_) => {}
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The dashboard covers what the issue asks for.
    for m in [
        "tls_certificate_not_after_seconds",
        "tls_certificates",
        "tls_findings_total",
        "tls_handshakes_total",
        "sensor_packets_total",
        "sensor_events_lost_total",
        "tls_traffic_bytes_total",
        "tls_connections_total",
        "tls_connection_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(m), "the dashboard never shows {m}");
    }
}

#[test]
fn alert_rules_query_only_what_the_sensor_exports() {
    let rules: Value = serde_norway::from_str(&read(
        "deploy/observability/prometheus/tls-sensor-rules.yaml",
    ))
    .expect("rules YAML");
    let mut alerts = BTreeSet::new();
    let mut errors = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("alert rules only");
            alerts.insert(name.to_string());
            let context = format!("alert {name}");
            let mut c = Checker {
                context: &context,
                metrics: BTreeSet::new(),
                errors: Vec::new(),
            };
            let out = c.query(rule["expr"].as_str().expect("expr"));
            assert!(!c.metrics.is_empty(), "{context} queries no metric");
            for text in rule["annotations"]
                .as_object()
                .into_iter()
                .flat_map(|a| a.values())
                .filter_map(Value::as_str)
            {
                for l in template_labels(text) {
                    if l != "value" && !out.contains(&l) {
                        c.errors.push(format!(
                            "{context}: annotation uses `{l}`, not in the result"
                        ));
                    }
                }
            }
            errors.extend(c.errors);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for a in [
        "TLSCertificateExpiredInUse",
        "TLSCertificateExpiringSoon",
        "TLSCertificateUnmanaged",
        "TLSCertificateStale",
        "TLSSensorDown",
        "TLSSensorEventsLost",
    ] {
        assert!(alerts.contains(a), "no alert {a}");
    }
}

#[test]
fn the_checker_catches_wrong_names() {
    let mut c = Checker {
        context: "probe",
        metrics: BTreeSet::new(),
        errors: Vec::new(),
    };
    // Without the unit suffix, a label the metric lacks, a grouping label
    // no metric has: three mistakes.
    c.query("tls_certificate_not_after < time()");
    c.query(r#"tls_handshakes_total{tls_version="1.3"}"#);
    c.query("sum by (tls_finding_rule) (rate(tls_handshakes_total[5m]))");
    assert_eq!(c.errors.len(), 3, "{:#?}", c.errors);
    let mut ok = Checker {
        context: "probe",
        metrics: BTreeSet::new(),
        errors: Vec::new(),
    };
    let out = ok.query(
        r#"sum by (k8s_node_name, tls_mesh) (rate(tls_handshakes_total{tls_protocol_version="1.3"}[5m]))"#,
    );
    assert!(ok.errors.is_empty(), "{:#?}", ok.errors);
    assert_eq!(
        out,
        ["k8s_node_name", "tls_mesh"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

#[test]
fn shipped_policy_passes_policy_check() {
    let out = std::process::Command::new(tests::sensor_bin())
        .args(["policy", "check"])
        .arg(root().join("deploy/base/policy.yaml"))
        .output()
        .expect("sensor policy check");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn dockerfile() -> String {
    read("deploy/Dockerfile")
}

/// `cargo install bpf-linker@X --locked` in `text`.
fn bpf_linker_version(text: &str) -> Option<String> {
    let at = text.find("bpf-linker@")? + "bpf-linker@".len();
    Some(
        text[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect(),
    )
}

#[test]
fn dockerfile_uses_the_project_toolchains() {
    let df = dockerfile();
    let workspace = read("Cargo.toml");
    let rust_version = workspace
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .expect("workspace rust-version")
        .trim_matches('"');
    assert!(
        df.contains(&format!("FROM rust:{rust_version}-bookworm AS build")),
        "the builder is not rust:{rust_version}-bookworm"
    );
    let setup = read("xtask/src/setup.rs");
    let pinned = bpf_linker_version(&setup).expect("setup.rs pins bpf-linker");
    assert_eq!(
        bpf_linker_version(&df).as_deref(),
        Some(pinned.as_str()),
        "bpf-linker version differs from xtask setup"
    );
    assert!(df.contains(&format!("bpf-linker@{pinned} --locked")));
    // The kernel programs: nightly with rust-src, as `cargo xtask setup` installs.
    assert!(setup.contains(r#""rust-src", "--toolchain", "nightly""#));
    assert!(df.contains("rustup toolchain install nightly --profile minimal --component rust-src"));
}

#[test]
fn dockerfile_builds_the_binary_the_readme_builds() {
    let df = dockerfile();
    let readme = read("README.md");
    assert!(
        readme.lines().any(|l| l.trim() == "cargo build --release"),
        "README no longer documents `cargo build --release`"
    );
    // The same command, refusing to change Cargo.lock; then that binary.
    let build: Vec<&str> = df
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo build"))
        .collect();
    assert_eq!(build, ["cargo build --release --locked \\"]);
    assert!(df.contains("install -m 0755 target/release/sensor /sensor"));
    assert!(df.contains("COPY --from=build /sensor /usr/local/bin/sensor"));
    // Runtime and builder share the Debian release the binary's glibc comes from.
    assert!(df.contains("FROM debian:bookworm-slim"));
    let entry = df
        .lines()
        .find(|l| l.starts_with("ENTRYPOINT"))
        .expect("ENTRYPOINT");
    assert_eq!(entry, r#"ENTRYPOINT ["/usr/local/bin/sensor"]"#);
    assert!(Path::new(&root().join("deploy/Dockerfile.dockerignore")).exists());
}
