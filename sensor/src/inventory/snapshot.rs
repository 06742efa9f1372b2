//! `--inventory FILE`: what `kubectl get ... -A -o yaml` (or `-o json`)
//! prints, read into the same index the watches fill. Accepts one `kind:
//! List` document, several YAML documents (`---`), single objects, and
//! typed lists (`PodList`) whose items carry no kind.
//!
//! Each item is trimmed as soon as it is read, so the file's full object
//! tree is never held at once: memory follows the trimmed index, plus the
//! file text itself.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use kube::api::DynamicObject;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::objects::{Item, Kind, TrimError, accept};

#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// Larger files are refused rather than read.
    pub max_bytes: u64,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self { max_bytes: 1 << 30 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("--inventory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--inventory {path}: {size} bytes, more than the {max} bytes accepted")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("--inventory {path}: not YAML or JSON: {message}")]
    Parse { path: PathBuf, message: String },
}

/// What one file contributed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SnapshotReport {
    pub objects: usize,
    /// Objects of kinds the index does not follow (ConfigMaps, Deployments...), by kind.
    pub ignored: BTreeMap<String, u64>,
    /// Objects of followed kinds that could not be read, by cause.
    pub rejected: BTreeMap<String, u64>,
}

/// Reads one object as kubectl or the API wrote it, `kind`/`apiVersion`
/// taken from the item or, for typed lists, from the list.
pub fn read_item(mut v: Value, list_type: Option<(&str, &str)>) -> Item {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (api_version, kind) = match (text(&v, "apiVersion"), text(&v, "kind")) {
        (Some(a), Some(k)) => (a, k),
        _ => match list_type {
            Some((a, k)) => (a.to_string(), k.to_string()),
            None => return Item::Ignored("(no kind)".into()),
        },
    };
    let Some(kind) = Kind::from_type(&api_version, &kind) else {
        return Item::Ignored(kind);
    };
    if let Some(m) = v.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    match serde_json::from_value::<DynamicObject>(v) {
        Ok(obj) => accept(kind, obj),
        Err(source) => Item::Rejected(TrimError::Field {
            kind: kind.name(),
            key: Default::default(),
            field: "metadata",
            source,
        }),
    }
}

/// One document: a List (items read one by one) or a single object.
#[derive(Default)]
struct Doc {
    items: Vec<Item>,
}

