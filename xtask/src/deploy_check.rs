//! Checks of `deploy/`: every kustomization renders (Debian's kubectl),
//! the output validates against the Kubernetes schemas
//! (kubernetes-validate), passes the security scan (checkov, skips only
//! through annotations that carry their reason), and keeps the sensor's
//! security promises (below); the alert rules parse and pass their unit
//! tests (promtool); every dashboard query parses (promtool); the
//! Dockerfile passes hadolint and checkov. Metric names in the dashboard
//! and rules are checked against the sensor's list by
//! tests/tests/deploy_assets.rs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::root;
use crate::run;
use crate::setup::deploy_tools::{kubectl, promtool, venv_bin};

/// The oldest Kubernetes the manifests are validated against besides the
/// newest the validator knows (TCX needs kernel 6.6, bpf_loop 5.17: nodes
/// of clusters older than this rarely have those).
const OLDEST_KUBERNETES: &str = "1.29.0";

/// The only capabilities the sensor container may add.
const CAPABILITIES: [&str; 3] = ["BPF", "NET_ADMIN", "PERFMON"];

fn out_dir() -> PathBuf {
    root().join(".cache/deploy-check")
}

/// Every folder with a kustomization.yaml under deploy/.
fn kustomizations() -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
        if dir.join("kustomization.yaml").exists() {
            found.push(dir.to_path_buf());
        }
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, found)?;
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(&root().join("deploy"), &mut found)?;
    found.sort();
    ensure!(
        found.len() >= 4,
        "expected base and overlays, found {found:?}"
    );
    Ok(found)
}

fn output(cmd: &mut Command) -> Result<String> {
    Ok(String::from_utf8(tests::proc::checked(cmd)?.stdout)?)
}

