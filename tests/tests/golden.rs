//! Golden records: `sensor analyze --json` over every capture the project
//! has, compared with what an earlier build printed for it.
//!
//! The `X.expected.jsonl` files next to the captures hold only the fields
//! that tshark and openssl can vouch for; a refactor could change any other
//! field, a record's order or the summary without those tests noticing. Here
//! every capture under `tests/data` (and under `../shared/fixtures/tls` when
//! that folder exists) runs once without an inventory and once with each
//! Kubernetes snapshot of `tests/data`, and each output must equal, line by
//! line, the one recorded in `tests/data/golden/<capture>.<variant>.jsonl`
//! (`golden/shared/…` for the shared captures). Lines are compared as JSON
//! values, so only the order of an object's keys may differ.
//!
//! A deliberate change of behaviour records them again:
//! `GOLDEN_BLESS=1 cargo test --release -p tests --test golden`, then review
//! the diff of `tests/data/golden` and commit it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tests::{data_dir, sensor_bin, workspace_root};

const GOLDEN_DIR: &str = "golden";
const SHARED_PREFIX: &str = "shared";

/// A capture and the name its golden files go by (its path below its root,
/// `shared/` in front for the shared fixtures).
struct Capture {
    path: PathBuf,
    name: String,
}

/// `None` is the run without an inventory.
struct Variant {
    name: String,
    inventory: Option<PathBuf>,
}

fn shared_dir() -> PathBuf {
    workspace_root().join("../shared/fixtures/tls")
}