struct ItemsSeed<'a> {
    out: &'a mut Vec<Item>,
    /// Items without their own kind, waiting for the list's.
    untyped: &'a mut Vec<Value>,
}

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of Kubernetes objects")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            if v.get("kind").is_some() {
                self.out.push(read_item(v, None));
            } else {
                self.untyped.push(v);
            }
        }
        Ok(())
    }
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes object or list")
    }

    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::default())
    }

    /// An empty stream is one empty document.
    fn visit_none<E>(self) -> Result<Doc, E> {
        Ok(Doc::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Doc, A::Error> {
        let mut doc = Doc::default();
        let mut untyped = Vec::new();
        ItemsSeed {
            out: &mut doc.items,
            untyped: &mut untyped,
        }
        .visit_seq(seq)?;
        doc.items
            .extend(untyped.into_iter().map(|v| read_item(v, None)));
        Ok(doc)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut doc = Doc::default();
        let mut untyped = Vec::new();
        let mut rest = serde_json::Map::new();
        let mut is_list = false;
        while let Some(k) = map.next_key::<String>()? {
            if k == "items" {
                is_list = true;
                map.next_value_seed(ItemsSeed {
                    out: &mut doc.items,
                    untyped: &mut untyped,
                })?;
            } else {
                let v: Value = map.next_value()?;
                rest.insert(k, v);
            }
        }
        let text = |k: &str| rest.get(k).and_then(Value::as_str).unwrap_or("");
        if is_list {
            // `PodList` → items are Pods; a plain `List` names each item's kind.
            let item_kind = text("kind").strip_suffix("List").unwrap_or("");
            let list_type = (!item_kind.is_empty()).then(|| (text("apiVersion"), item_kind));
            doc.items
                .extend(untyped.into_iter().map(|v| read_item(v, list_type)));
        } else if !rest.is_empty() {
            doc.items.push(read_item(Value::Object(rest), None));
        }
        Ok(doc)
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

fn parse(text: &str) -> Result<Vec<Item>, String> {
    let first = text.trim_start().as_bytes().first().copied();
    if matches!(first, Some(b'{') | Some(b'[')) {
        let mut de = serde_json::Deserializer::from_str(text);
        // Deep nesting is bounded by serde_json's recursion limit.
        let doc = Doc::deserialize(&mut de).map_err(|e| e.to_string())?;
        de.end().map_err(|e| e.to_string())?;
        return Ok(doc.items);
    }
    // The policy's YAML crate, one for the workspace: it resolves only
    // `true`/`false` as booleans (YAML 1.2), so `n`, `no`, `on` stay strings
    // (a namespace called `n`) as in the JSON the API serves. Its only
    // bounds are nesting depth and alias expansion; the size bound is
    // `SnapshotOptions::max_bytes`.
    let mut items = Vec::new();
    for de in serde_norway::Deserializer::from_str(text) {
        items.extend(Doc::deserialize(de).map_err(|e| e.to_string())?.items);
    }
    Ok(items)
}

/// Reads one snapshot file into trimmed items.
pub fn read_file(path: &Path, opts: &SnapshotOptions) -> Result<Vec<Item>, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > opts.max_bytes {
        return Err(SnapshotError::TooLarge {
            path: path.to_path_buf(),
            size,
            max: opts.max_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|e| SnapshotError::Parse {
        path: path.to_path_buf(),
        message: format!("not UTF-8: {e}"),
    })?;
    parse(&text).map_err(|message| SnapshotError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::objects::Body;

    fn kinds(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Object(o) => format!("{}:{}", o.kind.name(), o.key),
                Item::Ignored(k) => format!("ignored:{k}"),
                Item::Rejected(e) => format!("rejected:{}", e.label()),
            })
            .collect()
    }

    #[test]
    fn list_documents_and_single_objects() {
        let yaml = r#"
apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: a
    namespace: n
    annotations: {enabled: "yes", flag: on}
  spec:
    containers: [{name: c}]
  status:
    podIP: 10.1.0.1
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: d, namespace: n}
- apiVersion: v1
  kind: Pod
  metadata: {name: broken, namespace: n}
  spec: {containers: 7}
kind: List
metadata:
  resourceVersion: ""
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: ca}
spec: {ca: {secretName: ca}}
---
"#;
        let items = parse(yaml).unwrap();
        assert_eq!(
            kinds(&items),
            vec![
                "Pod:n/a",
                "ignored:Deployment",
                "rejected:bad_field",
                "ClusterIssuer:ca"
            ]
        );
    }

    #[test]
    fn typed_list_items_take_the_list_kind() {
        let json = r#"{"kind": "NodeList", "apiVersion": "v1", "metadata": {},
            "items": [{"metadata": {"name": "n1"},
              "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}]}"#;
        let items = parse(json).unwrap();
        assert_eq!(kinds(&items), vec!["Node:n1"]);
        let Item::Object(o) = &items[0] else { panic!() };
        let Body::Node(n) = &o.body else { panic!() };
        assert_eq!(
            n.ips,
            vec!["172.18.0.2".parse::<std::net::IpAddr>().unwrap()]
        );
        // Items before `kind` in the document (kubectl's key order) too.
        let yaml = "apiVersion: v1\nitems:\n- metadata: {name: n2}\nkind: NodeList\n";
        assert_eq!(kinds(&parse(yaml).unwrap()), vec!["Node:n2"]);
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(parse("{\"kind\": ").is_err());
        assert!(parse("a: [b\n").is_err());
        assert!(parse("").unwrap().is_empty());
        assert!(parse("42\n").is_err());
    }

    #[test]
    fn size_bound_refuses_and_names_the_file() {
        let dir = std::env::temp_dir().join(format!("snap-bound-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("big.yaml");
        std::fs::write(&f, "kind: List\nitems: []\n".repeat(10)).unwrap();
        let e = read_file(&f, &SnapshotOptions { max_bytes: 50 })
            .err()
            .unwrap();
        assert!(matches!(e, SnapshotError::TooLarge { .. }));
        assert!(e.to_string().contains("big.yaml"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