fn documents(yaml: &str) -> Result<Vec<Value>> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for d in serde_norway::Deserializer::from_str(yaml) {
        let v = Value::deserialize(d)?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn kind_name(v: &Value) -> String {
    format!(
        "{}/{}",
        v["kind"].as_str().unwrap_or("?"),
        v["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// A generated ConfigMap's name without kustomize's content hash, which
/// differs between kustomize versions.
fn stable_name(v: &Value) -> String {
    let n = kind_name(v);
    if v["kind"] == "ConfigMap"
        && let Some((base, hash)) = n.rsplit_once('-')
        && hash.len() == 10
    {
        return base.to_string();
    }
    n
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// Renders with Debian's kubectl; when another kubectl is on PATH (a
/// newer kustomize, as users have), it must render the same objects.
fn render(dir: &Path) -> Result<(String, Vec<Value>)> {
    let yaml = output(Command::new(kubectl()).arg("kustomize").arg(dir))?;
    let docs = documents(&yaml)?;
    ensure!(!docs.is_empty(), "{} renders nothing", rel(dir));
    let other = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    if let Ok(o) = other
        && o.status.success()
    {
        let newer = output(Command::new("kubectl").arg("kustomize").arg(dir))
            .with_context(|| format!("the kubectl on PATH cannot render {}", rel(dir)))?;
        let a: BTreeSet<String> = docs.iter().map(stable_name).collect();
        let b: BTreeSet<String> = documents(&newer)?.iter().map(stable_name).collect();
        ensure!(
            a == b,
            "{}: Debian's kubectl renders {a:?}, the one on PATH {b:?}",
            rel(dir)
        );
    }
    Ok((yaml, docs))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The promises of DEPLOYMENT in README: never privileged, exactly three
/// capabilities, read-only RBAC, Secrets only where asked for.
fn security_invariants(name: &str, docs: &[Value]) -> Result<()> {
    let ds: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "DaemonSet" && d["metadata"]["name"] == "tls-sensor")
        .collect();
    if name.ends_with("observability/otel-collector") {
        ensure!(ds.is_empty(), "{name}: the collector alone has no sensor");
    } else {
        ensure!(ds.len() == 1, "{name}: one tls-sensor DaemonSet expected");
        let spec = &ds[0]["spec"]["template"]["spec"];
        ensure!(spec["hostNetwork"] == true, "{name}: hostNetwork");
        ensure!(
            spec["dnsPolicy"] == "ClusterFirstWithHostNet",
            "{name}: dnsPolicy"
        );
        for field in ["hostPID", "hostIPC"] {
            ensure!(spec[field] != true, "{name}: {field} must stay off");
        }
        ensure!(
            spec["tolerations"] == json!([{"operator": "Exists"}]),
            "{name}: tolerate every taint"
        );
        ensure!(
            spec["priorityClassName"].is_string(),
            "{name}: priority class"
        );
        for v in spec["volumes"].as_array().into_iter().flatten() {
            ensure!(v.get("hostPath").is_none(), "{name}: no hostPath volume");
        }
        let seccomp = spec["securityContext"]["seccompProfile"]["type"].as_str();
        let want_seccomp = if name.ends_with("seccomp-unconfined") {
            "Unconfined"
        } else {
            "RuntimeDefault"
        };
        ensure!(
            seccomp == Some(want_seccomp),
            "{name}: seccomp {seccomp:?}, expected {want_seccomp}"
        );
        let containers = spec["containers"].as_array().context("containers")?;
        ensure!(containers.len() == 1, "{name}: one container");
        ensure!(
            spec.get("initContainers").is_none(),
            "{name}: no init containers"
        );
        let c = &containers[0];
        let sc = &c["securityContext"];
        ensure!(
            sc["privileged"] == false,
            "{name}: privileged must be false"
        );
        ensure!(
            sc["allowPrivilegeEscalation"] == false,
            "{name}: allowPrivilegeEscalation"
        );
        ensure!(
            sc["readOnlyRootFilesystem"] == true,
            "{name}: readOnlyRootFilesystem"
        );
        ensure!(
            strings(&sc["capabilities"]["drop"]) == ["ALL"],
            "{name}: drop ALL"
        );
        let added: BTreeSet<&str> = strings(&sc["capabilities"]["add"]).into_iter().collect();
        ensure!(
            added == CAPABILITIES.into_iter().collect(),
            "{name}: capabilities {added:?}, expected {CAPABILITIES:?}"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            ensure!(
                c[probe]["httpGet"]["path"] == path,
                "{name}: {probe} {path}"
            );
        }
        for r in ["requests", "limits"] {
            for k in ["cpu", "memory"] {
                ensure!(c["resources"][r][k].is_string(), "{name}: {r}.{k}");
            }
        }
        let node = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == "K8S_NODE_NAME")
            .context("K8S_NODE_NAME")?;
        ensure!(
            node["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName",
            "{name}: K8S_NODE_NAME from the downward API"
        );
    }
    let mut secrets = false;
    for role in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        for rule in role["rules"].as_array().into_iter().flatten() {
            let verbs: BTreeSet<&str> = strings(&rule["verbs"]).into_iter().collect();
            ensure!(
                verbs.is_subset(&["list", "watch"].into_iter().collect()),
                "{name}: {} grants {verbs:?}",
                kind_name(role)
            );
            let resources = strings(&rule["resources"]);
            ensure!(
                !resources.contains(&"*") && !strings(&rule["apiGroups"]).contains(&"*"),
                "{name}: wildcard in {}",
                kind_name(role)
            );
            secrets |= resources.contains(&"secrets");
        }
    }
    ensure!(
        secrets == name.ends_with("read-secrets"),
        "{name}: Secrets are readable {secrets}, only the read-secrets overlay grants them"
    );
    Ok(())
}

fn validate(file: &Path) -> Result<()> {
    for version in [Some(OLDEST_KUBERNETES), None] {
        let mut cmd = Command::new(venv_bin("kubernetes-validate"));
        cmd.args(["--strict", "--quiet"]);
        if let Some(v) = version {
            cmd.args(["-k", v]);
        }
        run(cmd.arg(file))?;
    }
    Ok(())
}

/// checkov without network (its guideline download fails here and is not needed).
fn checkov(framework: &str, file: &Path) -> Result<()> {
    run(Command::new(venv_bin("checkov"))
        .env("BC_SKIP_MAPPING", "TRUE")
        .args([
            "--framework",
            framework,
            "--skip-download",
            "--quiet",
            "--compact",
        ])
        .arg("-f")
        .arg(file))
}

fn dockerfile() -> Result<()> {
    let f = root().join("deploy/Dockerfile");
    run(Command::new(venv_bin("hadolint")).arg(&f))?;
    checkov("dockerfile", &f)
}

/// Grafana placeholders replaced so the queries are plain PromQL.
pub fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(e)) = m.get("expr") {
                    out.push(
                        e.replace("$__rate_interval", "5m")
                            .replace("$__interval", "1m")
                            .replace("$__range", "1h"),
                    );
                }
                m.values().for_each(|x| walk(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn prometheus_assets(dir: &Path) -> Result<()> {
    let rules = root().join("deploy/observability/prometheus");
    run(Command::new(promtool()).current_dir(&rules).args([
        "check",
        "rules",
        "tls-sensor-rules.yaml",
    ]))?;
    run(Command::new(promtool()).current_dir(&rules).args([
        "test",
        "rules",
        "tls-sensor-rules.test.yaml",
    ]))?;
    // Dashboard queries as recording rules: promtool parses each with
    // Prometheus' own parser.
    let dash_file = root().join("deploy/observability/grafana/tls-sensor-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&dash_file)?)
        .with_context(|| rel(&dash_file))?;
    let queries = dashboard_queries(&dash);
    ensure!(
        queries.len() >= 10,
        "the dashboard has {} queries",
        queries.len()
    );
    let rules: Vec<Value> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| json!({"record": format!("dashboard:query_{i}"), "expr": q}))
        .collect();
    let file = dir.join("dashboard-queries.rules.json");
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&json!({"groups": [{"name": "dashboard", "rules": rules}]}))?,
    )?;
    run(Command::new(promtool()).args(["check", "rules"]).arg(&file))
}

pub fn check() -> Result<()> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    eprintln!("== deploy: Dockerfile (hadolint, checkov)");
    dockerfile()?;
    for k in kustomizations()? {
        let name = rel(&k);
        eprintln!("== deploy: {name} (kustomize, kubernetes-validate, checkov, invariants)");
        let (yaml, docs) = render(&k)?;
        let file = dir.join(format!("{}.yaml", name.replace('/', "_")));
        std::fs::write(&file, yaml)?;
        validate(&file)?;
        checkov("kubernetes", &file)?;
        security_invariants(&name, &docs)?;
    }
    eprintln!("== deploy: alert rules and dashboard queries (promtool)");
    prometheus_assets(&dir)?;
    eprintln!("deploy checks: all passed");
    Ok(())
}
