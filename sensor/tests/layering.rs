//! The layering of `sensor/src` that ../shared/DESIGN.md ("Code layout
//! inside sensor/src/") asks for, checked on the source text: data flows
//! down model → capture → reassembly → tls → x509 → probe → inventory →
//! analysis → export, so no file of a stage may import one of a stage listed
//! after it (`model` imports no other stage at all), and no files import each
//! other, directly or round a longer circle.
//!
//! Flow accounting (`accounting.rs`) belongs to reassembly, as DESIGN.md says.
//! `pipeline`, `analyze`, `run`, `health`, `lib.rs` and `main.rs` wire the
//! stages: they may import any of them, and come after all of them. Inside
//! `export`, each submodule (`otlp`, `records`, `json`…) counts as a unit of
//! its own, so that `export/otlp` and `export/records` leaning on each other
//! is a circle even when no two single files close one.
//!
//! An import is any `use` path or path in code that starts with `crate`,
//! `super`, `self`, a child module or (in main.rs) `sensor`; it goes to the
//! file that defines the name, following `use` re-exports. `#[cfg(test)]`
//! items are left out: a stage's unit tests may build what a later stage
//! renders.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Stages in DESIGN.md's order; a file may import its own rank or below.
const STAGES: &[(&str, u8)] = &[
    ("model", 0),
    ("capture", 1),
    ("reassembly", 2),
    ("accounting", 2),
    ("tls", 3),
    ("x509", 4),
    ("probe", 5),
    ("inventory", 6),
    ("analysis", 7),
    ("export", 8),
];
const WIRING_RANK: u8 = 9;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Rust tokens without comments, string and char literals, lifetimes and
/// numbers, each with its line: enough to follow paths.
fn tokenize(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let skip_to = |from: usize, to: usize, line: &mut usize| {
        *line += c[from..to.min(c.len())]
            .iter()
            .filter(|&&x| x == '\n')
            .count();
        to
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let (mut depth, mut j) = (1, i + 2);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && at(j + 1) == '*' {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && at(j + 1) == '/' {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            i = skip_to(i, j, &mut line);
        } else if ch == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            i = skip_to(i, j + 1, &mut line);
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                // A lifetime or label: its name is no path.
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit() {
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let raw_str = matches!(word.as_str(), "r" | "br" | "cr")
                && (at(i) == '"' || at(i) == '#' && matches!(at(i + 1), '#' | '"'));
            if raw_str {
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                let mut j = i + 1;
                while j < c.len() {
                    if c[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                        break;
                    }
                    j += 1;
                }
                i = skip_to(i, j + 1 + hashes, &mut line);
            } else if word == "r" && at(i) == '#' {
                // A raw identifier, r#type.
                i += 1;
            } else if matches!(word.as_str(), "b" | "c") && matches!(at(i), '"' | '\'') {
                // A byte or C string: the literal is skipped next round.
            } else {
                out.push((Tok::Ident(word), line));
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn is(t: Option<&(Tok, usize)>, want: &Tok) -> bool {
    t.is_some_and(|(t, _)| t == want)
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// Drops `#[cfg(test)]` items (the attribute, any further attributes, and
/// the item up to its `;` or its closing brace).
fn without_test_items(toks: Vec<(Tok, usize)>) -> Vec<(Tok, usize)> {
    let pattern = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let starts = toks.len() - i >= pattern.len()
            && toks[i..i + pattern.len()]
                .iter()
                .zip(&pattern)
                .all(|((t, _), p)| t == p);
        if !starts {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        i += pattern.len();
        let mut depth = 0i32;
        while i < toks.len() {
            match &toks[i].0 {
                Tok::Punct('{') | Tok::Punct('[') | Tok::Punct('(') => depth += 1,
                Tok::Punct('}') | Tok::Punct(']') | Tok::Punct(')') => {
                    depth -= 1;
                    if depth == 0 && toks[i].0 == Tok::Punct('}') {
                        i += 1;
                        break;
                    }
                }
                Tok::Punct(';') if depth == 0 => {
                    i += 1;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
    }
    out
}

/// One name a `use` brings in: its path as written and the name it is
/// visible under (`None` for a glob).
#[derive(Debug, Clone)]
struct UseItem {
    path: Vec<String>,
    name: Option<String>,
    line: usize,
}

fn parse_use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<UseItem>,
) -> usize {
    let mut path = prefix.to_vec();
    let line = toks.get(i).map_or(0, |t| t.1);
    if is(toks.get(i), &Tok::PathSep) {
        i += 1;
    }
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                i += 1;
                if is(toks.get(i), &Tok::PathSep) {
                    i += 1;
                    continue;
                }
                break;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while i < toks.len() && !is(toks.get(i), &Tok::Punct('}')) {
                    i = parse_use_tree(toks, i, &path, out);
                    if is(toks.get(i), &Tok::Punct(',')) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some(Tok::Punct('*')) => {
                out.push(UseItem {
                    path,
                    name: None,
                    line,
                });
                return i + 1;
            }
            _ => break,
        }
    }
    if path.last().is_some_and(|s| s == "self") {
        path.pop();
    }
    let mut name = path.last().cloned();
    if ident(toks.get(i)) == Some("as") {
        name = ident(toks.get(i + 1)).map(str::to_string);
        i += 2;
    }
    if !path.is_empty() {
        out.push(UseItem { path, name, line });
    }
    i
}

struct File {
    rel: String,
    /// Module path below the crate root; `None` for main.rs, the binary's root.
    module: Option<Vec<String>>,
    uses: Vec<UseItem>,
    /// Paths written in code (not in a `use`), with their line.
    paths: Vec<(Vec<String>, usize)>,
    defines: BTreeSet<String>,
}

fn parse_file(rel: &str, module: Option<Vec<String>>, src: &str) -> File {
    let toks = without_test_items(tokenize(src));
    let mut uses = Vec::new();
    let mut paths = Vec::new();
    let mut defines = BTreeSet::new();
    let mut i = 0;
    while i < toks.len() {
        let word = ident(toks.get(i));
        if word == Some("use") {
            let mut j = parse_use_tree(&toks, i + 1, &[], &mut uses);
            while j < toks.len() && !is(toks.get(j), &Tok::Punct(';')) {
                j += 1;
            }
            i = j + 1;
            continue;
        }
        if let Some(
            kw @ ("struct" | "enum" | "fn" | "trait" | "type" | "const" | "static" | "union"
            | "mod"),
        ) = word
            && let Some(name) = ident(toks.get(i + 1))
            && !(kw == "const" && name == "fn")
        {
            defines.insert(name.to_string());
        }
        let path_start = i == 0 || !is(toks.get(i - 1), &Tok::PathSep);
        if let Some(first) = word
            && path_start
            && is(toks.get(i + 1), &Tok::PathSep)
        {
            let line = toks[i].1;
            let mut path = vec![first.to_string()];
            let mut j = i + 1;
            while is(toks.get(j), &Tok::PathSep) {
                match ident(toks.get(j + 1)) {
                    Some(s) => path.push(s.to_string()),
                    None => break,
                }
                j += 2;
            }
            paths.push((path, line));
            i = j;
            continue;
        }
        i += 1;
    }
    File {
        rel: rel.to_string(),
        module,
        uses,
        paths,
        defines,
    }
}

struct Crate {
    files: Vec<File>,
    by_module: BTreeMap<Vec<String>, usize>,
}

impl Crate {
    fn load(src: &Path) -> Crate {
        let mut files = Vec::new();
        let mut todo = vec![src.to_path_buf()];
        let mut found: Vec<PathBuf> = Vec::new();
        while let Some(dir) = todo.pop() {
            for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let p = e.expect("directory entry").path();
                if p.is_dir() {
                    todo.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    found.push(p);
                }
            }
        }
        found.sort();
        for p in found {
            let rel = p
                .strip_prefix(src)
                .expect("below src")
                .to_str()
                .expect("utf-8 path")
                .replace('\\', "/");
            let mut segs: Vec<String> = rel.split('/').map(str::to_string).collect();
            let last = segs.pop().expect("a file name");
            let module = match last.as_str() {
                "main.rs" if segs.is_empty() => None,
                "lib.rs" if segs.is_empty() => Some(segs),
                "mod.rs" => Some(segs),
                other => {
                    segs.push(other.trim_end_matches(".rs").to_string());
                    Some(segs)
                }
            };
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"));
            files.push(parse_file(&rel, module, &text));
        }
        let by_module = files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.module.clone().map(|m| (m, i)))
            .collect();
        Crate { files, by_module }
    }

    /// A path as written in `file`, made absolute; `None` when it leaves
    /// the crate (std, another crate) or is a plain local name.
    fn absolute(&self, file: usize, path: &[String]) -> Option<Vec<String>> {
        let f = &self.files[file];
        let first = path.first()?.as_str();
        let Some(cur) = &f.module else {
            // main.rs is its own crate: only `sensor::` reaches the library.
            return (first == "sensor").then(|| path[1..].to_vec());
        };
        match first {
            "crate" => Some(path[1..].to_vec()),
            "self" => Some([cur.as_slice(), &path[1..]].concat()),
            "super" => {
                let mut base = cur.clone();
                let mut rest = path;
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
                Some([base.as_slice(), rest].concat())
            }
            _ => {
                let child = [cur.as_slice(), &path[..1]].concat();
                if self.by_module.contains_key(&child) {
                    return Some([cur.as_slice(), path].concat());
                }
                // A name this file imported, used as a path's start (not
                // `use x;` itself, which would lead back here).
                let item = f
                    .uses
                    .iter()
                    .find(|u| u.name.as_deref() == Some(first) && u.path[0] != first)?;
                let base = self.absolute(file, &item.path)?;
                Some([base.as_slice(), &path[1..]].concat())
            }
        }
    }

    /// The file that defines what an absolute path names.
    fn resolve(&self, abs: &[String], depth: usize) -> Option<usize> {
        let k = (0..=abs.len())
            .rev()
            .find(|&k| self.by_module.contains_key(&abs[..k]))?;
        let m = self.by_module[&abs[..k]];
        if k == abs.len() || depth > 8 {
            return Some(m);
        }
        let name = &abs[k];
        let file = &self.files[m];
        if file.defines.contains(name) {
            return Some(m);
        }
        // A re-export: follow it to where the name is defined.
        for u in file.uses.iter().filter(|u| u.name.as_ref() == Some(name)) {
            if let Some(target) = self.absolute(m, &u.path) {
                let full = [target.as_slice(), &abs[k + 1..]].concat();
                return self.resolve(&full, depth + 1).or(Some(m));
            }
        }
        for u in file.uses.iter().filter(|u| u.name.is_none()) {
            if let Some(target) = self.absolute(m, &u.path)
                && let Some(&g) = self.by_module.get(&target)
                && self.files[g].defines.contains(name)
            {
                return self.resolve(&[target.as_slice(), &abs[k..]].concat(), depth + 1);
            }
        }
        Some(m)
    }
}

/// What a file imports: target file → the first line and path that does.
fn edges(krate: &Crate) -> BTreeMap<(usize, usize), (usize, String)> {
    let mut out = BTreeMap::new();
    for (i, f) in krate.files.iter().enumerate() {
        let written = f
            .uses
            .iter()
            .map(|u| (u.path.clone(), u.line))
            .chain(f.paths.iter().cloned());
        for (path, line) in written {
            let Some(abs) = krate.absolute(i, &path) else {
                continue;
            };
            let Some(j) = krate.resolve(&abs, 0) else {
                continue;
            };
            if i != j {
                out.entry((i, j)).or_insert((line, path.join("::")));
            }
        }
    }
    out
}

fn top(f: &File) -> &str {
    match &f.module {
        None => "main",
        Some(m) if m.is_empty() => "lib",
        Some(m) => &m[0],
    }
}

fn rank(f: &File) -> u8 {
    let t = top(f);
    STAGES
        .iter()
        .find(|(s, _)| *s == t)
        .map_or(WIRING_RANK, |&(_, r)| r)
}

/// The unit a file belongs to for circles between groups of files.
fn unit(f: &File) -> String {
    match &f.module {
        Some(m) if m.len() >= 2 && m[0] == "export" => format!("export/{}", m[1]),
        _ => top(f).to_string(),
    }
}

/// Strongly connected components with more than one node (Tarjan).
fn circles(n: usize, adj: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    struct T<'a> {
        adj: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(t: &mut T, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on[v] = true;
        for &w in t.adj[v].iter() {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on[w] => t.low[v] = t.low[v].min(iw),
                _ => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    t.out
}

fn violations(krate: &Crate) -> Vec<String> {
    let files = &krate.files;
    let edges = edges(krate);
    let show = |(i, j): (usize, usize)| {
        let (line, path) = &edges[&(i, j)];
        format!(
            "src/{}:{line} -> src/{} ({path})",
            files[i].rel, files[j].rel
        )
    };
    let mut out = Vec::new();

    for &(i, j) in edges.keys() {
        let (from, to) = (&files[i], &files[j]);
        if top(from) == "model" && top(to) != "model" {
            out.push(format!("model imports another stage: {}", show((i, j))));
        } else if rank(to) > rank(from) {
            out.push(format!(
                "{} ({}) imports the later {} ({}): {}",
                top(from),
                rank(from),
                top(to),
                rank(to),
                show((i, j))
            ));
        }
    }

    let mut adj = vec![BTreeSet::new(); files.len()];
    for &(i, j) in edges.keys() {
        adj[i].insert(j);
    }
    for comp in circles(files.len(), &adj) {
        let names: Vec<String> = comp
            .iter()
            .map(|&i| format!("src/{}", files[i].rel))
            .collect();
        out.push(format!("files on a circle: {}", names.join(", ")));
        for &i in &comp {
            for &j in &comp {
                if adj[i].contains(&j) {
                    out.push(format!("    {}", show((i, j))));
                }
            }
        }
    }

    let units: Vec<String> = files
        .iter()
        .map(unit)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let unit_of = |i: usize| units.binary_search(&unit(&files[i])).expect("a unit");
    // Across stages a circle always shows as a later stage imported; what
    // is left to find is a circle between the units of one stage (export's).
    let same_stage =
        |i: usize, j: usize| unit_of(i) != unit_of(j) && rank(&files[i]) == rank(&files[j]);
    let mut uadj = vec![BTreeSet::new(); units.len()];
    for &(i, j) in edges.keys() {
        if same_stage(i, j) {
            uadj[unit_of(i)].insert(unit_of(j));
        }
    }
    for comp in circles(units.len(), &uadj) {
        let names: Vec<&str> = comp.iter().map(|&u| units[u].as_str()).collect();
        out.push(format!("circle between {}", names.join(", ")));
        for &(i, j) in edges.keys() {
            if same_stage(i, j) && comp.contains(&unit_of(i)) && comp.contains(&unit_of(j)) {
                out.push(format!("    {}", show((i, j))));
            }
        }
    }
    out
}

fn sensor_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn stages_import_only_earlier_stages_and_files_form_no_circle() {
    let krate = Crate::load(&sensor_src());
    let found = violations(&krate);
    for v in &found {
        println!("{v}");
    }
    assert!(
        found.is_empty(),
        "{} layering violations (listed above)",
        found.iter().filter(|v| !v.starts_with("    ")).count()
    );
}

/// The checker itself, on a made-up crate, so that a silent parser cannot
/// make the real test pass.
#[test]
fn the_checker_sees_each_kind_of_violation() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod model; pub mod capture; pub mod accounting; pub mod analysis; pub mod export;",
    );
    write(
        "model/mod.rs",
        "pub struct Connection; use crate::capture::Segment;",
    );
    write(
        "capture/mod.rs",
        "pub struct Segment; fn f() { crate::accounting::count(); }",
    );
    write("accounting.rs", "pub fn count() {}");
    write(
        "analysis/mod.rs",
        "mod rules;\npub use rules::Finding;\n// use crate::export::Ignored;\nconst S: &str = \"crate::export::Ignored\";\n#[cfg(test)]\nmod tests { use crate::export::records::Record; }\n",
    );
    write(
        "analysis/rules.rs",
        "pub struct Finding; use super::super::export::{self, records::Record as R};",
    );
    write(
        "export/mod.rs",
        "pub mod json; pub mod otlp; pub mod records;",
    );
    write(
        "export/records.rs",
        "pub struct Record; use super::otlp::Metric;",
    );
    write(
        "export/otlp/mod.rs",
        "pub mod metric; pub use metric::Metric;",
    );
    write(
        "export/otlp/metric.rs",
        "pub struct Metric; fn f(_: crate::export::records::Record) {}",
    );
    write("export/json.rs", "use crate::analysis::Finding;");

    let found = violations(&Crate::load(src));
    let text = found.join("\n");
    for want in [
        "model imports another stage: src/model/mod.rs:1 -> src/capture/mod.rs (crate::capture::Segment)",
        "capture (1) imports the later accounting (2): src/capture/mod.rs:1 -> src/accounting.rs (crate::accounting::count)",
        "analysis (7) imports the later export (8): src/analysis/rules.rs:1 -> src/export/mod.rs (super::super::export)",
        "analysis (7) imports the later export (8): src/analysis/rules.rs:1 -> src/export/records.rs (super::super::export::records::Record)",
        "files on a circle: src/export/otlp/metric.rs, src/export/records.rs",
        "    src/export/records.rs:1 -> src/export/otlp/metric.rs (super::otlp::Metric)",
        "circle between export/otlp, export/records",
    ] {
        assert!(
            found.iter().any(|v| v == want),
            "missing {want:?} in:\n{text}"
        );
    }
    assert!(
        !text.contains("src/analysis/mod.rs:"),
        "comments, strings and test modules were read as imports:\n{text}"
    );
    assert!(
        !text.contains("src/export/json.rs"),
        "an import of an earlier stage was taken for a violation:\n{text}"
    );
    // The re-export leads to the file that defines the name.
    assert!(
        !text.contains("-> src/export/otlp/mod.rs"),
        "a re-export was not followed:\n{text}"
    );
}