fn files_under(root: &Path, skip: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        if dir == skip {
            continue;
        }
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries {
            let path = e.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn has_ext(path: &Path, exts: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.contains(&e))
}

fn relative(path: &Path, root: &Path) -> String {
    let rel = path.strip_prefix(root).expect("a file below its root");
    rel.to_str().expect("utf-8 file name").replace('\\', "/")
}

fn captures(golden: &Path) -> Vec<Capture> {
    let data = data_dir();
    let mut out: Vec<Capture> = files_under(&data, golden)
        .into_iter()
        .filter(|p| has_ext(p, &["pcap", "pcapng"]))
        .map(|p| Capture {
            name: relative(&p, &data),
            path: p,
        })
        .collect();
    let shared = shared_dir();
    if shared.is_dir() {
        out.extend(
            files_under(&shared, golden)
                .into_iter()
                .filter(|p| has_ext(p, &["pcap", "pcapng"]))
                .map(|p| Capture {
                    name: format!("{SHARED_PREFIX}/{}", relative(&p, &shared)),
                    path: p,
                }),
        );
    } else {
        println!(
            "note: {} is absent; only the captures of tests/data are compared",
            shared.display()
        );
    }
    out
}

/// Every Kubernetes object file of tests/data: YAML or JSON with a top-level
/// `apiVersion`, so that a policy file or the like put there is not taken
/// for one.
fn variants(golden: &Path) -> Vec<Variant> {
    let data = data_dir();
    let mut out = vec![Variant {
        name: "none".to_string(),
        inventory: None,
    }];
    for p in files_under(&data, golden) {
        if !has_ext(&p, &["yaml", "yml", "json"]) {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let is_snapshot = if has_ext(&p, &["json"]) {
            text.contains("\"apiVersion\"")
        } else {
            text.lines().any(|l| l.starts_with("apiVersion:"))
        };
        if !is_snapshot {
            continue;
        }
        let rel = relative(&p, &data);
        let stem = rel.rsplit_once('.').map_or(rel.as_str(), |(s, _)| s);
        out.push(Variant {
            name: stem.replace('/', "-"),
            inventory: Some(p),
        });
    }
    out
}

fn analyze(capture: &Path, inventory: Option<&Path>) -> String {
    let mut cmd = Command::new(sensor_bin());
    cmd.arg("analyze").arg("--json");
    if let Some(inv) = inventory {
        cmd.arg("--inventory").arg(inv);
    }
    cmd.arg(capture);
    // Variables that would have the sensor export or label differently than
    // when the files were recorded.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("OTEL_") || k == "K8S_CLUSTER_NAME" {
            cmd.env_remove(k.as_ref());
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("running the sensor binary");
    assert!(
        out.status.success(),
        "sensor analyze --json {}{} failed ({}): {}",
        inventory.map_or(String::new(), |i| format!("--inventory {} ", i.display())),
        capture.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the sensor prints UTF-8")
}

/// The first line where the two differ as JSON values, as a message.
fn first_difference(golden: &str, actual: &str) -> Option<String> {
    let parse = |l: &str| serde_json::from_str::<Value>(l).ok();
    let (g, a): (Vec<&str>, Vec<&str>) = (golden.lines().collect(), actual.lines().collect());
    for i in 0..g.len().max(a.len()) {
        let (gl, al) = (g.get(i).copied(), a.get(i).copied());
        let same = match (gl, al) {
            (Some(gl), Some(al)) => match (parse(gl), parse(al)) {
                (Some(gv), Some(av)) => gv == av,
                // Not JSON: then only the very same text is the same.
                _ => gl == al,
            },
            _ => false,
        };
        if !same {
            return Some(format!(
                "line {}:\n    recorded: {}\n    now:      {}",
                i + 1,
                gl.unwrap_or("<no line>"),
                al.unwrap_or("<no line>")
            ));
        }
    }
    None
}

#[test]
fn analyze_prints_the_recorded_records() {
    let golden = data_dir().join(GOLDEN_DIR);
    let bless = std::env::var_os("GOLDEN_BLESS").is_some_and(|v| v == "1");
    let shared_present = shared_dir().is_dir();
    let captures = captures(&golden);
    let variants = variants(&golden);
    assert!(
        variants.len() >= 3,
        "the kube snapshots of tests/data were not found"
    );

    let mut wanted = BTreeSet::new();
    let mut failures = Vec::new();
    for c in &captures {
        for v in &variants {
            let file = golden.join(format!("{}.{}.jsonl", c.name, v.name));
            wanted.insert(file.clone());
            let actual = analyze(&c.path, v.inventory.as_deref());
            if bless {
                std::fs::create_dir_all(file.parent().expect("golden file has a folder"))
                    .expect("creating the golden folder");
                std::fs::write(&file, &actual)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                continue;
            }
            let Ok(recorded) = std::fs::read_to_string(&file) else {
                failures.push(format!("{}: not recorded", file.display()));
                continue;
            };
            if let Some(diff) = first_difference(&recorded, &actual) {
                failures.push(format!("{}: {diff}", file.display()));
            }
        }
    }

    // A golden file nobody checks any more is coverage lost without notice.
    if golden.is_dir() {
        let shared_golden = golden.join(SHARED_PREFIX);
        for f in files_under(&golden, Path::new("")) {
            if wanted.contains(&f) || !shared_present && f.starts_with(&shared_golden) {
                continue;
            }
            if bless {
                std::fs::remove_file(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            } else {
                failures.push(format!(
                    "{}: no capture or snapshot left for it",
                    f.display()
                ));
            }
        }
    }

    println!(
        "{} captures x {} variants {}",
        captures.len(),
        variants.len(),
        if bless { "recorded" } else { "compared" }
    );
    assert!(
        failures.is_empty(),
        "{} of {} outputs differ from the recorded ones (GOLDEN_BLESS=1 records them again):\n{}",
        failures.len(),
        wanted.len(),
        failures.join("\n")
    );
}

/// The handshake and flow records are written by hand (for speed), the
/// other kinds and the OTLP log bodies by serde: the two must agree byte for
/// byte, key order included, on every record of every capture and variant.
#[test]
fn handshake_and_flow_lines_are_what_serde_json_writes() {
    use sensor::analysis::Analysis;
    use sensor::export::RecordSink;
    use sensor::export::json_write::WriteJson;
    use sensor::export::records::{FlowRecord, HandshakeRecord};
    use sensor::inventory::{Inventory, InventoryConfig, SnapshotOptions};
    use sensor::model::{Connection, FlowReport};
    use sensor::pipeline::PipelineConfig;

    #[derive(Default)]
    struct Compare {
        handshakes: usize,
        flows: usize,
        with_peers: usize,
    }
    impl Compare {
        fn same<T: WriteJson + serde::Serialize>(v: &T) {
            let mut ours = Vec::new();
            v.write_json(&mut ours);
            let serde = serde_json::to_vec(v).expect("serializing a record");
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde)
            );
        }
    }
    impl RecordSink for Compare {
        fn connection(&mut self, c: &Connection) {
            Self::same(&HandshakeRecord::from(c));
            self.handshakes += 1;
            self.with_peers += usize::from(c.correlation.source.is_some());
        }
        fn flow_report(&mut self, r: &FlowReport) {
            Self::same(&FlowRecord::from(r));
            self.flows += 1;
        }
    }

    let golden = data_dir().join(GOLDEN_DIR);
    let mut total = Compare::default();
    for c in captures(&golden) {
        for v in variants(&golden) {
            let inventory = v.inventory.as_ref().map(|p| {
                let inv = Inventory::new(InventoryConfig::default());
                inv.load_snapshot(p, &SnapshotOptions::default())
                    .expect("snapshot");
                inv
            });
            let out = sensor::analyze::analyze(
                std::slice::from_ref(&c.path),
                PipelineConfig::default().with_inventory(inventory),
                Analysis::default(),
                Compare::default(),
            );
            total.handshakes += out.sink.handshakes;
            total.flows += out.sink.flows;
            total.with_peers += out.sink.with_peers;
        }
    }
    println!(
        "{} handshake and {} flow records compared, {} handshakes with peers",
        total.handshakes, total.flows, total.with_peers
    );
    assert!(total.handshakes > 0 && total.flows > 0 && total.with_peers > 0);
}
